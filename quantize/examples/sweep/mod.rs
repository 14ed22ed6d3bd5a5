//! What the two calibration sweeps (`calibration_sweep`, `onnx_calibration_sweep`) share:
//! config.yaml, and each candidate's settings and calibration images.

use std::path::Path;

use qcnn_config::config::{CalibrationMethod, Config, QuantizeConfig};
use qcnn_dataset::LabeledImages;

/// One candidate: a calibration method, its percentile (read by `Percentile` only) and how
/// many images it calibrates on.
pub type Setting = (CalibrationMethod, f64, usize);

/// The repository's config.yaml.
pub fn repo_config() -> anyhow::Result<Config> {
    Ok(Config::load(Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../config.yaml"
    )))?)
}

/// `base` with `setting` applied, and its calibration images: the first of `train` (the
/// training split's indices into `images`), as `qcnn-quantize` takes them.
pub fn candidate<'d>(
    base: QuantizeConfig,
    (method, percentile, count): Setting,
    images: &'d LabeledImages,
    train: &[usize],
) -> (QuantizeConfig, Vec<&'d [u8]>) {
    let mut q = base;
    (q.method, q.percentile, q.calibration_images) = (method, percentile, count);
    let calibration = train[..count].iter().map(|&i| images.image(i)).collect();
    (q, calibration)
}

/// The table's percentile column: the value where the method reads it, `-` elsewhere.
pub fn percentile_column((method, percentile, _): Setting) -> String {
    match method {
        CalibrationMethod::Percentile => format!("{percentile}"),
        _ => "-".into(),
    }
}
