//! The DSP instructions the fast kernels use: the Cortex-M4's (`ops::arm_dsp`) where the
//! target has them, else plain-Rust stand-ins computing the same numbers, so that the host
//! tests run the fast kernels' own bookkeeping (patch layout, tails, padding) against the
//! portable kernels too.

#[cfg(not(qcnn_arm_dsp))]
use crate::ops::fused_add::FusedAdd;
use crate::ops::kx3_rows::Kx3Pass;
pub(crate) use crate::ops::kx3_rows::{KX3_TAPS, RowsShape};
pub(crate) use crate::ops::pointwise_columns::Columns;
#[cfg(not(qcnn_arm_dsp))]
use crate::ops::pointwise_columns::FittingBlocks;
use crate::ops::pointwise_columns::PointwiseBlocks;
use crate::ops::runs::FittingRuns;
pub(crate) use crate::ops::runs::Runs;

#[cfg(qcnn_arm_dsp)]
pub(crate) use crate::ops::arm_dsp::{
    add_four, blocks_loops, copy_runs, expand_columns, kx3_loops, linear, mac_patch4,
    mac_patch4_unrolled, max_bytes4, requantize_columns, requantize_run, smlad, sum_bytes,
    sxtb16_pairs,
};

#[cfg(not(qcnn_arm_dsp))]
fn halves(word: u32) -> (i32, i32) {
    (
        i32::from(word as u16 as i16),
        i32::from((word >> 16) as u16 as i16),
    )
}

/// SXTB16 and SXTB16 ROR #8: the int8 bytes of `word` as the int16 pairs (bytes 0 and 2,
/// bytes 1 and 3).
#[cfg(not(qcnn_arm_dsp))]
pub(crate) fn sxtb16_pairs(word: u32) -> (u32, u32) {
    let pair = |lo: u32, hi: u32| {
        (lo as u8 as i8 as i16 as u16 as u32) | (hi as u8 as i8 as i16 as u16 as u32) << 16
    };
    (pair(word, word >> 16), pair(word >> 8, word >> 24))
}

/// SSUB8 then SEL: the lane-wise maximum of four int8 values.
#[cfg(not(qcnn_arm_dsp))]
pub(crate) fn max_bytes4(a: u32, b: u32) -> u32 {
    let lanes = |w: u32| w.to_le_bytes().map(|b| b as i8);
    let (a, b) = (lanes(a), lanes(b));
    u32::from_le_bytes(core::array::from_fn(|i| a[i].max(b[i]) as u8))
}

#[cfg(not(qcnn_arm_dsp))]
pub(crate) fn smlad(a: u32, b: u32, acc: i32) -> i32 {
    let ((a0, a1), (b0, b1)) = (halves(a), halves(b));
    acc.wrapping_add(a0 * b0).wrapping_add(a1 * b1)
}

#[cfg(not(qcnn_arm_dsp))]
pub(crate) fn mac_patch4(patch: &[u32], weights: &[i8], groups: usize, acc: &mut [i32; 4]) {
    for (words, w) in patch
        .chunks_exact(8)
        .zip(weights.chunks_exact(4))
        .take(groups)
    {
        let [w0, w1, w2, w3] = [0, 1, 2, 3].map(|i| i32::from(w.get(i).copied().unwrap_or(0)));
        for (a, pair) in acc.iter_mut().zip(words.chunks_exact(2)) {
            let (x0, x2) = halves(pair.first().copied().unwrap_or(0));
            let (x1, x3) = halves(pair.get(1).copied().unwrap_or(0));
            *a = a
                .wrapping_add(w0 * x0)
                .wrapping_add(w2 * x2)
                .wrapping_add(w1 * x1)
                .wrapping_add(w3 * x3);
        }
    }
}

/// The Cortex-M4's Linear kernel (`ops::arm_dsp::linear`) as one dot product per row, within
/// its limits: at least one 32-byte step, whole words, word-aligned rows, and the input's
/// int16 pairs held by `scratch`; `false` (nothing written) outside them.
#[cfg(not(qcnn_arm_dsp))]
pub(crate) fn linear(
    op: &crate::ops::linear_op::LinearOp<'_>,
    input: &[i8],
    output: &mut [i8],
    scratch: &mut [i8],
) -> bool {
    let k = op.in_features;
    let aligned = (op.weights.as_ptr() as usize).is_multiple_of(4) && k.is_multiple_of(4);
    let words = bytemuck::pod_align_to_mut::<i8, u32>(scratch).1.len();
    if k < crate::ops::scratch::LINEAR_STEP || !aligned || words < k / 2 || input.len() < k {
        return false;
    }
    op.run_rows(input, output);
    true
}

#[cfg(not(qcnn_arm_dsp))]
pub(crate) fn sum_bytes(bytes: &[i8]) -> i32 {
    bytes.iter().map(|&b| i32::from(b)).sum()
}

/// Copies [`Runs`] from `src` to `dst` in order, so that each run keeps its first `step`
/// bytes and the next overwrites the rest (the graph patch conv's staging of a column whose
/// window lies inside the input: one run per kernel row). `false` (nothing copied) when a
/// count is 0 or a run would fall outside `src` or `dst` ([`FittingRuns::new`]).
#[inline(always)]
pub(crate) fn gather_runs(src: &[i8], runs: Runs, dst: &mut [i8]) -> bool {
    FittingRuns::new(src, runs, dst).map(copy_runs).is_some()
}

/// The Cortex-M4's copy (`ops::arm_dsp::copy_runs`), run by run.
#[cfg(not(qcnn_arm_dsp))]
fn copy_runs(runs: FittingRuns<'_, '_>) {
    let (src, runs, dst) = runs.into_parts();
    let (plane, row, step) = (runs.plane, runs.row, runs.step);
    let starts = (0..runs.channels).flat_map(|c| (0..runs.rows).map(move |r| c * plane + r * row));
    for (i, at) in starts.enumerate() {
        if let (Some(d), Some(s)) = (dst.get_mut(i * step..i * step + 4), src.get(at..at + 4)) {
            d.copy_from_slice(s);
        }
    }
}

/// `out[i] = FoldedRequant::apply(acc[i])` for the four sums of a channel whose folded
/// requantizer is `words` (the Cortex-M4's packs and clamps the four bytes together).
#[cfg(not(qcnn_arm_dsp))]
pub(crate) fn requantize_columns(acc: &[i32; 4], words: &[u32], out: &mut [i8]) {
    let Ok(words) = <[u32; 5]>::try_from(words.get(..5).unwrap_or_default()) else {
        return;
    };
    let folded = super::requant::FoldedRequant::from_words(words);
    for (q, &a) in out.iter_mut().zip(acc) {
        *q = folded.apply(a);
    }
}

/// `acc[y·width + i]` for output rows `y < rows` and outputs `i < width` (at `x = i·stride`,
/// 1 or 2) = the bias (three inputs: kernel rows 0 to 2 of `taps`, 3 wide) or itself (two:
/// rows 3 and 4, a 5×3 kernel's last two), plus those kernel rows against
/// `inputs[k][y·step + x..]`; an odd width's spare sum lands on the next row's first, which
/// overwrites it. `false` (nothing written) when the inputs or the sums are short
/// ([`Kx3Pass::new`]). Never inlined: its loop words stay off the stack of its callers.
#[inline(never)]
pub(crate) fn kx3_pass(
    inputs: &[&[u32]],
    taps: &[u32; KX3_TAPS],
    stride: usize,
    shape: RowsShape,
    acc: &mut [i32],
) -> bool {
    match Kx3Pass::new(inputs, taps, stride, shape, acc) {
        Some(pass) => {
            kx3_loops(pass);
            true
        }
        None => false,
    }
}

/// The Cortex-M4's row loops (`ops::arm_dsp::kx3_loops`), value by value.
#[cfg(not(qcnn_arm_dsp))]
fn kx3_loops(pass: Kx3Pass<'_, '_>) {
    let (inputs, acc, words, stride, RowsShape { width, rows, step }) = pass.into_parts();
    let pairs = width.div_ceil(2);
    let (first, from_bias) = (if inputs.len() == 3 { 0 } else { 3 }, inputs.len() == 3);
    let value = |row: &[u32], x: usize| {
        let word = row.get(x / 2).copied().unwrap_or(0);
        i32::from((word >> (16 * (x % 2))) as u16 as i16)
    };
    let bias = words.get(KX3_TAPS - 2).map_or(0, |&b| b as i32);
    for y in 0..rows {
        // Pairs, as the loops: an odd width's spare is the next row's first.
        for i in 0..2 * pairs {
            let Some(sum) = acc.get_mut(y * width + i) else {
                continue;
            };
            let mut total = if from_bias { bias } else { *sum };
            for (k, &row) in inputs.iter().enumerate() {
                let tap = |j: usize| halves(words.get(2 * (first + k) + j).copied().unwrap_or(0));
                let ((w0, w1), (_, w2)) = (tap(0), tap(1));
                let x = y * 2 * step + i * stride;
                let dot = w0 * value(row, x) + w1 * value(row, x + 1) + w2 * value(row, x + 2);
                total = total.wrapping_add(dot);
            }
            *sum = total;
        }
    }
}

/// `out[i] = FoldedRequant::apply(acc[i])` for the first `4·⌊len / 4⌋` sums (the Cortex-M4's
/// four a pass; the caller takes the rest).
#[cfg(not(qcnn_arm_dsp))]
pub(crate) fn requantize_run(acc: &[i32], words: &[u32; 5], out: &mut [i8]) {
    let folded = super::requant::FoldedRequant::from_words(*words);
    let whole = acc.len().min(out.len()) / 4 * 4;
    for (q, &a) in out.iter_mut().zip(acc).take(whole) {
        *q = folded.apply(a);
    }
}

/// The fused residual Add of four outputs of a channel: each sum through the channel's folded
/// requantizer `words`, then with the residual in `out` through the Add's tables and its
/// folded output requantizer `add`, the four outputs over the residual. Nothing when `out` has
/// fewer than four bytes or a requantizer fewer than five words.
#[inline(always)]
pub(crate) fn add_columns(
    acc: &[i32; 4],
    words: &[u32],
    tables: (&[i32; 256], &[i32; 256]),
    add: &[u32],
    out: &mut [i8],
) {
    if let (Some(words), Some(add), Some(out)) = (
        words.first_chunk(),
        add.first_chunk(),
        out.first_chunk_mut(),
    ) {
        add_four((acc, words, tables, add, out));
    }
}

/// The Cortex-M4's assembly (`ops::arm_dsp::add_four`), value by value.
#[cfg(not(qcnn_arm_dsp))]
fn add_four((acc, words, (a, b), add, out): FusedAdd<'_>) {
    use super::requant::FoldedRequant;
    let (conv, add) = (
        FoldedRequant::from_words(*words),
        FoldedRequant::from_words(*add),
    );
    for (q, &acc) in out.iter_mut().zip(acc) {
        let v = conv.apply(acc);
        let sum = a[usize::from(v as u8)].saturating_add(b[usize::from(*q as u8)]);
        *q = add.apply(sum);
    }
}

/// The same pair words as the Cortex-M4's `expand_columns`: group `g` of column `c` (the
/// four int8 taps at `stage[c·stride + 4g..]`) at words `8g + 2c` and `8g + 2c + 1`.
#[cfg(not(qcnn_arm_dsp))]
pub(crate) fn expand_columns(patch: &mut [u32], stage: &[i8], stride: usize, groups: usize) {
    let fits = groups > 0 && patch.len() >= 8 * groups && 3 * stride + 4 * groups <= stage.len();
    if !fits {
        return;
    }
    for (g, dst) in patch.chunks_exact_mut(8).take(groups).enumerate() {
        for (col, pair) in dst.chunks_exact_mut(2).enumerate() {
            let at = col * stride + 4 * g;
            let word = stage
                .get(at..at + 4)
                .and_then(|b| <[i8; 4]>::try_from(b).ok())
                .map_or(0, |b| u32::from_le_bytes(b.map(|x| x as u8)));
            let (even, odd) = sxtb16_pairs(word);
            pair.copy_from_slice(&[even, odd]);
        }
    }
}

/// The pointwise kernel's name for [`mac_patch4`] (the same loop).
#[cfg(not(qcnn_arm_dsp))]
pub(crate) use mac_patch4 as mac_patch4_unrolled;

/// Every output channel's four outputs for `blocks` blocks of four columns (each unpacked
/// first into `patch` from `columns`): [`mac_patch4`]'s sums from the channel's bias, each
/// requantized and clamped by its `super::requant::FoldedRequant`, block `b`'s channel `o` at
/// `out[o·plane + 4b..]`; `false` (nothing written) when `c` is not a positive multiple of 4,
/// a slice is short ([`PointwiseBlocks::fit`]) or, on the host, a channel's shift is one that
/// arithmetic does not take (the Cortex-M4's caller checks that with `pointwise_folds`).
/// Never inlined: the Cortex-M4's block state stays off its callers' stack.
#[allow(clippy::too_many_arguments)]
#[inline(never)]
pub(crate) fn pointwise_blocks(
    columns: Columns<'_>,
    patch: &mut [u32],
    weights: &[i8],
    channels: (&[[u8; 4]], &[[u8; 4]], &[i8]),
    requant: (i8, [i8; 2]),
    out: &mut [i8],
    plane: usize,
    blocks: usize,
) -> bool {
    let call = PointwiseBlocks {
        columns,
        patch,
        weights,
        channels,
        requant,
        out,
        plane,
        blocks,
    };
    call.fit().is_some_and(blocks_loops)
}

/// The Cortex-M4's loops (`ops::arm_dsp::blocks_loops`), value by value, after the host's own
/// check that every channel's requantizer folds.
#[cfg(not(qcnn_arm_dsp))]
fn blocks_loops(call: FittingBlocks<'_>) -> bool {
    let PointwiseBlocks {
        columns,
        patch,
        weights,
        channels: (bias, multiplier, shift),
        requant: (zero_point, clamp),
        out,
        plane,
        blocks,
    } = call.into_inner();
    let c = patch.len() / 2;
    let data = crate::graph::kernels::ChannelData {
        bias,
        multiplier,
        shift,
        zero_point,
        clamp,
    };
    if !super::requant::pointwise_folds(&data) {
        return false;
    }
    for b in 0..blocks {
        let source = match columns {
            Columns::Unpacked => None,
            Columns::Map(input, in_plane) => Some((input, in_plane)),
            Columns::Output(in_plane) => Some((&*out, in_plane)),
        };
        if let Some((input, in_plane)) = source {
            let column = |ci: usize| {
                let at = ci * in_plane + 4 * b;
                input.get(at..at + 4).map_or([0; 4], |s| {
                    core::array::from_fn(|i| s.get(i).copied().unwrap_or(0))
                })
            };
            for (g, words) in patch.chunks_exact_mut(8).enumerate() {
                let rows: [[i8; 4]; 4] = core::array::from_fn(|k| column(4 * g + k));
                for (p, pair) in words.chunks_exact_mut(2).enumerate() {
                    let x = rows.map(|r| u32::from(i16::from(r[p]) as u16));
                    pair.copy_from_slice(&[x[0] | x[2] << 16, x[1] | x[3] << 16]);
                }
            }
        }
        for (o, (w_row, bias)) in weights.chunks_exact(c).zip(bias).enumerate() {
            let mut acc = [i32::from_le_bytes(*bias); 4];
            mac_patch4(patch, w_row, c / 4, &mut acc);
            let (_, requant) = data.channel(o);
            let Some(folded) = super::requant::FoldedRequant::new(&requant, clamp) else {
                continue;
            };
            let outs = out.iter_mut().skip(o * plane + 4 * b).take(4);
            for (q, a) in outs.zip(acc) {
                *q = folded.apply(a);
            }
        }
    }
    true
}
