//! The depthwise kernel's row passes (`graph::fast::dsp::kx3_pass`): a block of output rows
//! and the check that a pass over it fits its slices, a leaf shared by the Cortex-M4's loops
//! (`ops::arm_dsp::depthwise_rows`) and the host's stand-in, so that both take the same passes.

/// Words of a channel's taps: five kernel rows' `(w0 | w1 << 16)` and `(w1 | w2 << 16)`, then
/// the bias twice.
pub(crate) const KX3_TAPS: usize = 12;

/// A block of output rows: `rows` rows of `width` sums, each row's inputs `step` words after
/// the one before's.
#[derive(Clone, Copy)]
pub(crate) struct RowsShape {
    pub(crate) width: usize,
    pub(crate) rows: usize,
    pub(crate) step: usize,
}

/// A pass checked to fit (built only by [`Kx3Pass::new`]): its 2 or 3 input rows, its sums and
/// the loop words, the taps then the input bytes to skip, the sums to step back, the sums'
/// bytes a row and the rows left.
pub(crate) struct Kx3Pass<'i, 'a> {
    inputs: &'i [&'i [u32]],
    acc: &'a mut [i32],
    words: [u32; KX3_TAPS + 4],
    stride: usize,
    shape: RowsShape,
}

/// A checked pass taken apart: its inputs, sums, loop words, stride and shape.
pub(crate) type Kx3Parts<'i, 'a> = (
    &'i [&'i [u32]],
    &'a mut [i32],
    [u32; KX3_TAPS + 4],
    usize,
    RowsShape,
);

impl<'i, 'a> Kx3Pass<'i, 'a> {
    /// The pass of `taps` at `stride` over `inputs` into `acc`: output rows `y < rows` read
    /// `stride·pairs + 1` words of each input from `y·step` and write `2·pairs` sums from
    /// `y·width` (`pairs = ⌈width / 2⌉`). `None` when a row or the sums are short, a count is
    /// 0, the stride is not 1 or 2, or there are not 2 or 3 inputs.
    #[inline(always)]
    pub(crate) fn new(
        inputs: &'i [&'i [u32]],
        taps: &[u32; KX3_TAPS],
        stride: usize,
        shape: RowsShape,
        acc: &'a mut [i32],
    ) -> Option<Self> {
        let RowsShape { width, rows, step } = shape;
        let pairs = width.div_ceil(2);
        let last = rows.checked_sub(1)?;
        let need = last.checked_mul(step)?.checked_add(stride * pairs + 1)?;
        let sums = last.checked_mul(width)?.checked_add(2 * pairs)?;
        let fits = pairs > 0
            && (stride == 1 || stride == 2)
            && step >= stride * pairs
            && inputs.iter().all(|r| r.len() >= need)
            && acc.len() >= sums;
        if !fits {
            return None;
        }
        let mut words = [0_u32; KX3_TAPS + 4];
        words.get_mut(..KX3_TAPS)?.copy_from_slice(taps);
        let tail = [
            4 * (step - stride * pairs),
            4 * (2 * pairs - width),
            8 * pairs,
            rows,
        ];
        for (w, t) in words.get_mut(KX3_TAPS..)?.iter_mut().zip(tail) {
            *w = u32::try_from(t).ok()?;
        }
        if !(inputs.len() == 2 || inputs.len() == 3) {
            return None;
        }
        Some(Self {
            inputs,
            acc,
            words,
            stride,
            shape,
        })
    }

    /// Its parts, for the loops that the check was for.
    #[inline(always)]
    pub(crate) fn into_parts(self) -> Kx3Parts<'i, 'a> {
        (self.inputs, self.acc, self.words, self.stride, self.shape)
    }
}
