//! Graph models (format version 4, or 2 with a CRC-32): nodes in topological order over tensors whose arena
//! offsets were planned at quantize time by their lifetimes, so residual branches keep
//! their tensors while others are computed. [`Graph`] is the validated view the
//! [`crate::Model`] of a graph blob runs; see [`mod@format`] for the header.
//!
//! Checked once, at load: the order is topological (every tensor is read only after the one
//! node that writes it, which also rules out cycles), every shape is what its producer
//! computes, every tensor lies inside the arena, no two tensors alive at the same node share
//! a byte, and every parameter is in range. After that, running cannot panic.

mod channel_data;
mod check;
pub mod conv_params;
pub mod error;
pub mod fast;
pub mod format;
pub mod in_place;
#[cfg(test)]
mod in_place_tests;
pub mod kernel_table;
pub mod kernels;
mod prepared_node;
mod run;
#[cfg(test)]
pub(crate) mod test_cases;
#[cfg(test)]
pub(crate) mod tests;
pub mod view;

pub(crate) use self::check::load;
#[cfg(any(test, feature = "std"))]
pub(crate) use self::check::{Prepared, prepare};
pub use self::error::{GraphError, SectionProblem};
pub use self::format::{GRAPH_VERSION, GraphHeader, MAX_NODES, MAX_TENSORS, Node, NodeOp};
#[cfg(any(test, feature = "std"))]
pub(crate) use self::run::{NodeKernels, Operands};

pub use self::view::{Graph, NodeInfo};

// The methods that prepare or measure nodes: here, beside `check` and `fast`, because the
// view (`view.rs`) is what `check` builds and must not import them.
impl<'a> Graph<'a> {
    /// Scratch bytes after the planned tensors on a target with `kernels`: the most any
    /// node's chosen kernel takes, with its staging for a node planned in place.
    pub fn scratch_len_for(&self, kernels: crate::ops::Kernels) -> usize {
        self.nodes()
            .map(|n| self.node_scratch_len(&n, kernels))
            .max()
            .unwrap_or(0)
    }

    /// The scratch node `n` takes on a target with `kernels`: its kernel's, and its staging
    /// when it runs in place ([`NodeInfo::in_place`]) and that kernel does not run over its
    /// own input (`fast::node_scratch`, as the loader sizes it).
    pub fn node_scratch_len(&self, n: &NodeInfo, kernels: crate::ops::Kernels) -> usize {
        let prepared = check::prepare(self.data, &n.node, n.index, &n.inputs, &n.output, false);
        match (prepared, n.inputs.first()) {
            (Ok(p), Some((_, d))) => {
                fast::node_scratch(&p, kernels, &n.node.op, (d, &n.output.1)).1
            }
            _ => 0,
        }
    }

    /// How node `n` stages its input on a target with `kernels` when it runs in place (`None`
    /// otherwise, and for a kernel that runs over its own input), as that target's runner
    /// takes it: a pointwise Conv's pieces as long as the model's scratch holds beside the
    /// node's kernel's ([`in_place::Staging::within`]).
    pub fn node_staging(
        &self,
        n: &NodeInfo,
        kernels: crate::ops::Kernels,
    ) -> Option<in_place::Staging> {
        let (_, input) = n.inputs.first()?;
        if !n.in_place() {
            return None;
        }
        let prepared =
            check::prepare(self.data, &n.node, n.index, &n.inputs, &n.output, false).ok()?;
        let (kernel, kernel_scratch) = fast::choose(&prepared, kernels);
        if fast::runs_over_itself(kernel, &prepared) {
            return None;
        }
        let room = self.scratch_len_for(kernels).saturating_sub(kernel_scratch);
        let staging =
            in_place::Staging::of(&n.node.op, format::map(input), format::map(&n.output.1));
        Some(staging?.within(room))
    }

    /// Each node's kernel on a target with `kernels`, chosen as the loader does (for a host
    /// that runs another target's kernels, or a report).
    pub fn kernel_table_for(&self, kernels: crate::ops::Kernels) -> kernel_table::KernelTable {
        let mut table = kernel_table::KernelTable::default();
        for n in self.nodes() {
            if let Ok(prepared) =
                check::prepare(self.data, &n.node, n.index, &n.inputs, &n.output, false)
            {
                table.set(n.index, &n.node.op, fast::choose(&prepared, kernels).0);
            }
        }
        table
    }

    pub fn macs(&self) -> u64 {
        self.nodes().fold(0, |sum, n| sum.saturating_add(n.macs))
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

impl NodeInfo {
    /// Whether the node runs in place, its output over its input staged through the scratch
    /// ([`in_place`]); an Add over one of its inputs is not staged and is not counted.
    pub fn in_place(&self) -> bool {
        self.inputs
            .first()
            .is_some_and(|(_, d)| in_place::staged_scratch(&self.node.op, d, &self.output.1) > 0)
    }
}
