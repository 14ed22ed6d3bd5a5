//! One output row of a 3×3, stride-1, unpooled conv on its band (three rows of every input
//! channel, padding written out), every output channel, written pixel-major: the streamed
//! producer on the Cortex-M4 (`crate::stream`), which writes its rows straight into the
//! consumer's int8 ring and has neither scratch nor more than a few words of stack.
//!
//! Two outputs at a time: a word of four inputs `(a0, a1, a2, a3)` of a kernel row becomes
//! `(a0, a2)` and `(a1, a3)` with SXTB16. With the row's weights packed as `P = (w0, w2)` and
//! `Q = (w1, 0)`, output `x` takes `(a0, a2)·P + (a1, a3)·Q` and output `x + 1` takes
//! `(a1, a3)·P` plus SMLADX's crossed `(a0, a2)·(0, w1)`: seven instructions per kernel row
//! for six multiply-accumulates.

use super::conv2d::requantize_channel;
use super::patch_mac::{smlad, sxtb16_pairs};
use crate::ops::conv2d::Conv2dOp;
use crate::ops::requant::PreparedRequantizer;

/// The output row of `op` (a band conv: 3 rows of `w + 2` values per input channel in
/// `band`) into `dst`, output `(o, x)` at `dst[x · channels + o]`; `false` (nothing
/// written) for another layer or short buffers. Exactly the portable sums, each requantized
/// once.
pub(crate) fn conv3x3_row(op: &Conv2dOp<'_>, band: &[i8], dst: &mut [i8], channels: usize) -> bool {
    let (c, width, w_out) = (op.input.c, op.input.w, op.output.w);
    let per_output = 9 * c;
    let fits = op.kernel == 3
        && op.input.h == 3
        && width == w_out + 2
        && c > 0
        && channels >= op.output.c
        && band.len() >= 3 * width * c
        && dst.len() >= w_out * channels
        && op.weights.len() >= per_output * op.output.c;
    if !fits {
        return false;
    }
    // `max(1)`, here and below: the lengths are not 0, which the optimizer cannot see.
    let outputs = op
        .weights
        .chunks_exact(per_output.max(1))
        .zip(op.channels.iter());
    for (o, (weights, (bias, requant))) in outputs.enumerate() {
        let prepared = PreparedRequantizer::new(&requant).map(|p| p.to_words());
        let planes = || {
            weights
                .chunks_exact(9)
                .zip(band.chunks_exact((3 * width).max(1)))
        };
        // One input channel (the first conv of most image models): its weights packed once.
        let single = match weights.first_chunk::<9>() {
            Some(w) if c == 1 => Some(pack(w)),
            _ => None,
        };
        let mut x = 0;
        while x < w_out {
            // A pass: up to PASS sums, then requantized together.
            let n = (w_out - x).min(PASS);
            let mut sums = [bias; PASS];
            let mut i = 0;
            while i + 1 < n {
                let (mut a, mut b) = (bias, bias);
                match &single {
                    Some(packed) => (a, b) = add_pair(band, width, packed, x + i, a, b),
                    None => {
                        for (w, rows) in planes() {
                            if let Some(w) = w.first_chunk::<9>() {
                                (a, b) = add_pair(rows, width, &pack(w), x + i, a, b);
                            }
                        }
                    }
                }
                if let Some([sa, sb]) = sums.get_mut(i..i + 2).and_then(|s| s.first_chunk_mut()) {
                    (*sa, *sb) = (a, b);
                }
                i += 2;
            }
            if i < n {
                let mut a = bias;
                for (w, rows) in planes() {
                    for (r, w) in w.chunks_exact(3).enumerate() {
                        let inputs = rows.get(r * width + x + i..).unwrap_or(&[]);
                        for (&w, &v) in w.iter().zip(inputs) {
                            a = a.wrapping_add(i32::from(w) * i32::from(v));
                        }
                    }
                }
                if let Some(s) = sums.get_mut(i) {
                    *s = a;
                }
            }
            let out = dst.get_mut(x * channels + o..).unwrap_or(&mut []);
            match &prepared {
                Some(words) => requantize_channel(&sums, words, n, out, channels),
                None => {
                    for (k, &sum) in sums.iter().take(n).enumerate() {
                        if let Some(d) = out.get_mut(k * channels) {
                            *d = requant.apply(sum);
                        }
                    }
                }
            }
            x += n;
        }
    }
    true
}

/// Outputs of one channel a pass sums before requantizing them together with
/// [`requantize_channel`]'s assembly (the sums sit on the stack: 32 bytes).
const PASS: usize = 8;

/// A 3×3 kernel's weights as `[P0, Q0, P1, Q1, P2, Q2]`, per kernel row `P = (w0, w2)` and
/// `Q = (w1, 0)` as int16 halves.
#[inline(always)]
fn pack(w: &[i8; 9]) -> [u32; 6] {
    let half = |v: i8| u32::from(v as i16 as u16);
    [
        half(w[0]) | half(w[2]) << 16,
        half(w[1]),
        half(w[3]) | half(w[5]) << 16,
        half(w[4]),
        half(w[6]) | half(w[8]) << 16,
        half(w[7]),
    ]
}

/// `(a, b)` plus outputs `x` and `x + 1` of one input channel (`rows`: three rows of `width`
/// values; `x + 3 < width`).
#[inline(always)]
fn add_pair(rows: &[i8], width: usize, w: &[u32; 6], x: usize, a: i32, b: i32) -> (i32, i32) {
    let (mut a, mut b) = (a, b);
    for (r, pq) in w.chunks_exact(2).enumerate() {
        let word = rows
            .get(r * width + x..)
            .and_then(|s| s.first_chunk::<4>())
            .map_or(0, |s| u32::from_le_bytes(s.map(|v| v as u8)));
        let (even, odd) = sxtb16_pairs(word);
        let (p, q) = (pq[0], pq[1]);
        a = smlad(even, p, a);
        a = smlad(odd, q, a);
        b = smlad(odd, p, b);
        b = smladx(even, q, b);
    }
    (a, b)
}

super::patch_mac::dual_mac!(
    /// `acc + low(a)·high(b) + high(a)·low(b)` on int16 halves, wrapping (SMLADX).
    smladx,
    "smladx"
);
