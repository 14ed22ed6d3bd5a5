use std::path::PathBuf;

use clap::Parser;

/// Trains the CNN a config.yaml describes on the FashionMNIST training split and writes its
/// float checkpoint as safetensors, with PyTorch's `nn.Sequential` key names.
#[derive(Debug, Parser)]
#[command(name = "train-small", version)]
pub struct Cli {
    /// The config whose `model` is trained and whose `data` is read.
    #[arg(long)]
    pub config: PathBuf,
    /// Where to write the checkpoint [default: the config's `checkpoint.path`].
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Passes over the training split.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    pub epochs: u32,
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..))]
    pub batch: u32,
    /// Adam's learning rate.
    #[arg(long, default_value_t = 2e-3)]
    pub learning_rate: f64,
    /// Seeds the weight initialisation and the order of the training images.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
}
