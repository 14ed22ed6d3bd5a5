//! The DSP instructions the graph's fast kernels (`graph::fast`) are built on: one output
//! channel against four unpacked int16 patches, SMLAD on a pair, and a byte sum; and the
//! SXTB16 unpacking the Linear kernel (`super::linear`) uses.

use core::arch::asm;

use crate::ops::fused_add::FusedAdd;
use crate::ops::runs::{FittingRuns, Runs};

/// `acc[i] += Σ_t weights[t] · patch value (i, t)` over `groups` groups of four taps, the
/// patches laid out as `graph::fast::patch_conv` writes them: per group, for each of the
/// four columns, the words (x0 | x2 << 16) and (x1 | x3 << 16). One weight word (four int8
/// taps, read unaligned from the blob) is unpacked with two SXTB16 into the pairs (w0, w2)
/// and (w1, w3), then meets each column's two words with two SMLAD. The first `groups mod 8`
/// groups run in a loop of four groups a pass (entered part way), the rest in one of eight:
/// 107 instructions per 128 multiply-accumulates.
#[inline(always)]
pub(crate) fn mac_patch4(patch: &[u32], weights: &[i8], groups: usize, acc: &mut [i32; 4]) {
    let fits = groups > 0 && patch.len() >= 8 * groups && weights.len() >= 4 * groups;
    if !fits {
        return;
    }
    let [mut a0, mut a1, mut a2, mut a3] = *acc;
    // SAFETY: reads `8·groups` words of `patch` (word-aligned, a `u32` slice) with LDM and
    // `4·groups` bytes of `weights` with word loads (unaligned LDR is allowed on ARMv7-M with
    // the default CCR.UNALIGN_TRP clear), all in bounds as checked above. The first loop runs
    // `rest = groups mod 8` groups when that is not 0: it ends when the patch pointer reaches
    // `patch + 8·rest` words (checked after every fourth group), and is entered at group
    // `(4 − rest mod 4) mod 4` of its body (bit 0 of the count in Z, bit 1 in C after the
    // LSLS), so it runs exactly `rest`; the second runs whole passes of eight groups until the
    // pointer reaches the end of `8·groups` words, which a multiple of eight groups leaves.
    // Its two stack words (the two ends) are released before it ends.
    unsafe {
        asm!(
            "sub sp, sp, #8",
            "str r12, [sp, #4]",
            "ands r12, r2, #7",
            "beq 7f",
            "add r12, r0, r12, lsl #5",
            "str r12, [sp]",
            "lsls r2, r2, #31",
            "beq 6f",
            "bcs 3f",
            "b 5f",
            "6:",
            "bcs 4f",
            "2:",
            mac_group!(),
            "3:",
            mac_group!(),
            "4:",
            mac_group!(),
            "5:",
            mac_group!(),
            "ldr r12, [sp]",
            "cmp r0, r12",
            "bne 2b",
            "7:",
            "ldr r12, [sp, #4]",
            "cmp r0, r12",
            "beq 9f",
            "8:",
            mac_group!(),
            mac_group!(),
            mac_group!(),
            mac_group!(),
            mac_group!(),
            mac_group!(),
            mac_group!(),
            mac_group!(),
            "ldr r12, [sp, #4]",
            "cmp r0, r12",
            "bne 8b",
            "9:",
            "add sp, sp, #8",
            inout("r0") patch.as_ptr() => _,
            inout("r1") weights.as_ptr() => _,
            inout("r12") patch.as_ptr().add(8 * groups) => _,
            inout("r2") groups => _,
            out("r3") _,
            out("r4") _,
            out("r5") _,
            inout("r8") a0,
            inout("r9") a1,
            inout("r10") a2,
            inout("r11") a3,
            out("lr") _,
        );
    }
    *acc = [a0, a1, a2, a3];
}

/// Writes the int16 pair words of `groups` groups of four staged int8 taps of four columns
/// (column `c`'s group `g` at `stage[c·stride + 4g..]`): group `g` of column `c` at words
/// `8g + 2c` (taps 0 and 2) and `8g + 2c + 1` (taps 1 and 3) of `patch`. Two columns per STM:
/// 17 instructions a group.
#[inline(always)]
pub(crate) fn expand_columns(patch: &mut [u32], stage: &[i8], stride: usize, groups: usize) {
    let fits = groups > 0
        && patch.len() >= 8 * groups
        && stride
            .checked_mul(3)
            .and_then(|s| s.checked_add(4 * groups))
            .is_some_and(|end| end <= stage.len());
    if !fits {
        return;
    }
    // SAFETY: reads the words at `c·stride + 4g` (c < 4, g < groups) of `stage`, the last
    // ending within it as checked above (unaligned LDR is allowed on ARMv7-M), and writes the
    // `8·groups` words of `patch` (word-aligned, a `u32` slice) with STM; `groups ≥ 1`, so
    // the loop ends exactly when the patch pointer reaches its end. No stack.
    unsafe {
        asm!(
            "2:",
            "ldr r0, [r8]",
            "ldr r1, [r8, r10]",
            "sxtb16 r2, r0",
            "sxtb16 r3, r0, ror #8",
            "sxtb16 r4, r1",
            "sxtb16 r5, r1, ror #8",
            "stm r9!, {{r2, r3, r4, r5}}",
            "ldr r0, [r8, r11]",
            "ldr r1, [r8, r12]",
            "sxtb16 r2, r0",
            "sxtb16 r3, r0, ror #8",
            "sxtb16 r4, r1",
            "sxtb16 r5, r1, ror #8",
            "stm r9!, {{r2, r3, r4, r5}}",
            "add r8, r8, #4",
            "cmp r9, lr",
            "bne 2b",
            out("r0") _,
            out("r1") _,
            out("r2") _,
            out("r3") _,
            out("r4") _,
            out("r5") _,
            inout("r8") stage.as_ptr() => _,
            inout("r9") patch.as_mut_ptr() => _,
            in("r10") stride,
            in("r11") 2 * stride,
            in("r12") 3 * stride,
            in("lr") patch.as_mut_ptr().add(8 * groups),
            options(nostack),
        );
    }
}

/// One group of four taps: a weight word against the four columns' two words each.
macro_rules! mac_group {
    () => {
        concat!(
            "ldr r12, [r1], #4\n",
            "sxtb16 lr, r12\n",
            "sxtb16 r12, r12, ror #8\n",
            "ldm r0!, {{r2, r3, r4, r5}}\n",
            "smlad r8, lr, r2, r8\n",
            "smlad r8, r12, r3, r8\n",
            "smlad r9, lr, r4, r9\n",
            "smlad r9, r12, r5, r9\n",
            "ldm r0!, {{r2, r3, r4, r5}}\n",
            "smlad r10, lr, r2, r10\n",
            "smlad r10, r12, r3, r10\n",
            "smlad r11, lr, r4, r11\n",
            "smlad r11, r12, r5, r11\n",
        )
    };
}
pub(super) use mac_group;

/// `out[i] = FoldedRequant::apply(acc[i])` for the four sums of a channel (`words`: its
/// `FoldedRequant::to_words`, `graph::fast::requant`), stored with one word: per output the
/// 64-bit constant built from the sum's sign (three instructions), SMLAL, the top word's shift
/// and SSAT; then the four bytes packed (BFI) and clamped together (SSUB8 and SEL against the
/// bounds repeated in each byte): 33 instructions for four outputs.
#[inline(always)]
pub(crate) fn requantize_columns(acc: &[i32; 4], words: &[u32], out: &mut [i8]) {
    if out.len() < 4 || words.len() < 5 {
        return;
    }
    // SAFETY: reads the first five words of `words` (word-aligned, a `u32` slice) with LDM and
    // writes the four bytes at `out` (checked above) with one STR, which the Cortex-M4 allows
    // unaligned (CCR.UNALIGN_TRP clear). Registers and flags (SSUB8's GE bits) only otherwise;
    // no stack.
    unsafe {
        asm!(
            requantize_four!(),
            "str r0, [lr]",
            inout("r0") acc[0] => _,
            inout("r1") acc[1] => _,
            inout("r2") acc[2] => _,
            inout("r3") acc[3] => _,
            out("r4") _,
            out("r5") _,
            out("r8") _,
            out("r9") _,
            out("r10") _,
            inout("r11") words.as_ptr() => _,
            out("r12") _,
            in("lr") out.as_mut_ptr(),
            options(nostack),
        );
    }
}

/// [`requantize_columns`] over a run of sums, four a pass: `out[i] = FoldedRequant::apply(acc[i])`
/// for `i < 4·⌊acc.len() / 4⌋` (the caller requantizes the rest), the requantizer's words in
/// registers for the whole run and the bounds reloaded after each four's packing: 37
/// instructions for four outputs (the depthwise kernel's rows of sums).
#[inline(never)]
pub(crate) fn requantize_run(acc: &[i32], words: &[u32; 5], out: &mut [i8]) {
    let quads = (acc.len() / 4).min(out.len() / 4);
    if quads == 0 {
        return;
    }
    // SAFETY: reads `4·quads` sums of `acc` (word-aligned, LDRD) and the five words of `words`,
    // writes `4·quads` bytes of `out` (STR, unaligned allowed on the Cortex-M4 with
    // CCR.UNALIGN_TRP clear), all within the slices; the loop runs `quads ≥ 1` times, until r3
    // reaches `acc + 4·quads`. Registers and flags only otherwise; no stack.
    unsafe {
        asm!(
            "ldm lr, {{r4, r5, r8}}",
            "2:",
            "ldrd r0, r1, [r3], #8",
            fold_column!("r0"),
            fold_column!("r1"),
            "bfi r0, r1, #8, #8",
            "ldrd r1, r2, [r3], #8",
            fold_column!("r1"),
            fold_column!("r2"),
            "bfi r0, r1, #16, #8",
            "bfi r0, r2, #24, #8",
            "ldrd r1, r2, [lr, #12]",
            "ssub8 r11, r0, r1",
            "sel r0, r0, r1",
            "ssub8 r11, r2, r0",
            "sel r0, r0, r2",
            "str r0, [r9], #4",
            "cmp r3, r10",
            "bne 2b",
            out("r0") _,
            out("r1") _,
            out("r2") _,
            inout("r3") acc.as_ptr() => _,
            out("r4") _,
            out("r5") _,
            out("r8") _,
            inout("r9") out.as_mut_ptr() => _,
            in("r10") acc.as_ptr().add(4 * quads),
            out("r11") _,
            out("r12") _,
            in("lr") words.as_ptr(),
            options(nostack),
        );
    }
}

/// The fused residual Add of four outputs of a channel: each sum requantized and clamped as
/// [`requantize_columns`] does, then added to the residual byte in `out` as the Add kernel
/// does (`graph::fast::add`: both inputs' rescaling looked up in `a` and `b`, their
/// saturating sum requantized by the Add's folded output requantizer `add`, its clamp), the
/// four sums stored over the residual with one word: 87 instructions for four outputs.
/// (`graph::fast::dsp::add_columns` checks the lengths and calls it.)
#[inline(always)]
pub(crate) fn add_four((acc, words, (a, b), add, out): FusedAdd<'_>) {
    let values: u32;
    // SAFETY: as `requantize_columns` for the first part (reads five words of `words`, no
    // store); no memory then but the value in r0.
    unsafe {
        asm!(
            requantize_four!(),
            inout("r0") acc[0] => values,
            inout("r1") acc[1] => _,
            inout("r2") acc[2] => _,
            inout("r3") acc[3] => _,
            out("r4") _,
            out("r5") _,
            out("r8") _,
            out("r9") _,
            out("r10") _,
            inout("r11") words.as_ptr() => _,
            out("r12") _,
            options(nostack, readonly),
        );
    }
    // SAFETY: reads entries `values' byte` of `a` and `residual byte` of `b` (indices
    // below 256: unsigned bytes), the first five words of `add` (LDM and LDRD, word-aligned),
    // and the four bytes at `out`, which it then overwrites with one STR (unaligned STR is
    // allowed on the Cortex-M4); all in bounds by their types. Registers and flags
    // otherwise; no stack.
    unsafe {
        asm!(
            "ldm r2, {{r3, r4, r5}}",
            add_column!("0", "0"),
            add_column!("8", "1"),
            add_column!("16", "2"),
            add_column!("24", "3"),
            "ldrd r4, r5, [r2, #12]",
            "ssub8 r12, r1, r4",
            "sel r1, r1, r4",
            "ssub8 r12, r5, r1",
            "sel r1, r1, r5",
            "str r1, [lr]",
            in("r0") values,
            out("r1") _,
            in("r2") add.as_ptr(),
            out("r3") _,
            out("r4") _,
            out("r5") _,
            in("r8") a.as_ptr(),
            in("r9") b.as_ptr(),
            out("r10") _,
            out("r11") _,
            out("r12") _,
            in("lr") out.as_mut_ptr(),
            options(nostack),
        );
    }
}

/// Byte `$byte` (bit offset `$bit`) of the Add: the conv's value in r0 and the residual at
/// `[lr, #$byte]` looked up in r8's and r9's tables, their saturating sum requantized by the
/// Add's folded requantizer (r3 `m`, r4 `high`, r5 `shift`), SSAT to int8 and inserted into
/// r1.
macro_rules! add_column {
    ($bit:literal, $byte:literal) => {
        concat!(
            "ubfx r10, r0, #",
            $bit,
            ", #8\n",
            "ldr r10, [r8, r10, lsl #2]\n",
            "ldrb r11, [lr, #",
            $byte,
            "]\n",
            "ldr r11, [r9, r11, lsl #2]\n",
            "qadd r10, r10, r11\n",
            "and r11, r10, #0x80000000\n",
            "orr r11, r11, #0x40000000\n",
            "add r12, r4, r10, asr #31\n",
            "smlal r11, r12, r10, r3\n",
            "asr r12, r12, r5\n",
            "ssat r12, #8, r12\n",
            "bfi r1, r12, #",
            $bit,
            ", #8\n",
        )
    };
}
use add_column;

/// One sum (in the named register, which receives the int8 value sign-extended):
/// `(C + x·m) >> 32 >> shift`, SSAT to int8, with `C`'s low word `2^30` plus bit 31 for a
/// negative `x` and its top word `high − [x < 0]` (r4 `m`, r5 `high`, r8 `shift`).
macro_rules! fold_column {
    ($x:literal) => {
        concat!(
            "and r11, ",
            $x,
            ", #0x80000000\n",
            "orr r11, r11, #0x40000000\n",
            "add r12, r5, ",
            $x,
            ", asr #31\n",
            "smlal r11, r12, ",
            $x,
            ", r4\n",
            "asr r12, r12, r8\n",
            "ssat ",
            $x,
            ", #8, r12\n",
        )
    };
}
use fold_column;

/// The four sums of a channel in r0–r3 requantized (`fold_column!`, with the five words of
/// `FoldedRequant::to_words` at r11) and packed into r0's bytes, clamped by SSUB8 and SEL
/// against the bounds in r9 and r10: what [`requantize_columns`] stores and [`add_columns`]
/// adds to the residual.
macro_rules! requantize_four {
    () => {
        concat!(
            "ldm r11, {{r4, r5, r8, r9, r10}}\n",
            fold_column!("r0"),
            fold_column!("r1"),
            fold_column!("r2"),
            fold_column!("r3"),
            "bfi r0, r1, #8, #8\n",
            "bfi r0, r2, #16, #8\n",
            "bfi r0, r3, #24, #8\n",
            "ssub8 r11, r0, r9\n",
            "sel r0, r0, r9\n",
            "ssub8 r11, r10, r0\n",
            "sel r0, r0, r10\n",
        )
    };
}
use requantize_four;

/// Copies checked runs in order, so that each run keeps its first `step` bytes and the next
/// overwrites the rest (`graph::fast::dsp::gather_runs`, which calls it).
#[inline(always)]
pub(crate) fn copy_runs(runs: FittingRuns<'_, '_>) {
    let (
        src,
        Runs {
            plane,
            row,
            rows,
            channels,
            step,
        },
        dst,
    ) = runs.into_parts();
    if rows == 3 {
        // A 3-row kernel (most): the three runs of a channel in one pass, without the row loop.
        // SAFETY: as below, with `rows` = 3: reads the words at `c·plane + r·row` and writes
        // those at `(3c + r)·step` (c < channels, r < 3), all checked by `FittingRuns::new`;
        // `channels ≥ 1`.
        unsafe {
            asm!(
                "2:",
                "ldr {a}, [{src}]",
                "ldr {b}, [{src}, {row}]",
                "ldr {c}, [{src}, {row2}]",
                "str {a}, [{dst}]",
                "str {b}, [{dst}, {step}]",
                "str {c}, [{dst}, {step2}]",
                "add {dst}, {dst}, {step3}",
                "add {src}, {src}, {plane}",
                "subs {ch}, {ch}, #1",
                "bne 2b",
                src = inout(reg) src.as_ptr() => _,
                dst = inout(reg) dst.as_mut_ptr() => _,
                ch = inout(reg) channels => _,
                row = in(reg) row,
                row2 = in(reg) 2 * row,
                step = in(reg) step,
                step2 = in(reg) 2 * step,
                step3 = in(reg) 3 * step,
                plane = in(reg) plane,
                a = out(reg) _,
                b = out(reg) _,
                c = out(reg) _,
                options(nostack),
            );
        }
        return;
    }
    // SAFETY: reads the words at `c·plane + r·row` (c < channels, r < rows) of `src` and
    // writes the words at `(c·rows + r)·step` of `dst`, the last of each ending within its
    // slice as `FittingRuns::new` checked (unaligned LDR/STR are allowed on ARMv7-M with the default
    // CCR.UNALIGN_TRP clear); both counts are at least 1, so each loop runs exactly its
    // count. Registers only besides those bytes; no stack.
    unsafe {
        asm!(
            "2:",
            "mov {p}, {src}",
            "mov {k}, {rows}",
            "3:",
            "ldr {w}, [{p}]",
            "add {p}, {p}, {row}",
            "str {w}, [{dst}]",
            "add {dst}, {dst}, {step}",
            "subs {k}, {k}, #1",
            "bne 3b",
            "add {src}, {src}, {plane}",
            "subs {ch}, {ch}, #1",
            "bne 2b",
            src = inout(reg) src.as_ptr() => _,
            dst = inout(reg) dst.as_mut_ptr() => _,
            ch = inout(reg) channels => _,
            rows = in(reg) rows,
            row = in(reg) row,
            step = in(reg) step,
            plane = in(reg) plane,
            p = out(reg) _,
            k = out(reg) _,
            w = out(reg) _,
            options(nostack),
        );
    }
}

/// Defines `$name(a, b, acc)`, the dual 16-bit multiply-accumulate instruction `$op`
/// (SMLAD, SMLADX) on a register pair, wrapping.
macro_rules! dual_mac {
    ($(#[$doc:meta])* $name:ident, $op:literal) => {
        $(#[$doc])*
        #[inline(always)]
        pub(crate) fn $name(a: u32, b: u32, acc: i32) -> i32 {
            let out: i32;
            // SAFETY: register arithmetic only (it may set the sticky Q flag, nothing else).
            unsafe {
                core::arch::asm!(
                    concat!($op, " {out}, {a}, {b}, {acc}"),
                    out = lateout(reg) out,
                    a = in(reg) a,
                    b = in(reg) b,
                    acc = in(reg) acc,
                    options(pure, nomem, nostack),
                );
            }
            out
        }
    };
}
pub(crate) use dual_mac;

dual_mac!(
    /// `acc + low(a)·low(b) + high(a)·high(b)` on int16 halves, wrapping (SMLAD).
    smlad,
    "smlad"
);

/// The sum of `bytes` as int8: a word (four bytes, read unaligned) per two SXTAB16 into two
/// 16-bit lanes, folded into the total every 512 bytes, before a lane could overflow.
pub(crate) fn sum_bytes(bytes: &[i8]) -> i32 {
    const CHUNK: usize = 512;
    let mut total = 0_i32;
    for chunk in bytes.chunks(CHUNK) {
        let words = chunk.len() / 4;
        let mut lanes = 0_u32;
        if words > 0 {
            // SAFETY: reads `words ≥ 1` words from `chunk` (4·words ≤ its length), unaligned
            // LDR being allowed on ARMv7-M; registers only otherwise.
            unsafe {
                asm!(
                    "2:",
                    "ldr {w}, [{p}], #4",
                    "sxtab16 {lanes}, {lanes}, {w}",
                    "sxtab16 {lanes}, {lanes}, {w}, ror #8",
                    "cmp {p}, {end}",
                    "bne 2b",
                    w = out(reg) _,
                    p = inout(reg) chunk.as_ptr() => _,
                    end = in(reg) chunk.as_ptr().add(4 * words),
                    lanes = inout(reg) lanes,
                    options(nostack, readonly),
                );
            }
        }
        // Each lane holds at most 256 values in −128..=127: within i16.
        total = smlad(lanes, 0x0001_0001, total);
        for &b in chunk.get(4 * words..).unwrap_or_default() {
            total += i32::from(b);
        }
    }
    total
}

/// The int8 bytes of `word` as two int16 pairs: `(bytes 0 and 2, bytes 1 and 3)`.
#[inline(always)]
pub(crate) fn sxtb16_pairs(word: u32) -> (u32, u32) {
    let (even, odd): (u32, u32);
    // SAFETY: pure register arithmetic: no memory, no stack, no flags.
    unsafe {
        asm!(
            "sxtb16 {even}, {word}",
            "sxtb16 {odd}, {word}, ror #8",
            word = in(reg) word,
            // `out`, not `lateout`: `even` is written while `word` is still to be read.
            even = out(reg) even,
            odd = lateout(reg) odd,
            options(pure, nomem, nostack, preserves_flags),
        );
    }
    (even, odd)
}
