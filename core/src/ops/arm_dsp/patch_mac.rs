//! The DSP instructions the graph's fast kernels (`graph::fast`) are built on: one output
//! channel against four unpacked int16 patches, SMLAD on a pair, and a byte sum; and the
//! SXTB16 unpacking the Linear kernel (`super::linear`) uses.

use core::arch::asm;

/// `acc[i] += Σ_t weights[t] · patch value (i, t)` over `groups` groups of four taps, the
/// patches laid out as `graph::fast::patch_conv` writes them: per group, for each of the
/// four columns, the words (x0 | x2 << 16) and (x1 | x3 << 16). One weight word (four int8
/// taps, read unaligned from the blob) is unpacked with two SXTB16 into the pairs (w0, w2)
/// and (w1, w3), then meets each column's two words with two SMLAD. The loop body is two
/// groups (an odd count enters at the second): 29 instructions per 32 multiply-accumulates.
#[inline(always)]
pub(crate) fn mac_patch4(patch: &[u32], weights: &[i8], groups: usize, acc: &mut [i32; 4]) {
    let fits = groups > 0 && patch.len() >= 8 * groups && weights.len() >= 4 * groups;
    if !fits {
        return;
    }
    let [mut a0, mut a1, mut a2, mut a3] = *acc;
    // SAFETY: reads `8·groups` words of `patch` (word-aligned, a `u32` slice) with LDM and
    // `4·groups` bytes of `weights` with word loads (unaligned LDR is allowed on ARMv7-M with
    // the default CCR.UNALIGN_TRP clear), all in bounds as checked above; `groups ≥ 1`, so the
    // loop, which ends when the patch pointer reaches its end (checked after every second
    // group, an odd count starting at the second), runs exactly `groups` groups. Its two
    // stack words (the end pointer) are released before it ends.
    unsafe {
        asm!(
            "sub sp, sp, #8",
            "str r12, [sp]",
            "lsls r2, r2, #31",
            "bne 3f",
            "2:",
            mac_group!(),
            "3:",
            mac_group!(),
            "ldr r12, [sp]",
            "cmp r0, r12",
            "bne 2b",
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

/// Copies `channels · rows` runs of four bytes: run `(c, r)` from `src[c·plane + r·row..]`
/// to `dst[(c·rows + r)·step..]`, in that order, so that each run keeps its first `step`
/// bytes and the next overwrites the rest (the graph patch conv's staging of a column whose
/// window lies inside the input: one run per kernel row). `false` (nothing copied) when a
/// count is 0 or a run would fall outside `src` or `dst`.
#[inline(always)]
pub(crate) fn gather_runs(
    src: &[i8],
    (plane, row, rows, channels): (usize, usize, usize, usize),
    dst: &mut [i8],
    step: usize,
) -> bool {
    let last_read = (channels.wrapping_sub(1))
        .checked_mul(plane)
        .and_then(|a| a.checked_add(rows.wrapping_sub(1).checked_mul(row)?))
        .and_then(|a| a.checked_add(4));
    let last_write = channels
        .checked_mul(rows)
        .and_then(|n| n.wrapping_sub(1).checked_mul(step))
        .and_then(|a| a.checked_add(4));
    let fits = channels > 0
        && rows > 0
        && last_read.is_some_and(|end| end <= src.len())
        && last_write.is_some_and(|end| end <= dst.len());
    if !fits {
        return false;
    }
    // SAFETY: reads the words at `c·plane + r·row` (c < channels, r < rows) of `src` and
    // writes the words at `(c·rows + r)·step` of `dst`, the last of each ending within its
    // slice as checked above (unaligned LDR/STR are allowed on ARMv7-M with the default
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
    true
}

/// `acc + low(a)·low(b) + high(a)·high(b)` on int16 halves, wrapping (SMLAD).
#[inline(always)]
pub(crate) fn smlad(a: u32, b: u32, acc: i32) -> i32 {
    let out: i32;
    // SAFETY: register arithmetic only (SMLAD may set the sticky Q flag, nothing else).
    unsafe {
        asm!(
            "smlad {out}, {a}, {b}, {acc}",
            out = lateout(reg) out,
            a = in(reg) a,
            b = in(reg) b,
            acc = in(reg) acc,
            options(pure, nomem, nostack),
        );
    }
    out
}

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
