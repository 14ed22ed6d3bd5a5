#![no_main]
//! ONNX import on any bytes: an imported model or a named `OnnxError`, never a panic; an
//! imported model's parameters match its architecture, and its float reference runs.

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use qcnn_quantize::float_model::FloatModel;
use qcnn_quantize::onnx::import_bytes;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(imported) = import_bytes(Path::new("fuzz.onnx"), bytes) {
        imported
            .checkpoint
            .check(&imported.architecture)
            .expect("an imported model's parameters fit its architecture");
        // One all-zero image through the float reference, when it is small enough to be quick.
        let input = imported.architecture.input.len();
        if input <= 4096 {
            let logits = FloatModel::new(&imported.architecture, &imported.checkpoint)
                .forward(&vec![0u8; input]);
            assert_eq!(logits.len(), imported.model.classes);
        }
    }
});
