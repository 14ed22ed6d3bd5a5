//! The arena plan of a model, step by step: where each layer's input, scratch and output sit
//! in the arena and when each tensor dies. The same rules `infer` follows (`crate::arena`),
//! spelled out for reports (`qcnn profile`, the quantize report) so users can see which
//! layer sets the arena and what to change in their network to fit a part.

use crate::arena::{self, End};
use crate::format::layout::MAX_LAYERS;
use crate::model::{CheckedLayer, Model};
use crate::ops::scratch::dsp_linear_min_bytes;
use crate::ops::{Kernels, Op};
use crate::stream::StreamPair;

/// How a model runs in an arena of a given length: which Conv2d layers stream their output
/// rows into the next layer (`crate::stream`) instead of writing their whole map, and the
/// arena that takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Schedule {
    /// Bit `i`: layer `i` streams into layer `i + 1`.
    streamed: u32,
    /// Bytes of arena this schedule needs.
    pub arena_len: usize,
}

impl Schedule {
    /// Every layer writes its whole map, in `arena_len` bytes.
    pub(crate) fn whole(arena_len: usize) -> Self {
        Self {
            streamed: 0,
            arena_len,
        }
    }

    /// Whether layer `index` streams into the next one (the two run as one fused node).
    pub fn streams(&self, index: usize) -> bool {
        index < 32 && self.streamed & (1 << index) != 0
    }

    /// How many pairs stream.
    pub fn streamed_pairs(&self) -> u32 {
        self.streamed.count_ones()
    }
}

impl Model<'_> {
    /// The fastest schedule within `budget` bytes of arena with `kernels`: a layer pair
    /// streams only where its whole-map need exceeds the budget and streaming needs less.
    /// Its `arena_len` may still exceed `budget`: then no schedule fits (see
    /// [`Self::min_arena_len_for`]).
    pub fn schedule_within(&self, kernels: Kernels, budget: usize) -> Schedule {
        if self.graph().is_some() {
            // A graph's arena was planned at quantize time; none of its nodes stream.
            return Schedule::whole(self.arena_len_for(kernels));
        }
        let (mut streamed, mut arena_len) = (0_u32, self.input_len());
        // The previous layer, as far as the pair it may make with this one needs it: no
        // lookahead iterator and no second decoded layer, as this runs on the device's stack,
        // under the decoding of each layer.
        let mut previous: Option<Pending<'_>> = None;
        for (index, layer) in self.layers().enumerate() {
            if let Some(first) = previous.take() {
                match first.streamed_need(&layer, kernels, budget) {
                    Some(stream) => {
                        streamed |= 1 << first.index;
                        arena_len = arena_len.max(stream);
                        continue;
                    }
                    None => arena_len = arena_len.max(first.need),
                }
            }
            previous = Some(Pending::new(index, &layer, kernels, budget));
        }
        if let Some(last) = previous {
            arena_len = arena_len.max(last.need);
        }
        Schedule {
            streamed,
            arena_len,
        }
    }

    /// The least arena the model runs in with `kernels`: every pair that saves arena by
    /// streaming streams. [`Model::arena_len_for`] is the fastest schedule's (none streams).
    pub fn min_arena_len_for(&self, kernels: Kernels) -> usize {
        self.schedule_within(kernels, 0).arena_len
    }

    /// The schedule `infer` takes in an arena of `len` bytes: the whole-map one if it fits,
    /// else the fastest that fits; `None` if none does.
    // Not inlined: `infer` calls it, and its frame would otherwise stay on the device's
    // stack through the whole inference.
    #[inline(never)]
    pub fn schedule_for_arena(&self, kernels: Kernels, len: usize) -> Option<Schedule> {
        let whole = if kernels == Kernels::NATIVE {
            self.arena_len()
        } else {
            self.arena_len_for(kernels)
        };
        if len >= whole {
            return Some(Schedule::whole(whole));
        }
        [len, 0]
            .into_iter()
            .map(|budget| self.schedule_within(kernels, budget))
            .find(|s| s.arena_len <= len)
    }
}

/// A layer the planner has seen, waiting for the next one: whether the two stream.
struct Pending<'a> {
    index: usize,
    op: Op<'a>,
    /// Its whole-map need.
    whole: usize,
    /// What it needs within the budget, if it does not stream.
    need: usize,
}

impl<'a> Pending<'a> {
    // Not inlined, here and below: their temporaries stay off the stack while the next layer
    // is decoded.
    #[inline(never)]
    fn new(index: usize, layer: &CheckedLayer<'a>, kernels: Kernels, budget: usize) -> Self {
        // A layer whose kernels adapt to a shorter scratch takes what the budget leaves.
        let whole = layer.arena_need(kernels).unwrap_or(usize::MAX);
        Self {
            index,
            op: *layer.op(),
            whole,
            need: whole.min(budget.max(least_need(layer, kernels))),
        }
    }

    /// The arena of this layer streaming into `next`, if they can and should: only where
    /// their whole-map need exceeds `budget` and streaming needs less.
    #[inline(never)]
    fn streamed_need(
        &self,
        next: &CheckedLayer<'_>,
        kernels: Kernels,
        budget: usize,
    ) -> Option<usize> {
        if self.index >= 32 {
            return None;
        }
        let pair = StreamPair::new(&self.op, next.op())?;
        let whole_pair = self
            .whole
            .max(next.arena_need(kernels).unwrap_or(usize::MAX));
        let stream = pair.arena_need(kernels).unwrap_or(usize::MAX);
        (whole_pair > budget && stream < whole_pair).then_some(stream)
    }
}

/// The least arena `layer` runs in with `kernels`: its input and output and the least
/// scratch its kernels take (the Cortex-M4 Linear unpacks its input block by block in a
/// shorter scratch); [`CheckedLayer::arena_need`] for every other layer.
#[inline(never)]
fn least_need(layer: &CheckedLayer<'_>, kernels: Kernels) -> usize {
    let whole = layer.arena_need(kernels).unwrap_or(usize::MAX);
    match (layer.op(), kernels) {
        (Op::Linear(op), Kernels::CortexM4Dsp) => {
            let scratch = dsp_linear_min_bytes(op.in_features, op.channels.bias.len());
            arena::layer_need(layer.input().len(), scratch, layer.output().len())
                .map_or(whole, |least| least.min(whole))
        }
        _ => whole,
    }
}

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

/// A step's part in streaming (`crate::stream`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Streaming {
    /// The layer reads and writes whole tensors.
    No,
    /// A Conv2d computing its output rows on demand for the next layer: its output is never
    /// materialised; the step's `output` is the next layer's, and its `scratch` holds the
    /// bands and rows both layers work on.
    IntoNext,
    /// The layer reading them: its `input` is those rows, inside the previous step's
    /// scratch.
    FromPrevious,
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
    /// Bytes of arena this step needs: input + scratch + output (0 for a Flatten); for a
    /// streamed pair, both steps show the pair's.
    pub need: usize,
    pub streaming: Streaming,
}

impl Model<'_> {
    /// The arena plan with `kernels` ([`Kernels::NATIVE`] for this target's), in an arena
    /// of [`Model::arena_len_for`] bytes (every layer writes its whole map); the steps whose
    /// `need` equals that length set it.
    pub fn plan(&self, kernels: Kernels) -> impl Iterator<Item = PlanStep<'_>> + '_ {
        let whole = Schedule::whole(self.arena_len_for(kernels));
        self.plan_with(kernels, whole)
    }

    /// The arena plan of `schedule` (from [`Self::schedule_within`] or
    /// [`Self::schedule_for_arena`]), in an arena of `schedule.arena_len` bytes.
    pub fn plan_with(
        &self,
        kernels: Kernels,
        schedule: Schedule,
    ) -> impl Iterator<Item = PlanStep<'_>> + '_ {
        let arena_len = schedule.arena_len;
        let layers: [Option<CheckedLayer<'_>>; MAX_LAYERS] = {
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
        let between = move |end: End, input: Placement, output: Placement, len: usize| Placement {
            offset: match end {
                End::Front => input.end(),
                End::Back => output.end(),
            },
            len,
        };
        let mut end = End::Front;
        // The streamed pair in progress: its output, its scratch and its need.
        let mut pair: Option<(Placement, Placement, usize)> = None;
        self.layers().enumerate().map(move |(index, layer)| {
            let (in_len, out_len) = (layer.input().len(), layer.output().len());
            if let Some((output, scratch, need)) = pair.take() {
                end = end.other();
                return PlanStep {
                    index,
                    layer,
                    input: scratch,
                    scratch: Placement {
                        offset: scratch.offset,
                        len: 0,
                    },
                    output,
                    output_dies_after: consumer_after(index),
                    need,
                    streaming: Streaming::FromPrevious,
                };
            }
            let input = at(end, in_len);
            let next = layers.get(index + 1).copied().flatten();
            let streamed = next.filter(|_| schedule.streams(index)).and_then(|next| {
                let pair = StreamPair::new(layer.op(), next.op())?;
                Some((next, pair.arena_need(kernels).unwrap_or(usize::MAX)))
            });
            if let Some((next, need)) = streamed {
                let output = at(end.other(), next.output().len());
                let scratch_len = need.saturating_sub(in_len).saturating_sub(output.len);
                let scratch = between(end, input, output, scratch_len);
                pair = Some((output, scratch, need));
                return PlanStep {
                    index,
                    layer,
                    input,
                    scratch,
                    output,
                    output_dies_after: Some(index + 1),
                    need,
                    streaming: Streaming::IntoNext,
                };
            }
            let moves = layer.arena_need(kernels) != Some(0);
            let output = if moves {
                at(end.other(), out_len)
            } else {
                input
            };
            // A kernel that adapts to a shorter scratch gets what the arena leaves.
            let room = arena_len.saturating_sub(in_len.saturating_add(out_len));
            let scratch_len = if moves {
                layer.scratch_len(kernels).min(room)
            } else {
                0
            };
            let scratch = between(end, input, output, scratch_len);
            if moves {
                end = end.other();
            }
            PlanStep {
                index,
                layer,
                input,
                scratch,
                output,
                output_dies_after: consumer_after(index),
                need: if moves {
                    in_len + scratch_len + out_len
                } else {
                    0
                },
                streaming: Streaming::No,
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
    place_sharing(tensors, &[], offsets)
}

/// [`place_by_lifetimes`] where tensor `i` may also take the offset of tensor `shares[i]`
/// (missing entries: none), a tensor that dies at the node that writes `i`: that node writes
/// over its input, as an Add does element by element, a fused Conv + Add over its residual, or
/// a node the loader lets stage its input (`graph::in_place`; its output may be shorter or
/// longer than the input). Those are the overlaps the loader accepts (`graph::check`); the
/// planner takes one whenever the partner (either of the two) is already placed and nothing
/// else alive there clashes.
pub fn place_sharing(
    tensors: &[Lifetime],
    shares: &[Option<usize>],
    offsets: &mut [usize],
) -> usize {
    const UNPLACED: usize = usize::MAX;
    offsets.iter_mut().for_each(|o| *o = UNPLACED);
    let mut arena = 0;
    // Tensor `out` written over tensor `input`, which dies at the node that writes it.
    let written_over = |out: usize, input: usize| {
        let (Some(o), Some(i)) = (tensors.get(out), tensors.get(input)) else {
            return false;
        };
        out != input && i.dies == o.born
    };
    // The tensors whose offset `a` may take: the input it writes over, and the output written
    // over it (a chain of in-place nodes shares one offset).
    let partners = |a: usize, b: usize| {
        (shares.get(a) == Some(&Some(b)) && written_over(a, b))
            || (shares.get(b) == Some(&Some(a)) && written_over(b, a))
    };
    for _ in 0..tensors.len().min(offsets.len()) {
        // The largest tensor not placed yet (the first on ties), taking first those with a
        // placed partner: an in-place chain gets its offset before a larger tensor alive with
        // its end claims it (MobileNet's last pointwise, out of place, beside its input).
        let placed_partner = |i: usize| {
            (0..offsets.len()).any(|j| offsets.get(j) != Some(&UNPLACED) && partners(i, j))
        };
        let Some((next, t)) = tensors
            .iter()
            .enumerate()
            .filter(|(i, _)| offsets.get(*i) == Some(&UNPLACED))
            .map(|(i, t)| (i, t, placed_partner(i)))
            .fold(
                None,
                |best: Option<(usize, &Lifetime, bool)>, (i, t, p)| match best {
                    Some((_, b, bp)) if (bp, b.len) >= (p, t.len) => best,
                    _ => Some((i, t, p)),
                },
            )
            .map(|(i, t, _)| (i, t))
        else {
            break;
        };
        let partner = |i: usize| partners(next, i);
        let clashes = |offset: usize| {
            tensors
                .iter()
                .zip(offsets.iter())
                .enumerate()
                .any(|(i, (other, &at))| {
                    at != UNPLACED
                        && !(at == offset && partner(i))
                        && other.meets(t)
                        && at < offset.saturating_add(t.len)
                        && offset < at.saturating_add(other.len)
                })
        };
        // Candidates: a placed partner's offset, else the start and the end of every placed
        // tensor alive with this one.
        let shared_at = offsets
            .iter()
            .enumerate()
            .filter(|&(i, &at)| at != UNPLACED && partner(i))
            .map(|(_, &at)| at)
            .find(|&at| !clashes(at));
        let offset = match shared_at {
            Some(at) => at,
            _ => core::iter::once(0)
                .chain(
                    tensors
                        .iter()
                        .zip(offsets.iter())
                        .filter(|(other, at)| **at != UNPLACED && other.meets(t))
                        .map(|(other, &at)| at.saturating_add(other.len)),
                )
                .filter(|&c| !clashes(c))
                .min()
                .unwrap_or(arena),
        };
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

    /// image(0) -> a(1) -> b(2) -> add(a, b)(3) -> logits(4): a lives across b.
    fn residual_add() -> [Lifetime; 5] {
        let t = |len, born, dies| Lifetime { len, born, dies };
        [
            t(100, 0, 0),
            t(400, 0, 2),
            t(400, 1, 2),
            t(400, 2, 3),
            t(10, 3, 4),
        ]
    }

    #[test]
    fn lifetimes_keep_a_residual_apart_and_reuse_dead_tensors() {
        let tensors = residual_add();
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
    fn a_share_is_taken_from_either_side_and_whatever_the_lengths() {
        // A pointwise conv widening a (400 B) into c (600 B) in place: c, placed first, lets a
        // take its offset; a node narrowing it the other way round as well.
        let t = |len, born, dies| Lifetime { len, born, dies };
        let tensors = [t(100, 0, 0), t(400, 0, 1), t(600, 1, 2), t(10, 2, 3)];
        let mut offsets = [0; 4];
        let arena = place_sharing(&tensors, &[None, None, Some(1), None], &mut offsets);
        assert_eq!(offsets[1], offsets[2], "{offsets:?}");
        assert_eq!(arena, 610, "{offsets:?}");
        // Without the share, a and c are apart.
        assert_eq!(
            place_by_lifetimes(&tensors, &mut offsets),
            1000,
            "{offsets:?}"
        );
    }

    #[test]
    fn an_in_place_output_takes_its_partner_before_a_larger_tensor_claims_the_offset() {
        // MobileNet's tail: b (1 KB) written over a (3 KB) in place, then c (2 KB) written out
        // of place beside b. Largest first alone put c at 0, then b, kept from a's offset by c,
        // after a: 4 KB. With b placed beside its partner first, c fits after b.
        let t = |len, born, dies| Lifetime { len, born, dies };
        let tensors = [t(3136, 0, 1), t(1024, 1, 2), t(2048, 2, 3)];
        let mut offsets = [0; 3];
        let arena = place_sharing(&tensors, &[None, Some(0), None], &mut offsets);
        assert_eq!(offsets, [0, 0, 1024]);
        assert_eq!(arena, 3136);
    }

    #[test]
    fn an_add_takes_the_bytes_of_an_input_dying_there_and_nothing_else_does() {
        // With the Add's output over a, two maps.
        let tensors = residual_add();
        let mut offsets = [0; 5];
        let shares = [None, None, None, Some(1), None];
        let arena = place_sharing(&tensors, &shares, &mut offsets);
        assert_eq!(arena, 800, "{offsets:?}");
        assert_eq!(offsets[3], offsets[1]);
        // A share with a tensor that outlives the Add is not taken.
        let mut longer = tensors;
        longer[1].dies = 3;
        assert_eq!(place_sharing(&longer, &shares, &mut offsets), 1200);
        assert_ne!(offsets[3], offsets[1]);
    }

    #[test]
    fn seed_model_plan_ping_pongs_with_scratch_between() {
        let blob = Spec::seed(&mut SplitMix::new(1)).to_blob();
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
        assert!(steps.iter().all(|s| s.streaming == Streaming::No));
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

#[cfg(test)]
mod streaming_tests {
    use super::*;
    use crate::test_blob::Spec;
    use crate::test_util::SplitMix;

    #[test]
    fn least_arena_plan_streams_conv1_into_conv2() {
        let blob = Spec::seed(&mut SplitMix::new(1)).to_blob();
        let model = Model::from_bytes(&blob).unwrap();
        let kernels = Kernels::CortexM4Dsp;
        let schedule = model.schedule_within(kernels, 0);
        let arena = schedule.arena_len;
        let steps: Vec<PlanStep> = model.plan_with(kernels, schedule).collect();
        let place = |offset, len| Placement { offset, len };
        assert_eq!(steps[0].streaming, Streaming::IntoNext);
        assert_eq!(steps[1].streaming, Streaming::FromPrevious);
        // The image at the front, conv2's pooled output at the back, conv1's band and conv2's
        // DSP scratch (conv1's rows written into its int8 ring) between; conv1's 8×28×28 map
        // is nowhere.
        assert_eq!(steps[0].input, place(0, 784));
        assert_eq!(steps[0].output, place(arena - 3136, 3136));
        assert_eq!(steps[0].scratch, place(784, 90 + 3991));
        assert_eq!(steps[0].need, arena);
        assert_eq!(steps[1].output, steps[0].output);
        assert_eq!(steps[1].input, steps[0].scratch);
        // The first Linear takes what the arena leaves for its blocked unpacking.
        assert_eq!(steps[3].input, place(arena - 3136, 3136));
        assert_eq!(steps[3].output, place(0, 256));
        assert_eq!(steps[3].scratch, place(256, arena - 3136 - 256));
        assert_eq!(steps[4].output, place(arena - 10, 10));
        assert!(steps.iter().all(|s| s.need <= arena));
    }
}
