//! The deterministic train/validation split of the training images.
//!
//! A seeded Fisher–Yates shuffle with [`SplitMix64`] (its stream pinned to the reference
//! values by `rng`'s test), so that the split never changes with a dependency's version.

use crate::DatasetError;
use crate::rng::SplitMix64;

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
        let mut rng = SplitMix64::new(seed);
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

#[cfg(test)]
mod tests {
    use super::*;

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
