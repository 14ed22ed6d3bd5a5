//! Gemm (`[out][in]` weights against the input vector, [`crate::graph::kernels::gemm`]) on
//! the Cortex-M4 with the chain engine's Linear kernel itself (`ops::arm_dsp::linear`, not a
//! second copy): the node's arrays, as the blob stores them, make a [`LinearOp`] without the
//! ReLU, whose kernel unpacks the input once to int16 pairs in the scratch and runs two weight
//! rows at a time with SMLAD; then the Gemm's fused clamp. The same numbers as the portable
//! Gemm: the same requantizer (`ChannelData::channel`'s) on the same sums, then the clamp.

use crate::ops::Channels;
use crate::ops::linear_op::LinearOp;
use crate::ops::scratch::{LINEAR_STEP, dsp_linear_bytes};

use super::super::kernels::ChannelData;
use super::dsp::linear;

/// Whether the kernel takes a Gemm of `in_features` inputs: at least one 32-byte step and
/// whole words (its weight rows are read with LDRD; a blob's word-aligned sections keep them
/// so).
pub fn takes(in_features: usize) -> bool {
    in_features >= LINEAR_STEP && in_features.is_multiple_of(4)
}

/// Scratch bytes for `in_features` inputs: the input as int16 pairs.
pub fn scratch_bytes(in_features: usize) -> usize {
    dsp_linear_bytes(in_features)
}

/// The Gemm of `input` into `output`; `false` (nothing written) when the kernel declines it
/// (weights off a word boundary, a short scratch), and the portable code runs.
pub fn gemm(
    input: &[i8],
    output: &mut [i8],
    weights: &[i8],
    channels: &ChannelData<'_>,
    scratch: &mut [i8],
) -> bool {
    let ChannelData {
        bias,
        multiplier,
        shift,
        zero_point,
        clamp: [lo, hi],
    } = *channels;
    let op = Channels::new(bias, multiplier, shift, zero_point, false)
        .and_then(|c| LinearOp::new(input.len(), weights, c).ok());
    if !op.is_some_and(|op| linear(&op, input, output, scratch)) {
        return false;
    }
    for q in output.iter_mut() {
        *q = (*q).max(lo).min(hi);
    }
    true
}
