//! Classification metrics shared by the quantizer's report and the host's evaluation:
//! the confusion matrix, accuracy, per-class precision/recall/F1, macro-F1 and cross-entropy.

use serde::Serialize;

/// Index of the largest value; the first one on ties (as `torch.argmax`). NaN never wins.
pub fn argmax<T: PartialOrd + Copy>(values: &[T]) -> usize {
    let mut best: Option<usize> = None;
    for (i, &v) in values.iter().enumerate() {
        let is_number = v.partial_cmp(&v).is_some();
        if is_number && best.is_none_or(|b| v > values[b]) {
            best = Some(i);
        }
    }
    best.unwrap_or(0)
}

/// `-log softmax(logits)[label]`, computed stably in f64.
pub fn cross_entropy(logits: &[f32], label: usize) -> f64 {
    let max = logits
        .iter()
        .fold(f64::NEG_INFINITY, |m, &x| m.max(f64::from(x)));
    let sum: f64 = logits.iter().map(|&x| (f64::from(x) - max).exp()).sum();
    max + sum.ln() - f64::from(logits[label])
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct ClassMetrics {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    /// Number of true samples of the class.
    pub support: u64,
}

/// `counts[truth][predicted]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Confusion {
    counts: Vec<Vec<u64>>,
}

impl Confusion {
    pub fn new(classes: usize) -> Confusion {
        Confusion {
            counts: vec![vec![0; classes]; classes],
        }
    }

    pub fn from_rows(counts: Vec<Vec<u64>>) -> Confusion {
        Confusion { counts }
    }

    pub fn add(&mut self, truth: usize, predicted: usize) {
        self.counts[truth][predicted] += 1;
    }

    /// Adds another matrix of the same size (e.g. from another worker thread).
    pub fn merge(&mut self, other: &Confusion) {
        for (row, other_row) in self.counts.iter_mut().zip(&other.counts) {
            for (c, o) in row.iter_mut().zip(other_row) {
                *c += o;
            }
        }
    }

    pub fn rows(&self) -> &[Vec<u64>] {
        &self.counts
    }

    pub fn total(&self) -> u64 {
        self.counts.iter().flatten().sum()
    }

    pub fn correct(&self) -> u64 {
        (0..self.counts.len()).map(|i| self.counts[i][i]).sum()
    }

    pub fn accuracy(&self) -> f64 {
        ratio(self.correct(), self.total())
    }

    /// A class never predicted (or never present) gets precision (or recall) 0, as scikit-learn.
    pub fn per_class(&self) -> Vec<ClassMetrics> {
        (0..self.counts.len())
            .map(|c| {
                let tp = self.counts[c][c];
                let support: u64 = self.counts[c].iter().sum();
                let predicted: u64 = self.counts.iter().map(|row| row[c]).sum();
                let precision = ratio(tp, predicted);
                let recall = ratio(tp, support);
                let f1 = if precision + recall > 0.0 {
                    2.0 * precision * recall / (precision + recall)
                } else {
                    0.0
                };
                ClassMetrics {
                    precision,
                    recall,
                    f1,
                    support,
                }
            })
            .collect()
    }

    pub fn f1_macro(&self) -> f64 {
        let per_class = self.per_class();
        per_class.iter().map(|m| m.f1).sum::<f64>() / per_class.len() as f64
    }
}

fn ratio(num: u64, den: u64) -> f64 {
    if den == 0 {
        0.0
    } else {
        num as f64 / den as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_abs_diff_eq;

    /// PyTorch's confusion matrix of the release checkpoint, from
    /// ../shared/fixtures/torch/reference_metrics.json, with its accuracy and macro-F1.
    #[test]
    fn reproduces_the_reference_metrics_from_their_confusion_matrix() {
        let rows = [
            [888, 0, 16, 8, 2, 0, 81, 0, 5, 0],
            [2, 987, 0, 6, 1, 0, 2, 0, 2, 0],
            [13, 1, 904, 6, 37, 0, 38, 0, 1, 0],
            [11, 1, 8, 934, 21, 0, 24, 0, 1, 0],
            [1, 0, 39, 19, 905, 0, 36, 0, 0, 0],
            [0, 0, 0, 0, 0, 989, 0, 7, 0, 4],
            [89, 0, 47, 19, 63, 0, 779, 0, 3, 0],
            [0, 0, 0, 0, 0, 6, 0, 976, 0, 18],
            [2, 1, 1, 1, 2, 1, 2, 2, 988, 0],
            [1, 0, 0, 0, 0, 2, 0, 25, 0, 972],
        ];
        let confusion = Confusion::from_rows(rows.iter().map(|r| r.to_vec()).collect());
        assert_eq!(confusion.total(), 10_000);
        assert_abs_diff_eq!(confusion.accuracy(), 0.9322, epsilon = 1e-12);
        assert_abs_diff_eq!(confusion.f1_macro(), 0.932074690835438, epsilon = 1e-12);
    }

    #[test]
    fn counts_and_merges_predictions() {
        let mut a = Confusion::new(3);
        a.add(0, 0);
        a.add(1, 2);
        let mut b = Confusion::new(3);
        b.add(2, 2);
        a.merge(&b);
        assert_eq!(a.rows(), [vec![1, 0, 0], vec![0, 0, 1], vec![0, 0, 1]]);
        assert_eq!((a.correct(), a.total()), (2, 3));
        let m = a.per_class();
        // Class 1 is never predicted correctly: precision and recall 0, F1 0, no NaN.
        assert_eq!(m[1].f1, 0.0);
        assert_eq!(m[2].precision, 0.5);
        assert_eq!(m[2].recall, 1.0);
        assert_abs_diff_eq!(a.f1_macro(), (1.0 + 0.0 + 2.0 / 3.0) / 3.0, epsilon = 1e-12);
    }

    #[test]
    fn argmax_takes_the_first_maximum() {
        assert_eq!(argmax(&[1i8, 5, 5, -3]), 1);
        assert_eq!(argmax(&[f32::NAN, 0.5, 0.25]), 1);
        assert_eq!(argmax(&[-1.0f32]), 0);
    }

    #[test]
    fn cross_entropy_is_log_softmax() {
        let l = [1.0f32, 2.0, 3.0];
        let expected = -(3f64.exp() / (1f64.exp() + 2f64.exp() + 3f64.exp())).ln();
        assert_abs_diff_eq!(cross_entropy(&l, 2), expected, epsilon = 1e-12);
        // Stable for large logits.
        assert_abs_diff_eq!(cross_entropy(&[1000.0, 0.0], 0), 0.0, epsilon = 1e-12);
    }
}
