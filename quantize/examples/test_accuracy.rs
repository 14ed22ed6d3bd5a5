//! Quantizes a checkpoint with a config (default: the repository's, release checkpoint) and
//! measures float and int8 accuracy and macro-F1 on the 10,000-image TEST set, with the time
//! each engine takes. The official figures come from `qcnn evaluate`; this is the tuning loop.
//!
//! cargo run --release -p qcnn-quantize --example test_accuracy [-- CONFIG [CHECKPOINT]]

use std::path::PathBuf;
use std::time::Instant;

use qcnn_config::config::Config;
use qcnn_core::{Model, PreparedModel};
use qcnn_dataset::FashionMnist;
use qcnn_quantize::pipeline::quantize_checkpoint;
use qcnn_quantize::validate;

/// CPU seconds this process has used (user + system), which a busy machine does not inflate.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let config_path = args.next().map_or_else(
        || PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../config.yaml")),
        PathBuf::from,
    );
    let config = Config::load(&config_path)?;
    let checkpoint = args
        .next()
        .map_or_else(|| config.checkpoint.path.clone(), PathBuf::from);
    let data = FashionMnist::load(&config.data.dirs)?;
    let quantized = quantize_checkpoint(&config, &checkpoint, &data)?;
    print!("{}", quantized.report.summary());

    let images = validate::images(&data.test);
    let (clock, cpu) = (Instant::now(), cpu_seconds());
    let float = quantized.float_model.forward_all(&images);
    let float_s = (clock.elapsed().as_secs_f64(), cpu_seconds() - cpu);
    let model = Model::from_bytes(&quantized.blob)?;
    let (clock, cpu) = (Instant::now(), cpu_seconds());
    let int8 = validate::int8_logits(&PreparedModel::new(model)?, &images)?;
    let int8_s = (clock.elapsed().as_secs_f64(), cpu_seconds() - cpu);
    for (name, confusion, (wall, cpu)) in [
        (
            "float",
            validate::confusion(float.iter().map(Vec::as_slice), data.test.labels()),
            float_s,
        ),
        (
            "int8",
            validate::confusion(int8.rows(), data.test.labels()),
            int8_s,
        ),
    ] {
        println!(
            "test {name:<5} accuracy {:.2}%  macro-F1 {:.2}%  ({wall:.2}s wall, {cpu:.2}s CPU for {} images)",
            100.0 * confusion.accuracy(),
            100.0 * confusion.f1_macro(),
            images.len()
        );
    }
    println!(
        "test agreement {:.2}%",
        100.0 * validate::agreement(&float, &int8)
    );
    Ok(())
}
