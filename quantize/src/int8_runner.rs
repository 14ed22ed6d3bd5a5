//! The int8 engine over many images in parallel, on rayon: one arena per worker, [`BATCH`]
//! images per engine call. The one runner behind qcnn-quantize's validation and `qcnn
//! evaluate` / `qcnn predict`.
//!
//! Rayon's work stealing hands out batches as workers finish them, so a core slowed by other
//! load does less of the work instead of holding up the others.

use std::sync::Mutex;
use std::time::Instant;

use qcnn_core::{InferError, PreparedModel};
use rayon::prelude::*;

/// Images per [`PreparedModel::infer_batch`] call: sixteen images share each weight a Linear
/// layer loads, and the batch's arena (16 × 9,408 bytes for the seed model) stays in a core's
/// L2 cache next to the weights.
pub const BATCH: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A worker could not be started (a thread or memory limit): an error, not a panic.
    #[error("starting inference thread {thread} of {threads}: {reason}")]
    Thread {
        thread: usize,
        threads: usize,
        reason: std::io::Error,
    },
    #[error("the model's arena for {batch} images overflows memory")]
    Arena { batch: usize },
    #[error("running the model on images {first}..{last}: {reason}")]
    Infer {
        first: usize,
        last: usize,
        reason: InferError,
    },
}

/// Where the workers come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workers {
    /// Rayon's global pool: one worker per core.
    EveryCore,
    /// A pool of its own with this many workers (at most one per batch).
    Exactly(usize),
}

/// The int8 logits of a run, image after image, their real values, and how long it took.
#[derive(Clone, Debug)]
pub struct Int8Logits {
    pub classes: usize,
    pub logits: Vec<i8>,
    pub dequantized: Vec<f32>,
    /// Wall time of the inference alone (no data loading or scoring).
    pub seconds: f64,
}

impl Int8Logits {
    pub fn len(&self) -> usize {
        self.logits.len() / self.classes.max(1)
    }

    pub fn is_empty(&self) -> bool {
        self.logits.is_empty()
    }

    pub fn image(&self, i: usize) -> &[i8] {
        &self.logits[i * self.classes..(i + 1) * self.classes]
    }

    pub fn dequantized(&self, i: usize) -> &[f32] {
        &self.dequantized[i * self.classes..(i + 1) * self.classes]
    }

    /// One logit vector per image.
    pub fn rows(&self) -> impl Iterator<Item = &[i8]> {
        self.logits.chunks(self.classes.max(1))
    }

    pub fn images_per_s(&self) -> f64 {
        self.len() as f64 / self.seconds
    }
}

/// Runs `model` on every image of `images`, `batch` images per engine call (normally
/// [`BATCH`]); `done(n)` is called as each batch of `n` images finishes (a progress bar).
pub fn run(
    model: &PreparedModel,
    images: &[&[u8]],
    (workers, batch): (Workers, usize),
    done: &(dyn Fn(usize) + Sync),
) -> Result<Int8Logits, RunError> {
    let batch_len = batch.max(1);
    let classes = model.model().num_classes();
    let arena_len = model
        .batch_arena_len(batch_len)
        .ok_or(RunError::Arena { batch: batch_len })?;
    let mut logits = vec![0i8; images.len() * classes];
    let start = Instant::now();
    let mut work = || {
        logits
            .par_chunks_mut(batch_len * classes.max(1))
            .zip(images.par_chunks(batch_len))
            .enumerate()
            .try_for_each_init(
                || (vec![0u8; arena_len], Vec::new()),
                |(arena, pixels), (index, (out, batch))| {
                    pixels.clear();
                    batch
                        .iter()
                        .for_each(|image| pixels.extend_from_slice(image));
                    let first = index * batch_len;
                    model
                        .infer_batch(pixels, arena, out)
                        .map_err(|reason| RunError::Infer {
                            first,
                            last: first + batch.len(),
                            reason,
                        })?;
                    done(batch.len());
                    Ok(())
                },
            )
    };
    match workers {
        Workers::EveryCore => work()?,
        Workers::Exactly(threads) => {
            let threads = threads.clamp(1, images.len().div_ceil(batch_len).max(1));
            pool(threads)?.install(work)?
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    let quant = model.model().output_quant();
    let dequantized = logits.iter().map(|&q| quant.dequantize(q)).collect();
    Ok(Int8Logits {
        classes,
        logits,
        dequantized,
        seconds,
    })
}

/// A pool of `threads` workers; the first that cannot be started is named in the error.
fn pool(threads: usize) -> Result<rayon::ThreadPool, RunError> {
    let failed = Mutex::new(None);
    let built = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .spawn_handler(|worker| {
            let index = worker.index();
            let mut builder = std::thread::Builder::new();
            if let Some(size) = worker.stack_size() {
                builder = builder.stack_size(size);
            }
            match builder.spawn(move || worker.run()) {
                Ok(_) => Ok(()),
                Err(reason) => {
                    let kind = reason.kind();
                    *failed.lock().unwrap_or_else(|e| e.into_inner()) = Some((index, reason));
                    Err(kind.into())
                }
            }
        })
        .build();
    built.map_err(|other| {
        let (index, reason) = failed
            .into_inner()
            .unwrap_or_else(|e| e.into_inner())
            .unwrap_or((0, std::io::Error::other(other)));
        RunError::Thread {
            thread: index + 1,
            threads,
            reason,
        }
    })
}
