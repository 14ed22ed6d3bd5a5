//! AArch64 fast paths: the [`super::gemm`] primitive with NEON, bit-identical to the portable
//! kernel. Convolutions reach it through im2col, Linear layers directly.
//!
//! - [`KernelTier::Neon`]: `smull`/`smull2` (exact i16 products) and `sadalp` (pairwise
//!   add into i32), 16 multiply-adds per step and row.
//! - [`KernelTier::NeonDot`]: `sdot` (four i8 × i8 products into each i32 lane), where the CPU
//!   has the dot-product extension (Armv8.2 `FEAT_DotProd`).
//!
//! One generic body over [`Products`]; the entry points carry `#[target_feature]`. Selection
//! is by `std::arch::is_aarch64_feature_detected!` with the `std` feature, else by the
//! target features the crate is compiled with.
#![allow(unsafe_code)]

use core::arch::aarch64::*;

pub(crate) mod detect;

use self::detect::{has_neon, has_neon_dot};
use super::gemm_portable::{GemmKernel, gemm_portable};
use super::tier::KernelTier;

/// The multiply-accumulate step, the only per-tier code.
trait Products {
    /// `acc + Σ w·x`, four products per i32 lane (any grouping: the lanes are summed later).
    unsafe fn madd(acc: int32x4_t, w: int8x16_t, x: int8x16_t) -> int32x4_t;
}

struct Neon;
struct NeonDot;

impl Products for Neon {
    #[inline(always)]
    unsafe fn madd(acc: int32x4_t, w: int8x16_t, x: int8x16_t) -> int32x4_t {
        // SAFETY: NEON, as the entry point guarantees.
        unsafe {
            let low = vmull_s8(vget_low_s8(w), vget_low_s8(x));
            let high = vmull_high_s8(w, x);
            vpadalq_s16(vpadalq_s16(acc, low), high)
        }
    }
}

impl Products for NeonDot {
    #[inline(always)]
    unsafe fn madd(mut acc: int32x4_t, w: int8x16_t, x: int8x16_t) -> int32x4_t {
        // `vdotq_s32` is still unstable in Rust; the instruction itself is one line of asm.
        // SAFETY: the dot-product extension, as the entry point guarantees; registers only.
        unsafe {
            core::arch::asm!(
                "sdot {acc:v}.4s, {w:v}.16b, {x:v}.16b",
                acc = inout(vreg) acc,
                w = in(vreg) w,
                x = in(vreg) x,
                options(pure, nomem, nostack, preserves_flags),
            );
        }
        acc
    }
}

/// # Safety
/// NEON; `k ≥ 1`.
#[target_feature(enable = "neon")]
unsafe fn gemm_neon(weights: &[i8], columns: &[i8], k: usize, acc: &mut [i32]) {
    // SAFETY: as this function.
    unsafe { gemm_body::<Neon>(weights, columns, k, acc) }
}

/// # Safety
/// NEON with the dot-product extension; `k ≥ 1`.
#[target_feature(enable = "neon,dotprod")]
unsafe fn gemm_neon_dot(weights: &[i8], columns: &[i8], k: usize, acc: &mut [i32]) {
    // SAFETY: as this function.
    unsafe { gemm_body::<NeonDot>(weights, columns, k, acc) }
}

/// The AArch64 [`crate::ops::gemm::gemm`] with the best tier.
#[inline]
pub fn gemm(weights: &[i8], columns: &[i8], k: usize, acc: &mut [i32]) {
    let tier = if has_neon_dot() {
        KernelTier::NeonDot
    } else {
        KernelTier::Neon
    };
    gemm_kernel(tier)(weights, columns, k, acc);
}

/// The gemm kernel of `tier`; each checks the CPU, so calling it is always sound.
pub(crate) fn gemm_kernel(tier: KernelTier) -> GemmKernel {
    fn neon(weights: &[i8], columns: &[i8], k: usize, acc: &mut [i32]) {
        if k == 0 || !has_neon() {
            return gemm_portable(weights, columns, k, acc);
        }
        // SAFETY: NEON checked just above; k ≥ 1.
        unsafe { gemm_neon(weights, columns, k, acc) }
    }
    fn neon_dot(weights: &[i8], columns: &[i8], k: usize, acc: &mut [i32]) {
        if k == 0 || !has_neon_dot() {
            return gemm_portable(weights, columns, k, acc);
        }
        // SAFETY: as above.
        unsafe { gemm_neon_dot(weights, columns, k, acc) }
    }
    match tier {
        KernelTier::Neon => neon,
        KernelTier::NeonDot => neon_dot,
        _ => gemm_portable,
    }
}

/// Bytes of `k` per step.
const STEP: usize = 16;

/// # Safety
/// The CPU supports `P`'s instructions; `k ≥ 1`.
#[inline(always)]
unsafe fn gemm_body<P: Products>(weights: &[i8], columns: &[i8], k: usize, acc: &mut [i32]) {
    let n = columns.len() / k;
    for c0 in (0..n).step_by(4) {
        // SAFETY (all): as this function; `c0 + C ≤ n`.
        unsafe {
            match n - c0 {
                1 => blocks::<P, 8, 1>(weights, columns, k, c0, acc),
                2 => blocks::<P, 4, 2>(weights, columns, k, c0, acc),
                3 => blocks::<P, 4, 3>(weights, columns, k, c0, acc),
                _ => blocks::<P, 4, 4>(weights, columns, k, c0, acc),
            }
        }
    }
}

/// `len ≤ 16` bytes from `p`, zero-padded.
///
/// # Safety
/// NEON; `len` readable bytes at `p`.
#[inline(always)]
unsafe fn load(p: *const i8, len: usize) -> int8x16_t {
    // SAFETY: as the caller guarantees.
    unsafe {
        if len >= STEP {
            vld1q_s8(p)
        } else if len == STEP / 2 {
            // The 3×3 convolutions' tail (72 = 4·16 + 8): one half load, no copy.
            vcombine_s8(vld1_s8(p), vdup_n_s8(0))
        } else {
            let mut buffer = [0_i8; STEP];
            core::ptr::copy_nonoverlapping(p, buffer.as_mut_ptr(), len);
            vld1q_s8(buffer.as_ptr())
        }
    }
}

/// `len ≤ 16` bytes at offset `c` of every row and column into the accumulators.
///
/// # Safety
/// NEON (and `P`'s instructions); those bytes are readable.
#[inline(always)]
unsafe fn step<P: Products, const R: usize, const C: usize>(
    a: &mut [[int32x4_t; C]; R],
    w_start: &[*const i8; R],
    x_start: &[*const i8; C],
    c: usize,
    len: usize,
) {
    // SAFETY: as the caller guarantees.
    unsafe {
        // (A loop, not `array::from_fn`: a closure's intrinsics would not inline.)
        let mut x = [vdupq_n_s8(0); C];
        for (x, &start) in x.iter_mut().zip(x_start) {
            *x = load(start.add(c), len);
        }
        for (&w_row, a_row) in w_start.iter().zip(a) {
            let w = load(w_row.add(c), len);
            for (a, &x) in a_row.iter_mut().zip(&x) {
                *a = P::madd(*a, w, x);
            }
        }
    }
}

/// Every block of `R` rows against columns `c0..c0 + C`.
///
/// # Safety
/// As [`gemm_body`], and `(c0 + C)·k ≤ columns.len()`.
#[inline(always)]
unsafe fn blocks<P: Products, const R: usize, const C: usize>(
    weights: &[i8],
    columns: &[i8],
    k: usize,
    c0: usize,
    acc: &mut [i32],
) {
    let (rows, n) = (weights.len() / k, columns.len() / k);
    let x_start: [*const i8; C] = core::array::from_fn(|j| columns[(c0 + j) * k..].as_ptr());
    for r0 in (0..rows).step_by(R) {
        // Rows past the last one repeat it; their sums are dropped.
        let w_start: [*const i8; R] =
            core::array::from_fn(|i| weights[(r0 + i).min(rows - 1) * k..].as_ptr());
        // SAFETY (below): every row and column start has `k` readable bytes; each step reads
        // `len ≤ k − c` bytes from offset `c`.
        let mut a = [[unsafe { vdupq_n_s32(0) }; C]; R];
        // Whole steps with a constant length (plain loads, no length test per load), then
        // the tail.
        let body = k - k % STEP;
        for c in (0..body).step_by(STEP) {
            unsafe { step::<P, R, C>(&mut a, &w_start, &x_start, c, STEP) };
        }
        if body < k {
            unsafe { step::<P, R, C>(&mut a, &w_start, &x_start, body, k - body) };
        }
        for (i, a_row) in a.iter().enumerate() {
            for (j, &a) in a_row.iter().enumerate() {
                let r = r0 + i;
                if r < rows
                    && let Some(out) = acc.get_mut(r * n + c0 + j)
                {
                    *out = unsafe { vaddvq_s32(a) };
                }
            }
        }
    }
}
