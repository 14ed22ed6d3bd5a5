//! The one primitive Conv2d and Linear spend their time in: a block of int8 weight rows times
//! a few int8 input columns, into i32 accumulators.
//!
//! ```text
//! acc[r·n + j] = Σ_i weights[r·k + i] · columns[j·k + i]      (wrapping i32)
//! rows = weights.len() / k,   n = columns.len() / k
//! ```
//!
//! Linear passes its input vector as the single column; Conv2d passes im2col patches (see
//! [`super::conv2d`]), one per conv output position. Several columns per call let a kernel
//! reuse each weight it loads (and unpacks) across them.
//!
//! # The kernel interface
//!
//! [`gemm`] dispatches at compile time to the fastest kernel for the target; every kernel has
//! exactly [`gemm_portable`]'s signature and results, bit for bit:
//! - `x86`: AVX-512 VNNI, AVX-VNNI or AVX2 on x86-64 hosts;
//! - `aarch64`: NEON, with `sdot` where the CPU has the dot-product extension;
//! - otherwise [`gemm_portable`], the reference. The Cortex-M4 (`super::arm_dsp`) replaces
//!   whole Conv2d and Linear layers instead, so only the layers it declines come here.
//!
//! A new kernel adds its own module and one `cfg` branch in [`gemm`], and is tested against
//! [`gemm_portable`]. Contract for a kernel:
//! - `k ≥ 1`; every weight is within −127..=127, as a validated blob's are (the AVX2 kernel
//!   relies on it; any column byte is allowed); `weights` holds whole rows and `columns` whole columns (trailing partial ones are
//!   ignored); `acc` holds at least `rows · n` values: results beyond `acc.len()` are dropped,
//!   values beyond `rows · n` are left untouched;
//! - callers pass at most [`MAX_ROWS`] rows and [`MAX_COLUMNS`] columns per call, and `k` is at
//!   most [`super::dot::MAX_DOT_LEN`], so no sum of products overflows;
//! - it never panics, whatever the lengths (a validated model's never disagree).

pub use super::gemm_portable::{GemmKernel, MAX_ACC, MAX_COLUMNS, MAX_ROWS, gemm_portable};
use super::tier::KernelTier;

/// `weights (rows × k) · columnsᵀ (k × n) → acc (rows × n)`, with the target's fastest kernel.
#[inline]
pub fn gemm(weights: &[i8], columns: &[i8], k: usize, acc: &mut [i32]) {
    #[cfg(target_arch = "x86_64")]
    super::x86::gemm(weights, columns, k, acc);
    #[cfg(target_arch = "aarch64")]
    super::aarch64::gemm(weights, columns, k, acc);
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    gemm_portable(weights, columns, k, acc);
}

/// The kernel of one [`KernelTier`]; [`gemm_portable`] for tiers of another architecture or
/// that this CPU lacks (each kernel checks the CPU, so any of them is safe to call).
pub fn gemm_kernel(tier: KernelTier) -> GemmKernel {
    #[cfg(target_arch = "x86_64")]
    let kernel = super::x86::gemm_kernel(tier);
    #[cfg(target_arch = "aarch64")]
    let kernel = super::aarch64::gemm_kernel(tier);
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    let kernel = {
        let _ = tier;
        gemm_portable
    };
    kernel
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::test_util::SplitMix;

    /// `Σ w·x` in i64, the most obvious way.
    fn reference(weights: &[i8], columns: &[i8], k: usize) -> Vec<i64> {
        let (rows, n) = (weights.len() / k, columns.len() / k);
        let mut out = Vec::new();
        for r in 0..rows {
            for j in 0..n {
                out.push(
                    (0..k)
                        .map(|i| i64::from(weights[r * k + i]) * i64::from(columns[j * k + i]))
                        .sum(),
                );
            }
        }
        out
    }

    /// Random shapes up to the call limits, `k` covering every remainder modulo 16.
    fn random_case(rng: &mut SplitMix) -> (Vec<i8>, Vec<i8>, usize) {
        let k = if rng.below(4) == 0 {
            rng.below(3200) + 1
        } else {
            rng.below(80) + 1
        };
        let (rows, n) = (rng.below(MAX_ROWS) + 1, rng.below(MAX_COLUMNS) + 1);
        (rng.weights(rows * k), rng.i8s(n * k), k)
    }

    #[test]
    fn portable_against_reference() {
        let mut rng = SplitMix::new(21);
        for _ in 0..300 {
            let (weights, columns, k) = random_case(&mut rng);
            let expected = reference(&weights, &columns, k);
            let mut acc = vec![0x5555; expected.len() + 1];
            gemm_portable(&weights, &columns, k, &mut acc);
            let got: Vec<i64> = acc[..expected.len()]
                .iter()
                .map(|&a| i64::from(a))
                .collect();
            assert_eq!(got, expected, "k {k}");
            assert_eq!(acc[expected.len()], 0x5555, "wrote past rows · n");
        }
    }

    /// A tier's kernel against the portable one on random shapes, including every tail
    /// length, more columns than one block, partial rows and columns, short and long `acc`
    /// and extreme values; and both against the i64 reference on the whole rows and columns
    /// (so that the portable tier's run checks something too).
    fn gemm_matches_reference(tier: KernelTier) {
        let kernel = gemm_kernel(tier);
        let mut rng = SplitMix::new(86);
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
            let expected = reference(&weights, &columns, k);
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
            let context = format!("{tier} case {case}: rows {rows}, n {n}, k {k}");
            assert_eq!(fast, portable, "{context}");
            let got = fast.iter().map(|&v| i64::from(v));
            assert!(got.zip(&expected).all(|(a, &b)| a == b), "{context}");
        }
    }

    crate::kernel_tests!(gemm_matches_reference);

    #[test]
    fn dispatched_kernel_matches_portable() {
        let mut rng = SplitMix::new(22);
        for _ in 0..300 {
            let (weights, columns, k) = random_case(&mut rng);
            let n = columns.len() / k;
            let len = weights.len() / k * n;
            let (mut fast, mut portable) = (vec![7; len + 1], vec![7; len + 1]);
            gemm(&weights, &columns, k, &mut fast);
            gemm_portable(&weights, &columns, k, &mut portable);
            assert_eq!(fast, portable, "k {k}");
        }
    }

    #[test]
    fn extremes_and_short_buffers() {
        // Every product at its extreme, over the longest allowed dot.
        let k = crate::ops::dot::MAX_DOT_LEN;
        let (weights, columns) = (vec![-127_i8; 2 * k], vec![-128_i8; k]);
        let mut acc = [0; 2];
        gemm(&weights, &columns, k, &mut acc);
        assert_eq!(acc, [127 * 128 * k as i32; 2]);
        // A short `acc` drops results instead of panicking; partial rows are ignored.
        let mut short = [0; 1];
        gemm(&[1, 2, 3, 4, 5], &[1, 1, 2, 2], 2, &mut short);
        assert_eq!(short, [3]);
        let mut acc = [9; 4];
        gemm(&[1, 2, 3, 4, 5], &[1, 1, 2, 2, 7], 2, &mut acc);
        assert_eq!(acc, [3, 6, 7, 14]);
        gemm(&[1], &[1], 0, &mut acc);
    }
}
