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

/// [`ChannelRequant`] with its two roundings (the doubling high multiply's, then the
/// rounding right shift's) and the zero point folded into one 64-bit constant: for a right
/// shift `r` ≥ 2, `floor((x·m + C) / 2^(31+r))` is exactly TFLite's result plus the zero
/// point, where `C = 2^30 + 2^(30+r) + zp·2^(31+r)` for `x` ≥ 0 and `2^31` less for `x` < 0
/// (the shift rounds half away from zero). On the Cortex-M4 that is one SMLAL into a constant
/// whose high word takes `x`'s sign and one shift of the high word: about half the
/// instructions of the two roundings.
#[derive(Clone, Copy, Debug)]
pub(crate) struct FoldedRequant {
    multiplier: i32,
    left: u32,
    /// `C`'s high word for `x` ≥ 0 (its low word is `2^30`, or `2^30 + 2^31` for `x` < 0,
    /// whose high word is one less).
    round_high: i32,
    /// The high word's shift: `r − 1`.
    shift: u32,
    lo: i32,
    hi: i32,
}

impl FoldedRequant {
    /// `None` where the folding does not hold: a right shift below 2, or so large that the
    /// zero point's share of `C` leaves an i32 (neither in a conv's usual scales), or a
    /// negative multiplier.
    pub(crate) fn new(requant: &Requantizer, [lo, hi]: [i8; 2]) -> Option<Self> {
        let (left, right) = crate::quant::split_shift(requant.shift);
        if requant.multiplier < 0 || !(2..=22).contains(&right) {
            return None;
        }
        Some(Self {
            multiplier: requant.multiplier,
            left,
            round_high: (1 << (right - 2)) + requant.zero_point * (1 << (right - 1)),
            shift: right - 1,
            lo: requant.min.max(i32::from(lo)),
            hi: i32::from(hi).min(i32::from(i8::MAX)),
        })
    }

    /// Exactly [`ChannelRequant::apply`].
    #[inline(always)]
    pub(crate) fn apply(&self, acc: i32) -> i8 {
        self.scaled(acc).max(self.lo).min(self.hi) as i8
    }

    /// [`Self::apply`] where the clamp's top is 127 ([`Self::tops_at_127`]): the clamp to
    /// int8 is one SSAT, then the bottom.
    #[inline(always)]
    pub(crate) fn apply_to_127(&self, acc: i32) -> i8 {
        self.scaled(acc).clamp(-128, 127).max(self.lo) as i8
    }

    /// Whether the clamp's top is 127 (no upper clamp beyond int8's).
    pub(crate) fn tops_at_127(&self) -> bool {
        self.hi == i32::from(i8::MAX)
    }

    /// The requantized value with the zero point, before the clamp.
    #[inline(always)]
    fn scaled(&self, acc: i32) -> i32 {
        let x = acc.wrapping_shl(self.left);
        let sign = x >> 31;
        let low = 0x4000_0000 | (x as u32 & 0x8000_0000);
        let c = i64::from(self.round_high.wrapping_add(sign)) << 32 | i64::from(low);
        let sum = (i64::from(x) * i64::from(self.multiplier)).wrapping_add(c);
        ((sum >> 32) as i32) >> self.shift
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::SplitMix;

    /// A requantizer with a shift in `−below .. spread − below`, and a fused clamp.
    fn random_requantizer(rng: &mut SplitMix, spread: usize, below: i32) -> (Requantizer, [i8; 2]) {
        let shift = (rng.below(spread) as i32 - below) as i8;
        let r = Requantizer::new(
            rng.i32() & i32::MAX,
            shift,
            rng.next() as i8,
            rng.below(2) == 0,
        );
        let lo = rng.next() as i8;
        (r, [lo, lo.saturating_add(rng.below(256) as i8).max(lo)])
    }

    #[test]
    fn matches_the_requantizer_and_the_clamp() {
        let mut rng = SplitMix(46);
        for _ in 0..200_000 {
            let (r, clamp) = random_requantizer(&mut rng, 64, 32);
            let c = ChannelRequant::new(&r, clamp).unwrap();
            let acc = rng.i32() >> rng.below(31);
            let expected = r.apply(acc).max(clamp[0]).min(clamp[1]);
            assert_eq!(c.apply(acc), expected, "{r:?} {clamp:?} {acc}");
        }
        assert!(ChannelRequant::new(&Requantizer::new(-1, 0, 0, false), [-128, 127]).is_none());
    }

    #[test]
    fn the_folded_rounding_matches_the_requantizer_and_the_clamp() {
        let mut rng = SplitMix(47);
        let (mut folded, mut ties, mut tops) = (0, 0, 0);
        for case in 0..300_000 {
            let (r, clamp) = random_requantizer(&mut rng, 40, 28);
            let Some(f) = FoldedRequant::new(&r, clamp) else {
                continue;
            };
            folded += 1;
            // Every third accumulator a tie of the final shift or near one.
            let acc = match case % 3 {
                0 => rng.i32() >> rng.below(31),
                _ => {
                    let (left, right) = crate::quant::split_shift(r.shift);
                    let m = i64::from(r.multiplier.max(1)) << left;
                    let base = i64::from(rng.i32() >> rng.below(31)) >> right << right;
                    let high = base + (1 << (right - 1)) + rng.below(3) as i64 - 1;
                    ((high << 31) / m).clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32
                }
            };
            let expected = r.apply(acc).max(clamp[0]).min(clamp[1]);
            assert_eq!(f.apply(acc), expected, "{r:?} {clamp:?} {acc}");
            if f.tops_at_127() {
                assert_eq!(f.apply_to_127(acc), expected, "{r:?} {clamp:?} {acc}");
                tops += 1;
            }
            let (left, right) = crate::quant::split_shift(r.shift);
            let x = i64::from(acc.wrapping_shl(left));
            let high = (x * i64::from(r.multiplier) + (1 << 30)) >> 31;
            ties += usize::from(high & ((1 << right) - 1) == 1 << (right - 1));
        }
        assert!(folded > 100_000, "{folded}");
        // Ties of the final rounding, where rounding half away from zero matters.
        assert!(ties > 10_000, "{ties}");
        assert!(tops > 100, "{tops}");
        assert!(
            FoldedRequant::new(&Requantizer::new(1 << 30, -1, 0, false), [-128, 127]).is_none()
        );
    }
}
