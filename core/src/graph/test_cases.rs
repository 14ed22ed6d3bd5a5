//! Random graph-kernel cases shared by the fast kernels' tests (`graph/fast/tests.rs`) and the
//! host tiers' (`prepared_graph/tests.rs`): per-channel requantizers, windows, clamps.

use crate::graph::format::Window;
use crate::graph::kernels::{ChannelData, window_len};
use crate::shape::MapShape;
use crate::test_util::SplitMix;

pub(crate) struct Channels {
    pub(crate) bias: Vec<[u8; 4]>,
    pub(crate) multiplier: Vec<[u8; 4]>,
    pub(crate) shift: Vec<i8>,
}

impl Channels {
    pub(crate) fn random(rng: &mut SplitMix, n: usize) -> Self {
        Self {
            bias: (0..n)
                .map(|_| ((rng.next() as i32) >> rng.below(20)).to_le_bytes())
                .collect(),
            multiplier: (0..n)
                .map(|_| ((1 << 30) + rng.below(1 << 30) as i32).to_le_bytes())
                .collect(),
            shift: (0..n).map(|_| -(rng.below(12) as i8) - 4).collect(),
        }
    }

    pub(crate) fn data(&self, zero_point: i8, clamp: [i8; 2]) -> ChannelData<'_> {
        ChannelData {
            bias: &self.bias,
            multiplier: &self.multiplier,
            shift: &self.shift,
            zero_point,
            clamp,
        }
    }
}

pub(crate) fn random_window(rng: &mut SplitMix, max_side: usize) -> Window {
    let kh = 1 + rng.below(max_side) as u8;
    let kw = 1 + rng.below(max_side) as u8;
    let pad = |rng: &mut SplitMix, k: u8| rng.below(usize::from(k)) as u8;
    Window {
        kernel: [kh, kw],
        stride: [1 + rng.below(3) as u8, 1 + rng.below(3) as u8],
        pads: [pad(rng, kh), pad(rng, kw), pad(rng, kh), pad(rng, kw)],
    }
}

pub(crate) fn out_shape(input: MapShape, c: usize, w: &Window) -> Option<MapShape> {
    let [pt, pl, pb, pr] = w.pads;
    let h = window_len(input.h, w.kernel[0], w.stride[0], pt, pb)?;
    let width = window_len(input.w, w.kernel[1], w.stride[1], pl, pr)?;
    (h > 0 && width > 0).then_some(MapShape { c, h, w: width })
}

pub(crate) fn clamp(rng: &mut SplitMix) -> [i8; 2] {
    let lo = rng.next() as i8;
    [lo, lo.saturating_add(rng.below(200) as i8)]
}
