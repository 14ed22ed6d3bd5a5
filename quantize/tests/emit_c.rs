//! `qcnn-quantize --emit-c DIR`: the C files hold exactly the blob written with `-o`, and their
//! defines are the loaded model's figures. (That a C compiler accepts them and the C firmware
//! runs them bit-exactly is `capi/run-tests.sh`.)

mod common;

use std::ffi::OsStr;
use std::path::Path;

use common::*;

fn quantize_with_emit_c(dir: &Path, emit_dir: &Path) -> std::process::Output {
    quantize_cli(&[
        fixture("random_init.pth").as_os_str(),
        OsStr::new("-o"),
        dir.join("model.qcnn").as_os_str(),
        OsStr::new("--config"),
        repo_config().as_os_str(),
        OsStr::new("--data-dir"),
        Path::new("/usr/share/datasets/fashion-mnist").as_os_str(),
        OsStr::new("--emit-c"),
        emit_dir.as_os_str(),
    ])
}

/// The values of every `#define NAME <value>` in `header`, in order.
fn defines(header: &str, name: &str) -> Vec<usize> {
    let prefix = format!("#define {name} ");
    header
        .lines()
        .filter_map(|line| line.strip_prefix(&prefix))
        .map(|value| value.parse().unwrap())
        .collect()
}

/// The value of the one `#define NAME <value>` in `header`.
fn define(header: &str, name: &str) -> usize {
    match defines(header, name)[..] {
        [value] => value,
        ref values => panic!("{name} defined {values:?} in\n{header}"),
    }
}

#[test]
fn model_data_holds_the_blob_and_its_figures() {
    let dir = tempfile::tempdir().unwrap();
    let emit_dir = dir.path().join("generated");
    let output = quantize_with_emit_c(dir.path(), &emit_dir);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(listing(&emit_dir), ["model_data.c", "model_data.h"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("model_data.c"), "{stdout}");

    let blob = std::fs::read(dir.path().join("model.qcnn")).unwrap();
    let model = qcnn_core::Model::from_bytes(&blob).unwrap();
    let header = std::fs::read_to_string(emit_dir.join("model_data.h")).unwrap();
    assert_eq!(define(&header, "QCNN_MODEL_DATA_LEN"), blob.len());
    // The Cortex-M4's DSP kernels take more scratch than the portable ones, the other
    // Cortex-M cores' direct loops none; the C preprocessor picks the figure of the core it
    // compiles for, in that order.
    let arenas = [
        model.arena_len_for(qcnn_core::Kernels::CortexM4Dsp),
        model.arena_len_for(qcnn_core::Kernels::Direct),
        model.arena_len_for(qcnn_core::Kernels::Portable),
    ];
    assert_eq!(defines(&header, "QCNN_MODEL_ARENA_LEN"), arenas);
    assert!(
        arenas[1] < arenas[2],
        "the direct loops take no im2col scratch: {arenas:?}"
    );
    assert!(header.contains("#if defined(__ARM_FEATURE_DSP)\n#define QCNN_MODEL_ARENA_LEN"));
    assert!(header.contains(
        "#elif defined(__ARM_ARCH_PROFILE) && __ARM_ARCH_PROFILE == 'M'\n#define QCNN_MODEL_ARENA_LEN"
    ));
    assert_eq!(define(&header, "QCNN_MODEL_INPUT_LEN"), model.input_len());
    assert_eq!(
        define(&header, "QCNN_MODEL_NUM_CLASSES"),
        model.num_classes()
    );

    let source = std::fs::read_to_string(emit_dir.join("model_data.c")).unwrap();
    assert!(
        source.contains("QCNN_MODEL_DATA_ALIGNED const uint8_t qcnn_model_data"),
        "{}",
        &source[..600]
    );
    let array = source
        .split_once("= {\n")
        .and_then(|(_, rest)| rest.split_once("};"))
        .expect("the array initializer")
        .0;
    let bytes: Vec<u8> = array
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(|item| u8::from_str_radix(item.trim_start_matches("0x"), 16).unwrap())
        .collect();
    assert!(bytes == blob, "model_data.c does not hold the blob");
}

#[test]
fn an_unwritable_emit_dir_is_named_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    // A file where the directory should be.
    let blocker = dir.path().join("generated");
    std::fs::write(&blocker, b"not a directory").unwrap();
    let output = quantize_with_emit_c(dir.path(), &blocker);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("creating {}", blocker.display())),
        "{stderr}"
    );
    assert_eq!(listing(dir.path()), ["generated"], "the blob was written");
}
