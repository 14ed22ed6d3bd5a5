//! Any bytes given to `Model::from_bytes` yield `Ok` or a `ModelError`, never a panic; a model
//! that loads runs on any image without panicking or failing, one at a time or as a batch,
//! with the same logits either way. `Model::from_bytes_unverified` refuses exactly what
//! `from_bytes` does but for the checksum, and every model's arena plan fits its arena.
//!
//! Input layout: byte 0 is a control byte, the rest is the blob. When bit 0 of the control
//! byte is set, the blob's trailing checksum (the one its version names: xxHash32, or CRC-32
//! for versions 1 and 2) is recomputed before loading, so that mutations reach the header,
//! shape and section checks instead of all stopping at the checksum.
#![no_main]

use libfuzzer_sys::fuzz_target;
use qcnn_core::format::{self, CHECKSUM_LEN};
use qcnn_core::{InferError, Kernels, Model, ModelError};

/// Models that need more arena or input than this are only loaded, not run, so that the
/// fuzzer neither exhausts memory nor spends seconds on one legitimately huge model.
const MAX_BUFFER: usize = 4 << 20;
/// Likewise for compute: multiply-accumulates per inference.
const MAX_MACS: u64 = 20_000_000;

fuzz_target!(|input: &[u8]| {
    let Some((&control, blob)) = input.split_first() else {
        return;
    };
    let mut blob = blob.to_vec();
    if control & 1 == 1
        && let Some(sum) = format::expected_checksum(&blob)
    {
        let body = blob.len() - CHECKSUM_LEN;
        blob[body..].copy_from_slice(&sum.to_le_bytes());
    }
    let loaded = Model::from_bytes(&blob);
    let unverified = Model::from_bytes_unverified(&blob);
    match (&loaded, &unverified) {
        (Err(ModelError::ChecksumMismatch { .. }), _) | (Ok(_), Ok(_)) => {}
        (Err(a), Err(b)) => assert_eq!(a, b),
        (a, b) => panic!("from_bytes {a:?} but from_bytes_unverified {b:?}"),
    }
    if let Ok(model) = &unverified {
        for kernels in [Kernels::Portable, Kernels::CortexM4Dsp] {
            let arena = model.arena_len_for(kernels);
            for step in model.plan(kernels) {
                assert!(step.need <= arena && step.input.end() <= arena);
                assert!(step.output.end() <= arena && step.scratch.end() <= arena);
            }
        }
    }
    let Ok(model) = loaded else {
        return;
    };
    run(&model, &blob);
});

fn run(model: &Model, blob: &[u8]) {
    let (input_len, arena_len) = (model.input_len(), model.arena_len());
    if input_len > MAX_BUFFER || arena_len > MAX_BUFFER || model.macs() > MAX_MACS {
        return;
    }
    let mut arena = vec![0_u8; arena_len];

    // Wrong sizes are refused by name, not by a panic.
    let image = vec![0_u8; input_len];
    if arena_len > 0 {
        assert!(matches!(
            model.infer(&image, &mut arena[..arena_len - 1]),
            Err(InferError::ArenaTooSmall { .. })
        ));
    }
    assert!(matches!(
        model.infer(&image[..input_len - 1], &mut arena),
        Err(InferError::WrongImageLength { .. })
    ));

    // Extreme images, and images drawn from the fuzzer's bytes.
    let images = [
        vec![0_u8; input_len],
        vec![255_u8; input_len],
        blob.iter().copied().cycle().take(input_len).collect(),
        blob.iter().rev().copied().cycle().take(input_len).collect(),
    ];
    let mut probabilities = vec![0_f32; model.num_classes()];
    let mut one_by_one = Vec::new();
    for image in &images {
        let logits = model
            .infer(image, &mut arena)
            .expect("a validated model runs on any image of its input size");
        one_by_one.extend_from_slice(logits.as_slice());
        assert_eq!(logits.len(), model.num_classes());
        assert!(logits.argmax() < logits.len());
        logits
            .softmax(&mut probabilities)
            .expect("the buffer has one slot per class");
        for p in &probabilities {
            assert!(!p.is_nan(), "softmax of int8 logits is a number");
        }
    }

    // The same images as one batch give the same logits.
    if arena_len * images.len() > MAX_BUFFER {
        return;
    }
    let classes = model.num_classes();
    let batch = images.concat();
    let mut batch_arena = vec![0_u8; arena_len * images.len()];
    let mut logits = vec![0_i8; classes * images.len()];
    let count = model
        .infer_batch(&batch, &mut batch_arena, &mut logits)
        .expect("a validated model runs on any batch of whole images");
    assert_eq!(count, images.len());
    assert_eq!(logits, one_by_one);
    // One byte short is a partial image (unless an image is one byte).
    if input_len > 1 {
        assert!(matches!(
            model.infer_batch(&batch[1..], &mut batch_arena, &mut logits),
            Err(InferError::WrongBatchLength { .. })
        ));
    }
}
