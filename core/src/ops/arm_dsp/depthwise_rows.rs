//! The depthwise kernel's sums (`graph::fast::depthwise`): a 3-wide kernel's rows over a run
//! of outputs, every kernel row in the same pass, from int16 rows widened with their padding.
//!
//! A channel's taps are laid out as `ops::kx3_rows::KX3_TAPS` words: per kernel row `a = (w0, w1)` and
//! `d = (w1, w2)` as int16 pairs (up to five rows), then the bias twice. With a row's words
//! `x01 = (x0, x1)`, `x23 = (x2, x3)`, at stride 1 output 0 is `SMLAD(a, x01) + SMLATB(d, x23)`
//! and output 1 is `SMLABT(a, x01) + SMLAD(d, x23)`: one LDRD of weights, one of inputs and four
//! multiplies per row for two outputs (11 instructions an output for three rows). At stride 2
//! output 0 is `SMLAD(a, x01) + SMLATB(d, x23)` and output 1 `SMLAD(a, x23) + SMLATB(d, x45)`.
//! The weights are reloaded every pass: with the three row pointers, the two sums and the two
//! input words, they would not fit in registers.

use core::arch::asm;

use crate::ops::kx3_rows::Kx3Pass;

/// A kernel row's loads: its weights (r4, r5) at `$w` bytes of r11, and two input words (r2,
/// r3) at input pointer `$p`, which then advances by `$advance` bytes.
macro_rules! row_loads {
    ($w:literal, $p:literal, $advance:literal) => {
        concat!(
            "ldrd r4, r5, [r11, #",
            $w,
            "]\n",
            "ldrd r2, r3, [",
            $p,
            "], #",
            $advance,
            "\n",
        )
    };
}

/// One kernel row at stride 1 ([`row_loads`]: weights at `$w` bytes of r11, input `$p`).
macro_rules! row_stride1 {
    ($w:literal, $p:literal) => {
        concat!(
            row_loads!($w, $p, "4"),
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
            row_loads!($w, $p, "8"),
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

/// The loop over output pairs, then over output rows: `$start` sets the sums (r0, r1), the
/// rows add to them, one STRD stores them (r12 the sums' pointer, lr the row's end); at a
/// row's end the input pointers `$p` step to the next output row's kernel rows and the sums'
/// pointer back over a spare sum, from the loop words after the taps (`Kx3Pass::new`).
macro_rules! rows_loop {
    ($start:literal, [$($p:literal),+], $($row:expr),+) => {
        concat!(
            "2:\n", $start, $($row,)+ "strd r0, r1, [r12], #8\ncmp r12, lr\nbne 2b\n",
            "ldrd r0, r1, [r11, #48]\n",
            $("add ", $p, ", ", $p, ", r0\n",)+
            "sub r12, r12, r1\n",
            "ldrd r2, r3, [r11, #56]\n",
            "add lr, r12, r2\n",
            "subs r3, r3, #1\n",
            "str r3, [r11, #60]\n",
            "bne 2b\n",
        )
    };
}

/// The row loops' `asm!`: the template, the three input pointers (r8 to r10; a two-row
/// template leaves r10 alone), the taps and loop words (r11), the sums (r12) and the first
/// row's end (lr).
macro_rules! rows_asm {
    ($template:expr, $pointers:expr, ($words:expr, $acc:expr, $end:expr)) => {
        asm!(
            $template,
            out("r0") _, out("r1") _, out("r2") _, out("r3") _, out("r4") _, out("r5") _,
            inout("r8") $pointers[0] => _, inout("r9") $pointers[1] => _,
            inout("r10") $pointers[2] => _,
            in("r11") $words, inout("r12") $acc => _, inout("lr") $end => _,
            options(nostack),
        )
    };
}

/// One pass's `asm!`, its kernel rows read by `$row` ([`row_stride1`] or [`row_stride2`]):
/// three (rows 0 to 2 of the taps, from the bias in the taps' last words) or two (rows 3 and
/// 4, added to the sums already at r12).
macro_rules! rows_pass {
    (3, $row:ident, $pointers:expr, $args:tt) => {
        rows_asm!(
            rows_loop!(
                "ldrd r0, r1, [r11, #40]\n",
                ["r8", "r9", "r10"],
                $row!("0", "r8"),
                $row!("8", "r9"),
                $row!("16", "r10")
            ),
            $pointers,
            $args
        )
    };
    (2, $row:ident, $pointers:expr, $args:tt) => {
        rows_asm!(
            rows_loop!(
                "ldrd r0, r1, [r12]\n",
                ["r8", "r9"],
                $row!("24", "r8"),
                $row!("32", "r9")
            ),
            $pointers,
            $args
        )
    };
}

/// The loops of a checked pass (`graph::fast::dsp::kx3_pass`, which calls them): three inputs
/// sum kernel rows 0 to 2 from the bias, two add rows 3 and 4 to the sums.
#[inline(always)]
pub(crate) fn kx3_loops(pass: Kx3Pass<'_, '_>) {
    let (inputs, acc, mut words, stride, shape) = pass.into_parts();
    let input = |k: usize| inputs.get(k).map_or(core::ptr::null(), |r| r.as_ptr());
    let (p0, p1, p2) = (input(0), input(1), input(2));
    let acc = acc.as_mut_ptr();
    let words = words.as_mut_ptr();
    // SAFETY: `Kx3Pass::new` checked every read and write: rows `y < rows` read
    // `stride·pairs + 1` words of each input from `y·step`, and write `2·pairs` sums from
    // `y·width` (the two-row pass reads them first); the pair loop runs `pairs ≥ 1` times a row
    // (until r12 reaches lr), the row loop `rows ≥ 1` times, counting down its word of `words`
    // (a local array, also the taps: the two-row pass reads rows 3 and 4's, words 6 to 9).
    // A two-row template never reads r10 (null then). Registers, that array and the Q flag
    // only otherwise; no stack.
    unsafe {
        let end = acc.add(2 * shape.width.div_ceil(2));
        let pointers = [p0, p1, p2];
        match (inputs.len(), stride) {
            (3, 1) => rows_pass!(3, row_stride1, pointers, (words, acc, end)),
            (3, _) => rows_pass!(3, row_stride2, pointers, (words, acc, end)),
            (_, 1) => rows_pass!(2, row_stride1, pointers, (words, acc, end)),
            _ => rows_pass!(2, row_stride2, pointers, (words, acc, end)),
        }
    }
}
