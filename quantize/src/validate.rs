//! Running a set of images through the float reference and through the int8 engine, and
//! scoring both; used for the report's validation figures.

use qcnn_core::InferError;
use qcnn_core::Model;
use qcnn_dataset::metrics::{Confusion, argmax};
use qcnn_dataset::{CLASSES, LabeledImages};
use rayon::prelude::*;
use serde::Serialize;

/// The int8 logits of every image, in parallel with one arena per worker.
pub fn int8_logits(model: &Model, images: &[&[u8]]) -> Result<Vec<Vec<i8>>, InferError> {
    images
        .par_iter()
        .map_init(
            || vec![0u8; model.arena_len()],
            |arena, image| {
                model
                    .infer(image, arena)
                    .map(|logits| logits.as_slice().to_vec())
            },
        )
        .collect()
}

pub fn images(set: &LabeledImages) -> Vec<&[u8]> {
    (0..set.len()).map(|i| set.image(i)).collect()
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Scores {
    pub accuracy: f64,
    pub f1_macro: f64,
}

/// The confusion matrix of `logits` (one vector per image) against `labels`.
pub fn confusion<T: PartialOrd + Copy>(logits: &[Vec<T>], labels: &[u8]) -> Confusion {
    let mut confusion = Confusion::new(CLASSES);
    for (l, &label) in logits.iter().zip(labels) {
        confusion.add(usize::from(label), argmax(l));
    }
    confusion
}

pub fn scores(confusion: &Confusion) -> Scores {
    Scores {
        accuracy: confusion.accuracy(),
        f1_macro: confusion.f1_macro(),
    }
}

/// The fraction of images on which both give the same class.
pub fn agreement(float: &[Vec<f32>], int8: &[Vec<i8>]) -> f64 {
    let same = float
        .iter()
        .zip(int8)
        .filter(|(f, q)| argmax(f) == argmax(q))
        .count();
    same as f64 / float.len().max(1) as f64
}
