//! The whole quantization: checkpoint → float model → calibration on training images →
//! int8 blob → validation of the blob in the engine against the float model.

use std::path::Path;
use std::time::Instant;

use qcnn_core::{Model, PreparedModel};
use qcnn_dataset::checksum::sha256_hex;
use qcnn_dataset::{FashionMnist, LabeledImages};

use crate::auto_calibration::{self, AutoChoice, ValidationSource};
use crate::calibrate::{CalibratedOutput, calibrate};
use crate::checkpoint::{Checkpoint, CheckpointError};
pub use crate::error::QuantizeError;
use crate::export::{QuantizedLayer, export};
use crate::float_model::FloatModel;
use crate::graph::export::GraphReport;
use crate::graph::export::export_graph;
use crate::graph::{FloatGraph, InputNorm};
use crate::onnx::{self, AnyImport, ImportReport};
use crate::plan::Plans;
use crate::report::{BlobReport, CalibrationReport, Report, Timings, ValidationReport};
use crate::sequential::{self, Sequential};
use crate::validate;
use qcnn_config::architecture::Architecture;
use qcnn_config::config::{CalibrationMethod, Config, ConfigError, QuantizeConfig};

/// A quantized checkpoint: the blob, its report, and the float model it came from.
pub struct Quantized {
    pub blob: Vec<u8>,
    pub report: Report,
    pub float_model: FloatReference,
}

/// The float model a blob was quantized from: a layer sequence or a graph.
pub enum FloatReference {
    Sequential(FloatModel),
    Graph(FloatGraph),
}

impl FloatReference {
    /// Logits of every image, in parallel.
    pub fn forward_all(&self, images: &[&[u8]]) -> Vec<Vec<f32>> {
        match self {
            Self::Sequential(model) => model.forward_all(images),
            Self::Graph(graph) => graph.forward_all(images),
        }
    }

    /// Logits of one image.
    pub fn forward(&self, image: &[u8]) -> Vec<f32> {
        match self {
            Self::Sequential(model) => model.forward(image),
            Self::Graph(graph) => graph.forward(image),
        }
    }
}

/// Quantizes the float model at `checkpoint_path`, an ONNX file (which gives its own
/// architecture) or a checkpoint (with `config`'s architecture), with `config`'s settings.
/// Calibration uses the first `calibration_images` of the training split; the report's figures
/// come from the validation split. The test set is not touched. A model the version-1 chain
/// cannot express (an ONNX graph, or a configured sequence with grouped convolution, average
/// pooling, ReLU6 or an unfoldable BatchNorm2d) becomes a version-2 graph blob.
pub fn quantize_checkpoint(
    config: &Config,
    checkpoint_path: &Path,
    data: &FashionMnist,
) -> Result<Quantized, QuantizeError> {
    let clock = Instant::now();
    let mut model = read_model(config, checkpoint_path)?;
    let (inputs, classes) = match &mut model.float {
        FloatSource::Chain(architecture, _) => {
            (architecture.input.len(), architecture.output().len())
        }
        FloatSource::Graph(graph) => {
            graph.input_norm = input_norm(config, graph.tensors[0].shape[0])?;
            (graph.tensors[0].len(), graph.classes())
        }
    };
    qcnn_dataset::check_model_fits(inputs, classes).map_err(QuantizeError::DoesNotFit)?;
    let checkpoint_sha256 = sha256_hex(
        &qcnn_config::regular_file::read(
            checkpoint_path,
            qcnn_config::regular_file::MAX_CHECKPOINT_BYTES,
        )
        .map_err(|source| CheckpointError::Io {
            path: checkpoint_path.to_owned(),
            source,
        })?,
    );
    let mut seconds = Timings {
        read_checkpoint: clock.elapsed().as_secs_f64(),
        ..Timings::default()
    };

    let s = config.data.split;
    let split = data.split(s.train, s.validation, s.seed)?;
    let mut settings = config.quantize;
    // `Config::load` checked this; a `Config` built by hand may not have been.
    let calibration_indices = split
        .train
        .get(..settings.calibration_images)
        .filter(|indices| !indices.is_empty())
        .ok_or_else(|| ConfigError::Invalid {
            path: config.path.clone(),
            key: "quantize.calibration_images",
            message: format!(
                "{} is not within 1..={}, the training split's size",
                settings.calibration_images,
                split.train.len()
            ),
        })?;
    let calibration_images: Vec<&[u8]> = calibration_indices
        .iter()
        .map(|&i| data.train.image(i))
        .collect();
    let auto = if settings.method == CalibrationMethod::Auto {
        let clock = Instant::now();
        let source = ValidationSource::of(&settings, &s);
        let validation =
            auto_calibration::validation_indices(&source, &split, calibration_indices)?;
        let (chosen, choice) = choose_calibration(
            &model.float,
            &settings,
            (source, &data.train.select(&validation)),
            &calibration_images,
        )?;
        seconds.choose_calibration = Some(clock.elapsed().as_secs_f64());
        settings = chosen;
        Some(choice)
    } else {
        None
    };
    let exported = match model.float {
        FloatSource::Chain(architecture, checkpoint) => {
            let clock = Instant::now();
            let float_model = FloatModel::new(&architecture, &checkpoint);
            let calibration = calibrate(&float_model, &calibration_images, &settings)?;
            seconds.calibrate = clock.elapsed().as_secs_f64();
            let clock = Instant::now();
            let exported = export(&architecture, &checkpoint, &calibration)?;
            seconds.export = clock.elapsed().as_secs_f64();
            Exported {
                blob: exported.blob,
                layers: exported.layers,
                calibration,
                graph: None,
                float_model: FloatReference::Sequential(float_model),
            }
        }
        FloatSource::Graph(graph) => {
            let clock = Instant::now();
            let exported = export_graph(&graph, &calibration_images, &settings)?;
            seconds.calibrate = clock.elapsed().as_secs_f64();
            Exported {
                blob: exported.blob,
                layers: Vec::new(),
                calibration: exported.calibration,
                graph: Some(exported.report),
                float_model: FloatReference::Graph(graph),
            }
        }
    };

    let clock = Instant::now();
    let validation = data.train.select(&split.validation);
    let images = validate::images(&validation);
    let float_logits = exported.float_model.forward_all(&images);
    let float_scores =
        validate::scores(float_logits.iter().map(Vec::as_slice), validation.labels());
    seconds.validate_float = clock.elapsed().as_secs_f64();

    let clock = Instant::now();
    // The engine checks the blob exactly as a device would, then runs it.
    let (int8_logits, arena_bytes, macs, plan) = {
        let model = Model::from_bytes(&exported.blob).map_err(QuantizeError::Model)?;
        let prepared = PreparedModel::new(model.clone()).map_err(QuantizeError::Tier)?;
        let logits = validate::int8_logits(&prepared, &images).map_err(QuantizeError::Run)?;
        (logits, model.arena_len(), model.macs(), Plans::of(&model))
    };
    let int8_scores = validate::int8_scores(&int8_logits, validation.labels());
    seconds.validate_int8 = clock.elapsed().as_secs_f64();

    let report = Report {
        model: model.name,
        checkpoint: checkpoint_path.to_owned(),
        checkpoint_sha256,
        onnx: model.onnx_report,
        calibration: CalibrationReport {
            method: settings.method,
            percentile: (settings.method == CalibrationMethod::Percentile)
                .then_some(settings.percentile),
            images: calibration_images.len(),
            outputs: exported.calibration,
            auto,
        },
        validation: ValidationReport {
            samples: validation.len(),
            float: float_scores,
            int8: int8_scores,
            agreement: validate::agreement(&float_logits, &int8_logits),
        },
        layers: exported.layers,
        blob: BlobReport {
            bytes: exported.blob.len(),
            sha256: sha256_hex(&exported.blob),
            arena_bytes,
            macs,
        },
        plan,
        graph: exported.graph,
        seconds,
    };
    Ok(Quantized {
        blob: exported.blob,
        report,
        float_model: exported.float_model,
    })
}

/// `auto`: every candidate of `settings` calibrated on `calibration_images` and scored on
/// `validation` (images no candidate calibrated on, from `source`); the one kept.
fn choose_calibration(
    float: &FloatSource,
    settings: &QuantizeConfig,
    (source, validation): (ValidationSource, &LabeledImages),
    calibration_images: &[&[u8]],
) -> Result<(QuantizeConfig, AutoChoice), QuantizeError> {
    let candidates = auto_calibration::candidates(settings);
    let images = validate::images(validation);
    let float_logits = match float {
        FloatSource::Chain(architecture, checkpoint) => {
            FloatModel::new(architecture, checkpoint).forward_all(&images)
        }
        FloatSource::Graph(graph) => graph.forward_all(&images),
    };
    let choice = auto_calibration::choose(
        &candidates,
        source,
        &images,
        validation.labels(),
        &float_logits,
        |candidate| {
            Ok(match float {
                FloatSource::Chain(architecture, checkpoint) => {
                    let float_model = FloatModel::new(architecture, checkpoint);
                    let calibration = calibrate(&float_model, calibration_images, candidate)?;
                    export(architecture, checkpoint, &calibration)?.blob
                }
                FloatSource::Graph(graph) => {
                    export_graph(graph, calibration_images, candidate)?.blob
                }
            })
        },
    )?;
    Ok((candidates[choice.chosen], choice))
}

/// A blob with what the report says of it, and the float model it came from.
struct Exported {
    blob: Vec<u8>,
    layers: Vec<QuantizedLayer>,
    calibration: Vec<CalibratedOutput>,
    graph: Option<GraphReport>,
    float_model: FloatReference,
}

/// A float model ready to quantize: a version-1 chain, or a graph.
enum FloatSource {
    Chain(Architecture, Checkpoint),
    Graph(FloatGraph),
}

struct ReadModel {
    name: String,
    float: FloatSource,
    onnx_report: Option<ImportReport>,
}

/// The float model with its name: from an ONNX file itself, or from config.yaml's model
/// section and a checkpoint (BatchNorm2d folded, [`sequential::prepare`]).
fn read_model(config: &Config, path: &Path) -> Result<ReadModel, QuantizeError> {
    if onnx::is_onnx(path) {
        // A normalized input needs the graph engine: its image tensor carries the
        // normalization in its scale and zero point (version 1 reads pixel/255 only).
        let imported = if config.preprocess.is_identity() {
            onnx::import(path)?
        } else {
            let (graph, report) = onnx::import_graph(path)?;
            AnyImport::Graph(graph, report)
        };
        return Ok(match imported {
            AnyImport::Graph(graph, report) => ReadModel {
                name: graph.name.clone(),
                float: FloatSource::Graph(graph),
                onnx_report: Some(report),
            },
            AnyImport::Sequential(imported) => ReadModel {
                name: imported.model.name,
                float: FloatSource::Chain(imported.architecture, imported.checkpoint),
                onnx_report: Some(imported.report),
            },
        });
    }
    if !config.preprocess.is_identity() {
        return Err(QuantizeError::Config(ConfigError::Invalid {
            path: config.path.clone(),
            key: "preprocess",
            message: format!(
                "mean {:?} and std {:?} need an ONNX model (a graph blob); a checkpoint's \
                 layer sequence reads pixel/255",
                config.preprocess.mean, config.preprocess.std
            ),
        }));
    }
    let architecture = config.architecture()?;
    let checkpoint = Checkpoint::read_checked(path, &architecture)?;
    let name = config
        .model
        .as_ref()
        .map(|m| m.name.clone())
        .unwrap_or_default();
    let float = match sequential::prepare(&architecture, &checkpoint, &name)? {
        Sequential::Chain(architecture, checkpoint) => FloatSource::Chain(architecture, checkpoint),
        Sequential::Graph(graph) => FloatSource::Graph(graph),
    };
    Ok(ReadModel {
        name,
        float,
        onnx_report: None,
    })
}

/// config.yaml's `preprocess` for a `channels`-channel image, or the error naming the key.
pub fn input_norm(config: &Config, channels: usize) -> Result<InputNorm, QuantizeError> {
    let (mean, std) =
        config
            .preprocess
            .per_tensor(channels)
            .map_err(|message| ConfigError::Invalid {
                path: config.path.clone(),
                key: "preprocess",
                message,
            })?;
    Ok(InputNorm {
        mean: mean as f32,
        std: std as f32,
    })
}
