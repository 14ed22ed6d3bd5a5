//! Gemm (`[out][in]` weights against the input vector, [`crate::graph::kernels::gemm`]) on
//! the Cortex-M4 with the chain engine's Linear loop (`ops::arm_dsp::linear_rows`, not a
//! second copy): the input unpacked once to int16 pairs in the scratch, then two weight rows
//! at a time with SMLAD; each output through its channel's requantizer and the fused clamp.

use crate::ops::scratch::{LINEAR_STEP, dsp_linear_bytes};

use super::super::kernels::ChannelData;
use super::dsp::linear_rows;

/// Whether the loop takes a Gemm of `in_features` inputs: at least one 32-byte step and whole
/// words (its weight rows are read with LDRD; a blob's word-aligned sections keep them so).
pub fn takes(in_features: usize) -> bool {
    in_features >= LINEAR_STEP && in_features.is_multiple_of(4)
}

/// Scratch bytes for `in_features` inputs: the input as int16 pairs.
pub fn scratch_bytes(in_features: usize) -> usize {
    dsp_linear_bytes(in_features)
}

/// The Gemm of `input` into `output`; `false` (nothing written) when the loop declines it
/// (weights off a word boundary, a short scratch), and the portable code runs.
pub fn gemm(
    input: &[i8],
    output: &mut [i8],
    weights: &[i8],
    channels: &ChannelData<'_>,
    scratch: &mut [i8],
) -> bool {
    let finish = (0..channels.bias.len()).map(|o| {
        let (bias, requant) = channels.channel(o);
        move |dot: i32| channels.finish(&requant, bias.wrapping_add(dot))
    });
    linear_rows(weights, input.len(), input, output, finish, scratch)
}
