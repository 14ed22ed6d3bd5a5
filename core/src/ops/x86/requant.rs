//! [`crate::quant::Requantizer::apply`] on a vector of accumulators, bit for bit, for any
//! [`Isa`].
//!
//! The scalar code's steps map onto vector ones:
//! - the pre-shift `acc·2^left` wraps, as `vpslld` does;
//! - `SaturatingRoundingDoublingHighMul` is `(a·m + 2^30) >> 31` with an arithmetic (floor)
//!   shift: for a negative product the scalar code's nudge `1 − 2^30` followed by truncation
//!   toward zero gives the same quotient. The 64-bit products come from `vpmuldq` on the even
//!   and the odd lanes; the single overflowing case (`a = m = i32::MIN`) is patched to
//!   `i32::MAX`;
//! - `RoundingDivideByPOT` is the same mask, remainder and threshold, lane-wise;
//! - the saturating zero-point add then the clamp to `[min, 127]` equal a clamp to
//!   `[min − zp, 127 − zp]` then a plain add, which cannot overflow.

use core::arch::x86_64::__m128i;

use super::isa::Isa;
use crate::quant::Requantizer;

/// One output channel's requantizer, with its shifts split and clamped as the scalar code does.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct VectorRequant {
    multiplier: i32,
    left: i32,
    right: i32,
    zero_point: i32,
    /// The clamp range minus the zero point: clamping before the add gives the same result
    /// as the saturating add then the clamp, and the add cannot overflow.
    low: i32,
    high: i32,
}

impl VectorRequant {
    pub fn new(r: &Requantizer) -> Self {
        let (left, right) = crate::quant::split_shift(r.shift);
        Self {
            multiplier: r.multiplier,
            left: left as i32,
            right: right as i32,
            zero_point: r.zero_point,
            low: r.min.saturating_sub(r.zero_point),
            high: i32::from(i8::MAX).saturating_sub(r.zero_point),
        }
    }

    /// A graph node's requantizer (`r` without ReLU) followed by its clamp to `[lo, hi]`:
    /// clamping to `[lo − zp, hi − zp]` before the add equals the scalar saturating add, the
    /// clamp to the int8 range and then to `[lo, hi]` (and gives `hi` when `lo > hi`, as the
    /// scalar max-then-min does).
    #[cfg(any(test, feature = "std"))]
    pub fn clamped(r: &Requantizer, [lo, hi]: [i8; 2]) -> Self {
        Self {
            low: i32::from(lo) - r.zero_point,
            high: i32::from(hi) - r.zero_point,
            ..Self::new(r)
        }
    }

    /// The int8 results of every lane, in lane order.
    ///
    /// # Safety
    /// The CPU supports `I`.
    #[inline(always)]
    pub unsafe fn apply<I: Isa>(&self, acc: I::V) -> __m128i {
        // SAFETY: the caller guarantees the instruction set.
        unsafe {
            let a = if self.left == 0 {
                acc
            } else {
                I::sll(acc, self.left)
            };
            let high = I::mul_high_rounding(a, self.multiplier, self.multiplier == i32::MIN);
            let x = if self.right == 0 {
                high
            } else {
                let mask = ((1_i64 << self.right) - 1) as i32;
                let remainder = I::and(high, I::splat(mask));
                // `mask >> 1`, plus one for negative x: subtracting x's sign (0 or −1) adds it.
                let threshold = I::sub(I::splat(mask >> 1), I::sra(high, 31));
                I::round_up(I::sra(high, self.right), remainder, threshold)
            };
            let x = I::min(I::max(x, I::splat(self.low)), I::splat(self.high));
            I::narrow(I::add(x, I::splat(self.zero_point)))
        }
    }
}

#[cfg(test)]
mod tests {
    use core::arch::x86_64::*;

    use super::*;
    use crate::ops::tier::KernelTier;
    use crate::ops::x86::isa::{Avx2, Avx512, AvxVnni};
    use crate::test_util::SplitMix;

    /// Random requantizers and accumulators, 16 at a time, against the scalar code.
    fn matches_the_scalar_requantizer(apply: impl Fn(&VectorRequant, &[i32; 16]) -> [i8; 16]) {
        let mut rng = SplitMix::new(87);
        for case in 0..20_000 {
            let shift = match case % 4 {
                0 => rng.below(62) as i32 - 31,
                1 => rng.below(12) as i32 - 11,
                2 => -(rng.below(4) as i32),
                // Out of range: clamped by both.
                _ => rng.i32() >> 24,
            };
            let multiplier = match case % 5 {
                0 => rng.i32(),
                1 => i32::MIN,
                _ => (1 << 30) + (rng.next() as i32 & 0x3fff_ffff),
            };
            let (zero_point, relu) = (rng.next() as i8, rng.below(2) == 0);
            let scalar = Requantizer {
                shift,
                ..Requantizer::new(multiplier, 0, zero_point, relu)
            };
            let accs: [i32; 16] = core::array::from_fn(|i| match rng.below(3) {
                _ if case % 7 == 0 && i % 3 == 0 => i32::MIN,
                0 => rng.i32(),
                _ => (rng.next() as i32) >> (8 + rng.below(20)),
            });
            let expected = accs.map(|a| scalar.apply(a));
            let got = apply(&VectorRequant::new(&scalar), &accs);
            assert_eq!(got, expected, "case {case}: {scalar:?} {accs:?}");
        }
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi")]
    fn apply_avx512(r: &VectorRequant, accs: &[i32; 16]) -> [i8; 16] {
        let mut got = [0_i8; 16];
        // SAFETY: the features are enabled here; the buffers hold 16 values.
        unsafe {
            let v = r.apply::<Avx512>(_mm512_loadu_si512(accs.as_ptr().cast()));
            _mm_storeu_si128(got.as_mut_ptr().cast(), v);
        }
        got
    }

    #[target_feature(enable = "avx2")]
    fn apply_256<I: Isa<V = __m256i>>(r: &VectorRequant, accs: &[i32; 16]) -> [i8; 16] {
        let mut got = [0_i8; 16];
        for (half, out) in accs.chunks_exact(8).zip(got.chunks_exact_mut(8)) {
            let mut bytes = [0_i8; 16];
            // SAFETY: AVX2 is enabled here; the buffers hold 8 and 16 values.
            unsafe {
                let v = r.apply::<I>(_mm256_loadu_si256(half.as_ptr().cast()));
                _mm_storeu_si128(bytes.as_mut_ptr().cast(), v);
            }
            out.copy_from_slice(&bytes[..8]);
        }
        got
    }

    crate::kernel_tests!(simd: vector_matches_the_scalar_requantizer);

    fn vector_matches_the_scalar_requantizer(tier: KernelTier) {
        // SAFETY: `kernel_tests!` runs a tier only where the CPU has it (`run_tier` checks).
        match tier {
            KernelTier::Avx512Vnni => {
                matches_the_scalar_requantizer(|r, a| unsafe { apply_avx512(r, a) })
            }
            KernelTier::AvxVnni => {
                matches_the_scalar_requantizer(|r, a| unsafe { apply_256::<AvxVnni>(r, a) })
            }
            _ => matches_the_scalar_requantizer(|r, a| unsafe { apply_256::<Avx2>(r, a) }),
        }
    }
}
