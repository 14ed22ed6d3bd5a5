//! `train-small`: trains the small CNN of `firmware/m0-config.yaml` (any config's model, in
//! fact) so that the Cortex-M0+ build runs a real model rather than random weights.
//! The architecture and data come from the project's own config and dataset crates; the
//! result is a float safetensors checkpoint that `qcnn-quantize` reads like PyTorch's.

mod cli;
mod network;

use std::process::ExitCode;

use anyhow::Context;
use candle_core::{DType, Device, Tensor};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use clap::Parser;
use qcnn_config::config::Config;
use qcnn_dataset::{FashionMnist, IMAGE_BYTES, LabeledImages, Split};

use cli::Cli;
use network::Network;

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

    let device = Device::Cpu;
    let network = Network::new(&config.architecture()?, cli.seed, &device)?;
    let mut optimizer = AdamW::new(
        network.variables(),
        ParamsAdamW {
            lr: cli.learning_rate,
            weight_decay: 0.0,
            ..ParamsAdamW::default()
        },
    )?;
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
            let (images, labels) = batch_tensors(&train, chunk, &device)?;
            let loss = candle_nn::loss::cross_entropy(&network.forward(&images)?, &labels)?;
            optimizer.backward_step(&loss)?;
            loss_sum += loss.to_scalar::<f32>()? * chunk.len() as f32;
        }
        let accuracy = accuracy(&network, &validation, &device)?;
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

/// Images as `N×1×H×W` f32 of pixel/255 (PyTorch's `ToTensor()`), labels as u32.
fn batch_tensors(
    set: &LabeledImages,
    indices: &[usize],
    device: &Device,
) -> anyhow::Result<(Tensor, Tensor)> {
    let pixels: Vec<f32> = indices
        .iter()
        .flat_map(|&i| set.image(i).iter().map(|&p| f32::from(p) / 255.0))
        .collect();
    let side = (IMAGE_BYTES as f64).sqrt() as usize;
    let images = Tensor::from_vec(pixels, (indices.len(), 1, side, side), device)?;
    let labels: Vec<u32> = indices.iter().map(|&i| u32::from(set.label(i))).collect();
    Ok((images, Tensor::new(labels, device)?))
}

fn accuracy(network: &Network, set: &LabeledImages, device: &Device) -> anyhow::Result<f64> {
    let all: Vec<usize> = (0..set.len()).collect();
    let mut correct = 0usize;
    for chunk in all.chunks(1000) {
        let (images, labels) = batch_tensors(set, chunk, device)?;
        let predicted = network.forward(&images)?.argmax(1)?;
        correct += predicted
            .eq(&labels)?
            .to_dtype(DType::U32)?
            .sum_all()?
            .to_scalar::<u32>()? as usize;
    }
    Ok(correct as f64 / set.len() as f64)
}
