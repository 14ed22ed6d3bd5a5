//! The graph's fast kernels: what runs a node on the Cortex-M4 instead of the portable
//! definitions in [`super::kernels`], bit for bit the same numbers.
//!
//! - [`patch_conv`]: Conv with `group` 1, any kernel h×w, strides and asymmetric pads (the
//!   3×3, the 1×1 pointwise and the 5×3 convolutions of ResNet-8, DS-CNN and MobileNet): four
//!   output positions' patches unpacked once to int16 in the scratch, then every output
//!   channel's int8 weights read straight from the blob against all four (SMLAD).
//! - [`pointwise`]: Conv with a 1×1 kernel and `group` 1, any stride (DS-CNN's and
//!   MobileNet's pointwise layers, and with its residual Add fused, ResNet-8's downsample
//!   convs): a matrix product, four output pixels' input columns unpacked once to int16 and
//!   met by every output channel's weight row with SMLAD, requantized in the same assembly.
//! - [`depthwise`]: Conv with one input channel per group (`group` = input channels, any
//!   outputs per group): each input row widened once to int16 with its padding, then a
//!   3-wide kernel's rows summed in one pass over an output row with SMLAD, the row
//!   requantized in a tight loop.
//!   Its `stem_bands`: the same for a one-channel input (`group` 1: the image stems), the
//!   image widened in bands of rows as large as the model's scratch holds.
//! - [`add`]: TFLite's int8 Add with each input's rescaling looked up in a 256-entry table
//!   built once per call (two of TFLite's three multiplies per element gone).
//! - [`gemm`]: Gemm on the chain engine's Linear kernel itself (`ops::arm_dsp::linear`): the
//!   input unpacked once to int16, two weight rows at a time with SMLAD, then the clamp.
//! - [`average`]: AveragePool and GlobalAveragePool summing four bytes per word load.
//! - [`max_pool`]: MaxPool separably, the window's rows folded column by column first,
//!   four bytes a word (SSUB8, SEL).
//!
//! Which kernel a node takes is decided from the node alone by `choose`, once, when the
//! model is loaded: the loader records each node's kernel in a [`KernelTable`] (two bits a
//! node, kept in the `Model`) and sizes the scratch the model's arena adds after the planned
//! tensors; running a node looks its kernel up and decides nothing. A node no fast kernel
//! takes, or one whose scratch would not fit, runs the portable code. The firmware's `dsp_check` binary
//! compares every kernel here with the portable one on a Cortex-M4 under qemu; the host
//! tests (`graph::tests`) do the same with the portable stand-ins of the DSP instructions.

pub mod add;
pub mod average;
pub mod depthwise;
pub(crate) mod dsp;
pub mod gemm;
pub mod max_pool;
pub mod patch_conv;
pub mod pointwise;
mod requant;

use crate::ops::kernels::Kernels;

use super::format::{NodeOp, TensorDesc};
use super::in_place::staged_scratch;
use super::prepared_node::Prepared;

pub use super::kernel_table::{GraphKernel, KernelTable};

/// Most scratch one fast node may take: a node needing more runs the portable code (the
/// model's arena counts at most this much beyond its planned tensors).
pub const MAX_SCRATCH: usize = 16 * 1024;

/// The kernel `prepared` runs with on `kernels`, and the scratch bytes it needs.
pub(crate) fn choose(prepared: &Prepared<'_>, kernels: Kernels) -> (GraphKernel, usize) {
    if kernels != Kernels::CortexM4Dsp {
        return (GraphKernel::Portable, 0);
    }
    let (kernel, scratch) = match prepared {
        Prepared::Conv(conv) => {
            let (in_shape, window) = (conv.in_shape, conv.window);
            if pointwise::takes(window, usize::from(conv.groups)) {
                (GraphKernel::Pointwise, pointwise::scratch_bytes(in_shape.c))
            } else if conv.one_input_per_group()
                && depthwise::scratch_bytes(in_shape, conv.out_shape.c, window) <= MAX_SCRATCH
            {
                // One input channel per group: a depthwise conv, or a one-channel stem.
                (
                    GraphKernel::Depthwise,
                    depthwise::scratch_bytes(in_shape, conv.out_shape.c, window),
                )
            } else if conv.groups == 1 {
                (
                    GraphKernel::PatchConv,
                    patch_conv::scratch_bytes(conv.per_output(), window, conv.out_shape.c),
                )
            } else {
                (GraphKernel::Portable, 0)
            }
        }
        Prepared::ConvAdd(conv, _) if conv.groups == 1 && pointwise::takes(conv.window, 1) => (
            GraphKernel::Pointwise,
            pointwise::conv_add_scratch_bytes(conv.in_shape.c, conv.out_shape.c),
        ),
        Prepared::ConvAdd(conv, _) if conv.groups == 1 => (
            GraphKernel::PatchConv,
            patch_conv::conv_add_scratch_bytes(conv.per_output(), conv.window, conv.out_shape.c),
        ),
        Prepared::Add { .. } => (GraphKernel::AddTable, add::SCRATCH_BYTES),
        Prepared::Pool {
            average: Some(_), ..
        }
        | Prepared::GlobalAverage { .. } => (GraphKernel::Average, 0),
        Prepared::Pool {
            in_shape,
            window,
            average: None,
            ..
        } => (
            GraphKernel::MaxRows,
            max_pool::scratch_bytes(in_shape.w, *window),
        ),
        Prepared::Gemm { weights, channels } => {
            // The input's length: the weights hold one row of it per output.
            let in_features = weights.len() / channels.bias.len().max(1);
            if gemm::takes(in_features) {
                (GraphKernel::GemmRows, gemm::scratch_bytes(in_features))
            } else {
                (GraphKernel::Portable, 0)
            }
        }
        _ => (GraphKernel::Portable, 0),
    };
    if scratch > MAX_SCRATCH {
        return (GraphKernel::Portable, 0);
    }
    (kernel, scratch)
}

/// Whether `kernel` runs `prepared`, planned over its own input, with no staging
/// (`run::run_over_itself`: the pointwise Conv, and the depthwise Conv whose input plane
/// it widens whole).
pub(crate) fn runs_over_itself(kernel: GraphKernel, prepared: &Prepared<'_>) -> bool {
    let Prepared::Conv(conv) = prepared else {
        return false;
    };
    let (in_shape, out_shape, window) = (conv.in_shape, conv.out_shape, conv.window);
    match kernel {
        GraphKernel::Pointwise => pointwise::runs_over_itself(in_shape, out_shape, window),
        GraphKernel::Depthwise => depthwise::runs_over_itself(in_shape, out_shape, window),
        _ => false,
    }
}

/// The kernel node `op` (checked into `prepared`) runs with on `kernels`, and the scratch it
/// takes: its kernel's, plus its staging when the planner put `output` over `input` and
/// that kernel does not run over its own input. The one rule the loader and the reports
/// (and so the planner, which weighs the loaded figure) share.
pub(crate) fn node_scratch(
    prepared: &Prepared<'_>,
    kernels: Kernels,
    op: &NodeOp,
    (input, output): (&TensorDesc, &TensorDesc),
) -> (GraphKernel, usize) {
    let (kernel, scratch) = choose(prepared, kernels);
    let staging = match runs_over_itself(kernel, prepared) {
        true => 0,
        false => staged_scratch(op, input, output),
    };
    (kernel, scratch.saturating_add(staging))
}

#[cfg(test)]
mod tests;
