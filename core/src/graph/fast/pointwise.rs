//! Pointwise Conv (1×1 kernel, `group` 1, any stride; a 1×1 window has no padding): a matrix
//! product `Y[co][p] = requant(bias + Σ_ci W[co][ci] · X[ci][p])` over the output pixels `p`,
//! and the same with a residual Add fused (ResNet-8's 1×1 downsample convs).
//!
//! Four output pixels at a time (a last block of fewer, in a map of four or more, is the
//! map's last four), their input columns `X[·][p]` are unpacked to int16 into the scratch in
//! the layout of [`super::patch_conv`] (per group of four input channels, for each pixel, the
//! words `(x0 | x2 << 16)` and `(x1 | x3 << 16)`), with the four pixels' bytes of one channel
//! read as one word at stride 1. Then one assembly routine (`dsp::pointwise_block`) runs
//! every output channel: its int8 weight row, read straight from the blob, meets the four
//! columns with SMLAD (two groups of four channels a loop pass, 0.9 instructions per MAC), and
//! its four sums are requantized in registers with `FoldedRequant`'s one-multiply
//! arithmetic (six instructions an output, the channel's parameters read from the blob, none
//! prepared per call in RAM), clamped four bytes at once and stored as one word. With a fused
//! residual Add the block's values go to the scratch first, then through the Add's tables.
//! A block with channels not in groups of four, or a channel whose shift that arithmetic does
//! not take (a left shift, a right shift of 1 or above 23), runs one channel at a time with
//! `ChannelRequant`.

use crate::shape::MapShape;

use super::super::channel_data::ChannelData;
use super::super::conv_params::ConvParams;
use super::super::format::Window;
use super::super::kernels::AddOp;
use super::add::{TABLE_WORDS, Tables};
use super::dsp::{Columns, mac_patch4_unrolled, pointwise_blocks};
use super::requant::{ChannelRequant, pointwise_folds};

/// Output pixels computed together.
const COLUMNS: usize = 4;

fn words_for(c: usize) -> usize {
    // Eight words per group of four channels; the tail's 4 × 4 int16 values.
    2 * (c & !3) + 8
}

/// Scratch bytes for `c` input channels (with the slack of aligning to a word).
pub fn scratch_bytes(c: usize) -> usize {
    words_for(c).saturating_mul(4).saturating_add(3)
}

/// Scratch bytes for [`conv_add`] with `c` input and `out_c` output channels: the Add's
/// tables, the conv's columns, and a block's conv values (four bytes a channel) before the
/// Add.
pub fn conv_add_scratch_bytes(c: usize, out_c: usize) -> usize {
    scratch_bytes(c)
        .saturating_add(4 * TABLE_WORDS)
        .saturating_add(4 * out_c)
}

/// Whether [`conv_in_place`] runs a Conv this kernel takes over its own input (so the loader
/// sizes no staging for it): stride 1, the output pixels the input's.
pub fn runs_over_itself(in_shape: MapShape, out_shape: MapShape, window: Window) -> bool {
    window.stride == [1, 1] && in_shape.plane() == out_shape.plane()
}

/// Whether this kernel takes a Conv of this window and group count.
pub fn takes(window: Window, groups: usize) -> bool {
    groups == 1 && window.kernel == [1, 1] && window.pads == [0; 4]
}

/// The conv of [`crate::graph::kernels::conv`] for a 1×1 kernel with `groups == 1`; `false`
/// (nothing written) for another window, or when `scratch` is shorter than
/// [`scratch_bytes`].
#[inline(never)]
pub fn conv(node: &ConvParams<'_>, input: &[i8], output: &mut [i8], scratch: &mut [i8]) -> bool {
    let words = bytemuck::pod_align_to_mut::<i8, u32>(scratch).1;
    conv_into(node, Maps::Apart(input, output), None, words)
}

/// [`conv`] with the output written over the input (`tensor`, the larger of the two maps):
/// each block's columns are unpacked before its outputs are stored, and output (o, p) lies
/// over input (o, p) only, so no staging copy is needed. Stride 1 only (the output pixels are
/// the input's); `false` (nothing written) otherwise, or when `scratch` is shorter than
/// [`scratch_bytes`].
#[inline(never)]
pub fn conv_in_place(node: &ConvParams<'_>, tensor: &mut [i8], scratch: &mut [i8]) -> bool {
    let (in_shape, out_shape) = (node.in_shape, node.out_shape);
    if !runs_over_itself(in_shape, out_shape, node.window) {
        return false;
    }
    let words = bytemuck::pod_align_to_mut::<i8, u32>(scratch).1;
    // The scratch past the columns' (the staging's, unused here): a last block of fewer
    // than four pixels goes there first, four bytes a channel (without room, it runs one
    // channel at a time).
    let Some((words, spare)) = words.split_at_mut_checked(words_for(in_shape.c)) else {
        return false;
    };
    let spare = spare.get_mut(..out_shape.c).unwrap_or_default();
    let maps = Maps::InPlace(tensor, bytemuck::cast_slice_mut(spare));
    conv_into(node, maps, None, words)
}

/// The map a conv reads and the one it writes: apart, or one slice written over itself
/// (with four spare bytes a channel, or none).
enum Maps<'a> {
    Apart(&'a [i8], &'a mut [i8]),
    InPlace(&'a mut [i8], &'a mut [i8]),
}

impl Maps<'_> {
    fn input(&self) -> &[i8] {
        match self {
            Maps::Apart(input, _) => input,
            Maps::InPlace(tensor, _) => tensor,
        }
    }

    fn output(&mut self) -> &mut [i8] {
        match self {
            Maps::Apart(_, output) => output,
            Maps::InPlace(tensor, _) => tensor,
        }
    }
}

/// [`crate::graph::kernels::conv_add`] for a 1×1 kernel with `groups == 1`: `output` holds the
/// residual and receives the sums, each input's rescaling looked up as [`super::add`] does;
/// `false` (nothing written) for another window, or when `scratch` is shorter than
/// [`conv_add_scratch_bytes`].
#[inline(never)]
pub fn conv_add(
    node: &ConvParams<'_>,
    input: &[i8],
    output: &mut [i8],
    residual: &AddOp,
    scratch: &mut [i8],
) -> bool {
    let words = bytemuck::pod_align_to_mut::<i8, u32>(scratch).1;
    let Some((tables, words)) = super::add::residual_tables(words, residual) else {
        return false;
    };
    let Some((words, values)) = words.split_at_mut_checked(words_for(node.in_shape.c)) else {
        return false;
    };
    let Some(values) = values.get_mut(..node.out_shape.c) else {
        return false;
    };
    let residual = (&tables, bytemuck::cast_slice_mut(values));
    conv_into(node, Maps::Apart(input, output), Some(residual), words)
}

fn conv_into(
    &ConvParams {
        in_shape,
        out_shape,
        window,
        weights,
        ref channels,
        ..
    }: &ConvParams<'_>,
    mut maps: Maps<'_>,
    // The Add's tables, and room for a block's conv values (four bytes a channel).
    mut residual: Option<(&Tables<'_>, &mut [i8])>,
    words: &mut [u32],
) -> bool {
    if !takes(window, 1) {
        return false;
    }
    let c = in_shape.c;
    let c4 = c & !3;
    let Some(words) = words.get_mut(..words_for(c)) else {
        return false;
    };
    let Some((main, tail)) = words.split_at_mut_checked(2 * c4) else {
        return false;
    };
    if channels.any_negative_multiplier() {
        return false;
    }
    // The assembly's requantization, when every channel's shift suits it (and there is a
    // group of four channels for its loop).
    let requant = (pointwise_folds(channels) && c4 > 0).then_some(());
    let [sh, sw] = window.stride.map(usize::from);
    let (in_plane, out_plane) = (in_shape.plane(), out_shape.plane());
    // At stride 1 the output pixels are the input's, in order.
    let dense = sh == 1 && sw == 1 && in_plane == out_plane;
    let out_w = out_shape.w.max(1);
    let source = |q: usize| -> usize {
        if dense {
            q
        } else {
            (q / out_w) * sh * in_shape.w + (q % out_w) * sw
        }
    };
    let in_place = matches!(maps, Maps::InPlace(..));
    let n_out = out_shape.c;
    let block_channels = (
        channels.bias.get(..n_out).unwrap_or_default(),
        channels.multiplier,
        channels.shift,
    );
    let requant_args = (channels.zero_point, channels.clamp);
    // The common case (stride 1, channels in groups of four, no residual): every whole
    // block, its columns unpacked too, in one assembly call.
    let mut first = 0;
    if requant.is_some() && c4 == c && residual.is_none() && dense && out_plane >= COLUMNS {
        let blocks = out_plane / COLUMNS;
        let done = match &mut maps {
            Maps::Apart(input, output) => pointwise_blocks(
                Columns::Map(input, in_plane),
                main,
                weights,
                block_channels,
                requant_args,
                output,
                out_plane,
                blocks,
            ),
            Maps::InPlace(tensor, _) => pointwise_blocks(
                Columns::Output(in_plane),
                main,
                weights,
                block_channels,
                requant_args,
                tensor,
                out_plane,
                blocks,
            ),
        };
        if done {
            first = blocks * COLUMNS;
        }
    }
    for block in (first..out_plane).step_by(COLUMNS) {
        // A last block of fewer than four columns, in a map of four or more, is the map's
        // last four: the columns it shares with the block before are computed again (the
        // same values), and `skip` keeps them from being stored, or added to, twice. In
        // place those columns are already outputs: the block keeps its own columns, the
        // missing ones repeating its last (never stored).
        let q0 = if in_place {
            block
        } else {
            block.min(out_plane.saturating_sub(COLUMNS))
        };
        let (skip, n) = (block - q0, (out_plane - q0).min(COLUMNS));
        // Input pixel of each column (past the plane's end: the last one, never stored).
        let pixels: [usize; COLUMNS] = core::array::from_fn(|col| source(q0 + col.min(n - 1)));
        fill(
            maps.input(),
            in_plane,
            c,
            pixels,
            dense && n == COLUMNS,
            main,
            bytemuck::cast_slice_mut(&mut *tail),
        );
        let columns = (q0, skip, n);
        // The one block just unpacked, every channel in one assembly loop into `out`.
        let mut one_block = |out: &mut [i8], plane: usize| {
            pointwise_blocks(
                Columns::Unpacked,
                main,
                weights,
                block_channels,
                requant_args,
                out,
                plane,
                1,
            )
        };
        // In place, a last block of fewer than four: every channel in one assembly loop into
        // the spare bytes, then its `n` bytes of each channel.
        if let (true, Some(_), Maps::InPlace(tensor, spare)) =
            (n < COLUMNS && c4 == c, requant, &mut maps)
        {
            let spare = &mut **spare;
            if one_block(spare, COLUMNS) {
                let rows = tensor.chunks_mut(out_plane.max(1)).take(n_out);
                for (out, v) in rows.zip(spare.chunks_exact(COLUMNS)) {
                    let out = out.get_mut(q0..q0 + n).unwrap_or_default();
                    for (q, &v) in out.iter_mut().zip(v) {
                        *q = v;
                    }
                }
                continue;
            }
        }
        let output = maps.output();
        // A whole block, channels in groups of four: every channel in one assembly loop,
        // into the output or, with a residual, into `values` first.
        if requant.is_some() && n == COLUMNS && c4 == c {
            let done = match &mut residual {
                None => one_block(output.get_mut(q0..).unwrap_or_default(), out_plane),
                Some((t, values)) => {
                    let ran = one_block(values, COLUMNS);
                    if ran {
                        let rows = output.chunks_exact_mut(out_plane.max(1));
                        for (out, v) in rows.zip(values.chunks_exact(COLUMNS)) {
                            // Four columns a fixed length (an unrolled loop) unless some are
                            // the block before's.
                            let out = out.get_mut(q0..q0 + COLUMNS).unwrap_or_default();
                            if skip == 0 {
                                for (q, &v) in out.iter_mut().zip(v) {
                                    *q = t.apply(v, *q);
                                }
                            } else {
                                for (q, &v) in out.iter_mut().zip(v).skip(skip) {
                                    *q = t.apply(v, *q);
                                }
                            }
                        }
                    }
                    ran
                }
            };
            if done {
                continue;
            }
        }
        let tail_values: &[i16] = bytemuck::cast_slice(&*tail);
        let residual = residual.as_ref().map(|(t, _)| *t);
        let unpacked = (&*main, tail_values, c);
        one_channel_at_a_time(
            unpacked, columns, weights, channels, residual, output, out_plane,
        );
    }
    true
}

/// Every output channel's outputs of one block outside [`pointwise_block`] (a block of
/// fewer than four columns, channels not in groups of four, or a shift the assembly's [`super::requant::FoldedRequant`]
/// does not take), columns `skip..n` of the block at `q0` (see `conv_into`). Not inlined: the
/// uncommon path keeps its frame off the common one.
#[inline(never)]
fn one_channel_at_a_time(
    (main, tail_values, c): (&[u32], &[i16], usize),
    (q0, skip, n): (usize, usize, usize),
    weights: &[i8],
    channels: &ChannelData<'_>,
    residual: Option<&Tables<'_>>,
    output: &mut [i8],
    out_plane: usize,
) {
    let c4 = c & !3;
    let rows = weights.chunks_exact(c.max(1)).zip(channels.bias);
    for (o, (w_row, bias)) in rows.enumerate() {
        let start = o * out_plane + q0;
        let Some(out) = output.get_mut(start + skip..start + n) else {
            continue;
        };
        let mut acc = [i32::from_le_bytes(*bias); COLUMNS];
        add_tail(&mut acc, tail_values, w_row.get(c4..).unwrap_or_default());
        let values = channel_outputs(main, w_row, acc, channels, o).map(|v| v as i8);
        let unstored = values.iter().skip(skip);
        match residual {
            // Four outputs (then nothing skipped): one word (the compiler's copy of `n` bytes
            // is a call).
            None => match <&mut [i8; COLUMNS]>::try_from(&mut *out) {
                Ok(four) => *four = values,
                Err(_) => {
                    for (q, &v) in out.iter_mut().zip(unstored) {
                        *q = v;
                    }
                }
            },
            Some(t) => {
                for (q, &v) in out.iter_mut().zip(unstored) {
                    *q = t.apply(v, *q);
                }
            }
        }
    }
}

/// The last `c mod 4` channels' products (`w_tail`) added to the four sums.
#[inline(always)]
fn add_tail(acc: &mut [i32; COLUMNS], tail_values: &[i16], w_tail: &[i8]) {
    for (t, &w) in w_tail.iter().enumerate() {
        let w = i32::from(w);
        for (col, a) in acc.iter_mut().enumerate() {
            let x = tail_values.get(col * 4 + t).copied().unwrap_or(0);
            *a = a.wrapping_add(w * i32::from(x));
        }
    }
}

/// One output channel's four outputs (as bytes): the SMLAD loop from `acc`, then
/// [`ChannelRequant`].
fn channel_outputs(
    main: &[u32],
    w_row: &[i8],
    mut acc: [i32; COLUMNS],
    channels: &ChannelData<'_>,
    o: usize,
) -> [u8; COLUMNS] {
    mac_patch4_unrolled(main, w_row, main.len() / 8, &mut acc);
    let (_, requant) = channels.channel(o);
    // Checked non-negative by the caller.
    let requant = ChannelRequant::new(&requant, channels.clamp);
    acc.map(|a| requant.map_or(0, |r| r.apply(a)) as u8)
}

/// Four channels' bytes of four pixels as `main`'s eight words.
#[inline(always)]
fn pack_group([r0, r1, r2, r3]: [[i8; COLUMNS]; 4], dst: &mut [u32]) {
    for (col, words) in dst.chunks_exact_mut(2).enumerate() {
        if let ([even, odd], Some(&x0), Some(&x1), Some(&x2), Some(&x3)) =
            (words, r0.get(col), r1.get(col), r2.get(col), r3.get(col))
        {
            *even = pair(x0, x2);
            *odd = pair(x1, x3);
        }
    }
}

/// [`fill`]'s groups for four pixels in a row from `first`: each channel's four bytes one
/// slice.
#[inline(never)]
fn fill_contiguous(input: &[i8], plane: usize, first: usize, main: &mut [u32]) {
    let row = |ci: usize| -> [i8; COLUMNS] {
        let start = ci * plane + first;
        input
            .get(start..start + COLUMNS)
            .and_then(|s| s.try_into().ok())
            .unwrap_or([0; COLUMNS])
    };
    for (g, dst) in main.chunks_exact_mut(2 * COLUMNS).enumerate() {
        let ci = 4 * g;
        pack_group([row(ci), row(ci + 1), row(ci + 2), row(ci + 3)], dst);
    }
}

/// `(low, high)` as the int16 halves of a word.
#[inline(always)]
fn pair(low: i8, high: i8) -> u32 {
    u32::from(i16::from(low) as u16) | (u32::from(i16::from(high) as u16) << 16)
}

/// Unpacks the columns of input pixels `pixels` into `main` (per group of four channels, for
/// each column, `(x0 | x2 << 16)` then `(x1 | x3 << 16)`) and the last `c mod 4` channels
/// into `tail` (column `col`'s channel `t` at `4·col + t`). `contiguous`: the four pixels
/// follow one another, so one channel's four bytes are one slice. Not inlined: its arrays
/// stay off the frame that the assembly block is called from.
#[inline(never)]
fn fill(
    input: &[i8],
    plane: usize,
    c: usize,
    pixels: [usize; COLUMNS],
    contiguous: bool,
    main: &mut [u32],
    tail: &mut [i16],
) {
    let c4 = c & !3;
    let byte = |ci: usize, p: usize| input.get(ci * plane + p).copied().unwrap_or(0);
    if contiguous {
        fill_contiguous(input, plane, pixels[0], main);
    } else {
        for (g, dst) in main.chunks_exact_mut(2 * COLUMNS).enumerate().take(c4 / 4) {
            let rows: [[i8; COLUMNS]; 4] =
                core::array::from_fn(|k| pixels.map(|p| byte(4 * g + k, p)));
            pack_group(rows, dst);
        }
    }
    for (t, ci) in (c4..c).enumerate() {
        for (col, &p) in pixels.iter().enumerate() {
            if let Some(d) = tail.get_mut(col * 4 + t) {
                *d = i16::from(byte(ci, p));
            }
        }
    }
}
