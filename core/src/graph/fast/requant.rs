//! One output channel's requantization as the fast kernels apply it to a run of sums:
//! [`crate::ops::requant::PreparedRequantizer`]'s arithmetic with the fused clamp folded into
//! its `[min, 127]` clamp, so that each output is a multiply, a few shifts and compares, and
//! one clamp, with every parameter in a register.

use crate::quant::Requantizer;

#[derive(Clone, Copy, Debug)]
pub(crate) struct ChannelRequant {
    multiplier: i32,
    left: u32,
    right: u32,
    /// `2^right − 1`, and half of it.
    mask: i32,
    half: i32,
    zero_point: i32,
    lo: i32,
    hi: i32,
}

impl ChannelRequant {
    /// `requant` then the fused clamp `[lo, hi]`; `None` for a negative multiplier (never in
    /// a validated blob), where the high multiply would need its saturation.
    pub(crate) fn new(requant: &Requantizer, [lo, hi]: [i8; 2]) -> Option<Self> {
        let (left, right) = crate::quant::split_shift(requant.shift);
        let mask = ((1_u32 << right) - 1) as i32;
        (requant.multiplier >= 0).then(|| Self {
            multiplier: requant.multiplier,
            left,
            right,
            mask,
            half: mask >> 1,
            zero_point: requant.zero_point,
            lo: requant.min.max(i32::from(lo)),
            hi: i32::from(hi).min(i32::from(i8::MAX)),
        })
    }

    /// Exactly `requant.apply(acc)` clamped to `[lo, hi]`.
    #[inline(always)]
    pub(crate) fn apply(&self, acc: i32) -> i8 {
        let x = acc.wrapping_shl(self.left);
        // A non-negative multiplier keeps the product below 2^62: no saturation needed.
        let high = ((i64::from(x) * i64::from(self.multiplier) + (1 << 30)) >> 31) as i32;
        let threshold = self.half + i32::from(high < 0);
        let scaled = (high >> self.right) + i32::from(high & self.mask > threshold);
        scaled
            .saturating_add(self.zero_point)
            .max(self.lo)
            .min(self.hi) as i8
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::SplitMix;

    #[test]
    fn matches_the_requantizer_and_the_clamp() {
        let mut rng = SplitMix(46);
        for _ in 0..200_000 {
            let shift = (rng.below(64) as i32 - 32) as i8;
            let r = Requantizer::new(
                rng.i32() & i32::MAX,
                shift,
                rng.next() as i8,
                rng.below(2) == 0,
            );
            let lo = rng.next() as i8;
            let clamp = [lo, lo.saturating_add(rng.below(256) as i8).max(lo)];
            let c = ChannelRequant::new(&r, clamp).unwrap();
            let acc = rng.i32() >> rng.below(31);
            let expected = r.apply(acc).max(clamp[0]).min(clamp[1]);
            assert_eq!(c.apply(acc), expected, "{r:?} {clamp:?} {acc}");
        }
        assert!(ChannelRequant::new(&Requantizer::new(-1, 0, 0, false), [-128, 127]).is_none());
    }
}
