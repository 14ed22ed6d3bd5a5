//! Prepares what the firmware embeds, so that the firmware itself only reads constants:
//! - `memory.x` for the board of the target (mps2-an386 for thumbv7em, micro:bit for thumbv6m);
//! - `model.qcnn`: the blob named by `QCNN_BLOB`, and `qcnn_model.rs`: its figures for this
//!   target's kernels (`ARENA_LEN`, which the static arena is declared with), written by
//!   qcnn-build after checking the blob with qcnn-core's own loader;
//! - `images.bin`: the first `QCNN_IMAGE_COUNT` (default 100) FashionMNIST test images, raw u8,
//!   from `QCNN_IMAGES` or the `data.dirs` of `../config.yaml` (read with qcnn-config), checked
//!   against the canonical SHA-256.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use qcnn_config::Config;
use qcnn_dataset::checksum::TEST_IMAGES;
use qcnn_dataset::{IMAGE_BYTES, idx};

/// The project's config, whose `data.dirs` are searched for the test images.
const CONFIG: &str = "../config.yaml";
const DEFAULT_IMAGE_COUNT: usize = 100;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let out_dir = PathBuf::from(env::var("OUT_DIR").map_err(|e| format!("OUT_DIR: {e}"))?);
    write_memory_x(&out_dir)?;
    embed_blob(&out_dir)?;
    let image_count = embed_images(&out_dir)?;

    let facts = format!(
        "/// Test images embedded, from test image 0 on.\n\
         pub const IMAGE_COUNT: usize = {image_count};\n\
         /// Bytes in one u8 test image.\n\
         pub const IMAGE_BYTES: usize = {IMAGE_BYTES};\n"
    );
    write(&out_dir.join("embedded_facts.rs"), facts.as_bytes())
}

/// The board follows the target: the thumbv6m build is for the 256 KiB micro:bit.
fn write_memory_x(out_dir: &Path) -> Result<(), String> {
    let target = env::var("TARGET").map_err(|e| format!("TARGET: {e}"))?;
    let board = if target.starts_with("thumbv6m") {
        "boards/microbit.x"
    } else {
        "boards/mps2-an386.x"
    };
    println!("cargo::rerun-if-changed={board}");
    let layout = fs::read(board).map_err(|e| format!("reading {board}: {e}"))?;
    write(&out_dir.join("memory.x"), &layout)?;
    // cortex-m-rt's `device` feature includes `device.x`, where a PAC would name its interrupt
    // handlers; this firmware enables none (src/interrupts.rs).
    write(
        &out_dir.join("device.x"),
        b"/* no device interrupts: see src/interrupts.rs */\n",
    )?;
    println!("cargo::rustc-link-search={}", out_dir.display());
    Ok(())
}

/// Copies the blob next to the generated code, and has qcnn-build check it and write its
/// figures (`ARENA_LEN` for this target's kernels, ...) to `qcnn_model.rs`.
fn embed_blob(out_dir: &Path) -> Result<(), String> {
    println!("cargo::rerun-if-env-changed=QCNN_BLOB");
    let path = env::var("QCNN_BLOB").map_err(|_| {
        "QCNN_BLOB is not set: point it at the .qcnn model to embed \
         (e.g. QCNN_BLOB=$PWD/../out/model.qcnn, made by qcnn-quantize)"
            .to_owned()
    })?;
    println!("cargo::rerun-if-changed={path}");
    let blob = fs::read(&path).map_err(|e| format!("reading QCNN_BLOB {path}: {e}"))?;
    // A graph blob in a build without the graph engine would only fail at load, on the device.
    let version = blob.get(4..6).map(|v| u16::from_le_bytes([v[0], v[1]]));
    if matches!(version, Some(2 | 4)) && env::var_os("CARGO_FEATURE_GRAPH").is_none() {
        return Err(format!(
            "QCNN_BLOB {path}: a graph model (format version {}) needs the graph engine: \
             build with --features graph",
            version.unwrap_or_default()
        ));
    }
    write(&out_dir.join("model.qcnn"), &blob)?;
    qcnn_build::emit(&path).map_err(|e| format!("QCNN_BLOB {e}"))?;
    Ok(())
}

fn embed_images(out_dir: &Path) -> Result<usize, String> {
    println!("cargo::rerun-if-env-changed=QCNN_IMAGES");
    println!("cargo::rerun-if-env-changed=QCNN_IMAGE_COUNT");
    let count = match env::var("QCNN_IMAGE_COUNT") {
        Ok(text) => text
            .parse::<usize>()
            .map_err(|e| format!("QCNN_IMAGE_COUNT={text}: {e}"))?,
        Err(_) => DEFAULT_IMAGE_COUNT,
    };
    let path = images_path()?;
    println!("cargo::rerun-if-changed={}", path.display());
    let bytes = fs::read(&path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    TEST_IMAGES
        .verify(&path, &bytes, idx::is_gzip(&bytes))
        .map_err(|e| e.to_string())?;
    let pixels = idx::parse_images(
        &path,
        &idx::decompress(&path, bytes).map_err(|e| e.to_string())?,
    )
    .map_err(|e| e.to_string())?;
    let available = pixels.len() / IMAGE_BYTES;
    if count == 0 || count > available {
        return Err(format!(
            "QCNN_IMAGE_COUNT={count}: {} holds {available} images",
            path.display()
        ));
    }
    write(&out_dir.join("images.bin"), &pixels[..count * IMAGE_BYTES])?;
    Ok(count)
}

/// `QCNN_IMAGES`, else the test images file in the first configured data directory holding one.
fn images_path() -> Result<PathBuf, String> {
    if let Ok(path) = env::var("QCNN_IMAGES") {
        return Ok(PathBuf::from(path));
    }
    println!("cargo::rerun-if-changed={CONFIG}");
    let config = Config::load(Path::new(CONFIG)).map_err(|e| format!("{e}"))?;
    let dirs = &config.data.dirs;
    dirs.iter()
        .flat_map(|dir| {
            [
                dir.join(format!("{}.gz", TEST_IMAGES.name)),
                dir.join(TEST_IMAGES.name),
            ]
        })
        .find(|path| path.is_file())
        .ok_or_else(|| {
            let searched: Vec<_> = dirs.iter().map(|d| d.display().to_string()).collect();
            format!(
                "no {} in {}; set QCNN_IMAGES",
                TEST_IMAGES.name,
                searched.join(", ")
            )
        })
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), String> {
    fs::write(path, bytes).map_err(|e| format!("writing {}: {e}", path.display()))
}
