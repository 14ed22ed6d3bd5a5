//! The outcome of `qcnn evaluate`: what `--json` prints and the report formats, and the gate.

use qcnn_config::config::EvaluateConfig;
use qcnn_dataset::scores::Scores;
use serde::Serialize;

/// What `qcnn evaluate --json` prints.
#[derive(Debug, Serialize)]
pub struct Evaluation {
    pub model_path: String,
    pub model_sha256: String,
    pub samples: usize,
    pub threads: usize,
    /// Images per second of the int8 engine alone.
    pub images_per_s: f64,
    pub int8: Scores,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub float: Option<Scores>,
    /// Fraction of images where the float reference and the int8 model predict the same class.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agreement: Option<f64>,
    pub result_id: i64,
    /// Where the result was recorded (no password).
    pub database: String,
    pub gate: Gate,
}

#[derive(Debug, Serialize)]
pub struct Gate {
    pub min_accuracy: f64,
    pub min_f1_macro: f64,
    pub passed: bool,
}

impl Gate {
    pub fn check(thresholds: &EvaluateConfig, int8: &Scores) -> Gate {
        Gate {
            min_accuracy: thresholds.min_accuracy,
            min_f1_macro: thresholds.min_f1_macro,
            passed: int8.accuracy >= thresholds.min_accuracy
                && int8.f1_macro >= thresholds.min_f1_macro,
        }
    }
}
