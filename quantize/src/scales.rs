//! The quantization arithmetic that the tool does once so the engine never does it:
//! per-channel weight scales, activation scale/zero point from a range, and the fixed-point
//! multiplier/shift of a real rescaling factor.

use qcnn_core::format::QuantParams;

/// Symmetric int8 weights use −127..=127, so negation never overflows.
pub const WEIGHT_MAX: f32 = 127.0;

/// The smallest activation range quantized; a layer that only ever output one value
/// (e.g. a dead ReLU) still gets a finite, positive scale.
const MIN_RANGE: f32 = 1e-6;

/// Per-output-channel symmetric scales `max|w| / 127` and the int8 weights, for weights laid
/// out `[out][rest]`. An all-zero channel gets scale 1 (its weights quantize to 0 anyway).
/// Weights that are not a positive multiple of `out_channels` give one scale per chunk of
/// `len / out_channels` (at least 1) weights, not `out_channels` scales: never a panic
/// (`export::quantize_channels` refuses such weights with an error naming them).
pub fn quantize_weights(weights: &[f32], out_channels: usize) -> (Vec<f32>, Vec<i8>) {
    let per_channel = (weights.len() / out_channels.max(1)).max(1);
    let mut scales = Vec::with_capacity(out_channels);
    let mut quantized = Vec::with_capacity(weights.len());
    for channel in weights.chunks(per_channel) {
        let max = channel.iter().fold(0.0f32, |m, w| m.max(w.abs()));
        let scale = if max > 0.0 { max / WEIGHT_MAX } else { 1.0 };
        scales.push(scale);
        quantized.extend(
            channel
                .iter()
                .map(|&w| (w / scale).round().clamp(-WEIGHT_MAX, WEIGHT_MAX) as i8),
        );
    }
    (scales, quantized)
}

/// Affine int8 parameters covering `[min, max]`, widened to include 0 so that real zero (ReLU's
/// floor, and the padding) is exact. A range starting at 0 gets zero point −128.
pub fn activation_params(min: f32, max: f32) -> QuantParams {
    let (min, max) = (min.min(0.0), max.max(0.0));
    let scale = (max - min).max(MIN_RANGE) / 255.0;
    let zero_point = (-128.0 - min / scale).round().clamp(-128.0, 127.0) as i8;
    QuantParams { scale, zero_point }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Multiplier {
    /// Q31 mantissa in `[2^30, 2^31)`, or 0.
    pub multiplier: i32,
    /// Power of two, `-31..=30`; positive is a left shift.
    pub shift: i8,
}

#[derive(Clone, Copy, Debug, PartialEq, thiserror::Error)]
#[error(
    "rescaling factor {0} cannot be represented (it must be finite, non-negative and below 2^30)"
)]
pub struct MultiplierError(pub f64);

/// TFLite's `QuantizeMultiplier`: `real = multiplier · 2^shift / 2^31` with the mantissa rounded
/// to nearest. Factors too small for a shift of −31 become 0 (the output is then the zero
/// point), as TFLite does.
pub fn quantize_multiplier(real: f64) -> Result<Multiplier, MultiplierError> {
    if !real.is_finite() || real < 0.0 {
        return Err(MultiplierError(real));
    }
    if real == 0.0 {
        return Ok(Multiplier {
            multiplier: 0,
            shift: 0,
        });
    }
    // frexp: real = fraction · 2^exponent with fraction in [0.5, 1).
    let mut exponent = real.log2().floor() as i32 + 1;
    let mut fraction = real / 2f64.powi(exponent);
    if fraction >= 1.0 {
        fraction /= 2.0;
        exponent += 1;
    } else if fraction < 0.5 {
        fraction *= 2.0;
        exponent -= 1;
    }
    let mut q = (fraction * (1u64 << 31) as f64).round() as i64;
    if q == 1 << 31 {
        q /= 2;
        exponent += 1;
    }
    if exponent < -31 {
        return Ok(Multiplier {
            multiplier: 0,
            shift: 0,
        });
    }
    if exponent > 30 {
        return Err(MultiplierError(real));
    }
    Ok(Multiplier {
        multiplier: q as i32,
        shift: exponent as i8,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_abs_diff_eq;

    fn real(m: Multiplier) -> f64 {
        f64::from(m.multiplier) * 2f64.powi(i32::from(m.shift)) / 2f64.powi(31)
    }

    #[test]
    fn multiplier_hand_cases() {
        assert_eq!(
            quantize_multiplier(0.5).unwrap(),
            Multiplier {
                multiplier: 1 << 30,
                shift: 0
            }
        );
        assert_eq!(
            quantize_multiplier(1.0).unwrap(),
            Multiplier {
                multiplier: 1 << 30,
                shift: 1
            }
        );
        assert_eq!(
            quantize_multiplier(0.75).unwrap(),
            Multiplier {
                multiplier: 3 << 29,
                shift: 0
            }
        );
        assert_eq!(
            quantize_multiplier(0.0).unwrap(),
            Multiplier {
                multiplier: 0,
                shift: 0
            }
        );
        // Just below 1: the mantissa rounds up to 2^31 and is renormalized.
        assert_eq!(
            quantize_multiplier(1.0 - 1e-12).unwrap(),
            Multiplier {
                multiplier: 1 << 30,
                shift: 1
            }
        );
        // Too small for any shift: zero.
        assert_eq!(quantize_multiplier(1e-12).unwrap().multiplier, 0);
        assert!(quantize_multiplier(f64::NAN).is_err());
        assert!(quantize_multiplier(-0.1).is_err());
        assert!(quantize_multiplier(2f64.powi(31)).is_err());
    }

    #[test]
    fn multipliers_are_normalized_and_accurate() {
        let mut x = 3.7e-9f64;
        while x < 1e8 {
            let m = quantize_multiplier(x).unwrap();
            assert!((1 << 30..=i32::MAX).contains(&m.multiplier), "{x}: {m:?}");
            assert!((-31..=30).contains(&m.shift));
            assert!(
                (real(m) - x).abs() <= x * 2f64.powi(-30),
                "{x}: {}",
                real(m)
            );
            x *= 1.37;
        }
    }

    #[test]
    fn weights_are_symmetric_per_channel() {
        let w = [0.5, -1.0, 0.25, 0.0, 0.0, 0.0, 2.0, 1.0, -0.01];
        let (scales, q) = quantize_weights(&w, 3);
        assert_eq!(scales, [1.0 / 127.0, 1.0, 2.0 / 127.0]);
        assert_eq!(q, [64, -127, 32, 0, 0, 0, 127, 64, -1]);
    }

    #[test]
    fn activation_params_keep_zero_exact() {
        let relu = activation_params(0.0, 2.55);
        assert_eq!(relu.zero_point, -128);
        assert_abs_diff_eq!(relu.scale, 0.01, epsilon = 1e-7);
        let both = activation_params(-1.0, 3.0);
        assert_eq!(both.zero_point, -64);
        // Real 0 maps to an integer exactly.
        assert_abs_diff_eq!(
            0.0 / both.scale + f32::from(both.zero_point),
            -64.0,
            epsilon = 1e-6
        );
        // A range not containing zero is widened to it.
        assert_eq!(activation_params(1.0, 2.0).zero_point, -128);
        assert_eq!(activation_params(-2.0, -1.0).zero_point, 127);
        let dead = activation_params(0.0, 0.0);
        assert!(dead.scale > 0.0 && dead.scale.is_finite());
    }
}
