//! `train-small`: trains the small CNN of `firmware/m0-config.yaml` (any config's model, in
//! fact) so that the Cortex-M0+ build runs a real model rather than random weights.
//! The architecture and data come from the project's own config and dataset crates; the
//! result is a float safetensors checkpoint that `qcnn-quantize` reads like PyTorch's.

mod cli;
mod network;

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use qcnn_config::config::Config;
use qcnn_dataset::{FashionMnist, LabeledImages, Split};

use cli::Cli;
use network::{Adam, Network};

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    let config =
        Config::load(&cli.config).with_context(|| format!("loading {}", cli.config.display()))?;
    let output = cli
        .output
        .clone()
        .unwrap_or_else(|| config.checkpoint.path.clone());
    let data = FashionMnist::load(&config.data.dirs).context("loading FashionMNIST")?;
    let s = config.data.split;
    let split = data.split(s.train, s.validation, s.seed)?;
    let train = data.train.select(&split.train);
    let validation = data.train.select(&split.validation);

    let mut network = Network::new(&config.architecture()?, cli.seed)?;
    let mut adam = Adam::new(cli.learning_rate as f32);
    let batch = cli.batch as usize;
    for epoch in 0..cli.epochs {
        // A fresh permutation per epoch, from the dataset crate's seeded shuffle.
        let order = Split::new(
            train.len(),
            train.len(),
            0,
            cli.seed.wrapping_add(u64::from(epoch)),
        )?
        .train;
        let mut loss_sum = 0.0;
        for chunk in order.chunks(batch) {
            for &i in chunk {
                loss_sum += network.accumulate(&pixels(&train, i), usize::from(train.label(i)));
            }
            adam.step(&mut network, chunk.len());
        }
        let accuracy = accuracy(&network, &validation);
        println!(
            "epoch {} loss {:.4} validation_accuracy {:.4}",
            epoch + 1,
            loss_sum / train.len() as f32,
            accuracy
        );
    }
    network.save(&output)?;
    println!("wrote {}", output.display());
    Ok(ExitCode::SUCCESS)
}

/// Image `i` as f32 of pixel/255 (PyTorch's `ToTensor()`).
fn pixels(set: &LabeledImages, i: usize) -> Vec<f32> {
    set.image(i).iter().map(|&p| f32::from(p) / 255.0).collect()
}

fn accuracy(network: &Network, set: &LabeledImages) -> f64 {
    let correct = (0..set.len())
        .filter(|&i| {
            let logits = network.forward(&pixels(set, i));
            let predicted = (0..logits.len())
                .fold(0, |best, j| if logits[j] > logits[best] { j } else { best });
            predicted == usize::from(set.label(i))
        })
        .count();
    correct as f64 / set.len() as f64
}
