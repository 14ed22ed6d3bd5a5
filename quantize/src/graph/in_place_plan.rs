//! Which nodes of a graph run in place (issue 12's graph RAM): the core's planner lays the
//! arena out with every candidate in place, then each candidate that does not pay for itself
//! (the plan's cost, e.g. arena plus scratch on the target, no larger without it) runs out of
//! place again, as staging costs instructions.

use qcnn_core::plan::{Lifetime, place_sharing};

/// A node that may write its output over its input (`qcnn_core::graph::in_place`): its input
/// dies there, and the loader accepts the alias for its kind and shapes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StagedCandidate {
    /// Tensor indices in the blob's numbering.
    pub input: usize,
    pub output: usize,
    /// Scratch its staging takes when it runs in place.
    pub scratch: usize,
}

/// An arena layout: offsets, length, and the staged nodes that ended up in place.
pub struct ArenaPlan {
    pub offsets: Vec<usize>,
    pub arena: usize,
    /// The shares the planner was given (Adds and the chosen staged nodes).
    pub shares: Vec<Option<usize>>,
    pub in_place: Vec<StagedCandidate>,
    /// The most scratch one of `in_place` stages through.
    pub staging: usize,
}

impl ArenaPlan {
    /// The arena plus the largest staging: the bytes a plan adds up to where the kernels
    /// need no scratch of their own.
    pub fn arena_and_staging(&self) -> usize {
        self.arena + self.staging
    }
}

/// The arena with the Adds' shares and the `chosen` staged nodes in place.
pub fn plan_arena(
    lifetimes: &[Lifetime],
    add_shares: &[Option<usize>],
    candidates: &[StagedCandidate],
    chosen: &[bool],
) -> ArenaPlan {
    let mut shares = add_shares.to_vec();
    shares.resize(lifetimes.len(), None);
    for (c, _) in candidates
        .iter()
        .zip(chosen.iter().chain(std::iter::repeat(&false)))
        .filter(|(_, on)| **on)
    {
        shares[c.output] = Some(c.input);
    }
    let mut offsets = vec![0; lifetimes.len()];
    let arena = place_sharing(lifetimes, &shares, &mut offsets);
    let in_place: Vec<StagedCandidate> = candidates
        .iter()
        .zip(chosen)
        .filter(|(c, on)| **on && offsets[c.input] == offsets[c.output])
        .map(|(c, _)| *c)
        .collect();
    let staging = in_place.iter().map(|c| c.scratch).max().unwrap_or(0);
    ArenaPlan {
        offsets,
        arena,
        shares,
        in_place,
        staging,
    }
}

/// Every candidate in place, then each one (largest staging first) back out of place where
/// that does not raise `cost` (the bytes of RAM a plan takes).
pub fn choose_in_place(
    lifetimes: &[Lifetime],
    add_shares: &[Option<usize>],
    candidates: &[StagedCandidate],
    cost: &dyn Fn(&ArenaPlan) -> usize,
) -> ArenaPlan {
    let mut chosen = vec![true; candidates.len()];
    let mut best = plan_arena(lifetimes, add_shares, candidates, &chosen);
    let mut best_cost = cost(&best);
    let mut order: Vec<usize> = (0..candidates.len()).collect();
    order.sort_by_key(|&k| std::cmp::Reverse(candidates[k].scratch));
    for k in order {
        chosen[k] = false;
        let without = plan_arena(lifetimes, add_shares, candidates, &chosen);
        let without_cost = cost(&without);
        if without_cost <= best_cost {
            (best, best_cost) = (without, without_cost);
        } else {
            chosen[k] = true;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(len: usize, born: usize, dies: usize) -> Lifetime {
        Lifetime { len, born, dies }
    }

    #[test]
    fn a_chain_of_in_place_nodes_lives_in_one_map_and_a_useless_one_stays_out() {
        // image -> a (stem) -> b (depthwise, in place) -> c (pointwise, in place) -> logits.
        let lifetimes = [
            t(100, 0, 0),
            t(1000, 0, 1),
            t(1000, 1, 2),
            t(1000, 2, 3),
            t(10, 3, 4),
        ];
        let candidates = [
            StagedCandidate {
                input: 1,
                output: 2,
                scratch: 40,
            },
            StagedCandidate {
                input: 2,
                output: 3,
                scratch: 80,
            },
        ];
        let none = plan_arena(&lifetimes, &[], &candidates, &[false, false]);
        assert_eq!(none.arena, 2000);
        let plan = choose_in_place(&lifetimes, &[], &candidates, &ArenaPlan::arena_and_staging);
        assert_eq!(plan.arena, 1100, "{:?}", plan.offsets);
        assert_eq!(plan.in_place, candidates);
        assert_eq!(plan.staging, 80);
        assert!(plan.offsets[1] == plan.offsets[2] && plan.offsets[2] == plan.offsets[3]);
        // A tiny last node whose bytes fit beside its input anyway stays out of place.
        let lifetimes = [t(1000, 0, 1), t(1000, 1, 2), t(10, 2, 3)];
        let candidates = [StagedCandidate {
            input: 1,
            output: 2,
            scratch: 8,
        }];
        let plan = choose_in_place(&lifetimes, &[], &candidates, &ArenaPlan::arena_and_staging);
        assert!(plan.in_place.is_empty());
        assert_eq!(plan.arena, 2000);
    }
}
