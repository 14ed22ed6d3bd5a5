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
                // Never more than the portable figure (no im2col scratch), so it fits too.
                Kernels::Direct => checked.as_ref().map_or(portable, |l| {
                    l.arena_need(Kernels::Direct).unwrap_or(portable)
                }),
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
mod tests;
