//! Builds the `.qcnn` blob: int8 weights per output channel, int32 biases with the input zero
//! point folded in, and per-channel multiplier/shift, laid out by `qcnn_core::format`.

use qcnn_core::format::{
    self, DataWriter, EncodeError, Header, INPUT_SCALE, INPUT_ZERO_POINT, Layer, Pool, QuantParams,
    Requant,
};
use serde::Serialize;

use crate::calibrate::{CalibratedOutput, CalibrationError};
use crate::checkpoint::{Checkpoint, CheckpointError};
use crate::scales::{self, MultiplierError};
use qcnn_config::architecture::{Architecture, Fused, FusedLayer, Shape};
use qcnn_config::model::PoolSpec;

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("{key}: channel {channel}'s bias {bias} is too large for int32 at scale {scale:e}")]
    BiasOverflow {
        key: String,
        channel: usize,
        bias: f32,
        scale: f64,
    },
    #[error("{key}: channel {channel}'s requantization")]
    Multiplier {
        key: String,
        channel: usize,
        #[source]
        source: MultiplierError,
    },
    #[error("writing the blob: {0}")]
    Encode(EncodeError),
    #[error(transparent)]
    Calibration(#[from] CalibrationError),
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error(
        "calibration holds {given} ranges, fewer than the model's Conv2d and Linear layers \
         (calibrate returns one for each)"
    )]
    MissingRange { given: usize },
    #[error(
        "{key}: {weights} weights for {channels} output channels (bias values); the weights \
         must be a positive multiple of the channels"
    )]
    WeightShape {
        key: String,
        weights: usize,
        channels: usize,
    },
}

/// What one int8 layer computes and how it is quantized, for the report.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct QuantizedLayer {
    /// e.g. "conv2d+relu+maxpool2d".
    pub kind: String,
    /// The `nn.Sequential` indices fused into this layer.
    pub steps: Vec<usize>,
    pub input: QuantParams,
    pub output: QuantParams,
    /// Per output channel; empty for layers without weights.
    pub weight_scales: Vec<f32>,
}

pub struct Exported {
    pub blob: Vec<u8>,
    pub layers: Vec<QuantizedLayer>,
}

/// `calibration` holds one range per Conv2d/Linear, in order (as `calibrate` returns them);
/// `checkpoint` must hold `architecture`'s tensors (checked again here, as a library caller
/// may pass one that was not read with `Checkpoint::read_checked`).
pub fn export(
    architecture: &Architecture,
    checkpoint: &Checkpoint,
    calibration: &[CalibratedOutput],
) -> Result<Exported, ExportError> {
    checkpoint.check(architecture)?;
    let fused = architecture.fused();
    let mut buffer = vec![0u8; data_upper_bound(architecture)];
    let mut writer = DataWriter::new(&mut buffer);
    let mut layers = heapless::Vec::<Layer, { format::MAX_LAYERS }>::new();
    let mut report = Vec::new();
    let mut input = QuantParams {
        scale: INPUT_SCALE,
        zero_point: INPUT_ZERO_POINT,
    };
    let mut ranges = calibration.iter();
    for Fused { layer, steps } in &fused {
        // Conv2d and Linear take the next calibrated range, in order.
        let mut quantize = |index, out_channels| {
            let range = ranges.next().ok_or(ExportError::MissingRange {
                given: calibration.len(),
            })?;
            quantize_layer(
                architecture,
                checkpoint,
                index,
                out_channels,
                input,
                range,
                &mut writer,
            )
        };
        let (blob_layer, output, weight_scales) = match *layer {
            FusedLayer::Conv2d {
                index,
                spec,
                relu,
                pool,
                ..
            } => {
                let (requant, output, scales) = quantize(index, spec.out_channels)?;
                let conv = format::Conv2d {
                    in_channels: spec.in_channels as u16,
                    out_channels: spec.out_channels as u16,
                    kernel: spec.kernel as u8,
                    stride: spec.stride as u8,
                    padding: spec.padding as u8,
                    relu,
                    pool: pool.map(blob_pool),
                    weights: requant.0,
                    requant: requant.1,
                };
                (Layer::Conv2d(conv), output, scales)
            }
            FusedLayer::Linear {
                index, spec, relu, ..
            } => {
                let (requant, output, scales) = quantize(index, spec.out_features)?;
                let linear = format::Linear {
                    in_features: spec.in_features as u32,
                    out_features: spec.out_features as u32,
                    relu,
                    weights: requant.0,
                    requant: requant.1,
                };
                (Layer::Linear(linear), output, scales)
            }
            // Max-pooling and flattening move int8 values without rescaling them.
            FusedLayer::MaxPool2d(spec) => (Layer::MaxPool2d(blob_pool(spec)), input, Vec::new()),
            FusedLayer::Flatten => (Layer::Flatten, input, Vec::new()),
        };
        report.push(QuantizedLayer {
            kind: fused_kind(layer),
            steps: steps.clone(),
            input,
            output,
            weight_scales,
        });
        layers
            .push(blob_layer)
            .map_err(|_| ExportError::Encode(EncodeError::TooLarge))?;
        input = output;
    }
    let data_len = writer.len();
    let Shape::Map { c, h, w } = architecture.input else {
        unreachable!("the input is a C×H×W map")
    };
    let header = Header {
        input: format::Shape {
            c: c as u16,
            h: h as u16,
            w: w as u16,
        },
        layers,
        data_len: u32::try_from(data_len)
            .map_err(|_| ExportError::Encode(EncodeError::TooLarge))?,
    };
    let mut blob = vec![0u8; format::encoded_len(&header, data_len).map_err(ExportError::Encode)?];
    let written =
        format::encode(&header, &buffer[..data_len], &mut blob).map_err(ExportError::Encode)?;
    blob.truncate(written);
    Ok(Exported {
        blob,
        layers: report,
    })
}

fn blob_pool(spec: PoolSpec) -> Pool {
    Pool {
        kernel: spec.kernel as u8,
        stride: spec.stride() as u8,
    }
}

fn fused_kind(layer: &FusedLayer) -> String {
    match *layer {
        FusedLayer::Conv2d { relu, pool, .. } => {
            format!(
                "conv2d{}{}",
                if relu { "+relu" } else { "" },
                if pool.is_some() { "+maxpool2d" } else { "" }
            )
        }
        FusedLayer::Linear { relu, .. } => format!("linear{}", if relu { "+relu" } else { "" }),
        FusedLayer::MaxPool2d(_) => "maxpool2d".into(),
        FusedLayer::Flatten => "flatten".into(),
    }
}

/// Quantizes one Conv2d or Linear (weights `[out][…]`) and writes its sections.
#[allow(clippy::type_complexity)]
fn quantize_layer(
    architecture: &Architecture,
    checkpoint: &Checkpoint,
    index: usize,
    out_channels: usize,
    input: QuantParams,
    range: &CalibratedOutput,
    writer: &mut DataWriter,
) -> Result<((format::Section, Requant), QuantParams, Vec<f32>), ExportError> {
    let weight_key = architecture.weight_key(index);
    let bias_key = architecture.bias_key(index);
    let output = scales::activation_params(range.chosen.min, range.chosen.max);
    let Channels {
        weight_scales,
        weights,
        bias: bias_q,
        multipliers,
        shifts,
    } = quantize_channels(
        &weight_key,
        &bias_key,
        &checkpoint.get(&weight_key).data,
        &checkpoint.get(&bias_key).data,
        input,
        output,
    )?;
    debug_assert_eq!(weight_scales.len(), out_channels);
    let encode = ExportError::Encode;
    let weights_section = writer.i8s(&weights).map_err(encode)?;
    let requant = Requant {
        bias: writer.i32s(&bias_q).map_err(encode)?,
        multiplier: writer.i32s(&multipliers).map_err(encode)?,
        shift: writer.i8s(&shifts).map_err(encode)?,
        output,
        weight_scales: writer.f32s(&weight_scales).map_err(encode)?,
    };
    Ok(((weights_section, requant), output, weight_scales))
}

/// A Conv or Linear layer's per-output-channel int8 arrays, as both blob versions hold them.
pub struct Channels {
    pub weight_scales: Vec<f32>,
    pub weights: Vec<i8>,
    /// At scale `s_in·s_w[o]`, with the input zero point folded in.
    pub bias: Vec<i32>,
    pub multipliers: Vec<i32>,
    pub shifts: Vec<i8>,
}

/// Quantizes weights `[out][…]` symmetric per output channel, the bias to int32 and each
/// channel's rescale `s_in·s_w[o]/s_out` to a Q31 multiplier and shift; the keys name the
/// parameters in errors.
pub fn quantize_channels(
    weight_key: &str,
    bias_key: &str,
    weight: &[f32],
    bias: &[f32],
    input: QuantParams,
    output: QuantParams,
) -> Result<Channels, ExportError> {
    let out_channels = bias.len();
    if out_channels == 0 || weight.is_empty() || !weight.len().is_multiple_of(out_channels) {
        return Err(ExportError::WeightShape {
            key: weight_key.to_owned(),
            weights: weight.len(),
            channels: out_channels,
        });
    }
    let (weight_scales, weights) = scales::quantize_weights(weight, out_channels);
    let per_channel = (weights.len() / out_channels.max(1)).max(1);
    let mut bias_q = Vec::with_capacity(out_channels);
    let mut multipliers = Vec::with_capacity(out_channels);
    let mut shifts = Vec::with_capacity(out_channels);
    for (channel, (&scale_w, row)) in weight_scales
        .iter()
        .zip(weights.chunks(per_channel))
        .enumerate()
    {
        let accumulator_scale = f64::from(input.scale) * f64::from(scale_w);
        let weight_sum: i64 = row.iter().map(|&w| i64::from(w)).sum();
        let folded = (f64::from(bias[channel]) / accumulator_scale).round() as i64
            - i64::from(input.zero_point) * weight_sum;
        bias_q.push(
            i32::try_from(folded).map_err(|_| ExportError::BiasOverflow {
                key: bias_key.to_owned(),
                channel,
                bias: bias[channel],
                scale: accumulator_scale,
            })?,
        );
        let m = scales::quantize_multiplier(accumulator_scale / f64::from(output.scale)).map_err(
            |source| ExportError::Multiplier {
                key: weight_key.to_owned(),
                channel,
                source,
            },
        )?;
        multipliers.push(m.multiplier);
        shifts.push(m.shift);
    }
    Ok(Channels {
        weight_scales,
        weights,
        bias: bias_q,
        multipliers,
        shifts,
    })
}

/// Bytes the data section can take: every array plus up to 3 bytes of alignment before each.
fn data_upper_bound(architecture: &Architecture) -> usize {
    architecture
        .parameters()
        .iter()
        .map(|p| {
            let n: usize = p.shape.iter().product();
            // Weights: 1 byte each. Bias: 4 (bias) + 4 (multiplier) + 1 (shift) + 4 (scale).
            if p.shape.len() == 1 {
                13 * n + 12
            } else {
                n + 3
            }
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_that_do_not_fit_the_channels_are_an_error_naming_them() {
        let params = QuantParams {
            scale: 0.1,
            zero_point: 0,
        };
        let run = |weights: &[f32], bias: &[f32]| {
            quantize_channels("w", "b", weights, bias, params, params).map(|c| c.weights)
        };
        // No bias (no channel), no weights, and 5 weights for 2 channels: each once panicked
        // (a division by zero, `chunks(0)`) or quantized nonsense.
        for (weights, bias) in [
            (&[1.0, 2.0][..], &[][..]),
            (&[][..], &[0.0, 0.0][..]),
            (&[1.0, 2.0, 3.0, 4.0, 5.0][..], &[0.0, 0.0][..]),
        ] {
            let err = run(weights, bias).unwrap_err().to_string();
            assert!(
                err.starts_with(&format!(
                    "w: {} weights for {} output channels",
                    weights.len(),
                    bias.len()
                )),
                "{err}"
            );
        }
        assert_eq!(run(&[1.0, -2.0], &[0.0, 0.0]).unwrap(), [127, -127]);
    }
}
