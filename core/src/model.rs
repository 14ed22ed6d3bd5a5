//! A validated model. [`Model::from_bytes`] checks the whole blob once (integrity, every
//! shape, every section, every parameter range) and keeps a view of it, so inference never
//! copies anything and cannot fail on a model it was given: at run time each layer is
//! decoded again from the header, without the data scans.

use crate::arena;
use crate::error::ModelError;
use crate::format::decode::Decoder;
use crate::format::layout::{
    self as format, Layer, Pool, QuantParams, Requant, Section, SectionKind, to_usize,
};
use crate::format::read::{Parsed, parse};
use crate::graph::view::Graph;
use crate::ops::Op;
use crate::ops::channels::Channels;
use crate::ops::conv2d::Conv2dOp;
use crate::ops::dot::MAX_DOT_LEN;
use crate::ops::kernels::Kernels;
use crate::ops::linear::LinearOp;
use crate::ops::maxpool2d::{MaxPool2dOp, PoolWindow};
use crate::quant::{SHIFT_RANGE, valid_scale};
use crate::shape::{MAX_TENSOR_LEN, MapShape, TensorShape};

/// What a layer computes, for reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayerKind {
    Conv2d {
        kernel: u8,
        stride: u8,
        padding: u8,
        relu: bool,
        pool: Option<Pool>,
    },
    MaxPool2d(Pool),
    Flatten,
    Linear {
        relu: bool,
    },
}

/// One validated layer.
#[derive(Clone, Copy, Debug)]
pub struct CheckedLayer<'a> {
    op: Op<'a>,
    kind: LayerKind,
    input: TensorShape,
    output: TensorShape,
    output_quant: QuantParams,
}

impl<'a> CheckedLayer<'a> {
    pub fn kind(&self) -> LayerKind {
        self.kind
    }

    pub fn input(&self) -> TensorShape {
        self.input
    }

    pub fn output(&self) -> TensorShape {
        self.output
    }

    /// Scale and zero point of this layer's int8 output.
    pub fn output_quant(&self) -> QuantParams {
        self.output_quant
    }

    /// Multiply-accumulates per inference (a fused pool's window counted once per conv output).
    /// Derived from the op when asked, not on every decode: reports want it, inference does
    /// not (flash and instructions on a microcontroller).
    pub fn macs(&self) -> u64 {
        match &self.op {
            Op::Conv2d(op) => op
                .window()
                .output(op.input(), op.output().c)
                .map_or(0, |conv| conv.macs()),
            Op::Linear(op) => (op.in_features() as u64).saturating_mul(op.out_features() as u64),
            Op::MaxPool2d(_) | Op::Flatten => 0,
        }
    }

    /// Bytes of scratch `kernels` take from the arena while this layer runs, between its
    /// input and its output.
    pub fn scratch_len(&self, kernels: Kernels) -> usize {
        self.op.scratch_len(kernels)
    }

    /// Bytes of arena this layer needs with `kernels`: input + scratch + output, or 0 for a
    /// Flatten, which moves nothing; `None` on overflow.
    pub fn arena_need(&self, kernels: Kernels) -> Option<usize> {
        if !self.op.computes() {
            return Some(0);
        }
        arena::layer_need(
            self.input.len(),
            self.op.scratch_len(kernels),
            self.output.len(),
        )
    }

    pub(crate) fn op(&self) -> &Op<'a> {
        &self.op
    }
}

/// A model ready to run: a validated view of the blob. It holds no decoded copy of the
/// layers, only where they are: each layer's parameters are decoded from the blob's header
/// (and its weights borrowed from the data section) when it runs or is listed, which costs a
/// few hundred instructions per layer and keeps `size_of::<Model>()` at 56 bytes on a 32-bit
/// microcontroller (88 on a 64-bit host), 16 more with the `graph` feature for the graph's
/// kernel per node, chosen at load.
#[derive(Clone, Debug)]
pub struct Model<'a> {
    /// The header's postcard-encoded layer list (without its length), validated.
    layers: &'a [u8],
    /// The data section.
    data: &'a [u8],
    // Narrow integers (a validated blob's counts and sizes fit them), so that a graph's
    // extra slice still leaves the view at 11 words on a 64-bit host.
    layer_count: u16,
    input: format::Shape,
    arena_len: usize,
    num_classes: u32,
    output_quant: QuantParams,
    /// A graph blob's encoded tensor list; `layers` then holds its nodes.
    tensors: &'a [u8],
    /// A graph blob's tensor count, output tensor and the scratch its fast kernels take on
    /// this target (at most `graph::fast::MAX_SCRATCH`); `None` for a layer sequence.
    graph: Option<(u16, u16, u16)>,
    /// A graph blob's kernel per node on this target, chosen at load (16 bytes).
    #[cfg(feature = "graph")]
    kernels: crate::graph::kernel_table::KernelTable,
}

impl<'a> Model<'a> {
    /// Validates `blob` completely and keeps a view of it; nothing is copied.
    ///
    /// Checked here, in this order: the prefix (length, magic, version, flags); the checksum
    /// the version names (xxHash32 for versions 3 and 4, CRC-32 for 1 and 2) of every byte
    /// before it; the header's framing (length, decoding, no trailing bytes, `data_len`, zero
    /// padding); then, layer by layer, that the shapes chain and fit, every section's length,
    /// bounds and alignment, every weight in −127..=127, every multiplier non-negative, every
    /// shift in −31..=30, every scale finite and positive; and that the last layer gives a
    /// vector. [`Self::from_bytes_unverified`] is all of this but the checksum.
    pub fn from_bytes(blob: &'a [u8]) -> Result<Self, ModelError> {
        Self::load(blob, true)
    }

    /// Every check of [`Self::from_bytes`] except the checksum over the whole blob, which is
    /// a large part of a load's cost on a microcontroller (the weights dominate the blob).
    /// Inference on the result is still memory-safe and panic-free whatever the bytes; only
    /// a flipped weight or bias bit would go unnoticed. For a blob whose integrity is known
    /// otherwise: checked once with [`verify_checksum`](crate::verify_checksum) after it was written to flash, or
    /// protected by the part's own flash ECC.
    pub fn from_bytes_unverified(blob: &'a [u8]) -> Result<Self, ModelError> {
        Self::load(blob, false)
    }

    fn load(blob: &'a [u8], check_checksum: bool) -> Result<Self, ModelError> {
        let framed = match parse(blob, check_checksum)? {
            Parsed::Sequential(framed) => framed,
            Parsed::Graph(graph) => {
                let (tensors, tensor_count, nodes, node_count, data, output) = graph.parts();
                return Ok(Self {
                    layers: nodes,
                    data,
                    layer_count: u16::try_from(node_count).unwrap_or(u16::MAX),
                    input: narrow(graph.input_shape()),
                    arena_len: graph.arena_len() + graph.scratch_len(),
                    num_classes: u32::try_from(graph.num_classes()).unwrap_or(u32::MAX),
                    output_quant: graph.output_quant(),
                    tensors,
                    graph: Some((tensor_count as u16, output, graph.scratch_len() as u16)),
                    #[cfg(feature = "graph")]
                    kernels: graph.kernels(),
                });
            }
        };
        let input = MapShape {
            c: framed.input.c.into(),
            h: framed.input.h.into(),
            w: framed.input.w.into(),
        };
        if input.c == 0 || input.h == 0 || input.w == 0 {
            return Err(ModelError::EmptyInput);
        }
        let input_len = input.checked_len().ok_or(ModelError::InputTooLarge)?;
        if framed.layer_count == 0 {
            return Err(ModelError::NoLayers);
        }
        let mut walk = Walk::new(framed.layers, framed.layer_count, framed.data, input, true);
        let mut arena_len = input_len;
        // Borrowed where `next_layer` wrote it: moving the layer out would be a `memcpy` call.
        while let Some(checked) = &walk.next_layer() {
            let index = walk.builder.index;
            // Every target's figure must fit `usize`, not only this one's.
            let needs = [Kernels::Portable, Kernels::CortexM4Dsp]
                .map(|k| checked.as_ref().ok()?.arena_need(k));
            if let Err(error) = checked {
                return Err(*error);
            }
            // This target's figure is one of the two: computing it a third time cost 264 B of
            // flash on a Cortex-M4.
            let [Some(portable), Some(dsp)] = needs else {
                return Err(ModelError::TooLarge { layer: index });
            };
            let need = match Kernels::NATIVE {
                Kernels::Portable => portable,
                Kernels::CortexM4Dsp => dsp,
            };
            arena_len = arena_len.max(need);
        }
        let TensorShape::Vector(num_classes) = walk.builder.shape else {
            return Err(ModelError::OutputNotVector);
        };
        Ok(Self {
            layers: framed.layers,
            data: framed.data,
            layer_count: u16::try_from(framed.layer_count).unwrap_or(u16::MAX),
            input: framed.input,
            arena_len,
            num_classes: u32::try_from(num_classes).unwrap_or(u32::MAX),
            output_quant: walk.builder.quant,
            tensors: &[],
            graph: None,
            #[cfg(feature = "graph")]
            kernels: Default::default(),
        })
    }

    /// The graph of a graph blob (version 4, or 2); `None` for a layer sequence (version 3, or 1).
    pub fn graph(&self) -> Option<Graph<'a>> {
        // Without the feature no graph was ever loaded: this lets the linker drop the runner.
        if !cfg!(feature = "graph") {
            return None;
        }
        let (tensor_count, output, scratch) = self.graph?;
        #[cfg(feature = "graph")]
        let kernels = self.kernels;
        #[cfg(not(feature = "graph"))]
        let kernels = Default::default();
        let scratch = usize::from(scratch);
        Some(Graph::from_parts(
            (self.tensors, usize::from(tensor_count)),
            (self.layers, usize::from(self.layer_count)),
            self.data,
            output,
            kernels,
            (
                self.arena_len.saturating_sub(scratch),
                scratch,
                self.input_shape(),
                self.num_classes(),
                self.output_quant,
            ),
        ))
    }

    /// Bytes of arena `infer` needs on this target: the most any layer needs for its input,
    /// its output and its kernels' scratch (see `ops::scratch`), and at least the image.
    pub fn arena_len(&self) -> usize {
        self.arena_len
    }

    /// [`Self::arena_len`] on a target with other kernels: what a build script on the host
    /// sizes a Cortex-M4's arena with (`Kernels::for_target`).
    pub fn arena_len_for(&self, kernels: Kernels) -> usize {
        if let Some(graph) = self.graph() {
            // The planned tensors, then the scratch of the fast kernels `kernels` would run.
            return graph.arena_len() + graph.scratch_len_for(kernels);
        }
        self.layers().fold(self.input_len(), |len, layer| {
            len.max(layer.arena_need(kernels).unwrap_or(usize::MAX))
        })
    }

    /// The input image's shape; the image is `c·h·w` u8 pixels in C,H,W order.
    pub fn input_shape(&self) -> MapShape {
        MapShape {
            c: self.input.c.into(),
            h: self.input.h.into(),
            w: self.input.w.into(),
        }
    }

    /// Bytes in one input image.
    pub fn input_len(&self) -> usize {
        TensorShape::Map(self.input_shape()).len()
    }

    pub fn num_classes(&self) -> usize {
        usize::try_from(self.num_classes).unwrap_or(usize::MAX)
    }

    /// The layers in order, each decoded from the blob as the iterator reaches it.
    pub fn layers(&self) -> Layers<'a> {
        // A graph has nodes, not layers: see [`Self::graph`].
        let count = if self.graph.is_some() {
            0
        } else {
            usize::from(self.layer_count)
        };
        Layers {
            walk: Walk::new(self.layers, count, self.data, self.input_shape(), false),
        }
    }

    /// Scale and zero point of the int8 logits.
    pub fn output_quant(&self) -> QuantParams {
        self.output_quant
    }

    /// Multiply-accumulates per inference.
    pub fn macs(&self) -> u64 {
        if let Some(graph) = self.graph() {
            return graph.macs();
        }
        self.layers().fold(0, |sum, l| sum.saturating_add(l.macs()))
    }
}

/// A graph's input shape as the header stores it (its dimensions came from u16 fields).
fn narrow(shape: MapShape) -> format::Shape {
    let n = |v: usize| u16::try_from(v).unwrap_or(u16::MAX);
    format::Shape {
        c: n(shape.c),
        h: n(shape.h),
        w: n(shape.w),
    }
}

/// The layers of a [`Model`], in order: see [`Model::layers`].
#[derive(Clone, Debug)]
pub struct Layers<'a> {
    walk: Walk<'a>,
}

impl<'a> Layers<'a> {
    /// The next layer as the loader's walk returns it, for a caller to borrow where it lies:
    /// [`Iterator::next`]'s conversion to an `Option` moves the layer (over 64 bytes, so a
    /// `memcpy` call on a Cortex-M: flash). A validated model's layers are all `Ok`.
    #[inline]
    pub(crate) fn next_checked(&mut self) -> Option<Result<CheckedLayer<'a>, ModelError>> {
        self.walk.next_layer()
    }
}

impl<'a> Iterator for Layers<'a> {
    type Item = CheckedLayer<'a>;

    fn next(&mut self) -> Option<CheckedLayer<'a>> {
        // A validated model's layers decode again without error.
        self.walk.next_layer()?.ok()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.walk.remaining, Some(self.walk.remaining))
    }
}

impl ExactSizeIterator for Layers<'_> {}

/// Decodes the layer list one layer at a time and checks each against the tensor before it.
#[derive(Clone, Debug)]
struct Walk<'a> {
    bytes: &'a [u8],
    remaining: usize,
    builder: Builder<'a>,
    next_index: usize,
}

impl<'a> Walk<'a> {
    fn new(
        bytes: &'a [u8],
        count: usize,
        data: &'a [u8],
        input: MapShape,
        check_data: bool,
    ) -> Self {
        Self {
            bytes,
            remaining: count,
            builder: Builder {
                data,
                index: 0,
                shape: TensorShape::Map(input),
                quant: QuantParams {
                    scale: format::INPUT_SCALE,
                    zero_point: format::INPUT_ZERO_POINT,
                },
                check_data,
            },
            next_index: 0,
        }
    }

    fn next_layer(&mut self) -> Option<Result<CheckedLayer<'a>, ModelError>> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        let mut decoder = Decoder::new(self.bytes);
        let Some(layer) = decoder.layer() else {
            self.remaining = 0;
            return Some(Err(ModelError::HeaderDecode));
        };
        self.bytes = decoder.rest();
        self.builder.index = self.next_index;
        self.next_index += 1;
        let checked = self.builder.layer(&layer);
        if checked.is_err() {
            self.remaining = 0;
        }
        Some(checked)
    }
}

/// Builds each layer's operator, tracking the tensor between layers.
#[derive(Clone, Debug)]
struct Builder<'a> {
    data: &'a [u8],
    index: usize,
    shape: TensorShape,
    quant: QuantParams,
    /// Whether to scan the data too (every weight, multiplier, shift and scale): at load,
    /// not again each time a validated model's layers are decoded.
    check_data: bool,
}

impl<'a> Builder<'a> {
    fn layer(&mut self, layer: &Layer) -> Result<CheckedLayer<'a>, ModelError> {
        let input = self.shape;
        let (op, kind, output) = match layer {
            Layer::Conv2d(conv) => self.conv2d(conv)?,
            Layer::MaxPool2d(pool) => self.maxpool2d(*pool)?,
            Layer::Flatten => {
                let map = self.map()?;
                (
                    Op::Flatten,
                    LayerKind::Flatten,
                    TensorShape::Vector(TensorShape::Map(map).len()),
                )
            }
            Layer::Linear(linear) => self.linear(linear)?,
        };
        self.shape = output;
        Ok(CheckedLayer {
            op,
            kind,
            input,
            output,
            output_quant: self.quant,
        })
    }

    fn conv2d(
        &mut self,
        conv: &format::Conv2d,
    ) -> Result<(Op<'a>, LayerKind, TensorShape), ModelError> {
        let layer = self.index;
        let input = self.map()?;
        if usize::from(conv.in_channels) != input.c {
            return Err(ModelError::ChannelMismatch {
                layer,
                expected: input.c,
                found: conv.in_channels,
            });
        }
        if conv.kernel.is_multiple_of(2) {
            return Err(ModelError::BadKernel { layer });
        }
        if !(1..=2).contains(&conv.stride) {
            return Err(ModelError::BadStride { layer });
        }
        let pool = match conv.pool {
            Some(pool) => self.window(pool)?,
            None => PoolWindow::IDENTITY,
        };
        let (kernel, stride, padding) = (
            usize::from(conv.kernel),
            usize::from(conv.stride),
            usize::from(conv.padding),
        );
        let empty = ModelError::EmptyOutput { layer };
        let conv_len = |n| crate::shape::window_len(n, kernel, stride, padding, padding);
        let (conv_h, conv_w) = (
            conv_len(input.h).ok_or(empty)?,
            conv_len(input.w).ok_or(empty)?,
        );
        let output = MapShape {
            c: usize::from(conv.out_channels),
            h: pool.output_len(conv_h).ok_or(empty)?,
            w: pool.output_len(conv_w).ok_or(empty)?,
        };
        if output.c == 0 {
            return Err(empty);
        }
        let too_large = ModelError::TooLarge { layer };
        output.checked_len().ok_or(too_large)?;
        let per_output = input.c.checked_mul(kernel * kernel).ok_or(too_large)?;
        if per_output > MAX_DOT_LEN {
            return Err(ModelError::DotTooLong { layer });
        }
        let weights = self.weights(
            conv.weights,
            output.c.checked_mul(per_output).ok_or(too_large)?,
        )?;
        let channels = self.channels(&conv.requant, output.c, conv.relu)?;
        let op = Conv2dOp {
            input,
            output,
            kernel,
            stride,
            padding,
            pool,
            weights,
            channels,
            input_zero_point: self.quant.zero_point,
        };
        self.quant = conv.requant.output;
        let kind = LayerKind::Conv2d {
            kernel: conv.kernel,
            stride: conv.stride,
            padding: conv.padding,
            relu: conv.relu,
            pool: conv.pool,
        };
        Ok((Op::Conv2d(op), kind, TensorShape::Map(output)))
    }

    fn maxpool2d(&mut self, pool: Pool) -> Result<(Op<'a>, LayerKind, TensorShape), ModelError> {
        let input = self.map()?;
        let window = self.window(pool)?;
        let empty = ModelError::EmptyOutput { layer: self.index };
        let output = MapShape {
            c: input.c,
            h: window.output_len(input.h).ok_or(empty)?,
            w: window.output_len(input.w).ok_or(empty)?,
        };
        let op = MaxPool2dOp {
            input,
            output,
            window,
        };
        Ok((
            Op::MaxPool2d(op),
            LayerKind::MaxPool2d(pool),
            TensorShape::Map(output),
        ))
    }

    fn linear(
        &mut self,
        linear: &format::Linear,
    ) -> Result<(Op<'a>, LayerKind, TensorShape), ModelError> {
        let layer = self.index;
        let TensorShape::Vector(in_features) = self.shape else {
            return Err(ModelError::NeedsVector { layer });
        };
        if to_usize(linear.in_features) != in_features {
            return Err(ModelError::FeatureMismatch {
                layer,
                expected: in_features,
                found: linear.in_features,
            });
        }
        let out_features = to_usize(linear.out_features);
        if out_features == 0 {
            return Err(ModelError::EmptyOutput { layer });
        }
        if out_features > MAX_TENSOR_LEN {
            return Err(ModelError::TooLarge { layer });
        }
        if in_features > MAX_DOT_LEN {
            return Err(ModelError::DotTooLong { layer });
        }
        let count = out_features
            .checked_mul(in_features)
            .ok_or(ModelError::TooLarge { layer })?;
        let weights = self.weights(linear.weights, count)?;
        let channels = self.channels(&linear.requant, out_features, linear.relu)?;
        self.quant = linear.requant.output;
        let op = LinearOp {
            in_features,
            weights,
            channels,
        };
        let kind = LayerKind::Linear { relu: linear.relu };
        Ok((Op::Linear(op), kind, TensorShape::Vector(out_features)))
    }

    fn map(&self) -> Result<MapShape, ModelError> {
        match self.shape {
            TensorShape::Map(map) => Ok(map),
            TensorShape::Vector(_) => Err(ModelError::NeedsMap { layer: self.index }),
        }
    }

    fn window(&self, pool: Pool) -> Result<PoolWindow, ModelError> {
        if pool.kernel == 0 || pool.stride == 0 {
            return Err(ModelError::BadPool { layer: self.index });
        }
        Ok(PoolWindow {
            kernel: pool.kernel.into(),
            stride: pool.stride.into(),
        })
    }

    fn weights(&self, section: Section, count: usize) -> Result<&'a [i8], ModelError> {
        let weights: &[i8] =
            bytemuck::must_cast_slice(self.section(section, count, 1, SectionKind::Weights)?);
        if self.check_data && crate::weight_range::holds_minus_128(weights) {
            return Err(ModelError::WeightOutOfRange { layer: self.index });
        }
        Ok(weights)
    }

    fn channels(
        &self,
        requant: &Requant,
        count: usize,
        relu: bool,
    ) -> Result<Channels<'a>, ModelError> {
        let layer = self.index;
        let words = |section, kind| Ok(self.section(section, count, 4, kind)?.as_chunks::<4>().0);
        let bias = words(requant.bias, SectionKind::Bias)?;
        let multiplier = words(requant.multiplier, SectionKind::Multiplier)?;
        let shift: &[i8] =
            bytemuck::must_cast_slice(self.section(requant.shift, count, 1, SectionKind::Shift)?);
        let weight_scales = words(requant.weight_scales, SectionKind::WeightScales)?;
        if self.check_data {
            if multiplier.iter().any(|m| i32::from_le_bytes(*m) < 0) {
                return Err(ModelError::NegativeMultiplier { layer });
            }
            if shift.iter().any(|s| !SHIFT_RANGE.contains(s)) {
                return Err(ModelError::ShiftOutOfRange { layer });
            }
            if !weight_scales
                .iter()
                .all(|s| valid_scale(f32::from_le_bytes(*s)))
            {
                return Err(ModelError::BadWeightScale { layer });
            }
            if !valid_scale(requant.output.scale) {
                return Err(ModelError::BadOutputScale { layer });
            }
        }
        Ok(Channels {
            bias,
            multiplier,
            shift,
            zero_point: requant.output.zero_point,
            relu,
        })
    }

    /// The bytes of `section`, which must hold `count` elements of `size` bytes, lie inside
    /// the data, and (for 4-byte elements) start 4-aligned.
    fn section(
        &self,
        section: Section,
        count: usize,
        size: usize,
        kind: SectionKind,
    ) -> Result<&'a [u8], ModelError> {
        let layer = self.index;
        if count.checked_mul(size) != Some(to_usize(section.len)) {
            return Err(ModelError::SectionLength {
                layer,
                section: kind,
            });
        }
        let start = to_usize(section.offset);
        let bytes = start
            .checked_add(to_usize(section.len))
            .and_then(|end| self.data.get(start..end))
            .ok_or(ModelError::SectionOutOfBounds {
                layer,
                section: kind,
            })?;
        if !start.is_multiple_of(size) {
            return Err(ModelError::SectionMisaligned {
                layer,
                section: kind,
            });
        }
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checksum::Checksum;
    use crate::format::PREFIX_LEN;
    use crate::format::read::verify_checksum;
    use crate::format::{Conv2d, Header, Linear};
    use crate::test_blob::{Spec, encode, fix_checksum, with_version};
    use crate::test_util::SplitMix;

    /// input 1×6×6 → Conv2d 1→2 3×3 pad 1 + ReLU + MaxPool 2 → 2×3×3 → Flatten → Linear 18→4.
    fn fixture() -> (Header, Vec<u8>) {
        let mut rng = SplitMix(99);
        let mut spec = Spec::new(MapShape { c: 1, h: 6, w: 6 });
        spec.conv(&mut rng, 2, (3, 1, 1), (2, 2), true);
        spec.flatten();
        spec.linear(&mut rng, 4, false);
        spec.header_and_data()
    }

    fn conv(header: &mut Header) -> &mut Conv2d {
        match &mut header.layers[0] {
            Layer::Conv2d(conv) => conv,
            other => panic!("{other:?}"),
        }
    }

    fn linear(header: &mut Header) -> &mut Linear {
        match &mut header.layers[2] {
            Layer::Linear(linear) => linear,
            other => panic!("{other:?}"),
        }
    }

    /// The fixture with its header and data edited, encoded by the crate's encoder.
    fn edited(edit: impl FnOnce(&mut Header, &mut Vec<u8>)) -> Vec<u8> {
        let (mut header, mut data) = fixture();
        edit(&mut header, &mut data);
        encode(&header, &data)
    }

    /// The fixture's bytes edited after encoding; `reseal` recomputes the checksum.
    fn patched(reseal: bool, edit: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
        let (header, data) = fixture();
        let mut blob = encode(&header, &data);
        edit(&mut blob);
        if reseal {
            fix_checksum(&mut blob);
        }
        blob
    }

    fn header_len(blob: &[u8]) -> usize {
        u32::from_le_bytes(blob[8..12].try_into().unwrap()) as usize
    }

    fn at(section: Section) -> usize {
        section.offset as usize
    }

    /// Forces this test to list every variant: adding one without a crafted blob fails to
    /// compile here.
    fn variant(e: &ModelError) -> usize {
        use ModelError::*;
        match e {
            TooShort { .. } => 0,
            BadMagic => 1,
            UnsupportedVersion { .. } => 2,
            UnknownFlags { .. } => 3,
            ChecksumMismatch { .. } => 4,
            HeaderOutOfBounds { .. } => 5,
            HeaderDecode => 6,
            HeaderTrailingBytes => 7,
            NonZeroPadding => 8,
            DataLength { .. } => 9,
            EmptyInput => 10,
            InputTooLarge => 11,
            NoLayers => 12,
            NeedsMap { .. } => 13,
            NeedsVector { .. } => 14,
            ChannelMismatch { .. } => 15,
            FeatureMismatch { .. } => 16,
            BadKernel { .. } => 17,
            BadStride { .. } => 18,
            BadPool { .. } => 19,
            EmptyOutput { .. } => 20,
            TooLarge { .. } => 21,
            DotTooLong { .. } => 22,
            SectionLength { .. } => 23,
            SectionOutOfBounds { .. } => 24,
            SectionMisaligned { .. } => 25,
            WeightOutOfRange { .. } => 26,
            NegativeMultiplier { .. } => 27,
            ShiftOutOfRange { .. } => 28,
            BadOutputScale { .. } => 29,
            BadWeightScale { .. } => 30,
            OutputNotVector => 31,
            Graph(_) => 32,
            GraphSupportNotBuilt => 33,
        }
    }
    const VARIANTS: usize = 34;

    #[test]
    fn fixture_is_valid() {
        let (header, data) = fixture();
        let blob = encode(&header, &data);
        let model = Model::from_bytes(&blob).unwrap();
        assert_eq!(model.num_classes(), 4);
        let layers: Vec<CheckedLayer> = model.layers().collect();
        assert_eq!(layers.len(), 3);
        assert_eq!(
            layers[0].output(),
            TensorShape::Map(MapShape { c: 2, h: 3, w: 3 })
        );
        assert_eq!(layers[1].output(), TensorShape::Vector(18));
        // The conv's input, output and scratch: im2col's four patches of 9 bytes padded to
        // 16 and its 2 × 16 padded weights; the Cortex-M4 path's buffers (81 words).
        assert_eq!(layers[0].scratch_len(Kernels::Portable), 4 * 16 + 2 * 16);
        assert_eq!(layers[0].scratch_len(Kernels::CortexM4Dsp), 81 * 4 + 3);
        assert_eq!(model.arena_len_for(Kernels::Portable), 36 + 96 + 18);
        assert_eq!(model.arena_len_for(Kernels::CortexM4Dsp), 36 + 327 + 18);
        assert_eq!(
            model.arena_len(),
            model.arena_len_for(Kernels::NATIVE),
            "this target's figure"
        );
    }

    #[test]
    fn every_error_has_a_crafted_blob() {
        use ModelError::*;
        use SectionKind::*;
        let (header, data) = fixture();
        let valid = encode(&header, &data);
        let data_len = data.len() as u32;
        let padding = format::data_offset(header_len(&valid)) - PREFIX_LEN - header_len(&valid);
        assert!(
            padding > 0,
            "the fixture must have header padding to corrupt"
        );
        let stored_sum = u32::from_le_bytes(valid[valid.len() - 4..].try_into().unwrap());

        let cases: Vec<(&str, Vec<u8>, ModelError)> = vec![
            ("truncated", valid[..15].to_vec(), TooShort { len: 15 }),
            ("magic", patched(false, |b| b[0] = b'X'), BadMagic),
            (
                "version",
                patched(true, |b| b[4] = 5),
                UnsupportedVersion { found: 5 },
            ),
            (
                "flags",
                patched(true, |b| b[6] = 1),
                UnknownFlags { found: 1 },
            ),
            ("checksum", patched(false, |b| b[valid.len() - 5] ^= 1), {
                let mut b = valid.clone();
                b[valid.len() - 5] ^= 1;
                ChecksumMismatch {
                    checksum: Checksum::XxHash32,
                    stored: stored_sum,
                    computed: xxhash_rust::xxh32::xxh32(&b[..b.len() - 4], 0),
                }
            }),
            (
                "header length",
                patched(true, |b| b[8..12].copy_from_slice(&u32::MAX.to_le_bytes())),
                HeaderOutOfBounds {
                    header_len: u32::MAX,
                },
            ),
            (
                "header bytes",
                patched(true, |b| b[8..12].copy_from_slice(&1_u32.to_le_bytes())),
                HeaderDecode,
            ),
            (
                "header trailing",
                patched(true, |b| {
                    let len = header_len(b) as u32 + 4;
                    b[8..12].copy_from_slice(&len.to_le_bytes());
                }),
                HeaderTrailingBytes,
            ),
            (
                "padding",
                patched(true, |b| {
                    let at = PREFIX_LEN + header_len(b);
                    b[at] = 1;
                }),
                NonZeroPadding,
            ),
            (
                "data length",
                patched(true, |b| b.insert(b.len() - 4, 0)),
                DataLength {
                    header: data_len,
                    actual: data.len() + 1,
                },
            ),
            ("empty input", edited(|h, _| h.input.h = 0), EmptyInput),
            (
                "huge input",
                edited(|h, _| {
                    h.input = format::Shape {
                        c: 1,
                        h: 65535,
                        w: 65535,
                    }
                }),
                InputTooLarge,
            ),
            ("no layers", edited(|h, _| h.layers.clear()), NoLayers),
            (
                "flatten twice",
                edited(|h, _| {
                    h.layers = heapless::Vec::from_slice(&[Layer::Flatten, Layer::Flatten]).unwrap()
                }),
                NeedsMap { layer: 1 },
            ),
            (
                "no flatten",
                edited(|h, _| {
                    h.layers.remove(1);
                }),
                NeedsVector { layer: 1 },
            ),
            (
                "conv channels",
                edited(|h, _| conv(h).in_channels = 3),
                ChannelMismatch {
                    layer: 0,
                    expected: 1,
                    found: 3,
                },
            ),
            (
                "linear features",
                edited(|h, _| linear(h).in_features = 17),
                FeatureMismatch {
                    layer: 2,
                    expected: 18,
                    found: 17,
                },
            ),
            (
                "even kernel",
                edited(|h, _| conv(h).kernel = 2),
                BadKernel { layer: 0 },
            ),
            (
                "stride 3",
                edited(|h, _| conv(h).stride = 3),
                BadStride { layer: 0 },
            ),
            (
                "pool 0",
                edited(|h, _| {
                    conv(h).pool = Some(Pool {
                        kernel: 0,
                        stride: 2,
                    })
                }),
                BadPool { layer: 0 },
            ),
            (
                "kernel larger than input",
                edited(|h, _| {
                    conv(h).kernel = 9;
                }),
                EmptyOutput { layer: 0 },
            ),
            (
                "huge output",
                edited(|h, _| {
                    h.input = format::Shape {
                        c: 1,
                        h: 40000,
                        w: 40000,
                    };
                    conv(h).out_channels = 16;
                }),
                TooLarge { layer: 0 },
            ),
            (
                "long dot",
                edited(|h, _| {
                    h.input = format::Shape {
                        c: 65535,
                        h: 1,
                        w: 1,
                    };
                    conv(h).in_channels = 65535;
                    conv(h).pool = None;
                }),
                DotTooLong { layer: 0 },
            ),
            (
                "weights length",
                edited(|h, _| conv(h).weights.len -= 1),
                SectionLength {
                    layer: 0,
                    section: Weights,
                },
            ),
            (
                "weights offset",
                edited(|h, _| conv(h).weights.offset = data_len),
                SectionOutOfBounds {
                    layer: 0,
                    section: Weights,
                },
            ),
            (
                "bias alignment",
                edited(|h, _| conv(h).requant.bias.offset += 1),
                SectionMisaligned {
                    layer: 0,
                    section: Bias,
                },
            ),
            (
                "weight -128",
                edited(|h, d| d[at(conv(h).weights) + 1] = 0x80),
                WeightOutOfRange { layer: 0 },
            ),
            (
                "negative multiplier",
                edited(|h, d| d[at(linear(h).requant.multiplier) + 3] = 0x80),
                NegativeMultiplier { layer: 2 },
            ),
            (
                "shift 31",
                edited(|h, d| d[at(linear(h).requant.shift)] = 31),
                ShiftOutOfRange { layer: 2 },
            ),
            (
                "NaN scale",
                edited(|h, _| linear(h).requant.output.scale = f32::NAN),
                BadOutputScale { layer: 2 },
            ),
            (
                "negative weight scale",
                edited(|h, d| {
                    let at = at(conv(h).requant.weight_scales);
                    d[at..at + 4].copy_from_slice(&(-1.0_f32).to_le_bytes());
                }),
                BadWeightScale { layer: 0 },
            ),
            (
                "no classifier",
                edited(|h, _| h.layers.truncate(1)),
                OutputNotVector,
            ),
            (
                "a graph (version 4) with no nodes; graph::tests has one blob per GraphError",
                {
                    let (mut header, data) = crate::graph::tests::fixture();
                    header.nodes.clear();
                    crate::graph::tests::blob(&header, &data)
                },
                if cfg!(feature = "graph") {
                    Graph(crate::graph::GraphError::NoNodes)
                } else {
                    GraphSupportNotBuilt
                },
            ),
        ];

        // A build reaches only one of the two graph outcomes; scripts/test.sh runs this test
        // with and without the `graph` feature, so each is covered by one of the runs.
        let mut covered = [false; VARIANTS];
        covered[variant(&if cfg!(feature = "graph") {
            GraphSupportNotBuilt
        } else {
            Graph(crate::graph::GraphError::NoNodes)
        })] = true;
        for (name, blob, expected) in &cases {
            let err = Model::from_bytes(blob).expect_err(name);
            assert_eq!(err, *expected, "{name}");
            // Display names the problem; it is never empty.
            assert!(!err.to_string().is_empty());
            covered[variant(&err)] = true;
            // Without the checksum, every other check still refuses the same blob.
            if !matches!(expected, ChecksumMismatch { .. }) {
                assert_eq!(
                    Model::from_bytes_unverified(blob).expect_err(name),
                    *expected,
                    "{name}, unverified"
                );
            }
        }
        assert_eq!(covered, [true; VARIANTS], "variants without a crafted blob");
    }

    #[test]
    fn unverified_load_skips_only_the_checksum() {
        let (header, data) = fixture();
        let valid = encode(&header, &data);
        assert_eq!(verify_checksum(&valid), Ok(()));
        // A flipped bias bit with the old checksum: only the checksum can tell.
        let mut flipped = valid.clone();
        let bias = valid.len() - 4 - data.len() + at(conv(&mut header.clone()).requant.bias);
        flipped[bias] ^= 0x01;
        let err = Model::from_bytes(&flipped).unwrap_err();
        assert!(matches!(err, ModelError::ChecksumMismatch { .. }), "{err}");
        assert!(
            err.to_string().starts_with("xxHash32 mismatch: stored 0x"),
            "{err}"
        );
        assert_eq!(verify_checksum(&flipped), Err(err));
        let model = Model::from_bytes_unverified(&flipped).unwrap();
        assert_eq!(
            model.arena_len(),
            Model::from_bytes(&valid).unwrap().arena_len()
        );
        assert_eq!(
            verify_checksum(&valid[..3]),
            Err(ModelError::TooShort { len: 3 })
        );
        assert_eq!(
            verify_checksum(&with_version(&valid, 5)),
            Err(ModelError::UnsupportedVersion { found: 5 })
        );
        // Any single flipped bit of a blob is refused by the default load.
        for bit in 0..valid.len() * 8 {
            let mut flipped = valid.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            assert!(Model::from_bytes(&flipped).is_err(), "bit {bit}");
        }
    }

    #[test]
    fn version_1_blobs_with_a_crc_32_still_load_and_run_the_same() {
        let (header, data) = fixture();
        let current = encode(&header, &data);
        let old = with_version(&current, format::CRC32_VERSION);
        assert_eq!(old[..current.len() - 4], {
            let mut v = current[..current.len() - 4].to_vec();
            v[4] = 1;
            v
        });
        let crc = crate::crc::Crc32.checksum(&old[..old.len() - 4]);
        assert_eq!(old[old.len() - 4..], crc.to_le_bytes(), "zlib's crc32");
        assert_eq!(verify_checksum(&old), Ok(()));
        let (new_model, old_model) = (
            Model::from_bytes(&current).unwrap(),
            Model::from_bytes(&old).unwrap(),
        );
        let mut rng = SplitMix(5);
        let (mut a, mut b) = (
            vec![0; new_model.arena_len()],
            vec![0; old_model.arena_len()],
        );
        for _ in 0..20 {
            let image = rng.u8s(new_model.input_len());
            assert_eq!(
                new_model.infer(&image, &mut a).unwrap().as_slice(),
                old_model.infer(&image, &mut b).unwrap().as_slice()
            );
        }
        // Each version is held to its own checksum: a CRC-32 under version 3 or an xxHash32
        // under version 1 is a corrupt blob, named with the function expected.
        let mut swapped = old.clone();
        swapped[4] = 3;
        assert!(matches!(
            Model::from_bytes(&swapped),
            Err(ModelError::ChecksumMismatch {
                checksum: Checksum::XxHash32,
                ..
            })
        ));
        let mut swapped = current.clone();
        swapped[4] = 1;
        let err = Model::from_bytes(&swapped).unwrap_err();
        assert!(matches!(
            err,
            ModelError::ChecksumMismatch {
                checksum: Checksum::Crc32,
                ..
            }
        ));
        assert!(err.to_string().starts_with("CRC-32 mismatch"), "{err}");
        // Any flipped bit of the old blob is still refused.
        for bit in 0..old.len() * 8 {
            let mut flipped = old.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            assert!(Model::from_bytes(&flipped).is_err(), "bit {bit}");
        }
    }

    #[test]
    fn version_2_graph_blobs_with_a_crc_32_still_load() {
        let (header, data) = crate::graph::tests::fixture();
        let current = crate::graph::tests::blob(&header, &data);
        assert_eq!(current[4..6], format::GRAPH_VERSION.to_le_bytes());
        let old = with_version(&current, format::CRC32_GRAPH_VERSION);
        if !cfg!(feature = "graph") {
            // Without the graph engine both graph versions are refused alike, checksum or not.
            for blob in [&current, &old] {
                assert_eq!(
                    Model::from_bytes(blob).unwrap_err(),
                    ModelError::GraphSupportNotBuilt
                );
            }
            return;
        }
        let (new_model, old_model) = (
            Model::from_bytes(&current).unwrap(),
            Model::from_bytes(&old).unwrap(),
        );
        assert!(old_model.graph().is_some());
        assert_eq!(old_model.arena_len(), new_model.arena_len());
        let mut rng = SplitMix(6);
        let mut arena = vec![0; new_model.arena_len()];
        for _ in 0..10 {
            let image = rng.u8s(new_model.input_len());
            let expected = new_model
                .infer(&image, &mut arena)
                .unwrap()
                .as_slice()
                .to_vec();
            assert_eq!(
                old_model.infer(&image, &mut arena).unwrap().as_slice(),
                expected
            );
        }
        let mut flipped = old.clone();
        flipped[old.len() - 5] ^= 0x10;
        assert!(matches!(
            Model::from_bytes(&flipped),
            Err(ModelError::ChecksumMismatch {
                checksum: Checksum::Crc32,
                ..
            })
        ));
    }

    #[test]
    fn the_model_is_a_small_view() {
        // Where things are, not decoded layers or nodes: a dozen words on any target, and a
        // graph's kernel per node (16 bytes; the C API's qcnn_model holds one on a 64-bit host
        // in QCNN_MODEL_SIZE bytes).
        let table = if cfg!(feature = "graph") { 16 } else { 0 };
        assert!(core::mem::size_of::<Model>() <= 11 * core::mem::size_of::<usize>() + table);
    }

    #[test]
    fn layer_count_limit() {
        let pool = Layer::MaxPool2d(Pool {
            kernel: 1,
            stride: 1,
        });
        let mut layers = heapless::Vec::new();
        while layers.len() < format::MAX_LAYERS - 1 {
            layers.push(pool.clone()).unwrap();
        }
        layers.push(Layer::Flatten).unwrap();
        let header = Header {
            input: format::Shape { c: 1, h: 2, w: 2 },
            layers,
            data_len: 0,
        };
        let blob = encode(&header, &[]);
        let model = Model::from_bytes(&blob).unwrap();
        assert_eq!(model.layers().len(), format::MAX_LAYERS);
        assert_eq!(model.num_classes(), 4);
        assert_eq!(
            model
                .infer(&[0, 1, 254, 255], &mut [0; 8])
                .unwrap()
                .as_slice(),
            [-128, -127, 126, 127]
        );

        // One more layer: splice a 17th pool into the postcard header (layer count is the
        // varint after the three one-byte shape fields; a pool is tag 1, kernel, stride).
        let header_len = header_len(&blob);
        let mut header_bytes = blob[PREFIX_LEN..PREFIX_LEN + header_len].to_vec();
        assert_eq!(header_bytes[3] as usize, format::MAX_LAYERS);
        header_bytes[3] += 1;
        header_bytes.splice(4..4, [1, 1, 1]);
        let mut long = blob[..8].to_vec();
        long.extend((header_bytes.len() as u32).to_le_bytes());
        long.extend(&header_bytes);
        long.resize(
            format::data_offset(header_bytes.len()) + format::CHECKSUM_LEN,
            0,
        );
        fix_checksum(&mut long);
        assert_eq!(
            Model::from_bytes(&long).unwrap_err(),
            ModelError::HeaderDecode
        );
    }

    #[test]
    fn random_mutations_never_panic() {
        let mut rng = SplitMix(1234);
        let (mut loaded, mut rejected) = (0, 0);
        let blobs: Vec<Vec<u8>> = (0..50).map(|_| Spec::random(&mut rng).to_blob()).collect();
        for round in 0..20_000 {
            let mut blob = blobs[round % blobs.len()].clone();
            match rng.below(6) {
                0 => blob.truncate(rng.below(blob.len())),
                1 => {
                    let n = rng.below(8) + 1;
                    blob.extend(rng.u8s(n));
                }
                _ => {
                    for _ in 0..rng.below(4) + 1 {
                        let i = rng.below(blob.len());
                        blob[i] = if rng.below(2) == 0 {
                            blob[i] ^ (1 << rng.below(8))
                        } else {
                            rng.next() as u8
                        };
                    }
                }
            }
            // Mostly re-seal the checksum so the deeper checks get exercised.
            if blob.len() >= 4 && rng.below(8) != 0 {
                fix_checksum(&mut blob);
            }
            let Ok(model) = Model::from_bytes(&blob) else {
                rejected += 1;
                continue;
            };
            loaded += 1;
            if model.arena_len() > 1 << 22 || model.input_len() > 1 << 22 {
                continue;
            }
            let mut arena = vec![0; model.arena_len()];
            for _ in 0..2 {
                let image = rng.u8s(model.input_len());
                let logits = model.infer(&image, &mut arena).unwrap();
                assert_eq!(logits.len(), model.num_classes());
                assert!(logits.argmax() < logits.len());
            }
        }
        // Both outcomes happened: mutated weights load and run, broken structure is refused.
        assert!(
            loaded > 1000 && rejected > 1000,
            "loaded {loaded}, rejected {rejected}"
        );
    }
}
