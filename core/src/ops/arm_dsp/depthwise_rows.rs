//! The depthwise kernel's sums (`graph::fast::depthwise`): a 3-wide kernel's rows over a run
//! of outputs, every kernel row in the same pass, from int16 rows widened with their padding.
//!
//! A channel's taps are laid out as [`KX3_TAPS`] words: per kernel row `a = (w0, w1)` and
//! `d = (w1, w2)` as int16 pairs (up to five rows), then the bias twice. With a row's words
//! `x01 = (x0, x1)`, `x23 = (x2, x3)`, at stride 1 output 0 is `SMLAD(a, x01) + SMLATB(d, x23)`
//! and output 1 is `SMLABT(a, x01) + SMLAD(d, x23)`: one LDRD of weights, one of inputs and four
//! multiplies per row for two outputs (11 instructions an output for three rows). At stride 2
//! output 0 is `SMLAD(a, x01) + SMLATB(d, x23)` and output 1 `SMLAD(a, x23) + SMLATB(d, x45)`.
//! The weights are reloaded every pass: with the three row pointers, the two sums and the two
//! input words, they would not fit in registers.

use core::arch::asm;

/// Words of a channel's taps: five kernel rows' `(a, d)`, then the bias twice.
pub(crate) const KX3_TAPS: usize = 12;
/// Where kernel row 3 starts in the taps (words); the bias is at byte 40.
const ROW3: usize = 6;

/// One kernel row at stride 1 (r4, r5 its weights at `$w` bytes of r11; input pointer `$p`).
macro_rules! row_stride1 {
    ($w:literal, $p:literal) => {
        concat!(
            "ldrd r4, r5, [r11, #",
            $w,
            "]\n",
            "ldrd r2, r3, [",
            $p,
            "], #4\n",
            "smlabt r1, r4, r2, r1\n",
            "smlad r0, r4, r2, r0\n",
            "smlatb r0, r5, r3, r0\n",
            "smlad r1, r5, r3, r1\n",
        )
    };
}

/// One kernel row at stride 2, as [`row_stride1`].
macro_rules! row_stride2 {
    ($w:literal, $p:literal) => {
        concat!(
            "ldrd r4, r5, [r11, #",
            $w,
            "]\n",
            "ldrd r2, r3, [",
            $p,
            "], #8\n",
            "smlad r0, r4, r2, r0\n",
            "smlad r1, r4, r3, r1\n",
            "ldr r2, [",
            $p,
            "]\n",
            "smlatb r0, r5, r3, r0\n",
            "smlatb r1, r5, r2, r1\n",
        )
    };
}

/// The loop over output pairs: `$start` sets the sums (r0, r1), the rows add to them, one STRD
/// stores them (r12 the sums' pointer, lr its end).
macro_rules! pairs_loop {
    ($start:literal, $($row:expr),+) => {
        concat!("2:\n", $start, $($row,)+ "strd r0, r1, [r12], #8\ncmp r12, lr\nbne 2b\n")
    };
}

/// Words each row must hold for `pairs` output pairs at `stride`.
fn row_words(pairs: usize, stride: usize) -> usize {
    stride * pairs + 1
}

/// `acc[i] = bias + Σ_{k<3} (w_k0, w_k1, w_k2) · row_k[x..x + 3]` for output `i` at
/// `x = i·stride` (1 or 2), `taps` laid out as [`KX3_TAPS`]; `false` (nothing written) when
/// `acc`'s length is odd or 0, or a row is shorter than the outputs read.
#[inline(never)]
pub(crate) fn kx3_sums(
    rows: [&[u32]; 3],
    taps: &[u32; KX3_TAPS],
    stride: usize,
    acc: &mut [i32],
) -> bool {
    let pairs = acc.len() / 2;
    let need = row_words(pairs, stride);
    let fits = pairs > 0 && acc.len() % 2 == 0 && rows.iter().all(|r| r.len() >= need);
    if !fits || !(stride == 1 || stride == 2) {
        return false;
    }
    let [p0, p1, p2] = rows.map(<[u32]>::as_ptr);
    let acc = acc.as_mut_ptr();
    // SAFETY: reads the taps' twelve words (word-aligned, LDRD needs no more on the Cortex-M4)
    // and `stride·pairs + 1` words of each row (checked above), and writes `2·pairs` sums of
    // `acc`: the loop runs `pairs ≥ 1` times, until r12 reaches `acc + 2·pairs`. Registers
    // and the Q flag only otherwise; no stack.
    unsafe {
        let end = acc.add(2 * pairs);
        if stride == 1 {
            asm!(
                pairs_loop!(
                    "ldrd r0, r1, [r11, #40]\n",
                    row_stride1!("0", "r8"),
                    row_stride1!("8", "r9"),
                    row_stride1!("16", "r10")
                ),
                out("r0") _, out("r1") _, out("r2") _, out("r3") _, out("r4") _, out("r5") _,
                inout("r8") p0 => _, inout("r9") p1 => _, inout("r10") p2 => _,
                in("r11") taps.as_ptr(), inout("r12") acc => _, in("lr") end,
                options(nostack),
            );
        } else {
            asm!(
                pairs_loop!(
                    "ldrd r0, r1, [r11, #40]\n",
                    row_stride2!("0", "r8"),
                    row_stride2!("8", "r9"),
                    row_stride2!("16", "r10")
                ),
                out("r0") _, out("r1") _, out("r2") _, out("r3") _, out("r4") _, out("r5") _,
                inout("r8") p0 => _, inout("r9") p1 => _, inout("r10") p2 => _,
                in("r11") taps.as_ptr(), inout("r12") acc => _, in("lr") end,
                options(nostack),
            );
        }
    }
    true
}

/// [`kx3_sums`] adding kernel rows 3 and 4 (a 5×3 kernel's last two) to the sums in `acc`.
#[inline(never)]
pub(crate) fn kx3_add_rows(
    rows: [&[u32]; 2],
    taps: &[u32; KX3_TAPS],
    stride: usize,
    acc: &mut [i32],
) -> bool {
    let pairs = acc.len() / 2;
    let need = row_words(pairs, stride);
    let fits = pairs > 0 && acc.len() % 2 == 0 && rows.iter().all(|r| r.len() >= need);
    if !fits || !(stride == 1 || stride == 2) {
        return false;
    }
    let [p0, p1] = rows.map(<[u32]>::as_ptr);
    let acc = acc.as_mut_ptr();
    // SAFETY: as `kx3_sums`: reads rows 3 and 4's taps (words 6 to 9 of twelve) and
    // `stride·pairs + 1` words of each row, reads and writes `2·pairs` sums of `acc`.
    unsafe {
        let end = acc.add(2 * pairs);
        let taps = taps.as_ptr().add(ROW3);
        if stride == 1 {
            asm!(
                pairs_loop!(
                    "ldrd r0, r1, [r12]\n",
                    row_stride1!("0", "r8"),
                    row_stride1!("8", "r9")
                ),
                out("r0") _, out("r1") _, out("r2") _, out("r3") _, out("r4") _, out("r5") _,
                inout("r8") p0 => _, inout("r9") p1 => _,
                in("r11") taps, inout("r12") acc => _, in("lr") end,
                options(nostack),
            );
        } else {
            asm!(
                pairs_loop!(
                    "ldrd r0, r1, [r12]\n",
                    row_stride2!("0", "r8"),
                    row_stride2!("8", "r9")
                ),
                out("r0") _, out("r1") _, out("r2") _, out("r3") _, out("r4") _, out("r5") _,
                inout("r8") p0 => _, inout("r9") p1 => _,
                in("r11") taps, inout("r12") acc => _, in("lr") end,
                options(nostack),
            );
        }
    }
    true
}
