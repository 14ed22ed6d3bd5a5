//! The deterministic train/validation split of the training images.
//!
//! A seeded Fisher–Yates shuffle with SplitMix64, both written here, so that the split
//! never changes with a dependency's version.

use crate::DatasetError;

/// Indices into the training images; disjoint, and together covering every index once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Split {
    /// In shuffled order, so any prefix is a random sample.
    pub train: Vec<usize>,
    pub validation: Vec<usize>,
}

impl Split {
    /// Requires `train + validation == total`: a split that drops images would silently waste them.
    pub fn new(
        total: usize,
        train: usize,
        validation: usize,
        seed: u64,
    ) -> Result<Split, DatasetError> {
        if train.checked_add(validation) != Some(total) {
            return Err(DatasetError::SplitSizes {
                train,
                validation,
                total,
            });
        }
        let mut order: Vec<usize> = (0..total).collect();
        let mut rng = SplitMix64(seed);
        for i in (1..total).rev() {
            let j = rng.below(i as u64 + 1) as usize;
            order.swap(i, j);
        }
        let validation = order.split_off(train);
        Ok(Split {
            train: order,
            validation,
        })
    }
}

/// Vigna's SplitMix64.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (Lemire's multiply-and-reject, so no modulo bias).
    fn below(&mut self, n: u64) -> u64 {
        let threshold = n.wrapping_neg() % n;
        loop {
            let m = u128::from(self.next_u64()) * u128::from(n);
            if (m as u64) >= threshold {
                return (m >> 64) as u64;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix64_matches_the_reference_sequence() {
        // Outputs of Vigna's splitmix64.c for seed 1234567.
        let mut rng = SplitMix64(1234567);
        let got: Vec<u64> = (0..5).map(|_| rng.next_u64()).collect();
        assert_eq!(
            got,
            [
                6457827717110365317,
                3203168211198807973,
                9817491932198370423,
                4593380528125082431,
                16408922859458223821
            ]
        );
    }

    #[test]
    fn below_stays_in_range_and_reaches_every_value() {
        let mut rng = SplitMix64(7);
        let mut seen = [0u32; 5];
        for _ in 0..1000 {
            seen[rng.below(5) as usize] += 1;
        }
        assert!(seen.iter().all(|&c| c > 150), "{seen:?}");
    }

    #[test]
    fn split_is_disjoint_covering_and_deterministic() {
        let s = Split::new(1000, 800, 200, 42).unwrap();
        assert_eq!((s.train.len(), s.validation.len()), (800, 200));
        let mut all: Vec<usize> = s.train.iter().chain(&s.validation).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..1000).collect::<Vec<_>>());
        assert_eq!(s, Split::new(1000, 800, 200, 42).unwrap());
        assert_ne!(s, Split::new(1000, 800, 200, 43).unwrap());
        // Shuffled, not the identity.
        assert_ne!(s.train[..10], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    }

    #[test]
    fn split_sizes_must_add_up() {
        let err = Split::new(1000, 800, 100, 1).unwrap_err();
        assert!(matches!(
            err,
            DatasetError::SplitSizes {
                train: 800,
                validation: 100,
                total: 1000
            }
        ));
        assert!(Split::new(10, usize::MAX, 11, 1).is_err());
    }
}
