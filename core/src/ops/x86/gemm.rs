//! The [`crate::ops::gemm::gemm`] primitive on x86-64: one body over [`Isa`].
//!
//! - AVX-512 VNNI and AVX-VNNI: `vpdpbusd` multiplies *unsigned* by signed bytes, four
//!   products per i32 lane, without intermediate saturation. The weights are biased into u8
//!   (`w ^ 0x80 = w + 128`) and `128·Σx` is taken off each sum afterwards.
//! - AVX2: `vpmaddubsw` on `|x|` (unsigned, at most 128) and `w·sign x` (signed), 32 bytes
//!   per step: each i16 pair sum is at most 2·128·127, so nothing saturates as long as no
//!   weight is −128 (the contract's −127..=127; `w·sign x` of −128 would be wrong), then
//!   `vpmaddwd` by ones into i32. No byte is widened.
//!
//! All of it is arithmetic mod 2^32, so the result is bit-identical to the portable wrapping
//! sum. Tails load only the bytes that exist (masked, or copied into a zeroed buffer).
//!
//! Each call holds a block of rows × columns accumulators in registers, so every weight it
//! loads serves all the columns of the call, then reduces the block horizontally, four sums
//! at a time.
//!
//! No closure here touches a vector: a closure has no target features of its own, so its
//! intrinsics would not inline and the closure would stay a call (plain loops instead).

use core::arch::x86_64::*;

use super::isa::Isa;

/// `weights (rows × k) · columnsᵀ (k × n) → acc (rows × n)` with `I`.
///
/// # Safety
/// The CPU supports `I`; `k ≥ 1`.
#[inline(always)]
pub(super) unsafe fn gemm<I: Isa>(weights: &[i8], columns: &[i8], k: usize, acc: &mut [i32]) {
    let n = columns.len() / k;
    // Up to `GEMM_COLUMNS` columns at a time; fewer columns get more rows instead, so that
    // several independent accumulation chains stay in flight.
    let mut c0 = 0;
    while c0 < n {
        // SAFETY (all): as this function; `c0 + C ≤ n`.
        let done = unsafe {
            match (n - c0).min(I::GEMM_COLUMNS) {
                1 => row_blocks::<I, 1>(weights, columns, k, c0, acc),
                2 => row_blocks::<I, 2>(weights, columns, k, c0, acc),
                3 => row_blocks::<I, 3>(weights, columns, k, c0, acc),
                _ => row_blocks::<I, 4>(weights, columns, k, c0, acc),
            }
        };
        c0 += done;
    }
}

/// Every row against columns `c0..c0 + C`, in blocks of as many rows as the registers hold
/// (the last blocks smaller); returns `C`.
///
/// # Safety
/// As [`gemm`], and `(c0 + C)·k ≤ columns.len()`.
#[inline(always)]
unsafe fn row_blocks<I: Isa, const C: usize>(
    weights: &[i8],
    columns: &[i8],
    k: usize,
    c0: usize,
    acc: &mut [i32],
) -> usize {
    let (rows, n) = (weights.len() / k, columns.len() / k);
    // SAFETY: `(c0 + C)·k ≤ columns.len()`.
    let x = unsafe { columns.as_ptr().add(c0 * k) };
    let mut correction = [0_i32; C];
    if I::BIASED_WEIGHTS {
        for (j, c) in correction.iter_mut().enumerate() {
            // SAFETY: each column has `k` readable bytes.
            *c = unsafe { column_sum::<I>(x.add(j * k), k) }.wrapping_mul(128);
        }
    }
    // Accumulators the register file holds besides the columns and a row.
    let most = if I::MANY_REGISTERS { 16 } else { 8 };
    let mut r0 = 0;
    while r0 < rows {
        let left = rows - r0;
        let fits = |r: usize| r <= left && r * C <= most;
        // SAFETY (all): rows `r0..r0 + R` exist.
        r0 += unsafe {
            if fits(8) {
                block::<I, 8, C>(weights, x, k, r0, n, c0, &correction, acc)
            } else if fits(4) {
                block::<I, 4, C>(weights, x, k, r0, n, c0, &correction, acc)
            } else if fits(2) {
                block::<I, 2, C>(weights, x, k, r0, n, c0, &correction, acc)
            } else {
                block::<I, 1, C>(weights, x, k, r0, n, c0, &correction, acc)
            }
        };
    }
    C
}

/// Rows `r0..r0 + R` against the `C` columns at `x`, into `acc` (row-major, `n` per row;
/// results past `acc.len()` dropped); returns `R`.
///
/// # Safety
/// As [`gemm`]; rows `r0..r0 + R` exist; `x` points to `C` columns of `k` readable bytes.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn block<I: Isa, const R: usize, const C: usize>(
    weights: &[i8],
    x: *const i8,
    k: usize,
    r0: usize,
    n: usize,
    c0: usize,
    correction: &[i32; C],
    acc: &mut [i32],
) -> usize {
    // SAFETY (the pointer arithmetic and the loads): every row and column has `k` readable
    // bytes at `base + i·k`, and each step reads `len ≤ k − offset` bytes from `offset`.
    unsafe {
        let w = weights.as_ptr().add(r0 * k);
        let mut a = [[I::splat(0); C]; R];
        let body = k - k % I::STEP;
        let mut offset = 0;
        while offset < body {
            step::<I, R, C>(&mut a, w.add(offset), x.add(offset), k, I::STEP);
            offset += I::STEP;
        }
        if body < k {
            step::<I, R, C>(&mut a, w.add(body), x.add(body), k, k - body);
        }
        // Four sums at a time (the missing ones zero).
        let zero = I::splat(0);
        let at = |i: usize| if i < R * C { a[i / C][i % C] } else { zero };
        let mut i = 0;
        while i < R * C {
            let mut four = [0_i32; 4];
            let sums = I::reduce4(at(i), at(i + 1), at(i + 2), at(i + 3));
            _mm_storeu_si128(four.as_mut_ptr().cast(), sums);
            for (d, &sum) in four.iter().enumerate().take(R * C - i) {
                let (r, j) = ((i + d) / C, (i + d) % C);
                if let Some(out) = acc.get_mut((r0 + r) * n + c0 + j) {
                    *out = sum.wrapping_sub(correction[j]);
                }
            }
            i += 4;
        }
    }
    R
}

/// `len ≤ STEP` bytes of every row (at `w + i·k`) and column (at `x + j·k`) into the
/// accumulators. With `len` = `STEP` (a constant at the call) the loads have no length test.
///
/// # Safety
/// As [`gemm`]; those bytes are readable.
#[inline(always)]
unsafe fn step<I: Isa, const R: usize, const C: usize>(
    a: &mut [[I::V; C]; R],
    w: *const i8,
    x: *const i8,
    k: usize,
    len: usize,
) {
    // SAFETY: as the caller guarantees.
    unsafe {
        let mut columns = [I::splat(0); C];
        for (j, column) in columns.iter_mut().enumerate() {
            *column = I::load_column(x.add(j * k), len);
        }
        for (i, a_row) in a.iter_mut().enumerate() {
            let row = I::load_row(w.add(i * k), len);
            for (a, &column) in a_row.iter_mut().zip(&columns) {
                *a = I::madd(*a, row, column);
            }
        }
    }
}

/// `Σ x[i]` over `k` bytes from `x`.
///
/// # Safety
/// As [`gemm`], and `x` points to `k` readable bytes.
#[inline(always)]
unsafe fn column_sum<I: Isa>(x: *const i8, k: usize) -> i32 {
    // SAFETY: each load reads `min(STEP, k − c)` bytes from offset `c`.
    unsafe {
        let mut sum = I::splat(0);
        for c in (0..k).step_by(I::STEP) {
            sum = I::add_bytes(sum, I::load_column(x.add(c), (k - c).min(I::STEP)));
        }
        let zero = I::splat(0);
        _mm_cvtsi128_si32(I::reduce4(sum, zero, zero, zero))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn dispatched_matches_portable_on_hand_case() {
        // 3 rows × 2 columns, k = 3.
        let (weights, columns) = ([1, 2, 3, -1, -2, -3, 127, -127, 0], [4, 5, 6, -128, 127, 1]);
        let mut acc = [0; 6];
        super::super::gemm(&weights, &columns, 3, &mut acc);
        assert_eq!(acc, [32, 129, -32, -129, -127, -32385]);
    }
}
