//! The validated graph a [`crate::Model`] of a graph blob runs: a view of the header's
//! encoded tensors and nodes and of the data, built by `super::check` once every check passed.

use super::format::{self, Node};
use crate::format::layout::QuantParams;
use crate::shape::MapShape;

/// A validated graph: a view of the header's encoded tensors and nodes and of the data.
#[derive(Clone, Debug)]
pub struct Graph<'a> {
    /// The encoded tensor list (without its length), `tensor_count` entries.
    pub(super) tensors: &'a [u8],
    pub(super) tensor_count: usize,
    /// The encoded node list (without its length), `node_count` entries.
    pub(super) nodes: &'a [u8],
    pub(super) node_count: usize,
    pub(super) data: &'a [u8],
    pub(super) output: u16,
    /// The planned tensors' bytes; the arena holds `scratch_len` more after them.
    pub(super) arena_len: usize,
    /// Scratch of the fast kernels chosen for this target ([`fast::choose`]), the most any
    /// node takes.
    pub(super) scratch_len: usize,
    pub(super) input: MapShape,
    pub(super) output_len: usize,
    pub(super) output_quant: QuantParams,
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

    pub fn input_shape(&self) -> MapShape {
        self.input
    }

    pub fn num_classes(&self) -> usize {
        self.output_len
    }

    pub fn output_quant(&self) -> QuantParams {
        self.output_quant
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
}
