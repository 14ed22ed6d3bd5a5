//! The IDX reader on any bytes: gzip or raw, as images and as labels, gives data or a
//! `DatasetError`, never a panic. Whatever it accepts has the promised shape.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use qcnn_dataset::{CLASSES, IMAGE_BYTES, idx};

fuzz_target!(|bytes: &[u8]| {
    let path = Path::new("fuzz.idx");
    // Raw bytes go through unchanged; bytes with the gzip magic are inflated.
    let Ok(content) = idx::decompress(path, bytes.to_vec()) else {
        return;
    };
    if let Ok(pixels) = idx::parse_images(path, &content) {
        assert_eq!(pixels.len() % IMAGE_BYTES, 0);
        assert_eq!(pixels.len() + 16, content.len());
    }
    if let Ok(labels) = idx::parse_labels(path, &content, CLASSES as u8) {
        assert!(labels.iter().all(|&label| usize::from(label) < CLASSES));
        assert_eq!(labels.len() + 8, content.len());
    }
});
