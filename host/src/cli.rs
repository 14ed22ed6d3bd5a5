//! The `qcnn` command line.

use std::num::NonZeroUsize;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// qcnn's host harness: evaluate int8 FashionMNIST models and keep the results on record.
///
/// Results go to PostgreSQL (or Greenplum) when --database-url or the environment variable
/// named by config.yaml's database.url_env (DATABASE_URL) holds a postgres:// URL; otherwise
/// to the embedded SQLite file database.sqlite_path, created and seeded on first use.
#[derive(Debug, Parser)]
#[command(name = "qcnn", version)]
pub struct Cli {
    /// The configuration: architecture, data directories, quantization, gate, database.
    #[arg(long, global = true, default_value = "config.yaml")]
    pub config: PathBuf,

    /// postgres://user:password@host/db (sslmode=require|verify-ca|verify-full and
    /// sslrootcert=PATH are honoured) or sqlite:PATH. Prefer the environment variable, which
    /// keeps the password out of the process list.
    #[arg(long, global = true, value_name = "URL")]
    pub database_url: Option<String>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a model over the 10,000 test images, print its scores, record them and apply the gate.
    Evaluate(EvaluateArgs),
    /// Print the int8 prediction and logits of the first test images, as the firmware does.
    Predict(PredictArgs),
    /// List recorded evaluations, newest first.
    Results(ResultsArgs),
    /// Print a model's arena plan: per node its op, shapes, MACs, where its tensors sit in
    /// the arena and when they die, and the peak.
    Profile(ProfileArgs),
    /// Manage the database.
    #[command(subcommand)]
    Db(DbCommand),
}

#[derive(Debug, Args)]
pub struct EvaluateArgs {
    /// A .qcnn blob, or a float checkpoint (.pth, .safetensors) to quantize with config.yaml's
    /// settings and to run as the float reference too. Default: the newest model_weights row.
    #[arg(long, value_name = "PATH", conflicts_with = "model_id")]
    pub model: Option<PathBuf>,

    /// Evaluate this model_weights row.
    #[arg(long, value_name = "ID")]
    pub model_id: Option<i64>,

    /// Worker threads, each with its own arena. Default: every core.
    #[arg(long, value_name = "N")]
    pub threads: Option<NonZeroUsize>,

    /// Print one JSON object instead of tables.
    #[arg(long)]
    pub json: bool,

    /// Read the dataset from DIR instead of config.yaml's data.dirs.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Evaluate only the first N test images: for quick checks and tests. The result is
    /// recorded (with its sample count) and gated like a full run.
    #[arg(long, value_name = "N")]
    pub limit: Option<NonZeroUsize>,
}

#[derive(Debug, Args)]
pub struct PredictArgs {
    /// A .qcnn blob, or a float checkpoint to quantize first.
    #[arg(long, value_name = "PATH")]
    pub model: PathBuf,

    /// How many test images, from index 0.
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub first: usize,

    /// Read the dataset from DIR instead of config.yaml's data.dirs.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ProfileArgs {
    /// A .qcnn blob, or a float checkpoint to quantize first.
    #[arg(long, value_name = "PATH")]
    pub model: PathBuf,

    /// Whose scratch to plan with: a Cortex-M4/M7's DSP kernels or the portable ones
    /// (Cortex-M0, hosts).
    #[arg(long, value_enum, default_value_t = ProfileKernels::CortexM4)]
    pub kernels: ProfileKernels,

    /// Plan the fastest schedule within this many bytes of arena (streaming the early
    /// layers where their whole maps do not fit) instead of the fastest one; `0` plans the
    /// least arena the model runs in.
    #[arg(long, value_name = "BYTES")]
    pub max_arena: Option<usize>,

    /// Print the plan as JSON (as in the quantize report's `plan`).
    #[arg(long)]
    pub json: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ProfileKernels {
    CortexM4,
    Portable,
}

#[derive(Debug, Args)]
pub struct ResultsArgs {
    /// Print a JSON array instead of a table.
    #[arg(long)]
    pub json: bool,

    /// How many results, newest first.
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub limit: u32,
}

#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Create the tables that are missing; seed model_weights with the release checkpoint
    /// (config.yaml's checkpoint.path) if it is empty.
    Init,
    /// Add a model file to model_weights; it becomes the newest, which `evaluate` picks.
    AddModel {
        /// The model file (.qcnn blob, .pth or .safetensors checkpoint); it must be readable.
        path: PathBuf,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn model_and_model_id_exclude_each_other() {
        let parsed =
            Cli::try_parse_from(["qcnn", "evaluate", "--model", "m.qcnn", "--model-id", "1"]);
        assert!(parsed.is_err());
        let parsed = Cli::try_parse_from(["qcnn", "evaluate", "--threads", "0"]);
        assert!(parsed.is_err(), "zero threads is rejected while parsing");
    }
}
