//! The [`super::super::gemm`] primitive on x86-64.
//!
//! - AVX-512 VNNI: `vpdpbusd` does 64 int8 multiply-adds per instruction into i32 lanes,
//!   without intermediate saturation. It multiplies *unsigned* by signed bytes, so the weights
//!   are biased into u8 (`w ^ 0x80 = w + 128`) and `128·Σx` is taken off each sum afterwards.
//!   All of it is arithmetic mod 2^32, so the result is bit-identical to the portable wrapping
//!   sum. Tails use masked loads: masked-off bytes read as 0 and are never accessed.
//! - AVX2: sign-extend to i16 and `vpmaddwd` (exact i16 products, summed in pairs into i32),
//!   16 multiply-adds per instruction; the `k mod 16` tail goes through the portable dot.
//!
//! Each kernel holds a block of rows × columns accumulators in registers, so every weight it
//! loads serves all the columns of the call, then reduces the block horizontally, four sums
//! at a time.

use core::arch::x86_64::*;

use super::{has_avx2, has_avx512_vnni};
use crate::ops::dot::dot;
use crate::ops::gemm::gemm_portable;

/// The x86-64 [`crate::ops::gemm::gemm`]: same contract, same results, bit for bit.
#[inline]
pub fn gemm(weights: &[i8], columns: &[i8], k: usize, acc: &mut [i32]) {
    if k == 0 {
        gemm_portable(weights, columns, k, acc);
    } else if has_avx512_vnni() {
        // SAFETY: the CPU supports every feature the kernel enables (checked just above).
        unsafe { gemm_avx512_vnni(weights, columns, k, acc) }
    } else if has_avx2() {
        // SAFETY: the CPU supports AVX2 (checked just above).
        unsafe { gemm_avx2(weights, columns, k, acc) }
    } else {
        gemm_portable(weights, columns, k, acc);
    }
}

/// Most accumulators in one register block (rows × columns).
const BLOCK: usize = 16;

/// Pointers to the starts of rows `r0..r0 + R` of a `rows × k` matrix; rows past the last one
/// repeat it (their sums are computed and discarded). Needs `r0 < rows`.
#[inline(always)]
fn row_starts<const R: usize>(matrix: &[i8], rows: usize, r0: usize, k: usize) -> [*const i8; R] {
    core::array::from_fn(|i| matrix[(r0 + i).min(rows - 1) * k..].as_ptr())
}

/// Stores a block's row-major sums (rows `r0..`, columns `c0..c0 + C`), each minus its
/// column's `correction`, into `acc` (`rows × n`, row-major); drops what falls outside.
#[inline(always)]
fn store_block<const R: usize, const C: usize>(
    sums: &[i32; BLOCK],
    correction: &[i32; C],
    (r0, c0): (usize, usize),
    (rows, n): (usize, usize),
    acc: &mut [i32],
) {
    for (i, &sum) in sums.iter().take(R * C).enumerate() {
        let (r, j) = (r0 + i / C, i % C);
        if r < rows
            && let Some(out) = acc.get_mut(r * n + c0 + j)
        {
            *out = sum.wrapping_sub(correction[j]);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// AVX-512 VNNI

/// # Safety
/// The CPU must support AVX-512 F, BW and VNNI; `k ≥ 1`.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn gemm_avx512_vnni(weights: &[i8], columns: &[i8], k: usize, acc: &mut [i32]) {
    let n = columns.len() / k;
    // Four columns at a time; a single column gets more rows instead, so that several
    // independent accumulation chains stay in flight.
    for c0 in (0..n).step_by(4) {
        // SAFETY (all four): same features as this function; `c0 + C ≤ n` and `k ≥ 1`.
        unsafe {
            match n - c0 {
                1 => blocks_avx512::<8, 1>(weights, columns, k, c0, acc),
                2 => blocks_avx512::<4, 2>(weights, columns, k, c0, acc),
                3 => blocks_avx512::<4, 3>(weights, columns, k, c0, acc),
                _ => blocks_avx512::<4, 4>(weights, columns, k, c0, acc),
            }
        }
    }
}

/// Every block of `R` rows against columns `c0..c0 + C`.
///
/// # Safety
/// As [`gemm_avx512_vnni`], and `(c0 + C)·k ≤ columns.len()`.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
#[inline]
unsafe fn blocks_avx512<const R: usize, const C: usize>(
    weights: &[i8],
    columns: &[i8],
    k: usize,
    c0: usize,
    acc: &mut [i32],
) {
    let (rows, n) = (weights.len() / k, columns.len() / k);
    let x_start: [*const i8; C] = core::array::from_fn(|j| columns[(c0 + j) * k..].as_ptr());
    // SAFETY: each column start has `k` readable bytes.
    let correction: [i32; C] =
        core::array::from_fn(|j| unsafe { column_sum_avx512(x_start[j], k) }.wrapping_mul(128));
    for r0 in (0..rows).step_by(R) {
        let w_start = row_starts::<R>(weights, rows, r0, k);
        let mut a = [[_mm512_setzero_si512(); C]; R];
        // Whole 64-byte chunks with plain loads (which fold into the xor), then the tail with
        // masked ones.
        let body = k - k % 64;
        for c in (0..body).step_by(64) {
            // SAFETY: every row and column start has `k ≥ c + 64` readable bytes.
            unsafe { step_avx512::<R, C, false>(&mut a, &w_start, &x_start, c, !0) };
        }
        if body < k {
            // SAFETY: the mask keeps the loads to bytes `body..k`.
            unsafe {
                step_avx512::<R, C, true>(&mut a, &w_start, &x_start, body, tail_mask(k - body))
            };
        }
        let mut sums = [0_i32; BLOCK];
        for (f, out) in sums.chunks_exact_mut(4).take(R * C / 4).enumerate() {
            let at = |i: usize| a[(4 * f + i) / C][(4 * f + i) % C];
            let four = reduce4_512(at(0), at(1), at(2), at(3));
            // SAFETY: `out` holds exactly four i32.
            unsafe { _mm_storeu_si128(out.as_mut_ptr().cast(), four) };
        }
        store_block::<R, C>(&sums, &correction, (r0, c0), (rows, n), acc);
    }
}

/// One 64-byte chunk at offset `c` of every row and column into the accumulators; `MASKED`
/// loads only the bytes in `mask` (the rest read as 0).
///
/// # Safety
/// As [`gemm_avx512_vnni`]; the loaded bytes of every row and column start are readable.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
#[inline]
unsafe fn step_avx512<const R: usize, const C: usize, const MASKED: bool>(
    a: &mut [[__m512i; C]; R],
    w_start: &[*const i8; R],
    x_start: &[*const i8; C],
    c: usize,
    mask: __mmask64,
) {
    // SAFETY (the loads): as the caller guarantees.
    let load = |p: *const i8| unsafe {
        if MASKED {
            _mm512_maskz_loadu_epi8(mask, p.add(c))
        } else {
            _mm512_loadu_si512(p.add(c).cast())
        }
    };
    let x: [__m512i; C] = core::array::from_fn(|j| load(x_start[j]));
    let bias = _mm512_set1_epi8(i8::MIN);
    for (&w_row, a_row) in w_start.iter().zip(a) {
        // Masked-off weight bytes become 0x80, but meet x = 0 there.
        let w = _mm512_xor_si512(load(w_row), bias);
        for (a, &x) in a_row.iter_mut().zip(&x) {
            *a = _mm512_dpbusd_epi32(*a, w, x);
        }
    }
}

/// All-ones for the first `len` bytes of a 64-byte vector (all of them when `len ≥ 64`).
#[inline(always)]
fn tail_mask(len: usize) -> __mmask64 {
    if len >= 64 { !0 } else { (1_u64 << len) - 1 }
}

/// `Σ x[i]` over `k` bytes from `x`.
///
/// # Safety
/// As [`gemm_avx512_vnni`], and `x` points to `k` readable bytes.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
#[inline]
unsafe fn column_sum_avx512(x: *const i8, k: usize) -> i32 {
    let ones = _mm512_set1_epi8(1);
    let mut sum = _mm512_setzero_si512();
    for c in (0..k).step_by(64) {
        // SAFETY: the mask keeps the load to bytes `c..min(c + 64, k)`.
        let v = unsafe { _mm512_maskz_loadu_epi8(tail_mask(k - c), x.add(c)) };
        sum = _mm512_dpbusd_epi32(sum, ones, v);
    }
    _mm512_reduce_add_epi32(sum)
}

/// The lane sums of four vectors, as `[Σa, Σb, Σc, Σd]`.
#[target_feature(enable = "avx512f")]
#[inline]
fn reduce4_512(a: __m512i, b: __m512i, c: __m512i, d: __m512i) -> __m128i {
    // Interleave and add pairwise until each 128-bit lane holds one partial sum of each input.
    let ab = _mm512_add_epi32(_mm512_unpacklo_epi32(a, b), _mm512_unpackhi_epi32(a, b));
    let cd = _mm512_add_epi32(_mm512_unpacklo_epi32(c, d), _mm512_unpackhi_epi32(c, d));
    let abcd = _mm512_add_epi32(_mm512_unpacklo_epi64(ab, cd), _mm512_unpackhi_epi64(ab, cd));
    let half = _mm256_add_epi32(
        _mm512_castsi512_si256(abcd),
        _mm512_extracti64x4_epi64::<1>(abcd),
    );
    _mm_add_epi32(
        _mm256_castsi256_si128(half),
        _mm256_extracti128_si256::<1>(half),
    )
}

// ---------------------------------------------------------------------------------------------
// AVX2

/// # Safety
/// The CPU must support AVX2; `k ≥ 1`.
#[target_feature(enable = "avx2")]
unsafe fn gemm_avx2(weights: &[i8], columns: &[i8], k: usize, acc: &mut [i32]) {
    let n = columns.len() / k;
    // Sixteen ymm registers: accumulators, columns and one weight vector must fit.
    for c0 in (0..n).step_by(4) {
        // SAFETY (all four): AVX2, as this function; `c0 + C ≤ n` and `k ≥ 1`.
        unsafe {
            match n - c0 {
                1 => blocks_avx2::<8, 1>(weights, columns, k, c0, acc),
                2 => blocks_avx2::<4, 2>(weights, columns, k, c0, acc),
                3 => blocks_avx2::<4, 3>(weights, columns, k, c0, acc),
                _ => blocks_avx2::<2, 4>(weights, columns, k, c0, acc),
            }
        }
    }
}

/// Every block of `R` rows against columns `c0..c0 + C`.
///
/// # Safety
/// As [`gemm_avx2`], and `(c0 + C)·k ≤ columns.len()`.
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn blocks_avx2<const R: usize, const C: usize>(
    weights: &[i8],
    columns: &[i8],
    k: usize,
    c0: usize,
    acc: &mut [i32],
) {
    let (rows, n) = (weights.len() / k, columns.len() / k);
    let x_start: [*const i8; C] = core::array::from_fn(|j| columns[(c0 + j) * k..].as_ptr());
    let body = k - k % 16;
    for r0 in (0..rows).step_by(R) {
        let w_start = row_starts::<R>(weights, rows, r0, k);
        let mut a = [[_mm256_setzero_si256(); C]; R];
        for c in (0..body).step_by(16) {
            // SAFETY: every row and column start has `k ≥ c + 16` readable bytes.
            let x: [__m256i; C] =
                core::array::from_fn(|j| unsafe { load_i16x16(x_start[j].add(c)) });
            for (w_row, a_row) in w_start.iter().zip(&mut a) {
                // SAFETY: as for the columns.
                let w = unsafe { load_i16x16(w_row.add(c)) };
                for (a, &x) in a_row.iter_mut().zip(&x) {
                    *a = _mm256_add_epi32(*a, _mm256_madd_epi16(w, x));
                }
            }
        }
        let mut sums = [0_i32; BLOCK];
        for (f, out) in sums.chunks_exact_mut(4).take(R * C / 4).enumerate() {
            let at = |i: usize| a[(4 * f + i) / C][(4 * f + i) % C];
            let four = reduce4_256(at(0), at(1), at(2), at(3));
            // SAFETY: `out` holds exactly four i32.
            unsafe { _mm_storeu_si128(out.as_mut_ptr().cast(), four) };
        }
        if body < k {
            for (i, sum) in sums.iter_mut().take(R * C).enumerate() {
                let (r, j) = ((r0 + i / C).min(rows - 1), c0 + i % C);
                let (w, x) = (&weights[r * k..][body..k], &columns[j * k..][body..k]);
                *sum = sum.wrapping_add(dot(w, x));
            }
        }
        store_block::<R, C>(&sums, &[0; C], (r0, c0), (rows, n), acc);
    }
}

/// 16 bytes from `p`, sign-extended to i16.
///
/// # Safety
/// AVX2; `p` points to 16 readable bytes.
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn load_i16x16(p: *const i8) -> __m256i {
    // SAFETY: the caller guarantees 16 readable bytes; unaligned loads are allowed.
    _mm256_cvtepi8_epi16(unsafe { _mm_loadu_si128(p.cast()) })
}

/// The lane sums of four vectors, as `[Σa, Σb, Σc, Σd]`.
#[target_feature(enable = "avx2")]
#[inline]
fn reduce4_256(a: __m256i, b: __m256i, c: __m256i, d: __m256i) -> __m128i {
    let abcd = _mm256_hadd_epi32(_mm256_hadd_epi32(a, b), _mm256_hadd_epi32(c, d));
    _mm_add_epi32(
        _mm256_castsi256_si128(abcd),
        _mm256_extracti128_si256::<1>(abcd),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::gemm::tests::random_case;
    use crate::test_util::SplitMix;

    /// Runs `kernel` and the portable kernel on random shapes, including every tail length,
    /// more columns than one block, short and long `acc`, and extreme values.
    fn matches_portable(kernel: impl Fn(&[i8], &[i8], usize, &mut [i32])) {
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
            assert_eq!(fast, portable, "case {case}: rows {rows}, n {n}, k {k}");
        }
    }

    #[test]
    fn avx512_vnni_matches_portable() {
        if !has_avx512_vnni() {
            eprintln!("skipped: this CPU has no AVX-512 VNNI");
            return;
        }
        // SAFETY: the CPU supports the kernel's features (checked above); k ≥ 1 always.
        matches_portable(|w, x, k, acc| unsafe { gemm_avx512_vnni(w, x, k, acc) });
    }

    #[test]
    fn avx2_matches_portable() {
        if !has_avx2() {
            eprintln!("skipped: this CPU has no AVX2");
            return;
        }
        // SAFETY: the CPU supports AVX2 (checked above); k ≥ 1 always.
        matches_portable(|w, x, k, acc| unsafe { gemm_avx2(w, x, k, acc) });
    }

    #[test]
    fn dispatched_matches_portable_on_hand_case() {
        // 3 rows × 2 columns, k = 3.
        let (weights, columns) = ([1, 2, 3, -1, -2, -3, 127, -127, 0], [4, 5, 6, -128, 127, 1]);
        let mut acc = [0; 6];
        gemm(&weights, &columns, 3, &mut acc);
        assert_eq!(acc, [32, 129, -32, -129, -127, -32385]);
    }
}
