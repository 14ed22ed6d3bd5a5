//! [`crate::quant::Requantizer::apply`] on sixteen accumulators at once (AVX-512), bit for bit.
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

use core::arch::x86_64::*;

use crate::quant::Requantizer;

/// One output channel's requantizer, with its shifts split and clamped as the scalar code does.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Requant16 {
    multiplier: i32,
    left: i32,
    right: i32,
    zero_point: i32,
    /// The clamp range minus the zero point: clamping before the add gives the same result
    /// as the saturating add then the clamp, and the add cannot overflow.
    low: i32,
    high: i32,
}

impl Requant16 {
    pub fn new(r: &Requantizer) -> Self {
        let shift = r.shift.clamp(-31, 30);
        Self {
            multiplier: r.multiplier,
            left: shift.max(0),
            right: (-shift).max(0),
            zero_point: r.zero_point,
            low: r.min.saturating_sub(r.zero_point),
            high: i32::from(i8::MAX).saturating_sub(r.zero_point),
        }
    }

    /// The sixteen int8 results, in lane order.
    ///
    /// # Safety
    /// The CPU must support AVX-512 F.
    #[target_feature(enable = "avx512f")]
    #[inline]
    pub unsafe fn apply(&self, acc: __m512i) -> __m128i {
        let a = if self.left == 0 {
            acc
        } else {
            _mm512_sll_epi32(acc, _mm_cvtsi32_si128(self.left))
        };
        let m = _mm512_set1_epi32(self.multiplier);
        let half = _mm512_set1_epi64(1 << 30);
        let even = _mm512_srai_epi64::<31>(_mm512_add_epi64(_mm512_mul_epi32(a, m), half));
        let odd = _mm512_mul_epi32(_mm512_srli_epi64::<32>(a), m);
        let odd = _mm512_srai_epi64::<31>(_mm512_add_epi64(odd, half));
        let mut high = _mm512_mask_blend_epi32(0xAAAA, even, _mm512_slli_epi64::<32>(odd));
        if self.multiplier == i32::MIN {
            let overflow = _mm512_cmpeq_epi32_mask(a, m);
            high = _mm512_mask_blend_epi32(overflow, high, _mm512_set1_epi32(i32::MAX));
        }
        let x = if self.right == 0 {
            high
        } else {
            let mask = ((1_i64 << self.right) - 1) as i32;
            let remainder = _mm512_and_si512(high, _mm512_set1_epi32(mask));
            // `mask >> 1`, plus one for negative x: subtracting x's sign (0 or −1) adds it.
            let threshold =
                _mm512_sub_epi32(_mm512_set1_epi32(mask >> 1), _mm512_srai_epi32::<31>(high));
            let shifted = _mm512_sra_epi32(high, _mm_cvtsi32_si128(self.right));
            let round_up = _mm512_cmpgt_epi32_mask(remainder, threshold);
            _mm512_mask_add_epi32(shifted, round_up, shifted, _mm512_set1_epi32(1))
        };
        let x = _mm512_max_epi32(x, _mm512_set1_epi32(self.low));
        let x = _mm512_min_epi32(x, _mm512_set1_epi32(self.high));
        _mm512_cvtepi32_epi8(_mm512_add_epi32(x, _mm512_set1_epi32(self.zero_point)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::SplitMix;

    #[test]
    fn matches_the_scalar_requantizer() {
        if !std::is_x86_feature_detected!("avx512f") {
            eprintln!("skipped: this CPU has no AVX-512");
            return;
        }
        let mut rng = SplitMix(87);
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
            let accs: [i32; 16] = core::array::from_fn(|_| match rng.below(3) {
                0 => rng.i32(),
                _ => (rng.next() as i32) >> (8 + rng.below(20)),
            });
            let expected = accs.map(|a| scalar.apply(a));
            let mut got = [0_i8; 16];
            // SAFETY: AVX-512 F checked above; `got` holds 16 bytes.
            unsafe {
                let v = Requant16::new(&scalar).apply(_mm512_loadu_si512(accs.as_ptr().cast()));
                _mm_storeu_si128(got.as_mut_ptr().cast(), v);
            }
            assert_eq!(got, expected, "case {case}: {scalar:?} {accs:?}");
        }
    }
}
