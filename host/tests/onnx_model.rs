//! `qcnn evaluate --model model.onnx` and `qcnn predict --model model.onnx` work as for a
//! `.pth`: the ONNX export of the release checkpoint (../shared/fixtures/torch/model.onnx),
//! quantized in-process with a config that has no model section, gives the checkpoint's float
//! and int8 figures and the same predictions.

mod support;

use support::cli::{TestEnv, release_checkpoint, repo_root};

/// A test environment whose config.yaml has no `model:` section.
fn env_without_model() -> TestEnv {
    let env = TestEnv::new();
    let path = env.path("config.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let start = text.find("\nmodel:").unwrap() + 1;
    let end = text.find("\ncheckpoint:").unwrap() + 1;
    std::fs::write(&path, format!("{}{}", &text[..start], &text[end..])).unwrap();
    env
}

#[test]
fn onnx_export_evaluates_and_predicts_like_its_checkpoint() {
    let onnx = repo_root().join("../shared/fixtures/torch/model.onnx");
    let onnx = onnx.to_str().unwrap();
    let checkpoint = release_checkpoint();
    let checkpoint = checkpoint.to_str().unwrap();
    let (no_model, with_model) = (env_without_model(), TestEnv::new());

    let from_onnx = no_model.run(&["evaluate", "--model", onnx, "--json"]);
    from_onnx.assert_success();
    let from_pth = with_model.run(&["evaluate", "--model", checkpoint, "--json"]);
    from_pth.assert_success();
    let (a, b) = (from_onnx.json(), from_pth.json());
    assert_eq!(a["samples"], 10_000);
    for key in ["float", "int8", "agreement"] {
        assert_eq!(a[key], b[key], "{key}");
    }
    // PyTorch's float accuracy on the test set (../shared/fixtures/torch/reference_metrics.json).
    assert_eq!(a["float"]["accuracy"], 0.9322);

    let predict = |env: &TestEnv, model: &str| {
        let run = env.run(&["predict", "--model", model, "--first", "20"]);
        run.assert_success();
        run.stdout
    };
    let lines = predict(&no_model, onnx);
    assert_eq!(lines.lines().count(), 20);
    assert_eq!(lines, predict(&with_model, checkpoint));

    // Without a model section, a checkpoint is refused with the reason.
    no_model
        .run(&["predict", "--model", checkpoint, "--first", "1"])
        .assert_clean_failure("model: missing; a PyTorch checkpoint needs the model section");
}

/// `qcnn db add-model` records an ONNX model that runs as a graph (residual Add, depthwise
/// Conv, pools, ...) as it does a chain: the same import decides which.
#[test]
fn a_graph_onnx_model_is_recorded() {
    let env = env_without_model();
    let model = repo_root().join("quantize/tests/onnx/graph_ops.onnx");
    let added = env.run(&["db", "add-model", model.to_str().unwrap()]);
    added.assert_success();
}

/// A graph model (depthwise-separable blocks, ReLU6 as `Clip`, padded MaxPool,
/// GlobalAveragePool: models/mobilenet.onnx, trained) through `qcnn` alone, as the README's
/// "Bring your own model" walkthrough runs it: `evaluate --model x.onnx` gives the float
/// model's accuracy as onnxruntime computes it (models/reference.json) beside the int8 one;
/// `predict --model x.onnx` prints the lines of the blob `qcnn-quantize` writes for it; and
/// `profile` of that blob lists every graph node and the arena the engine allocates.
#[test]
fn a_graph_onnx_model_evaluates_predicts_and_profiles() {
    let env = env_without_model();
    let onnx = repo_root().join("models/mobilenet.onnx");
    let onnx_arg = onnx.to_str().unwrap();
    let reference: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo_root().join("models/reference.json")).unwrap(),
    )
    .unwrap();
    let ort = &reference["models"]["mobilenet"];

    let evaluated = env.run(&["evaluate", "--model", onnx_arg, "--json"]);
    evaluated.assert_success();
    let figures = evaluated.json();
    assert_eq!(figures["samples"], 10_000);
    let float = figures["float"]["accuracy"].as_f64().unwrap();
    let ort_float = ort["float"]["test_accuracy"].as_f64().unwrap();
    // The same float model: at most a few images whose top two logits tie within f32 noise.
    assert!(
        (float - ort_float).abs() <= 0.0003,
        "float {float} against onnxruntime's {ort_float}"
    );
    let int8 = figures["int8"]["accuracy"].as_f64().unwrap();
    assert!(int8 >= float - 0.01, "int8 {int8} against float {float}");
    assert!(figures["agreement"].as_f64().unwrap() >= 0.95, "{figures}");

    // The blob qcnn-quantize writes with this config (the same pipeline, called directly).
    let config = qcnn_config::config::Config::load(&env.path("config.yaml")).unwrap();
    let data = qcnn_dataset::FashionMnist::load(&config.data.dirs).unwrap();
    let quantized = qcnn_quantize::pipeline::quantize_checkpoint(&config, &onnx, &data).unwrap();
    let blob_path = env.path("mobilenet.qcnn");
    std::fs::write(&blob_path, &quantized.blob).unwrap();
    let blob_arg = blob_path.to_str().unwrap();
    let predict = |model: &str| {
        let run = env.run(&["predict", "--model", model, "--first", "20"]);
        run.assert_success();
        run.stdout
    };
    let lines = predict(onnx_arg);
    assert_eq!(lines.lines().count(), 20);
    assert_eq!(lines, predict(blob_arg));

    let model = qcnn_core::Model::from_bytes(&quantized.blob).unwrap();
    let nodes = model.graph().expect("a graph blob").nodes().count();
    let arena = model.arena_len_for(qcnn_core::Kernels::CortexM4Dsp);
    let profile = env.run(&["profile", "--model", blob_arg]);
    profile.assert_success();
    let out: Vec<&str> = profile.stdout.lines().collect();
    assert!(
        out[0].starts_with(&format!(
            "cortex-m4 kernels: {nodes} nodes, {} MACs, arena {arena} bytes",
            model.macs()
        )),
        "{}",
        profile.stdout
    );
    // A header, one row per node in order, then the peak.
    for (i, row) in out[2..2 + nodes].iter().enumerate() {
        assert!(row.starts_with(&format!("{i} ")), "{row}");
    }
    assert!(
        out[2 + nodes].starts_with(&format!("peak: {arena} bytes, set by node ")),
        "{}",
        profile.stdout
    );
    let json = env.run(&["profile", "--model", blob_arg, "--json"]).json();
    assert_eq!(json["arena_bytes"], arena);
    let rows = json["nodes"].as_array().unwrap();
    assert_eq!(rows.len(), nodes);
    // Every node's need (its tensors, or its scratch after the planned tensors) fits the
    // arena, and the peak is a node whose need is the whole arena.
    for row in rows {
        assert!(
            row["arena_bytes"].as_u64().unwrap() as usize <= arena,
            "{row}"
        );
    }
    let peaks = json["peak_nodes"].as_array().unwrap();
    assert!(!peaks.is_empty(), "{json}");
    for peak in peaks {
        let row = &rows[peak.as_u64().unwrap() as usize];
        assert_eq!(row["arena_bytes"], arena, "{row}");
    }
}
