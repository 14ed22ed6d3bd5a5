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
pub mod conv2d;
pub mod dot;
pub mod gemm;
pub mod linear;
pub mod maxpool2d;
pub mod requant;
pub(crate) mod scratch;
pub mod tier;
#[cfg(target_arch = "x86_64")]
pub mod x86;

use core::slice::{ChunksExact, ChunksExactMut};

use crate::quant::Requantizer;

/// Per-output-channel bias and requantization, read straight from the blob.
#[derive(Clone, Copy, Debug)]
pub struct Channels<'a> {
    pub bias: &'a [[u8; 4]],
    pub multiplier: &'a [[u8; 4]],
    pub shift: &'a [i8],
    pub zero_point: i8,
    pub relu: bool,
}

impl<'a> Channels<'a> {
    /// `(bias, requantizer)` for every output channel, in order.
    pub fn iter(&self) -> impl Iterator<Item = (i32, Requantizer)> + 'a {
        let (zero_point, relu) = (self.zero_point, self.relu);
        self.bias.iter().zip(self.multiplier).zip(self.shift).map(
            move |((bias, multiplier), &shift)| {
                let requant =
                    Requantizer::new(i32::from_le_bytes(*multiplier), shift, zero_point, relu);
                (i32::from_le_bytes(*bias), requant)
            },
        )
    }

    /// The channels in consecutive blocks of `n` (the last one may be shorter), matching
    /// `weights.chunks(n · row_len)`.
    pub fn chunks(&self, n: usize) -> impl Iterator<Item = Channels<'a>> + 'a {
        let (zero_point, relu) = (self.zero_point, self.relu);
        let n = n.max(1);
        self.bias
            .chunks(n)
            .zip(self.multiplier.chunks(n))
            .zip(self.shift.chunks(n))
            .map(move |((bias, multiplier), shift)| Channels {
                bias,
                multiplier,
                shift,
                zero_point,
                relu,
            })
    }
}

/// `chunks_exact` with a size that is never 0 (validated models have no empty
/// dimension), so the compiler can drop the zero-size panic.
#[inline]
fn rows(s: &[i8], n: usize) -> ChunksExact<'_, i8> {
    s.chunks_exact(n.max(1))
}

/// `a·b` as a chunk length: saturating and at least 1, so that `chunks` and divisions by it
/// provably cannot panic (the panic-never check links only if the optimizer sees that).
#[inline]
pub(crate) fn chunk_len(a: usize, b: usize) -> usize {
    a.saturating_mul(b).max(1)
}

#[inline]
fn rows_mut(s: &mut [i8], n: usize) -> ChunksExactMut<'_, i8> {
    s.chunks_exact_mut(n.max(1))
}

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

/// Which set of kernels runs the layers. It decides how much scratch each layer takes from
/// the arena, so [`crate::Model::arena_len_for`] gives the arena of a target other than the
/// one running (a firmware's build script, on the host, sizing the arena of a Cortex-M4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernels {
    /// The portable kernels: Cortex-M0/M0+, hosts (whose x86-64 SIMD kernels keep their
    /// buffers on the stack), and any target without the DSP extension.
    Portable,
    /// The Cortex-M4/M7 DSP paths (`thumbv7em`, or `+dsp`): see `ops::arm_dsp`.
    CortexM4Dsp,
}

impl Kernels {
    /// The kernels of the target this crate is compiled for.
    pub const NATIVE: Self = if cfg!(qcnn_arm_dsp) {
        Self::CortexM4Dsp
    } else {
        Self::Portable
    };

    /// The kernels a Rust target gets, by its name (as core's `build.rs` decides: every
    /// `thumbv7em` target has the DSP extension).
    pub fn for_target(target: &str) -> Self {
        if target.starts_with("thumbv7em") {
            Self::CortexM4Dsp
        } else {
            Self::Portable
        }
    }
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
    /// images; the other layers go one image at a time.
    pub fn run_batch(
        &self,
        inputs: &[i8],
        outputs: &mut [i8],
        (in_len, out_len): (usize, usize),
        scratch: &mut [i8],
    ) {
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
