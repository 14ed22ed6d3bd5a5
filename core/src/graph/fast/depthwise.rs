//! Convs whose every group reads one input channel, any window up to 5×5: depthwise convs
//! (`group` = input channels, any number of outputs per group) and, through `stem`,
//! convs of a one-channel input (the image stems of ResNet-8, DS-CNN and MobileNet, which
//! are the same arithmetic with every output channel reading channel 0).
//!
//! The input plane a window reaches is widened once to int16 with its padding (the input zero
//! point) into the scratch, row after row, each row word-aligned (four bytes a word load,
//! SXTB16); a plane past `MAX_PLANE_BYTES` (4 KB) goes through a ring of `kh` rows (`RowRing`),
//! a stem's image through bands of rows as large as the model's scratch allows (`stem_bands`).
//! Every output is then `bias + Σ w·x` over its whole window.
//!
//! Three taps wide, 3 or 5 rows, at horizontal stride 1 or 2 (every stem and depthwise layer
//! of the three models), the common case: `dsp::kx3_pass` sums a block of output rows,
//! every kernel row in the same pass, two outputs per LDRD of weights and of inputs (its
//! comment has the arithmetic), and the block is requantized four outputs a word
//! (`requantize_run`). Five taps wide (the variants' 5×5 depthwise nodes), each kernel row is
//! two such 3-wide rows, one a word further on (`five_wide_sums`). Other windows take their
//! taps in pairs from the int16 rows, one output at a time. A depthwise node in place (`conv_in_place`) widens each input plane before
//! writing its output plane over it.

use crate::shape::MapShape;

use super::super::conv_params::ConvParams;
use super::super::format::Window;
use super::dsp::{KX3_TAPS, RowsShape, kx3_pass, requantize_run, smlad, sxtb16_pairs};
use super::requant::{ChannelRequant, FoldedRequant};

/// Largest kernel side this path takes.
const MAX_SIDE: usize = 5;
/// A ring slot holding no row yet: no row number, not even a wrapped negative one (a padding
/// row above the map), is this far from both 0 and `usize::MAX`.
const NOTHING: usize = usize::MAX / 2;
/// Weight pairs of one channel: `kh · ⌊kw / 2⌋` (an odd width's last tap is a single).
const MAX_PAIRS: usize = MAX_SIDE * (MAX_SIDE / 2);

fn row_values(w: usize, window: Window) -> usize {
    // The padded row, and spare values so that the last output's words stay inside; even,
    // so that every row starts on a word.
    (w + usize::from(window.pads[1]) + usize::from(window.pads[3]) + 3) & !1
}

/// Sums a channel keeps at least: several output rows' sums requantized in one run, four
/// outputs a word (a row of a small map alone would leave a tail of one to three). The loader
/// reserves this many; at run time a whole plane's sums take all the model's scratch after
/// the plane (`sums_in`), so only a node that sets the model's scratch runs with this few.
const SUMS_BLOCK: usize = 64;

/// The same for a node of at most [`FEW_CHANNELS`] input channels (more than one): each run
/// costs a setup per channel, so few channels pay little for shorter runs. MobileNet's
/// largest planes (8 and 16 channels at 14×14) set its scratch: 128 B less for 8,880 more
/// instructions; DS-CNN's 64-channel planes at 32 sums cost 335,880 more.
const FEW_CHANNELS_SUMS: usize = 32;
const FEW_CHANNELS: usize = 16;

/// The sums' length for rows of `values` int16 values of an `in_c`-channel input.
fn sums_len(in_c: usize, values: usize) -> usize {
    let least = match in_c {
        2..=FEW_CHANNELS => FEW_CHANNELS_SUMS,
        _ => SUMS_BLOCK,
    };
    values.max(least)
}

/// The sums in `words` (the scratch after a whole plane of `in_c` channels): all of it, at
/// least [`sums_len`]; `None` when the scratch is shorter.
fn sums_in(words: &mut [u32], in_c: usize, values: usize) -> Option<&mut [i32]> {
    (words.len() >= sums_len(in_c, values)).then(|| bytemuck::cast_slice_mut(words))
}

/// Most scratch a depthwise conv's whole padded plane may take; a larger map is read through
/// the ring of `kh` rows the stems use.
const MAX_PLANE_BYTES: usize = 4 * 1024;

/// Bytes of the int16 rows a conv of `in_shape` under `window` keeps: the whole padded plane
/// of an input channel (each row widened once, every output row of every output channel
/// reading it then reads its kernel rows at fixed places), or `kh` rows: a ring for planes
/// past [`MAX_PLANE_BYTES`], and the least band of a one-channel input (a stem, whose one
/// plane is the whole image: it set the scratch of models whose other nodes need far less;
/// [`stem_bands`] takes what the model's scratch holds).
fn rows_bytes(in_shape: MapShape, window: Window) -> (usize, bool) {
    let values = row_values(in_shape.w, window);
    let padded_h = in_shape.h + usize::from(window.pads[0]) + usize::from(window.pads[2]);
    let plane = padded_h.saturating_mul(values).saturating_mul(2);
    if plane <= MAX_PLANE_BYTES && in_shape.c > 1 {
        (plane, true)
    } else {
        (usize::from(window.kernel[0]) * values * 2, false)
    }
}

/// Scratch bytes for a conv of `in_shape` into `_out_c` channels under `window` (one input
/// plane or ring and one run of sums, whatever the output channels); beyond
/// [`super::MAX_SCRATCH`] (the path declines) for kernels wider or taller than 5.
pub fn scratch_bytes(in_shape: MapShape, _out_c: usize, window: Window) -> usize {
    let [kh, kw] = window.kernel.map(usize::from);
    if kh > MAX_SIDE || kw > MAX_SIDE {
        return usize::MAX;
    }
    // The int16 rows, then the i32 sums.
    rows_bytes(in_shape, window)
        .0
        .saturating_add(sums_len(in_shape.c, row_values(in_shape.w, window)).saturating_mul(4))
        .saturating_add(3)
}

/// The conv of [`crate::graph::kernels::conv`] (with `group` = input channels) for `node`;
/// `false` (nothing written) outside this path's limits or when `scratch` is short.
pub fn conv(node: &ConvParams<'_>, input: &[i8], output: &mut [i8], scratch: &mut [i8]) -> bool {
    let (in_c, out_c) = (node.in_shape.c, node.out_shape.c);
    let [kh, kw] = node.window.kernel.map(usize::from);
    if kh > MAX_SIDE || kw > MAX_SIDE || kh == 0 || kw == 0 || in_c == 0 || out_c % in_c != 0 {
        return false;
    }
    let (rows_len, whole_plane) = rows_bytes(node.in_shape, node.window);
    let values = row_values(node.in_shape.w, node.window);
    let words = bytemuck::pod_align_to_mut::<i8, u32>(scratch).1;
    if in_c == 1 {
        // The sums, then as many rows as the rest of the model's scratch holds.
        let Some((acc, bands)) = words.split_at_mut_checked(sums_len(1, values)) else {
            return false;
        };
        return stem_bands(node, input, output, bands, bytemuck::cast_slice_mut(acc));
    }
    let Some((rows, sums)) = words.split_at_mut_checked(rows_len / 4) else {
        return false;
    };
    let Some(acc) = sums_in(sums, in_c, values) else {
        return false;
    };
    if whole_plane {
        return by_planes(node, input, output, rows, acc);
    }
    let acc = acc.get_mut(..values).unwrap_or_default();
    let mut ring = RowRing::new(rows, values / 2, acc);
    by_rows(node, input, output, &mut ring)
}

/// [`conv`] through the ring of rows (a plane past [`MAX_PLANE_BYTES`] of several channels). Each way of
/// running is a function of its own, so that the stack holds one way's frame at a time.
#[inline(never)]
fn by_rows(node: &ConvParams<'_>, input: &[i8], output: &mut [i8], ring: &mut RowRing<'_>) -> bool {
    let (in_c, out_c) = (node.in_shape.c, node.out_shape.c);
    let per_input = out_c / in_c.max(1);
    let (in_plane, out_plane) = (node.in_shape.plane(), node.out_shape.plane());
    let planes = input.chunks_exact(in_plane.max(1));
    let groups = output.chunks_exact_mut((out_plane * per_input).max(1));
    for (c, (plane, out_group)) in planes.zip(groups).enumerate() {
        ring.reset();
        let outs = out_group.chunks_exact_mut(out_plane.max(1));
        for (j, out_c) in outs.enumerate() {
            // By reference: moving the taps out of the `Option` would copy them (the
            // stack peak).
            let taps = ChannelTaps::new(node, c * per_input + j);
            let Some(taps) = &taps else {
                return false;
            };
            for (oy, out_row) in out_c.chunks_exact_mut(node.out_shape.w.max(1)).enumerate() {
                let (rows, acc) = ring.rows(plane, node, oy);
                taps.row(usize::from(node.window.stride[1]), &rows, acc, out_row);
            }
        }
    }
    true
}

/// [`conv`] with each input channel's padded plane widened once into `buffer`.
#[inline(never)]
fn by_planes(
    node: &ConvParams<'_>,
    input: &[i8],
    output: &mut [i8],
    buffer: &mut [u32],
    acc: &mut [i32],
) -> bool {
    let per_input = node.out_shape.c / node.in_shape.c.max(1);
    let (in_plane, out_plane) = (node.in_shape.plane(), node.out_shape.plane());
    let planes = input.chunks_exact(in_plane.max(1));
    let groups = output.chunks_exact_mut((out_plane * per_input).max(1));
    pad_planes(node, buffer);
    for (c, (plane, out_group)) in planes.zip(groups).enumerate() {
        widen_plane(node, plane, buffer);
        if !plane_outputs(node, c * per_input, buffer, acc, out_group) {
            return false;
        }
    }
    true
}

/// [`conv`] with the output over the input (`tensor`: both, from their shared offset), for a
/// depthwise conv with one output per channel whose output planes are no larger than its
/// input planes: each input plane is widened into the scratch before its output plane (which
/// ends at or before the input plane's end) is written, so no staged copy is needed. `false`
/// (nothing written) outside those limits or the whole-plane buffer's.
pub fn conv_in_place(node: &ConvParams<'_>, tensor: &mut [i8], scratch: &mut [i8]) -> bool {
    let (in_shape, out_shape) = (node.in_shape, node.out_shape);
    let [kh, kw] = node.window.kernel.map(usize::from);
    let (in_plane, out_plane) = (in_shape.plane(), out_shape.plane());
    // Checked before anything is written: past them every channel runs (the rows' lengths
    // follow from the scratch's).
    let data = node.weights.len() >= out_shape.c * kh * kw
        && node.channels.bias.len() >= out_shape.c
        && node.channels.multiplier.len() >= out_shape.c
        && node.channels.shift.len() >= out_shape.c;
    if !runs_over_itself(in_shape, out_shape, node.window)
        || !data
        || tensor.len() < in_shape.c * in_plane
    {
        return false;
    }
    let rows_len = rows_bytes(in_shape, node.window).0;
    let values = row_values(in_shape.w, node.window);
    let words = bytemuck::pod_align_to_mut::<i8, u32>(scratch).1;
    let Some((buffer, sums)) = words.split_at_mut_checked(rows_len / 4) else {
        return false;
    };
    let Some(acc) = sums_in(sums, in_shape.c, values) else {
        return false;
    };
    pad_planes(node, buffer);
    for c in 0..in_shape.c {
        widen_plane(
            node,
            tensor
                .get(c * in_plane..(c + 1) * in_plane)
                .unwrap_or_default(),
            buffer,
        );
        let out = tensor
            .get_mut(c * out_plane..(c + 1) * out_plane)
            .unwrap_or_default();
        if !plane_outputs(node, c, buffer, acc, out) {
            return false;
        }
    }
    true
}

/// Whether [`conv_in_place`] runs a conv of these shapes over its own input (so the loader
/// sizes no staging for it): one output per channel, output planes no larger than the input
/// planes, a kernel this path takes, and the input plane widened whole (each is widened
/// before its output plane is written; a ring of rows would be overwritten).
pub fn runs_over_itself(in_shape: MapShape, out_shape: MapShape, window: Window) -> bool {
    let [kh, kw] = window.kernel.map(usize::from);
    (1..=MAX_SIDE).contains(&kh)
        && (1..=MAX_SIDE).contains(&kw)
        && in_shape.c == out_shape.c
        && out_shape.plane() <= in_shape.plane()
        && rows_bytes(in_shape, window).1
}

/// `buffer` filled with the input zero point: the padding of every plane [`widen_plane`]
/// then writes, which only writes the map's own values.
fn pad_planes(node: &ConvParams<'_>, buffer: &mut [u32]) {
    let z = u32::from(node.input_zero_point as i16 as u16) * 0x0001_0001;
    buffer.fill(z);
}

/// The values of input `plane` widened to int16 into the padded plane in `buffer` (padded
/// by [`pad_planes`]), row after row.
fn widen_plane(node: &ConvParams<'_>, plane: &[i8], buffer: &mut [u32]) {
    let window = node.window;
    let (pt, pl) = (usize::from(window.pads[0]), usize::from(window.pads[1]));
    let w = node.in_shape.w.max(1);
    let values = row_values(w, window);
    let buffer: &mut [i16] = bytemuck::cast_slice_mut(buffer);
    // Tested, so that the optimiser knows the chunk size is not 0 (no panic path).
    if values == 0 {
        return;
    }
    let rows = buffer.get_mut(pt * values..).unwrap_or_default();
    for (src, dst) in plane.chunks_exact(w).zip(rows.chunks_exact_mut(values)) {
        widen_into(src, dst.get_mut(pl..).unwrap_or_default());
    }
}

/// Output channels `first..` (as many as `out_group` holds planes) from the widened input
/// plane in `buffer`; `false` when a channel's weights are missing or a row is short (never
/// for a validated node and its scratch).
fn plane_outputs(
    node: &ConvParams<'_>,
    first: usize,
    buffer: &[u32],
    acc: &mut [i32],
    out_group: &mut [i8],
) -> bool {
    let outs = out_group.chunks_exact_mut(node.out_shape.plane().max(1));
    for (j, out_c) in outs.enumerate() {
        // By reference: moving the taps out of the `Option` would copy them (the
        // stack peak).
        let taps = ChannelTaps::new(node, first + j);
        let Some(taps) = &taps else {
            return false;
        };
        if !channel_rows(node, taps, buffer, acc, out_c) {
            return false;
        }
    }
    true
}

/// Output rows `out_rows` (whole rows) of one channel, `taps`, from the widened padded input
/// rows in `buffer`, which start at the first output row's first kernel row.
fn channel_rows(
    node: &ConvParams<'_>,
    taps: &ChannelTaps,
    buffer: &[u32],
    acc: &mut [i32],
    out_rows: &mut [i8],
) -> bool {
    let window = node.window;
    let kh = usize::from(window.kernel[0]);
    let (sh, sw) = (usize::from(window.stride[0]), usize::from(window.stride[1]));
    let row_words = row_values(node.in_shape.w, window) / 2;
    let out_w = node.out_shape.w.max(1);
    // Output row `oy`'s kernel rows: from their first word to the buffer's end (the sums'
    // loops read a word past a row's last output, inside the buffer).
    let rows_of = |oy: usize| -> [&[u32]; MAX_SIDE] {
        let first = oy * sh * row_words;
        core::array::from_fn(|ky| match ky < kh {
            true => buffer.get(first + ky * row_words..).unwrap_or_default(),
            false => &[],
        })
    };
    if !taps.takes_kx3(sw) {
        for (oy, out_row) in out_rows.chunks_exact_mut(out_w).enumerate() {
            taps.row(sw, &rows_of(oy), acc, out_row);
        }
        return true;
    }
    // Whole output rows' sums (an even count each, the last one's spare overwritten by
    // the next row's first), as many rows as the sums hold, requantized in one run.
    let even = out_w.next_multiple_of(2);
    let block_rows = acc.len().saturating_sub(even) / out_w + 1;
    for (b, out_block) in out_rows.chunks_mut((block_rows * out_w).max(1)).enumerate() {
        let shape = RowsShape {
            width: out_w,
            rows: out_block.len() / out_w,
            step: sh * row_words,
        };
        if !taps.kx3_sums(sw, &rows_of(b * block_rows), shape, acc) {
            return false;
        }
        taps.requantize(acc, out_block);
    }
    true
}

/// One output channel's weights and requantization, prepared for its rows.
pub(super) struct ChannelTaps {
    taps: Taps,
    kh: usize,
    kw: usize,
    bias: i32,
    requant: Requant,
    clamp: [i8; 2],
}

/// A channel's weights in one form or the other, never both: the taps sit on the stack under
/// every row's sums (with a stem's bands, the inference's deepest path).
enum Taps {
    /// A 3-wide kernel of 3 or 5 rows as the sums' loops read it (`dsp::kx3_pass`): per row
    /// `(w0, w1)` and `(w1, w2)`, then the bias twice ([`kx3_taps`]).
    Kx3([u32; KX3_TAPS]),
    /// Any other: `(w[2i], w[2i+1])` of each kernel row as a word, an odd width's last tap
    /// apart ([`pair_taps`]).
    Pairs {
        pairs: [u32; MAX_PAIRS],
        singles: [i32; MAX_SIDE],
    },
}

impl Taps {
    /// Kernel row `ky`'s pair `i` as a word, `(w[2i], w[2i+1])`.
    fn pair(&self, ky: usize, i: usize, pairs_per_row: usize) -> Option<u32> {
        match self {
            Taps::Kx3(taps) => taps.get(2 * ky).filter(|_| i == 0).copied(),
            Taps::Pairs { pairs, .. } => pairs.get(ky * pairs_per_row + i).copied(),
        }
    }

    /// Kernel row `ky`'s last tap of an odd width.
    fn single(&self, ky: usize) -> Option<i32> {
        match self {
            // `(w1, w2)`: w2 in the high half.
            Taps::Kx3(taps) => taps.get(2 * ky + 1).map(|&w| i32::from((w >> 16) as i16)),
            Taps::Pairs { singles, .. } => singles.get(ky).copied(),
        }
    }
}

/// A `kw`-wide kernel's rows `w_c` as [`Taps::Pairs`].
fn pair_taps(w_c: &[i8], kw: usize) -> Taps {
    let mut pairs = [0_u32; MAX_PAIRS];
    let mut singles = [0_i32; MAX_SIDE];
    let pairs_per_row = kw / 2;
    for (ky, w_row) in w_c.chunks_exact(kw.max(1)).enumerate() {
        for (i, pair) in w_row.chunks_exact(2).enumerate() {
            if let (Some(p), [a, b]) = (pairs.get_mut(ky * pairs_per_row + i), pair) {
                *p = half(*a) | half(*b) << 16;
            }
        }
        if let (Some(s), Some(&last), true) = (singles.get_mut(ky), w_row.last(), kw % 2 == 1) {
            *s = i32::from(last);
        }
    }
    Taps::Pairs { pairs, singles }
}

/// How a channel's sums become int8, fastest first.
enum Requant {
    Folded(FoldedRequant),
    Channel(ChannelRequant),
    /// A negative multiplier (never in a validated blob): the portable arithmetic.
    Exact(crate::quant::Requantizer),
}

impl ChannelTaps {
    /// Output channel `o`'s; `None` when its weights are missing (never in a validated node).
    pub(super) fn new(node: &ConvParams<'_>, o: usize) -> Option<Self> {
        let [kh, kw] = node.window.kernel.map(usize::from);
        let w_c = node.weights.get(o * kh * kw..(o + 1) * kh * kw)?;
        let (bias, exact) = node.channels.channel(o);
        let taps = match kw == 3 && (kh == 3 || kh == 5) {
            true => Taps::Kx3(kx3_taps(w_c, bias)),
            false => pair_taps(w_c, kw),
        };
        let clamp = node.channels.clamp;
        let requant = match FoldedRequant::new(&exact, clamp) {
            Some(folded) => Requant::Folded(folded),
            None => {
                ChannelRequant::new(&exact, clamp).map_or(Requant::Exact(exact), Requant::Channel)
            }
        };
        Some(Self {
            taps,
            kh,
            kw,
            bias,
            requant,
            clamp,
        })
    }

    /// Whether [`Self::kx3_sums`] takes this kernel at `stride`: 3 wide (3 or 5 rows), or 5
    /// wide of at least two rows ([`five_wide_sums`]).
    fn takes_kx3(&self, stride: usize) -> bool {
        let five_wide = self.kw == 5 && self.kh >= 2;
        (matches!(self.taps, Taps::Kx3(_)) || five_wide) && (stride == 1 || stride == 2)
    }

    /// `acc[y·width + i]` = output `i`'s sum (bias included) of output row `y < rows`, whose
    /// kernel rows start `y·step` words into `inputs` (the first output row's), every kernel
    /// row in one pass (`dsp::kx3_pass`); `false` outside [`Self::takes_kx3`] or when an input
    /// or the sums are short.
    fn kx3_sums(
        &self,
        stride: usize,
        inputs: &[&[u32]],
        shape: RowsShape,
        acc: &mut [i32],
    ) -> bool {
        let taps = match &self.taps {
            Taps::Kx3(taps) => taps,
            Taps::Pairs { pairs, singles } if self.takes_kx3(stride) => {
                let kernel = (pairs, singles, self.kh, self.bias);
                return five_wide_sums(kernel, stride, inputs, shape, acc);
            }
            Taps::Pairs { .. } => return false,
        };
        let input = |k: usize| inputs.get(k).copied().unwrap_or_default();
        let first = [input(0), input(1), input(2)];
        if self.kh == 3 {
            return kx3_pass(&first, taps, stride, shape, acc);
        }
        // Five rows: the last two added after.
        let last = [input(3), input(4)];
        if shape.width.is_multiple_of(2) {
            return kx3_pass(&first, taps, stride, shape, acc)
                && kx3_pass(&last, taps, stride, shape, acc);
        }
        five_rows_one_at_a_time(first, last, taps, stride, shape, acc)
    }

    /// `out[i] = requantize(acc[i])` with the fused clamp: four outputs a word where the
    /// requantizer folds without a left shift.
    fn requantize(&self, acc: &[i32], out: &mut [i8]) {
        match &self.requant {
            Requant::Folded(r) => {
                let whole = match r.to_words() {
                    Some(words) => {
                        requantize_run(acc, &words, out);
                        out.len().min(acc.len()) / 4 * 4
                    }
                    None => 0,
                };
                let rest = out.get_mut(whole..).unwrap_or_default();
                let sums = acc.get(whole..).unwrap_or_default();
                match r.tops_at_127() {
                    true => requantize_row(sums, rest, |a| r.apply_to_127(a)),
                    false => requantize_row(sums, rest, |a| r.apply(a)),
                }
            }
            Requant::Channel(r) => requantize_row(acc, out, |a| r.apply(a)),
            Requant::Exact(r) => requantize_row(acc, out, |a| self.finish(r, a)),
        }
    }

    /// One output row from `rows` (the kernel rows' padded int16 inputs as words), `acc` a
    /// row of sums at least as long as a ring row.
    pub(super) fn row(&self, stride: usize, rows: &[&[u32]], acc: &mut [i32], out: &mut [i8]) {
        if self.takes_kx3(stride) {
            let Some(sums) = acc.get_mut(..out.len().next_multiple_of(2)) else {
                return;
            };
            // One output row: the step to a next row is never taken, but the sums' loops
            // take only a step past the row's inputs (a step of 0 sent every ring row, the
            // stems' included, to the tap-pair loop: 35 instructions a MAC).
            let step = stride * out.len().div_ceil(2);
            let shape = RowsShape {
                width: out.len(),
                rows: 1,
                step,
            };
            if self.kx3_sums(stride, rows, shape, sums) {
                self.requantize(sums, out);
                return;
            }
        }
        self.row_any(stride, rows, out);
    }

    fn finish(&self, requant: &crate::quant::Requantizer, acc: i32) -> i8 {
        requant.apply(acc).max(self.clamp[0]).min(self.clamp[1])
    }

    /// Any window: each output its taps in pairs.
    fn row_any(&self, stride: usize, rows: &[&[u32]], out: &mut [i8]) {
        let pairs_per_row = self.kw / 2;
        for (ox, q) in out.iter_mut().enumerate() {
            let mut acc = self.bias;
            let x = ox * stride;
            for (ky, &row) in rows.iter().enumerate().take(self.kh) {
                let row: &[i16] = bytemuck::cast_slice(row);
                let row = row.get(x..).unwrap_or_default();
                for i in 0..pairs_per_row {
                    if let (Some(p), Some(&[a, b])) = (
                        self.taps.pair(ky, i, pairs_per_row),
                        row.get(2 * i..2 * i + 2),
                    ) {
                        let word = u32::from(a as u16) | u32::from(b as u16) << 16;
                        acc = smlad(p, word, acc);
                    }
                }
                let odd = self.kw % 2 == 1;
                if let (Some(s), Some(&v), true) = (self.taps.single(ky), row.get(self.kw - 1), odd)
                {
                    acc = acc.wrapping_add(s * i32::from(v));
                }
            }
            *q = match &self.requant {
                Requant::Folded(r) => r.apply(acc),
                Requant::Channel(r) => r.apply(acc),
                Requant::Exact(r) => self.finish(r, acc),
            };
        }
    }
}

/// [`ChannelTaps::kx3_sums`] of a 5×3 kernel over rows of an odd width, whose spare sum would
/// be added to over the next row's first: each output row alone. Apart, so that its arrays
/// are off the stack of the common case, which the deepest inference path runs.
#[inline(never)]
fn five_rows_one_at_a_time<'r>(
    first: [&'r [u32]; 3],
    last: [&'r [u32]; 2],
    taps: &[u32; KX3_TAPS],
    stride: usize,
    RowsShape { width, rows, step }: RowsShape,
    acc: &mut [i32],
) -> bool {
    let row = RowsShape {
        width,
        rows: 1,
        step,
    };
    (0..rows).all(|y| {
        let at = |r: &'r [u32]| -> &'r [u32] { r.get(y * step..).unwrap_or_default() };
        let sums = acc.get_mut(y * width..).unwrap_or_default();
        kx3_pass(&first.map(at), taps, stride, row, sums)
            && kx3_pass(&last.map(at), taps, stride, row, sums)
    })
}

/// A 5-wide kernel's sums ([`ChannelTaps::kx3_sums`]) through the 3-wide passes: each kernel
/// row `(w0..w4)` is two 3-wide rows, `(w0, w1, w2)` at the row's first value and `(0, w3, w4)`
/// one word (two values) on, so that both read whole words. The `2·kh` rows run three from
/// the bias, then two at a time added (a last odd one beside a row of zero taps): about 1.6
/// instructions a MAC on the Cortex-M4 against the tap pairs' 18 to 20. `kernel` = the pairs
/// and singles of [`pair_taps`], `kh` and the bias; an odd `width`'s rows are summed `width + 1`
/// apart (an added pass would add to the spare sum, the next row's first), then closed up. Apart (never inlined),
/// so that its arrays are off the stack of the 3-wide kernels' path.
#[inline(never)]
fn five_wide_sums(
    kernel: FiveWide<'_>,
    stride: usize,
    inputs: &[&[u32]],
    shape: RowsShape,
    acc: &mut [i32],
) -> bool {
    let RowsShape { width, rows, step } = shape;
    if width % 2 == 0 {
        return five_wide_pass(kernel, stride, inputs, shape, acc);
    }
    // An odd width: rows of `width + 1` sums, as many as fit from row `y` on, each row then
    // moved back over the one spare sum before it.
    let mut y = 0;
    while y < rows {
        let room = (acc.len().saturating_sub(y * width))
            .checked_div(width + 1)
            .unwrap_or(0);
        let n = room.min(rows - y);
        let rows_y: [&[u32]; MAX_SIDE] = core::array::from_fn(|k| {
            let row = inputs.get(k).copied().unwrap_or_default();
            row.get(y * step..).unwrap_or_default()
        });
        let sums = acc.get_mut(y * width..).unwrap_or_default();
        let block = RowsShape {
            width: width + 1,
            rows: n,
            step,
        };
        if n == 0 || !five_wide_pass(kernel, stride, &rows_y, block, sums) {
            return false;
        }
        // Value by value, forwards (each moves `r` places left): no bounds to panic on.
        for r in 1..n {
            for i in r * width..(r + 1) * width {
                if let Some(&v) = sums.get(i + r)
                    && let Some(d) = sums.get_mut(i)
                {
                    *d = v;
                }
            }
        }
        y += n;
    }
    true
}

/// A 5-wide kernel as [`five_wide_sums`] reads it: its [`pair_taps`] pairs and singles, `kh`
/// and the bias.
type FiveWide<'t> = (&'t [u32; MAX_PAIRS], &'t [i32; MAX_SIDE], usize, i32);

/// [`five_wide_sums`] over `rows` output rows of an even `width` (or one row of any).
fn five_wide_pass(
    (pairs, singles, kh, bias): FiveWide<'_>,
    stride: usize,
    inputs: &[&[u32]],
    shape: RowsShape,
    acc: &mut [i32],
) -> bool {
    // Three-wide row `r`'s input and its `(a, d)` taps (rows past `2·kh`: zero taps).
    let half_row = |r: usize| -> (&[u32], [u32; 2]) {
        let ky = (r / 2).min(kh.saturating_sub(1));
        let input = inputs.get(ky).copied().unwrap_or_default();
        let (p01, p23) = (pair_of(pairs, 2 * ky), pair_of(pairs, 2 * ky + 1));
        let w4 = singles.get(ky).map_or(0, |&w| w as i16 as u16 as u32);
        match (r < 2 * kh, r % 2) {
            (false, _) => (input, [0, 0]),
            (true, 0) => (input, [p01, p01 >> 16 | p23 << 16]),
            (true, _) => (
                input.get(1..).unwrap_or_default(),
                [p23 & 0xFFFF_0000, p23 >> 16 | w4 << 16],
            ),
        }
    };
    let mut taps = [0_u32; KX3_TAPS];
    if let Some(b) = taps.get_mut(KX3_TAPS - 2..) {
        b.fill(bias as u32);
    }
    let mut first: [&[u32]; 3] = [&[]; 3];
    for (k, (input, slot)) in first.iter_mut().zip(taps.chunks_exact_mut(2)).enumerate() {
        let (row, words) = half_row(k);
        *input = row;
        for (tap, word) in slot.iter_mut().zip(words) {
            *tap = word;
        }
    }
    if !kx3_pass(&first, &taps, stride, shape, acc) {
        return false;
    }
    (3..2 * kh).step_by(2).all(|r| {
        let (row0, taps0) = half_row(r);
        let (row1, taps1) = match r + 1 < 2 * kh {
            true => half_row(r + 1),
            false => (row0, [0, 0]),
        };
        // Rows 3 and 4's slots, which the two-row pass reads.
        let words = [taps0[0], taps0[1], taps1[0], taps1[1]];
        for (tap, word) in taps.iter_mut().skip(6).zip(words) {
            *tap = word;
        }
        kx3_pass(&[row0, row1], &taps, stride, shape, acc)
    })
}

/// Pair `i` of a 5-wide kernel's [`pair_taps`] (0 past them).
fn pair_of(pairs: &[u32; MAX_PAIRS], i: usize) -> u32 {
    pairs.get(i).copied().unwrap_or(0)
}

/// A 3-wide kernel's taps (`kh` rows of 3, at most 5) and bias as [`kx3_pass`] reads them:
/// per row `(w0, w1)` and `(w1, w2)`, then the bias twice.
fn kx3_taps(w_c: &[i8], bias: i32) -> [u32; KX3_TAPS] {
    let mut taps = [0_u32; KX3_TAPS];
    for (pair, w_row) in taps
        .chunks_exact_mut(2)
        .zip(w_c.chunks_exact(3))
        .take(MAX_SIDE)
    {
        if let ([a, d], &[w0, w1, w2]) = (pair, w_row) {
            (*a, *d) = (half(w0) | half(w1) << 16, half(w1) | half(w2) << 16);
        }
    }
    if let Some(b) = taps.get_mut(KX3_TAPS - 2..) {
        b.fill(bias as u32);
    }
    taps
}

/// The int16 value of `v` in the low half of a word.
fn half(v: i8) -> u32 {
    u32::from(i16::from(v) as u16)
}

/// The input rows the kernel rows of an output row read, widened to int16 with their padding,
/// in a ring of `kh` word-aligned rows: consecutive output rows share all but their new rows.
pub(super) struct RowRing<'s> {
    ring: &'s mut [u32],
    /// Words per ring row (half of [`row_values`]).
    stride: usize,
    /// Which input row each slot holds.
    loaded: [usize; MAX_SIDE],
    /// The row of sums the rows' outputs are summed in.
    acc: &'s mut [i32],
}

impl<'s> RowRing<'s> {
    /// A ring of rows of `stride` words in `ring`, and its row of sums.
    fn new(ring: &'s mut [u32], stride: usize, acc: &'s mut [i32]) -> Self {
        Self {
            ring,
            stride,
            loaded: [NOTHING; MAX_SIDE],
            acc,
        }
    }

    /// Forgets every row (a new input plane follows).
    pub(super) fn reset(&mut self) {
        self.loaded = [NOTHING; MAX_SIDE];
    }

    /// The rows output row `oy` reads from `plane` (the input channel's), each loaded once,
    /// as words (the first `kh` of the array), and the row of sums.
    pub(super) fn rows(
        &mut self,
        plane: &[i8],
        node: &ConvParams<'_>,
        oy: usize,
    ) -> ([&[u32]; MAX_SIDE], &mut [i32]) {
        let window = node.window;
        let kh = usize::from(window.kernel[0]);
        let (sh, pt, pl) = (
            usize::from(window.stride[0]),
            usize::from(window.pads[0]),
            usize::from(window.pads[1]),
        );
        let (w, h) = (node.in_shape.w, node.in_shape.h);
        let z = i16::from(node.input_zero_point);
        let stride = self.stride;
        let mut bases = [0_usize; MAX_SIDE];
        let first = (oy * sh).wrapping_sub(pt);
        for (ky, base) in bases.iter_mut().enumerate().take(kh) {
            // Padding rows (above or below the map) map to slots of their own row number
            // too: filled with zero points, and never taken for a real row.
            let iy = first.wrapping_add(ky);
            let slot = iy.wrapping_add(kh * MAX_SIDE) % kh.max(1);
            *base = slot * stride;
            if self.loaded.get(slot) == Some(&iy) {
                continue;
            }
            let Some(dst) = self.ring.get_mut(slot * stride..(slot + 1) * stride) else {
                continue;
            };
            let dst: &mut [i16] = bytemuck::cast_slice_mut(dst);
            match plane.get(iy.saturating_mul(w)..iy.saturating_add(1).saturating_mul(w)) {
                Some(src) if iy < h => widen_row(src, dst, pl, z),
                _ => dst.fill(z),
            }
            if let Some(l) = self.loaded.get_mut(slot) {
                *l = iy;
            }
        }
        let ring: &[u32] = self.ring;
        let rows = bases.map(|base| ring.get(base..base + stride).unwrap_or_default());
        (rows, self.acc)
    }
}

/// `dst` = `left` zero points, `src` widened to int16 ([`widen_into`]), zero points to the end.
fn widen_row(src: &[i8], dst: &mut [i16], left: usize, z: i16) {
    let (pad, rest) = dst.split_at_mut(left.min(dst.len()));
    pad.fill(z);
    let (body, right) = rest.split_at_mut(src.len().min(rest.len()));
    right.fill(z);
    widen_into(src, body);
}

/// The start of `dst` = `src` widened to int16: four values a word load (SXTB16 on the
/// Cortex-M4), stored as two words wherever they fall.
fn widen_into(src: &[i8], body: &mut [i16]) {
    let whole = src.len() & !3;
    let (body, tail) = body.split_at_mut(whole.min(body.len()));
    let bytes: &mut [u8] = bytemuck::cast_slice_mut(body);
    for (d, s) in bytes.chunks_exact_mut(8).zip(src.chunks_exact(4)) {
        if let (Ok(d), Ok(s)) = (<&mut [u8; 8]>::try_from(d), <[i8; 4]>::try_from(s)) {
            // (x0, x2) and (x1, x3), re-paired as (x0, x1) and (x2, x3).
            let (even, odd) = sxtb16_pairs(u32::from_le_bytes(s.map(|b| b as u8)));
            let low = (even & 0xFFFF) | odd << 16;
            let high = even >> 16 | (odd & 0xFFFF_0000);
            let (d0, d1) = d.split_at_mut(4);
            d0.copy_from_slice(&low.to_le_bytes());
            d1.copy_from_slice(&high.to_le_bytes());
        }
    }
    for (d, &s) in tail.iter_mut().zip(src.get(whole..).unwrap_or_default()) {
        *d = i16::from(s);
    }
}

/// `out[i] = requantize(acc[i])` with the fused clamp, the channel's parameters in registers.
#[inline(never)]
fn requantize_row(acc: &[i32], out: &mut [i8], requantize: impl Fn(i32) -> i8) {
    for (q, &a) in out.iter_mut().zip(acc) {
        *q = requantize(a);
    }
}

/// [`conv`] for a one-channel input (`group` 1, the image stems: ResNet-8's 3×3/1 1→16,
/// DS-CNN's 5×3/2 1→64, MobileNet's 3×3/2 1→8), as a depthwise conv whose every output
/// channel reads channel 0: the patch conv would stage four input channels at a time and
/// waste three quarters of its work here. The image is read in bands of output rows: each
/// band's padded input rows widened to int16 once into `bands` (as many rows as it holds, the
/// whole plane when it fits), then every output channel's taps meet them as in a depthwise
/// plane. The loader reserves one output row's kernel rows (`scratch_bytes`), so that a stem
/// never sets the model's scratch; it then runs in as few bands as the scratch the other
/// nodes need allows (ResNet-8's: one band, DS-CNN's and MobileNet's: a few, each band a
/// channel's taps made again).
#[inline(never)]
fn stem_bands(
    node: &ConvParams<'_>,
    input: &[i8],
    output: &mut [i8],
    bands: &mut [u32],
    acc: &mut [i32],
) -> bool {
    let window = node.window;
    let kh = usize::from(window.kernel[0]);
    let sh = usize::from(window.stride[0]).max(1);
    let row_words = row_values(node.in_shape.w, window) / 2;
    let (out_w, out_h, out_plane) = (node.out_shape.w, node.out_shape.h, node.out_shape.plane());
    // Output rows a band holds: their kernel rows, `(n - 1)·sh + kh` input rows, in `bands`.
    let Some(band) = (bands.len() / row_words.max(1))
        .checked_sub(kh)
        // Checked, though `sh ≥ 1`: LLVM lost that with the 5-wide sums beside (panic-never).
        .and_then(|spare| spare.checked_div(sh))
        .map(|more| (more + 1).min(out_h))
    else {
        return false;
    };
    for first in (0..out_h).step_by(band.max(1)) {
        let rows = band.min(out_h - first);
        let in_rows = (rows - 1) * sh + kh;
        let buffer = bands.get_mut(..in_rows * row_words).unwrap_or_default();
        widen_band(node, input, first * sh, buffer);
        for (o, out_c) in output.chunks_exact_mut(out_plane.max(1)).enumerate() {
            // By reference: moving the taps out of the `Option` would copy them (the
            // stack peak).
            let taps = ChannelTaps::new(node, o);
            let Some(taps) = &taps else {
                return false;
            };
            let Some(out_rows) = out_c.get_mut(first * out_w..(first + rows) * out_w) else {
                return false;
            };
            if !channel_rows(node, taps, buffer, acc, out_rows) {
                return false;
            }
        }
    }
    true
}

/// The padded input rows from padded row `top` on, widened to int16 into `buffer` (as many
/// rows as it holds), the padding rows above and below the map zero points. Apart from
/// [`stem_bands`], so that its locals are off the stack while the channels' sums run.
#[inline(never)]
fn widen_band(node: &ConvParams<'_>, input: &[i8], top: usize, buffer: &mut [u32]) {
    let window = node.window;
    let (pt, pl) = (usize::from(window.pads[0]), usize::from(window.pads[1]));
    let (w, h) = (node.in_shape.w, node.in_shape.h);
    let row_words = row_values(w, window) / 2;
    let z = i16::from(node.input_zero_point);
    let plane = input.get(..node.in_shape.plane()).unwrap_or_default();
    for (r, dst) in buffer.chunks_exact_mut(row_words.max(1)).enumerate() {
        let iy = (top + r).wrapping_sub(pt);
        let dst: &mut [i16] = bytemuck::cast_slice_mut(dst);
        match plane.get(iy.saturating_mul(w)..iy.saturating_add(1).saturating_mul(w)) {
            Some(src) if iy < h => widen_row(src, dst, pl, z),
            _ => dst.fill(z),
        }
    }
}
