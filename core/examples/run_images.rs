//! Runs a blob on the first N images of a raw IDX image file with one kernel tier, one image
//! per call, and prints a digest of the logits: the workload `bench/qemu_instructions.sh`
//! counts guest instructions of under `qemu-aarch64` (speed cannot be measured there).
//!
//!     run_images <blob.qcnn> <t10k-images-idx3-ubyte (raw)> <N> <tier> [batch]
//!     run_images --best      # the best tier of this CPU
//!
//! `batch` (default 1) images per call, as `qcnn evaluate` runs them (16); the digest does
//! not depend on it. The inference loop's own time goes to stderr (`inference <wall> s, cpu
//! <cpu> s`: elapsed, and this process's CPU time, which on a shared machine leaves out the
//! time other processes had the core), as `bench/onnxruntime_peer.py` times its inference
//! alone: process start, file reading, the blob's load and the kernels' preparation are
//! outside it.

use std::process::ExitCode;

use qcnn_core::{KernelTier, Model, PreparedModel};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--best") {
        println!("{}", KernelTier::best());
        return ExitCode::SUCCESS;
    }
    let (blob, images, count, tier, batch) = match &args[..] {
        [_, blob, images, count, tier] => (blob, images, count, tier, "1"),
        [_, blob, images, count, tier, batch] => (blob, images, count, tier, batch.as_str()),
        _ => {
            eprintln!("usage: run_images <blob> <raw idx images> <count> <tier> [batch]");
            return ExitCode::from(2);
        }
    };
    match run(blob, images, count, tier, batch) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("run_images: error: {err}");
            ExitCode::FAILURE
        }
    }
}

fn run(blob: &str, images: &str, count: &str, tier: &str, batch: &str) -> Result<(), String> {
    let blob = std::fs::read(blob).map_err(|e| format!("{blob}: {e}"))?;
    let pixels = std::fs::read(images).map_err(|e| format!("{images}: {e}"))?;
    let count: usize = count.parse().map_err(|e| format!("count {count:?}: {e}"))?;
    let batch: usize = match batch.parse() {
        Ok(batch) if batch > 0 => batch,
        _ => return Err(format!("batch {batch:?} is not a positive number")),
    };
    let tier = KernelTier::from_name(tier).ok_or_else(|| format!("no kernel tier {tier:?}"))?;
    let model = Model::from_bytes(&blob).map_err(|e| e.to_string())?;
    let model = PreparedModel::with_tier(model, tier).map_err(|e| e.to_string())?;
    let image_len = model.model().input_len();
    let classes = model.model().num_classes();
    // IDX: a 16-byte header, then the images back to back.
    let images = pixels
        .get(16..16 + count * image_len)
        .ok_or_else(|| format!("the file holds fewer than {count} images"))?;
    let mut arena = vec![0_u8; model.batch_arena_len(batch).unwrap_or(0)];
    let mut logits = vec![0_i8; batch * classes];
    // FNV-1a over every logit: equal digests, equal logits.
    let mut digest = 0xcbf2_9ce4_8422_2325_u64;
    let (start, start_cpu) = (std::time::Instant::now(), cpu_seconds());
    for images in images.chunks(batch * image_len) {
        let done = model
            .infer_batch(images, &mut arena, &mut logits)
            .map_err(|e| e.to_string())?;
        for &l in &logits[..done * classes] {
            digest = (digest ^ u64::from(l as u8)).wrapping_mul(0x100_0000_01b3);
        }
    }
    let (seconds, cpu) = (start.elapsed().as_secs_f64(), cpu_seconds() - start_cpu);
    println!("{count} images, tier {tier}, logits digest {digest:016x}");
    eprintln!("inference {seconds:.6} s, cpu {cpu:.6} s");
    Ok(())
}

/// This process's CPU time so far (`CLOCK_PROCESS_CPUTIME_ID`), in seconds.
fn cpu_seconds() -> f64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a valid timespec for the call to write.
    if unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut t) } != 0 {
        return f64::NAN;
    }
    t.tv_sec as f64 + t.tv_nsec as f64 * 1e-9
}
