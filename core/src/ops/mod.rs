//! The operators, one file each. They run on a validated model only: every shape, slice
//! length and parameter was checked by `Model::from_bytes`, and the kernels are written with
//! iterators and checked slicing so that even inconsistent parameters yield wrong numbers,
//! never a panic.
//!
//! Flatten has no kernel: activations are stored C,H,W-contiguous, which is exactly
//! PyTorch's `flatten(1)` order, so flattening a map only relabels its shape.

#[cfg(target_arch = "aarch64")]
mod aarch64;
#[cfg(qcnn_arm_dsp)]
pub(crate) mod arm_dsp;
pub mod channels;
pub(crate) mod chunks;
pub mod conv2d;
pub mod conv2d_op;
pub mod dot;
pub(crate) mod fused_add;
pub mod gemm;
pub(crate) mod gemm_portable;
pub mod kernels;
pub(crate) mod kx3_rows;
pub mod linear;
pub mod linear_op;
pub mod maxpool2d;
pub mod op_error;
pub(crate) mod pointwise_columns;
pub mod requant;
pub(crate) mod runs;
pub(crate) mod scratch;
pub mod tier;
#[cfg(target_arch = "x86_64")]
pub mod x86;

pub use channels::Channels;
pub use kernels::Kernels;
pub use op_error::OpError;

/// The Cortex-M4 Linear in a scratch shorter than its whole unpacked input (the streaming
/// schedule's), unpacking it block by block; `false` if it declines. For the firmware's
/// `dsp_check`, which compares it with the portable code.
#[cfg(qcnn_arm_dsp)]
#[doc(hidden)]
pub fn dsp_linear_blocked(
    op: &linear::LinearOp<'_>,
    input: &[i8],
    output: &mut [i8],
    scratch: &mut [i8],
) -> bool {
    arm_dsp::linear_blocked(op, input, output, scratch)
}

/// One validated layer's computation.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Op<'a> {
    Conv2d(conv2d::Conv2dOp<'a>),
    MaxPool2d(maxpool2d::MaxPool2dOp),
    /// No data movement; see the module docs.
    Flatten,
    Linear(linear::LinearOp<'a>),
}

impl Op<'_> {
    /// Whether the layer produces a new tensor (Flatten does not).
    pub fn computes(&self) -> bool {
        !matches!(self, Self::Flatten)
    }

    /// Bytes of scratch the layer's kernels take from the arena with `kernels` (see
    /// [`scratch`]).
    pub fn scratch_len(&self, kernels: Kernels) -> usize {
        match self {
            Self::Conv2d(op) => op.scratch_len(kernels),
            Self::MaxPool2d(_) | Self::Flatten => 0,
            Self::Linear(op) => op.scratch_len(kernels),
        }
    }

    // Not inlined: one copy serves `run_batch`'s loop (flash on a microcontroller).
    #[inline(never)]
    pub fn run(&self, input: &[i8], output: &mut [i8], scratch: &mut [i8]) {
        match self {
            Self::Conv2d(op) => op.run(input, output, scratch),
            Self::MaxPool2d(op) => op.run(input, output),
            Self::Flatten => {}
            Self::Linear(op) => op.run(input, output, scratch),
        }
    }

    /// Several images' inputs (`in_len` bytes each, back to back) into their outputs
    /// (`out_len` bytes each), with one image's scratch. Linear reuses its weights across the
    /// images where a cache makes that pay (not on microcontrollers, where it too goes image by
    /// image, through this loop: one loop less in flash); the other layers go one image at a
    /// time.
    pub fn run_batch(
        &self,
        inputs: &[i8],
        outputs: &mut [i8],
        (in_len, out_len): (usize, usize),
        scratch: &mut [i8],
    ) {
        #[cfg(not(any(qcnn_arm_dsp, qcnn_direct_kernels)))]
        if let Self::Linear(op) = self {
            op.run_batch(inputs, outputs, scratch);
            return;
        }
        let images = inputs.chunks_exact(in_len.max(1));
        for (input, output) in images.zip(outputs.chunks_exact_mut(out_len.max(1))) {
            self.run(input, output, scratch);
        }
    }
}
