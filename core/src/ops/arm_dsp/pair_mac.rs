//! The pointwise convolution's inner loop (`graph::fast::pointwise`): `dsp::mac_patch4`'s
//! arithmetic with two groups of four taps per pass of the loop, so that the loop's own three
//! instructions (reload the end, compare, branch) come once per 32 MACs instead of 16.

use core::arch::asm;

/// Exactly `mac_patch4(patch, weights, groups, acc)` (see `patch_mac`): `acc[i] += Σ_t
/// weights[t] · patch value (i, t)` over `groups` groups of four taps, the patches laid out per
/// group as, for each of the four columns, the words (x0 | x2 << 16) and (x1 | x3 << 16).
/// An odd count enters the loop at its second half.
#[inline(always)]
pub(crate) fn mac_patch4_unrolled(
    patch: &[u32],
    weights: &[i8],
    groups: usize,
    acc: &mut [i32; 4],
) {
    let fits = groups > 0 && patch.len() >= 8 * groups && weights.len() >= 4 * groups;
    if !fits {
        return;
    }
    let [mut a0, mut a1, mut a2, mut a3] = *acc;
    // SAFETY: as `mac_patch4`: reads `8·groups` words of `patch` (word-aligned) with LDM and
    // `4·groups` bytes of `weights` with unaligned word loads (allowed on ARMv7-M), all in
    // bounds as checked above. `groups ≥ 1`: an odd count runs one group from label 3 first,
    // then whole passes of two; the loop ends when the patch pointer reaches its end, which
    // it meets exactly (it advances 8 words a group). Its two stack words are released
    // before it ends.
    unsafe {
        asm!(
            "sub sp, sp, #8",
            "str r12, [sp]",
            "tst r2, #1",
            "bne 3f",
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
            "3:",
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
