//! Running the int8 engine over many images on several threads, one arena per thread, with
//! the kernels a [`PreparedModel`] chose once at load.

use std::sync::Mutex;
use std::time::Instant;

use anyhow::{Context, Result, anyhow};
use indicatif::ProgressBar;
use qcnn_core::{Model, PreparedModel};
use qcnn_dataset::LabeledImages;

/// The model `qcnn evaluate` and `qcnn predict` run: kernels for the best tier this CPU has,
/// or the one `QCNN_KERNEL_TIER` names (an unknown or unsupported name is an error).
pub fn prepare<'a>(model: &Model<'a>) -> Result<PreparedModel<'a>> {
    PreparedModel::new(model.clone()).context("choosing the engine's kernels")
}

/// The int8 logits of images `0..count`, back to back, their real values, and how long the
/// engine took.
pub struct Int8Logits {
    pub classes: usize,
    pub logits: Vec<i8>,
    pub dequantized: Vec<f32>,
    /// Wall time of the inference alone (threads included, no data loading or scoring).
    pub seconds: f64,
}

impl Int8Logits {
    pub fn image(&self, i: usize) -> &[i8] {
        &self.logits[i * self.classes..(i + 1) * self.classes]
    }

    pub fn dequantized(&self, i: usize) -> &[f32] {
        &self.dequantized[i * self.classes..(i + 1) * self.classes]
    }

    pub fn images_per_s(&self) -> f64 {
        (self.logits.len() / self.classes) as f64 / self.seconds
    }
}

/// Images per [`PreparedModel::infer_batch`] call in `qcnn evaluate` and `qcnn predict`: sixteen
/// images share each weight a Linear layer loads, and the batch's arena (16 × 9,408 bytes for
/// the seed model) stays in a core's L2 cache next to the weights.
pub const BATCH: usize = 16;

/// Runs `model` on images `0..count` with `threads` workers, each with its own arena, `batch`
/// images per engine call.
///
/// Workers take the next batch as they finish the last one, so a core slowed by other load
/// does less of the work instead of holding up the others; the progress bar moves once a
/// batch.
pub fn run_int8(
    model: &PreparedModel,
    images: &LabeledImages,
    count: usize,
    (threads, batch): (usize, usize),
    progress: &ProgressBar,
) -> Result<Int8Logits> {
    let batch = batch.max(1);
    let classes = model.model().num_classes();
    let mut logits = vec![0i8; count * classes];
    let arena_len = model
        .batch_arena_len(batch)
        .ok_or_else(|| anyhow!("the model's arena for {batch} images overflows memory"))?;
    let start = Instant::now();
    {
        let batches = Mutex::new(logits.chunks_mut(batch * classes).enumerate());
        let next_batch = || batches.lock().unwrap_or_else(|e| e.into_inner()).next();
        // No more workers than batches; a worker that cannot be started (a thread or memory
        // limit) is an error, not a panic.
        let workers_wanted = threads.clamp(1, count.div_ceil(batch).max(1));
        std::thread::scope(|scope| {
            let workers: Vec<_> =
                (0..workers_wanted)
                    .map(|worker| {
                        std::thread::Builder::new()
                            .spawn_scoped(scope, || -> Result<()> {
                                let mut arena = vec![0u8; arena_len];
                                while let Some((index, out)) = next_batch() {
                                    let first = index * batch;
                                    let last = first + out.len() / classes.max(1);
                                    model
                                .infer_batch(images.images(first..last), &mut arena, out)
                                .map_err(|e| {
                                    anyhow!("running the model on test images {first}..{last}: {e}")
                                })?;
                                    progress.inc((last - first) as u64);
                                }
                                Ok(())
                            })
                            .map_err(|e| {
                                anyhow!(
                                    "starting inference thread {} of {workers_wanted}: {e}",
                                    worker + 1
                                )
                            })
                    })
                    .collect();
            // Join every started worker before reporting a failure to start one.
            let mut outcome = Ok(());
            for worker in workers {
                let finished = worker.and_then(|w| w.join().expect("an inference worker panicked"));
                if outcome.is_ok() {
                    outcome = finished;
                }
            }
            outcome
        })?;
    }
    let seconds = start.elapsed().as_secs_f64();
    progress.finish_and_clear();
    let quant = model.model().output_quant();
    let dequantized = logits.iter().map(|&q| quant.dequantize(q)).collect();
    Ok(Int8Logits {
        classes,
        logits,
        dequantized,
        seconds,
    })
}
