//! `quantize.method: auto`: the calibration chosen on validation images by the tool itself.
//! Each candidate calibrates on the same images as a fixed method would; its int8 blob is
//! scored on held-out training images that no candidate calibrated on, never the test set.
//! The `onnx_calibration_sweep` example prints the same table for one model.

use std::collections::HashSet;
use std::ops::Range;

use serde::Serialize;

use qcnn_config::config::{CalibrationMethod, QuantizeConfig};
use qcnn_core::{Model, PreparedModel};

use crate::error::QuantizeError;
use crate::validate;

/// The training images held out from training by the models of `models/`
/// (`scripts/train_onnx_models.py`), and the walkthrough's recommendation for a new model.
pub const HELD_OUT: Range<usize> = 50_000..60_000;
/// How many of them score each candidate: the graph engine runs on portable kernels on the
/// host, so all 10,000 per candidate would take too long on a busy machine.
pub const VALIDATION_IMAGES: usize = 3000;

/// One candidate's scores on the validation images.
#[derive(Clone, Debug, Serialize)]
pub struct CandidateScore {
    pub method: CalibrationMethod,
    /// The percentile kept, for `percentile` only.
    pub percentile: Option<f64>,
    pub accuracy: f64,
    /// Fraction of validation images where float and int8 predict the same class.
    pub agreement: f64,
}

/// What `auto` tried and kept.
#[derive(Clone, Debug, Serialize)]
pub struct AutoChoice {
    /// The validation images' indices into the training images: the first
    /// `VALIDATION_IMAGES` of `HELD_OUT` that no candidate calibrated on.
    pub validation_images: usize,
    pub float_accuracy: f64,
    pub candidates: Vec<CandidateScore>,
    /// Index into `candidates` of the one kept.
    pub chosen: usize,
}

impl AutoChoice {
    pub fn chosen(&self) -> &CandidateScore {
        &self.candidates[self.chosen]
    }
}

/// The candidates, in the order that breaks an exact tie: `base`'s percentile, minmax,
/// percentile 99.99, mse (the percentile twice only once). Each keeps `base`'s image count.
pub fn candidates(base: &QuantizeConfig) -> Vec<QuantizeConfig> {
    let mut out: Vec<QuantizeConfig> = Vec::new();
    for (method, percentile) in [
        (CalibrationMethod::Percentile, base.percentile),
        (CalibrationMethod::MinMax, base.percentile),
        (CalibrationMethod::Percentile, 99.99),
        (CalibrationMethod::Mse, base.percentile),
    ] {
        let candidate = QuantizeConfig {
            method,
            percentile,
            ..*base
        };
        if !out.contains(&candidate) {
            out.push(candidate);
        }
    }
    out
}

/// The validation images: the first `VALIDATION_IMAGES` of `HELD_OUT` not in `calibration`
/// (indices into the training images).
pub fn validation_indices(calibration: &[usize]) -> Vec<usize> {
    let calibrated: HashSet<usize> = calibration.iter().copied().collect();
    HELD_OUT
        .filter(|i| !calibrated.contains(i))
        .take(VALIDATION_IMAGES)
        .collect()
}

/// Scores every candidate's blob (`blob_of`) on `images` against `labels` and keeps the one
/// with the highest validation accuracy; an exact tie goes to the higher float/int8 agreement
/// (on `float_logits`), then to the earlier candidate.
pub fn choose(
    candidates: &[QuantizeConfig],
    images: &[&[u8]],
    labels: &[u8],
    float_logits: &[Vec<f32>],
    mut blob_of: impl FnMut(&QuantizeConfig) -> Result<Vec<u8>, QuantizeError>,
) -> Result<AutoChoice, QuantizeError> {
    let mut scored = Vec::with_capacity(candidates.len());
    for candidate in candidates {
        let blob = blob_of(candidate)?;
        let model = Model::from_bytes(&blob).map_err(QuantizeError::Model)?;
        let model = PreparedModel::new(model).map_err(QuantizeError::Tier)?;
        let logits = validate::int8_logits(&model, images).map_err(QuantizeError::Run)?;
        scored.push(CandidateScore {
            method: candidate.method,
            percentile: (candidate.method == CalibrationMethod::Percentile)
                .then_some(candidate.percentile),
            accuracy: validate::int8_scores(&logits, labels).accuracy,
            agreement: validate::agreement(float_logits, &logits),
        });
    }
    // `max_by` keeps the last of equals: compare in reverse order so the earliest wins.
    let chosen = (0..scored.len())
        .rev()
        .max_by(|&a, &b| {
            let key = |i: usize| (scored[i].accuracy, scored[i].agreement);
            key(a)
                .partial_cmp(&key(b))
                .unwrap_or(std::cmp::Ordering::Equal)
        })
        .unwrap_or(0);
    Ok(AutoChoice {
        validation_images: images.len(),
        float_accuracy: validate::scores(float_logits.iter().map(Vec::as_slice), labels).accuracy,
        candidates: scored,
        chosen,
    })
}

/// The table `qcnn-quantize` prints to stderr and the sweep example to stdout.
pub fn table(choice: &AutoChoice) -> String {
    let mut out = format!(
        "calibration auto: {} validation images (training images {HELD_OUT:?} not calibrated \
         on), float accuracy {:.2}%\n  method      percentile  val int8 accuracy  agreement\n",
        choice.validation_images,
        100.0 * choice.float_accuracy
    );
    for (i, c) in choice.candidates.iter().enumerate() {
        let percentile = c.percentile.map_or("-".into(), |p| p.to_string());
        let kept = if i == choice.chosen {
            "  <- chosen"
        } else {
            ""
        };
        out += &format!(
            "  {:<11} {percentile:<11} {:>17.2}% {:>9.2}%{kept}\n",
            format!("{:?}", c.method),
            100.0 * c.accuracy,
            100.0 * c.agreement
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base(percentile: f64) -> QuantizeConfig {
        QuantizeConfig {
            calibration_images: 2000,
            method: CalibrationMethod::Auto,
            percentile,
        }
    }

    #[test]
    fn candidates_start_with_the_configured_percentile_and_never_repeat() {
        let methods = |c: Vec<QuantizeConfig>| {
            c.iter()
                .map(|q| (q.method, q.percentile))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            methods(candidates(&base(99.9))),
            [
                (CalibrationMethod::Percentile, 99.9),
                (CalibrationMethod::MinMax, 99.9),
                (CalibrationMethod::Percentile, 99.99),
                (CalibrationMethod::Mse, 99.9),
            ]
        );
        assert_eq!(candidates(&base(99.99)).len(), 3);
    }

    #[test]
    fn validation_skips_calibration_images() {
        let v = validation_indices(&[50_000, 50_002, 7]);
        assert_eq!(v.len(), VALIDATION_IMAGES);
        assert_eq!(&v[..3], &[50_001, 50_003, 50_004]);
    }
}
