//! The side-by-side speed table of issue 7: qcnn's int8 engine (batch 1 and the batch
//! `qcnn evaluate` runs, 1 and 2 threads each), tract on the float32 ONNX export, and
//! onnxruntime (int8 and float32, batch 1 and 256), all over the 10,000 test images, in one
//! run, as ratios to onnxruntime's int8 batch-1 figure.
//!
//! The machine is shared and noisy, so every engine is measured `--repeats` times per round,
//! the rounds interleave the engines, and each engine's figure is the median over the rounds
//! of its best try in each: every engine gets the same number of tries. Run it through `bash bench/compare.sh`, which builds the
//! blob and the onnxruntime venv first. The rows and the table are in `src/lib.rs`.
//!
//! Built without the `tract` feature (`--no-default-features`, as `scripts/test.sh tiers` does
//! for `--smoke`), the tract rows and the smoke check's class agreement are left out, and the
//! table refuses to run rather than print a table without tract's row.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
#[cfg(feature = "tract")]
use std::time::Instant;

use anyhow::{Context, Result, bail, ensure};
use clap::Parser;
use qcnn_bench::{Row, keep_best, median_of_rounds, table};
use qcnn_config::config::Config;
use qcnn_core::{KernelTier, Model, PreparedModel};
use qcnn_dataset::{FashionMnist, LabeledImages};
use qcnn_host::inference::first_images;
use qcnn_quantize::int8_runner::{self, BATCH, Workers};
#[cfg(feature = "tract")]
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
    #[arg(long, default_value = ".venv/bin/python")]
    python: PathBuf,
    /// bench/onnxruntime_peer.py.
    #[arg(long, default_value = "bench/onnxruntime_peer.py")]
    peer_script: PathBuf,
    #[arg(long, default_value = "config.yaml")]
    config: PathBuf,
    /// Rounds; each engine's median round is reported.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Measurements of every engine in each round, back to back.
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    /// No timing: check that the engines the table measures run and agree (see [`smoke`]) on
    /// this many test images, then exit; onnxruntime is not needed (the test command's check).
    #[arg(long, value_name = "IMAGES")]
    smoke: Option<usize>,
}

/// The (batch, threads) configurations of qcnn's rows.
const QCNN_CONFIGS: [(usize, usize); 4] = [(1, 1), (1, 2), (BATCH, 1), (BATCH, 2)];

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
    #[cfg(not(feature = "tract"))]
    if args.smoke.is_none() {
        bail!("built without the `tract` feature: the table needs tract's row (only --smoke runs)");
    }
    let config =
        Config::load(&args.config).with_context(|| format!("reading {}", args.config.display()))?;
    let dataset = FashionMnist::load(&config.data.search_dirs(None))?;
    let test = &dataset.test;
    let blob =
        std::fs::read(&args.model).with_context(|| format!("reading {}", args.model.display()))?;
    let model =
        Model::from_bytes(&blob).with_context(|| format!("loading {}", args.model.display()))?;
    #[cfg(feature = "tract")]
    let tract = TractFloat::load(&args.onnx)?;
    if let Some(count) = args.smoke {
        #[cfg(feature = "tract")]
        return smoke(&model, Some(&tract), test, count);
        #[cfg(not(feature = "tract"))]
        return smoke(&model, None, test, count);
    }
    // Kernels chosen once, as `qcnn evaluate` does; QCNN_KERNEL_TIER forces a tier.
    let model = PreparedModel::new(model).context("choosing qcnn's kernel tier")?;
    let tiers = tier_line(model.tier());
    let images_gz = dataset.dir.join("t10k-images-idx3-ubyte.gz");

    let mut rounds: Vec<Vec<Row>> = Vec::new();
    for round in 0..args.rounds.max(1) {
        let mut best: Vec<Row> = Vec::new();
        eprintln!("compare: round {}/{}", round + 1, args.rounds.max(1));
        let repeats = args.repeats.max(1);
        for _ in 0..repeats {
            let mut rows = Vec::new();
            for (batch, threads) in QCNN_CONFIGS {
                let count = test.len();
                let images = first_images(test, count);
                let workers = (Workers::Exactly(threads), batch);
                let logits = int8_runner::run(&model, &images, workers, &|_| {})?;
                rows.push(Row::new("qcnn int8", batch, threads, logits.images_per_s()));
            }
            #[cfg(feature = "tract")]
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

/// The bench's engines on the first `count` test images, without timing: every kernel tier
/// this CPU supports, in every configuration of qcnn's rows, gives the same logits, bit for
/// bit; and tract's float32 model picks the same class as qcnn's int8 one for at least 95% of
/// the images (quantization moves a few borderline ones). Fails on the first difference.
/// Without tract (`None`: built without the feature) the agreement is said to be not checked.
fn smoke(
    model: &Model<'_>,
    tract: Option<&TractFloat>,
    test: &LabeledImages,
    count: usize,
) -> Result<()> {
    let count = count.clamp(1, test.len());
    let images = first_images(test, count);
    let mut reference: Option<(String, Vec<i8>)> = None;
    let mut ran = Vec::new();
    for tier in KernelTier::supported() {
        let prepared = PreparedModel::with_tier(model.clone(), tier)?;
        for (batch, threads) in QCNN_CONFIGS {
            let label = format!("tier {tier}, batch {batch}, {threads} threads");
            let logits = int8_runner::run(
                &prepared,
                &images,
                (Workers::Exactly(threads), batch),
                &|_| {},
            )
            .with_context(|| format!("qcnn, {label}"))?
            .logits;
            match &reference {
                None => reference = Some((label, logits)),
                Some((first, expected)) => {
                    if let Some(i) = (0..count).find(|&i| {
                        let at = i * model.num_classes()..(i + 1) * model.num_classes();
                        logits[at.clone()] != expected[at]
                    }) {
                        bail!("qcnn logits of image {i} differ between {first} and {label}");
                    }
                }
            }
        }
        ran.push(tier.name());
    }
    let Some((_, expected)) = reference else {
        bail!("no kernel tier ran");
    };
    let identical = format!(
        "bench smoke on {count} test images: qcnn tiers {} in every (batch, threads) of \
         {QCNN_CONFIGS:?} give identical logits",
        ran.join(", ")
    );
    let Some(tract) = tract else {
        println!("{identical}; tract float32 not checked (built without the `tract` feature)");
        return Ok(());
    };
    let tract_classes = tract.classes(test, count)?;
    let agree = expected
        .chunks(model.num_classes())
        .zip(&tract_classes)
        .filter(|&(logits, &class)| argmax(logits) == class)
        .count();
    println!("{identical}; tract float32 picks qcnn's class for {agree} of {count}");
    ensure!(
        agree * 100 >= count * 95,
        "tract float32 and qcnn int8 agree on only {agree} of {count} images"
    );
    Ok(())
}

/// The index of the largest value (the first, on ties).
fn argmax<T: PartialOrd + Copy>(values: &[T]) -> usize {
    (0..values.len())
        .reduce(|best, i| if values[i] > values[best] { i } else { best })
        .unwrap_or(0)
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

/// tract's optimized plan of the float32 export, batch 1 (an empty stand-in without the
/// `tract` feature, never built).
#[cfg(feature = "tract")]
struct TractFloat {
    plan: std::sync::Arc<TypedRunnableModel>,
}

#[cfg(not(feature = "tract"))]
enum TractFloat {}

#[cfg(not(feature = "tract"))]
impl TractFloat {
    fn classes(&self, _: &LabeledImages, _: usize) -> Result<Vec<usize>> {
        match *self {}
    }
}

#[cfg(feature = "tract")]
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

    /// The class tract picks for each of the first `count` images.
    fn classes(&self, images: &LabeledImages, count: usize) -> Result<Vec<usize>> {
        let inputs = Self::inputs(images, count)?;
        let mut classes = Vec::with_capacity(inputs.len());
        for input in inputs {
            let outputs = self
                .plan
                .run(tvec!(input.into()))
                .map_err(|e| anyhow::anyhow!("tract: {e:#}"))?;
            let scores = outputs[0]
                .as_slice::<f32>()
                .map_err(|e| anyhow::anyhow!("tract's output: {e:#}"))?;
            classes.push(argmax(scores));
        }
        Ok(classes)
    }

    /// The first `count` images as tract's input tensors (pixel/255, as the float model saw).
    fn inputs(images: &LabeledImages, count: usize) -> Result<Vec<Tensor>> {
        (0..count.min(images.len()))
            .map(|i| {
                let pixels: Vec<f32> = images
                    .image(i)
                    .iter()
                    .map(|&p| f32::from(p) / 255.0)
                    .collect();
                Tensor::from_shape(&[1, 1, 28, 28], &pixels)
            })
            .collect::<TractResult<_>>()
            .map_err(|e| anyhow::anyhow!("{e:#}"))
    }

    fn images_per_s(&self, images: &LabeledImages) -> Result<f64> {
        let inputs = Self::inputs(images, images.len())?;
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
