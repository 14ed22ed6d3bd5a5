//! Graph models (format version 4, or 2 with a CRC-32): nodes in topological order over tensors whose arena
//! offsets were planned at quantize time by their lifetimes, so residual branches keep
//! their tensors while others are computed. [`Graph`] is the validated view the
//! [`crate::Model`] of a graph blob runs; see [`mod@format`] for the header.
//!
//! Checked once, at load: the order is topological (every tensor is read only after the one
//! node that writes it, which also rules out cycles), every shape is what its producer
//! computes, every tensor lies inside the arena, no two tensors alive at the same node share
//! a byte, and every parameter is in range. After that, running cannot panic.

mod check;
pub mod error;
pub mod fast;
pub mod format;
pub mod kernels;
mod run;
#[cfg(test)]
pub(crate) mod tests;

pub(crate) use self::check::load;
#[cfg(any(test, feature = "std"))]
pub(crate) use self::check::{Prepared, prepare};
pub use self::error::{GraphError, SectionProblem};
pub use self::format::{GRAPH_VERSION, GraphHeader, MAX_NODES, MAX_TENSORS, Node, NodeOp};
#[cfg(any(test, feature = "std"))]
pub(crate) use self::run::NodeKernels;

use crate::format::QuantParams;
use crate::shape::MapShape;

/// A validated graph: a view of the header's encoded tensors and nodes and of the data.
#[derive(Clone, Debug)]
pub struct Graph<'a> {
    /// The encoded tensor list (without its length), `tensor_count` entries.
    tensors: &'a [u8],
    tensor_count: usize,
    /// The encoded node list (without its length), `node_count` entries.
    nodes: &'a [u8],
    node_count: usize,
    data: &'a [u8],
    output: u16,
    /// The planned tensors' bytes; the arena holds `scratch_len` more after them.
    arena_len: usize,
    /// Scratch of the fast kernels chosen for this target ([`fast::choose`]), the most any
    /// node takes.
    scratch_len: usize,
    input: MapShape,
    output_len: usize,
    output_quant: QuantParams,
}

/// One node as [`Graph::nodes`] lists it, with its tensors' descriptions.
#[derive(Clone, Debug)]
pub struct NodeInfo {
    pub index: usize,
    pub node: Node,
    /// (tensor index, description) of each input.
    pub inputs: heapless::Vec<(u16, format::TensorDesc), 2>,
    pub output: (u16, format::TensorDesc),
    pub macs: u64,
}

impl<'a> Graph<'a> {
    /// The planned tensors' bytes (the header's `arena_len`).
    pub fn arena_len(&self) -> usize {
        self.arena_len
    }

    /// Scratch bytes after the planned tensors on this target.
    pub fn scratch_len(&self) -> usize {
        self.scratch_len
    }

    /// Scratch bytes after the planned tensors on a target with `kernels`: the most any
    /// node's chosen kernel takes.
    pub fn scratch_len_for(&self, kernels: crate::ops::Kernels) -> usize {
        self.nodes()
            .filter_map(|n| {
                let prepared =
                    check::prepare(self.data, &n.node, n.index, &n.inputs, &n.output, false);
                Some(fast::choose(&prepared.ok()?, kernels).1)
            })
            .max()
            .unwrap_or(0)
    }

    pub fn input_shape(&self) -> MapShape {
        self.input
    }

    pub fn num_classes(&self) -> usize {
        self.output_len
    }

    pub fn output_quant(&self) -> QuantParams {
        self.output_quant
    }

    pub fn macs(&self) -> u64 {
        self.nodes().fold(0, |sum, n| sum.saturating_add(n.macs))
    }

    /// The slices and indices a [`crate::Model`] keeps: tensors, tensor count, nodes, node
    /// count, data, output tensor.
    pub(crate) fn parts(&self) -> (&'a [u8], usize, &'a [u8], usize, &'a [u8], u16) {
        (
            self.tensors,
            self.tensor_count,
            self.nodes,
            self.node_count,
            self.data,
            self.output,
        )
    }

    /// A validated graph again from [`Self::parts`] and the model's figures.
    pub(crate) fn from_parts(
        (tensors, tensor_count): (&'a [u8], usize),
        (nodes, node_count): (&'a [u8], usize),
        data: &'a [u8],
        output: u16,
        (arena_len, scratch_len, input, output_len, output_quant): (
            usize,
            usize,
            MapShape,
            usize,
            QuantParams,
        ),
    ) -> Self {
        Self {
            tensors,
            tensor_count,
            nodes,
            node_count,
            data,
            output,
            arena_len,
            scratch_len,
            input,
            output_len,
            output_quant,
        }
    }

    pub fn node_count(&self) -> usize {
        self.node_count
    }

    pub fn tensor_count(&self) -> usize {
        self.tensor_count
    }

    /// The output tensor's index.
    pub fn output(&self) -> u16 {
        self.output
    }

    /// Tensor `index`'s description.
    pub fn tensor(&self, index: u16) -> Option<format::TensorDesc> {
        self.tensor_list().nth(usize::from(index))
    }

    /// Every tensor's description, in index order.
    pub fn tensor_list(&self) -> impl Iterator<Item = format::TensorDesc> + 'a {
        let mut bytes = self.tensors;
        (0..self.tensor_count).map_while(move |_| {
            let (tensor, rest) = postcard::take_from_bytes(bytes).ok()?;
            bytes = rest;
            Some(tensor)
        })
    }

    /// The nodes in order, with their tensors (for reports and profiles).
    pub fn nodes(&self) -> impl Iterator<Item = NodeInfo> + '_ {
        let mut bytes = self.nodes;
        (0..self.node_count).map_while(move |index| {
            let (node, rest): (Node, _) = postcard::take_from_bytes(bytes).ok()?;
            bytes = rest;
            let described = |t: u16| Some((t, self.tensor(t)?));
            let inputs: heapless::Vec<(u16, format::TensorDesc), 2> =
                node.inputs.iter().filter_map(|&t| described(t)).collect();
            let output = described(node.output)?;
            let macs = check::node_macs(&node, &inputs, &output.1);
            Some(NodeInfo {
                index,
                node,
                inputs,
                output,
                macs,
            })
        })
    }
}
