//! The pointwise convolution's block (`graph::fast::pointwise`): every output channel against
//! four unpacked int16 input columns, each channel's four sums requantized in the same loop,
//! so that the accumulators never leave their registers.

use core::arch::asm;

use super::patch_mac::mac_group;

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
/// `o`, `acc[i] = bias + Σ_t row[t] · patch value (i, t)` over weight row `o` (`c` int8
/// values, `c` a multiple of 4; the layout and the loop of `mac_patch4`), each sum
/// requantized with channel `o`'s multiplier and shift as `graph::fast::requant::
/// PointwiseRequant` does (the sign's rounding correction, three instructions; SMLAL onto the
/// high word `(2z + 1)·2^(r−2)`; ASR by `r − 1`; SSAT), the four bytes clamped together (two
/// SSUB8/SEL) and stored as one word at `out[o·plane..]`. The channel loop is in the
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
        && patch.len().is_multiple_of(8)
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
    // ARMv7-M); the patch's `c/4 ≥ 1` groups of eight words as in `mac_patch4`, whose loop
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
            mac_group!(),
            "3:",
            mac_group!(),
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
