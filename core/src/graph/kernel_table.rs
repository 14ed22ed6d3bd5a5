//! Which kernel each node of a graph runs with, as the loader chose it (`fast::choose`, once,
//! at load): a leaf beside the view, which keeps the table, and the fast kernels, which fill it.

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
    /// Gemm on the chain's Linear kernel, two weight rows a pass with SMLAD (`fast::gemm`).
    GemmRows,
}

/// Each node's kernel, chosen at load (`choose`): two bits per node, the kernel's place in
/// its operator's list (`KernelTable::OPTIONS`), so that a `Model` carries 16 bytes for it
/// and no node is re-decided when it runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelTable {
    bits: [u32; MAX_NODES / 16],
}

impl KernelTable {
    /// The kernels of a Conv (and of a Conv with its residual Add fused, which runs the patch
    /// conv or the portable code), of an Add, of the average pools, of MaxPool, of a Gemm.
    /// Code 0 is the portable kernel for every operator.
    const OPTIONS: [[GraphKernel; 4]; 5] = {
        use GraphKernel::*;
        [
            [Portable, PatchConv, Pointwise, Depthwise],
            [Portable, AddTable, Portable, Portable],
            [Portable, Average, Portable, Portable],
            [Portable, MaxRows, Portable, Portable],
            [Portable, GemmRows, Portable, Portable],
        ]
    };

    fn family(op: &NodeOp) -> usize {
        match op {
            NodeOp::Conv(_) | NodeOp::ConvAdd(_) => 0,
            NodeOp::Add(_) => 1,
            NodeOp::AveragePool { .. } | NodeOp::GlobalAveragePool => 2,
            NodeOp::MaxPool(_) => 3,
            NodeOp::Gemm(_) => 4,
        }
    }

    /// Records `kernel` for node `index` (an operator of `op`'s kind); a kernel outside the
    /// operator's list, or an index past [`MAX_NODES`], stays portable.
    pub(crate) fn set(&mut self, index: usize, op: &NodeOp, kernel: GraphKernel) {
        let code = Self::OPTIONS
            .get(Self::family(op))
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
        Self::OPTIONS
            .get(Self::family(op))
            .and_then(|list| list.get(code as usize))
            .copied()
            .unwrap_or(GraphKernel::Portable)
    }
}
