//! Streaming: a Conv2d whose output feeds a Conv2d or a MaxPool2d, computed row by row so that
//! its output map is never materialised (the way patch-based inference saves RAM on the
//! early, large feature maps).
//!
//! The consumer is computed one output row (after its fused pool) at a time. That row reads
//! a band of `span = (pool − 1)·stride + kernel` consecutive rows of the producer's output;
//! those rows are produced on demand into a ring of `span` rows (row `r` in slot
//! `r mod span`), so each producer row is computed exactly once. Both layers run their usual
//! kernels on a *band*: a copy of the rows they read with the padding written out as zero
//! points (and so no padding left to the kernel), which gives exactly the sums, and so the
//! int8 values, of the whole-map computation.
//!
//! The arena of a streamed pair holds the producer's input at one end and the consumer's
//! output at the other, with, between them, the producer's input band, the ring, the
//! consumer's input band and output row, and the consumer's scratch. On the Cortex-M4 the
//! consumer's DSP kernel already keeps a ring of input rows: there a 3×3 producer writes its
//! rows straight into it, as int8 (`ops::arm_dsp::conv2d_rows`), and only the producer's band
//! sits beside the kernel's scratch.
//!
//! Which pairs stream is the planner's choice (`crate::plan`): only where the arena given is
//! shorter than the whole-map schedule needs.

use crate::arena::{self, End};
use crate::model::Layers;
use crate::ops::conv2d::Conv2dOp;
use crate::ops::maxpool2d::{MaxPool2dOp, PoolWindow};
use crate::ops::requant::PreparedRequantizer;
use crate::ops::scratch::{DspConvLayout, RingValues};
use crate::ops::{Kernels, Op};
use crate::shape::MapShape;

/// Most rows in a band (and in the ring, whose bookkeeping is a stack array of this many).
pub(crate) const MAX_SPAN: usize = 8;

/// What reads the streamed rows.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Consumer<'p, 'a> {
    Conv(&'p Conv2dOp<'a>),
    Pool(&'p MaxPool2dOp),
}

/// A Conv2d streaming its output rows into the next layer. It borrows both ops rather than
/// copying them: it sits on the device's stack while the pair runs.
#[derive(Clone, Copy, Debug)]
pub(crate) struct StreamPair<'p, 'a> {
    pub producer: &'p Conv2dOp<'a>,
    pub consumer: Consumer<'p, 'a>,
}

/// The rows one output row of a windowed layer reads: output row `y` reads input rows
/// `y·step − padding ..` for `span` rows (some of them padding).
#[derive(Clone, Copy, Debug)]
struct Window {
    span: usize,
    /// Input rows between consecutive output rows: conv stride × pool stride.
    step: usize,
    padding: usize,
}

impl Window {
    fn of_conv(op: &Conv2dOp<'_>) -> Option<Self> {
        let span = op
            .pool
            .kernel
            .checked_sub(1)?
            .checked_mul(op.stride)?
            .checked_add(op.kernel)?;
        Some(Self {
            span,
            step: op.stride.checked_mul(op.pool.stride)?,
            padding: op.padding,
        })
    }

    /// Input row `j` of the band of output row `y`, `None` inside the padding.
    fn row(&self, y: usize, j: usize, height: usize) -> Option<usize> {
        (y * self.step + j)
            .checked_sub(self.padding)
            .filter(|&row| row < height)
    }
}

/// `op` on a band: `span` rows of its input with the padding written out, giving one output
/// row.
fn band_conv<'a>(op: &Conv2dOp<'a>, window: &Window) -> Option<Conv2dOp<'a>> {
    op.band(window.span)
}

impl<'p, 'a> StreamPair<'p, 'a> {
    /// The pair `producer → consumer` if it can stream.
    pub(crate) fn new(producer: &'p Op<'a>, consumer: &'p Op<'a>) -> Option<Self> {
        let Op::Conv2d(producer) = producer else {
            return None;
        };
        let consumer = match consumer {
            Op::Conv2d(op) => Consumer::Conv(op),
            Op::MaxPool2d(op) => Consumer::Pool(op),
            _ => return None,
        };
        let pair = Self { producer, consumer };
        let fits = pair.producer_window()?.span <= MAX_SPAN
            && pair.consumer_window()?.span <= MAX_SPAN
            && pair.layout().is_some();
        fits.then_some(pair)
    }

    fn producer_window(&self) -> Option<Window> {
        Window::of_conv(self.producer)
    }

    fn consumer_window(&self) -> Option<Window> {
        match &self.consumer {
            Consumer::Conv(op) => Window::of_conv(op),
            Consumer::Pool(op) => Some(Window {
                span: op.window.kernel,
                step: op.window.stride,
                padding: 0,
            }),
        }
    }

    /// The consumer's input and output shapes.
    fn consumer_shapes(&self) -> (MapShape, MapShape) {
        match &self.consumer {
            Consumer::Conv(op) => (op.input, op.output),
            Consumer::Pool(op) => (op.input, op.output),
        }
    }

    /// Bytes of the producer's input and the consumer's output: the pair's two tensors.
    pub(crate) fn tensor_lens(&self) -> (usize, usize) {
        let (_, out) = self.consumer_shapes();
        (
            self.producer
                .input
                .c
                .saturating_mul(self.producer.input.plane()),
            out.c.saturating_mul(out.plane()),
        )
    }

    /// The buffers of the portable schedule, in bytes.
    fn layout(&self) -> Option<Layout> {
        let producer_band = band_conv(self.producer, &self.producer_window()?)?;
        let (input, output) = self.consumer_shapes();
        let window = self.consumer_window()?;
        let row = input.c.checked_mul(input.w)?;
        let padding = match &self.consumer {
            Consumer::Conv(op) => op.padding,
            Consumer::Pool(_) => 0,
        };
        let band_width = input.w.checked_add(padding.checked_mul(2)?)?;
        Some(Layout {
            producer_band: producer_band.input.checked_len()?,
            ring: row.checked_mul(window.span)?,
            consumer_band: input.c.checked_mul(window.span)?.checked_mul(band_width)?,
            consumer_row: output.c.checked_mul(output.w)?,
        })
    }

    /// Bytes of arena the pair needs with `kernels`: its two tensors and the buffers between
    /// them (see the module docs); `None` on overflow.
    // Not inlined, here and in `run`: their temporaries (several copies of the ops) would
    // otherwise sit in the caller's frame for the whole inference (device stack).
    #[inline(never)]
    pub(crate) fn arena_need(&self, kernels: Kernels) -> Option<usize> {
        let (input, output) = self.tensor_lens();
        let between = self.between_len(kernels)?;
        arena::layer_need(input, between, output)
    }

    /// Bytes between the two tensors.
    fn between_len(&self, kernels: Kernels) -> Option<usize> {
        let layout = self.layout()?;
        let consumer_scratch = match (&self.consumer, kernels) {
            (Consumer::Conv(op), Kernels::Portable) => {
                band_conv(op, &self.consumer_window()?)?.scratch_len(Kernels::Portable)
            }
            // The Cortex-M4 runs a band its DSP path declines with the direct loops.
            _ => 0,
        };
        let portable = layout.portable_len()?.checked_add(consumer_scratch)?;
        match (&self.consumer, kernels) {
            (Consumer::Conv(op), Kernels::CortexM4Dsp) if self.feeds_ring() => {
                let dsp = DspConvLayout::with_ring(&op.geometry(), RingValues::Int8)
                    .map_or(0, |l| l.scratch_bytes());
                // The DSP schedule, or the portable one when the kernel declines the layer
                // (a requantizer with a left shift): whichever is larger.
                Some(portable.max(layout.producer_band.checked_add(dsp)?))
            }
            _ => Some(portable),
        }
    }

    /// Whether the producer's rows can go straight into the Cortex-M4 consumer's int8 ring: a
    /// 3×3, stride-1, unpooled conv, which `ops::arm_dsp::conv3x3_row` computes in any
    /// layout, without scratch.
    fn feeds_ring(&self) -> bool {
        self.producer_window()
            .and_then(|window| band_conv(self.producer, &window))
            .is_some_and(|op| is_band_3x3(&op))
    }

    /// Runs both layers: `input` is the producer's input map, `output` the consumer's output
    /// map, `between` at least [`Self::between_len`] bytes for [`Kernels::NATIVE`]. Writes
    /// nothing if `between` is too short (a planned arena never is).
    #[inline(never)]
    pub(crate) fn run(&self, input: &[i8], output: &mut [i8], between: &mut [i8]) {
        #[cfg(qcnn_arm_dsp)]
        if let Consumer::Conv(op) = &self.consumer
            && self.run_into_dsp(op, input, output, between)
        {
            return;
        }
        self.run_bands(input, output, between);
    }

    /// The Cortex-M4 schedule: producer rows straight into the DSP kernel's ring.
    #[cfg(qcnn_arm_dsp)]
    #[inline(never)]
    fn run_into_dsp(
        &self,
        op: &Conv2dOp<'_>,
        input: &[i8],
        output: &mut [i8],
        between: &mut [i8],
    ) -> bool {
        let (Some(layout), Some(window)) = (self.layout(), self.producer_window()) else {
            return false;
        };
        let Some(band_op) = band_conv(self.producer, &window) else {
            return false;
        };
        if !is_band_3x3(&band_op) {
            return false;
        }
        let Some((band, scratch)) = between.split_at_mut_checked(layout.producer_band) else {
            return false;
        };
        let mut source = ProducedRows {
            op: band_op,
            window,
            shape: self.producer.input,
            input,
            band,
        };
        crate::ops::arm_dsp::conv2d_rows(op, &mut source, output, scratch)
    }

    /// The portable schedule: both layers on bands, the producer's rows in a ring.
    #[inline(never)]
    fn run_bands(&self, input: &[i8], output: &mut [i8], between: &mut [i8]) {
        let (Some(layout), Some(p_window), Some(q_window)) = (
            self.layout(),
            self.producer_window(),
            self.consumer_window(),
        ) else {
            return;
        };
        let Some(producer_op) = band_conv(self.producer, &p_window) else {
            return;
        };
        let Some(buffers) = layout.carve(between) else {
            return;
        };
        let Buffers {
            producer_band,
            ring,
            consumer_band,
            consumer_row,
            scratch,
        } = buffers;
        let (q_in, q_out) = self.consumer_shapes();
        let row_len = q_in.c * q_in.w;
        // Which producer row each ring slot holds.
        let mut loaded = [usize::MAX; MAX_SPAN];
        let span = q_window.span.max(1);
        let (q_padding, q_zero_point) = match &self.consumer {
            Consumer::Conv(op) => (op.padding, op.input_zero_point),
            // Pool bands have no padding.
            Consumer::Pool(_) => (0, 0),
        };
        for y in 0..q_out.h {
            for j in 0..span {
                let Some(row) = q_window.row(y, j, q_in.h) else {
                    continue;
                };
                let slot = row % span;
                if loaded.get(slot) == Some(&row) {
                    continue;
                }
                let Some(dst) = ring.get_mut(slot * row_len..(slot + 1) * row_len) else {
                    return;
                };
                fill_band(producer_band, self.producer, &p_window, row, |ch, r| {
                    plane_row(input, self.producer.input, ch, r)
                });
                if !band_row_3x3(&producer_op, producer_band, dst) {
                    producer_op.run(producer_band, dst, scratch);
                }
                if let Some(l) = loaded.get_mut(slot) {
                    *l = row;
                }
            }
            let ring = &*ring;
            let ring_row = |ch: usize, r: usize| {
                ring.get((r % span) * row_len + ch * q_in.w..)
                    .and_then(|s| s.get(..q_in.w))
            };
            fill_band_rows(
                consumer_band,
                q_in,
                &q_window,
                q_padding,
                q_zero_point,
                y,
                ring_row,
            );
            match &self.consumer {
                Consumer::Conv(op) => {
                    if let Some(band_op) = band_conv(op, &q_window) {
                        band_op.run(consumer_band, consumer_row, scratch);
                    }
                }
                Consumer::Pool(op) => {
                    op.band(span).run(consumer_band, consumer_row);
                }
            }
            // Row `y` of every output channel.
            let planes = output.chunks_exact_mut(q_out.plane().max(1));
            for (plane, src) in planes.zip(consumer_row.chunks_exact(q_out.w.max(1))) {
                let dst = plane.get_mut(y * q_out.w..).unwrap_or(&mut []);
                for (d, &s) in dst.iter_mut().zip(src) {
                    *d = s;
                }
            }
        }
    }
}

/// Runs `first` streaming into the next of `layers` (a pair the planner chose), the first's
/// input of `in_len` bytes at `end` of `arena`, the second's output at the other end; returns
/// that output's length, or `None` if they are no such pair or do not fit. Not inlined, and
/// the next layer is taken here, so that the pair's temporaries stay off the stack of the
/// whole-map layers.
#[inline(never)]
pub(crate) fn run_with_next<'a>(
    first: &Op<'a>,
    layers: &mut Layers<'a>,
    arena: &mut [i8],
    end: End,
    in_len: usize,
) -> Option<usize> {
    // Written in place by `next_op` rather than returned: one copy of the op on the stack.
    let mut second = Op::Flatten;
    let out_len = next_op(layers, &mut second)?;
    let pair = StreamPair::new(first, &second)?;
    let split = arena::split(arena, end, in_len, out_len)?;
    pair.run(split.input, split.output, split.scratch);
    Some(out_len)
}

/// The op of the next of `layers` into `op`, and its output's length. Not inlined: the
/// decoded layer and its temporaries stay in this frame, which is gone when the pair runs.
#[inline(never)]
fn next_op<'a>(layers: &mut Layers<'a>, op: &mut Op<'a>) -> Option<usize> {
    let layer = layers.next()?;
    *op = *layer.op();
    Some(layer.output().len())
}

/// Two Conv2d layers run as a streamed pair on the Cortex-M4, for the firmware's `dsp_check`,
/// which compares them with the portable whole-map kernels: `producer`'s input map `input`,
/// `consumer`'s output map `output`, `between` at least what [`dsp_pair_between_len`] asks;
/// `false` (nothing written) if the two cannot stream into the DSP kernel's ring.
#[cfg(qcnn_arm_dsp)]
#[doc(hidden)]
pub fn dsp_stream_pair(
    producer: &Conv2dOp<'_>,
    consumer: &Conv2dOp<'_>,
    input: &[i8],
    output: &mut [i8],
    between: &mut [i8],
) -> bool {
    let (first, second) = (Op::Conv2d(*producer), Op::Conv2d(*consumer));
    match StreamPair::new(&first, &second) {
        Some(pair) if pair.feeds_ring() => pair.run_into_dsp(consumer, input, output, between),
        _ => false,
    }
}

/// The bytes between the two maps [`dsp_stream_pair`] needs; `None` when the pair cannot
/// stream.
#[cfg(qcnn_arm_dsp)]
#[doc(hidden)]
pub fn dsp_pair_between_len(producer: &Conv2dOp<'_>, consumer: &Conv2dOp<'_>) -> Option<usize> {
    let (first, second) = (Op::Conv2d(*producer), Op::Conv2d(*consumer));
    StreamPair::new(&first, &second)?.between_len(Kernels::CortexM4Dsp)
}

/// One layer of a streaming schedule outside a pair (one image): `Op::run`, except that the
/// Cortex-M4 Linear, given less scratch than its whole unpacked input, unpacks it block by
/// block (the planner counts on that: `plan::least_need`).
pub(crate) fn run_layer(op: &Op<'_>, input: &[i8], output: &mut [i8], scratch: &mut [i8]) {
    #[cfg(qcnn_arm_dsp)]
    if let Op::Linear(linear) = op
        && scratch.len() < linear.scratch_len(Kernels::CortexM4Dsp)
        && crate::ops::arm_dsp::linear_blocked(linear, input, output, scratch)
    {
        return;
    }
    op.run(input, output, scratch);
}

/// Row `row` of channel `ch` of a C×H×W map.
fn plane_row(map: &[i8], shape: MapShape, ch: usize, row: usize) -> Option<&[i8]> {
    map.get(ch * shape.plane() + row * shape.w..)?
        .get(..shape.w)
}

/// Fills `band` with the rows conv `op` reads for its output row `y` (before `op`'s own
/// window's rows are rows of its input `rows(ch, row)`).
fn fill_band<'s>(
    band: &mut [i8],
    op: &Conv2dOp<'_>,
    window: &Window,
    y: usize,
    rows: impl Fn(usize, usize) -> Option<&'s [i8]>,
) {
    fill_band_rows(
        band,
        op.input,
        window,
        op.padding,
        op.input_zero_point,
        y,
        rows,
    );
}

/// The band of output row `y`: `window.span` rows of C channels of `input` (whose rows come
/// from `rows(ch, row)`), each `padding` zero points wider on both sides, and zero-point rows
/// where the window lies over the top or bottom padding.
fn fill_band_rows<'s>(
    band: &mut [i8],
    input: MapShape,
    window: &Window,
    padding: usize,
    zero_point: i8,
    y: usize,
    rows: impl Fn(usize, usize) -> Option<&'s [i8]>,
) {
    let width = input.w + 2 * padding;
    let channel_len = (window.span * width).max(1);
    for (ch, channel) in band.chunks_exact_mut(channel_len).enumerate().take(input.c) {
        for (j, dst) in channel.chunks_exact_mut(width.max(1)).enumerate() {
            let src = window.row(y, j, input.h).and_then(|row| rows(ch, row));
            match (src, dst.get_mut(padding..padding + input.w)) {
                (Some(src), Some(middle)) if src.len() == middle.len() => {
                    middle.copy_from_slice(src);
                    dst.get_mut(..padding).unwrap_or(&mut []).fill(zero_point);
                    dst.get_mut(padding + input.w..)
                        .unwrap_or(&mut [])
                        .fill(zero_point);
                }
                _ => dst.fill(zero_point),
            }
        }
    }
}

/// The portable schedule's buffers, in bytes.
#[derive(Clone, Copy, Debug)]
struct Layout {
    producer_band: usize,
    ring: usize,
    consumer_band: usize,
    consumer_row: usize,
}

struct Buffers<'s> {
    producer_band: &'s mut [i8],
    ring: &'s mut [i8],
    consumer_band: &'s mut [i8],
    consumer_row: &'s mut [i8],
    scratch: &'s mut [i8],
}

impl Layout {
    fn portable_len(&self) -> Option<usize> {
        self.producer_band
            .checked_add(self.ring)?
            .checked_add(self.consumer_band)?
            .checked_add(self.consumer_row)
    }

    fn carve<'s>(&self, between: &'s mut [i8]) -> Option<Buffers<'s>> {
        let (producer_band, rest) = between.split_at_mut_checked(self.producer_band)?;
        let (ring, rest) = rest.split_at_mut_checked(self.ring)?;
        let (consumer_band, rest) = rest.split_at_mut_checked(self.consumer_band)?;
        let (consumer_row, scratch) = rest.split_at_mut_checked(self.consumer_row)?;
        Some(Buffers {
            producer_band,
            ring,
            consumer_band,
            consumer_row,
            scratch,
        })
    }
}

/// The producer's output rows, computed on demand: what the Cortex-M4 conv kernel pulls its
/// input rows from when streaming.
#[cfg_attr(not(qcnn_arm_dsp), allow(dead_code))]
pub(crate) struct ProducedRows<'s, 'a> {
    op: Conv2dOp<'a>,
    window: Window,
    /// The producer's input map.
    shape: MapShape,
    input: &'s [i8],
    band: &'s mut [i8],
}

#[cfg_attr(not(qcnn_arm_dsp), allow(dead_code))]
impl ProducedRows<'_, '_> {
    /// Producer output row `r`, all `channels` channels, into `dst` pixel-major (pixel `x`'s
    /// channel `o` at `dst[x · channels + o]`).
    pub(crate) fn produce_into(&mut self, r: usize, dst: &mut [i8], channels: usize) {
        let (input, window, shape) = (self.input, self.window, self.shape);
        let padding = self.window.padding;
        let zero_point = self.op.input_zero_point;
        fill_band_rows(
            self.band,
            shape,
            &window,
            padding,
            zero_point,
            r,
            |ch, row| plane_row(input, shape, ch, row),
        );
        #[cfg(qcnn_arm_dsp)]
        crate::ops::arm_dsp::conv3x3_row(&self.op, self.band, dst, channels);
        #[cfg(not(qcnn_arm_dsp))]
        let _ = (dst, channels);
    }
}

/// A streamed producer's output rows, computed as the ring needs them, straight into the
/// consumer's int8 ring.
#[cfg(qcnn_arm_dsp)]
impl crate::ops::arm_dsp::RowSource for ProducedRows<'_, '_> {
    const RING: RingValues = RingValues::Int8;

    fn load(
        &mut self,
        op: &Conv2dOp<'_>,
        layout: &DspConvLayout,
        row: usize,
        ring: &mut [u32],
        slot: usize,
    ) {
        let bytes: &mut [i8] = bytemuck::must_cast_slice_mut(ring);
        let start = slot * layout.row_values + op.padding * layout.c;
        if let Some(dst) = bytes.get_mut(start..start + op.input.w * layout.c) {
            self.produce_into(row, dst, layout.c);
        }
    }
}

/// Whether the band conv `op` is 3×3, stride 1, unpooled: [`band_row_3x3`]'s layers, and
/// those of the Cortex-M4's `conv3x3_row`.
fn is_band_3x3(op: &Conv2dOp<'_>) -> bool {
    op.kernel == 3
        && op.stride == 1
        && op.padding == 0
        && op.pool == PoolWindow::IDENTITY
        && op.input.h == 3
        && op.input.w == op.output.w + 2
}

/// Output pixels a [`band_row_3x3`] pass accumulates at once (its accumulators are on the
/// stack: 64 bytes).
const ROW_CHUNK: usize = 16;

/// One output row of a 3×3, stride-1, unpooled conv on its band (`op` from [`band_conv`]:
/// three rows, padding written out) without scratch: per output channel and input channel,
/// the nine weights stay in registers while the window slides along the row. The direct
/// loops' results (the same sums, each requantized once); `false` for other layers. (On the
/// Cortex-M4 a producer feeding the DSP consumer's ring runs `ops::arm_dsp::conv3x3_row`.)
fn band_row_3x3(op: &Conv2dOp<'_>, band: &[i8], out: &mut [i8]) -> bool {
    let (c, w_in, w_out) = (op.input.c, op.input.w, op.output.w);
    let fits = is_band_3x3(op) && band.len() >= c * 3 * w_in && out.len() >= op.output.c * w_out;
    if !fits {
        return false;
    }
    let per_output = (9 * c).max(1);
    let outputs = op
        .weights
        .chunks_exact(per_output)
        .zip(op.channels.iter())
        .zip(out.chunks_exact_mut(w_out.max(1)));
    for ((weights, (bias, requant)), out_row) in outputs {
        let prepared = PreparedRequantizer::new(&requant);
        for (chunk, out_chunk) in out_row.chunks_mut(ROW_CHUNK).enumerate() {
            let x0 = chunk * ROW_CHUNK;
            let mut acc = [bias; ROW_CHUNK];
            let planes = weights
                .chunks_exact(9)
                .zip(band.chunks_exact((3 * w_in).max(1)));
            for (w, plane) in planes {
                let [w0, w1, w2, w3, w4, w5, w6, w7, w8] = match <[i8; 9]>::try_from(w) {
                    Ok(w) => w.map(i32::from),
                    Err(_) => return false,
                };
                let (r0, rest) = plane.split_at(w_in.min(plane.len()));
                let (r1, r2) = rest.split_at(w_in.min(rest.len()));
                for (i, a) in acc.iter_mut().take(out_chunk.len()).enumerate() {
                    let x = x0 + i;
                    if let (Some(&[a0, a1, a2]), Some(&[b0, b1, b2]), Some(&[c0, c1, c2])) =
                        (r0.get(x..x + 3), r1.get(x..x + 3), r2.get(x..x + 3))
                    {
                        let sum = w0 * i32::from(a0)
                            + w1 * i32::from(a1)
                            + w2 * i32::from(a2)
                            + w3 * i32::from(b0)
                            + w4 * i32::from(b1)
                            + w5 * i32::from(b2)
                            + w6 * i32::from(c0)
                            + w7 * i32::from(c1)
                            + w8 * i32::from(c2);
                        *a = a.wrapping_add(sum);
                    }
                }
            }
            for (o, &a) in out_chunk.iter_mut().zip(&acc) {
                *o = match &prepared {
                    Some(p) => p.apply(a),
                    None => requant.apply(a),
                };
            }
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use crate::model::Model;
    use crate::ops::Kernels;
    use crate::test_blob::{Spec, SpecLayer};
    use crate::test_util::SplitMix;

    /// Random models with a Conv2d feeding a Conv2d or a MaxPool2d, streamed (in the least
    /// arena, and in every budget between that and the whole-map arena) against the
    /// whole-map schedule and the reference: the same logits, bit for bit.
    #[test]
    fn streamed_logits_equal_whole_map_logits() {
        let mut rng = SplitMix::new(31);
        let (mut streamed_models, mut pool_consumers) = (0, 0);
        while streamed_models < 300 {
            let spec = Spec::random(&mut rng);
            let blob = spec.to_blob();
            let model = Model::from_bytes(&blob).unwrap_or_else(|e| panic!("{e}: {spec:?}"));
            let min = model.min_arena_len_for(Kernels::NATIVE);
            let whole = model.arena_len();
            assert!(min <= whole, "{spec:?}");
            let schedule = model.schedule_for_arena(Kernels::NATIVE, min).unwrap();
            if schedule.streamed_pairs() == 0 {
                continue;
            }
            streamed_models += 1;
            let pairs = spec
                .layers
                .windows(2)
                .filter(|w| matches!(w, [SpecLayer::Conv2d { .. }, SpecLayer::MaxPool2d { .. }]));
            pool_consumers += pairs.count();
            for budget in [
                min,
                (min + whole) / 2,
                whole.saturating_sub(1).max(min),
                whole,
            ] {
                let mut arena = vec![0x5A; budget];
                for _ in 0..2 {
                    let image = rng.u8s(model.input_len());
                    let logits = model.infer_streaming(&image, &mut arena).unwrap();
                    let mut big = vec![0x33; whole];
                    let full = model.infer(&image, &mut big).unwrap();
                    assert_eq!(logits.as_slice(), full.as_slice(), "{budget}: {spec:?}");
                    assert_eq!(logits.as_slice(), &spec.reference(&image)[..], "{spec:?}");
                }
            }
            let mut short = vec![0; min - 1];
            assert_eq!(
                model
                    .infer_streaming(&rng.u8s(model.input_len()), &mut short)
                    .unwrap_err(),
                crate::InferError::ArenaTooSmall {
                    needed: min,
                    found: min - 1
                }
            );
        }
        assert!(pool_consumers > 10, "{pool_consumers}");
    }

    /// The seed model: conv1 → conv2 + pool streams, in far less arena than its whole 8×28×28
    /// map, on both kernel sets.
    #[test]
    fn seed_model_streams_its_first_two_convs() {
        let spec = Spec::seed(&mut SplitMix::new(1));
        let blob = spec.to_blob();
        let model = Model::from_bytes(&blob).unwrap();
        // Portable: image 784 + band 90 + ring 4×224 + band 8×4×30 + row 224 + 4 patches of
        // 72 + output 3136 for the streamed pair; the first Linear needs 3136 + 256.
        assert_eq!(
            model.min_arena_len_for(Kernels::Portable),
            784 + 90 + 896 + 960 + 224 + 288 + 3136
        );
        // The Cortex-M4: image, band, conv2's DSP scratch with conv1's rows written into its
        // int8 ring, output; the first Linear then unpacks its input in blocks within that (it
        // needs at least 3136 + 256 and 4·(256 + 16) + 3 of accumulators and one block).
        // conv2's scratch: 16 requantizers of 6 words, 4 groups of 4 biases and 4 × 36
        // weight words, a ring of 4 rows of 30 × 8 int8 values (and 3 spare), a patch of 36
        // words, two sets of 16 accumulators, 3 bytes of alignment slack.
        let dsp = model.schedule_within(Kernels::CortexM4Dsp, 0);
        assert_eq!(dsp.streamed_pairs(), 1);
        assert!(dsp.streams(0));
        let conv2_scratch =
            4 * (16 * 6 + 4 * (4 + 4 * 36) + (4 * 240 + 3_usize).div_ceil(4) + 36 + 32) + 3;
        assert_eq!(conv2_scratch, 3991);
        assert_eq!(dsp.arena_len, 784 + 90 + conv2_scratch + 3136);
        // Between the least and the whole-map arena, the fastest schedule that fits.
        let at = |len| model.schedule_for_arena(Kernels::CortexM4Dsp, len);
        assert_eq!(at(9408 + 4951).unwrap().streamed_pairs(), 0);
        assert_eq!(at(9408 + 4950).unwrap().streamed_pairs(), 1);
        assert_eq!(at(9185).unwrap().arena_len, 9185);
        assert_eq!(at(8001).unwrap().arena_len, 8001);
        assert_eq!(at(8000), None);
        let image = SplitMix::new(9).u8s(784);
        let min = model.min_arena_len_for(Kernels::NATIVE);
        let mut arena = vec![0; min];
        let logits = model.infer_streaming(&image, &mut arena).unwrap();
        assert_eq!(logits.as_slice(), &spec.reference(&image)[..]);
    }
}
