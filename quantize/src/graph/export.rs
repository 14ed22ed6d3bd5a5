//! A [`FloatGraph`] to a graph blob (format version 4): every tensor calibrated (pools keep their input's
//! quantization), weights per output channel as in a layer sequence, TFLite's Add parameters, the
//! fused activations as int8 clamps, and the arena laid out by the core's planner from the
//! tensors' lifetimes.

use qcnn_core::Model;
use qcnn_core::format::{self, DataWriter, EncodeError, QuantParams};
use qcnn_core::graph::format as blob;
use qcnn_core::graph::in_place::Staging;
use qcnn_core::ops::Kernels;
use qcnn_core::plan::{Lifetime, live_peak};
use qcnn_core::shape::MapShape;
use serde::Serialize;

use super::in_place_plan::{ArenaPlan, StagedCandidate, choose_in_place, plan_arena};
use super::order_search::{OrderNode, best_order_live_peak};
use super::{Clamp, FloatGraph, FloatNode, FloatOp, Window};
use crate::calibrate::{CalibratedOutput, calibrate_points};
use crate::export::{ExportError, quantize_channels};
use crate::scales::{self, activation_params, quantize_multiplier};
use qcnn_config::config::QuantizeConfig;

/// What the graph export did, for the report.
#[derive(Clone, Debug, Serialize)]
pub struct GraphReport {
    pub nodes: Vec<GraphNodeReport>,
    /// The arena the lifetime planner laid out (bytes; the kernels' scratch and the in-place
    /// nodes' staging come after it: the report's `plan` gives both for each kind of target).
    pub arena_bytes: usize,
    /// The arena with every node out of place but the Adds (before issue 12's in-place nodes).
    pub out_of_place_arena_bytes: usize,
    /// The most bytes alive at once at any node: no layout of this node order needs less.
    pub live_peak_bytes: usize,
    /// The same with every node out of place (each tensor in bytes of its own), for this
    /// order and for the best order of the nodes (`order_search`; `None`: too many orders).
    pub out_of_place_live_peak_bytes: usize,
    pub best_order_live_peak_bytes: Option<usize>,
    /// Every tensor in its own buffer (no reuse at all).
    pub no_reuse_bytes: usize,
    /// A ping-pong schedule: two buffers of the largest tensor, plus one more of the largest
    /// size for each tensor kept across other nodes (a residual).
    pub ping_pong_bytes: usize,
}

#[derive(Clone, Debug, Serialize)]
pub struct GraphNodeReport {
    pub name: String,
    pub op: String,
    pub inputs: Vec<usize>,
    pub output: usize,
    pub output_shape: [usize; 3],
    pub output_quant: QuantParams,
    /// Where `output_quant` came from.
    pub quant_source: QuantSource,
    pub offset: usize,
    /// Its output at its input's offset, the input staged through the scratch.
    pub in_place: bool,
}

/// Where a tensor's scale and zero point came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum QuantSource {
    /// The image: config.yaml's `preprocess`, folded into the input's quantization.
    Input,
    /// Calibrated on training images.
    Calibrated,
    /// A QDQ model's QuantizeLinear.
    File,
    /// A pool's output, which keeps its input's quantization (the file's, if it gave one
    /// that differs, is not used).
    KeptFromInput,
}

pub struct ExportedGraph {
    pub blob: Vec<u8>,
    pub calibration: Vec<CalibratedOutput>,
    pub report: GraphReport,
}

/// Calibrates `graph` on `images` (training split only) and writes the blob.
pub fn export_graph(
    graph: &FloatGraph,
    images: &[&[u8]],
    settings: &QuantizeConfig,
) -> Result<ExportedGraph, ExportError> {
    export_graph_with(graph, images, settings, InPlace::WherePays)
}

/// Whether the planner may run nodes in place (`qcnn_core::graph::in_place`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InPlace {
    /// Where that lowers the Cortex-M4's arena + scratch (the default).
    WherePays,
    /// Never (but the Adds over their inputs): the plan before issue 12's in-place nodes, for
    /// comparisons.
    Never,
}

/// [`export_graph`], with the in-place nodes `in_place` allows.
pub fn export_graph_with(
    graph: &FloatGraph,
    images: &[&[u8]],
    settings: &QuantizeConfig,
    in_place: InPlace,
) -> Result<ExportedGraph, ExportError> {
    // Every tensor a node computes gets its own range, but pools keep their input's; the
    // logits come last (calibrate keeps the last point's range whole).
    let mut points: Vec<(usize, bool)> = graph
        .nodes
        .iter()
        .filter(|n| !n.op.keeps_quantization() && n.output != graph.output)
        .map(|n| (n.output, n.op.clamp().min >= 0.0))
        .collect();
    points.push((graph.output, false));
    let forward = |batch: &[&[u8]], observe: &mut dyn FnMut(usize, &[f32])| {
        for image in batch {
            graph.forward_observed(image, observe);
        }
    };
    let calibration = calibrate_points(&forward, 16, &points, images, settings)?;

    let mut quant = vec![graph.input_norm.quant(); graph.tensors.len()];
    let mut sources = vec![QuantSource::Input; graph.tensors.len()];
    for out in &calibration {
        quant[out.step] = activation_params(out.chosen.min, out.chosen.max);
        sources[out.step] = QuantSource::Calibrated;
    }
    // A QDQ file's own activation quantization is qcnn's scheme (int8, one scale and zero
    // point per tensor): it replaces the calibrated one.
    for (&t, &q) in &graph.file_quant {
        if t != 0 && !matches!(sources[t], QuantSource::Input) {
            quant[t] = q;
            sources[t] = QuantSource::File;
        }
    }
    for node in &graph.nodes {
        if node.op.keeps_quantization() {
            quant[node.output] = quant[node.inputs[0]];
            sources[node.output] = QuantSource::KeptFromInput;
        }
    }

    // Each Add whose input is a Conv's output read by nothing else is fused into that Conv
    // (its output over the residual, so that a block's two maps are alive, not three); the
    // Conv's own output tensor then never exists, and the tensors are numbered without them.
    let steps = fuse_residual_adds(graph);
    let mut exists = vec![true; graph.tensors.len()];
    for step in steps.iter().filter(|s| s.add.is_some()) {
        exists[step.node.output] = false;
    }
    let mut renumbered = vec![usize::MAX; graph.tensors.len()];
    let mut next = 0;
    for (t, &keep) in exists.iter().enumerate() {
        if keep {
            renumbered[t] = next;
            next += 1;
        }
    }
    let new = |t: usize| renumbered[t];
    // Lifetimes and the arena.
    let n = steps.len();
    let mut lifetimes: Vec<Lifetime> = graph
        .tensors
        .iter()
        .zip(&exists)
        .filter(|(_, keep)| **keep)
        .map(|(t, _)| Lifetime {
            len: t.len(),
            born: 0,
            dies: 0,
        })
        .collect();
    for (i, step) in steps.iter().enumerate() {
        lifetimes[new(step.output())].born = i;
        lifetimes[new(step.output())].dies = i;
        for t in step.inputs() {
            lifetimes[new(t)].dies = i;
        }
    }
    lifetimes[new(graph.output)].dies = n;
    let upper: usize = graph
        .nodes
        .iter()
        .map(|node| match &node.op {
            FloatOp::Conv { weight, bias, .. } | FloatOp::Gemm { weight, bias, .. } => {
                weight.len() + 3 + 13 * bias.len() + 12
            }
            _ => 0,
        })
        .sum();
    let mut buffer = vec![0_u8; upper];
    let mut writer = DataWriter::new(&mut buffer);
    let encode = ExportError::Encode;
    let mut nodes = heapless::Vec::<blob::Node, { blob::MAX_NODES }>::new();
    let mut node_reports = Vec::new();
    for step in &steps {
        let node = step.node;
        let input = quant[node.inputs[0]];
        let output = quant[node.output];
        let op = match &node.op {
            FloatOp::Conv {
                weight,
                bias,
                window,
                groups,
                clamp,
            } => {
                let (weights, channels) =
                    weighted(&node.name, weight, bias, input, output, &mut writer)?;
                blob::NodeOp::Conv(blob::Conv {
                    window: blob_window(window)?,
                    groups: u16::try_from(*groups).map_err(|_| encode(EncodeError::TooLarge))?,
                    clamp: int8_clamp(*clamp, output),
                    weights,
                    channels,
                })
            }
            FloatOp::Gemm {
                weight,
                bias,
                clamp,
            } => {
                let (weights, channels) =
                    weighted(&node.name, weight, bias, input, output, &mut writer)?;
                blob::NodeOp::Gemm(blob::Gemm {
                    clamp: int8_clamp(*clamp, output),
                    weights,
                    channels,
                })
            }
            FloatOp::MaxPool(window) => blob::NodeOp::MaxPool(blob_window(window)?),
            FloatOp::AveragePool {
                window,
                count_include_pad,
            } => blob::NodeOp::AveragePool {
                window: blob_window(window)?,
                count_include_pad: *count_include_pad,
            },
            FloatOp::GlobalAveragePool => blob::NodeOp::GlobalAveragePool,
            FloatOp::Add { clamp } => {
                let other = quant[node.inputs[1]];
                blob::NodeOp::Add(add_params(&node.name, input, other, output, *clamp)?)
            }
        };
        let op = match (op, step.add) {
            (blob::NodeOp::Conv(conv), Some((add, residual))) => {
                // Only Adds are fused.
                let clamp = add.op.clamp();
                let (sum, other) = (quant[add.output], quant[residual]);
                blob::NodeOp::ConvAdd(blob::ConvAdd {
                    conv,
                    conv_zero_point: output.zero_point,
                    add: add_params(&add.name, output, other, sum, clamp)?,
                })
            }
            (op, _) => op,
        };
        let index = |t: usize| u16::try_from(new(t)).map_err(|_| encode(EncodeError::TooLarge));
        let inputs = step
            .inputs()
            .iter()
            .map(|&t| index(t))
            .collect::<Result<heapless::Vec<u16, 2>, _>>()?;
        nodes
            .push(blob::Node {
                op,
                inputs,
                output: index(step.output())?,
            })
            .map_err(|_| encode(EncodeError::TooLarge))?;
        let out = step.output();
        let (name, op) = match step.add {
            Some((add, _)) => (
                format!("{}+{}", node.name, add.name),
                format!("{}+{}", node.op.name(), add.op.name()),
            ),
            None => (node.name.clone(), node.op.name()),
        };
        node_reports.push(GraphNodeReport {
            name,
            op,
            inputs: step.inputs().iter().map(|&t| new(t)).collect(),
            output: new(out),
            output_shape: graph.tensors[out].shape,
            output_quant: quant[out],
            quant_source: sources[out],
            offset: 0,
            in_place: false,
        });
    }
    // The blob with the tensors at `offsets` in an arena of `arena` bytes.
    let data_len = writer.len();
    let data = &buffer[..data_len];
    let encode_plan = |offsets: &[usize], arena: usize| -> Result<Vec<u8>, ExportError> {
        let mut tensors = heapless::Vec::<blob::TensorDesc, { blob::MAX_TENSORS }>::new();
        let kept_tensors = graph
            .tensors
            .iter()
            .zip(&quant)
            .zip(&exists)
            .filter(|(_, keep)| **keep)
            .map(|(tq, _)| tq);
        for ((t, q), &offset) in kept_tensors.zip(offsets) {
            let dim = |d: usize| u16::try_from(d).map_err(|_| encode(EncodeError::TooLarge));
            tensors
                .push(blob::TensorDesc {
                    shape: format::Shape {
                        c: dim(t.shape[0])?,
                        h: dim(t.shape[1])?,
                        w: dim(t.shape[2])?,
                    },
                    quant: *q,
                    offset: u32::try_from(offset).map_err(|_| encode(EncodeError::TooLarge))?,
                })
                .map_err(|_| encode(EncodeError::TooLarge))?;
        }
        let header = blob::GraphHeader {
            tensors,
            nodes: nodes.clone(),
            output: u16::try_from(new(graph.output)).map_err(|_| encode(EncodeError::TooLarge))?,
            arena_len: u32::try_from(arena).map_err(|_| encode(EncodeError::TooLarge))?,
            data_len: u32::try_from(data_len).map_err(|_| encode(EncodeError::TooLarge))?,
        };
        let mut out = vec![0_u8; format::graph_encoded_len(&header, data_len).map_err(encode)?];
        let written = format::encode_graph(&header, data, &mut out).map_err(encode)?;
        out.truncate(written);
        Ok(out)
    };
    // What a plan costs on the Cortex-M4, the target whose RAM the plan is for: its arena and
    // the scratch its kernels and staging take, as the loader sizes them.
    let m4_ram = |plan: &ArenaPlan| {
        encode_plan(&plan.offsets, plan.arena)
            .ok()
            .and_then(|blob| {
                let model = Model::from_bytes(&blob).ok()?;
                Some(model.arena_len_for(Kernels::CortexM4Dsp))
            })
            .unwrap_or(usize::MAX)
    };
    // The arena: an Add may write over an input that dies there (element by element), a
    // fused Conv + Add over its residual only, and a node that can stage its input through
    // the scratch (`Staging`) over that input, where that lowers arena + staging.
    let mut add_shares = vec![None; lifetimes.len()];
    let mut staged = Vec::new();
    for (i, (step, node)) in steps.iter().zip(&nodes).enumerate() {
        let inputs = step.inputs();
        let takeable: &[usize] = match (&step.node.op, step.add) {
            (_, Some(_)) => &inputs[1..],
            (FloatOp::Add { .. }, None) => &inputs,
            _ => &[],
        };
        if inputs.first() != inputs.get(1) {
            add_shares[new(step.output())] = takeable
                .iter()
                .map(|&t| new(t))
                .find(|&t| lifetimes[t].dies == i && t != new(graph.output));
        }
        let (input, output) = (new(inputs[0]), new(step.output()));
        let shape = |t: usize| {
            let [c, h, w] = graph.tensors[t].shape;
            MapShape { c, h, w }
        };
        let staging = Staging::of(&node.op, shape(inputs[0]), shape(step.output()));
        if let Some(staging) = staging
            && step.add.is_none()
            && lifetimes[input].dies == i
            && input != new(graph.output)
        {
            staged.push(StagedCandidate {
                input,
                output,
                scratch: staging.scratch_len(),
            });
        }
    }
    let out_of_place = plan_arena(&lifetimes, &add_shares, &[], &[]);
    let plan = match in_place {
        InPlace::WherePays => choose_in_place(&lifetimes, &add_shares, &staged, &m4_ram),
        InPlace::Never => plan_arena(&lifetimes, &add_shares, &[], &[]),
    };
    let (arena, offsets) = (plan.arena, &plan.offsets);
    let shares = plan.shares;
    let largest = lifetimes.iter().map(|t| t.len).max().unwrap_or(0);
    let kept = lifetimes.iter().filter(|t| t.dies > t.born + 1).count();
    // The live peak's lower bound counts an in-place node's output and input once.
    let mut peak_lifetimes = lifetimes.clone();
    for (i, share) in shares.iter().enumerate() {
        if let Some(j) = *share
            && offsets[i] == offsets[j]
        {
            peak_lifetimes[j].dies = lifetimes[i].born.saturating_sub(1);
        }
    }
    let order_nodes: Vec<OrderNode> = node_reports
        .iter()
        .map(|r| OrderNode {
            inputs: &r.inputs,
            output: r.output,
        })
        .collect();
    let sizes: Vec<usize> = lifetimes.iter().map(|t| t.len).collect();
    let best_order = best_order_live_peak(&order_nodes, &sizes, new(graph.output));
    let report_plan = (
        live_peak(&peak_lifetimes, n),
        lifetimes.iter().map(|t| t.len).sum::<usize>(),
        largest * (2 + kept),
    );
    for (report, step) in node_reports.iter_mut().zip(&steps) {
        report.offset = offsets[new(step.output())];
        report.in_place = plan.in_place.iter().any(|c| c.output == new(step.output()));
    }

    let out = encode_plan(&plan.offsets, arena)?;
    Ok(ExportedGraph {
        blob: out,
        calibration,
        report: GraphReport {
            nodes: node_reports,
            arena_bytes: arena,
            out_of_place_arena_bytes: out_of_place.arena,
            live_peak_bytes: report_plan.0,
            out_of_place_live_peak_bytes: live_peak(&lifetimes, n),
            best_order_live_peak_bytes: best_order,
            no_reuse_bytes: report_plan.1,
            ping_pong_bytes: report_plan.2,
        },
    })
}

/// One node of the blob: a float node, or a Conv with the Add its output goes to (and
/// that Add's other input, the residual).
struct Step<'g> {
    node: &'g FloatNode,
    add: Option<(&'g FloatNode, usize)>,
}

impl Step<'_> {
    fn inputs(&self) -> Vec<usize> {
        match self.add {
            Some((_, residual)) => vec![self.node.inputs[0], residual],
            None => self.node.inputs.clone(),
        }
    }

    fn output(&self) -> usize {
        self.add.map_or(self.node.output, |(add, _)| add.output)
    }
}

/// The blob's nodes: each Add of two different tensors, one of which a Conv computes for
/// it alone, is fused into that Conv (the later one if both are), provided the residual
/// exists by then, is not the Conv's input, and nothing reads it after the Conv.
fn fuse_residual_adds(graph: &FloatGraph) -> Vec<Step<'_>> {
    let mut producer = vec![None; graph.tensors.len()];
    let mut readers = vec![Vec::new(); graph.tensors.len()];
    for (i, node) in graph.nodes.iter().enumerate() {
        producer[node.output] = Some(i);
        for &t in &node.inputs {
            readers[t].push(i);
        }
    }
    // fused[conv] = (add, residual); folded[add] = true.
    let mut fused = vec![None; graph.nodes.len()];
    let mut folded = vec![false; graph.nodes.len()];
    for (i, node) in graph.nodes.iter().enumerate() {
        let (FloatOp::Add { .. }, [a, b]) = (&node.op, node.inputs.as_slice()) else {
            continue;
        };
        if a == b {
            continue;
        }
        let candidate = |conv_t: usize, residual: usize| {
            let p = producer[conv_t]?;
            let conv = &graph.nodes[p];
            let fits = matches!(conv.op, FloatOp::Conv { .. })
                && readers[conv_t] == [i]
                && conv_t != graph.output
                && conv.inputs[0] != residual
                && producer[residual].is_none_or(|r| r < p)
                && readers[residual].iter().all(|&r| r < p || r == i);
            fits.then_some((p, residual))
        };
        let best = [candidate(*a, *b), candidate(*b, *a)]
            .into_iter()
            .flatten()
            .max_by_key(|(p, _)| *p);
        if let Some((p, residual)) = best {
            fused[p] = Some((node, residual));
            folded[i] = true;
        }
    }
    graph
        .nodes
        .iter()
        .enumerate()
        .filter(|(i, _)| !folded[*i])
        .map(|(i, node)| Step {
            node,
            add: fused[i],
        })
        .collect()
}

fn blob_window(window: &Window) -> Result<blob::Window, ExportError> {
    let byte = |v: usize| u8::try_from(v).map_err(|_| ExportError::Encode(EncodeError::TooLarge));
    Ok(blob::Window {
        kernel: [byte(window.kernel[0])?, byte(window.kernel[1])?],
        stride: [byte(window.stride[0])?, byte(window.stride[1])?],
        pads: [
            byte(window.pads[0])?,
            byte(window.pads[1])?,
            byte(window.pads[2])?,
            byte(window.pads[3])?,
        ],
    })
}

/// The int8 range a float clamp keeps at `output`'s quantization.
fn int8_clamp(clamp: Clamp, output: QuantParams) -> [i8; 2] {
    let q = |v: f32| {
        if v.is_finite() {
            (v / output.scale + f32::from(output.zero_point))
                .round()
                .clamp(-128.0, 127.0) as i8
        } else if v > 0.0 {
            i8::MAX
        } else {
            i8::MIN
        }
    };
    [q(clamp.min), q(clamp.max)]
}

/// Per-channel int8 weights and the requantization arrays, as a layer sequence holds them.
fn weighted(
    name: &str,
    weight: &[f32],
    bias: &[f32],
    input: QuantParams,
    output: QuantParams,
    writer: &mut DataWriter,
) -> Result<(format::Section, blob::ChannelSections), ExportError> {
    let quantized = quantize_channels(name, name, weight, bias, input, output)?;
    let encode = ExportError::Encode;
    let weights = writer.i8s(&quantized.weights).map_err(encode)?;
    let channels = blob::ChannelSections {
        bias: writer.i32s(&quantized.bias).map_err(encode)?,
        multiplier: writer.i32s(&quantized.multipliers).map_err(encode)?,
        shift: writer.i8s(&quantized.shifts).map_err(encode)?,
        weight_scales: writer.f32s(&quantized.weight_scales).map_err(encode)?,
    };
    Ok((weights, channels))
}

/// TFLite's Add parameters (`tensorflow/lite/kernels/add.cc`, int8): left shift 20, each
/// input rescaled to twice the larger input scale, the sum to the output.
fn add_params(
    name: &str,
    a: QuantParams,
    b: QuantParams,
    output: QuantParams,
    clamp: Clamp,
) -> Result<blob::Add, ExportError> {
    const LEFT_SHIFT: u8 = 20;
    let twice_max = 2.0 * f64::from(a.scale.max(b.scale));
    let reals = [
        f64::from(a.scale) / twice_max,
        f64::from(b.scale) / twice_max,
        twice_max / (f64::from(1_u32 << LEFT_SHIFT) * f64::from(output.scale)),
    ];
    let mut multipliers = [0; 3];
    let mut shifts = [0; 3];
    for (i, real) in reals.into_iter().enumerate() {
        let m = quantize_multiplier(real).map_err(|source| ExportError::Multiplier {
            key: name.to_owned(),
            channel: i,
            source,
        })?;
        if m.shift > 0 {
            return Err(ExportError::Multiplier {
                key: name.to_owned(),
                channel: i,
                source: scales::MultiplierError(real),
            });
        }
        multipliers[i] = m.multiplier;
        shifts[i] = m.shift;
    }
    Ok(blob::Add {
        left_shift: LEFT_SHIFT,
        multipliers,
        shifts,
        clamp: int8_clamp(clamp, output),
    })
}
