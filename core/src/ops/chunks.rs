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
