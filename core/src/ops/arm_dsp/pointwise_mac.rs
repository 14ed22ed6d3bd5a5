//! The pointwise convolution's pass (`graph::fast::pointwise`): one output channel against
//! four unpacked int16 input columns, and the four sums requantized in the same block, so
//! that the accumulators never leave their registers.

use core::arch::asm;

/// The four columns' int8 outputs (column `i` in byte `i`) of one output channel:
/// `acc[i] + Σ_t weights[t] · patch value (i, t)` over `groups ≥ 1` groups of four taps (the
/// layout and the loop of `mac_patch4_unrolled`), each requantized with `requant`. Per output,
/// after the loop: the sign's rounding correction (three instructions), SMLAL onto the
/// prepared high word, ASR and SSAT; then the clamp of all four bytes with two SSUB8/SEL.
#[inline(always)]
pub(crate) fn mac_requant4(
    patch: &[u32],
    weights: &[i8],
    groups: usize,
    acc: [i32; 4],
    requant: &[u32; 5],
) -> u32 {
    let fits = groups > 0 && patch.len() >= 8 * groups && weights.len() >= 4 * groups;
    if !fits {
        return 0;
    }
    let [a0, a1, a2, a3] = acc;
    let packed: u32;
    // SAFETY: the loop is `mac_patch4_unrolled`'s: it reads `8·groups` words of `patch`
    // (word-aligned) with LDM and `4·groups` bytes of `weights` with unaligned word loads
    // (allowed on ARMv7-M), all in bounds as checked above, and ends when the patch pointer
    // meets its end exactly (`groups ≥ 1`, an odd count entering at the second half). Then
    // it reads the five words of `requant`. Its
    // two stack words (the end pointer and `requant`'s address) are released before the
    // requantization; registers only after that.
    unsafe {
        asm!(
            "sub sp, sp, #8",
            "str r12, [sp]",
            "str r3, [sp, #4]",
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
            "ldr r12, [sp, #4]",
            "add sp, sp, #8",
            // r0 multiplier, r1 shift − 1, r2 high start, r3 low clamp ×4, r4 high clamp ×4.
            "ldm r12, {{r0, r1, r2, r3, r4}}",
            requant_one!("r8"),
            "ssat r12, #8, lr",
            requant_one!("r9"),
            "ssat lr, #8, lr",
            "bfi r12, lr, #8, #8",
            requant_one!("r10"),
            "ssat lr, #8, lr",
            "bfi r12, lr, #16, #8",
            requant_one!("r11"),
            "ssat lr, #8, lr",
            "bfi r12, lr, #24, #8",
            // Each byte's max with the low clamp, then its min with the high one.
            "ssub8 r5, r12, r3",
            "sel r12, r12, r3",
            "ssub8 r5, r4, r12",
            "sel r12, r12, r4",
            inout("r0") patch.as_ptr() => _,
            inout("r1") weights.as_ptr() => _,
            inout("r2") groups => _,
            inout("r3") core::ptr::from_ref(requant) => _,
            out("r4") _,
            out("r5") _,
            inout("r8") a0 => _,
            inout("r9") a1 => _,
            inout("r10") a2 => _,
            inout("r11") a3 => _,
            inout("r12") patch.as_ptr().add(8 * groups) => packed,
            out("lr") _,
        );
    }
    packed
}

/// One sum (the register named) requantized into `lr`, before its SSAT: the 64-bit
/// `high_start·2^32 + 2^30 − 2^31·(sum < 0)` (AND, RSBS, SBC), plus the sum times the
/// multiplier (SMLAL), its high word shifted right.
macro_rules! requant_one {
    ($acc:literal) => {
        concat!(
            "and r5, ",
            $acc,
            ", #0x80000000\n",
            "rsbs r5, r5, #0x40000000\n",
            "sbc lr, r2, #0\n",
            "smlal r5, lr, ",
            $acc,
            ", r0\n",
            "asr lr, lr, r1\n",
        )
    };
}
use requant_one;
