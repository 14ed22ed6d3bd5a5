//! Ping-pong planning of the activation arena.
//!
//! Activations are int8 C,H,W. A layer reads its input from one end of the arena and writes
//! its output at the other end, and the next layer goes the other way, so a layer's input
//! and output never overlap. The gap between them is the layer's scratch (`ops::scratch`), so
//! the arena needs `max(input + scratch + output bytes)` over the layers. The u8 image is
//! copied in at the front first (as `pixel − 128`), so the first layer is planned like any
//! other. Flatten moves nothing, so it needs nothing.

/// Which end of the arena a tensor occupies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum End {
    /// `arena[..len]`
    Front,
    /// `arena[arena.len() - len..]`
    Back,
}

impl End {
    pub fn other(self) -> Self {
        match self {
            Self::Front => Self::Back,
            Self::Back => Self::Front,
        }
    }
}

/// Bytes an arena needs so that a layer reading `input` bytes, writing `output` bytes and
/// working in `scratch` bytes can run; `None` on overflow.
pub(crate) fn layer_need(input: usize, scratch: usize, output: usize) -> Option<usize> {
    input.checked_add(scratch)?.checked_add(output)
}

/// The tensor of `len` bytes at `end`.
pub(crate) fn tensor(arena: &[i8], end: End, len: usize) -> Option<&[i8]> {
    match end {
        End::Front => arena.get(..len),
        End::Back => arena.get(arena.len().checked_sub(len)?..),
    }
}

/// One layer's view of the arena.
pub(crate) struct LayerSplit<'a> {
    pub input: &'a [i8],
    /// Everything between the input and the output.
    pub scratch: &'a mut [i8],
    pub output: &'a mut [i8],
}

/// Splits the arena for one layer: its input of `input_len` bytes at `input_end`, its output
/// of `output_len` bytes at the other end, and the gap between them as scratch. `None` if
/// they would overlap.
pub(crate) fn split(
    arena: &mut [i8],
    input_end: End,
    input_len: usize,
    output_len: usize,
) -> Option<LayerSplit<'_>> {
    match input_end {
        End::Front => {
            let (input, rest) = arena.split_at_mut_checked(input_len)?;
            let (scratch, output) =
                rest.split_at_mut_checked(rest.len().checked_sub(output_len)?)?;
            Some(LayerSplit {
                input,
                scratch,
                output,
            })
        }
        End::Back => {
            let (output, rest) = arena.split_at_mut_checked(output_len)?;
            let (scratch, input) = rest.split_at_mut_checked(rest.len().checked_sub(input_len)?)?;
            Some(LayerSplit {
                input,
                scratch,
                output,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_alternates_ends() {
        let mut arena = [0_i8; 10];
        let s = split(&mut arena, End::Front, 4, 5).unwrap();
        assert_eq!((s.input.len(), s.scratch.len(), s.output.len()), (4, 1, 5));
        s.output.fill(1);
        s.scratch.fill(9);
        assert_eq!(arena, [0, 0, 0, 0, 9, 1, 1, 1, 1, 1]);
        let s = split(&mut arena, End::Back, 5, 3).unwrap();
        assert_eq!(s.input, [1; 5]);
        assert_eq!(s.scratch, [0, 9]);
        s.output.fill(2);
        assert_eq!(arena, [2, 2, 2, 0, 9, 1, 1, 1, 1, 1]);
        assert_eq!(tensor(&arena, End::Front, 3), Some(&[2, 2, 2][..]));
        assert_eq!(tensor(&arena, End::Back, 2), Some(&[1, 1][..]));
    }

    #[test]
    fn overlapping_or_oversized_splits_are_refused() {
        let mut arena = [0_i8; 10];
        assert!(split(&mut arena, End::Front, 5, 6).is_none());
        assert!(split(&mut arena, End::Back, 6, 5).is_none());
        assert!(split(&mut arena, End::Back, usize::MAX, 1).is_none());
        assert!(tensor(&arena, End::Back, 11).is_none());
        assert_eq!(layer_need(usize::MAX, 0, 1), None);
        assert_eq!(layer_need(3, 4, 5), Some(12));
    }
}
