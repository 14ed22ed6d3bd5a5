mod cli;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use clap::Parser;
use qcnn_config::config::Config;
use qcnn_dataset::FashionMnist;
use qcnn_quantize::emit_c::{self, ModelDataFiles, model_data_files};
use qcnn_quantize::output;
use qcnn_quantize::pipeline::quantize_checkpoint;

use crate::cli::Cli;

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(err) => {
            eprintln!("qcnn-quantize: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    let start = Instant::now();
    let config = Config::load(&cli.config)?;
    // Before any work: a destination that cannot be written fails now, not after the run.
    let mut outputs = vec![cli.output.as_path()];
    outputs.extend(cli.report.as_deref());
    output::check(&outputs)?;
    let clock = Instant::now();
    let dirs = config.data.search_dirs(cli.data_dir.as_deref());
    let data = FashionMnist::load(&dirs).context("loading FashionMNIST")?;
    let load_data = clock.elapsed().as_secs_f64();
    let checkpoint = cli.checkpoint.as_deref().unwrap_or(&config.checkpoint.path);
    let mut quantized = quantize_checkpoint(&config, checkpoint, &data)
        .with_context(|| format!("quantizing {}", checkpoint.display()))?;
    if let Some(budget) = cli.max_arena {
        let model = qcnn_core::Model::from_bytes(&quantized.blob)?;
        quantized.report.plan = qcnn_quantize::plan::Plans::within(&model, budget)
            .map_err(|e| anyhow::anyhow!("--max-arena {budget}: {e}"))?;
    }
    if let Some(auto) = &quantized.report.calibration.auto {
        eprint!("{}", qcnn_quantize::auto_calibration::table(auto));
    }
    let report = &mut quantized.report;
    report.seconds.load_data = Some(load_data);
    report.seconds.total = Some(start.elapsed().as_secs_f64());

    let json = serde_json::to_vec_pretty(report)?;
    let mut files = vec![(cli.output.as_path(), quantized.blob.as_slice())];
    if let Some(path) = &cli.report {
        files.push((path.as_path(), json.as_slice()));
    }
    let model_data = match &cli.emit_c {
        Some(dir) => Some(emit_c(dir, &quantized.blob)?),
        None => None,
    };
    if let Some((source_path, header_path, data)) = &model_data {
        files.push((source_path.as_path(), data.source.as_bytes()));
        files.push((header_path.as_path(), data.header.as_bytes()));
    }
    output::write_all_or_nothing(&files)?;
    print!("{}", report.summary());
    println!("wrote       {}", cli.output.display());
    if let Some((source_path, header_path, _)) = &model_data {
        println!("wrote       {}", source_path.display());
        println!("wrote       {}", header_path.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// The `--emit-c` files' paths in `dir` (created if missing) and contents.
fn emit_c(dir: &Path, blob: &[u8]) -> anyhow::Result<(PathBuf, PathBuf, ModelDataFiles)> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let data = model_data_files(blob).context("the quantized blob does not load")?;
    Ok((
        dir.join(emit_c::SOURCE_NAME),
        dir.join(emit_c::HEADER_NAME),
        data,
    ))
}
