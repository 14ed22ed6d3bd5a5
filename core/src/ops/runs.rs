//! The patch conv's staging copies (`graph::fast::dsp::gather_runs`): runs of four bytes and
//! the check that they fit their slices, a leaf shared by the Cortex-M4's copy
//! (`ops::arm_dsp::patch_mac`) and the host's stand-in, so that both take the same runs.

/// `channels · rows` runs of four bytes: run `(c, r)` read at `c·plane + r·row` of a source and
/// written at `(c·rows + r)·step` of a destination.
#[derive(Clone, Copy)]
pub(crate) struct Runs {
    pub(crate) plane: usize,
    pub(crate) row: usize,
    pub(crate) rows: usize,
    pub(crate) channels: usize,
    pub(crate) step: usize,
}

/// Runs checked to fit their source and destination (built only by [`FittingRuns::new`]).
pub(crate) struct FittingRuns<'s, 'd> {
    src: &'s [i8],
    runs: Runs,
    dst: &'d mut [i8],
}

impl<'s, 'd> FittingRuns<'s, 'd> {
    /// `runs` from `src` into `dst`; `None` when a count is 0 or a run would fall outside
    /// either slice.
    #[inline(always)]
    pub(crate) fn new(src: &'s [i8], runs: Runs, dst: &'d mut [i8]) -> Option<Self> {
        let Runs {
            plane,
            row,
            rows,
            channels,
            step,
        } = runs;
        let last_read = (channels.wrapping_sub(1))
            .checked_mul(plane)
            .and_then(|a| a.checked_add(rows.wrapping_sub(1).checked_mul(row)?))
            .and_then(|a| a.checked_add(4));
        let last_write = channels
            .checked_mul(rows)
            .and_then(|n| n.wrapping_sub(1).checked_mul(step))
            .and_then(|a| a.checked_add(4));
        let fits = channels > 0
            && rows > 0
            && last_read.is_some_and(|end| end <= src.len())
            && last_write.is_some_and(|end| end <= dst.len());
        fits.then_some(Self { src, runs, dst })
    }

    /// Its parts, for the copy that the check was for.
    #[inline(always)]
    pub(crate) fn into_parts(self) -> (&'s [i8], Runs, &'d mut [i8]) {
        (self.src, self.runs, self.dst)
    }
}
