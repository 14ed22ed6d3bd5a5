//! [`Requantizer::apply`] with its per-channel work done once: the shift split into a left
//! and a right part, the rounding mask and threshold precomputed, so that requantizing one
//! accumulator is a multiply, a few shifts and compares, and a saturating clamp. Layers that
//! requantize many outputs per channel (the Cortex-M4 convolution) prepare each channel once.

use crate::quant::Requantizer;

/// A [`Requantizer`] with a non-negative multiplier (every validated one), prepared.
/// The Cortex-M4 convolution loads the six words ([`Self::to_words`]) with one LDM.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct PreparedRequantizer {
    multiplier: i32,
    left: u32,
    right: u32,
    /// `2^right − 1`: the bits the right shift drops.
    mask: i32,
    zero_point: i32,
    min: i32,
}

impl PreparedRequantizer {
    /// `None` for a negative multiplier, where `i32::MIN · i32::MIN` would need the
    /// saturation this version leaves out.
    pub fn new(r: &Requantizer) -> Option<Self> {
        let (left, right) = crate::quant::split_shift(r.shift);
        (r.multiplier >= 0).then(|| Self {
            multiplier: r.multiplier,
            left,
            right,
            mask: ((1_u32 << right) - 1) as i32,
            zero_point: r.zero_point,
            min: r.min,
        })
    }

    /// The six fields as words, in declaration order: how the Cortex-M4 convolution stores
    /// them in its scratch and loads them (one LDM).
    pub fn to_words(&self) -> [u32; 6] {
        [
            self.multiplier as u32,
            self.left,
            self.right,
            self.mask as u32,
            self.zero_point as u32,
            self.min as u32,
        ]
    }

    /// The requantizer [`Self::to_words`] wrote.
    pub fn from_words([multiplier, left, right, mask, zero_point, min]: [u32; 6]) -> Self {
        Self {
            multiplier: multiplier as i32,
            left,
            right,
            mask: mask as i32,
            zero_point: zero_point as i32,
            min: min as i32,
        }
    }

    /// Exactly [`Requantizer::apply`].
    #[inline(always)]
    pub fn apply(&self, acc: i32) -> i8 {
        let x = acc.wrapping_shl(self.left);
        // The product of a non-negative multiplier with any i32 stays below 2^62, so the
        // rounding high multiply needs no saturation.
        let high = ((i64::from(x) * i64::from(self.multiplier) + (1 << 30)) >> 31) as i32;
        let threshold = (self.mask >> 1) + i32::from(high < 0);
        let scaled = high.wrapping_shr(self.right) + i32::from(high & self.mask > threshold);
        let scaled = scaled.saturating_add(self.zero_point);
        scaled.max(self.min).min(i32::from(i8::MAX)) as i8
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::SplitMix;

    #[test]
    fn matches_the_requantizer() {
        let mut rng = SplitMix::new(31);
        for _ in 0..200_000 {
            let shift = (rng.below(64) as i32 - 32) as i8; // includes out-of-range shifts
            let r = Requantizer::new(
                rng.i32() & i32::MAX,
                shift,
                rng.next() as i8,
                rng.below(2) == 0,
            );
            let prepared = PreparedRequantizer::new(&r).unwrap();
            let acc = rng.i32();
            assert_eq!(prepared.apply(acc), r.apply(acc), "{r:?} {acc}");
        }
        assert!(PreparedRequantizer::new(&Requantizer::new(-1, 0, 0, false)).is_none());
    }
}
