//! MaxPool2d without padding, floor mode (PyTorch's defaults), standalone or fused into
//! Conv2d through [`PoolWindow`].

use super::chunks::{rows, rows_mut};
#[cfg(test)]
use super::op_error::OpError;
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
    pub fn positions(&self, py: usize, px: usize) -> Positions {
        Positions {
            top: py * self.stride,
            left: px * self.stride,
            kernel: self.kernel,
            dy: 0,
            dx: 0,
        }
    }
}

/// The positions of one pool window, row by row: see [`PoolWindow::positions`]. Five words,
/// where a `flat_map` of ranges took 28 and was moved with a `memcpy` call on a Cortex-M
/// (flash).
#[derive(Clone, Debug)]
pub struct Positions {
    top: usize,
    left: usize,
    kernel: usize,
    dy: usize,
    dx: usize,
}

impl Iterator for Positions {
    type Item = (usize, usize);

    #[inline]
    fn next(&mut self) -> Option<(usize, usize)> {
        if self.dy >= self.kernel {
            return None;
        }
        let position = (self.top + self.dy, self.left + self.dx);
        self.dx += 1;
        if self.dx >= self.kernel {
            (self.dx, self.dy) = (0, self.dy + 1);
        }
        Some(position)
    }
}

/// A checked standalone MaxPool2d: only [`Self::new`] builds one (and [`Self::band`] from
/// one), so its output shape is always the window's over its input.
#[derive(Clone, Copy, Debug)]
pub(crate) struct MaxPool2dOp {
    pub(crate) input: MapShape,
    pub(crate) output: MapShape,
    pub(crate) window: PoolWindow,
}

impl MaxPool2dOp {
    /// `window` over `input`, if the window is 1..=255 a side and stride and fits. Crate-private
    /// like the op, so only core's tests build one this way (the loader checks with its own
    /// errors, then builds the literal).
    #[cfg(test)]
    pub fn new(input: MapShape, window: PoolWindow) -> Result<Self, OpError> {
        if !(1..=255).contains(&window.kernel) || !(1..=255).contains(&window.stride) {
            return Err(OpError::BadWindow);
        }
        let len = |n| window.output_len(n).filter(|&n| n > 0);
        let output = match (len(input.h), len(input.w)) {
            (Some(h), Some(w)) if input.c > 0 => MapShape { c: input.c, h, w },
            _ => return Err(OpError::EmptyOutput),
        };
        input.checked_len().ok_or(OpError::TooLarge)?;
        Ok(Self {
            input,
            output,
            window,
        })
    }

    /// The pool on a band of `rows` input rows giving one output row, as the streamed
    /// schedule runs it (`rows` its window's kernel).
    pub(crate) fn band(&self, rows: usize) -> Self {
        Self {
            input: MapShape {
                h: rows,
                ..self.input
            },
            output: MapShape {
                h: 1,
                ..self.output
            },
            window: self.window,
        }
    }

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
        MaxPool2dOp::new(MapShape { c, h, w }, PoolWindow { kernel, stride }).unwrap()
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
        let op = MaxPool2dOp::new(
            op.input,
            PoolWindow {
                kernel: 1,
                stride: 3,
            },
        )
        .unwrap();
        assert_eq!(op.output, MapShape { c: 2, h: 1, w: 2 });
        let mut out = [0; 4];
        op.run(&input, &mut out);
        assert_eq!(out, [1, 4, -1, -4]);
    }

    #[test]
    fn new_refuses_what_the_kernel_cannot_run() {
        let input = MapShape { c: 2, h: 3, w: 3 };
        let window = |kernel, stride| PoolWindow { kernel, stride };
        assert_eq!(
            MaxPool2dOp::new(input, window(0, 1)).unwrap_err(),
            OpError::BadWindow
        );
        assert_eq!(
            MaxPool2dOp::new(input, window(2, 0)).unwrap_err(),
            OpError::BadWindow
        );
        assert_eq!(
            MaxPool2dOp::new(input, window(4, 1)).unwrap_err(),
            OpError::EmptyOutput
        );
        let empty = MapShape { c: 0, ..input };
        assert_eq!(
            MaxPool2dOp::new(empty, window(2, 2)).unwrap_err(),
            OpError::EmptyOutput
        );
        let huge = MapShape {
            c: usize::MAX,
            ..input
        };
        assert_eq!(
            MaxPool2dOp::new(huge, window(2, 2)).unwrap_err(),
            OpError::TooLarge
        );
    }

    #[test]
    fn randomized_against_reference() {
        let mut rng = SplitMix::new(7);
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
