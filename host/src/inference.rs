//! Running the int8 engine over many images on several threads, one arena per thread.

use std::sync::Mutex;
use std::time::Instant;

use anyhow::{Result, anyhow};
use indicatif::ProgressBar;
use qcnn_core::Model;
use qcnn_dataset::LabeledImages;

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

/// Images a worker takes at a time. Workers take blocks as they finish the last one, so a
/// core slowed by other load does less of the work instead of holding up the others; the
/// progress bar moves once a block.
const BLOCK: usize = 64;

/// Runs `model` on images `0..count` with `threads` workers, each with its own arena.
pub fn run_int8(
    model: &Model,
    images: &LabeledImages,
    count: usize,
    threads: usize,
    progress: &ProgressBar,
) -> Result<Int8Logits> {
    let classes = model.num_classes();
    let mut logits = vec![0i8; count * classes];
    let mut dequantized = vec![0f32; count * classes];
    let start = Instant::now();
    {
        let blocks = Mutex::new(
            logits
                .chunks_mut(BLOCK * classes)
                .zip(dequantized.chunks_mut(BLOCK * classes))
                .enumerate(),
        );
        let next_block = || blocks.lock().unwrap_or_else(|e| e.into_inner()).next();
        std::thread::scope(|scope| {
            let workers: Vec<_> = (0..threads.clamp(1, count.max(1)))
                .map(|_| {
                    scope.spawn(|| -> Result<()> {
                        let mut arena = vec![0u8; model.arena_len()];
                        while let Some((block, (out, out_real))) = next_block() {
                            let images_out =
                                out.chunks_mut(classes).zip(out_real.chunks_mut(classes));
                            for (k, (out, out_real)) in images_out.enumerate() {
                                let index = block * BLOCK + k;
                                let result =
                                    model.infer(images.image(index), &mut arena).map_err(|e| {
                                        anyhow!("running the model on test image {index}: {e}")
                                    })?;
                                out.copy_from_slice(result.as_slice());
                                for (class, real) in out_real.iter_mut().enumerate() {
                                    *real = result.dequantize(class).unwrap_or(f32::NAN);
                                }
                            }
                            progress.inc((out.len() / classes.max(1)) as u64);
                        }
                        Ok(())
                    })
                })
                .collect();
            workers
                .into_iter()
                .try_for_each(|w| w.join().expect("an inference worker panicked"))
        })?;
    }
    let seconds = start.elapsed().as_secs_f64();
    progress.finish_and_clear();
    Ok(Int8Logits {
        classes,
        logits,
        dequantized,
        seconds,
    })
}
