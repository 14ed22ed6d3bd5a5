//! Running a set of images through the float reference and through the int8 engine, and
//! scoring both; used for the report's validation figures.

use qcnn_core::{InferError, PreparedModel};
use qcnn_dataset::metrics::{Confusion, argmax};
use qcnn_dataset::{CLASSES, LabeledImages};
use rayon::prelude::*;
use serde::Serialize;

/// Images per engine call: each weight a Linear layer loads serves all of them.
const BATCH: usize = 16;

/// The int8 logits of every image, with the prepared model's kernels, in parallel batches
/// with one arena per worker.
pub fn int8_logits(model: &PreparedModel, images: &[&[u8]]) -> Result<Vec<Vec<i8>>, InferError> {
    let classes = model.model().num_classes();
    let arena_len = model.batch_arena_len(BATCH).unwrap_or(usize::MAX);
    let batches: Vec<Vec<Vec<i8>>> = images
        .par_chunks(BATCH)
        .map_init(
            || (vec![0u8; arena_len], Vec::new()),
            |(arena, pixels), batch| {
                pixels.clear();
                batch
                    .iter()
                    .for_each(|image| pixels.extend_from_slice(image));
                let mut logits = vec![0i8; batch.len() * classes];
                model.infer_batch(pixels, arena, &mut logits)?;
                Ok(logits.chunks(classes.max(1)).map(<[i8]>::to_vec).collect())
            },
        )
        .collect::<Result<_, InferError>>()?;
    Ok(batches.into_iter().flatten().collect())
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
