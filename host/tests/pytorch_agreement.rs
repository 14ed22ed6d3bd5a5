//! Evaluating the float release checkpoint reproduces PyTorch's own test-set figures
//! (../shared/fixtures/torch/reference_metrics.json): the float reference matches to 1e-4 in
//! accuracy and macro-F1, 1e-3 in loss, and the confusion matrix is identical.

mod support;

use approx::abs_diff_eq;
use support::cli::{TestEnv, release_checkpoint, repo_root};

#[test]
fn float_checkpoint_reproduces_pytorch_metrics() {
    let fixture = repo_root().join("../shared/fixtures/torch/reference_metrics.json");
    let text =
        std::fs::read_to_string(&fixture).unwrap_or_else(|e| panic!("{}: {e}", fixture.display()));
    let reference: serde_json::Value = serde_json::from_str(&text).unwrap();
    let torch = &reference["pytorch_float32"];

    // The repository's gate (0.92), which the release model must pass in int8.
    let env = TestEnv::with_gate(0.92, 0.92);
    let checkpoint = release_checkpoint();
    let run = env.run(&[
        "evaluate",
        "--model",
        checkpoint.to_str().unwrap(),
        "--json",
    ]);
    run.assert_success();
    let e = run.json();
    assert_eq!(e["samples"], 10_000);
    let float = &e["float"];
    let close = |key: &str, tolerance: f64| {
        let (ours, theirs) = (float[key].as_f64().unwrap(), torch[key].as_f64().unwrap());
        assert!(
            abs_diff_eq!(ours, theirs, epsilon = tolerance),
            "{key}: ours {ours}, PyTorch {theirs}"
        );
    };
    close("accuracy", 1e-4);
    close("f1_macro", 1e-4);
    close("loss", 1e-3);
    assert_eq!(float["confusion"], torch["confusion"]);

    // The int8 model stays close to its float reference.
    let agreement = e["agreement"].as_f64().unwrap();
    assert!(agreement > 0.98, "float/int8 agreement {agreement}");
    let int8_accuracy = e["int8"]["accuracy"].as_f64().unwrap();
    assert!(
        abs_diff_eq!(int8_accuracy, 0.9322, epsilon = 0.01),
        "int8 accuracy {int8_accuracy}"
    );
}
