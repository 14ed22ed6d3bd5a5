//! A graph model's nodes on the host's kernel tiers (`std` only): each node's kernel chosen
//! once, when [`crate::PreparedModel`] is built, bit-identical to the portable graph kernels
//! ([`crate::graph::kernels`], the reference).
//!
//! - Conv with one group (3×3, 1×1 pointwise, 5×3, any strides and pads) and Gemm (fully
//!   connected): im2col columns in the arena's scratch, then the tier's gemm kernel
//!   ([`crate::ops::gemm::gemm_kernel`]: AVX2 `vpmaddubsw`, VNNI `vpdpbusd`, NEON), then each
//!   channel's requantization. Padding holds the input zero point, so `bias + Σ w·x` over the
//!   padded patch is the portable `bias + z·Σw + Σ_valid w·(x − z)`, mod 2^32 as both sum.
//! - Depthwise Conv, Add, AveragePool and GlobalAveragePool on x86-64: the portable code
//!   itself, compiled a second time with AVX2 enabled (`#[target_feature]`), which LLVM
//!   vectorizes over 256-bit registers; the same source, so the same numbers.
//!
//! The portable tier takes none of them: it runs the graph exactly as `Model::infer` does.

use std::vec::Vec;

use crate::graph::conv_params::ConvParams;
use crate::graph::kernels::ChannelData;
use crate::graph::{Graph, NodeKernels, Operands, Prepared, prepare};
use crate::ops::gemm::{GemmKernel, MAX_COLUMNS, MAX_ROWS, gemm_kernel};
use crate::ops::tier::KernelTier;
use crate::quant::Requantizer;

/// The kernel one node runs with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum NodeKernel {
    /// The portable graph kernel (the graph runner's own choice).
    Portable,
    /// Group-1 Conv: im2col and the tier's gemm.
    ConvGemm,
    /// Gemm (fully connected): the tier's gemm with the input as the one column.
    Gemm,
    /// Depthwise Conv, Add, average pools: the portable code compiled for AVX2.
    #[cfg(target_arch = "x86_64")]
    Avx2,
}

/// Every node's kernel for one tier, and the scratch the largest one needs.
pub(crate) struct GraphKernels {
    gemm: GemmKernel,
    nodes: Vec<NodeKernel>,
    /// Bytes of scratch after the graph's planned tensors (im2col columns).
    pub scratch_len: usize,
}

impl GraphKernels {
    /// Chooses every node's kernel for `tier` (a tier this CPU supports).
    pub fn new(graph: &Graph<'_>, tier: KernelTier) -> GraphKernels {
        let data = graph.parts().4;
        let mut nodes = Vec::with_capacity(graph.node_count());
        let mut scratch_len = 0;
        for info in graph.nodes() {
            let prepared = prepare(
                data,
                &info.node,
                info.index,
                &info.inputs,
                &info.output,
                false,
            );
            let (kernel, scratch) = match prepared {
                Ok(prepared) => choose(&prepared, tier),
                Err(_) => (NodeKernel::Portable, 0),
            };
            nodes.push(kernel);
            scratch_len = scratch_len.max(scratch);
        }
        GraphKernels {
            gemm: gemm_kernel(tier),
            nodes,
            scratch_len,
        }
    }

    /// How many nodes run each kind of kernel (for reports and tests).
    #[cfg(test)]
    pub fn kernels(&self) -> &[NodeKernel] {
        &self.nodes
    }
}

/// The kernel `tier` runs `prepared` with, and the scratch it needs.
fn choose(prepared: &Prepared<'_>, tier: KernelTier) -> (NodeKernel, usize) {
    if tier == KernelTier::Portable {
        return (NodeKernel::Portable, 0);
    }
    #[cfg(target_arch = "x86_64")]
    let vector = if crate::ops::x86::detect::has_avx2() {
        NodeKernel::Avx2
    } else {
        NodeKernel::Portable
    };
    #[cfg(not(target_arch = "x86_64"))]
    let vector = NodeKernel::Portable;
    match prepared {
        Prepared::Conv(conv) if conv.groups == 1 => {
            (NodeKernel::ConvGemm, CONV_COLUMNS * conv.per_output())
        }
        Prepared::Conv(conv)
            if conv.one_input_per_group() && conv.out_shape.c == conv.in_shape.c =>
        {
            // The padded plane of one channel.
            let [pt, pl, pb, pr] = conv.pads();
            (
                vector,
                (conv.in_shape.h + pt + pb) * (conv.in_shape.w + pl + pr),
            )
        }
        Prepared::Conv(_) | Prepared::Add { .. } | Prepared::GlobalAverage { .. } => (vector, 0),
        Prepared::Pool {
            average: Some(_), ..
        } => (vector, 0),
        Prepared::Gemm { .. } => (NodeKernel::Gemm, 0),
        Prepared::Pool { average: None, .. } => (NodeKernel::Portable, 0),
        // A Conv with its residual Add fused: the portable kernel on the host.
        Prepared::ConvAdd(..) => (NodeKernel::Portable, 0),
    }
}

impl NodeKernels for GraphKernels {
    fn run(&self, index: usize, prepared: &Prepared<'_>, operands: Operands<'_>) -> bool {
        match (self.nodes.get(index), prepared, operands) {
            (Some(NodeKernel::ConvGemm), Prepared::Conv(conv), operands) => {
                im2col_conv(conv, self.gemm, operands)
            }
            (
                Some(NodeKernel::Gemm),
                Prepared::Gemm { weights, channels },
                Operands::Apart {
                    inputs: [a, _],
                    out,
                    ..
                },
            ) => {
                gemm_rows(self.gemm, a, 1, out, weights, channels);
                true
            }
            #[cfg(target_arch = "x86_64")]
            (Some(NodeKernel::Avx2), prepared, operands) => avx2::run(prepared, operands),
            _ => false,
        }
    }
}

/// Output positions a group-1 Conv's im2col holds at once: each gemm call takes them all (the
/// host kernels take any number of columns; [`MAX_COLUMNS`] bounds the `no_std` callers'
/// stack), and each channel's sums are requantized in vectors.
const CONV_COLUMNS: usize = 32;

/// One channel's sums into `out`: in AVX2 vectors where the CPU has them.
fn requantize(acc: &[i32], channels: &ChannelData<'_>, o: usize, out: &mut [i8]) {
    let (bias, requant) = channels.channel(o);
    let mut sums = [0_i32; CONV_COLUMNS];
    for (s, &a) in sums.iter_mut().zip(acc) {
        *s = bias.wrapping_add(a);
    }
    let sums = &sums[..acc.len().min(CONV_COLUMNS)];
    #[cfg(target_arch = "x86_64")]
    if crate::ops::x86::requantize_avx2(sums, &requant, channels.clamp, out) {
        return;
    }
    for (d, &sum) in out.iter_mut().zip(sums) {
        *d = channels.finish(&requant, sum);
    }
}

/// A group-1 Conv from the first input into the output (C×H×W) through im2col and `gemm`,
/// [`CONV_COLUMNS`] output positions at a time; `false` (nothing written) if the scratch
/// cannot hold their columns, or for an in-place Add's operands.
fn im2col_conv(conv: &ConvParams<'_>, gemm: GemmKernel, operands: Operands<'_>) -> bool {
    let Operands::Apart {
        inputs: [input, _],
        out,
        scratch,
    } = operands
    else {
        return false;
    };
    let (weights, channels) = (conv.weights, &conv.channels);
    let k = conv.per_output();
    let plane = conv.out_shape.plane();
    let Some(columns) = scratch.get_mut(..CONV_COLUMNS * k) else {
        return false;
    };
    if k == 0 || plane == 0 {
        return false;
    }
    let pointwise = conv.kernel() == [1, 1]
        && conv.stride() == [1, 1]
        && conv.pads()[..2] == [0, 0]
        && conv.in_shape.plane() == plane;
    let mut acc = [0_i32; MAX_ROWS * CONV_COLUMNS];
    for p0 in (0..plane).step_by(CONV_COLUMNS) {
        let n = (plane - p0).min(CONV_COLUMNS);
        if pointwise {
            // A 1×1 conv's column is one pixel's channels: a transpose of C×n bytes.
            for (c, map) in input.chunks_exact(plane).take(k).enumerate() {
                for (j, &x) in map[p0..p0 + n].iter().enumerate() {
                    columns[j * k + c] = x;
                }
            }
        } else {
            for (j, column) in columns.chunks_exact_mut(k).take(n).enumerate() {
                patch_column(conv, input, p0 + j, column);
            }
        }
        let columns = &columns[..n * k];
        for (block, rows) in weights.chunks(MAX_ROWS * k).enumerate() {
            let r0 = block * MAX_ROWS;
            let count = rows.len() / k;
            let acc = &mut acc[..count * n];
            gemm(rows, columns, k, acc);
            for (r, sums) in acc.chunks_exact(n).enumerate() {
                let at = (r0 + r) * plane + p0;
                if let Some(dst) = out.get_mut(at..at + n) {
                    requantize(sums, channels, r0 + r, dst);
                }
            }
        }
    }
    true
}

/// The patch of output position `p` in OIHW order (channel, kernel row, column), padding as
/// the input zero point.
fn patch_column(conv: &ConvParams<'_>, input: &[i8], p: usize, column: &mut [i8]) {
    let [kh, kw] = conv.kernel();
    let [sh, sw] = conv.stride();
    let [pt, pl, _, _] = conv.pads();
    let (h, w) = (conv.in_shape.h, conv.in_shape.w);
    let out_w = conv.out_shape.w.max(1);
    let (oy, ox) = (p / out_w, p % out_w);
    let z = conv.input_zero_point;
    // The first input column read, and whether the whole kernel row is inside.
    let x0 = (ox * sw).wrapping_sub(pl);
    let inside = ox * sw >= pl && x0 + kw <= w;
    for (c, rows) in column.chunks_exact_mut(kh * kw).enumerate() {
        let map = input.get(c * h * w..(c + 1) * h * w).unwrap_or_default();
        for (ky, dst) in rows.chunks_exact_mut(kw).enumerate() {
            let y = (oy * sh + ky).wrapping_sub(pt);
            let row = (y < h).then(|| map.get(y * w..(y + 1) * w)).flatten();
            match row {
                Some(row) if inside => dst.copy_from_slice(&row[x0..x0 + kw]),
                Some(row) => {
                    for (kx, d) in dst.iter_mut().enumerate() {
                        let x = x0.wrapping_add(kx);
                        *d = row.get(x).copied().unwrap_or(z);
                    }
                }
                None => dst.fill(z),
            }
        }
    }
}

/// `[out][in]` weights over `columns` (each `k` bytes, `n` of them, `k = input.len() / n`),
/// requantized per output channel: the Gemm node with `n` = 1.
fn gemm_rows(
    gemm: GemmKernel,
    input: &[i8],
    n: usize,
    out: &mut [i8],
    weights: &[i8],
    channels: &ChannelData<'_>,
) {
    let k = input.len() / n.max(1);
    if k == 0 {
        return;
    }
    let mut acc = [0_i32; MAX_ROWS * MAX_COLUMNS];
    for (block, rows) in weights.chunks(MAX_ROWS * k).enumerate() {
        let count = rows.len() / k;
        let acc = &mut acc[..count * n];
        gemm(rows, &input[..n * k], k, acc);
        for (r, &sum) in acc.iter().enumerate() {
            let (bias, requant): (i32, Requantizer) = channels.channel(block * MAX_ROWS + r);
            if let Some(d) = out.get_mut(block * MAX_ROWS + r) {
                *d = channels.finish(&requant, bias.wrapping_add(sum));
            }
        }
    }
}

/// A depthwise Conv (one output channel per input channel) as the portable conv computes it,
/// `bias + z·Σw + Σ w·(x − z)`, but over each channel's plane padded with the zero point in
/// `scratch` (whose taps add `w·0`), so that the loop over a row's outputs has no bounds logic
/// and vectorizes. `false` (nothing written) if `scratch` is short.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
#[inline(always)]
fn depthwise(conv: &ConvParams<'_>, input: &[i8], out: &mut [i8], scratch: &mut [i8]) -> bool {
    const BLOCK: usize = 64;
    let (in_shape, out_shape) = (conv.in_shape, conv.out_shape);
    let (zero_point, weights, channels) = (conv.input_zero_point, conv.weights, &conv.channels);
    let ([kh, kw], [sh, sw], [pt, pl, pb, pr]) = (conv.kernel(), conv.stride(), conv.pads());
    let (h, w) = (in_shape.h, in_shape.w);
    let (ph, pw) = (h + pt + pb, w + pl + pr);
    let Some(padded) = scratch.get_mut(..ph * pw) else {
        return false;
    };
    let (plane, out_plane) = (h * w, out_shape.plane());
    let taps = kh * kw;
    if plane == 0 || out_plane == 0 || taps == 0 || sw == 0 {
        return false;
    }
    let z = i32::from(zero_point);
    let mut acc = [0_i32; BLOCK];
    const PLANE_SUMS: usize = 4096;
    let mut plane_sums = [0_i32; PLANE_SUMS];
    let planes = input
        .chunks_exact(plane)
        .zip(out.chunks_exact_mut(out_plane));
    for (c, ((map, out), w_c)) in planes.zip(weights.chunks_exact(taps)).enumerate() {
        padded.fill(zero_point);
        for (y, row) in map.chunks_exact(w).enumerate() {
            let at = (y + pt) * pw + pl;
            padded[at..at + w].copy_from_slice(row);
        }
        let (bias, requant) = channels.channel(c);
        let start = bias.wrapping_add(crate::ops::dot::dot_constant(w_c, zero_point));
        // Stride 1: every output row computed at the padded width, so that each tap is one
        // loop over the whole plane (the columns past the output's width are dropped).
        let wide = out_shape.h * pw;
        if sh == 1 && sw == 1 && wide <= PLANE_SUMS {
            let sums = &mut plane_sums[..wide];
            sums.fill(start);
            for (t, &wt) in w_c.iter().enumerate() {
                let (wt, from) = (i32::from(wt), (t / kw) * pw + t % kw);
                for (a, &x) in sums.iter_mut().zip(&padded[from..]) {
                    *a = a.wrapping_add(wt * (i32::from(x) - z));
                }
            }
            let rows = sums.chunks_exact(pw).zip(out.chunks_exact_mut(out_shape.w));
            for (row, out_row) in rows {
                let row = &row[..out_shape.w];
                #[cfg(target_arch = "x86_64")]
                if crate::ops::x86::requantize_avx2(row, &requant, channels.clamp, out_row) {
                    continue;
                }
                for (o, &a) in out_row.iter_mut().zip(row) {
                    *o = channels.finish(&requant, a);
                }
            }
            continue;
        }
        for (oy, out_row) in out.chunks_exact_mut(out_shape.w).enumerate() {
            for (block, out_block) in out_row.chunks_mut(BLOCK).enumerate() {
                let acc = &mut acc[..out_block.len()];
                acc.fill(start);
                let ox0 = block * BLOCK;
                for (ky, w_row) in w_c.chunks_exact(kw).enumerate() {
                    let row = &padded[(oy * sh + ky) * pw..][..pw];
                    for (kx, &wt) in w_row.iter().enumerate() {
                        let wt = i32::from(wt);
                        let first = ox0 * sw + kx;
                        if sw == 1 {
                            for (a, &x) in acc.iter_mut().zip(&row[first..]) {
                                *a = a.wrapping_add(wt * (i32::from(x) - z));
                            }
                        } else {
                            for (a, &x) in acc.iter_mut().zip(row[first..].iter().step_by(sw)) {
                                *a = a.wrapping_add(wt * (i32::from(x) - z));
                            }
                        }
                    }
                }
                for (o, &a) in out_block.iter_mut().zip(acc.iter()) {
                    *o = channels.finish(&requant, a);
                }
            }
        }
    }
    true
}

/// The portable graph kernels compiled with AVX2: `#[inline(always)]` bodies in
/// [`crate::graph::kernels`] instantiated inside `#[target_feature]` functions.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    #![allow(unsafe_code)]

    use super::depthwise;
    use crate::graph::kernels::{self, PoolOp};
    use crate::graph::{Operands, Prepared};

    /// The depthwise Conv, Add (apart or in place) or average pool `prepared` is; `false`
    /// (nothing written) for other nodes or without AVX2.
    pub fn run(prepared: &Prepared<'_>, operands: Operands<'_>) -> bool {
        // SAFETY: the CPU has AVX2.
        crate::ops::x86::detect::has_avx2() && unsafe { run_avx2(prepared, operands) }
    }

    /// [`run`] with AVX2.
    ///
    /// # Safety
    /// The CPU has AVX2.
    #[target_feature(enable = "avx2")]
    unsafe fn run_avx2(prepared: &Prepared<'_>, operands: Operands<'_>) -> bool {
        let (a, b, out, scratch) = match (prepared, operands) {
            (
                Prepared::Add(op),
                Operands::AddOver {
                    inout,
                    other,
                    first,
                },
            ) => {
                kernels::add_in_place_body(inout, other, first, op);
                return true;
            }
            (_, Operands::AddOver { .. }) => return false,
            (
                _,
                Operands::Apart {
                    inputs: [a, b],
                    out,
                    scratch,
                },
            ) => (a, b, out, scratch),
        };
        match prepared {
            Prepared::Conv(conv)
                if conv.one_input_per_group() && conv.out_shape.c == conv.in_shape.c =>
            {
                return depthwise(conv, a, out, scratch);
            }
            Prepared::Conv(conv) => kernels::conv_body(conv, a, out, None),
            Prepared::Add(op) => kernels::add_body(a, b, out, op),
            &Prepared::Pool {
                in_shape,
                out_shape,
                window,
                average: average @ Some(_),
            } => {
                let pool = PoolOp::new(in_shape, out_shape, window, average);
                kernels::pool(a, out, &pool, kernels::sum_values);
            }
            Prepared::GlobalAverage { in_shape } => kernels::global_average(a, *in_shape, out),
            _ => return false,
        }
        true
    }
}

#[cfg(test)]
mod tests;
