//! The least live peak over every order the graph's nodes can run in (issue 12: compare the
//! planner with "the best order you can find"). The planner lays out the file's order; a
//! branching graph (a residual block's shortcut) may run its branches in another order, with
//! other tensors alive at once. This searches them all: the bytes alive after a prefix of
//! nodes depend only on which nodes ran, not on their order, so the least peak of what is left
//! is remembered per set of nodes run (a dynamic program over the graph's down-sets, few for
//! the chains and residual blocks of small CNNs).

use std::collections::HashMap;

/// A node as the search sees it: the tensors it reads and the one it writes.
pub struct OrderNode<'a> {
    pub inputs: &'a [usize],
    pub output: usize,
}

/// Sets of nodes run beyond which the search gives up (a graph of many parallel branches).
const MAX_STATES: usize = 200_000;

/// The least, over every topological order of `nodes`, of the most bytes alive at once (each
/// tensor in bytes of its own: `sizes[t]`; a tensor no node writes is the image, alive until
/// its last reader; `output` lives to the end). `None` when the graph has more than 64 nodes
/// or too many orders to search.
pub fn best_order_live_peak(nodes: &[OrderNode], sizes: &[usize], output: usize) -> Option<usize> {
    if nodes.len() > 64 {
        return None;
    }
    let mut producer = vec![None; sizes.len()];
    for (i, node) in nodes.iter().enumerate() {
        producer[node.output] = Some(i);
    }
    let mut readers = vec![0_u64; sizes.len()];
    for (i, node) in nodes.iter().enumerate() {
        for &t in node.inputs {
            readers[t] |= 1 << i;
        }
    }
    let search = Search {
        nodes,
        sizes,
        output,
        producer,
        readers,
        all: if nodes.len() == 64 {
            u64::MAX
        } else {
            (1 << nodes.len()) - 1
        },
        memo: HashMap::new(),
    };
    search.run()
}

struct Search<'a> {
    nodes: &'a [OrderNode<'a>],
    sizes: &'a [usize],
    output: usize,
    producer: Vec<Option<usize>>,
    readers: Vec<u64>,
    all: u64,
    memo: HashMap<u64, usize>,
}

impl Search<'_> {
    fn run(mut self) -> Option<usize> {
        self.least_peak_after(0)
    }

    /// The least peak of the nodes not in `done`, run after those in `done`.
    fn least_peak_after(&mut self, done: u64) -> Option<usize> {
        if done == self.all {
            return Some(0);
        }
        if let Some(&peak) = self.memo.get(&done) {
            return Some(peak);
        }
        if self.memo.len() >= MAX_STATES {
            return None;
        }
        let mut best = usize::MAX;
        for (i, node) in self.nodes.iter().enumerate() {
            let bit = 1 << i;
            let ready = done & bit == 0
                && node
                    .inputs
                    .iter()
                    .all(|&t| self.producer[t].is_none_or(|p| done & (1 << p) != 0));
            if !ready {
                continue;
            }
            let now = self.alive_while(done, i);
            if now >= best {
                continue;
            }
            let rest = self.least_peak_after(done | bit)?;
            best = best.min(now.max(rest));
        }
        self.memo.insert(done, best);
        Some(best)
    }

    /// Bytes alive while node `running` runs after the nodes of `done`: every tensor written
    /// (or the image) and still to be read by `running` or a later node, or the output.
    fn alive_while(&self, done: u64, running: usize) -> usize {
        let written = done | (1 << running);
        self.sizes
            .iter()
            .enumerate()
            .filter(|&(t, _)| {
                self.producer[t].is_none_or(|p| written & (1 << p) != 0)
                    && (t == self.output || self.readers[t] & !done != 0)
            })
            .map(|(_, &size)| size)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(inputs: &[usize], output: usize) -> OrderNode<'_> {
        OrderNode { inputs, output }
    }

    #[test]
    fn a_chain_has_one_order_and_its_peak_is_two_neighbours() {
        // image(0) -> a(1) -> b(2) -> c(3)
        let nodes = [node(&[0], 1), node(&[1], 2), node(&[2], 3)];
        assert_eq!(
            best_order_live_peak(&nodes, &[10, 400, 300, 5], 3),
            Some(700)
        );
    }

    /// image(0) -> s(1); two branches s -> a1(2) -> a2(3) and s -> b1(4) -> b2(5), each
    /// shrinking a large map; add(a2, b2) -> out(6). Written interleaved (a1, b1, a2, b2),
    /// both large maps are alive at once; running one branch to its end first halves that.
    #[test]
    fn finishing_a_branch_first_lowers_the_peak_of_an_interleaved_file() {
        let sizes = [10, 100, 1000, 10, 1000, 10, 10];
        let interleaved = [
            node(&[0], 1),
            node(&[1], 2),
            node(&[1], 4),
            node(&[2], 3),
            node(&[4], 5),
            node(&[3, 5], 6),
        ];
        // The file's order, as the exporter's lifetimes (born, dies) see it: a1, s and b1
        // alive at node 2.
        let lifetimes: Vec<_> = [(0, 0), (0, 2), (1, 3), (3, 5), (2, 4), (4, 5), (5, 6)]
            .into_iter()
            .zip(sizes)
            .map(|((born, dies), len)| qcnn_core::plan::Lifetime { len, born, dies })
            .collect();
        assert_eq!(qcnn_core::plan::live_peak(&lifetimes, 6), 2100);
        // s, a1, a2, b1, b2: at most s, a1 and a2, or s, a2 and b1: 1,110 bytes.
        assert_eq!(best_order_live_peak(&interleaved, &sizes, 6), Some(1110));
    }
}
