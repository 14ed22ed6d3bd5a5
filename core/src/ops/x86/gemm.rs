//! The [`crate::ops::gemm::gemm`] primitive on x86-64: one body over [`Isa`].
//!
//! - AVX-512 VNNI and AVX-VNNI: `vpdpbusd` multiplies *unsigned* by signed bytes, four
//!   products per i32 lane, without intermediate saturation. The weights are biased into u8
//!   (`w ^ 0x80 = w + 128`) and `128·Σx` is taken off each sum afterwards.
//! - AVX2: bytes sign-extended to i16 and `vpmaddwd` (exact i16 products, summed in pairs).
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

/// Most accumulators in one register block (rows × columns).
const BLOCK: usize = 16;

/// `weights (rows × k) · columnsᵀ (k × n) → acc (rows × n)` with `I`.
///
/// # Safety
/// The CPU supports `I`; `k ≥ 1`.
#[inline(always)]
pub(super) unsafe fn gemm<I: Isa>(weights: &[i8], columns: &[i8], k: usize, acc: &mut [i32]) {
    let n = columns.len() / k;
    // Four columns at a time; a single column gets more rows instead, so that several
    // independent accumulation chains stay in flight.
    for c0 in (0..n).step_by(4) {
        // SAFETY (all): as this function; `c0 + C ≤ n` and `k ≥ 1`.
        unsafe {
            match n - c0 {
                1 => blocks::<I, 8, 1>(weights, columns, k, c0, acc),
                2 => blocks::<I, 4, 2>(weights, columns, k, c0, acc),
                3 => blocks::<I, 4, 3>(weights, columns, k, c0, acc),
                _ if I::MANY_REGISTERS => blocks::<I, 4, 4>(weights, columns, k, c0, acc),
                _ => blocks::<I, 2, 4>(weights, columns, k, c0, acc),
            }
        }
    }
}

/// Pointers to the starts of rows `r0..r0 + R` of a `rows × k` matrix; rows past the last one
/// repeat it (their sums are computed and discarded). Needs `r0 < rows`.
#[inline(always)]
fn row_starts<const R: usize>(matrix: &[i8], rows: usize, r0: usize, k: usize) -> [*const i8; R] {
    core::array::from_fn(|i| matrix[(r0 + i).min(rows - 1) * k..].as_ptr())
}

/// Every block of `R` rows against columns `c0..c0 + C`.
///
/// # Safety
/// As [`gemm`], and `(c0 + C)·k ≤ columns.len()`.
#[inline(always)]
unsafe fn blocks<I: Isa, const R: usize, const C: usize>(
    weights: &[i8],
    columns: &[i8],
    k: usize,
    c0: usize,
    acc: &mut [i32],
) {
    let (rows, n) = (weights.len() / k, columns.len() / k);
    let x_start: [*const i8; C] = core::array::from_fn(|j| columns[(c0 + j) * k..].as_ptr());
    let mut correction = [0_i32; C];
    if I::BIASED_WEIGHTS {
        for (c, &x) in correction.iter_mut().zip(&x_start) {
            // SAFETY: each column start has `k` readable bytes.
            *c = unsafe { column_sum::<I>(x, k) }.wrapping_mul(128);
        }
    }
    let body = k - k % I::STEP;
    for r0 in (0..rows).step_by(R) {
        let w_start = row_starts::<R>(weights, rows, r0, k);
        // SAFETY (the steps): every row and column start has `k` readable bytes, and each
        // step reads `len ≤ k − c` bytes from offset `c`.
        let mut a = [[unsafe { I::splat(0) }; C]; R];
        for c in (0..body).step_by(I::STEP) {
            unsafe { step::<I, R, C, true>(&mut a, &w_start, &x_start, c, I::STEP) };
        }
        if body < k {
            unsafe { step::<I, R, C, false>(&mut a, &w_start, &x_start, body, k - body) };
        }
        let mut sums = [0_i32; BLOCK];
        for (f, out) in sums.chunks_exact_mut(4).take(R * C / 4).enumerate() {
            let i = 4 * f;
            let (p, q, r, s) = (i, i + 1, i + 2, i + 3);
            // SAFETY: `out` holds exactly four i32.
            unsafe {
                let four = I::reduce4(
                    a[p / C][p % C],
                    a[q / C][q % C],
                    a[r / C][r % C],
                    a[s / C][s % C],
                );
                _mm_storeu_si128(out.as_mut_ptr().cast(), four);
            }
        }
        for (i, &sum) in sums.iter().take(R * C).enumerate() {
            let (r, j) = (r0 + i / C, i % C);
            if r < rows
                && let Some(out) = acc.get_mut(r * n + c0 + j)
            {
                *out = sum.wrapping_sub(correction[j]);
            }
        }
    }
}

/// `len` bytes at offset `c` of every row and column into the accumulators; `FULL` when `len`
/// is `STEP` (a separate instantiation, so that the body's loads have no length test).
///
/// # Safety
/// As [`gemm`]; those bytes of every row and column start are readable.
#[inline(always)]
unsafe fn step<I: Isa, const R: usize, const C: usize, const FULL: bool>(
    a: &mut [[I::V; C]; R],
    w_start: &[*const i8; R],
    x_start: &[*const i8; C],
    c: usize,
    len: usize,
) {
    let len = if FULL { I::STEP } else { len };
    // SAFETY: as the caller guarantees.
    unsafe {
        let mut x = [I::splat(0); C];
        for (x, &start) in x.iter_mut().zip(x_start) {
            *x = I::load_column(start.add(c), len);
        }
        for (&w_row, a_row) in w_start.iter().zip(a) {
            let w = I::load_row(w_row.add(c), len);
            for (a, &x) in a_row.iter_mut().zip(&x) {
                *a = I::madd(*a, w, x);
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
    use crate::ops::gemm::gemm_portable;
    use crate::ops::gemm::tests::random_case;
    use crate::ops::tier::KernelTier;
    use crate::test_util::SplitMix;

    /// Runs the tier's kernel and the portable kernel on random shapes, including every tail
    /// length, more columns than one block, short and long `acc`, and extreme values.
    fn matches_portable(tier: KernelTier) {
        let kernel = super::super::gemm_kernel(tier);
        let mut rng = SplitMix(86);
        for case in 0..2000 {
            let (mut weights, mut columns, k) = random_case(&mut rng);
            if case % 10 == 0 {
                // Beyond the callers' limits, and saturating values: still identical.
                let extra = k * rng.below(6);
                columns.extend(rng.i8s(extra));
                weights.fill(-127);
                columns.fill(if case % 20 == 0 { -128 } else { 127 });
            }
            let (rows, n) = (weights.len() / k, columns.len() / k);
            // Sometimes a partial trailing row or column, or a short or long `acc`.
            let partial = [rng.below(2) * rng.below(k), rng.below(2) * rng.below(k)];
            weights.extend(rng.weights(partial[0]));
            columns.extend(rng.i8s(partial[1]));
            let len = match rng.below(4) {
                0 => rng.below(rows * n + 1),
                _ => rows * n + rng.below(3),
            };
            let (mut fast, mut portable) = (vec![0x5a5a_5a5a; len], vec![0x5a5a_5a5a; len]);
            kernel(&weights, &columns, k, &mut fast);
            gemm_portable(&weights, &columns, k, &mut portable);
            assert_eq!(
                fast, portable,
                "{tier} case {case}: rows {rows}, n {n}, k {k}"
            );
        }
    }

    #[test]
    fn every_supported_tier_matches_portable() {
        for tier in [
            KernelTier::Avx2,
            KernelTier::AvxVnni,
            KernelTier::Avx512Vnni,
        ] {
            if tier.is_supported() {
                matches_portable(tier);
                eprintln!("ran {tier}");
            } else {
                eprintln!("skipped {tier}: not this CPU");
            }
        }
    }

    #[test]
    fn dispatched_matches_portable_on_hand_case() {
        // 3 rows × 2 columns, k = 3.
        let (weights, columns) = ([1, 2, 3, -1, -2, -3, 127, -127, 0], [4, 5, 6, -128, 127, 1]);
        let mut acc = [0; 6];
        super::super::gemm(&weights, &columns, 3, &mut acc);
        assert_eq!(acc, [32, 129, -32, -129, -127, -32385]);
    }
}
