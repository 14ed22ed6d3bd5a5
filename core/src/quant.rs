//! TFLite's integer requantization: an int32 accumulator times a real scale `M`, rounded,
//! shifted by the output zero point and clamped to int8, using integers only.
//!
//! The quantize tool writes `M = multiplier · 2^shift / 2^31` with `multiplier` in
//! `0..=i32::MAX` (normally `[2^30, 2^31)`) and `shift` in `-31..=30`. The engine only
//! multiplies, shifts, adds the zero point and clamps, exactly as TFLite's reference
//! `MultiplyByQuantizedMultiplier` (gemmlowp's fixed-point helpers, double rounding), so
//! results are bit-identical to TFLite / CMSIS-NN.

/// The shifts the engine accepts: a left shift of at most 30 and a right shift of at most 31.
pub const SHIFT_RANGE: core::ops::RangeInclusive<i8> = -31..=30;

/// Whether a tensor's or a weight's scale is usable: finite and positive.
pub fn valid_scale(scale: f32) -> bool {
    scale.is_finite() && scale > 0.0
}

/// `round(a·b / 2^31)` with ties rounded up, saturating the single overflowing case
/// `i32::MIN · i32::MIN` to `i32::MAX` (gemmlowp's `SaturatingRoundingDoublingHighMul`,
/// ARM's `VQRDMULH`).
#[inline]
pub fn saturating_rounding_doubling_high_mul(a: i32, b: i32) -> i32 {
    if a == i32::MIN && b == i32::MIN {
        return i32::MAX;
    }
    // gemmlowp adds a sign-dependent nudge (2^30 or 1 − 2^30) and divides truncating toward
    // zero; for a negative product that equals flooring with the nudge 2^30, so one add and
    // an arithmetic shift give the same result without a branch or a 64-bit division. It
    // fits in i32 because the only product reaching 2^62 is the saturated one.
    ((i64::from(a) * i64::from(b) + (1 << 30)) >> 31) as i32
}

/// `x / 2^exponent` rounded to nearest, ties away from zero (gemmlowp's `RoundingDivideByPOT`).
/// `exponent` is taken modulo 32; callers pass `0..=31`.
#[inline]
pub fn rounding_divide_by_pot(x: i32, exponent: u32) -> i32 {
    let exponent = exponent & 31;
    // In u32, not i64: a 64-bit shift is a call-sized sequence on 32-bit cores.
    let mask = ((1_u32 << exponent) - 1) as i32;
    let remainder = x & mask;
    let threshold = (mask >> 1) + i32::from(x < 0);
    (x >> exponent) + i32::from(remainder > threshold)
}

/// TFLite's `MultiplyByQuantizedMultiplier`: `acc · multiplier · 2^shift / 2^31`, rounded.
///
/// A positive `shift` multiplies `acc` by `2^shift` before the high multiply, a negative one
/// divides with rounding after it. The pre-shift wraps on overflow, as the two's-complement
/// code TFLite and CMSIS-NN compile to does (the C++ source leaves it undefined); the quantize
/// tool only writes left shifts for scales ≥ 1, which int8 layers do not produce in practice.
/// `shift` outside `-31..=30` is clamped into it (validated blobs never contain one).
#[inline]
pub fn multiply_by_quantized_multiplier(acc: i32, multiplier: i32, shift: i32) -> i32 {
    let (left, right) = split_shift(shift);
    rounding_divide_by_pot(
        saturating_rounding_doubling_high_mul(acc.wrapping_mul(1 << left), multiplier),
        right,
    )
}

/// A requantization shift split as every kernel applies it: `(left, right)`, the left shift of
/// the accumulator before the high multiply and the rounding right shift after it (one of
/// them 0). `shift` outside `-31..=30` is clamped into it, as [`multiply_by_quantized_multiplier`]
/// does; the one place the split is written, for the scalar, SMLAD and AVX paths.
#[inline]
pub fn split_shift(shift: i32) -> (u32, u32) {
    let shift = shift.clamp(-31, 30);
    (shift.max(0) as u32, (-shift).max(0) as u32)
}

/// Requantization of one output channel to int8: scale, add the zero point, clamp to
/// `[min, 127]` where `min` is the zero point when ReLU is fused (real 0) and −128 otherwise.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Requantizer {
    pub multiplier: i32,
    pub shift: i32,
    pub zero_point: i32,
    pub min: i32,
}

impl Requantizer {
    pub fn new(multiplier: i32, shift: i8, zero_point: i8, relu: bool) -> Self {
        let zero_point = i32::from(zero_point);
        Self {
            multiplier,
            shift: i32::from(shift),
            zero_point,
            min: if relu { zero_point } else { i32::from(i8::MIN) },
        }
    }

    /// Whether `apply` is non-decreasing in `acc`, so that the max of requantized values is
    /// the requantized max: true unless the multiplier is negative (validated blobs never have
    /// one) or a left shift may wrap the accumulator.
    pub fn is_monotone(&self) -> bool {
        self.multiplier >= 0 && self.shift <= 0
    }

    #[inline]
    pub fn apply(&self, acc: i32) -> i8 {
        // Saturating, so an accumulator scaled to near i32::MAX still clamps to 127.
        let scaled = multiply_by_quantized_multiplier(acc, self.multiplier, self.shift)
            .saturating_add(self.zero_point);
        // max-then-min rather than `clamp`, which would panic if `min` exceeded 127.
        scaled.max(self.min).min(i32::from(i8::MAX)) as i8
    }

    /// [`Self::apply`], never inlined: one copy in flash (each inlined one is about 100 bytes
    /// of Thumb-2) for the paths that requantize once per dot product of a whole row (Linear)
    /// or run as a fallback (the direct conv), where a call costs little next to the work.
    #[inline(never)]
    pub fn apply_outlined(&self, acc: i32) -> i8 {
        self.apply(acc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::SplitMix;

    /// Round-half-up of `a·b / 2^31`, written with floor division in i128: a different
    /// formulation from gemmlowp's nudge-and-truncate.
    fn high_mul_reference(a: i32, b: i32) -> i32 {
        let q = (i128::from(a) * i128::from(b) + (1 << 30)).div_euclid(1 << 31);
        q.clamp(i128::from(i32::MIN), i128::from(i32::MAX)) as i32
    }

    /// Round-half-away-from-zero of `x / 2^e`.
    fn divide_reference(x: i32, e: u32) -> i32 {
        if e == 0 {
            return x;
        }
        let half = 1_i64 << (e - 1);
        let x = i64::from(x);
        let magnitude = (x.abs() + half) >> e;
        (if x < 0 { -magnitude } else { magnitude }) as i32
    }

    fn mbqm_reference(acc: i32, multiplier: i32, shift: i32) -> i32 {
        let pre = acc.wrapping_mul(1 << shift.max(0));
        divide_reference(high_mul_reference(pre, multiplier), (-shift).max(0) as u32)
    }

    #[test]
    fn high_mul_hand_cases() {
        assert_eq!(
            saturating_rounding_doubling_high_mul(i32::MIN, i32::MIN),
            i32::MAX
        );
        assert_eq!(
            saturating_rounding_doubling_high_mul(i32::MAX, i32::MAX),
            i32::MAX - 1
        );
        assert_eq!(
            saturating_rounding_doubling_high_mul(i32::MIN, i32::MAX),
            -i32::MAX
        );
        assert_eq!(saturating_rounding_doubling_high_mul(100, 1 << 30), 50);
        // 0.5 rounds up, −0.5 rounds up to 0, −1.5 rounds up to −1.
        assert_eq!(saturating_rounding_doubling_high_mul(1, 1 << 30), 1);
        assert_eq!(saturating_rounding_doubling_high_mul(-1, 1 << 30), 0);
        assert_eq!(saturating_rounding_doubling_high_mul(-3, 1 << 30), -1);
        assert_eq!(saturating_rounding_doubling_high_mul(12345, 0), 0);
    }

    #[test]
    fn divide_hand_cases() {
        assert_eq!(rounding_divide_by_pot(5, 1), 3);
        assert_eq!(rounding_divide_by_pot(-5, 1), -3);
        assert_eq!(rounding_divide_by_pot(-4, 1), -2);
        assert_eq!(rounding_divide_by_pot(7, 0), 7);
        assert_eq!(rounding_divide_by_pot(1 << 30, 31), 1);
        assert_eq!(rounding_divide_by_pot(-(1 << 30), 31), -1);
        assert_eq!(rounding_divide_by_pot((1 << 30) - 1, 31), 0);
        assert_eq!(rounding_divide_by_pot(i32::MIN, 31), -1);
        assert_eq!(rounding_divide_by_pot(i32::MAX, 31), 1);
        assert_eq!(rounding_divide_by_pot(i32::MIN, 0), i32::MIN);
    }

    #[test]
    fn multiply_edge_cases() {
        // Multiplier 0 yields 0 whatever the shift.
        for shift in [-31, 0, 30] {
            assert_eq!(multiply_by_quantized_multiplier(i32::MAX, 0, shift), 0);
        }
        // 2^30 is exactly one half.
        assert_eq!(multiply_by_quantized_multiplier(1000, 1 << 30, 0), 500);
        assert_eq!(multiply_by_quantized_multiplier(-1001, 1 << 30, 0), -500);
        assert_eq!(multiply_by_quantized_multiplier(1000, 1 << 30, -3), 63); // 62.5 away from zero
        // i32::MAX is just under one: large accumulators round back to themselves.
        assert_eq!(
            multiply_by_quantized_multiplier(i32::MAX, i32::MAX, 0),
            i32::MAX - 1
        );
        assert_eq!(multiply_by_quantized_multiplier(1, i32::MAX, 30), 1 << 30);
        // Shift 30 on an accumulator whose product with 2^30 overflows wraps like the C code.
        assert_eq!(
            multiply_by_quantized_multiplier(2, 1 << 30, 30),
            i32::MIN / 2
        );
        // Shift −31 on top of the half: (2^31 − 1)/2 rounds up to 2^30, then 2^30 / 2^31 = 0.5
        // rounds away from zero.
        assert_eq!(multiply_by_quantized_multiplier(i32::MAX, 1 << 30, -31), 1);
        assert_eq!(
            multiply_by_quantized_multiplier((1 << 30) - 1, 1 << 30, -31),
            0
        );
        assert_eq!(
            multiply_by_quantized_multiplier(i32::MIN, i32::MAX, -31),
            -1
        );
        // INT32_MIN · INT32_MIN saturates inside the high multiply: INT32_MIN isn't a valid
        // multiplier in a blob, but the arithmetic must still be total.
        assert_eq!(
            multiply_by_quantized_multiplier(i32::MIN, i32::MIN, 0),
            i32::MAX
        );
        assert_eq!(
            multiply_by_quantized_multiplier(i32::MIN, i32::MIN, -1),
            1 << 30
        );
    }

    #[test]
    fn randomized_against_reference() {
        let mut rng = SplitMix::new(0x5EED);
        for _ in 0..200_000 {
            let (a, b) = (rng.i32(), rng.i32());
            assert_eq!(
                saturating_rounding_doubling_high_mul(a, b),
                high_mul_reference(a, b),
                "{a} {b}"
            );
            let e = (rng.next() % 32) as u32;
            assert_eq!(
                rounding_divide_by_pot(a, e),
                divide_reference(a, e),
                "{a} >> {e}"
            );
            let shift = (rng.next() % 62) as i32 - 31;
            let m = b & i32::MAX;
            assert_eq!(
                multiply_by_quantized_multiplier(a, m, shift),
                mbqm_reference(a, m, shift)
            );
        }
    }

    #[test]
    fn requantizer_clamps_and_fuses_relu() {
        let half = Requantizer::new(1 << 30, 0, -10, false);
        assert_eq!(half.apply(100), 40);
        assert_eq!(half.apply(-1000), -128);
        assert_eq!(half.apply(1000), 127);
        assert_eq!(half.apply(i32::MAX), 127);
        assert_eq!(half.apply(i32::MIN), -128);
        let relu = Requantizer::new(1 << 30, 0, -10, true);
        assert_eq!(relu.apply(-30), -10);
        assert_eq!(relu.apply(30), 5);
        // Saturation of the zero point addition near i32::MAX.
        let big = Requantizer::new(i32::MAX, 30, 127, false);
        assert_eq!(big.apply(1), 127);
    }

    #[test]
    fn monotone_requantizers_preserve_order() {
        let mut rng = SplitMix::new(12);
        for _ in 0..20_000 {
            let shift = -(rng.below(32) as i8);
            let requant =
                Requantizer::new(rng.i32().max(0), shift, rng.next() as i8, rng.below(2) == 0);
            assert!(requant.is_monotone());
            let (a, b) = (rng.i32(), rng.i32());
            let (lo, hi) = (a.min(b), a.max(b));
            assert!(
                requant.apply(lo) <= requant.apply(hi),
                "{requant:?} {lo} {hi}"
            );
        }
        // A left shift can wrap the accumulator, breaking the order: the reason pooling
        // requantizes every position for such channels.
        let left = Requantizer::new(1 << 30, 1, 0, false);
        assert!(!left.is_monotone());
        assert!(left.apply(1 << 30) < left.apply(1));
    }
}
