//! `quantize.method: auto`: the calibration chosen on validation images by the tool itself.
//! Each candidate calibrates on the same images as a fixed method would; its int8 blob is
//! scored on validation images that no candidate calibrated on, never the test set: the
//! config's validation split by default, or the training images `quantize.auto_validation`
//! names, when the model was trained on others than the config's training split (as the
//! models of `models/` were). The `onnx_calibration_sweep` example prints the same table for
//! one model.

use std::collections::HashSet;
use std::ops::Range;

use serde::Serialize;

use qcnn_config::config::{CalibrationMethod, QuantizeConfig, SplitConfig};
use qcnn_core::{Model, PreparedModel};
use qcnn_dataset::Split;

use crate::error::QuantizeError;
use crate::validate;

/// How many validation images score each candidate: the graph engine runs on portable kernels
/// on the host, so all 10,000 per candidate would take too long on a busy machine.
pub const VALIDATION_IMAGES: usize = 3000;

/// Where `auto`'s validation images come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ValidationSource {
    /// The config's validation split (`data.split`, shuffled with `seed`), in its order: the
    /// images a model trained on the config's training split never saw.
    Split { seed: u64 },
    /// The training images `start..end` (`quantize.auto_validation`): those the model held
    /// out from its own training.
    HeldOut { start: usize, end: usize },
}

impl ValidationSource {
    /// The source `settings` names, else the validation split of `split`.
    pub fn of(settings: &QuantizeConfig, split: &SplitConfig) -> Self {
        match settings.auto_validation_range() {
            Some(Range { start, end }) => Self::HeldOut { start, end },
            None => Self::Split { seed: split.seed },
        }
    }

    /// The images it offers, in order (indices into the training images).
    fn pool<'a>(&self, split: &'a Split) -> Box<dyn Iterator<Item = usize> + 'a> {
        match *self {
            Self::Split { .. } => Box::new(split.validation.iter().copied()),
            Self::HeldOut { start, end } => Box::new(start..end),
        }
    }

    /// Said in stderr's table and the report's summary.
    pub fn describe(&self) -> String {
        match *self {
            Self::Split { seed } => {
                format!("the config's validation split (data.split, seed {seed})")
            }
            Self::HeldOut { start, end } => {
                format!("training images {start}..{end} (quantize.auto_validation)")
            }
        }
    }
}

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
    /// How many validation images scored each candidate: the first `VALIDATION_IMAGES` of
    /// `validation_source` that no candidate calibrated on.
    pub validation_images: usize,
    pub validation_source: ValidationSource,
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

/// The validation images: the first `VALIDATION_IMAGES` of `source` (taken from `split`) not
/// in `calibration` (indices into the training images); an error when none is left.
pub fn validation_indices(
    source: &ValidationSource,
    split: &Split,
    calibration: &[usize],
) -> Result<Vec<usize>, QuantizeError> {
    let total = split.train.len() + split.validation.len();
    if let ValidationSource::HeldOut { end, .. } = *source
        && end > total
    {
        return Err(QuantizeError::Auto(format!(
            "{} reaches past the {total} training images",
            source.describe()
        )));
    }
    let calibrated: HashSet<usize> = calibration.iter().copied().collect();
    let indices: Vec<usize> = source
        .pool(split)
        .filter(|i| !calibrated.contains(i))
        .take(VALIDATION_IMAGES)
        .collect();
    if indices.is_empty() {
        return Err(QuantizeError::Auto(format!(
            "{} holds no image that no candidate calibrated on, so nothing is left to score \
             the candidates on",
            source.describe()
        )));
    }
    Ok(indices)
}

/// Scores every candidate's blob (`blob_of`) on `images` against `labels` and keeps the one
/// with the highest validation accuracy; an exact tie goes to the higher float/int8 agreement
/// (on `float_logits`), then to the earlier candidate.
pub fn choose(
    candidates: &[QuantizeConfig],
    validation_source: ValidationSource,
    images: &[&[u8]],
    labels: &[u8],
    float_logits: &[Vec<f32>],
    mut blob_of: impl FnMut(&QuantizeConfig) -> Result<Vec<u8>, QuantizeError>,
) -> Result<AutoChoice, QuantizeError> {
    if candidates.is_empty() {
        return Err(QuantizeError::Auto("no candidate to choose from".into()));
    }
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
        validation_source,
        float_accuracy: validate::scores(float_logits.iter().map(Vec::as_slice), labels).accuracy,
        candidates: scored,
        chosen,
    })
}

/// The table `qcnn-quantize` prints to stderr and the sweep example to stdout.
pub fn table(choice: &AutoChoice) -> String {
    let mut out = format!(
        "calibration auto: {} validation images (the first of {} that no candidate \
         calibrated on), float accuracy {:.2}%\n  method      percentile  val int8 accuracy  \
         agreement\n",
        choice.validation_images,
        choice.validation_source.describe(),
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
            auto_validation: None,
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

    fn split() -> Split {
        Split::new(60_000, 50_000, 10_000, 42).unwrap()
    }

    fn source(auto_validation: Option<[usize; 2]>) -> ValidationSource {
        let settings = QuantizeConfig {
            auto_validation,
            ..base(99.9)
        };
        ValidationSource::of(
            &settings,
            &SplitConfig {
                train: 50_000,
                validation: 10_000,
                seed: 42,
            },
        )
    }

    #[test]
    fn by_default_validation_is_the_configs_validation_split() {
        let split = split();
        let source = source(None);
        assert_eq!(source, ValidationSource::Split { seed: 42 });
        let calibration = &split.train[..2000];
        let v = validation_indices(&source, &split, calibration).unwrap();
        assert_eq!(v.len(), VALIDATION_IMAGES);
        // The first of the validation split, in its shuffled order: images the config's
        // training split (which a model trained as the README says saw) does not hold.
        assert_eq!(v, split.validation[..VALIDATION_IMAGES]);
        let train: HashSet<usize> = split.train.iter().copied().collect();
        assert!(v.iter().all(|i| !train.contains(i)));
        // Shuffled: most of them are not in 50,000..59,999.
        assert!(v.iter().filter(|&&i| i >= 50_000).count() < VALIDATION_IMAGES / 2);
    }

    #[test]
    fn auto_validation_takes_the_named_images_less_the_calibration_images() {
        let split = split();
        let source = source(Some([50_000, 60_000]));
        assert_eq!(
            source,
            ValidationSource::HeldOut {
                start: 50_000,
                end: 60_000
            }
        );
        let v = validation_indices(&source, &split, &[50_000, 50_002, 7]).unwrap();
        assert_eq!(v.len(), VALIDATION_IMAGES);
        assert_eq!(&v[..3], &[50_001, 50_003, 50_004]);
        // With the config's real calibration images: none of them, all in the range.
        let calibration = &split.train[..2000];
        let v = validation_indices(&source, &split, calibration).unwrap();
        let calibrated: HashSet<usize> = calibration.iter().copied().collect();
        assert!(
            v.iter()
                .all(|i| (50_000..60_000).contains(i) && !calibrated.contains(i))
        );
        assert_eq!(v.len(), VALIDATION_IMAGES);
    }

    #[test]
    fn a_range_of_calibration_images_only_is_an_error_naming_it() {
        let split = split();
        let calibration = &split.train[..2000];
        let first = calibration[0];
        let only_calibrated = source(Some([first, first + 1]));
        let err = validation_indices(&only_calibrated, &split, calibration).unwrap_err();
        let message = err.to_string();
        assert!(message.contains("quantize.auto_validation"), "{message}");
        assert!(
            message.contains(&format!("{first}..{}", first + 1)),
            "{message}"
        );
        // Past the training images (a hand-built config: `Config::load` refuses it).
        let err = validation_indices(&source(Some([50_000, 60_001])), &split, calibration)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("reaches past the 60000 training images"),
            "{err}"
        );
        // A short range gives what it has.
        let v = validation_indices(&source(Some([0, 10])), &split, &[3]).unwrap();
        assert_eq!(v, [0, 1, 2, 4, 5, 6, 7, 8, 9]);
    }

    #[test]
    fn no_candidate_is_an_error_not_a_panic() {
        let err = choose(&[], source(None), &[], &[], &[], |_| Ok(Vec::new())).unwrap_err();
        assert!(err.to_string().contains("no candidate"), "{err}");
    }
}
