//! The arena plan of a model, step by step: where each layer's input, scratch and output sit
//! in the arena and when each tensor dies. The same rules `infer` follows (`crate::arena`),
//! spelled out for reports (`qcnn profile`, the quantize report) so users can see which
//! layer sets the arena and what to change in their network to fit a part.

use crate::arena::End;
use crate::model::{CheckedLayer, Model};
use crate::ops::Kernels;

/// Bytes `offset..offset + len` of the arena.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Placement {
    pub offset: usize,
    pub len: usize,
}

impl Placement {
    /// The first byte after it.
    pub fn end(&self) -> usize {
        self.offset.saturating_add(self.len)
    }
}

/// One layer of the plan.
#[derive(Clone, Copy, Debug)]
pub struct PlanStep<'a> {
    /// The layer's index in the model.
    pub index: usize,
    pub layer: CheckedLayer<'a>,
    /// Its input: the image for the first layer, else the previous layer's output. It dies
    /// when this step ends (a Flatten passes it on unmoved).
    pub input: Placement,
    /// The kernels' working memory, between input and output; empty when they need none.
    pub scratch: Placement,
    /// Its output, which lives until the step of [`Self::output_dies_after`] ends.
    pub output: Placement,
    /// The index of the layer that consumes the output last (a Flatten passes a tensor on
    /// unmoved); `None` for the logits, which outlive the inference.
    pub output_dies_after: Option<usize>,
    /// Bytes of arena this step needs: input + scratch + output (0 for a Flatten).
    pub need: usize,
}

impl Model<'_> {
    /// The arena plan with `kernels` ([`Kernels::NATIVE`] for this target's), in an arena
    /// of [`Model::arena_len_for`] bytes; the steps whose `need` equals that length set it.
    pub fn plan(&self, kernels: Kernels) -> impl Iterator<Item = PlanStep<'_>> + '_ {
        let arena_len = self.arena_len_for(kernels);
        let layers: [Option<CheckedLayer<'_>>; crate::format::MAX_LAYERS] = {
            let mut all = self.layers();
            core::array::from_fn(|_| all.next())
        };
        // Each tensor's last consumer: the next layer that computes.
        let consumer_after = move |index: usize| {
            layers
                .iter()
                .enumerate()
                .skip(index + 1)
                .find(|(_, l)| l.as_ref().is_some_and(|l| l.arena_need(kernels) != Some(0)))
                .map(|(i, _)| i)
        };
        let at = move |end: End, len: usize| Placement {
            offset: match end {
                End::Front => 0,
                End::Back => arena_len.saturating_sub(len),
            },
            len,
        };
        let mut end = End::Front;
        self.layers().enumerate().map(move |(index, layer)| {
            let (in_len, out_len) = (layer.input().len(), layer.output().len());
            let input = at(end, in_len);
            let need = layer.arena_need(kernels).unwrap_or(usize::MAX);
            let moves = need != 0;
            let output = if moves {
                at(end.other(), out_len)
            } else {
                input
            };
            let scratch_len = if moves { layer.scratch_len(kernels) } else { 0 };
            let scratch_start = match end {
                End::Front => input.end(),
                End::Back => output.end(),
            };
            if moves {
                end = end.other();
            }
            PlanStep {
                index,
                layer,
                input,
                scratch: Placement {
                    offset: scratch_start,
                    len: scratch_len,
                },
                output,
                output_dies_after: consumer_after(index),
                need,
            }
        })
    }
}

/// A tensor's lifetime for [`place_by_lifetimes`]: alive from the node that writes it to the
/// last node that reads it, both included (a graph's image is born at node 0, its logits die
/// after the last node).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lifetime {
    pub len: usize,
    pub born: usize,
    pub dies: usize,
}

impl Lifetime {
    fn meets(&self, other: &Lifetime) -> bool {
        self.born <= other.dies && other.born <= self.dies
    }
}

/// The graph planner: gives each tensor an arena offset such that no two tensors alive at the
/// same node share a byte, and returns the arena length. Largest tensors first, each at the
/// lowest offset clear of the tensors already placed that are alive with it (greedy by size,
/// first fit); `offsets` must be as long as `tensors`. A residual's kept tensor is alive up to
/// its Add, so nothing computed meanwhile can overwrite it.
pub fn place_by_lifetimes(tensors: &[Lifetime], offsets: &mut [usize]) -> usize {
    const UNPLACED: usize = usize::MAX;
    offsets.iter_mut().for_each(|o| *o = UNPLACED);
    let mut arena = 0;
    for _ in 0..tensors.len().min(offsets.len()) {
        // The largest tensor not placed yet (the first on ties).
        let Some((next, t)) = tensors
            .iter()
            .enumerate()
            .filter(|(i, _)| offsets.get(*i) == Some(&UNPLACED))
            .fold(
                None,
                |best: Option<(usize, &Lifetime)>, (i, t)| match best {
                    Some((_, b)) if b.len >= t.len => best,
                    _ => Some((i, t)),
                },
            )
        else {
            break;
        };
        let clashes = |offset: usize| {
            tensors.iter().zip(offsets.iter()).any(|(other, &at)| {
                at != UNPLACED
                    && other.meets(t)
                    && at < offset.saturating_add(t.len)
                    && offset < at.saturating_add(other.len)
            })
        };
        // Candidates: the start, and the end of every placed tensor alive with this one.
        let candidates = core::iter::once(0).chain(
            tensors
                .iter()
                .zip(offsets.iter())
                .filter(|(other, at)| **at != UNPLACED && other.meets(t))
                .map(|(other, &at)| at.saturating_add(other.len)),
        );
        let offset = candidates.filter(|&c| !clashes(c)).min().unwrap_or(arena);
        if let Some(o) = offsets.get_mut(next) {
            *o = offset;
        }
        arena = arena.max(offset.saturating_add(t.len));
    }
    arena
}

/// The most bytes alive at once at any node: no placement of these lifetimes needs less.
pub fn live_peak(tensors: &[Lifetime], nodes: usize) -> usize {
    (0..=nodes)
        .map(|node| {
            tensors
                .iter()
                .filter(|t| t.born <= node && node <= t.dies)
                .map(|t| t.len)
                .sum()
        })
        .max()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_blob::Spec;
    use crate::test_util::SplitMix;

    #[test]
    fn lifetimes_keep_a_residual_apart_and_reuse_dead_tensors() {
        // image(0) -> a(1) -> b(2) -> add(a, b)(3) -> logits(4): a lives across b.
        let t = |len, born, dies| Lifetime { len, born, dies };
        let tensors = [
            t(100, 0, 0),
            t(400, 0, 2),
            t(400, 1, 2),
            t(400, 2, 3),
            t(10, 3, 4),
        ];
        let mut offsets = [0; 5];
        let arena = place_by_lifetimes(&tensors, &mut offsets);
        assert_eq!(live_peak(&tensors, 4), 1200);
        assert_eq!(arena, 1200, "{offsets:?}");
        for (i, a) in tensors.iter().enumerate() {
            for (j, b) in tensors.iter().enumerate().skip(i + 1) {
                let share = offsets[i] < offsets[j] + b.len && offsets[j] < offsets[i] + a.len;
                assert!(!(a.meets(b) && share), "{i} and {j} overlap: {offsets:?}");
            }
        }
        // The logits outlive a and b, so they reuse their bytes.
        assert_eq!(offsets[4], 0);
    }

    #[test]
    fn seed_model_plan_ping_pongs_with_scratch_between() {
        let blob = Spec::seed(&mut SplitMix(1)).to_blob();
        let model = Model::from_bytes(&blob).unwrap();
        let kernels = Kernels::CortexM4Dsp;
        let arena = model.arena_len_for(kernels);
        assert_eq!(arena, 9408 + 4951);
        let steps: Vec<PlanStep> = model.plan(kernels).collect();
        assert_eq!(steps.len(), 5);
        let place = |offset, len| Placement { offset, len };
        // conv1: the image at the front, its output at the back.
        assert_eq!(steps[0].input, place(0, 784));
        assert_eq!(steps[0].output, place(arena - 6272, 6272));
        assert_eq!(steps[0].scratch.offset, 784);
        assert_eq!(steps[0].output_dies_after, Some(1));
        // conv2 sets the arena: input at the back, output at the front, scratch between.
        assert_eq!(steps[1].input, place(arena - 6272, 6272));
        assert_eq!(steps[1].output, place(0, 3136));
        assert_eq!(steps[1].scratch, place(3136, 4951));
        assert_eq!(steps[1].need, arena);
        // Flatten moves nothing: conv2's output lives on until the first Linear.
        assert_eq!(steps[2].need, 0);
        assert_eq!(steps[2].output, steps[2].input);
        assert_eq!(steps[1].output_dies_after, Some(3));
        assert_eq!(steps[3].input, place(0, 3136));
        assert_eq!(steps[3].output, place(arena - 256, 256));
        assert_eq!(steps[4].output, place(0, 10));
        assert_eq!(steps[4].output_dies_after, None);
        for step in &steps {
            // No step's tensors overlap, and all fit the arena.
            assert!(
                step.need == 0
                    || step.input.end() <= step.output.offset
                    || step.output.end() <= step.input.offset
            );
            assert!(
                step.input.end() <= arena
                    && step.output.end() <= arena
                    && step.scratch.end() <= arena
            );
        }
    }
}
