//! The pointwise convolution's blocks (`graph::fast::pointwise`): each block's four input
//! columns unpacked to int16, then every output channel against them, each channel's four
//! sums requantized in the same loop, so that the accumulators never leave their registers.

use core::arch::asm;

use super::patch_mac::mac_group;
use crate::ops::pointwise_columns::{Columns, FittingBlocks, PointwiseBlocks};

/// One sum (the register named) requantized into `lr`, before its SSAT: the 64-bit
/// `high_start·2^32 + 2^30 − 2^31·(sum < 0)` (AND, RSBS, SBC; the high start in r2), plus the
/// sum times the multiplier (SMLAL, r3), its high word shifted right (ASR by r4).
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
            ", r3\n",
            "asr lr, lr, r4\n",
        )
    };
}

/// Four channels' bytes of four pixels (the words at r0, r0 + r1, r0 + 2·r1, r0 + 3·r1, one
/// channel's four pixels each) as the eight int16 pair words of `patch_mac`'s layout at r2
/// (for pixel `p`, `(x0 | x2 << 16)` then `(x1 | x3 << 16)`): SXTB16 takes pixels 0 and 2 (or,
/// rotated, 1 and 3) of a channel, PKHBT and PKHTB pair channel 0 with 2 and 1 with 3.
/// Advances r0 by four channels and r2 by eight words; r3–r5 and r8–r12, lr are clobbered.
macro_rules! unpack_group {
    () => {
        concat!(
            "ldr r4, [r0]\n",
            "ldr r5, [r0, r1]\n",
            "add r12, r0, r1, lsl #1\n",
            "ldr r8, [r12]\n",
            "ldr r9, [r12, r1]\n",
            "add r0, r0, r1, lsl #2\n",
            "sxtb16 r10, r4\n",
            "sxtb16 r11, r8\n",
            "pkhbt r12, r10, r11, lsl #16\n",
            "pkhtb lr, r11, r10, asr #16\n",
            "sxtb16 r10, r5\n",
            "sxtb16 r11, r9\n",
            "pkhbt r3, r10, r11, lsl #16\n",
            "pkhtb r10, r11, r10, asr #16\n",
            "strd r12, r3, [r2]\n",
            "strd lr, r10, [r2, #16]\n",
            "sxtb16 r10, r4, ror #8\n",
            "sxtb16 r11, r8, ror #8\n",
            "pkhbt r12, r10, r11, lsl #16\n",
            "pkhtb lr, r11, r10, asr #16\n",
            "sxtb16 r10, r5, ror #8\n",
            "sxtb16 r11, r9, ror #8\n",
            "pkhbt r3, r10, r11, lsl #16\n",
            "pkhtb r10, r11, r10, asr #16\n",
            "strd r12, r3, [r2, #8]\n",
            "strd lr, r10, [r2, #24]\n",
            "add r2, r2, #32\n",
        )
    };
}

/// What [`blocks_loops`]' assembly reads and advances, at fixed offsets (LDM and LDRD
/// read neighbouring fields together).
#[repr(C)]
struct BlockState {
    /// The unpacked columns (0); the next channel's bias (4), multiplier (8) and shift (12).
    patch: *const u32,
    bias: *const [u8; 4],
    multiplier: *const [u8; 4],
    shift: *const i8,
    /// Where the next channel's four outputs go (16), the step to the next channel (20), and
    /// where the block's channels end (24).
    out: *mut i8,
    plane: usize,
    out_end: *mut i8,
    /// `2·zero point + 1` (28), the clamp's bytes (32, 36).
    zero_point_2x1: i32,
    lo: u32,
    hi: u32,
    /// The columns' end (40), and whether their group count is odd (44).
    patch_end: *const u32,
    odd: u32,
    /// Each block's first weight row (48), bias (52), multiplier (56) and shift (60).
    weights: *const i8,
    bias_start: *const [u8; 4],
    multiplier_start: *const [u8; 4],
    shift_start: *const i8,
    /// The next block's input columns (64; null: the caller unpacked the one block) and the
    /// input's channel step (68).
    input: *const i8,
    in_plane: usize,
    /// The next block's first output (72), blocks left (76), and the bytes from a block's
    /// first output to its channels' end (80).
    out_block: *mut i8,
    blocks: usize,
    span: usize,
}

/// The loops of a checked call (`graph::fast::dsp::pointwise_blocks`, which calls them): for
/// block `b` (its columns unpacked first into `patch`, unless [`Columns::Unpacked`]) and
/// channel `o`,
/// `acc[i] = bias + Σ_t row[t] · patch value (i, t)` over weight row `o` (`c` int8 values, `c`
/// a multiple of 4; the layout and the loop of `mac_patch4`), each sum requantized with
/// channel `o`'s multiplier and shift as `graph::fast::requant::FoldedRequant` does (the
/// sign's rounding correction, three instructions; SMLAL onto the high word
/// `(2z + 1)·2^(r−2)`; ASR by `r − 1`; SSAT), the four bytes clamped together (two
/// SSUB8/SEL) and stored as one word at `out[o·plane + 4b..]`. The block and channel loops
/// are in the assembly too: a channel's requantization words are made before its MAC loop
/// and wait on the stack, and the pointers it advances are read and written a few at a
/// time. The shifts must be within `-23..=-2` (not checked here: the caller's
/// `pointwise_folds` did).
#[inline(always)]
pub(crate) fn blocks_loops(call: FittingBlocks<'_>) -> bool {
    let PointwiseBlocks {
        columns,
        patch,
        weights,
        channels: (bias, multiplier, shift),
        requant: (zero_point, [lo, hi]),
        out,
        plane,
        blocks,
    } = call.into_inner();
    let n = bias.len();
    let c = patch.len() / 2;
    let (input, in_plane) = match columns {
        Columns::Unpacked => (core::ptr::null(), 0),
        Columns::Map(input, in_plane) => (input.as_ptr(), in_plane),
        Columns::Output(in_plane) => (out.as_ptr(), in_plane),
    };
    let mut state = BlockState {
        patch: patch.as_ptr(),
        bias: bias.as_ptr(),
        multiplier: multiplier.as_ptr(),
        shift: shift.as_ptr(),
        out: out.as_mut_ptr(),
        plane,
        out_end: out.as_mut_ptr(),
        zero_point_2x1: 2 * i32::from(zero_point) + 1,
        lo: u32::from_le_bytes([lo as u8; 4]),
        hi: u32::from_le_bytes([hi as u8; 4]),
        patch_end: patch.as_ptr_range().end,
        odd: (c / 4 % 2) as u32,
        weights: weights.as_ptr(),
        bias_start: bias.as_ptr(),
        multiplier_start: multiplier.as_ptr(),
        shift_start: shift.as_ptr(),
        input,
        in_plane,
        out_block: out.as_mut_ptr(),
        blocks,
        span: n * plane,
    };
    // SAFETY: `state` describes `n ≥ 1` channels and `blocks ≥ 1` blocks: weight rows
    // `o·c..(o + 1)·c` of `weights`, entries `o` of `bias`, `multiplier` and `shift`, and the
    // words at `out[o·plane + 4b..]`, all in bounds as `PointwiseBlocks::fit` checked
    // (unaligned word loads
    // and stores are allowed on ARMv7-M); the input words at `input[ci·in_plane + 4b..]`,
    // `ci < c`, in bounds as checked (from `out` itself for `Columns::Output`, read before
    // block `b`'s outputs are stored; the block's outputs never reach a later block's
    // columns). The patch's `c/4 ≥ 1` groups of eight words, written by the unpacking and
    // read as in `mac_patch4`, whose loops end when the pointer meets `patch_end` exactly.
    // `state` itself is a `repr(C)` struct of 4-byte fields, word-aligned (LDM, LDRD,
    // STRD). r6 and r7, which the compiler reserves, are pushed first and popped last; the
    // three words pushed per channel are popped in it: the stack is as it was at the end.
    unsafe {
        asm!(
            "push {{r6, r7}}",
            "mov r7, r0",
            // A block: its columns unpacked, unless the caller did.
            "1:",
            "ldr r0, [r7, #64]",
            "ldr r2, [r7, #0]",
            "ldr r6, [r7, #40]",
            "cmp r0, #0",
            "beq 5f",
            "ldr r1, [r7, #68]",
            "add r3, r0, #4",
            "str r3, [r7, #64]",
            "6:",
            unpack_group!(),
            "cmp r2, r6",
            "bne 6b",
            // The channel pointers back to channel 0, the block's outputs four bytes on.
            "5:",
            "ldrd r2, r3, [r7, #52]",
            "ldr r4, [r7, #60]",
            "strd r2, r3, [r7, #4]",
            "str r4, [r7, #12]",
            "ldr r5, [r7, #72]",
            "ldr r2, [r7, #80]",
            "add r2, r2, r5",
            "str r5, [r7, #16]",
            "str r2, [r7, #24]",
            "add r5, r5, #4",
            "str r5, [r7, #72]",
            "ldr r1, [r7, #48]",
            // A channel: its bias, and its requantization's words (the high start, the
            // multiplier, `r − 1`) pushed for after the MAC loop.
            "4:",
            "ldm r7, {{r0, r2, r3, r4}}",
            "ldr r8, [r2], #4",
            "ldr r12, [r3], #4",
            "ldrsb lr, [r4], #1",
            "strd r2, r3, [r7, #4]",
            "str r4, [r7, #12]",
            "mvn lr, lr",
            "ldr r5, [r7, #28]",
            "lsl r5, r5, lr",
            "asr r5, r5, #1",
            "push {{r5, r12, lr}}",
            "mov r9, r8",
            "mov r10, r8",
            "mov r11, r8",
            "ldr r2, [r7, #44]",
            "cmp r2, #0",
            "bne 3f",
            "2:",
            mac_group!(),
            "3:",
            mac_group!(),
            "cmp r0, r6",
            "bne 2b",
            "pop {{r2, r3, r4}}",
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
            "ldrd r3, r4, [r7, #32]",
            "ssub8 r5, r12, r3",
            "sel r12, r12, r3",
            "ssub8 r5, r4, r12",
            "sel r12, r12, r4",
            "ldrd r2, r3, [r7, #16]",
            "str r12, [r2]",
            "add r2, r2, r3",
            "str r2, [r7, #16]",
            "ldr r3, [r7, #24]",
            "cmp r2, r3",
            "bne 4b",
            "ldr r2, [r7, #76]",
            "subs r2, r2, #1",
            "str r2, [r7, #76]",
            "bne 1b",
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
