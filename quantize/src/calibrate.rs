//! Activation ranges for every requantized layer output, observed by running the float model
//! on calibration images. The caller passes training-split images only; the test set never
//! reaches this module.
//!
//! A first pass finds each output's minimum and maximum; `percentile` and `mse` then build a
//! histogram over that range in a second pass, so memory stays constant in the number of images.

use rayon::prelude::*;
use serde::Serialize;

use crate::float_model::{BATCH, FloatModel};
use qcnn_config::architecture::FusedLayer;
use qcnn_config::config::{CalibrationMethod, QuantizeConfig};

const BINS: usize = 2048;

/// Why calibration could not run: settings a library caller passed that the config's checks
/// would have refused.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum CalibrationError {
    #[error(
        "quantize.method auto is not a calibration method itself: choose a candidate first \
         (qcnn_quantize::auto_calibration::candidates), or quantize through the pipeline, which \
         does"
    )]
    Auto,
    #[error("quantize.percentile: {0} is not within (50, 100]")]
    Percentile(f64),
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Range {
    pub min: f32,
    pub max: f32,
}

/// One requantized output: the float step whose activations it quantizes.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct CalibratedOutput {
    pub step: usize,
    /// After a ReLU, so the range starts at 0.
    pub relu: bool,
    /// The last layer: its logits are always kept whole (min/max), since clipping the largest
    /// logits would turn them into ties for argmax.
    pub is_output: bool,
    pub observed: Range,
    pub chosen: Range,
}

/// Calibrated ranges, in layer order.
pub fn calibrate(
    model: &FloatModel,
    images: &[&[u8]],
    settings: &QuantizeConfig,
) -> Result<Vec<CalibratedOutput>, CalibrationError> {
    let fused = model.architecture().fused();
    let points: Vec<(usize, bool)> = fused
        .iter()
        .filter_map(|fused| match fused.layer {
            FusedLayer::Conv2d {
                relu, requantized, ..
            }
            | FusedLayer::Linear {
                relu, requantized, ..
            } => Some((requantized, relu)),
            FusedLayer::MaxPool2d(_) | FusedLayer::Flatten => None,
        })
        .collect();
    let forward = |batch: &[&[u8]], observe: &mut dyn FnMut(usize, &[f32])| {
        model.forward_batch(batch, observe);
    };
    calibrate_points(&forward, BATCH, &points, images, settings)
}

/// A forward pass over a batch of images that shows `observe` every step's output (the step
/// index and the activations of the batch, image after image).
pub type Forward<'a> = dyn Fn(&[&[u8]], &mut dyn FnMut(usize, &[f32])) + Sync + 'a;

/// Calibrated ranges of the outputs `points` names (step, after a ReLU), in that order, for
/// any float model given as `forward` (run on batches of `batch` images); the last point is
/// the logits, kept whole. `settings.method` must be a method, not `auto` (which chooses
/// one), and a percentile within (50, 100]; else the error says which.
pub fn calibrate_points(
    forward: &Forward<'_>,
    batch: usize,
    points: &[(usize, bool)],
    images: &[&[u8]],
    settings: &QuantizeConfig,
) -> Result<Vec<CalibratedOutput>, CalibrationError> {
    match settings.method {
        CalibrationMethod::Auto => return Err(CalibrationError::Auto),
        CalibrationMethod::Percentile
            if !(settings.percentile > 50.0 && settings.percentile <= 100.0) =>
        {
            return Err(CalibrationError::Percentile(settings.percentile));
        }
        _ => {}
    }
    let steps: Vec<usize> = points.iter().map(|&(step, _)| step).collect();
    let observe =
        |new: &(dyn Fn(usize) -> Observer + Sync)| observe(forward, batch, images, &steps, new);
    let observed = observe(&|_| {
        Observer::MinMax(Range {
            min: f32::INFINITY,
            max: f32::NEG_INFINITY,
        })
    });
    let observed: Vec<Range> = observed
        .into_iter()
        .map(|o| match o {
            Observer::MinMax(r) if r.min <= r.max => r,
            _ => Range { min: 0.0, max: 0.0 },
        })
        .collect();
    let histograms = match settings.method {
        CalibrationMethod::MinMax | CalibrationMethod::Auto => None,
        CalibrationMethod::Percentile | CalibrationMethod::Mse => Some(observe(&|i| {
            Observer::Histogram(Histogram::new(observed[i], points[i].1))
        })),
    };
    Ok(points
        .iter()
        .enumerate()
        .map(|(i, &(step, relu))| {
            let is_output = i + 1 == points.len();
            let chosen = match (&histograms, is_output) {
                (Some(h), false) => {
                    let Observer::Histogram(h) = &h[i] else {
                        unreachable!("pass two builds histograms")
                    };
                    match settings.method {
                        CalibrationMethod::Percentile => h.percentile_range(settings.percentile),
                        _ => h.mse_range(),
                    }
                }
                _ => observed[i],
            };
            CalibratedOutput {
                step,
                relu,
                is_output,
                observed: observed[i],
                chosen,
            }
        })
        .collect())
}

#[derive(Clone, Debug)]
enum Observer {
    MinMax(Range),
    Histogram(Histogram),
}

impl Observer {
    fn add(&mut self, values: &[f32]) {
        match self {
            Observer::MinMax(r) => {
                // Eight independent lanes and plain compares (which, like f32::min/max, skip
                // NaN) vectorize; one running min/max would wait on itself at every value.
                let (mut lo, mut hi) = ([r.min; 8], [r.max; 8]);
                let lanes = values.chunks_exact(8);
                for &v in lanes.remainder() {
                    lo[0] = if v < lo[0] { v } else { lo[0] };
                    hi[0] = if v > hi[0] { v } else { hi[0] };
                }
                for chunk in lanes {
                    for l in 0..8 {
                        lo[l] = if chunk[l] < lo[l] { chunk[l] } else { lo[l] };
                        hi[l] = if chunk[l] > hi[l] { chunk[l] } else { hi[l] };
                    }
                }
                r.min = lo.into_iter().fold(r.min, f32::min);
                r.max = hi.into_iter().fold(r.max, f32::max);
            }
            Observer::Histogram(h) => h.add(values),
        }
    }

    fn merge(&mut self, other: &Observer) {
        match (self, other) {
            (Observer::MinMax(a), Observer::MinMax(b)) => {
                a.min = a.min.min(b.min);
                a.max = a.max.max(b.max);
            }
            (Observer::Histogram(a), Observer::Histogram(b)) => {
                a.zeros += b.zeros;
                a.counts
                    .iter_mut()
                    .zip(&b.counts)
                    .for_each(|(x, y)| *x += y);
            }
            _ => unreachable!("observers of one pass are of one kind"),
        }
    }
}

/// Runs every image, feeding the outputs of `steps` to one observer each (made by `new`).
fn observe(
    forward: &Forward<'_>,
    batch: usize,
    images: &[&[u8]],
    steps: &[usize],
    new: &(dyn Fn(usize) -> Observer + Sync),
) -> Vec<Observer> {
    let fresh = || (0..steps.len()).map(new).collect::<Vec<_>>();
    images
        .par_chunks(batch.max(1))
        .map(|batch| {
            let mut observers = fresh();
            forward(batch, &mut |step, values| {
                if let Some(i) = steps.iter().position(|&s| s == step) {
                    observers[i].add(values);
                }
            });
            observers
        })
        .reduce(fresh, |mut a, b| {
            a.iter_mut().zip(&b).for_each(|(x, y)| x.merge(y));
            a
        })
}

/// Counts over `BINS` equal bins spanning the observed range.
#[derive(Clone, Debug)]
struct Histogram {
    range: Range,
    /// After ReLU, exact zeros are most values; they are counted apart because they quantize
    /// exactly whatever the range, so they must not pull the MSE search.
    relu: bool,
    zeros: u64,
    counts: Vec<u64>,
}

impl Histogram {
    fn new(range: Range, relu: bool) -> Histogram {
        Histogram {
            range,
            relu,
            zeros: 0,
            counts: vec![0; BINS],
        }
    }

    fn width(&self) -> f32 {
        (self.range.max - self.range.min) / BINS as f32
    }

    fn add(&mut self, values: &[f32]) {
        let (min, width) = (self.range.min, self.width());
        for &v in values {
            if self.relu && v == 0.0 {
                self.zeros += 1;
            } else if width > 0.0 {
                let bin = ((v - min) / width) as usize;
                self.counts[bin.min(BINS - 1)] += 1;
            }
        }
    }

    /// The value below which `fraction` of all values (zeros included) lie, interpolated
    /// within its bin.
    fn quantile(&self, fraction: f64) -> f32 {
        let total = self.zeros + self.counts.iter().sum::<u64>();
        let target = fraction * total as f64;
        let mut below = self.zeros as f64;
        if below >= target {
            return 0.0f32.clamp(self.range.min, self.range.max);
        }
        for (bin, &count) in self.counts.iter().enumerate() {
            if below + count as f64 >= target {
                let within = ((target - below) / count as f64) as f32;
                return self.range.min + (bin as f32 + within) * self.width();
            }
            below += count as f64;
        }
        self.range.max
    }

    /// Two-sided: `percentile`% of values are at most the top, and as many at least the bottom.
    fn percentile_range(&self, percentile: f64) -> Range {
        let max = self.quantile(percentile / 100.0);
        let min = if self.relu {
            0.0
        } else {
            self.quantile(1.0 - percentile / 100.0)
        };
        Range { min, max }
    }

    /// The range `[α·min, α·max]` whose quantization error (rounding noise inside, clipping
    /// outside), summed over the histogram, is smallest.
    fn mse_range(&self) -> Range {
        let width = f64::from(self.width());
        if width == 0.0 {
            return self.range;
        }
        let centres: Vec<f64> = (0..BINS)
            .map(|b| f64::from(self.range.min) + (b as f64 + 0.5) * width)
            .collect();
        let error = |lo: f64, hi: f64| -> f64 {
            let step = (hi - lo) / 255.0;
            let rounding = step * step / 12.0;
            centres
                .iter()
                .zip(&self.counts)
                .filter(|&(_, &c)| c > 0)
                .map(|(&x, &c)| {
                    let clipped = if x > hi {
                        x - hi
                    } else if x < lo {
                        lo - x
                    } else {
                        0.0
                    };
                    c as f64
                        * if clipped > 0.0 {
                            clipped * clipped
                        } else {
                            rounding
                        }
                })
                .sum()
        };
        let (min, max) = (
            f64::from(self.range.min.min(0.0)),
            f64::from(self.range.max.max(0.0)),
        );
        let best = (1..=BINS)
            .map(|i| i as f64 / BINS as f64)
            .map(|alpha| (error(alpha * min, alpha * max), alpha))
            .min_by(|a, b| a.0.total_cmp(&b.0))
            .map_or(1.0, |(_, alpha)| alpha);
        Range {
            min: (best * min) as f32,
            max: (best * max) as f32,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::{abs_diff_eq, assert_abs_diff_eq};

    fn histogram(values: &[f32], relu: bool) -> Histogram {
        let range = Range {
            min: values.iter().copied().fold(f32::INFINITY, f32::min),
            max: values.iter().copied().fold(f32::NEG_INFINITY, f32::max),
        };
        let mut h = Histogram::new(range, relu);
        h.add(values);
        h
    }

    /// A float "model" of one step whose activations are the image's pixels.
    fn pixels_forward(batch: &[&[u8]], observe: &mut dyn FnMut(usize, &[f32])) {
        for image in batch {
            let values: Vec<f32> = image.iter().map(|&p| f32::from(p)).collect();
            observe(0, &values);
        }
    }

    fn settings(method: CalibrationMethod, percentile: f64) -> QuantizeConfig {
        QuantizeConfig {
            calibration_images: 2,
            method,
            percentile,
            auto_validation: None,
        }
    }

    #[test]
    fn auto_and_a_bad_percentile_are_errors_not_panics() {
        let images: [&[u8]; 2] = [&[0, 10, 20], &[5, 250, 7]];
        let points = [(0, false)];
        let run = |method, percentile| {
            calibrate_points(
                &pixels_forward,
                4,
                &points,
                &images,
                &settings(method, percentile),
            )
        };
        let err = run(CalibrationMethod::Auto, 99.9).unwrap_err();
        assert_eq!(err, CalibrationError::Auto);
        assert!(
            err.to_string().contains("auto_calibration::candidates"),
            "{err}"
        );
        for bad in [101.0, 50.0, 10.0, f64::NAN] {
            let err = run(CalibrationMethod::Percentile, bad).unwrap_err();
            assert!(
                err.to_string().starts_with("quantize.percentile: "),
                "{err}"
            );
        }
        // The same calls with a method: the pixels' range.
        let ranges = run(CalibrationMethod::MinMax, 10.0).unwrap();
        assert_eq!(
            ranges[0].chosen,
            Range {
                min: 0.0,
                max: 250.0
            }
        );
        assert!(run(CalibrationMethod::Percentile, 100.0).is_ok());
    }

    #[test]
    fn percentile_clips_rare_outliers_only() {
        // 10,000 values spread over 0..1 and one outlier at 100.
        let mut values: Vec<f32> = (0..10_000).map(|i| i as f32 / 10_000.0).collect();
        values.push(100.0);
        let h = histogram(&values, true);
        let r = h.percentile_range(99.9);
        assert_eq!(r.min, 0.0);
        assert!(r.max > 0.95 && r.max < 1.1, "{r:?}");
        // Keeping everything keeps the outlier.
        assert_abs_diff_eq!(h.percentile_range(100.0).max, 100.0, epsilon = 1e-3);
    }

    #[test]
    fn two_sided_percentile() {
        let values: Vec<f32> = (-5_000..5_000).map(|i| i as f32 / 1_000.0).collect();
        let r = histogram(&values, false).percentile_range(99.0);
        assert_abs_diff_eq!(r.min, -4.9, epsilon = 0.02);
        assert_abs_diff_eq!(r.max, 4.9, epsilon = 0.02);
    }

    #[test]
    fn mse_clips_a_long_tail_but_not_a_uniform_range() {
        let uniform: Vec<f32> = (1..=10_000).map(|i| i as f32 / 10_000.0).collect();
        let r = histogram(&uniform, true).mse_range();
        assert!(r.max > 0.98, "{r:?}");
        // Exponentially distributed (quantiles of Exp(1)): the sparse tail up to ~11.5 is
        // clipped, the bulk is kept.
        let n = 100_000;
        let exponential: Vec<f32> = (0..n)
            .map(|i| -((1.0 - (i as f64 + 0.5) / n as f64).ln()) as f32)
            .collect();
        let observed_max = exponential.iter().copied().fold(0.0, f32::max);
        let r = histogram(&exponential, true).mse_range();
        assert!(
            r.max > 5.0 && r.max < 0.95 * observed_max,
            "{r:?}, max {observed_max}"
        );
    }

    #[test]
    fn min_max_sees_every_lane_and_the_tail_and_skips_nan() {
        let fresh = || {
            Observer::MinMax(Range {
                min: f32::INFINITY,
                max: f32::NEG_INFINITY,
            })
        };
        // 8 + 8 + 3 values: the extremes sit in different lanes, in the tail, and after a NaN.
        for (at_min, at_max) in [(17, 3), (5, 18), (0, 15)] {
            let mut values: Vec<f32> = (0..19).map(|i| (i % 5) as f32).collect();
            values[at_min] = -7.5;
            values[at_max] = 9.25;
            values[at_min.max(at_max) - 1] = f32::NAN;
            let mut observer = fresh();
            observer.add(&values[..10]);
            observer.add(&values[10..]);
            let Observer::MinMax(r) = observer else {
                unreachable!()
            };
            assert_eq!((r.min, r.max), (-7.5, 9.25), "{at_min} {at_max}");
        }
    }

    #[test]
    fn relu_zeros_are_counted_apart() {
        let mut values = vec![0.0f32; 1000];
        values.extend((1..=100).map(|i| i as f32));
        let h = histogram(&values, true);
        assert_eq!(h.zeros, 1000);
        assert_eq!(h.counts.iter().sum::<u64>(), 100);
        // Zeros count for the percentile: the 95th percentile of 1100 values is the 45th non-zero.
        let r = h.percentile_range(95.0);
        assert!(abs_diff_eq!(r.max, 45.0, epsilon = 0.6), "{r:?}");
    }
}
