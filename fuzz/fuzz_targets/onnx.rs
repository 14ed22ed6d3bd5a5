#![no_main]
//! ONNX import on any bytes: an imported model or a named `OnnxError`, never a panic; an
//! imported chain's parameters match its architecture, and the float reference of either kind
//! runs.

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use qcnn_quantize::float_model::FloatModel;
use qcnn_quantize::onnx::{AnyImport, import_bytes};

fuzz_target!(|bytes: &[u8]| {
    let Ok(imported) = import_bytes(Path::new("fuzz.onnx"), bytes) else {
        return;
    };
    let (input, classes) = imported.input_and_classes();
    // One all-zero image through the float reference, when it is small enough to be quick.
    let image = vec![0u8; input];
    match imported {
        AnyImport::Sequential(chain) => {
            chain
                .checkpoint
                .check(&chain.architecture)
                .expect("an imported model's parameters fit its architecture");
            if input <= 4096 {
                let logits =
                    FloatModel::new(&chain.architecture, &chain.checkpoint).forward(&image);
                assert_eq!(logits.len(), classes);
            }
        }
        AnyImport::Graph(graph, _) => {
            if input <= 4096 {
                assert_eq!(graph.forward(&image).len(), classes);
            }
        }
    }
});
