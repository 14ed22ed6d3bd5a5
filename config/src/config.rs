//! `config.yaml`: the model's architecture, the data, quantization and the evaluation gate.
//!
//! Unknown keys are errors, so a misspelt setting never silently falls back to a default.
//! Relative paths are resolved against the config file's directory when it is loaded.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::architecture::{Architecture, ArchitectureError};
use crate::model::ModelConfig;
use crate::regular_file;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {message}", path.display())]
    Yaml { path: PathBuf, message: String },
    #[error("{}: {key}: {message}", path.display())]
    Invalid {
        path: PathBuf,
        key: &'static str,
        message: String,
    },
    #[error(
        "{}: model: missing; a PyTorch checkpoint needs the model section for its architecture \
         (an ONNX file brings its own)",
        path.display()
    )]
    NoModel { path: PathBuf },
    #[error("{}: model.layers", path.display())]
    Architecture {
        path: PathBuf,
        #[source]
        source: ArchitectureError,
    },
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The architecture of a PyTorch checkpoint; an ONNX file brings its own, so it may be absent.
    #[serde(default)]
    pub model: Option<ModelConfig>,
    pub checkpoint: CheckpointConfig,
    pub data: DataConfig,
    pub quantize: QuantizeConfig,
    /// What the float model sees of a pixel; absent means pixel/255.
    #[serde(default)]
    pub preprocess: PreprocessConfig,
    pub evaluate: EvaluateConfig,
    pub database: DatabaseConfig,
    /// The file this was read from, to name it in errors found later.
    #[serde(skip)]
    pub path: PathBuf,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CheckpointConfig {
    /// The release checkpoint (resolved against the config's directory).
    pub path: PathBuf,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// Searched in order for the four FashionMNIST files (resolved against the config's directory).
    pub dirs: Vec<PathBuf>,
    pub split: SplitConfig,
}

impl DataConfig {
    /// The directories to search: only `override_dir` when given (e.g. `--data-dir`), else `dirs`.
    pub fn search_dirs(&self, override_dir: Option<&Path>) -> Vec<PathBuf> {
        match override_dir {
            Some(dir) => vec![dir.to_owned()],
            None => self.dirs.clone(),
        }
    }
}

/// `train + validation` must equal the 60,000 training images (checked when the split is
/// made), so that the split covers the whole training set.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SplitConfig {
    pub train: usize,
    pub validation: usize,
    pub seed: u64,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct QuantizeConfig {
    /// Drawn from the start of the (shuffled) training split.
    pub calibration_images: usize,
    pub method: CalibrationMethod,
    /// For `percentile`, and `auto`'s first candidate: the two-sided percentile of activation
    /// values kept, in (50, 100].
    #[serde(default = "default_percentile")]
    pub percentile: f64,
    /// For `auto`: the training images `[start, end)` the model held out from its training,
    /// when that is not the config's validation split (absent: `auto` scores on that split).
    #[serde(default, deserialize_with = "auto_validation")]
    pub auto_validation: Option<[usize; 2]>,
}

/// `quantize.auto_validation: [start, end]`, read by hand so that every error names the key
/// (serde's own name only the value, e.g. "invalid length 1").
fn auto_validation<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<[usize; 2]>, D::Error> {
    use serde::de::{Error, SeqAccess, Visitor};

    struct Pair;
    impl<'de> Visitor<'de> for Pair {
        type Value = [usize; 2];

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("quantize.auto_validation as [start, end], two training-image indices")
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<[usize; 2], A::Error> {
            let named =
                |message: String| A::Error::custom(format!("quantize.auto_validation: {message}"));
            let mut values = Vec::new();
            while let Some(value) = seq
                .next_element::<i64>()
                .map_err(|err| named(err.to_string()))?
            {
                values.push(value);
            }
            let indices: Vec<usize> = values
                .iter()
                .map(|&v| usize::try_from(v).map_err(|_| named(format!("{v} is negative"))))
                .collect::<Result<_, _>>()?;
            <[usize; 2]>::try_from(indices).map_err(|_| {
                named(format!(
                    "{values:?} has {} values; give two, [start, end]",
                    values.len()
                ))
            })
        }
    }
    // `any`, not `seq`: a scalar then reaches the visitor, whose error names the key.
    deserializer.deserialize_any(Pair).map(Some)
}

/// The training set's size: `quantize.auto_validation` indexes into it.
const TRAINING_IMAGES: usize = 60_000;

impl QuantizeConfig {
    /// `auto_validation` as a range of training-image indices.
    pub fn auto_validation_range(&self) -> Option<std::ops::Range<usize>> {
        self.auto_validation.map(|[start, end]| start..end)
    }
}

fn default_percentile() -> f64 {
    99.999
}

// Parsed by hand so that an unknown name's error names its key (serde's names only the value).
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase", try_from = "String")]
pub enum CalibrationMethod {
    /// The observed minimum and maximum.
    MinMax,
    /// Clip outliers beyond the configured percentile.
    Percentile,
    /// The clipping range that minimises the quantization's mean squared error.
    Mse,
    /// Each candidate (`percentile` at the configured value, minmax, percentile 99.99, mse)
    /// scored on held-out validation images; the quantizer keeps the best.
    Auto,
}

impl TryFrom<String> for CalibrationMethod {
    type Error = String;

    fn try_from(name: String) -> Result<Self, String> {
        match name.as_str() {
            "minmax" => Ok(Self::MinMax),
            "percentile" => Ok(Self::Percentile),
            "mse" => Ok(Self::Mse),
            "auto" => Ok(Self::Auto),
            _ => Err(format!(
                "quantize.method: unknown method `{name}`, expected minmax, percentile, mse or auto"
            )),
        }
    }
}

/// The float model sees `(pixel/255 − mean[c]) / std[c]` for channel `c`. One value applies
/// to every channel, else one per channel. The quantizer folds this into the input tensor's
/// scale and zero point, so the device still reads `pixel − 128` and runs no float.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PreprocessConfig {
    pub mean: Vec<f64>,
    pub std: Vec<f64>,
}

impl Default for PreprocessConfig {
    /// pixel/255: what the seed model and every model before this setting saw.
    fn default() -> Self {
        PreprocessConfig {
            mean: vec![0.0],
            std: vec![1.0],
        }
    }
}

impl PreprocessConfig {
    /// Whether this is plain pixel/255.
    pub fn is_identity(&self) -> bool {
        self.mean.iter().all(|&m| m == 0.0) && self.std.iter().all(|&s| s == 1.0)
    }

    /// Channel `c`'s mean and standard deviation.
    pub fn channel(&self, c: usize) -> (f64, f64) {
        let pick = |v: &[f64]| if v.len() == 1 { v[0] } else { v[c] };
        (pick(&self.mean), pick(&self.std))
    }

    /// The one (mean, std) of every channel of a `channels`-channel image, or why there is
    /// none: the engine's input tensor has one scale and zero point.
    pub fn per_tensor(&self, channels: usize) -> Result<(f64, f64), String> {
        for (key, values) in [
            ("preprocess.mean", &self.mean),
            ("preprocess.std", &self.std),
        ] {
            if values.len() != 1 && values.len() != channels {
                return Err(format!(
                    "{key} has {} values for a {channels}-channel input (give 1 or {channels})",
                    values.len()
                ));
            }
        }
        let first = self.channel(0);
        if (1..channels).any(|c| self.channel(c) != first) {
            return Err(
                "preprocess: mean and std differ between channels; the engine's input tensor \
                 has one scale and zero point, so they must be the same for every channel"
                    .into(),
            );
        }
        Ok(first)
    }
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EvaluateConfig {
    pub min_accuracy: f64,
    pub min_f1_macro: f64,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// The name of the environment variable holding a `postgres://` URL.
    pub url_env: String,
    /// The embedded SQLite file (resolved against the config's directory).
    pub sqlite_path: PathBuf,
}

impl Config {
    /// Reads, parses and validates `path`, resolving relative paths against its directory.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let io_error = |source| ConfigError::Io {
            path: path.to_owned(),
            source,
        };
        let bytes = regular_file::read(path, regular_file::MAX_TEXT_BYTES).map_err(io_error)?;
        let text = String::from_utf8(bytes).map_err(|_| {
            io_error(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "not UTF-8 text",
            ))
        })?;
        let base = path.parent().unwrap_or(Path::new(""));
        Self::parse(&text, path, base)
    }

    /// Parses YAML `text`; `path` names it in errors, relative paths are resolved against `base`.
    pub fn parse(text: &str, path: &Path, base: &Path) -> Result<Config, ConfigError> {
        let mut config: Config = serde_saphyr::from_str(text).map_err(|err| ConfigError::Yaml {
            path: path.to_owned(),
            message: one_line(&err.without_snippet().to_string()),
        })?;
        config.validate(path)?;
        config.path = path.to_owned();
        config.checkpoint.path = base.join(&config.checkpoint.path);
        for dir in &mut config.data.dirs {
            *dir = base.join(&*dir);
        }
        config.database.sqlite_path = base.join(&config.database.sqlite_path);
        Ok(config)
    }

    /// The layer sequence of the `model` section with every shape worked out (validated when
    /// the config loaded), or an error when the section is absent.
    pub fn architecture(&self) -> Result<Architecture, ConfigError> {
        let model = self.model.as_ref().ok_or_else(|| ConfigError::NoModel {
            path: self.path.clone(),
        })?;
        // Validated when the config was loaded; checked again for a `Config` built by hand.
        Architecture::new(model).map_err(|source| ConfigError::Architecture {
            path: self.path.clone(),
            source,
        })
    }

    fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let invalid = |key, message: String| ConfigError::Invalid {
            path: path.to_owned(),
            key,
            message,
        };
        if let Some(model) = &self.model {
            Architecture::new(model).map_err(|source| ConfigError::Architecture {
                path: path.to_owned(),
                source,
            })?;
        }
        let split = &self.data.split;
        if split.validation == 0 {
            return Err(invalid(
                "data.split.validation",
                "must be at least 1".into(),
            ));
        }
        let q = &self.quantize;
        if q.calibration_images == 0 || q.calibration_images > split.train {
            return Err(invalid(
                "quantize.calibration_images",
                format!(
                    "{} is not within 1..={}, the training split's size",
                    q.calibration_images, split.train
                ),
            ));
        }
        if !(q.percentile > 50.0 && q.percentile <= 100.0) {
            return Err(invalid(
                "quantize.percentile",
                format!("{} is not within (50, 100]", q.percentile),
            ));
        }
        if let Some([start, end]) = q.auto_validation {
            if q.method != CalibrationMethod::Auto {
                return Err(invalid(
                    "quantize.auto_validation",
                    format!(
                        "[{start}, {end}] is set but quantize.method is not auto; only auto \
                         scores on these images (remove the key, or set method: auto)"
                    ),
                ));
            }
            if !(start < end && end <= TRAINING_IMAGES) {
                return Err(invalid(
                    "quantize.auto_validation",
                    format!(
                        "[{start}, {end}] is not a non-empty range [start, end) of training \
                         images within 0..{TRAINING_IMAGES}"
                    ),
                ));
            }
        }
        let p = &self.preprocess;
        if p.mean.is_empty() || p.mean.len() != p.std.len() {
            return Err(invalid(
                "preprocess.mean",
                format!(
                    "has {} values and preprocess.std {}; give the same number (1, or one per \
                     channel)",
                    p.mean.len(),
                    p.std.len()
                ),
            ));
        }
        if let Some(m) = p.mean.iter().find(|m| !m.is_finite()) {
            return Err(invalid("preprocess.mean", format!("{m} is not finite")));
        }
        if let Some(s) = p.std.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
            return Err(invalid(
                "preprocess.std",
                format!("{s} is not a positive number"),
            ));
        }
        for (key, value) in [
            ("evaluate.min_accuracy", self.evaluate.min_accuracy),
            ("evaluate.min_f1_macro", self.evaluate.min_f1_macro),
        ] {
            if !(0.0..=1.0).contains(&value) {
                return Err(invalid(key, format!("{value} is not within [0, 1]")));
            }
        }
        if self.data.dirs.is_empty() {
            return Err(invalid("data.dirs", "lists no directory".into()));
        }
        Ok(())
    }
}

/// The parser's message on one line, as every error of the tools is (it may span several).
fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Conv2dSpec, LayerSpec, PoolSpec};

    #[test]
    fn yaml_errors_are_one_line() {
        for text in [
            "model: [unclosed".to_owned(),
            repo_text().replace("classes: 10", "classes: ten"),
            repo_text().replace("  name:", "\tname:"),
            repo_text() + "\nmodel: {}\n",
        ] {
            let message = format!("{:#}", anyhow::Error::from(parse(&text).unwrap_err()));
            assert!(message.starts_with("test.yaml: "), "{message}");
            assert!(!message.contains('\n'), "{message}");
        }
    }

    const REPO_CONFIG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../config.yaml");

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("test.yaml"), Path::new("/base"))
    }

    fn repo_text() -> String {
        std::fs::read_to_string(REPO_CONFIG).unwrap()
    }

    #[test]
    fn loads_the_repository_config_with_resolved_paths() {
        let config = Config::load(Path::new(REPO_CONFIG)).unwrap();
        assert_eq!(config.model.as_ref().unwrap().layers.len(), 11);
        assert_eq!(
            config.model.as_ref().unwrap().layers[0],
            LayerSpec::Conv2d(Conv2dSpec::dense(1, 8, 3, 1, 1))
        );
        assert_eq!(config.model.as_ref().unwrap().layers[1], LayerSpec::Relu);
        assert_eq!(
            config.model.as_ref().unwrap().layers[4],
            LayerSpec::MaxPool2d(PoolSpec {
                kernel: 2,
                stride: Some(2)
            })
        );
        assert_eq!(
            config.data.split.train + config.data.split.validation,
            60_000
        );
        let base = Path::new(REPO_CONFIG).parent().unwrap();
        assert_eq!(
            config.checkpoint.path,
            base.join("checkpoints/CNNModel_FashionMNIST_best_metric_model.pth")
        );
        assert_eq!(config.data.dirs[0], base.join("data/FashionMNIST/raw"));
        // Absolute paths stay as they are.
        assert_eq!(
            config.data.dirs[1],
            Path::new("/usr/share/datasets/fashion-mnist")
        );
        assert_eq!(
            config.data.search_dirs(Some(Path::new("/x"))),
            [PathBuf::from("/x")]
        );
    }

    #[test]
    fn unknown_key_is_named() {
        let text = repo_text().replace("calibration_images:", "calibration_imgs:");
        let err = parse(&text).unwrap_err();
        let message = err.to_string();
        assert!(message.starts_with("test.yaml: "), "{message}");
        assert!(message.contains("calibration_imgs"), "{message}");
    }

    #[test]
    fn unknown_layer_and_method_are_rejected() {
        let err = parse(&repo_text().replace("- flatten", "- flattn")).unwrap_err();
        assert!(err.to_string().contains("flattn"), "{err}");
        let err = parse(&repo_text().replace("method: percentile", "method: entropy")).unwrap_err();
        assert!(err.to_string().contains("entropy"), "{err}");
        assert!(err.to_string().contains("quantize.method"), "{err}");
    }

    #[test]
    fn auto_method_parses() {
        let config = parse(&repo_text().replace("method: percentile", "method: auto")).unwrap();
        assert_eq!(config.quantize.method, CalibrationMethod::Auto);
        assert_eq!(config.quantize.percentile, 99.9);
        // By default `auto` scores on the config's validation split.
        assert_eq!(config.quantize.auto_validation, None);
        assert_eq!(config.quantize.auto_validation_range(), None);
    }

    /// The repository config with `method: auto` and `auto_validation: value`.
    fn auto_with_validation(value: &str) -> String {
        repo_text().replace(
            "method: percentile",
            &format!("method: auto\n  auto_validation: {value}"),
        )
    }

    #[test]
    fn auto_validation_names_the_held_out_training_images() {
        let config = parse(&auto_with_validation("[50000, 60000]")).unwrap();
        assert_eq!(config.quantize.auto_validation, Some([50_000, 60_000]));
        assert_eq!(
            config.quantize.auto_validation_range(),
            Some(50_000..60_000)
        );
        let config = parse(&auto_with_validation("[0, 1]")).unwrap();
        assert_eq!(config.quantize.auto_validation_range(), Some(0..1));
    }

    #[test]
    fn bad_auto_validation_is_named() {
        for (value, why) in [
            ("[60000, 50000]", "[60000, 50000] is not a non-empty range"),
            ("[5, 5]", "[5, 5] is not a non-empty range"),
            ("[50000, 60001]", "within 0..60000"),
            ("[50000]", "[50000] has 1 values; give two"),
            ("[1, 2, 3]", "has 3 values"),
            ("[-1, 10]", "-1 is negative"),
            ("[a, 10]", ""),
            ("50000", "expected quantize.auto_validation as [start, end]"),
        ] {
            let err = parse(&auto_with_validation(value)).unwrap_err().to_string();
            assert!(err.contains("auto_validation"), "{value}: {err}");
            assert!(err.contains(why), "{value}: {err}");
        }
        // Set with another method it would be ignored: an error instead.
        let text = repo_text().replace(
            "method: percentile",
            "method: percentile\n  auto_validation: [50000, 60000]",
        );
        let err = parse(&text).unwrap_err().to_string();
        assert!(
            err.contains(
                "quantize.auto_validation: [50000, 60000] is set but quantize.method is not auto"
            ),
            "{err}"
        );
    }

    #[test]
    fn out_of_range_settings_name_their_key() {
        /// The repository config with `key`'s value replaced.
        fn with(key: &str, value: &str) -> String {
            let text = repo_text();
            let start = text.find(&format!("  {key}: ")).unwrap() + key.len() + 4;
            let end = start + text[start..].find('\n').unwrap();
            format!("{}{value}{}", &text[..start], &text[end..])
        }
        let err = parse(&with("calibration_images", "0")).unwrap_err();
        assert!(
            err.to_string().contains("quantize.calibration_images"),
            "{err}"
        );
        let err = parse(&with("calibration_images", "50001")).unwrap_err();
        assert!(
            err.to_string().contains("50001 is not within 1..=50000"),
            "{err}"
        );
        let err = parse(&with("percentile", "101")).unwrap_err();
        assert!(err.to_string().contains("quantize.percentile"), "{err}");
        let err = parse(&with("min_accuracy", "92")).unwrap_err();
        assert!(err.to_string().contains("evaluate.min_accuracy"), "{err}");
        // Unchanged, it parses: the failures above come from the values alone.
        assert!(parse(&with("percentile", "99.9")).is_ok());
    }

    #[test]
    fn preprocessing_defaults_to_pixel_over_255_and_checks_its_values() {
        let config = parse(&repo_text()).unwrap();
        assert!(config.preprocess.is_identity());
        let without = parse(&repo_text().replace("preprocess:", "unused_preprocess:"));
        assert!(without.is_err(), "the section's keys stay checked");
        let text = |mean: &str, std: &str| {
            let start = repo_text().find("preprocess:").unwrap();
            let end = start + repo_text()[start..].find("\n\n").unwrap();
            format!(
                "{}preprocess:\n  mean: {mean}\n  std: {std}{}",
                &repo_text()[..start],
                &repo_text()[end..]
            )
        };
        let normalized = parse(&text("[0.286]", "[0.353]")).unwrap();
        assert!(!normalized.preprocess.is_identity());
        assert_eq!(normalized.preprocess.per_tensor(1), Ok((0.286, 0.353)));
        let err = parse(&text("[0.5]", "[0.0]")).unwrap_err().to_string();
        assert!(err.contains("preprocess.std: 0 is not a positive"), "{err}");
        let err = parse(&text("[0.5, 0.4]", "[1.0]")).unwrap_err().to_string();
        assert!(err.contains("preprocess.mean: has 2 values"), "{err}");
        let three = parse(&text("[0.5, 0.4, 0.3]", "[1, 1, 1]")).unwrap();
        let err = three.preprocess.per_tensor(3).unwrap_err();
        assert!(err.contains("differ between channels"), "{err}");
        let err = normalized.preprocess.per_tensor(1);
        assert!(err.is_ok());
        let err = three.preprocess.per_tensor(2).unwrap_err();
        assert!(err.contains("preprocess.mean has 3 values"), "{err}");
    }

    #[test]
    fn a_broken_layer_list_is_explained() {
        let err = parse(&repo_text().replace(
            "linear: { in: 3136, out: 256 }",
            "linear: { in: 3000, out: 256 }",
        ))
        .unwrap_err();
        let chain = format!("{:#}", anyhow::Error::from(err));
        assert!(chain.contains("model.layers"), "{chain}");
        assert!(chain.contains("3000") && chain.contains("3136"), "{chain}");
    }
}
