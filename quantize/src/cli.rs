use std::path::PathBuf;

use clap::Parser;

/// Quantize a float PyTorch checkpoint into an int8 `.qcnn` model blob.
///
/// The architecture, calibration settings and data split come from the config file.
/// Calibration uses training images only; the report's accuracy is on the validation split.
#[derive(Debug, Parser)]
#[command(name = "qcnn-quantize", version)]
pub struct Cli {
    /// The float checkpoint: a PyTorch `state_dict` (.pth, zip format) or a .safetensors file.
    pub checkpoint: PathBuf,

    /// Where to write the int8 model blob.
    #[arg(short, long, value_name = "MODEL.qcnn")]
    pub output: PathBuf,

    /// The configuration file; relative paths in it are resolved against its directory.
    #[arg(long, value_name = "FILE", default_value = "config.yaml")]
    pub config: PathBuf,

    /// Also write the report as JSON to this file.
    #[arg(long, value_name = "REPORT.json")]
    pub report: Option<PathBuf>,

    /// Also write the blob as C source for the C API (`capi/`): `DIR/model_data.c` (the blob
    /// as an aligned `const uint8_t[]`) and `DIR/model_data.h` (its length and the arena it
    /// needs as `#define`s). DIR is created if missing.
    #[arg(long, value_name = "DIR")]
    pub emit_c: Option<PathBuf>,

    /// A RAM budget for the activation arena, in bytes: the report's `plan` is then the fastest
    /// schedule within it (streaming the early layers' rows instead of writing their whole
    /// maps, which costs instructions), and the command fails, writing nothing, if the model
    /// cannot run in it with the Cortex-M4 or the portable kernels.
    #[arg(long, value_name = "BYTES")]
    pub max_arena: Option<usize>,

    /// Read FashionMNIST from this directory instead of the config's `data.dirs`.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}
