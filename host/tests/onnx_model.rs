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
