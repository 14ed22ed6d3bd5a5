//! Scoring the float reference and the int8 engine on the same images, for the report's
//! validation figures (the int8 logits come from [`crate::int8_runner`]).

use qcnn_dataset::metrics::{Confusion, argmax};
use qcnn_dataset::scores::{Scores, Tally};
use qcnn_dataset::{CLASSES, LabeledImages};

use qcnn_core::PreparedModel;

use crate::int8_runner::{self, BATCH, Int8Logits, RunError, Workers};

/// The int8 logits of `images` on every core.
pub fn int8_logits(model: &PreparedModel, images: &[&[u8]]) -> Result<Int8Logits, RunError> {
    int8_runner::run(model, images, (Workers::EveryCore, BATCH), &|_| {})
}

pub fn images(set: &LabeledImages) -> Vec<&[u8]> {
    (0..set.len()).map(|i| set.image(i)).collect()
}

/// The scores of real-valued logits (one row per image) against `labels`.
pub fn scores<'a>(rows: impl IntoIterator<Item = &'a [f32]>, labels: &[u8]) -> Scores {
    let mut tally = Tally::new(CLASSES);
    for (logits, &label) in rows.into_iter().zip(labels) {
        tally.add(logits, usize::from(label));
    }
    tally.scores()
}

/// The int8 run's scores, on its dequantized logits (so its loss compares with the float one).
pub fn int8_scores(int8: &Int8Logits, labels: &[u8]) -> Scores {
    scores((0..int8.len()).map(|i| int8.dequantized(i)), labels)
}

/// The confusion matrix of `rows` (one logit vector per image) against `labels`.
pub fn confusion<'a, T: PartialOrd + Copy + 'a>(
    rows: impl IntoIterator<Item = &'a [T]>,
    labels: &[u8],
) -> Confusion {
    let mut confusion = Confusion::new(CLASSES);
    for (logits, &label) in rows.into_iter().zip(labels) {
        confusion.add(usize::from(label), argmax(logits));
    }
    confusion
}

/// The fraction of images on which both give the same class.
pub fn agreement(float: &[Vec<f32>], int8: &Int8Logits) -> f64 {
    let same = float
        .iter()
        .zip(int8.rows())
        .filter(|(f, q)| argmax(f) == argmax(q))
        .count();
    same as f64 / float.len().max(1) as f64
}
