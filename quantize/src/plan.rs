//! The arena plan of a model (`qcnn_core::plan`) as JSON, for the quantize report and
//! `qcnn profile --json`: per node its op, shapes, MACs, where its input, scratch and output
//! sit in the arena and when its output dies, and which nodes set the arena's size.

use qcnn_core::graph::NodeInfo;
use qcnn_core::graph::in_place::Staging;
use qcnn_core::plan::{Placement, Schedule, Streaming};
use qcnn_core::shape::MapShape;
use qcnn_core::{Kernels, LayerKind, Model, TensorShape};
use serde::Serialize;

/// The plan for the kernels of both kinds of target.
#[derive(Clone, Debug, Serialize)]
pub struct Plans {
    /// Cortex-M4/M7 (`thumbv7em`): the DSP kernels' scratch.
    pub cortex_m4: Plan,
    /// Every other target (Cortex-M0, hosts): the portable kernels' scratch.
    pub portable: Plan,
}

impl Plans {
    /// The fastest schedules: every layer writes its whole map.
    pub fn of(model: &Model<'_>) -> Self {
        Self {
            cortex_m4: Plan::of(model, Kernels::CortexM4Dsp),
            portable: Plan::of(model, Kernels::Portable),
        }
    }

    /// The fastest schedules within `budget` bytes of arena (`qcnn-quantize --max-arena`),
    /// streaming the early layers where the whole maps do not fit; `Err` names the kernels
    /// and the least arena they run in when a schedule does not fit.
    pub fn within(model: &Model<'_>, budget: usize) -> Result<Self, String> {
        Ok(Self {
            cortex_m4: Plan::within(model, Kernels::CortexM4Dsp, budget)?,
            portable: Plan::within(model, Kernels::Portable, budget)?,
        })
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Plan {
    /// `cortex-m4` or `portable`.
    pub kernels: &'static str,
    /// The arena of this schedule: the largest node's need (or the image, if larger).
    pub arena_bytes: usize,
    /// The fastest schedule's arena: every layer writes its whole map.
    pub whole_map_arena_bytes: usize,
    /// The least arena the model runs in: every layer pair that saves arena by streaming
    /// (a Conv2d computing its rows as the next Conv2d or MaxPool2d reads them) streams.
    pub least_arena_bytes: usize,
    /// Layer pairs this schedule streams.
    pub streamed_pairs: u32,
    /// The most scratch one graph node in place stages its input through with these kernels,
    /// as the loader sizes it: nothing for a node whose kernel runs over its own input (the
    /// Cortex-M4's pointwise Conv, and its depthwise Conv over a whole plane). 0 for a chain.
    pub staging_bytes: usize,
    /// The nodes whose need is the arena: shrink these to shrink the arena.
    pub peak_nodes: Vec<usize>,
    pub nodes: Vec<PlanNode>,
}

#[derive(Clone, Debug, Serialize)]
pub struct PlanNode {
    pub index: usize,
    /// `conv2d`, `maxpool2d`, `flatten` or `linear`, with the fused parts (`+relu`, `+pool2`).
    pub op: String,
    /// `[c, h, w]` for a map, `[n]` for a vector.
    pub input_shape: Vec<usize>,
    pub output_shape: Vec<usize>,
    pub macs: u64,
    pub input: Place,
    pub scratch: Place,
    pub output: Place,
    /// The last node reading the output; `null` for the logits.
    pub output_dies_after: Option<usize>,
    /// input + scratch + output bytes (0 for a Flatten, which moves nothing; a streamed
    /// pair's for both its nodes).
    pub arena_bytes: usize,
    /// `no`; `into_next` for a Conv2d whose output rows are computed as the next node reads
    /// them (its output map never exists: `output` is the next node's, `scratch` the rows);
    /// `from_previous` for that next node.
    pub streaming: &'static str,
    /// A graph node run in place: its output at its input's offset, the input staged through
    /// the scratch (`qcnn_core::graph::in_place`).
    pub in_place: bool,
    /// For a pointwise Conv in place, the pixels of each staged piece on this target: as many
    /// as the model's scratch holds beside the node's kernel's (0 for any other node).
    pub staged_pixels: usize,
}

/// Bytes `offset .. offset + bytes` of the arena.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Place {
    pub offset: usize,
    pub bytes: usize,
}

impl From<Placement> for Place {
    fn from(p: Placement) -> Self {
        Self {
            offset: p.offset,
            bytes: p.len,
        }
    }
}

impl Plan {
    /// The fastest schedule's plan (every layer writes its whole map).
    pub fn of(model: &Model<'_>, kernels: Kernels) -> Self {
        let whole = model.arena_len_for(kernels);
        Self::with(model, kernels, model.schedule_within(kernels, whole))
    }

    /// The plan of the fastest schedule within `budget` bytes, or why there is none.
    pub fn within(model: &Model<'_>, kernels: Kernels, budget: usize) -> Result<Self, String> {
        let schedule = model.schedule_for_arena(kernels, budget).ok_or_else(|| {
            format!(
                "the model needs at least {} bytes of arena with the {} kernels (its early layers streamed), more than {budget}",
                model.min_arena_len_for(kernels),
                kernels_name(kernels)
            )
        })?;
        Ok(Self::with(model, kernels, schedule))
    }

    fn with(model: &Model<'_>, kernels: Kernels, schedule: Schedule) -> Self {
        let arena_bytes = schedule.arena_len;
        if let Some(graph) = model.graph() {
            return Self::of_graph(&graph, kernels, arena_bytes);
        }
        let nodes: Vec<PlanNode> = model
            .plan_with(kernels, schedule)
            .map(|step| PlanNode {
                index: step.index,
                op: op_name(step.layer.kind()),
                input_shape: dims(step.layer.input()),
                output_shape: dims(step.layer.output()),
                macs: step.layer.macs(),
                input: step.input.into(),
                scratch: step.scratch.into(),
                output: step.output.into(),
                output_dies_after: step.output_dies_after,
                arena_bytes: step.need,
                streaming: match step.streaming {
                    Streaming::No => "no",
                    Streaming::IntoNext => "into_next",
                    Streaming::FromPrevious => "from_previous",
                },
                in_place: false,
                staged_pixels: 0,
            })
            .collect();
        Self {
            kernels: kernels_name(kernels),
            arena_bytes,
            whole_map_arena_bytes: model.arena_len_for(kernels),
            least_arena_bytes: model.min_arena_len_for(kernels),
            streamed_pairs: schedule.streamed_pairs(),
            staging_bytes: 0,
            peak_nodes: peak_nodes(&nodes, arena_bytes),
            nodes,
        }
    }
}

/// The nodes at which the arena is full.
fn peak_nodes(nodes: &[PlanNode], arena_bytes: usize) -> Vec<usize> {
    nodes
        .iter()
        .filter(|n| n.arena_bytes == arena_bytes)
        .map(|n| n.index)
        .collect()
}

impl Plan {
    /// A graph's plan: its tensors where the quantize-time planner put them; nothing streams.
    fn of_graph(graph: &qcnn_core::graph::Graph<'_>, kernels: Kernels, arena_bytes: usize) -> Self {
        let nodes = graph_nodes(graph, kernels);
        Self {
            kernels: kernels_name(kernels),
            arena_bytes,
            whole_map_arena_bytes: arena_bytes,
            least_arena_bytes: arena_bytes,
            streamed_pairs: 0,
            staging_bytes: graph
                .nodes()
                .map(|n| staging_need(graph, &n, kernels))
                .max()
                .unwrap_or(0),
            peak_nodes: peak_nodes(&nodes, arena_bytes),
            nodes,
        }
    }
}

/// The scratch node `n` stages its input through on a target with `kernels`: the least its
/// staging takes ([`Staging::of`]; a pointwise Conv's longer pieces only take scratch that
/// another node needs anyway), or 0 when it runs out of place or its kernel runs over its
/// own input (`node_staging` is `None`).
fn staging_need(graph: &qcnn_core::graph::Graph<'_>, n: &NodeInfo, kernels: Kernels) -> usize {
    let map = |d: &qcnn_core::graph::format::TensorDesc| MapShape {
        c: usize::from(d.shape.c),
        h: usize::from(d.shape.h),
        w: usize::from(d.shape.w),
    };
    match (graph.node_staging(n, kernels), n.inputs.first()) {
        (Some(_), Some((_, input))) => {
            Staging::of(&n.node.op, map(input), map(&n.output.1)).map_or(0, |s| s.scratch_len())
        }
        _ => 0,
    }
}

/// A graph's nodes where the quantize-time planner put their tensors (the first input shown),
/// and the scratch each takes with `kernels` after the planned tensors (its staging included
/// when it runs in place). `arena_bytes` is what the node needs: the end of its scratch, or
/// of its highest tensor when it takes none, so the node with the most scratch sets the peak.
fn graph_nodes(graph: &qcnn_core::graph::Graph<'_>, kernels: Kernels) -> Vec<PlanNode> {
    let nodes: Vec<_> = graph.nodes().collect();
    let place = |d: &qcnn_core::graph::format::TensorDesc| Place {
        offset: d.offset as usize,
        bytes: usize::from(d.shape.c) * usize::from(d.shape.h) * usize::from(d.shape.w),
    };
    let shape = |d: &qcnn_core::graph::format::TensorDesc| {
        vec![
            usize::from(d.shape.c),
            usize::from(d.shape.h),
            usize::from(d.shape.w),
        ]
    };
    nodes
        .iter()
        .map(|n| {
            let dies = nodes
                .iter()
                .filter(|m| m.node.inputs.contains(&n.output.0))
                .map(|m| m.index)
                .max();
            let first = n.inputs.first().map(|(_, d)| *d).unwrap_or(n.output.1);
            let output = place(&n.output.1);
            let top = n
                .inputs
                .iter()
                .map(|(_, d)| place(d))
                .chain([output])
                .map(|p| p.offset + p.bytes)
                .max()
                .unwrap_or(0);
            let scratch = Place {
                offset: graph.arena_len(),
                bytes: graph.node_scratch_len(n, kernels),
            };
            PlanNode {
                index: n.index,
                op: graph_op_name(&n.node.op),
                input_shape: shape(&first),
                output_shape: shape(&n.output.1),
                macs: n.macs,
                input: place(&first),
                scratch,
                output,
                output_dies_after: if n.output.0 == graph.output() {
                    None
                } else {
                    dies
                },
                arena_bytes: if scratch.bytes > 0 {
                    scratch.offset + scratch.bytes
                } else {
                    top
                },
                streaming: "no",
                in_place: n.in_place(),
                staged_pixels: graph.node_staging(n, kernels).map_or(0, |s| s.pixels()),
            }
        })
        .collect()
}

/// A graph node's op, e.g. `conv 3x3/s2 g16+clamp`.
pub fn graph_op_name(op: &qcnn_core::graph::NodeOp) -> String {
    use qcnn_core::graph::NodeOp;
    let window = |w: &qcnn_core::graph::format::Window| {
        let mut name = format!("{}x{}", w.kernel[0], w.kernel[1]);
        if w.stride != [1, 1] {
            name += &format!("/s{}x{}", w.stride[0], w.stride[1]);
        }
        if w.pads != [0; 4] {
            name += &format!("/p{:?}", w.pads);
        }
        name
    };
    let clamp = |c: [i8; 2]| {
        if c == [-128, 127] {
            String::new()
        } else {
            format!("+clamp{c:?}")
        }
    };
    match op {
        NodeOp::Conv(c) => {
            let groups = if c.groups > 1 {
                format!(" g{}", c.groups)
            } else {
                String::new()
            };
            format!("conv {}{groups}{}", window(&c.window), clamp(c.clamp))
        }
        NodeOp::ConvAdd(f) => {
            let groups = if f.conv.groups > 1 {
                format!(" g{}", f.conv.groups)
            } else {
                String::new()
            };
            format!(
                "conv {}{groups}{}+add{}",
                window(&f.conv.window),
                clamp(f.conv.clamp),
                clamp(f.add.clamp)
            )
        }
        NodeOp::MaxPool(w) => format!("maxpool {}", window(w)),
        NodeOp::AveragePool { window: w, .. } => format!("avgpool {}", window(w)),
        NodeOp::GlobalAveragePool => "globalavgpool".into(),
        NodeOp::Add(a) => format!("add{}", clamp(a.clamp)),
        NodeOp::Gemm(g) => format!("gemm{}", clamp(g.clamp)),
    }
}

fn kernels_name(kernels: Kernels) -> &'static str {
    match kernels {
        Kernels::CortexM4Dsp => "cortex-m4",
        Kernels::Portable => "portable",
        Kernels::Direct => "direct",
    }
}

fn dims(shape: TensorShape) -> Vec<usize> {
    match shape {
        TensorShape::Map(m) => vec![m.c, m.h, m.w],
        TensorShape::Vector(n) => vec![n],
    }
}

/// The op and what is fused into it, e.g. `conv2d 3x3+relu+pool2`.
pub fn op_name(kind: LayerKind) -> String {
    match kind {
        LayerKind::Conv2d {
            kernel,
            stride,
            padding,
            relu,
            pool,
        } => {
            let mut name = format!("conv2d {kernel}x{kernel}");
            if stride != 1 {
                name += &format!("/s{stride}");
            }
            if padding != 0 {
                name += &format!("/p{padding}");
            }
            if relu {
                name += "+relu";
            }
            if let Some(pool) = pool {
                name += &format!("+pool{}", pool.kernel);
            }
            name
        }
        LayerKind::MaxPool2d(pool) => format!("maxpool2d {}", pool.kernel),
        LayerKind::Flatten => "flatten".to_owned(),
        LayerKind::Linear { relu } => {
            if relu {
                "linear+relu".to_owned()
            } else {
                "linear".to_owned()
            }
        }
    }
}
