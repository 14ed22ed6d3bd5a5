//! The gemm contract's limits and kernel type, and its reference kernel (see `super::gemm`
//! for the contract). The per-architecture kernels take these from here, so that none of
//! them imports the dispatch that calls it.

use super::chunks::rows;
use super::dot::dot;

/// Most weight rows per call: callers block longer layers, so that the accumulators are a
/// small, fixed stack array (`MAX_ROWS · MAX_COLUMNS` i32, 256 bytes).
pub const MAX_ROWS: usize = 16;
/// Most columns per call.
pub const MAX_COLUMNS: usize = 4;
/// Accumulators one call may need.
pub const MAX_ACC: usize = MAX_ROWS * MAX_COLUMNS;

/// A gemm kernel: [`gemm_portable`]'s contract and results, bit for bit.
pub type GemmKernel = fn(&[i8], &[i8], usize, &mut [i32]);

/// The reference kernel: one plain dot product per (row, column).
pub fn gemm_portable(weights: &[i8], columns: &[i8], k: usize, acc: &mut [i32]) {
    let n = columns.len() / k.max(1);
    for (w_row, acc_row) in rows(weights, k).zip(rows_mut_i32(acc, n)) {
        for (column, out) in rows(columns, k).zip(acc_row) {
            *out = dot(w_row, column);
        }
    }
}

/// `acc` split into rows of `n` accumulators (`n` ≥ 1); a short last row takes the results
/// that fit, as the contract says.
#[inline]
pub(crate) fn rows_mut_i32(acc: &mut [i32], n: usize) -> core::slice::ChunksMut<'_, i32> {
    acc.chunks_mut(n.max(1))
}
