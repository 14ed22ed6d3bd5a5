//! Linear (fully connected) layer with optional fused ReLU: the weight matrix times the input
//! as a single [`gemm`] column, [`MAX_ROWS`] output features per call.

use super::gemm::{MAX_ROWS, gemm};
use super::{Channels, chunk_len};

/// One validated Linear layer; public for the same reason as
/// [`super::conv2d::Conv2dOp`].
#[derive(Clone, Copy, Debug)]
pub struct LinearOp<'a> {
    pub in_features: usize,
    /// `[out][in]`, PyTorch's layout.
    pub weights: &'a [i8],
    pub channels: Channels<'a>,
}

impl LinearOp<'_> {
    /// `output` (out features) from `input` (in features), with the target's fastest path.
    pub fn run(&self, input: &[i8], output: &mut [i8]) {
        // The Cortex-M4's SMLAD kernel, when the input fits its stack buffer.
        #[cfg(qcnn_arm_dsp)]
        if super::arm_dsp::linear(self, input, output) {
            return;
        }
        self.run_portable(input, output);
    }

    /// The same results as [`Self::run`] through [`gemm`] (portable except on x86-64).
    pub fn run_portable(&self, input: &[i8], output: &mut [i8]) {
        let k = self.in_features.max(1);
        // Exactly one column, even if a caller passed a longer slice.
        let column = input.get(..k).unwrap_or(input);
        // The weight blocks are split off by hand: a `chunks` of run-time size zipped with
        // the others made the optimizer keep a division-by-zero panic.
        let block_len = chunk_len(k, MAX_ROWS);
        let mut rest = self.weights;
        for (channels, out) in self
            .channels
            .chunks(MAX_ROWS)
            .zip(output.chunks_mut(MAX_ROWS))
        {
            let (weights, next) = rest.split_at(block_len.min(rest.len()));
            if weights.is_empty() {
                break;
            }
            rest = next;
            let mut acc = [0_i32; MAX_ROWS];
            gemm(weights, column, k, &mut acc);
            for ((out, (bias, requant)), &sum) in out.iter_mut().zip(channels.iter()).zip(&acc) {
                *out = requant.apply(bias.wrapping_add(sum));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::{self, ChannelData};
    use crate::test_util::SplitMix;

    #[test]
    fn hand_worked() {
        // Two outputs over three inputs, multiplier 1/2, output zero point 3.
        let half = || vec![1 << 30, 1 << 30];
        let data = ChannelData::new(vec![10, -10], half(), vec![0, 0], 3, false);
        let weights = [1, 2, 3, -1, -2, -3];
        let op = LinearOp {
            in_features: 3,
            weights: &weights,
            channels: data.channels(),
        };
        let mut out = [0; 2];
        op.run(&[4, 5, 6], &mut out);
        // (10 + 32)/2 + 3 = 24; (−10 − 32)/2 + 3 = −18.
        assert_eq!(out, [24, -18]);
        let data = ChannelData::new(vec![10, -10], half(), vec![0, 0], 3, true);
        let op = LinearOp {
            channels: data.channels(),
            ..op
        };
        op.run(&[4, 5, 6], &mut out);
        assert_eq!(out, [24, 3]);
    }

    #[test]
    fn randomized_against_reference() {
        let mut rng = SplitMix(11);
        for _ in 0..300 {
            let (in_features, out_features) = (rng.below(300) + 1, rng.below(20) + 1);
            let weights = rng.weights(in_features * out_features);
            let data = ChannelData::random(&mut rng, out_features);
            let input = rng.i8s(in_features);
            let op = LinearOp {
                in_features,
                weights: &weights,
                channels: data.channels(),
            };
            let mut out = vec![0; out_features];
            op.run(&input, &mut out);
            assert_eq!(out, reference::linear(&input, &weights, &data));
        }
    }
}
