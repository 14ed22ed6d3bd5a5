//! One output channel's requantization as the fast kernels apply it to a run of sums:
//! [`crate::ops::requant::PreparedRequantizer`]'s arithmetic with the fused clamp folded into
//! its `[min, 127]` clamp, so that each output is a multiply, a few shifts and compares, and
//! one clamp, with every parameter in a register.

use crate::quant::Requantizer;

use super::super::kernels::ChannelData;

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
/// the common case (a right shift `r` of 2 to 23, a non-negative multiplier, an int8 zero
/// point): the rounding high multiply, the rounding right shift and the zero point all become
/// `(x·m + C) >> (31 + r)` with `x` the sum after the left shift,
/// `C = 2^30 + 2^(30+r) + zp·2^(31+r) − [x < 0]·2^31`, then SSAT and the clamp. On the
/// Cortex-M4 that is one SMLAL into a constant whose high word takes `x`'s sign and one shift
/// of the high word: five instructions an output before the clamp, with every parameter in a
/// register (`dsp::requantize_columns`, the depthwise and stem kernels), about half the
/// instructions of the two roundings.
///
/// Why it is exact: `PreparedRequantizer::apply` is `h = ⌊(x·m + 2^30) / 2^31⌋` then
/// `⌊(h + 2^(r−1) − [h < 0]) / 2^r⌋ + zp`, and nested floors by powers of two are one floor;
/// `[h < 0]` may be `[x < 0]` because when they differ `h = 0`, where both give 0 (r ≥ 1).
/// `r ≤ 23` keeps `zp·2^(r−1)` and the top word within an i32; `r ≥ 2` makes the low word of
/// `C` `2^30` or `2^30 + 2^31`, so building it never carries.
///
/// The pointwise kernels' assembly reads [`Self::to_words`], which has no left shift: those
/// take only a requantizer without one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FoldedRequant {
    pub(crate) multiplier: i32,
    /// The sum's left shift before the multiply (0 in [`Self::to_words`]).
    pub(crate) left: u32,
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
    /// applies a [`ChannelRequant`] or a [`crate::ops::requant::PreparedRequantizer`]).
    pub(crate) fn new(requant: &Requantizer, [lo, hi]: [i8; 2]) -> Option<Self> {
        let (left, right) = crate::quant::split_shift(requant.shift);
        let fits = (2..=23).contains(&right)
            && requant.multiplier >= 0
            && (-128..=127).contains(&requant.zero_point)
            && (-128..=127).contains(&requant.min);
        fits.then(|| {
            // The requantizer's own lower bound folds into the clamp's (both are a max).
            let lo = i32::from(lo).max(requant.min) as i8;
            let bytes = |b: i8| u32::from_le_bytes([b as u8; 4]);
            Self {
                multiplier: requant.multiplier,
                left,
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
        // `lo` ≥ −128 and `hi` ≤ 127: the clamp to int8 is implied.
        self.scaled(acc)
            .max(i32::from(self.lo as i8))
            .min(i32::from(self.hi as i8)) as i8
    }

    /// [`Self::apply`] where the clamp's top is 127 ([`Self::tops_at_127`]): the clamp to
    /// int8 is one SSAT, then the bottom.
    #[inline(always)]
    pub(crate) fn apply_to_127(&self, acc: i32) -> i8 {
        (self.scaled(acc).clamp(-128, 127) as i8).max(self.lo as i8)
    }

    /// Whether the clamp's top is 127 (no upper clamp beyond int8's).
    pub(crate) fn tops_at_127(&self) -> bool {
        self.hi as i8 == i8::MAX
    }

    /// The requantized value with the zero point, before the clamp.
    #[inline(always)]
    fn scaled(&self, acc: i32) -> i32 {
        let x = acc.wrapping_shl(self.left);
        let low = 0x4000_0000_u32 | (x as u32 & 0x8000_0000);
        let high = self.high.wrapping_add(x >> 31);
        let c = (i64::from(high) << 32) | i64::from(low);
        let sum = c.wrapping_add(i64::from(x) * i64::from(self.multiplier));
        ((sum >> 32) as i32) >> self.shift
    }

    /// The words the pointwise kernels' assembly reads; `None` with a left shift (the words
    /// have none).
    pub(crate) fn to_words(self) -> Option<[u32; FOLDED_WORDS]> {
        (self.left == 0).then_some([
            self.multiplier as u32,
            self.high as u32,
            self.shift,
            self.lo,
            self.hi,
        ])
    }

    /// The requantizer [`Self::to_words`] wrote.
    pub(crate) fn from_words([multiplier, high, shift, lo, hi]: [u32; FOLDED_WORDS]) -> Self {
        Self {
            multiplier: multiplier as i32,
            left: 0,
            high: high as i32,
            shift,
            lo,
            hi,
        }
    }
}

/// Whether every channel of `channels` folds with no left shift (a right shift of 2 to 23,
/// a non-negative multiplier): the pointwise kernel's assembly applies [`FoldedRequant`] to
/// such channels, making each one's words (multiplier, the high start `(2z + 1)·2^(r−2)`,
/// `r − 1`) from the blob itself as it reaches the channel, so this is all it checks first
/// (a shift and a sign a channel; building each `FoldedRequant` here would cost more).
pub(crate) fn pointwise_folds(channels: &ChannelData<'_>) -> bool {
    let shifts_fit = channels.shift.iter().all(|s| (-23..=-2).contains(s));
    shifts_fit
        && channels
            .multiplier
            .iter()
            .all(|m| i32::from_le_bytes(*m) >= 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::SplitMix;

    /// Any non-negative multiplier, a shift in `−below .. spread − below`, zero point, ReLU or
    /// not, and a fused clamp.
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
        let mut rng = SplitMix::new(46);
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
        let mut rng = SplitMix::new(47);
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

    #[test]
    fn folded_matches_the_requantizer_and_the_clamp() {
        let mut rng = SplitMix::new(47);
        let mut folded = 0;
        for case in 0..400_000 {
            let (r, clamp) = random_requantizer(&mut rng, 64, 32);
            let Some(f) = FoldedRequant::new(&r, clamp) else {
                let (left, right) = crate::quant::split_shift(r.shift);
                assert!(!(2..=23).contains(&right), "{r:?} {left}");
                continue;
            };
            folded += 1;
            match f.to_words() {
                Some(words) => assert_eq!(FoldedRequant::from_words(words), f),
                None => assert!(f.left > 0, "{f:?}"),
            }
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

    #[test]
    fn the_pointwise_check_is_the_fold_without_a_left_shift() {
        let mut rng = SplitMix::new(47);
        let multipliers = [0, 1, 1 << 30, (1 << 30) + 1, i32::MAX, 1_518_500_250];
        for case in 0..400_000 {
            let shift = -2 - rng.below(22) as i8;
            let multiplier = match multipliers.get(case % 8) {
                Some(&m) => m,
                None => rng.i32() & i32::MAX,
            };
            let zero_point = rng.next() as i8;
            let r = Requantizer::new(multiplier, shift, zero_point, false);
            let lo = rng.next() as i8;
            let clamp = [lo, lo.saturating_add(rng.below(256) as i8).max(lo)];
            let data = ChannelData {
                bias: &[],
                multiplier: &[multiplier.to_le_bytes()],
                shift: &[shift],
                zero_point,
                clamp,
            };
            assert!(pointwise_folds(&data));
            let f = FoldedRequant::new(&data.channel(0).1, clamp).unwrap();
            assert_eq!(f.left, 0);
            // Small sums (every tie of the small shifts), then any size.
            let acc = if case % 2 == 0 {
                (case / 2 % 4096) as i32 - 2048
            } else {
                rng.i32() >> rng.below(31)
            };
            let expected = r.apply(acc).max(clamp[0]).min(clamp[1]);
            assert_eq!(f.apply(acc), expected, "{r:?} {clamp:?} {acc}");
        }
        for acc in [i32::MIN, i32::MIN + 1, -1, 0, 1, i32::MAX] {
            for shift in [-2, -23] {
                let r = Requantizer::new(i32::MAX, shift, -128, false);
                let f = FoldedRequant::new(&r, [-128, 127]).unwrap();
                assert_eq!(f.apply(acc), r.apply(acc), "{acc} {shift}");
            }
        }
        // Outside the shifts it takes, or a negative multiplier: declined.
        for (multiplier, shift) in [(1, -1), (1, 0), (1, -24), (-1, -5)] {
            let data = ChannelData {
                bias: &[],
                multiplier: &[i32::to_le_bytes(multiplier)],
                shift: &[shift],
                zero_point: 0,
                clamp: [-128, 127],
            };
            assert!(!pointwise_folds(&data));
        }
    }
}
