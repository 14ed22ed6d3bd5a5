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

/// A channel's requantization and fused clamp as one 64-bit multiply-add and one shift, for
/// the common case (no left shift, a right shift `r` of 2 to 23, a non-negative multiplier):
/// the rounding high multiply, the rounding right shift and the zero point all become
/// `(x·m + C) >> (31 + r)` with `C = 2^30 + 2^(30+r) + zp·2^(31+r) − [x < 0]·2^31`, then SSAT
/// and the clamp. Five instructions an output before the clamp, with every parameter in a
/// register (`dsp::requantize_columns`).
///
/// Why it is exact: `PreparedRequantizer::apply` is `h = ⌊(x·m + 2^30) / 2^31⌋` then
/// `⌊(h + 2^(r−1) − [h < 0]) / 2^r⌋ + zp`, and nested floors by powers of two are one floor;
/// `[h < 0]` may be `[x < 0]` because when they differ `h = 0`, where both give 0 (r ≥ 1).
/// `r ≤ 23` keeps `zp·2^(r−1)` and the top word within an i32; `r ≥ 2` makes the low word of
/// `C` `2^30` or `2^30 + 2^31`, so building it never carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FoldedRequant {
    pub(crate) multiplier: i32,
    /// The top word of `C` for `x ≥ 0`: `2^(r−2) + zp·2^(r−1)`.
    pub(crate) high: i32,
    /// `r − 1`: the shift of the product's top word.
    pub(crate) shift: u32,
    /// The clamp's bounds, each byte repeated four times (SSUB8 and SEL clamp four at once).
    pub(crate) lo: u32,
    pub(crate) hi: u32,
}

/// Words of [`FoldedRequant::to_words`].
pub(crate) const FOLDED_WORDS: usize = 5;

impl FoldedRequant {
    /// `requant` then the clamp `[lo, hi]`; `None` outside the case above (the caller then
    /// applies a [`crate::ops::requant::PreparedRequantizer`]).
    pub(crate) fn new(requant: &Requantizer, [lo, hi]: [i8; 2]) -> Option<Self> {
        let (left, right) = crate::quant::split_shift(requant.shift);
        let fits = left == 0
            && (2..=23).contains(&right)
            && requant.multiplier >= 0
            && (-128..=127).contains(&requant.zero_point)
            && (-128..=127).contains(&requant.min);
        fits.then(|| {
            // The requantizer's own lower bound folds into the clamp's (both are a max).
            let lo = i32::from(lo).max(requant.min) as i8;
            let bytes = |b: i8| u32::from_le_bytes([b as u8; 4]);
            Self {
                multiplier: requant.multiplier,
                high: (1 << (right - 2)) + (requant.zero_point << (right - 1)),
                shift: right - 1,
                lo: bytes(lo),
                hi: bytes(hi),
            }
        })
    }

    /// Exactly `requant.apply(acc)` then the clamp `[lo, hi]` of [`Self::new`] (as max then
    /// min); what `dsp::requantize_columns` computes.
    #[inline(always)]
    pub(crate) fn apply(&self, acc: i32) -> i8 {
        let low = 0x4000_0000_u32 | (acc as u32 & 0x8000_0000);
        let high = self.high.wrapping_add(acc >> 31);
        let c = (i64::from(high) << 32) | i64::from(low);
        let sum = c.wrapping_add(i64::from(acc) * i64::from(self.multiplier));
        let top = (sum >> 32) as i32;
        let v = (top >> self.shift).clamp(-128, 127) as i8;
        v.max(self.lo as i8).min(self.hi as i8)
    }

    pub(crate) fn to_words(self) -> [u32; FOLDED_WORDS] {
        [
            self.multiplier as u32,
            self.high as u32,
            self.shift,
            self.lo,
            self.hi,
        ]
    }

    pub(crate) fn from_words([multiplier, high, shift, lo, hi]: [u32; FOLDED_WORDS]) -> Self {
        Self {
            multiplier: multiplier as i32,
            high: high as i32,
            shift,
            lo,
            hi,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::SplitMix;

    /// Any non-negative multiplier, any shift (out-of-range ones too), zero point, ReLU or
    /// not, and a clamp.
    fn random_requantizer(rng: &mut SplitMix) -> (Requantizer, [i8; 2]) {
        let shift = (rng.below(64) as i32 - 32) as i8;
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
            let (r, clamp) = random_requantizer(&mut rng);
            let c = ChannelRequant::new(&r, clamp).unwrap();
            let acc = rng.i32() >> rng.below(31);
            let expected = r.apply(acc).max(clamp[0]).min(clamp[1]);
            assert_eq!(c.apply(acc), expected, "{r:?} {clamp:?} {acc}");
        }
        assert!(ChannelRequant::new(&Requantizer::new(-1, 0, 0, false), [-128, 127]).is_none());
    }

    #[test]
    fn folded_matches_the_requantizer_and_the_clamp() {
        let mut rng = SplitMix(47);
        let mut folded = 0;
        for case in 0..400_000 {
            let (r, clamp) = random_requantizer(&mut rng);
            let Some(f) = FoldedRequant::new(&r, clamp) else {
                let (left, right) = crate::quant::split_shift(r.shift);
                assert!(left > 0 || !(2..=23).contains(&right), "{r:?}");
                continue;
            };
            folded += 1;
            assert_eq!(FoldedRequant::from_words(f.to_words()), f);
            // Extremes and values near the rounding ties as well as random ones.
            let acc = match case % 4 {
                0 => [i32::MIN, i32::MAX, 0, -1, 1][rng.below(5)],
                1 => rng.i32(),
                _ => rng.i32() >> rng.below(31),
            };
            let expected = r.apply(acc).max(clamp[0]).min(clamp[1]);
            assert_eq!(f.apply(acc), expected, "{r:?} {clamp:?} {acc}");
        }
        assert!(folded > 100_000, "{folded}");
    }
}
