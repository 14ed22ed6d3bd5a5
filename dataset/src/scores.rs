//! A model's scores on a labelled set: accumulated image by image (one tally per worker
//! thread), then merged and reduced once.

use crate::metrics::{ClassMetrics, Confusion, argmax, cross_entropy};
use serde::Serialize;

/// Running totals for one worker.
#[derive(Clone, Debug)]
pub struct Tally {
    loss_sum: f64,
    confusion: Confusion,
}

impl Tally {
    pub fn new(classes: usize) -> Tally {
        Tally {
            loss_sum: 0.0,
            confusion: Confusion::new(classes),
        }
    }

    /// Adds one image's real-valued logits; returns the predicted class.
    pub fn add(&mut self, logits: &[f32], label: usize) -> usize {
        let predicted = argmax(logits);
        self.loss_sum += cross_entropy(logits, label);
        self.confusion.add(label, predicted);
        predicted
    }

    pub fn merge(&mut self, other: &Tally) {
        self.loss_sum += other.loss_sum;
        self.confusion.merge(&other.confusion);
    }

    pub fn scores(&self) -> Scores {
        let samples = self.confusion.total();
        Scores {
            loss: if samples == 0 {
                0.0
            } else {
                self.loss_sum / samples as f64
            },
            accuracy: self.confusion.accuracy(),
            f1_macro: self.confusion.f1_macro(),
            per_class: self.confusion.per_class(),
            confusion: self.confusion.clone(),
        }
    }
}

/// What is reported and stored for one model (the int8 engine or the float reference).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Scores {
    /// Mean cross-entropy (PyTorch's `CrossEntropyLoss`, mean reduction).
    pub loss: f64,
    pub accuracy: f64,
    pub f1_macro: f64,
    pub per_class: Vec<ClassMetrics>,
    /// `confusion[true class][predicted class]`.
    pub confusion: Confusion,
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_abs_diff_eq;

    #[test]
    fn merged_tallies_equal_one_tally() {
        let images: [([f32; 3], usize); 4] = [
            ([2.0, 0.0, 0.0], 0),
            ([0.0, 1.0, 3.0], 1),
            ([0.0, 0.0, 5.0], 2),
            ([1.0, 1.0, 0.0], 1),
        ];
        let mut whole = Tally::new(3);
        let (mut left, mut right) = (Tally::new(3), Tally::new(3));
        for (i, (logits, label)) in images.iter().enumerate() {
            whole.add(logits, *label);
            if i % 2 == 0 { &mut left } else { &mut right }.add(logits, *label);
        }
        left.merge(&right);
        assert_eq!(left.scores(), whole.scores());
        let scores = whole.scores();
        // Image 3 ties 1.0/1.0: argmax picks class 0, so 2 of 4 are right.
        assert_eq!(scores.accuracy, 0.5);
        let expected_loss = images
            .iter()
            .map(|(l, y)| cross_entropy(l, *y))
            .sum::<f64>()
            / 4.0;
        assert_abs_diff_eq!(scores.loss, expected_loss, epsilon = 1e-12);
    }
}
