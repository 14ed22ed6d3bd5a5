//! Random graph-kernel cases shared by the fast kernels' tests (`graph/fast/tests.rs`) and the
//! host tiers' (`prepared_graph/tests.rs`): per-channel requantizers held in `Vec`s; the
//! windows, clamps and output shapes are the testing kit's (`test_util::cases`), which the
//! firmware's `dsp_check` draws from too.

use crate::graph::format::Window;
use crate::graph::kernels::ChannelData;
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

/// The testing kit's window with strides 1–3 (`SplitMix::window`).
pub(crate) fn random_window(rng: &mut SplitMix, max_side: usize) -> Window {
    rng.window(max_side, 3)
}

pub(crate) use crate::test_util::cases::out_shape;

pub(crate) fn clamp(rng: &mut SplitMix) -> [i8; 2] {
    rng.clamp()
}
