//! qcnn-build: a `.qcnn` model's memory figures as Rust constants, for a firmware's build
//! script, so that the arena is sized at compile time and one too small fails to compile.
//!
//! In the firmware's `build.rs` (with `qcnn-build` as a build-dependency), in `fn main`:
//!
//! ```no_run
//! qcnn_build::emit("model.qcnn").unwrap_or_else(|e| panic!("{e}"));
//! ```
//!
//! and in the firmware:
//!
//! ```ignore
//! include!(concat!(env!("OUT_DIR"), "/qcnn_model.rs"));
//! static mut ARENA: [u8; ARENA_LEN] = [0; ARENA_LEN]; // sized from the model
//! // Or check an arena sized otherwise (shared with other work, say): this line fails to
//! // compile, naming the model's need, when 8192 bytes are too few.
//! assert_arena_fits!(8192);
//! ```
//!
//! The figures are for the kernels of the target being built (`TARGET`, which Cargo gives
//! build scripts): a Cortex-M4 (`thumbv7em`) takes more scratch for its DSP kernels than a
//! Cortex-M0. The blob is checked with `qcnn-core`'s own loader, so a corrupt model fails the
//! build too.
//!
//! `ARENA_LEN` is the fastest schedule's arena (every layer writes its whole map) unless the
//! environment variable `QCNN_MAX_ARENA` gives a budget: a number of bytes, or `min` for the
//! least arena the model runs in. Then it is the arena of the fastest schedule within that
//! budget, which streams the early layers (`Model::schedule_within`); a budget no schedule
//! fits fails the build, naming the least arena. `MIN_ARENA_LEN` and `WHOLE_ARENA_LEN` are
//! written either way.

use std::fmt;
use std::path::{Path, PathBuf};

use qcnn_core::{Kernels, Model, ModelError};

/// Name of the file [`emit`] writes in `OUT_DIR`.
pub const FILE_NAME: &str = "qcnn_model.rs";

/// Why the constants could not be written.
#[derive(Debug)]
pub enum BuildError {
    /// An environment variable Cargo sets for build scripts is missing.
    Env(&'static str),
    /// `QCNN_MAX_ARENA` is neither a number nor `min`.
    MaxArena(String),
    /// No schedule of the model fits the budget.
    ArenaBudget {
        path: PathBuf,
        budget: usize,
        min: usize,
    },
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    Model {
        path: PathBuf,
        source: ModelError,
    },
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Env(name) => write!(f, "{name} is not set (run from a build script)"),
            Self::MaxArena(text) => write!(
                f,
                "QCNN_MAX_ARENA={text}: expected a number of bytes or `min`"
            ),
            Self::ArenaBudget { path, budget, min } => write!(
                f,
                "{}: QCNN_MAX_ARENA={budget} is less than the least arena the model runs in ({min} bytes)",
                path.display()
            ),
            Self::Read { path, source } => write!(f, "reading {}: {source}", path.display()),
            Self::Model { path, source } => write!(f, "{}: {source}", path.display()),
            Self::Write { path, source } => write!(f, "writing {}: {source}", path.display()),
        }
    }
}

impl std::error::Error for BuildError {}

/// For a build script: checks the blob at `blob_path`, writes [`rust_source`] for the
/// target being built to `$OUT_DIR/qcnn_model.rs` and tells Cargo to rerun when the blob
/// changes. Returns the path written.
pub fn emit(blob_path: impl AsRef<Path>) -> Result<PathBuf, BuildError> {
    let blob_path = blob_path.as_ref();
    println!("cargo::rerun-if-changed={}", blob_path.display());
    println!("cargo::rerun-if-env-changed=QCNN_MAX_ARENA");
    let budget = match std::env::var("QCNN_MAX_ARENA") {
        Err(_) => None,
        Ok(text) if text.trim().is_empty() => None,
        Ok(text) if text.trim() == "min" => Some(0),
        Ok(text) => Some(
            text.trim()
                .parse()
                .map_err(|_| BuildError::MaxArena(text))?,
        ),
    };
    let target = std::env::var("TARGET").map_err(|_| BuildError::Env("TARGET"))?;
    let out_dir = std::env::var_os("OUT_DIR").ok_or(BuildError::Env("OUT_DIR"))?;
    let blob = std::fs::read(blob_path).map_err(|source| BuildError::Read {
        path: blob_path.to_owned(),
        source,
    })?;
    let kernels = Kernels::for_target(&target);
    let source = rust_source_within(&blob, kernels, budget)
        .map_err(|source| BuildError::Model {
            path: blob_path.to_owned(),
            source,
        })?
        .map_err(|(budget, min)| BuildError::ArenaBudget {
            path: blob_path.to_owned(),
            budget,
            min,
        })?;
    let path = Path::new(&out_dir).join(FILE_NAME);
    std::fs::write(&path, source).map_err(|source| BuildError::Write {
        path: path.clone(),
        source,
    })?;
    Ok(path)
}

/// The constants for `blob` run by `kernels`: `ARENA_LEN`, `INPUT_LEN`, `NUM_CLASSES`,
/// `MACS`, and the `assert_arena_fits!` macro. Fails if the blob does not load.
pub fn rust_source(blob: &[u8], kernels: Kernels) -> Result<String, ModelError> {
    Ok(rust_source_within(blob, kernels, None)?.unwrap_or_default())
}

/// [`rust_source`] with `ARENA_LEN` for the fastest schedule within `budget` bytes (`Some(0)`:
/// the least arena); `Ok(Err((budget, least arena)))` if none fits.
#[allow(clippy::type_complexity)]
pub fn rust_source_within(
    blob: &[u8],
    kernels: Kernels,
    budget: Option<usize>,
) -> Result<Result<String, (usize, usize)>, ModelError> {
    let model = Model::from_bytes(blob)?;
    let whole = model.arena_len_for(kernels);
    let min = model.min_arena_len_for(kernels);
    let (arena, streamed) = match budget {
        None => (whole, 0),
        Some(0) => (min, model.schedule_within(kernels, 0).streamed_pairs()),
        Some(budget) => match model.schedule_for_arena(kernels, budget) {
            Some(schedule) => (schedule.arena_len, schedule.streamed_pairs()),
            None => return Ok(Err((budget, min))),
        },
    };
    Ok(Ok(format!(
        "// Written by qcnn-build from a {blob_len}-byte .qcnn blob, for the {kernels:?} kernels.\n\
         /// Bytes of arena the static arena is sized with: input, output and kernel scratch of\n\
         /// the largest step of the schedule chosen ({streamed} layer pairs streamed).\n\
         pub const ARENA_LEN: usize = {arena};\n\
         /// The least arena the model runs in (its early layers streamed).\n\
         pub const MIN_ARENA_LEN: usize = {min};\n\
         /// The fastest schedule's arena (every layer writes its whole map).\n\
         pub const WHOLE_ARENA_LEN: usize = {whole};\n\
         /// Bytes in one input image.\n\
         pub const INPUT_LEN: usize = {input};\n\
         /// Number of int8 logits.\n\
         pub const NUM_CLASSES: usize = {classes};\n\
         /// Multiply-accumulates per inference.\n\
         pub const MACS: u64 = {macs};\n\
         /// Fails to compile unless an arena of `$len` bytes holds `ARENA_LEN`.\n\
         #[allow(unused_macros)]\n\
         macro_rules! assert_arena_fits {{\n\
         \x20   ($len:expr) => {{\n\
         \x20       const _: () = assert!(\n\
         \x20           $len >= ARENA_LEN,\n\
         \x20           \"the arena is smaller than the model's ARENA_LEN ({arena} bytes)\"\n\
         \x20       );\n\
         \x20   }};\n\
         }}\n",
        blob_len = blob.len(),
        input = model.input_len(),
        classes = model.num_classes(),
        macs = model.macs(),
    )))
}
