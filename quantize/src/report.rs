//! What a quantization run produced, as JSON and as a readable summary.

use std::fmt::Write as _;
use std::path::PathBuf;

use serde::Serialize;

use crate::auto_calibration::AutoChoice;
use crate::calibrate::CalibratedOutput;
use crate::export::QuantizedLayer;
use crate::onnx::ImportReport;
use crate::plan::Plans;
use qcnn_config::config::CalibrationMethod;
use qcnn_dataset::scores::Scores;

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub model: String,
    pub checkpoint: PathBuf,
    pub checkpoint_sha256: String,
    /// What importing an ONNX file folded, dropped or reordered; absent for a checkpoint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub onnx: Option<ImportReport>,
    pub calibration: CalibrationReport,
    pub validation: ValidationReport,
    pub layers: Vec<QuantizedLayer>,
    pub blob: BlobReport,
    /// Where every tensor sits in the arena, per kind of target (`qcnn profile` prints it).
    pub plan: Plans,
    /// A graph model's nodes, tensors and arena plan (absent for a layer sequence).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub graph: Option<crate::graph::export::GraphReport>,
    pub seconds: Timings,
}

#[derive(Clone, Debug, Serialize)]
pub struct CalibrationReport {
    pub method: CalibrationMethod,
    pub percentile: Option<f64>,
    /// Drawn from the training split only.
    pub images: usize,
    pub outputs: Vec<CalibratedOutput>,
    /// With `method: auto`: each candidate's validation scores and the one kept (`method`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auto: Option<AutoChoice>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ValidationReport {
    pub samples: usize,
    pub float: Scores,
    pub int8: Scores,
    /// Fraction of validation images where float and int8 predict the same class.
    pub agreement: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct BlobReport {
    pub bytes: usize,
    pub sha256: String,
    /// Arena the engine needs for one inference on this host (the portable kernels'
    /// scratch); `plan.cortex_m4.arena_bytes` is a Cortex-M4's.
    pub arena_bytes: usize,
    pub macs: u64,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Timings {
    /// Reading the dataset, when the caller timed it (the CLI does).
    pub load_data: Option<f64>,
    pub read_checkpoint: f64,
    pub calibrate: f64,
    pub export: f64,
    /// `method: auto`: calibrating and scoring every candidate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub choose_calibration: Option<f64>,
    /// The float reference on the validation split (loading the split included).
    pub validate_float: f64,
    /// The int8 engine on the validation split.
    pub validate_int8: f64,
    /// The whole run, when the caller timed it.
    pub total: Option<f64>,
}

impl Report {
    pub fn summary(&self) -> String {
        let mut s = String::new();
        let v = &self.validation;
        let c = &self.calibration;
        let _ = writeln!(
            s,
            "model       {} <- {}",
            self.model,
            self.checkpoint.display()
        );
        if let Some(onnx) = &self.onnx {
            let _ = writeln!(
                s,
                "onnx        opset {}, {} nodes, from {}",
                onnx.opset, onnx.nodes, onnx.producer
            );
            for (what, nodes) in [
                ("folded", &onnx.folded),
                ("dropped", &onnx.dropped),
                ("moved", &onnx.moved),
            ] {
                for node in nodes {
                    let _ = writeln!(s, "            {what} {node}");
                }
            }
        }
        let percentile = c.percentile.map(|p| format!(" {p}%")).unwrap_or_default();
        let _ = writeln!(
            s,
            "calibration {:?}{percentile} on {} training images",
            c.method, c.images
        );
        if let Some(auto) = &c.auto {
            let _ = writeln!(
                s,
                "            chosen by auto: best of {} on {} validation images of {}",
                auto.candidates.len(),
                auto.validation_images,
                auto.validation_source.describe()
            );
        }
        let _ = writeln!(
            s,
            "validation  {} images        accuracy   macro-F1",
            v.samples
        );
        for (name, scores) in [("float", &v.float), ("int8", &v.int8)] {
            let _ = writeln!(
                s,
                "            {name:<5}              {:>7.2}%   {:>7.2}%",
                100.0 * scores.accuracy,
                100.0 * scores.f1_macro
            );
        }
        let _ = writeln!(
            s,
            "            agreement          {:>7.2}%",
            100.0 * v.agreement
        );
        let _ = writeln!(
            s,
            "layers      kind                    steps          in scale/zp        out scale/zp    weight scales"
        );
        for l in &self.layers {
            let steps = comma_separated(&l.steps);
            let weights = if l.weight_scales.is_empty() {
                String::from("-")
            } else {
                let min = l
                    .weight_scales
                    .iter()
                    .copied()
                    .fold(f32::INFINITY, f32::min);
                let max = l.weight_scales.iter().copied().fold(0.0, f32::max);
                format!("{min:.3e}..{max:.3e}")
            };
            let _ = writeln!(
                s,
                "            {:<23} {:<14} {:.3e}/{:<5} {:.3e}/{:<5} {weights}",
                l.kind,
                steps,
                l.input.scale,
                l.input.zero_point,
                l.output.scale,
                l.output.zero_point
            );
        }
        if let Some(g) = &self.graph {
            let _ = writeln!(
                s,
                "graph       node                     op                     inputs   output  shape         out scale/zp    arena offset"
            );
            for n in &g.nodes {
                let inputs = comma_separated(&n.inputs);
                let [c, h, w] = n.output_shape;
                let _ = writeln!(
                    s,
                    "            {:<24} {:<22} {:<8} {:<7} {:<13} {:.3e}/{:<5} {}",
                    n.name,
                    n.op,
                    inputs,
                    n.output,
                    format!("{c}x{h}x{w}"),
                    n.output_quant.scale,
                    n.output_quant.zero_point,
                    if n.in_place {
                        format!("{} (in place)", n.offset)
                    } else {
                        n.offset.to_string()
                    }
                );
            }
            let _ = writeln!(
                s,
                "arena plan  {} bytes by tensor lifetimes ({} with every node out of place; in-place nodes stage through {} bytes of scratch on the Cortex-M4, {} with the portable kernels); live peak (no layout of this order needs less) {}, ping-pong {}, no reuse {}",
                g.arena_bytes,
                g.out_of_place_arena_bytes,
                self.plan.cortex_m4.staging_bytes,
                self.plan.portable.staging_bytes,
                g.live_peak_bytes,
                g.ping_pong_bytes,
                g.no_reuse_bytes
            );
            let best = g.best_order_live_peak_bytes.map_or_else(
                || "not searched (too many orders)".to_owned(),
                |b| b.to_string(),
            );
            let _ = writeln!(
                s,
                "node order  every node out of place: live peak {} in this order, {best} in the best order of the nodes",
                g.out_of_place_live_peak_bytes
            );
        }
        let b = &self.blob;
        let _ = writeln!(
            s,
            "blob        {} bytes, arena {} bytes, {} MACs",
            b.bytes, b.arena_bytes, b.macs
        );
        let _ = writeln!(s, "            sha256 {}", b.sha256);
        let t = &self.seconds;
        let _ = write!(
            s,
            "time        checkpoint {:.2}s, calibrate {:.2}s, export {:.2}s, validate float {:.2}s, int8 {:.2}s",
            t.read_checkpoint, t.calibrate, t.export, t.validate_float, t.validate_int8
        );
        if let Some(load) = t.load_data {
            let _ = write!(s, ", data {load:.2}s");
        }
        if let Some(total) = t.total {
            let _ = write!(s, ", total {total:.2}s");
        }
        s.push('\n');
        s
    }
}

/// Indices as `1,2,3`.
fn comma_separated(indices: &[usize]) -> String {
    indices
        .iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(",")
}
