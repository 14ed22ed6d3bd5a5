//! Linear (fully connected) layer with optional fused ReLU: the weight matrix times the input
//! vectors through [`gemm`], [`MAX_ROWS`] output features by up to [`MAX_COLUMNS`] images per
//! call. Microcontrollers without the DSP extension (the Cortex-M0) run one dot product per
//! row instead ([`LinearOp::run_rows`]): the same numbers in less flash.

use super::chunks::chunk_len;
use super::dot::dot;
#[cfg(any(test, feature = "std"))]
use super::gemm::GemmKernel;
use super::gemm::{MAX_ACC, MAX_COLUMNS, MAX_ROWS, gemm};
use super::kernels::Kernels;
pub use super::linear_op::LinearOp;

impl LinearOp<'_> {
    /// Bytes of scratch [`Self::run`] uses with `kernels` (`ops::scratch`).
    pub fn scratch_len(&self, kernels: Kernels) -> usize {
        match kernels {
            Kernels::CortexM4Dsp => super::scratch::dsp_linear_bytes(self.in_features),
            Kernels::Portable | Kernels::Direct => 0,
        }
    }

    /// `output` (out features) from `input` (in features), with the target's fastest path;
    /// `scratch` holds at least [`Self::scratch_len`] bytes for [`Kernels::NATIVE`].
    pub fn run(&self, input: &[i8], output: &mut [i8], scratch: &mut [i8]) {
        // The Cortex-M4's SMLAD kernel, which unpacks the input into the scratch; what it
        // declines (short or misaligned rows) takes one plain dot product per row, which is
        // smaller in flash than the blocked gemm and as fast without SIMD.
        #[cfg(qcnn_arm_dsp)]
        if !super::arm_dsp::linear(self, input, output, scratch) {
            self.run_rows(input, output);
        }
        // Other microcontrollers (Cortex-M0): one dot product per row, for flash.
        #[cfg(qcnn_direct_kernels)]
        {
            const { assert!(matches!(Kernels::NATIVE, Kernels::Direct)) };
            let _ = scratch;
            self.run_rows(input, output);
        }
        #[cfg(not(any(qcnn_arm_dsp, qcnn_direct_kernels)))]
        {
            let _ = scratch;
            self.run_portable(input, output);
        }
    }

    /// One dot product per output feature: the same results as [`Self::run_portable`].
    pub fn run_rows(&self, input: &[i8], output: &mut [i8]) {
        let x = input.get(..self.in_features).unwrap_or(input);
        let rows = self.weights.chunks_exact(self.in_features.max(1));
        for ((row, (bias, requant)), out) in rows.zip(self.channels.iter()).zip(output) {
            *out = requant.apply_outlined(bias.wrapping_add(dot(row, x)));
        }
    }

    /// The same results as [`Self::run`] through [`gemm`] (portable except on x86-64).
    pub fn run_portable(&self, input: &[i8], output: &mut [i8]) {
        // Exactly one image, even if a caller passed longer slices.
        let k = self.in_features.max(1);
        let out_len = self.channels.bias.len().min(output.len());
        self.run_gemm(
            gemm,
            input.get(..k).unwrap_or(input),
            &mut output[..out_len],
        );
    }

    /// Several images at once: `inputs` holds whole input vectors back to back, `outputs`
    /// receives their output vectors in the same order; each result equals [`Self::run`]'s.
    ///
    /// A block of [`MAX_ROWS`] weight rows (50 KB for the seed model's first Linear) is
    /// reused by every image before the next block is loaded, so the weights stream from
    /// memory once per batch instead of once per image.
    pub fn run_batch(&self, inputs: &[i8], outputs: &mut [i8], scratch: &mut [i8]) {
        // Microcontrollers have no cache to reuse weights from: the Cortex-M4's SMLAD
        // kernel and the Cortex-M0's rows go per image.
        #[cfg(any(qcnn_arm_dsp, qcnn_direct_kernels))]
        {
            let out_len = self.channels.bias.len().max(1);
            let images = inputs.chunks_exact(self.in_features.max(1));
            for (input, output) in images.zip(outputs.chunks_exact_mut(out_len)) {
                self.run(input, output, scratch);
            }
        }
        #[cfg(not(any(qcnn_arm_dsp, qcnn_direct_kernels)))]
        {
            let _ = scratch;
            self.run_gemm(gemm, inputs, outputs);
        }
    }

    /// [`Self::run_batch`] with a given gemm kernel (the `std` prepared model's choice).
    #[cfg(any(test, feature = "std"))]
    pub(crate) fn run_batch_with(&self, kernel: GemmKernel, inputs: &[i8], outputs: &mut [i8]) {
        self.run_gemm(kernel, inputs, outputs);
    }

    /// [`Self::run_batch`] through `gemm` (generic, so that the default kernel inlines).
    fn run_gemm<G: Fn(&[i8], &[i8], usize, &mut [i32])>(
        &self,
        gemm: G,
        inputs: &[i8],
        outputs: &mut [i8],
    ) {
        let k = self.in_features.max(1);
        let out_len = self.channels.bias.len().max(1);
        // The weight blocks are split off by hand: a `chunks` of run-time size zipped with
        // the others made the optimizer keep a division-by-zero panic.
        let block_len = chunk_len(k, MAX_ROWS);
        let mut rest = self.weights;
        for (block, channels) in self.channels.chunks(MAX_ROWS).enumerate() {
            let (weights, next) = rest.split_at(block_len.min(rest.len()));
            if weights.is_empty() {
                break;
            }
            rest = next;
            let first_feature = block * MAX_ROWS;
            // The image groups too, for the same reason: zipping two `chunks` divides by
            // their sizes, and on thumbv6m that division's zero check survived.
            let (mut rest_inputs, mut rest_outputs) = (inputs, &mut *outputs);
            while !rest_inputs.is_empty() && !rest_outputs.is_empty() {
                let (columns, next) =
                    rest_inputs.split_at(chunk_len(k, MAX_COLUMNS).min(rest_inputs.len()));
                rest_inputs = next;
                let group_len = chunk_len(out_len, MAX_COLUMNS).min(rest_outputs.len());
                let (outputs, next) = core::mem::take(&mut rest_outputs).split_at_mut(group_len);
                rest_outputs = next;
                let n = (columns.len() / k).max(1);
                let mut acc = [0_i32; MAX_ACC];
                gemm(weights, columns, k, &mut acc);
                // `acc` is rows × images; image `j` writes its features at `j · out_len`.
                let acc_rows = acc.chunks_exact(n);
                for (feature, (sums, (bias, requant))) in acc_rows.zip(channels.iter()).enumerate()
                {
                    let image_outputs = outputs.iter_mut().skip(first_feature + feature);
                    for (out, &sum) in image_outputs.step_by(out_len).zip(sums) {
                        *out = requant.apply_outlined(bias.wrapping_add(sum));
                    }
                }
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
        let op = LinearOp::new(3, &weights, data.channels()).unwrap();
        let mut out = [0; 2];
        op.run(&[4, 5, 6], &mut out, &mut []);
        // (10 + 32)/2 + 3 = 24; (−10 − 32)/2 + 3 = −18.
        assert_eq!(out, [24, -18]);
        let data = ChannelData::new(vec![10, -10], half(), vec![0, 0], 3, true);
        let op = LinearOp::new(3, &weights, data.channels()).unwrap();
        op.run(&[4, 5, 6], &mut out, &mut []);
        assert_eq!(out, [24, 3]);
    }

    #[test]
    fn new_refuses_what_the_kernels_cannot_run() {
        use crate::ops::op_error::OpError;
        let data = ChannelData::random(&mut SplitMix::new(1), 2);
        let weights = [1; 6];
        assert!(LinearOp::new(3, &weights, data.channels()).is_ok());
        let refused = |in_features, weights: &[i8]| {
            LinearOp::new(in_features, weights, data.channels()).unwrap_err()
        };
        assert_eq!(refused(4, &weights), OpError::LengthMismatch);
        assert_eq!(refused(3, &weights[..5]), OpError::LengthMismatch);
        assert_eq!(refused(0, &[]), OpError::EmptyOutput);
        assert_eq!(
            refused(crate::ops::dot::MAX_DOT_LEN + 1, &weights),
            OpError::DotTooLong
        );
        let none = ChannelData::random(&mut SplitMix::new(2), 0);
        assert_eq!(
            LinearOp::new(3, &[], none.channels()).unwrap_err(),
            OpError::EmptyOutput
        );
    }

    #[test]
    fn randomized_against_reference() {
        let mut rng = SplitMix::new(11);
        for _ in 0..300 {
            let (in_features, out_features) = (rng.below(300) + 1, rng.below(20) + 1);
            let weights = rng.weights(in_features * out_features);
            let data = ChannelData::random(&mut rng, out_features);
            let input = rng.i8s(in_features);
            let op = LinearOp::new(in_features, &weights, data.channels()).unwrap();
            let mut out = vec![0; out_features];
            op.run(
                &input,
                &mut out,
                &mut vec![0x5A; op.scratch_len(Kernels::NATIVE)],
            );
            assert_eq!(out, reference::linear(&input, &weights, &data));
            // The Cortex-M4's fallback for the rows its SMLAD kernel declines, and all a
            // `Kernels::Direct` target (Cortex-M0) runs: no scratch, and none in its arena.
            assert_eq!(op.scratch_len(Kernels::Direct), 0);
            let mut rows = vec![0; out_features];
            op.run_rows(&input, &mut rows);
            assert_eq!(rows, out);
        }
    }

    #[test]
    fn batches_match_one_image_at_a_time() {
        let mut rng = SplitMix::new(12);
        for _ in 0..200 {
            let (in_features, out_features) = (rng.below(400) + 1, rng.below(40) + 1);
            let images = rng.below(11) + 1;
            let weights = rng.weights(in_features * out_features);
            let data = ChannelData::random(&mut rng, out_features);
            let inputs = rng.i8s(images * in_features);
            let op = LinearOp::new(in_features, &weights, data.channels()).unwrap();
            let mut batched = vec![0x55; images * out_features];
            op.run_batch(
                &inputs,
                &mut batched,
                &mut vec![0x5A; op.scratch_len(Kernels::NATIVE)],
            );
            let one_by_one: Vec<i8> = inputs
                .chunks(in_features)
                .flat_map(|input| reference::linear(input, &weights, &data))
                .collect();
            assert_eq!(batched, one_by_one, "{images} images of {in_features}");
        }
    }
}
