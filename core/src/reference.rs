//! Plain, obviously-correct implementations in i64 that the engine is compared with: explicit
//! padding, full unpooled maps, direct indexing, no fusion. Tests only.

use crate::quant::Requantizer;
use crate::shape::{MapShape, window_len};
use crate::test_util::SplitMix;

/// Owned per-channel parameters of a Conv2d or Linear layer.
#[derive(Clone, Debug)]
pub struct ChannelData {
    pub bias: Vec<i32>,
    pub multiplier: Vec<i32>,
    pub shift: Vec<i8>,
    pub zero_point: i8,
    pub relu: bool,
    bias_le: Vec<[u8; 4]>,
    multiplier_le: Vec<[u8; 4]>,
}

impl ChannelData {
    pub fn new(
        bias: Vec<i32>,
        multiplier: Vec<i32>,
        shift: Vec<i8>,
        zero_point: i8,
        relu: bool,
    ) -> Self {
        let le = |v: &[i32]| v.iter().map(|x| x.to_le_bytes()).collect();
        Self {
            bias_le: le(&bias),
            multiplier_le: le(&multiplier),
            bias,
            multiplier,
            shift,
            zero_point,
            relu,
        }
    }

    /// Realistic scales (multiplier in [2^30, 2^31), small right shifts) so outputs
    /// spread over the int8 range instead of saturating, with some extremes mixed in.
    pub fn random(rng: &mut SplitMix, n: usize) -> Self {
        Self::new(
            (0..n)
                .map(|_| (rng.i32() >> 12) + rng.below(3) as i32 - 1)
                .collect(),
            (0..n)
                .map(|_| (1 << 30) + rng.below(1 << 30) as i32)
                .collect(),
            (0..n).map(|_| -(rng.below(12) as i8)).collect(),
            rng.next() as i8,
            rng.below(2) == 0,
        )
    }

    pub fn len(&self) -> usize {
        self.bias.len()
    }

    pub fn channels(&self) -> crate::ops::Channels<'_> {
        crate::ops::Channels::new(
            &self.bias_le,
            &self.multiplier_le,
            &self.shift,
            self.zero_point,
            self.relu,
        )
        .expect("ChannelData::new gives every channel a bias, multiplier and shift")
    }

    /// Bias add (wrapping to i32, like the engine's accumulator) and requantization.
    fn output(&self, channel: usize, sum: i64) -> i8 {
        let acc = (i64::from(self.bias[channel]) + sum) as i32;
        Requantizer::new(
            self.multiplier[channel],
            self.shift[channel],
            self.zero_point,
            self.relu,
        )
        .apply(acc)
    }
}

/// Conv2d hyperparameters; `pool` is `(kernel, stride)`, `(1, 1)` for none.
#[derive(Clone, Copy, Debug)]
pub struct Conv {
    pub kernel: usize,
    pub stride: usize,
    pub padding: usize,
    pub pool: (usize, usize),
    pub input_zero_point: i8,
}

impl Conv {
    /// The engine's form of the same window.
    pub fn window(&self) -> crate::ops::conv2d_op::ConvWindow {
        crate::ops::conv2d_op::ConvWindow {
            kernel: self.kernel,
            stride: self.stride,
            padding: self.padding,
            pool: crate::ops::maxpool2d::PoolWindow {
                kernel: self.pool.0,
                stride: self.pool.1,
            },
        }
    }

    /// Output positions along an axis of `n`; 0 where the kernel does not fit.
    pub fn conv_len(&self, n: usize) -> usize {
        window_len(n, self.kernel, self.stride, self.padding, self.padding).unwrap_or(0)
    }

    /// The output shape for `out_channels` channels, `None` if kernel or pool do not fit.
    pub fn output(&self, input: MapShape, out_channels: usize) -> Option<MapShape> {
        let len = |n| window_len(n, self.kernel, self.stride, self.padding, self.padding);
        let full = MapShape {
            c: out_channels,
            h: len(input.h)?,
            w: len(input.w)?,
        };
        pooled(full, self.pool.0, self.pool.1)
    }
}

/// The shape after a max pool, `None` if the window does not fit.
pub fn pooled(input: MapShape, kernel: usize, stride: usize) -> Option<MapShape> {
    let len = |n| window_len(n, kernel, stride, 0, 0);
    Some(MapShape {
        c: input.c,
        h: len(input.h)?,
        w: len(input.w)?,
    })
}

pub fn conv2d(
    input: MapShape,
    x: &[i8],
    conv: &Conv,
    weights: &[i8],
    data: &ChannelData,
) -> (MapShape, Vec<i8>) {
    let MapShape { c, h, w } = input;
    let Conv {
        kernel: k,
        stride: s,
        padding: p,
        ..
    } = *conv;
    let (ph, pw) = (h + 2 * p, w + 2 * p);
    let mut padded = vec![i64::from(conv.input_zero_point); c * ph * pw];
    for ci in 0..c {
        for y in 0..h {
            for xx in 0..w {
                padded[(ci * ph + y + p) * pw + xx + p] = i64::from(x[(ci * h + y) * w + xx]);
            }
        }
    }
    let full = MapShape {
        c: data.len(),
        h: conv.conv_len(h),
        w: conv.conv_len(w),
    };
    let mut map = Vec::new();
    for o in 0..full.c {
        for y in 0..full.h {
            for xx in 0..full.w {
                let mut sum = 0_i64;
                for ci in 0..c {
                    for ky in 0..k {
                        for kx in 0..k {
                            let wv = i64::from(weights[((o * c + ci) * k + ky) * k + kx]);
                            sum += wv * padded[(ci * ph + y * s + ky) * pw + xx * s + kx];
                        }
                    }
                }
                map.push(data.output(o, sum));
            }
        }
    }
    maxpool2d(full, &map, conv.pool.0, conv.pool.1)
}

pub fn maxpool2d(input: MapShape, x: &[i8], kernel: usize, stride: usize) -> (MapShape, Vec<i8>) {
    let out = pooled(input, kernel, stride).unwrap();
    let mut y = Vec::new();
    for c in 0..out.c {
        for py in 0..out.h {
            for px in 0..out.w {
                let mut best = i64::MIN;
                for dy in 0..kernel {
                    for dx in 0..kernel {
                        let v = x[(c * input.h + py * stride + dy) * input.w + px * stride + dx];
                        best = best.max(i64::from(v));
                    }
                }
                y.push(best as i8);
            }
        }
    }
    (out, y)
}

pub fn linear(x: &[i8], weights: &[i8], data: &ChannelData) -> Vec<i8> {
    let n = x.len();
    (0..data.len())
        .map(|o| {
            let sum: i64 = (0..n)
                .map(|i| i64::from(weights[o * n + i]) * i64::from(x[i]))
                .sum();
            data.output(o, sum)
        })
        .collect()
}
