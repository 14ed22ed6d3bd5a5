//! Slices in chunks whose length is provably never 0, so that the compiler drops the
//! zero-size panic (the panic-never check links only if the optimizer sees that).

use core::slice::{ChunksExact, ChunksExactMut};

/// `chunks_exact` with a size that is never 0 (validated models have no empty
/// dimension), so the compiler can drop the zero-size panic.
#[inline]
pub(crate) fn rows(s: &[i8], n: usize) -> ChunksExact<'_, i8> {
    s.chunks_exact(n.max(1))
}

/// `a·b` as a chunk length: saturating and at least 1, so that `chunks` and divisions by it
/// provably cannot panic (the panic-never check links only if the optimizer sees that).
#[inline]
pub(crate) fn chunk_len(a: usize, b: usize) -> usize {
    a.saturating_mul(b).max(1)
}

#[inline]
pub(crate) fn rows_mut(s: &mut [i8], n: usize) -> ChunksExactMut<'_, i8> {
    s.chunks_exact_mut(n.max(1))
}

/// Whether `gather_runs` may copy: `channels · rows` runs of four bytes, run `(c, r)` read at
/// `c·plane + r·row` of a source of `src_len` bytes and written at `(c·rows + r)·step` of a
/// destination of `dst_len`, both counts at least 1 (the Cortex-M4's and the stand-in's check).
pub(crate) fn runs_fit(
    src_len: usize,
    (plane, row, rows, channels): (usize, usize, usize, usize),
    dst_len: usize,
    step: usize,
) -> bool {
    let last_read = (channels.wrapping_sub(1))
        .checked_mul(plane)
        .and_then(|a| a.checked_add(rows.wrapping_sub(1).checked_mul(row)?))
        .and_then(|a| a.checked_add(4));
    let last_write = channels
        .checked_mul(rows)
        .and_then(|n| n.wrapping_sub(1).checked_mul(step))
        .and_then(|a| a.checked_add(4));
    channels > 0
        && rows > 0
        && last_read.is_some_and(|end| end <= src_len)
        && last_write.is_some_and(|end| end <= dst_len)
}
