mod cli;

use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use clap::Parser;
use qcnn_dataset::FashionMnist;
use qcnn_quantize::config::Config;
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
    let mut quantized = quantize_checkpoint(&config, &cli.checkpoint, &data)
        .with_context(|| format!("quantizing {}", cli.checkpoint.display()))?;
    let report = &mut quantized.report;
    report.seconds.load_data = Some(load_data);
    report.seconds.total = Some(start.elapsed().as_secs_f64());

    let json = serde_json::to_vec_pretty(report)?;
    let mut files = vec![(cli.output.as_path(), quantized.blob.as_slice())];
    if let Some(path) = &cli.report {
        files.push((path.as_path(), json.as_slice()));
    }
    output::write_all_or_nothing(&files)?;
    print!("{}", report.summary());
    println!("wrote       {}", cli.output.display());
    Ok(ExitCode::SUCCESS)
}
