//! MaxPool2d without padding, floor mode (PyTorch's defaults), standalone or fused into
//! Conv2d through [`PoolWindow`].

use super::chunks::{rows, rows_mut};
use crate::shape::MapShape;

/// A square pooling window and its stride.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolWindow {
    pub kernel: usize,
    pub stride: usize,
}

impl PoolWindow {
    /// The 1×1 window: a Conv2d without fused pooling.
    pub const IDENTITY: Self = Self {
        kernel: 1,
        stride: 1,
    };

    /// Output length along one axis of `len` inputs, `None` if the window does not fit.
    pub fn output_len(&self, len: usize) -> Option<usize> {
        crate::shape::window_len(len, self.kernel, self.stride.max(1), 0, 0)
    }

    /// Input positions `(y, x)` covered by output `(py, px)`, row by row.
    #[inline]
    pub fn positions(&self, py: usize, px: usize) -> impl Iterator<Item = (usize, usize)> + use<> {
        let Self { kernel, stride } = *self;
        (0..kernel)
            .flat_map(move |dy| (0..kernel).map(move |dx| (py * stride + dy, px * stride + dx)))
    }
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct MaxPool2dOp {
    pub input: MapShape,
    pub output: MapShape,
    pub window: PoolWindow,
}

impl MaxPool2dOp {
    pub fn run(&self, input: &[i8], output: &mut [i8]) {
        let width = self.input.w;
        let planes = rows(input, self.input.plane()).zip(rows_mut(output, self.output.plane()));
        for (in_plane, out_plane) in planes {
            for (py, out_row) in rows_mut(out_plane, self.output.w).enumerate() {
                for (px, out) in out_row.iter_mut().enumerate() {
                    *out = self
                        .window
                        .positions(py, px)
                        .filter_map(|(y, x)| in_plane.get(y * width + x).copied())
                        .max()
                        .unwrap_or(i8::MIN);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference;
    use crate::test_util::SplitMix;

    fn op(c: usize, h: usize, w: usize, kernel: usize, stride: usize) -> MaxPool2dOp {
        let window = PoolWindow { kernel, stride };
        let output = MapShape {
            c,
            h: window.output_len(h).unwrap(),
            w: window.output_len(w).unwrap(),
        };
        MaxPool2dOp {
            input: MapShape { c, h, w },
            output,
            window,
        }
    }

    #[test]
    fn hand_worked_2x2() {
        // One channel 3×4 → 1×2 (the last row is dropped by floor mode).
        #[rustfmt::skip]
        let input = [
            1, -5, 7, 2,
            3, 4, -128, 0,
            100, 100, 100, 100,
        ];
        let op = op(1, 3, 4, 2, 2);
        let mut out = [0; 2];
        op.run(&input, &mut out);
        assert_eq!(out, [4, 7]);
    }

    #[test]
    fn unit_window_copies_and_large_stride_skips() {
        let input = [1, 2, 3, 4, -1, -2, -3, -4];
        let op = op(2, 1, 4, 1, 1);
        let mut out = [0; 8];
        op.run(&input, &mut out);
        assert_eq!(out, input);
        let op = MaxPool2dOp {
            window: PoolWindow {
                kernel: 1,
                stride: 3,
            },
            ..op
        };
        let op = MaxPool2dOp {
            output: MapShape { c: 2, h: 1, w: 2 },
            ..op
        };
        let mut out = [0; 4];
        op.run(&input, &mut out);
        assert_eq!(out, [1, 4, -1, -4]);
    }

    #[test]
    fn randomized_against_reference() {
        let mut rng = SplitMix(7);
        for _ in 0..300 {
            let (kernel, stride) = (rng.below(3) + 1, rng.below(3) + 1);
            let (c, h, w) = (
                rng.below(4) + 1,
                rng.below(9) + kernel,
                rng.below(9) + kernel,
            );
            let op = op(c, h, w, kernel, stride);
            let input = rng.i8s(c * h * w);
            let mut out = vec![0; op.output.c * op.output.plane()];
            op.run(&input, &mut out);
            let (shape, expected) = reference::maxpool2d(op.input, &input, kernel, stride);
            assert_eq!((op.output, out), (shape, expected));
        }
    }
}
