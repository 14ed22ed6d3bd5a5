//! Where the pointwise kernel's blocks (`pointwise_blocks`, the Cortex-M4's assembly and the
//! host's stand-in) take their four input columns from, and what each source must hold: a
//! leaf both share, so that they check the same bounds.

/// Where a block's four columns come from.
#[derive(Clone, Copy)]
pub(crate) enum Columns<'a> {
    /// Already unpacked in the patch (one block).
    Unpacked,
    /// Four pixels in a row from this map (channel step `in_plane`), the first block's at
    /// its start, each next block's four bytes on.
    Map(&'a [i8], usize),
    /// The same from the output slice itself, each block's read before its outputs are
    /// written (a pointwise Conv in place: output (o, p) lies over input (o, p) only).
    Output(usize),
}

/// One call of the pointwise kernel: `blocks` blocks of four columns (from `columns`,
/// unpacked into `patch`: eight words per group of four input channels) against `weights`' rows
/// of `c = patch.len() / 2` values, each output channel's sums from its bias and requantized by
/// its multiplier and shift (`channels`), the zero point and clamp (`requant`), block `b`'s
/// channel `o` at `out[o·plane + 4b..]`.
pub(crate) struct PointwiseBlocks<'a> {
    pub(crate) columns: Columns<'a>,
    pub(crate) patch: &'a mut [u32],
    pub(crate) weights: &'a [i8],
    pub(crate) channels: (&'a [[u8; 4]], &'a [[u8; 4]], &'a [i8]),
    pub(crate) requant: (i8, [i8; 2]),
    pub(crate) out: &'a mut [i8],
    pub(crate) plane: usize,
    pub(crate) blocks: usize,
}

/// A call checked to fit (built only by [`PointwiseBlocks::fit`]).
pub(crate) struct FittingBlocks<'a>(PointwiseBlocks<'a>);

impl<'a> PointwiseBlocks<'a> {
    /// The call, when `blocks ≥ 1` blocks of `n = bias.len() ≥ 1` output channels and `c ≥ 1`
    /// input channels (a multiple of 4) fit: `weights` holds `n` rows of `c`, the multipliers
    /// and shifts `n` entries, `out` every block's four bytes of every channel at steps of
    /// `plane`, and the columns' source every block's four bytes of every input channel.
    #[inline(always)]
    pub(crate) fn fit(self) -> Option<FittingBlocks<'a>> {
        let (bias, multiplier, shift) = self.channels;
        let (n, c, blocks, plane) = (bias.len(), self.patch.len() / 2, self.blocks, self.plane);
        let out = self.out.len();
        let reads = |in_plane: usize, len: usize| {
            in_plane >= 4 && (c - 1).saturating_mul(in_plane).saturating_add(4 * blocks) <= len
        };
        let fits = n > 0
            && c > 0
            && blocks > 0
            && self.patch.len().is_multiple_of(8)
            && match self.columns {
                Columns::Unpacked => blocks == 1,
                Columns::Map(input, in_plane) => reads(in_plane, input.len()),
                Columns::Output(in_plane) => reads(in_plane, out),
            }
            && self.weights.len() >= n.saturating_mul(c)
            && multiplier.len() >= n
            && shift.len() >= n
            && plane >= blocks.saturating_mul(4)
            && out >= (n - 1).saturating_mul(plane).saturating_add(4 * blocks);
        fits.then_some(FittingBlocks(self))
    }
}

impl<'a> FittingBlocks<'a> {
    /// The checked call, for the loops that the check was for.
    #[inline(always)]
    pub(crate) fn into_inner(self) -> PointwiseBlocks<'a> {
        self.0
    }
}
