//! Random graph-kernel cases shared by the fast kernels' tests (`graph/fast/tests.rs`) and the
//! host tiers' (`prepared_graph/tests.rs`): per-channel requantizers held in `Vec`s; the
//! windows, clamps and output shapes are the testing kit's (`test_util::cases`), which the
//! firmware's `dsp_check` draws from too.

use crate::graph::conv_params::ConvParams;
use crate::graph::format::Window;
use crate::graph::kernels::{self, ChannelData};
use crate::shape::MapShape;
use crate::test_util::SplitMix;

/// A random Conv: its input map, weights and per-channel data, drawn for the given shapes,
/// window and groups; [`Self::params`] is the node its kernels take.
pub(crate) struct ConvCase {
    pub(crate) shapes: (MapShape, MapShape),
    pub(crate) window: Window,
    pub(crate) groups: usize,
    pub(crate) x: Vec<i8>,
    pub(crate) weights: Vec<i8>,
    pub(crate) channels: Channels,
    pub(crate) zero_point: i8,
    /// The output's zero point and the fused clamp.
    pub(crate) output: (i8, [i8; 2]),
}

impl ConvCase {
    pub(crate) fn random(
        rng: &mut SplitMix,
        (in_shape, out_shape): (MapShape, MapShape),
        window: Window,
        groups: usize,
    ) -> Self {
        let taps = usize::from(window.kernel[0]) * usize::from(window.kernel[1]);
        let x = rng.i8s(in_shape.c * in_shape.plane());
        let weights = rng.weights(out_shape.c * (in_shape.c / groups.max(1)) * taps);
        let channels = Channels::random(rng, out_shape.c);
        let zero_point = rng.next() as i8;
        let output = (rng.next() as i8, clamp(rng));
        Self {
            shapes: (in_shape, out_shape),
            window,
            groups,
            x,
            weights,
            channels,
            zero_point,
            output,
        }
    }

    pub(crate) fn params(&self) -> ConvParams<'_> {
        ConvParams {
            in_shape: self.shapes.0,
            out_shape: self.shapes.1,
            window: self.window,
            groups: u16::try_from(self.groups).unwrap(),
            input_zero_point: self.zero_point,
            weights: &self.weights,
            channels: self.channels.data(self.output.0, self.output.1),
        }
    }

    /// The portable kernel's output: what every fast kernel must match.
    pub(crate) fn portable(&self) -> Vec<i8> {
        let mut out = vec![0; self.shapes.1.c * self.shapes.1.plane()];
        kernels::conv(&self.params(), &self.x, &mut out);
        out
    }
}

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
