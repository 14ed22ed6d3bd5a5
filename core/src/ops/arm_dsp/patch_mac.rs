//! The DSP instructions the graph's fast kernels (`graph::fast`) are built on: one output
//! channel against four unpacked int16 patches, SMLAD on a pair, and a byte sum; and the
//! SXTB16 unpacking the Linear kernel (`super::linear`) uses.

use core::arch::asm;

/// `acc[i] += Σ_t weights[t] · patch value (i, t)` over `groups` groups of four taps, the
/// patches laid out as `graph::fast::patch_conv` writes them: per group, for each of the
/// four columns, the words (x0 | x2 << 16) and (x1 | x3 << 16). One weight word (four int8
/// taps, read unaligned from the blob) is unpacked with two SXTB16 into the pairs (w0, w2)
/// and (w1, w3), then meets each column's two words with two SMLAD: 16 instructions per 16
/// multiply-accumulates, loop included.
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
    // loop, which ends when the patch pointer reaches its end, runs exactly `groups` times.
    // Its two stack words (the end pointer) are released before it ends.
    unsafe {
        asm!(
            "sub sp, sp, #8",
            "str r12, [sp]",
            "2:",
            "ldr r12, [r1], #4",
            "sxtb16 lr, r12",
            "sxtb16 r12, r12, ror #8",
            "ldm r0!, {{r2, r3, r4, r5}}",
            "smlad r8, lr, r2, r8",
            "smlad r8, r12, r3, r8",
            "smlad r9, lr, r4, r9",
            "smlad r9, r12, r5, r9",
            "ldm r0!, {{r2, r3, r4, r5}}",
            "smlad r10, lr, r2, r10",
            "smlad r10, r12, r3, r10",
            "smlad r11, lr, r4, r11",
            "smlad r11, r12, r5, r11",
            "ldr r12, [sp]",
            "cmp r0, r12",
            "bne 2b",
            "add sp, sp, #8",
            inout("r0") patch.as_ptr() => _,
            inout("r1") weights.as_ptr() => _,
            inout("r12") patch.as_ptr().add(8 * groups) => _,
            out("r2") _,
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
