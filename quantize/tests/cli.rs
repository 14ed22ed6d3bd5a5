//! The real `qcnn-quantize` binary: failures name the key and shapes, exit non-zero and leave
//! no output; success writes the blob and the report.

mod common;

use std::ffi::OsStr;
use std::path::Path;

use common::*;
use qcnn_quantize::checkpoint::Tensor;

/// Runs the CLI on a checkpoint holding `tensors` and returns (exit code, stderr, files left).
fn run_with(
    tensors: &std::collections::BTreeMap<String, Tensor>,
) -> (Option<i32>, String, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = dir.path().join("bad.safetensors");
    write_safetensors(&checkpoint, tensors);
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let output = quantize_cli(&[
        checkpoint.as_os_str(),
        OsStr::new("-o"),
        out.join("model.qcnn").as_os_str(),
        OsStr::new("--report"),
        out.join("report.json").as_os_str(),
        OsStr::new("--config"),
        repo_config().as_os_str(),
    ]);
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
        listing(&out),
    )
}

/// Runs the CLI with `config`, writing `m.qcnn` and `report.json` into `dir`, with `first`
/// before those arguments and `last` after; returns its output and the report's path.
fn quantize_into(
    dir: &Path,
    config: &Path,
    first: &[&OsStr],
    last: &[&OsStr],
) -> (std::process::Output, std::path::PathBuf) {
    let report_path = dir.join("report.json");
    let blob_path = dir.join("m.qcnn");
    let mut args = first.to_vec();
    args.extend([
        OsStr::new("-o"),
        blob_path.as_os_str(),
        OsStr::new("--report"),
        report_path.as_os_str(),
        OsStr::new("--config"),
        config.as_os_str(),
    ]);
    args.extend(last);
    (quantize_cli(&args), report_path)
}

fn assert_fails_naming(tensors: &std::collections::BTreeMap<String, Tensor>, expected: &[&str]) {
    let (code, stderr, left) = run_with(tensors);
    assert_eq!(code, Some(1), "{stderr}");
    for part in expected {
        assert!(stderr.contains(part), "{part:?} not in {stderr}");
    }
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn missing_key() {
    let mut t = random_init_tensors();
    t.remove("layers.7.bias");
    assert_fails_naming(&t, &["missing key layers.7.bias", "[256]"]);
}

#[test]
fn unexpected_key() {
    let mut t = random_init_tensors();
    t.insert(
        "layers.12.weight".into(),
        Tensor {
            shape: vec![3, 4],
            data: vec![0.5; 12],
        },
    );
    assert_fails_naming(&t, &["unexpected key layers.12.weight", "[3, 4]"]);
}

#[test]
fn wrong_shape() {
    let mut t = random_init_tensors();
    let w = t.get_mut("layers.2.weight").unwrap();
    w.shape = vec![16, 8, 9];
    assert_fails_naming(
        &t,
        &["layers.2.weight has shape [16, 8, 9], expected [16, 8, 3, 3]"],
    );
}

#[test]
fn nan_weight() {
    let mut t = random_init_tensors();
    t.get_mut("layers.10.weight").unwrap().data[17] = f32::NAN;
    assert_fails_naming(
        &t,
        &["layers.10.weight (shape [10, 256]) holds NaN at flat index 17"],
    );
}

#[test]
fn unreadable_config_and_checkpoint_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m.qcnn");
    let output = quantize_cli(&[
        fixture("random_init.pth").as_os_str(),
        OsStr::new("-o"),
        out.as_os_str(),
        OsStr::new("--config"),
        OsStr::new("/nonexistent/config.yaml"),
    ]);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("/nonexistent/config.yaml"));

    let output = quantize_cli(&[
        dir.path().join("absent.pth").as_os_str(),
        OsStr::new("-o"),
        out.as_os_str(),
        OsStr::new("--config"),
        repo_config().as_os_str(),
    ]);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("absent.pth"));
    assert!(listing(dir.path()).is_empty());
}

#[test]
fn a_wrong_data_dir_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let output = quantize_cli(&[
        fixture("random_init.pth").as_os_str(),
        OsStr::new("-o"),
        dir.path().join("m.qcnn").as_os_str(),
        OsStr::new("--config"),
        repo_config().as_os_str(),
        OsStr::new("--data-dir"),
        dir.path().as_os_str(),
    ]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&dir.path().display().to_string()),
        "{stderr}"
    );
    assert!(listing(dir.path()).is_empty());
}

#[test]
fn the_pth_fixture_quantizes_and_the_report_is_complete() {
    let dir = tempfile::tempdir().unwrap();
    let blob_path = dir.path().join("random.qcnn");
    let report_path = dir.path().join("report.json");
    let output = quantize_cli(&[
        fixture("random_init.pth").as_os_str(),
        OsStr::new("-o"),
        blob_path.as_os_str(),
        OsStr::new("--report"),
        report_path.as_os_str(),
        OsStr::new("--config"),
        repo_config().as_os_str(),
        OsStr::new("--data-dir"),
        Path::new("/usr/share/datasets/fashion-mnist").as_os_str(),
    ]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("int8") && stdout.contains("arena"),
        "{stdout}"
    );
    assert_eq!(listing(dir.path()), ["random.qcnn", "report.json"]);

    let blob = std::fs::read(&blob_path).unwrap();
    let model = qcnn_core::Model::from_bytes(&blob).unwrap();
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&report_path).unwrap()).unwrap();
    assert_eq!(report["blob"]["bytes"], blob.len());
    assert_eq!(report["blob"]["arena_bytes"], model.arena_len());
    // The arena plan, per kind of target, node by node.
    let plan = &report["plan"];
    assert_eq!(
        plan["cortex_m4"]["arena_bytes"],
        model.arena_len_for(qcnn_core::Kernels::CortexM4Dsp)
    );
    assert_eq!(
        plan["portable"]["arena_bytes"],
        model.arena_len_for(qcnn_core::Kernels::Portable)
    );
    let nodes = plan["cortex_m4"]["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), model.layers().len());
    for (node, layer) in nodes.iter().zip(model.layers()) {
        assert_eq!(node["macs"], layer.macs());
    }
    assert_eq!(
        report["blob"]["sha256"],
        qcnn_dataset::checksum::sha256_hex(&blob)
    );
    assert_eq!(report["validation"]["samples"], 10_000);
    let config = qcnn_config::config::Config::load(&repo_config()).unwrap();
    assert_eq!(
        report["calibration"]["images"],
        config.quantize.calibration_images
    );
    assert_eq!(report["layers"].as_array().unwrap().len(), 5);
    assert_eq!(report["layers"][0]["input"]["zero_point"], -128);
    assert_eq!(
        report["layers"][0]["weight_scales"]
            .as_array()
            .unwrap()
            .len(),
        8
    );
    // An untrained model is near chance on the validation split.
    let float_accuracy = report["validation"]["float"]["accuracy"].as_f64().unwrap();
    assert!(float_accuracy < 0.2, "{float_accuracy}");
    assert!(report["seconds"]["total"].as_f64().unwrap() > 0.0);
}

/// Without a positional checkpoint, the config's `checkpoint.path` is quantized; a missing one
/// is named, with the config it came from resolved against.
#[test]
fn the_checkpoint_defaults_to_the_configs() {
    let dir = tempfile::tempdir().unwrap();
    let repo_data = repo_config()
        .parent()
        .unwrap()
        .join("data/FashionMNIST/raw");
    let text = std::fs::read_to_string(repo_config())
        .unwrap()
        .replace(
            "path: checkpoints/CNNModel_FashionMNIST_best_metric_model.pth",
            &format!("path: {}", fixture("random_init.pth").display()),
        )
        .replace(
            "- data/FashionMNIST/raw",
            &format!("- {}", repo_data.display()),
        );
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, &text).unwrap();
    let (output, report_path) = quantize_into(dir.path(), &config, &[], &[]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&report_path).unwrap()).unwrap();
    let fixture_bytes = std::fs::read(fixture("random_init.pth")).unwrap();
    assert_eq!(
        report["checkpoint_sha256"],
        qcnn_dataset::checksum::sha256_hex(&fixture_bytes)
    );

    let absent = text.replace(
        &format!("path: {}", fixture("random_init.pth").display()),
        "path: absent.pth",
    );
    std::fs::write(&config, absent).unwrap();
    let output = quantize_cli(&[
        OsStr::new("-o"),
        dir.path().join("n.qcnn").as_os_str(),
        OsStr::new("--config"),
        config.as_os_str(),
    ]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let expected = dir.path().join("absent.pth");
    assert!(stderr.contains(&expected.display().to_string()), "{stderr}");
    assert!(!dir.path().join("n.qcnn").exists());
}

/// `--max-arena`: the report's plans are the fastest schedules within the budget (conv1
/// streamed into conv2); a budget below the least arena fails, naming it, and writes nothing.
#[test]
fn max_arena_plans_the_streamed_schedule_or_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let run = |budget: usize, name: &str| {
        quantize_cli(&[
            fixture("random_init.pth").as_os_str(),
            OsStr::new("-o"),
            dir.path().join(format!("{name}.qcnn")).as_os_str(),
            OsStr::new("--report"),
            dir.path().join(format!("{name}.json")).as_os_str(),
            OsStr::new("--config"),
            repo_config().as_os_str(),
            OsStr::new("--data-dir"),
            Path::new("/usr/share/datasets/fashion-mnist").as_os_str(),
            OsStr::new("--max-arena"),
            OsStr::new(&budget.to_string()),
        ])
    };
    // A first run for the model's figures (the budget is large enough for anything).
    let output = run(1 << 20, "whole");
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let blob = std::fs::read(dir.path().join("whole.qcnn")).unwrap();
    let model = qcnn_core::Model::from_bytes(&blob).unwrap();
    let least = model.min_arena_len_for(qcnn_core::Kernels::CortexM4Dsp);
    let whole = model.arena_len_for(qcnn_core::Kernels::CortexM4Dsp);
    assert!(least < whole);

    let output = run(least, "least");
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("least.json")).unwrap()).unwrap();
    let m4 = &report["plan"]["cortex_m4"];
    assert_eq!(m4["arena_bytes"], least);
    assert_eq!(m4["least_arena_bytes"], least);
    assert_eq!(m4["whole_map_arena_bytes"], whole);
    assert_eq!(m4["streamed_pairs"], 1);
    assert_eq!(m4["nodes"][0]["streaming"], "into_next");

    let output = run(least - 1, "short");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("--max-arena {}", least - 1))
            && stderr.contains(&least.to_string()),
        "{stderr}"
    );
    assert!(!dir.path().join("short.qcnn").exists());
    assert!(!dir.path().join("short.json").exists());
}

/// `quantize.method: auto` on a layer-sequence checkpoint: stderr gives each candidate's
/// validation accuracy and marks the one kept, which the report names as the method.
#[test]
fn auto_calibration_reports_every_candidate_and_the_choice() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(repo_config())
        .unwrap()
        .replace("method: percentile", "method: auto");
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, text).unwrap();
    let checkpoint = fixture("random_init.pth");
    let (output, report_path) = quantize_into(
        dir.path(),
        &config,
        &[checkpoint.as_os_str()],
        &[
            OsStr::new("--data-dir"),
            Path::new("/usr/share/datasets/fashion-mnist").as_os_str(),
        ],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&report_path).unwrap()).unwrap();
    let calibration = &report["calibration"];
    let candidates = calibration["auto"]["candidates"].as_array().unwrap();
    let methods: Vec<&str> = candidates
        .iter()
        .map(|c| c["method"].as_str().unwrap())
        .collect();
    assert_eq!(methods, ["percentile", "minmax", "percentile", "mse"]);
    assert_eq!(calibration["auto"]["validation_images"], 3000);
    // No `quantize.auto_validation`: the config's validation split, which stderr names.
    assert_eq!(
        calibration["auto"]["validation_source"],
        serde_json::json!({"split": {"seed": 42}})
    );
    assert!(
        stderr.contains(
            "3000 validation images (the first of the config's validation split (data.split, seed 42) that no candidate calibrated on)"
        ),
        "{stderr}"
    );
    let chosen = &candidates[calibration["auto"]["chosen"].as_u64().unwrap() as usize];
    assert_eq!(calibration["method"], chosen["method"]);
    assert_eq!(calibration["percentile"], chosen["percentile"]);
    for candidate in candidates {
        let accuracy = candidate["accuracy"].as_f64().unwrap();
        let row = format!("{:.2}%", 100.0 * accuracy);
        assert!(stderr.contains(&row), "{row} missing from {stderr}");
    }
    assert_eq!(stderr.matches("<- chosen").count(), 1, "{stderr}");
}
