//! The graph's fast kernels: what runs a node on the Cortex-M4 instead of the portable
//! definitions in [`super::kernels`], bit for bit the same numbers.
//!
//! - [`patch_conv`]: Conv with `group` 1, any kernel h×w, strides and asymmetric pads (the
//!   3×3, the 1×1 pointwise and the 5×3 convolutions of ResNet-8, DS-CNN and MobileNet): four
//!   output positions' patches unpacked once to int16 in the scratch, then every output
//!   channel's int8 weights read straight from the blob against all four (SMLAD).
//! - [`pointwise`]: Conv with a 1×1 kernel and `group` 1, any stride (DS-CNN's and
//!   MobileNet's pointwise layers): a matrix product, four output pixels' input columns
//!   unpacked once to int16 and met by every output channel's weight row with SMLAD.
//! - [`depthwise`]: Conv with `group` = channels and one output per group: each input row
//!   unpacked once to int16 with its padding, then every tap pair one SMLAD.
//! - [`add`]: TFLite's int8 Add with each input's rescaling looked up in a 256-entry table
//!   built once per call (two of TFLite's three multiplies per element gone).
//! - [`average`]: AveragePool and GlobalAveragePool summing four bytes per word load.
//! - [`max_pool`]: MaxPool separably, the window's rows folded column by column first.
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
mod dsp;
pub mod max_pool;
pub mod patch_conv;
pub mod pointwise;
mod requant;

use crate::ops::Kernels;

use super::check::Prepared;
use super::format::{MAX_NODES, NodeOp};

/// The kernel a node runs with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GraphKernel {
    /// [`super::kernels`]: every node, every target.
    Portable,
    PatchConv,
    Pointwise,
    Depthwise,
    AddTable,
    Average,
    MaxRows,
}

/// Most scratch one fast node may take: a node needing more runs the portable code (the
/// model's arena counts at most this much beyond its planned tensors).
pub const MAX_SCRATCH: usize = 16 * 1024;

/// The kernel `prepared` runs with on `kernels`, and the scratch bytes it needs.
pub(crate) fn choose(prepared: &Prepared<'_>, kernels: Kernels) -> (GraphKernel, usize) {
    if kernels != Kernels::CortexM4Dsp {
        return (GraphKernel::Portable, 0);
    }
    let (kernel, scratch) = match prepared {
        Prepared::Conv {
            in_shape,
            out_shape,
            window,
            groups,
            ..
        } => {
            if pointwise::takes(*window, *groups) {
                (GraphKernel::Pointwise, pointwise::scratch_bytes(in_shape.c))
            } else if *groups == 1 {
                let k = in_shape.c * usize::from(window.kernel[0]) * usize::from(window.kernel[1]);
                (GraphKernel::PatchConv, patch_conv::scratch_bytes(k))
            } else if *groups == in_shape.c && out_shape.c == in_shape.c {
                (
                    GraphKernel::Depthwise,
                    depthwise::scratch_bytes(in_shape.w, *window),
                )
            } else {
                (GraphKernel::Portable, 0)
            }
        }
        Prepared::Add { .. } => (GraphKernel::AddTable, add::SCRATCH_BYTES),
        Prepared::Pool {
            average: Some(_), ..
        }
        | Prepared::GlobalAverage { .. } => (GraphKernel::Average, 0),
        Prepared::Pool {
            in_shape,
            average: None,
            ..
        } => (GraphKernel::MaxRows, max_pool::scratch_bytes(in_shape.w)),
        _ => (GraphKernel::Portable, 0),
    };
    if scratch > MAX_SCRATCH {
        return (GraphKernel::Portable, 0);
    }
    (kernel, scratch)
}

/// Each node's kernel, chosen at load (`choose`): two bits per node, the kernel's place in
/// its operator's list (`KernelTable::OPTIONS`), so that a `Model` carries 16 bytes for it
/// and no node is re-decided when it runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelTable {
    bits: [u32; MAX_NODES / 16],
}

impl KernelTable {
    /// The kernels of a Conv, of an Add, of the average pools, of MaxPool; a Gemm has only
    /// the portable one. Code 0 is the portable kernel for every operator.
    const OPTIONS: [[GraphKernel; 4]; 4] = {
        use GraphKernel::*;
        [
            [Portable, PatchConv, Pointwise, Depthwise],
            [Portable, AddTable, Portable, Portable],
            [Portable, Average, Portable, Portable],
            [Portable, MaxRows, Portable, Portable],
        ]
    };

    fn family(op: &NodeOp) -> Option<usize> {
        match op {
            NodeOp::Conv(_) => Some(0),
            NodeOp::Add(_) => Some(1),
            NodeOp::AveragePool { .. } | NodeOp::GlobalAveragePool => Some(2),
            NodeOp::MaxPool(_) => Some(3),
            NodeOp::Gemm(_) => None,
        }
    }

    /// Records `kernel` for node `index` (an operator of `op`'s kind); a kernel outside the
    /// operator's list, or an index past [`MAX_NODES`], stays portable.
    pub(crate) fn set(&mut self, index: usize, op: &NodeOp, kernel: GraphKernel) {
        let code = Self::family(op)
            .and_then(|f| Self::OPTIONS.get(f))
            .and_then(|list| list.iter().position(|&k| k == kernel))
            .unwrap_or(0) as u32;
        if let Some(word) = self.bits.get_mut(index / 16) {
            let shift = 2 * (index % 16);
            *word = (*word & !(3 << shift)) | (code << shift);
        }
    }

    /// The kernel recorded for node `index`, whose operator is `op`.
    pub fn get(&self, index: usize, op: &NodeOp) -> GraphKernel {
        let code = self
            .bits
            .get(index / 16)
            .map_or(0, |word| (word >> (2 * (index % 16))) & 3);
        Self::family(op)
            .and_then(|f| Self::OPTIONS.get(f))
            .and_then(|list| list.get(code as usize))
            .copied()
            .unwrap_or(GraphKernel::Portable)
    }
}

#[cfg(test)]
mod tests;
