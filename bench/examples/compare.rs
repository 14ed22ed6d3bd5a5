//! The side-by-side speed table of issue 7: qcnn's int8 engine (batch 1 and the batch
//! `qcnn evaluate` runs, 1 and 2 threads each), tract on the float32 ONNX export, and
//! onnxruntime (int8 and float32, batch 1 and 256), all over the 10,000 test images, in one
//! run, as ratios to onnxruntime's int8 batch-1 figure.
//!
//! The machine is shared and noisy, so every engine is measured `--repeats` times per round,
//! the rounds interleave the engines, and each engine's figure is the median over the rounds
//! of its best try in each: every engine gets the same number of tries. Run it through `bash bench/compare.sh`, which builds the
//! blob and the onnxruntime venv first. The rows and the table are in `src/lib.rs`.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Parser;
use qcnn_bench::{Row, keep_best, median_of_rounds, table};
use qcnn_config::config::Config;
use qcnn_core::{KernelTier, Model, PreparedModel};
use qcnn_dataset::{FashionMnist, LabeledImages};
use qcnn_host::inference::first_images;
use qcnn_quantize::int8_runner::{BATCH, Workers, run};
use tract_onnx::prelude::*;

/// Print the side-by-side images/s table.
#[derive(Debug, Parser)]
struct Args {
    /// The int8 blob qcnn runs (`qcnn-quantize ... -o out/model.qcnn`).
    #[arg(long)]
    model: PathBuf,
    /// The float32 ONNX export, run by tract and onnxruntime.
    #[arg(long)]
    onnx: PathBuf,
    /// onnxruntime's own int8 quantization of the same model.
    #[arg(long)]
    onnx_int8: PathBuf,
    /// The Python interpreter of a venv with onnxruntime and numpy.
    #[arg(long)]
    python: PathBuf,
    /// bench/onnxruntime_peer.py.
    #[arg(long)]
    peer_script: PathBuf,
    #[arg(long, default_value = "config.yaml")]
    config: PathBuf,
    /// Rounds; each engine's median round is reported.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Measurements of every engine in each round, back to back.
    #[arg(long, default_value_t = 3)]
    repeats: usize,
}

fn main() -> ExitCode {
    match run(&Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("compare: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<()> {
    let config =
        Config::load(&args.config).with_context(|| format!("reading {}", args.config.display()))?;
    let dataset = FashionMnist::load(&config.data.search_dirs(None))?;
    let test = &dataset.test;
    let blob =
        std::fs::read(&args.model).with_context(|| format!("reading {}", args.model.display()))?;
    let model =
        Model::from_bytes(&blob).with_context(|| format!("loading {}", args.model.display()))?;
    // Kernels chosen once, as `qcnn evaluate` does; QCNN_KERNEL_TIER forces a tier.
    let model = PreparedModel::new(model).context("choosing qcnn's kernel tier")?;
    let tiers = tier_line(model.tier());
    let tract = TractFloat::load(&args.onnx)?;
    let images_gz = dataset.dir.join("t10k-images-idx3-ubyte.gz");

    let mut rounds: Vec<Vec<Row>> = Vec::new();
    for round in 0..args.rounds.max(1) {
        let mut best: Vec<Row> = Vec::new();
        eprintln!("compare: round {}/{}", round + 1, args.rounds.max(1));
        let repeats = args.repeats.max(1);
        for _ in 0..repeats {
            let mut rows = Vec::new();
            for (batch, threads) in [(1, 1), (1, 2), (BATCH, 1), (BATCH, 2)] {
                let count = test.len();
                let images = first_images(test, count);
                let workers = (Workers::Exactly(threads), batch);
                let logits = run(&model, &images, workers, &|_| {})?;
                rows.push(Row::new("qcnn int8", batch, threads, logits.images_per_s()));
            }
            rows.push(Row::new("tract float32", 1, 1, tract.images_per_s(test)?));
            keep_best(&mut best, rows);
        }
        keep_best(&mut best, onnxruntime(args, &images_gz, repeats)?);
        rounds.push(best);
    }
    println!(
        "images/s: per engine the median over {} rounds of each round's best of {} tries",
        rounds.len(),
        args.repeats.max(1)
    );
    print!("{}", table(&median_of_rounds(&rounds), &tiers)?);
    Ok(())
}

/// Which instruction sets the engines ran with. qcnn's is its prepared model's tier; tract
/// and onnxruntime pick theirs from the CPU at run time and cannot be forced, so the line
/// names the CPU features they choose from.
fn tier_line(qcnn: KernelTier) -> String {
    let forced =
        if std::env::var_os(qcnn_core::prepared::TIER_VARIABLE).is_some_and(|v| !v.is_empty()) {
            format!(", forced by {}", qcnn_core::prepared::TIER_VARIABLE)
        } else {
            String::new()
        };
    let supported: Vec<&str> = KernelTier::supported().map(KernelTier::name).collect();
    let mut features = Vec::new();
    #[cfg(target_arch = "x86_64")]
    for (name, present) in [
        ("avx512-vnni", std::is_x86_feature_detected!("avx512vnni")),
        ("avx512bw", std::is_x86_feature_detected!("avx512bw")),
        ("avx-vnni", std::is_x86_feature_detected!("avxvnni")),
        ("avx2", std::is_x86_feature_detected!("avx2")),
        ("fma", std::is_x86_feature_detected!("fma")),
    ] {
        if present {
            features.push(name);
        }
    }
    format!(
        "qcnn kernel tier: {qcnn}{forced} (this CPU supports: {}); tract and onnxruntime \
         choose their own kernels from the CPU's features ({})",
        supported.join(", "),
        features.join(", ")
    )
}

/// tract's optimized plan of the float32 export, batch 1.
struct TractFloat {
    plan: std::sync::Arc<TypedRunnableModel>,
}

impl TractFloat {
    fn load(path: &Path) -> Result<TractFloat> {
        let plan = tract_onnx::onnx()
            .model_for_path(path)
            .and_then(|m| m.with_input_fact(0, f32::fact([1, 1, 28, 28]).into()))
            .and_then(|m| m.into_optimized())
            .and_then(|m| m.into_runnable())
            .map_err(|e| anyhow::anyhow!("{e:#}"))
            .with_context(|| format!("loading {} into tract", path.display()))?;
        Ok(TractFloat { plan })
    }

    fn images_per_s(&self, images: &LabeledImages) -> Result<f64> {
        let inputs: Vec<Tensor> = (0..images.len())
            .map(|i| {
                let pixels: Vec<f32> = images
                    .image(i)
                    .iter()
                    .map(|&p| f32::from(p) / 255.0)
                    .collect();
                Tensor::from_shape(&[1, 1, 28, 28], &pixels)
            })
            .collect::<TractResult<_>>()
            .map_err(|e| anyhow::anyhow!("{e:#}"))?;
        let start = Instant::now();
        for input in inputs {
            self.plan
                .run(tvec!(input.into()))
                .map_err(|e| anyhow::anyhow!("tract: {e:#}"))?;
        }
        Ok(images.len() as f64 / start.elapsed().as_secs_f64())
    }
}

/// One run of the onnxruntime peer script: int8 and float32, batch 1 and 256, each the best
/// of `repeats` measurements.
fn onnxruntime(args: &Args, images_gz: &Path, repeats: usize) -> Result<Vec<Row>> {
    let output = Command::new(&args.python)
        .arg(&args.peer_script)
        .arg("--images")
        .arg(images_gz)
        .arg("--float-model")
        .arg(&args.onnx)
        .arg("--int8-model")
        .arg(&args.onnx_int8)
        .arg("--repeats")
        .arg(repeats.to_string())
        .output()
        .with_context(|| format!("running {}", args.python.display()))?;
    if !output.status.success() {
        bail!(
            "{} {} failed: {}",
            args.python.display(),
            args.peer_script.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let figures: serde_json::Value =
        serde_json::from_slice(&output.stdout).context("parsing the onnxruntime peer's JSON")?;
    let figure = |key: &str| {
        figures[key]
            .as_f64()
            .with_context(|| format!("the onnxruntime peer printed no {key}"))
    };
    Ok(vec![
        Row::new("onnxruntime int8", 1, 1, figure("int8_batch1")?),
        Row::new("onnxruntime int8", 256, 1, figure("int8_batch256")?),
        Row::new("onnxruntime float32", 1, 1, figure("float32_batch1")?),
        Row::new("onnxruntime float32", 256, 1, figure("float32_batch256")?),
    ])
}
