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

/// What [`pointwise_block`]'s assembly reads and advances, at fixed offsets.
#[repr(C)]
struct BlockState {
    /// The next output channel's weight row (0), and the row length (4).
    weights: *const i8,
    row: usize,
    /// The unpacked columns (8) and their end (12).
    patch: *const u32,
    patch_end: *const u32,
    /// The next channel's bias (16), multiplier (20) and shift (24).
    bias: *const [u8; 4],
    multiplier: *const [u8; 4],
    shift: *const i8,
    /// Where the next channel's four outputs go (28), and the step to the next channel (32).
    out: *mut i8,
    plane: usize,
    /// Channels left (36), `2·zero point + 1` (40), the clamp's bytes (44, 48), and whether
    /// the group count is odd (52).
    channels: usize,
    zero_point_2x1: i32,
    lo: u32,
    hi: u32,
    odd: u32,
}

/// Every output channel's four outputs for one block of four unpacked columns: for channel
/// `o`, [`mac_requant4`] of weight row `o` (`c` int8 values, `c` a multiple of 4) from its
/// bias, the four bytes stored as one word at `out[o·plane..]`. The channel loop is in the
/// assembly too, so that nothing is spilled per channel but its pointers' advance. `false`
/// (nothing written) when `c` is not a positive multiple of 4, a shift is outside `-23..=-2`
/// (not checked here: the caller's `PointwiseRequant` did), or a slice is short.
#[inline(never)]
pub(crate) fn pointwise_block(
    patch: &[u32],
    weights: &[i8],
    (bias, multiplier, shift): (&[[u8; 4]], &[[u8; 4]], &[i8]),
    (zero_point, [lo, hi]): (i8, [i8; 2]),
    out: &mut [i8],
    plane: usize,
) -> bool {
    let n = bias.len();
    let c = patch.len() / 2;
    let fits = n > 0
        && c > 0
        && patch.len() % 8 == 0
        && weights.len() >= n * c
        && multiplier.len() >= n
        && shift.len() >= n
        && plane >= 4
        && out.len() >= (n - 1) * plane + 4;
    if !fits {
        return false;
    }
    let mut state = BlockState {
        weights: weights.as_ptr(),
        row: c,
        patch: patch.as_ptr(),
        patch_end: patch.as_ptr_range().end,
        bias: bias.as_ptr(),
        multiplier: multiplier.as_ptr(),
        shift: shift.as_ptr(),
        out: out.as_mut_ptr(),
        plane,
        channels: n,
        zero_point_2x1: 2 * i32::from(zero_point) + 1,
        lo: u32::from_le_bytes([lo as u8; 4]),
        hi: u32::from_le_bytes([hi as u8; 4]),
        odd: (c / 4 % 2) as u32,
    };
    // SAFETY: `state` describes `n ≥ 1` channels: weight rows `o·c..(o + 1)·c` of `weights`,
    // entries `o` of `bias`, `multiplier` and `shift`, and the word at `out[o·plane..]`, all
    // in bounds as checked above (unaligned word loads and the word store are allowed on
    // ARMv7-M); the patch's `c/4 ≥ 1` groups of eight words as in `mac_requant4`, whose loop
    // ends when the patch pointer meets `patch_end` exactly. `state` itself is a `repr(C)`
    // struct of 4-byte fields, word-aligned (LDRD). r6 and r7, which the compiler reserves,
    // are pushed first and popped last; the stack is as it was when the block ends.
    unsafe {
        asm!(
            "push {{r6, r7}}",
            "mov r7, r0",
            "ldr r6, [r7, #12]",
            "ldr r1, [r7, #0]",
            "4:",
            "ldr r0, [r7, #8]",
            "ldr r2, [r7, #16]",
            "ldr r8, [r2], #4",
            "str r2, [r7, #16]",
            "mov r9, r8",
            "mov r10, r8",
            "mov r11, r8",
            "ldr r2, [r7, #52]",
            "cmp r2, #0",
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
            "cmp r0, r6",
            "bne 2b",
            // r1 is now the next channel's row: kept on the stack while r1 holds the shift.
            "push {{r1}}",
            "ldr r2, [r7, #20]",
            "ldr r0, [r2], #4",
            "str r2, [r7, #20]",
            "ldr r2, [r7, #24]",
            "ldrsb r1, [r2], #1",
            "str r2, [r7, #24]",
            // −shift − 1 (its low byte is what the shifts read), and the high start
            // `(2z + 1)·2^(r−2)`.
            "mvn r1, r1",
            "ldr r2, [r7, #40]",
            "lsl r2, r2, r1",
            "asr r2, r2, #1",
            "ldrd r3, r4, [r7, #44]",
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
            "ssub8 r5, r12, r3",
            "sel r12, r12, r3",
            "ssub8 r5, r4, r12",
            "sel r12, r12, r4",
            "pop {{r1}}",
            "ldr r2, [r7, #28]",
            "str r12, [r2]",
            "ldr r3, [r7, #32]",
            "add r2, r2, r3",
            "str r2, [r7, #28]",
            "ldr r2, [r7, #36]",
            "subs r2, r2, #1",
            "str r2, [r7, #36]",
            "bne 4b",
            "pop {{r6, r7}}",
            inout("r0") core::ptr::from_mut(&mut state) => _,
            out("r1") _,
            out("r2") _,
            out("r3") _,
            out("r4") _,
            out("r5") _,
            out("r8") _,
            out("r9") _,
            out("r10") _,
            out("r11") _,
            out("r12") _,
            out("lr") _,
        );
    }
    true
}
