//! Loading a graph header: decoding it piece by piece, then every check of the module
//! documentation. [`prepare`] turns one node into what its kernel takes, checking it against
//! its tensors; load runs it with the data scans, inference again without them.

use crate::error::ModelError;
use crate::format::layout::{Section, SectionKind, to_usize};
use crate::ops::dot::MAX_DOT_LEN;
use crate::ops::kernels::Kernels;
use crate::quant::{SHIFT_RANGE, valid_scale};
use crate::shape::MapShape;

use super::channel_data::ChannelData;
use super::conv_params::ConvParams;
use super::error::{GraphError, SectionProblem};
use super::format::{
    self, ChannelSections, MAX_NODES, MAX_TENSORS, Node, NodeOp, TensorDesc, Window, map,
};
use super::in_place::Staging;
use super::kernels::{AddOp, window_len};
pub(crate) use super::prepared_node::Prepared;
use super::view::Graph;

fn len(desc: &TensorDesc) -> usize {
    map(desc).checked_len().unwrap_or(usize::MAX)
}

/// The postcard list of at most `max` `T`s that `bytes` starts with: its length, its bytes
/// and what follows. Each element is decoded here only to find the list's end, then again
/// where needed: no table of decoded elements on the stack (the load's stack peak). Never
/// inlined: the element it decodes (a node is about 100 B) is off [`load`]'s frame, which is
/// under every check.
#[inline(never)]
fn list<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    max: usize,
) -> Result<(usize, &[u8], &[u8]), ModelError> {
    let decode = ModelError::HeaderDecode;
    let (count, start) = postcard::take_from_bytes::<u32>(bytes).map_err(|_| decode)?;
    let count = to_usize(count);
    if count > max {
        return Err(decode);
    }
    let mut rest = start;
    for _ in 0..count {
        rest = postcard::take_from_bytes::<T>(rest).map_err(|_| decode)?.1;
    }
    let list = start.get(..start.len() - rest.len()).unwrap_or_default();
    Ok((count, list, rest))
}

/// Decodes `header` (a graph header) and checks it all against `data` (the bytes after
/// the header's padding up to the checksum).
// Never inlined: loading a chain must not carry this function's tensor tables on its stack.
#[inline(never)]
pub(crate) fn load<'a>(header: &'a [u8], data: &'a [u8]) -> Result<Graph<'a>, ModelError> {
    let decode = ModelError::HeaderDecode;
    let (tensor_count, tensor_bytes, rest) = list::<TensorDesc>(header, MAX_TENSORS)?;
    let (node_count, node_bytes, rest) = list::<Node>(rest, MAX_NODES)?;
    let (output, rest) = postcard::take_from_bytes::<u16>(rest).map_err(|_| decode)?;
    let (arena_len, rest) = postcard::take_from_bytes::<u32>(rest).map_err(|_| decode)?;
    let (data_len, rest) = postcard::take_from_bytes::<u32>(rest).map_err(|_| decode)?;
    if !rest.is_empty() {
        return Err(ModelError::HeaderTrailingBytes);
    }
    if data.len() != to_usize(data_len) {
        return Err(ModelError::DataLength {
            header: data_len,
            actual: data.len(),
        });
    }
    let arena_len = to_usize(arena_len);
    let tensors = Tensors {
        bytes: tensor_bytes,
        count: tensor_count,
    };
    check(tensors, node_bytes, node_count, data, output, arena_len).map_err(ModelError::Graph)
}

/// The encoded tensor list, decoded as it is walked.
#[derive(Clone, Copy)]
struct Tensors<'a> {
    bytes: &'a [u8],
    count: usize,
}

impl Tensors<'_> {
    fn iter(&self) -> impl Iterator<Item = TensorDesc> + Clone + '_ {
        let mut bytes = self.bytes;
        (0..self.count).map_while(move |_| {
            let (tensor, rest) = postcard::take_from_bytes(bytes).ok()?;
            bytes = rest;
            Some(tensor)
        })
    }

    fn get(&self, index: usize) -> Option<TensorDesc> {
        self.iter().nth(index)
    }
}

/// A tensor's first node (its writer) and last node, in `u8`: at most [`MAX_NODES`] nodes.
const UNBORN: u8 = u8::MAX;

fn check<'a>(
    tensors: Tensors<'a>,
    node_bytes: &'a [u8],
    node_count: usize,
    data: &'a [u8],
    output: u16,
    arena_len: usize,
) -> Result<Graph<'a>, GraphError> {
    use GraphError::*;
    let image = &tensors.get(0).ok_or(BadInputTensor)?;
    // The image is always read as pixel - 128; its scale and zero point say what the float
    // model saw (pixel/255 by default, or config.yaml's per-channel normalization).
    if !valid_scale(image.quant.scale) || map(image).checked_len().is_none_or(|n| n == 0) {
        return Err(BadInputTensor);
    }
    if node_count == 0 {
        return Err(NoNodes);
    }
    for (t, tensor) in tensors.iter().enumerate() {
        let t = t as u16;
        let tensor = &tensor;
        if map(tensor).checked_len().is_none_or(|n| n == 0) {
            return Err(BadTensorSize { tensor: t });
        }
        if !valid_scale(tensor.quant.scale) {
            return Err(BadQuant { tensor: t });
        }
        if to_usize(tensor.offset).saturating_add(len(tensor)) > arena_len {
            return Err(OutsideArena { tensor: t });
        }
    }
    // Lifetimes: the node that writes each tensor and the last node that reads it.
    let mut lives = Lives {
        born: [UNBORN; MAX_TENSORS],
        dies: [0; MAX_TENSORS],
        takeable: 0,
        in_place_nodes: 0,
        kernels: super::kernel_table::KernelTable::default(),
        scratch_len: 0,
    };
    lives.born[0] = 0;
    let mut bytes = node_bytes;
    for index in 0..node_count {
        bytes = check_node(tensors, data, bytes, index, &mut lives)?;
    }
    for (t, &b) in lives.born.iter().enumerate().take(tensors.count) {
        if b == UNBORN {
            return Err(NeverWritten { tensor: t as u16 });
        }
    }
    let out_desc = &tensors.get(usize::from(output)).ok_or(BadOutput)?;
    if out_desc.shape.h != 1 || out_desc.shape.w != 1 {
        return Err(BadOutput);
    }
    // The logits outlive the inference.
    if let Some(d) = lives.dies.get_mut(usize::from(output)) {
        *d = node_count as u8;
    }
    check_overlaps(tensors, &lives)?;
    Ok(Graph::from_parts(
        (tensors.bytes, tensors.count),
        (node_bytes, node_count),
        data,
        output,
        lives.kernels,
        (
            arena_len,
            lives.scratch_len,
            map(image),
            len(out_desc),
            out_desc.quant,
        ),
    ))
}

/// What the node checks leave for the graph's: each tensor's writer and last reader, the
/// nodes that may write over an input and the inputs they may take, each node's kernel and
/// the scratch.
struct Lives {
    born: [u8; MAX_TENSORS],
    dies: [u8; MAX_TENSORS],
    /// Bit t: tensor t may be written over at its last reader (`in_place_nodes`, bit n: node
    /// n may write over an input): an Add (or ConvAdd) of two different tensors, or a node
    /// `Staging` allows.
    takeable: u64,
    in_place_nodes: u64,
    kernels: super::kernel_table::KernelTable,
    scratch_len: usize,
}

/// Node `index`, decoded from the front of `bytes`, checked against its tensors into
/// `lives`; returns the bytes after it. Never inlined: the decoded node, its tensors and
/// its prepared form sit in this frame alone, not in [`check`]'s under the overlap scan (the
/// load's stack peak).
#[inline(never)]
fn check_node<'b>(
    tensors: Tensors<'_>,
    data: &[u8],
    bytes: &'b [u8],
    index: usize,
    lives: &mut Lives,
) -> Result<&'b [u8], GraphError> {
    use GraphError::*;
    let Lives {
        born,
        dies,
        takeable,
        in_place_nodes,
        kernels,
        scratch_len,
    } = lives;
    // Both by reference: moving the node out of the `Result`, or the prepared node below,
    // would copy it in this frame (the load's stack peak).
    let decoded = postcard::take_from_bytes::<Node>(bytes);
    let Ok((node, rest)) = &decoded else {
        return Err(NoNodes);
    };
    let describe = |t: u16| {
        tensors
            .get(usize::from(t))
            .map(|d| (t, d))
            .ok_or(UnknownTensor {
                node: index,
                tensor: t,
            })
    };
    let mut inputs: heapless::Vec<(u16, TensorDesc), 2> = heapless::Vec::new();
    for &t in &node.inputs {
        let described = describe(t)?;
        let slot = usize::from(t);
        if born.get(slot).is_none_or(|&b| b == UNBORN) {
            return Err(NotTopological {
                node: index,
                tensor: t,
            });
        }
        if let Some(d) = dies.get_mut(slot) {
            *d = index as u8;
        }
        let _ = inputs.push(described);
    }
    let out = describe(node.output)?;
    let slot = usize::from(node.output);
    // `get_mut`, not indexing: `describe` bounds the id by the tensor count, which the
    // compiler cannot relate to MAX_TENSORS (the panic-never check).
    let (Some(born_at), Some(dies_at)) = (born.get_mut(slot), dies.get_mut(slot)) else {
        return Err(UnknownTensor {
            node: index,
            tensor: node.output,
        });
    };
    if *born_at != UNBORN {
        return Err(WrittenTwice {
            node: index,
            tensor: node.output,
        });
    }
    *born_at = index as u8;
    *dies_at = index as u8;
    let prepared = prepare(data, node, index, &inputs, &out, true);
    let prepared = prepared.as_ref().map_err(|e| *e)?;
    let bit = |t: Option<&u16>| t.map_or(0, |&t| 1_u64.checked_shl(u32::from(t)).unwrap_or(0));
    // Which inputs this node, if it is their last reader, may write over: both of an
    // Add's, only the residual of a fused ConvAdd (the conv reads its input throughout).
    for t in &node.inputs {
        *takeable &= !bit(Some(t));
    }
    // ... and the only input of a node that stages it through the scratch (`in_place`).
    let (first, second) = (node.inputs.first(), node.inputs.get(1));
    let first_desc = inputs.first().map(|(_, d)| d);
    let staged = first_desc.is_some_and(|d| Staging::of(&node.op, map(d), map(&out.1)).is_some());
    let taken = match node.op {
        NodeOp::Add(_) if first != second => bit(first) | bit(second),
        NodeOp::ConvAdd(_) if first != second => bit(second),
        _ if staged => bit(first),
        _ => 0,
    };
    *takeable |= taken;
    if taken != 0 {
        *in_place_nodes |= 1_u64.checked_shl(index as u32).unwrap_or(0);
    }
    // The kernel this target runs the node with, once for good, and the scratch it takes
    // (with the staging, for a node planned in place).
    let (kernel, scratch) = match first_desc {
        Some(d) => super::fast::node_scratch(prepared, Kernels::NATIVE, &node.op, (d, &out.1)),
        None => super::fast::choose(prepared, Kernels::NATIVE),
    };
    kernels.set(index, &node.op, kernel);
    *scratch_len = (*scratch_len).max(scratch);
    Ok(rest)
}

/// No two tensors alive at once share bytes, but for a node in place over its input.
#[inline(never)]
fn check_overlaps(tensors: Tensors<'_>, lives: &Lives) -> Result<(), GraphError> {
    use GraphError::Overlap;
    let Lives {
        born,
        dies,
        takeable,
        in_place_nodes,
        ..
    } = lives;
    // The one overlap allowed: tensor `y` written by an in-place node at the offset of its
    // input `x` (a ConvAdd: its residual), which that node is the last to read. An Add's
    // tensors have one shape (`prepare`); a staged node's output may be shorter or, for a
    // pointwise Conv, longer, and any other tensor it reaches is an overlap below.
    let in_place = |(x, tx): (usize, &TensorDesc), (y, ty): (usize, &TensorDesc)| {
        let (Some(&born_x), Some(&born_y), Some(&dies_x)) = (born.get(x), born.get(y), dies.get(x))
        else {
            return false;
        };
        born_x < born_y
            && dies_x == born_y
            && takeable.checked_shr(x as u32).unwrap_or(0) & 1 == 1
            && in_place_nodes.checked_shr(u32::from(born_y)).unwrap_or(0) & 1 == 1
            && tx.offset == ty.offset
    };
    let lives = born.iter().zip(dies.iter());
    for (a, (ta, (&born_a, &dies_a))) in tensors.iter().zip(lives.clone()).enumerate() {
        for (b, (tb, (&born_b, &dies_b))) in
            tensors.iter().zip(lives.clone()).enumerate().skip(a + 1)
        {
            let together = born_a <= dies_b && born_b <= dies_a;
            let (sa, sb) = (to_usize(ta.offset), to_usize(tb.offset));
            let share = sa < sb.saturating_add(len(&tb)) && sb < sa.saturating_add(len(&ta));
            if together && share && !in_place((a, &ta), (b, &tb)) && !in_place((b, &tb), (a, &ta)) {
                return Err(Overlap {
                    first: a as u16,
                    second: b as u16,
                });
            }
        }
    }
    Ok(())
}

/// Multiply-accumulates of one node.
pub(crate) fn node_macs(node: &Node, inputs: &[(u16, TensorDesc)], output: &TensorDesc) -> u64 {
    let in_len = inputs.first().map_or(0, |(_, d)| len(d)) as u64;
    let out = map(output);
    match &node.op {
        NodeOp::Conv(conv) | NodeOp::ConvAdd(format::ConvAdd { conv, .. }) => {
            let in_c = inputs.first().map_or(0, |(_, d)| usize::from(d.shape.c));
            let per_output = (in_c / usize::from(conv.groups.max(1)))
                * usize::from(conv.window.kernel[0])
                * usize::from(conv.window.kernel[1]);
            (len(output) as u64).saturating_mul(per_output as u64)
        }
        NodeOp::Gemm(_) => in_len.saturating_mul(out.c as u64),
        _ => 0,
    }
}

fn clamp_ok(clamp: [i8; 2]) -> bool {
    clamp[0] <= clamp[1]
}

/// Checks `node` against its tensors and returns what its kernel takes; with `scan`, also
/// every weight, multiplier, shift and scale.
pub(crate) fn prepare<'a>(
    data: &'a [u8],
    node: &Node,
    index: usize,
    inputs: &[(u16, TensorDesc)],
    output: &(u16, TensorDesc),
    scan: bool,
) -> Result<Prepared<'a>, GraphError> {
    use GraphError::*;
    let count = if matches!(node.op, NodeOp::Add(_) | NodeOp::ConvAdd(_)) {
        2
    } else {
        1
    };
    let [first, rest @ ..] = inputs else {
        return Err(InputCount { node: index });
    };
    if inputs.len() != count {
        return Err(InputCount { node: index });
    }
    let (in_desc, (out_t, out_desc)) = (&first.1, output);
    let (in_shape, out_shape) = (map(in_desc), map(out_desc));
    let mismatch = ShapeMismatch {
        node: index,
        tensor: *out_t,
    };
    let same_quant = || {
        if in_desc.quant == out_desc.quant {
            Ok(())
        } else {
            Err(BadQuant { tensor: *out_t })
        }
    };
    let windowed = |window: &Window| -> Result<MapShape, GraphError> {
        let bad = BadWindow { node: index };
        let [kh, kw] = window.kernel;
        let [pt, pl, pb, pr] = window.pads;
        if kh == 0 || kw == 0 || window.stride.contains(&0) {
            return Err(bad);
        }
        if pt >= kh || pb >= kh || pl >= kw || pr >= kw {
            return Err(bad);
        }
        Ok(MapShape {
            c: in_shape.c,
            h: window_len(in_shape.h, kh, window.stride[0], pt, pb).ok_or(bad)?,
            w: window_len(in_shape.w, kw, window.stride[1], pl, pr).ok_or(bad)?,
        })
    };
    let prepared = match &node.op {
        NodeOp::Conv(conv) => Prepared::Conv(conv_params(
            data,
            conv,
            windowed(&conv.window)?,
            (in_desc, out_shape, *out_t),
            out_desc.quant.zero_point,
            index,
            scan,
        )?),
        NodeOp::ConvAdd(fused) => {
            let conv = conv_params(
                data,
                &fused.conv,
                windowed(&fused.conv.window)?,
                (in_desc, out_shape, *out_t),
                fused.conv_zero_point,
                index,
                scan,
            )?;
            let residual = rest.first().map(|(_, d)| d);
            if residual.map(map) != Some(out_shape) {
                return Err(mismatch);
            }
            add_ok(&fused.add, index)?;
            let residual = AddOp {
                params: fused.add,
                zero_points: [
                    fused.conv_zero_point,
                    residual.map_or(0, |d| d.quant.zero_point),
                    out_desc.quant.zero_point,
                ],
            };
            Prepared::ConvAdd(conv, residual)
        }
        NodeOp::MaxPool(window) | NodeOp::AveragePool { window, .. } => {
            if windowed(window)? != out_shape {
                return Err(mismatch);
            }
            same_quant()?;
            let average = match node.op {
                NodeOp::AveragePool {
                    count_include_pad, ..
                } => Some((count_include_pad, in_desc.quant.zero_point)),
                _ => None,
            };
            Prepared::Pool {
                in_shape,
                out_shape,
                window: *window,
                average,
            }
        }
        NodeOp::GlobalAveragePool => {
            let expected = MapShape {
                c: in_shape.c,
                h: 1,
                w: 1,
            };
            if expected != out_shape {
                return Err(mismatch);
            }
            same_quant()?;
            Prepared::GlobalAverage { in_shape }
        }
        NodeOp::Add(add) => {
            let other = rest.first().map(|(_, d)| map(d));
            if other != Some(in_shape) || in_shape != out_shape {
                return Err(mismatch);
            }
            add_ok(add, index)?;
            let zb = rest.first().map_or(0, |(_, d)| d.quant.zero_point);
            Prepared::Add(AddOp {
                params: *add,
                zero_points: [in_desc.quant.zero_point, zb, out_desc.quant.zero_point],
            })
        }
        NodeOp::Gemm(gemm) => {
            let in_features = len(in_desc);
            if out_shape.h != 1 || out_shape.w != 1 {
                return Err(mismatch);
            }
            let (weights, channels) = dot_products(
                data,
                (gemm.weights, &gemm.channels, gemm.clamp),
                (out_shape.c, in_features),
                out_desc.quant.zero_point,
                index,
                scan,
            )?;
            Prepared::Gemm { weights, channels }
        }
    };
    Ok(prepared)
}

/// The Add's parameters in range.
fn add_ok(add: &format::Add, index: usize) -> Result<(), GraphError> {
    let shifts_ok = add.shifts.iter().all(|s| (-31..=0).contains(s));
    if add.left_shift > 20 || add.multipliers.iter().any(|&m| m < 0) || !shifts_ok {
        return Err(GraphError::BadAdd { node: index });
    }
    if !clamp_ok(add.clamp) {
        return Err(GraphError::BadClamp { node: index });
    }
    Ok(())
}

/// A Conv's checks (its window's output `expected` with the output's channels, groups,
/// clamp, dot length, sections): its parameters, reading `in_desc` and requantizing to
/// `zero_point`.
fn conv_params<'a>(
    data: &'a [u8],
    conv: &format::Conv,
    mut expected: MapShape,
    (in_desc, out_shape, out_t): (&TensorDesc, MapShape, u16),
    zero_point: i8,
    index: usize,
    scan: bool,
) -> Result<ConvParams<'a>, GraphError> {
    use GraphError::*;
    let in_shape = map(in_desc);
    expected.c = out_shape.c;
    if expected != out_shape {
        return Err(ShapeMismatch {
            node: index,
            tensor: out_t,
        });
    }
    let groups = usize::from(conv.groups);
    if groups == 0 || !in_shape.c.is_multiple_of(groups) || !out_shape.c.is_multiple_of(groups) {
        return Err(BadGroups { node: index });
    }
    let [kh, kw] = conv.window.kernel.map(usize::from);
    let (weights, channels) = dot_products(
        data,
        (conv.weights, &conv.channels, conv.clamp),
        (out_shape.c, in_shape.c / groups * kh * kw),
        zero_point,
        index,
        scan,
    )?;
    Ok(ConvParams {
        in_shape,
        out_shape,
        window: conv.window,
        groups: conv.groups,
        input_zero_point: in_desc.quant.zero_point,
        weights,
        channels,
    })
}

/// The checks a Conv and a Gemm share (each output a dot product of `per_output` weights
/// with its clamp, the weights and per-channel sections of `out_c` channels): the weights
/// and channel data, requantizing to `zero_point`.
fn dot_products<'a>(
    data: &'a [u8],
    (weights_section, channel_sections, clamp): (Section, &ChannelSections, [i8; 2]),
    (out_c, per_output): (usize, usize),
    zero_point: i8,
    index: usize,
    scan: bool,
) -> Result<(&'a [i8], ChannelData<'a>), GraphError> {
    if !clamp_ok(clamp) {
        return Err(GraphError::BadClamp { node: index });
    }
    if per_output > MAX_DOT_LEN {
        return Err(GraphError::DotTooLong { node: index });
    }
    let weights = weights(data, weights_section, out_c * per_output, index, scan)?;
    let channels = channels(
        data,
        channel_sections,
        out_c,
        zero_point,
        clamp,
        index,
        scan,
    )?;
    Ok((weights, channels))
}

fn section(
    data: &[u8],
    section: Section,
    count: usize,
    size: usize,
    node: usize,
    kind: SectionKind,
) -> Result<&[u8], GraphError> {
    let problem = |problem| GraphError::Section {
        node,
        section: kind,
        problem,
    };
    if count.checked_mul(size) != Some(to_usize(section.len)) {
        return Err(problem(SectionProblem::Length));
    }
    let start = to_usize(section.offset);
    let bytes = start
        .checked_add(to_usize(section.len))
        .and_then(|end| data.get(start..end))
        .ok_or(problem(SectionProblem::OutOfBounds))?;
    if !start.is_multiple_of(size) {
        return Err(problem(SectionProblem::Misaligned));
    }
    Ok(bytes)
}

fn weights(
    data: &[u8],
    s: Section,
    count: usize,
    node: usize,
    scan: bool,
) -> Result<&[i8], GraphError> {
    let weights: &[i8] =
        bytemuck::must_cast_slice(section(data, s, count, 1, node, SectionKind::Weights)?);
    if scan && crate::weight_range::holds_minus_128(weights) {
        return Err(GraphError::WeightOutOfRange { node });
    }
    Ok(weights)
}

fn channels<'a>(
    data: &'a [u8],
    s: &ChannelSections,
    count: usize,
    zero_point: i8,
    clamp: [i8; 2],
    node: usize,
    scan: bool,
) -> Result<ChannelData<'a>, GraphError> {
    let words = |sec, kind| Ok(section(data, sec, count, 4, node, kind)?.as_chunks::<4>().0);
    let bias = words(s.bias, SectionKind::Bias)?;
    let multiplier = words(s.multiplier, SectionKind::Multiplier)?;
    let shift: &[i8] =
        bytemuck::must_cast_slice(section(data, s.shift, count, 1, node, SectionKind::Shift)?);
    let weight_scales = words(s.weight_scales, SectionKind::WeightScales)?;
    if scan {
        if multiplier.iter().any(|m| i32::from_le_bytes(*m) < 0) {
            return Err(GraphError::NegativeMultiplier { node });
        }
        if shift.iter().any(|s| !SHIFT_RANGE.contains(s)) {
            return Err(GraphError::ShiftOutOfRange { node });
        }
        if !weight_scales
            .iter()
            .all(|s| valid_scale(f32::from_le_bytes(*s)))
        {
            return Err(GraphError::BadWeightScale { node });
        }
    }
    Ok(ChannelData {
        bias,
        multiplier,
        shift,
        zero_point,
        clamp,
    })
}
