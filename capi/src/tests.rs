//! The C API called as C would call it, on a small model built here: results equal the
//! engine's, and every misuse the API promises to catch returns its code.

use core::ffi::CStr;
use core::ptr;

use qcnn_core::format::{self, DataWriter, Header, Layer, Linear, QuantParams, Requant, Shape};

use super::*;

/// A 1×2×2 input, Flatten, then Linear 4 → 3: small enough to reason about, real enough to
/// go through every check of the loader.
fn tiny_blob() -> Vec<u8> {
    let mut data = vec![0; 256];
    let mut writer = DataWriter::new(&mut data);
    let weights = writer
        .i8s(&[1, -2, 3, -4, 5, 6, -7, 8, 9, -10, 11, 12])
        .unwrap();
    let bias = writer.i32s(&[100, -50, 7]).unwrap();
    let multiplier = writer.i32s(&[1 << 30; 3]).unwrap();
    let shift = writer.i8s(&[-4, -3, -5]).unwrap();
    let weight_scales = writer.f32s(&[0.01; 3]).unwrap();
    let data_len = writer.len();
    let mut layers = heapless::Vec::new();
    layers.push(Layer::Flatten).unwrap();
    layers
        .push(Layer::Linear(Linear {
            in_features: 4,
            out_features: 3,
            relu: false,
            weights,
            requant: Requant {
                bias,
                multiplier,
                shift,
                output: QuantParams {
                    scale: 0.1,
                    zero_point: 3,
                },
                weight_scales,
            },
        }))
        .unwrap();
    let header = Header {
        input: Shape { c: 1, h: 2, w: 2 },
        layers,
        data_len: data_len as u32,
    };
    let mut blob = vec![0; format::encoded_len(&header, data_len).unwrap()];
    format::encode(&header, &data[..data_len], &mut blob).unwrap();
    blob
}

/// A blob copy on a 4-byte boundary (and, at `offset` 1, deliberately off it).
struct AlignedBlob {
    words: Vec<u32>,
    len: usize,
}

impl AlignedBlob {
    fn new(blob: &[u8], offset: usize) -> AlignedBlob {
        let mut words = vec![0u32; (blob.len() + offset).div_ceil(4)];
        let bytes = words.as_mut_ptr().cast::<u8>();
        // SAFETY: `words` holds at least `offset + blob.len()` bytes.
        unsafe { ptr::copy_nonoverlapping(blob.as_ptr(), bytes.add(offset), blob.len()) };
        AlignedBlob {
            words,
            len: blob.len(),
        }
    }

    fn at(&self, offset: usize) -> *const u8 {
        // SAFETY: within `words`, as `new` laid it out.
        unsafe { self.words.as_ptr().cast::<u8>().add(offset) }
    }
}

fn empty_model() -> Box<QcnnModel> {
    Box::new(QcnnModel::zeroed())
}

fn loaded(blob: &AlignedBlob) -> Box<QcnnModel> {
    let mut model = empty_model();
    // SAFETY: a valid blob and a valid qcnn_model.
    let status = unsafe { qcnn_model_init(blob.at(0), blob.len, &mut *model) };
    assert_eq!(status, QCNN_OK, "{:?}", message(status));
    model
}

fn figure(
    model: *const QcnnModel,
    query: unsafe extern "C" fn(*const QcnnModel, *mut usize) -> QcnnStatus,
) -> Result<usize, QcnnStatus> {
    let mut value = usize::MAX;
    // SAFETY: `value` is a writable size_t; `model` is whatever the test passes.
    match unsafe { query(model, &mut value) } {
        QCNN_OK => Ok(value),
        status => Err(status),
    }
}

#[test]
fn infer_gives_the_engines_logits() {
    let bytes = tiny_blob();
    let blob = AlignedBlob::new(&bytes, 0);
    let model = loaded(&blob);
    assert_eq!(figure(&*model, qcnn_arena_len), Ok(7));
    assert_eq!(figure(&*model, qcnn_input_len), Ok(4));
    assert_eq!(figure(&*model, qcnn_num_classes), Ok(3));

    let engine = Model::from_bytes(&bytes).unwrap();
    let mut seen = std::collections::BTreeSet::new();
    for image in [
        [0u8, 0, 0, 0],
        [255, 0, 128, 7],
        [9, 200, 31, 255],
        [255; 4],
    ] {
        let mut arena = [0xA5u8; 8];
        let mut logits = [0i8; 4];
        // SAFETY: every buffer is valid for its length, and none overlaps another.
        let status = unsafe {
            qcnn_infer(
                &*model,
                image.as_ptr(),
                4,
                arena.as_mut_ptr(),
                8,
                logits.as_mut_ptr(),
                4,
            )
        };
        assert_eq!(status, QCNN_OK);
        let mut engine_arena = [0; 8];
        let expected = engine.infer(&image, &mut engine_arena).unwrap();
        assert_eq!(&logits[..3], expected.as_slice(), "image {image:?}");
        assert_eq!(logits[3], 0, "wrote past the classes");
        let mut class = usize::MAX;
        // SAFETY: three logits and a writable size_t.
        assert_eq!(
            unsafe { qcnn_argmax(logits.as_ptr(), 3, &mut class) },
            QCNN_OK
        );
        assert_eq!(class, expected.argmax());
        seen.insert(logits);
    }
    assert!(seen.len() > 1, "every image gave the same logits");
}

#[test]
fn bad_blobs_return_their_codes() {
    let good = tiny_blob();
    let mut model = empty_model();
    let cases: Vec<(&str, Vec<u8>, QcnnStatus)> = vec![
        ("empty", vec![], QCNN_ERR_BLOB_TOO_SHORT),
        (
            "text",
            b"hello, this is not a model".to_vec(),
            QCNN_ERR_BAD_MAGIC,
        ),
        (
            // Versions 1 (chains) and 2 (graphs) are read; 3 is not.
            "version 3",
            {
                let mut b = good.clone();
                b[4] = 3;
                b
            },
            QCNN_ERR_UNSUPPORTED_VERSION,
        ),
        (
            "flipped data byte",
            {
                let mut b = good.clone();
                let at = b.len() - 8;
                b[at] ^= 1;
                b
            },
            QCNN_ERR_CRC_MISMATCH,
        ),
        (
            "truncated",
            good[..good.len() - 1].to_vec(),
            QCNN_ERR_CRC_MISMATCH,
        ),
    ];
    for (name, bytes, expected) in cases {
        let blob = AlignedBlob::new(&bytes, 0);
        // SAFETY: valid buffers.
        let status = unsafe { qcnn_model_init(blob.at(0), blob.len, &mut *model) };
        assert_eq!(status, expected, "{name}");
        assert_eq!(
            figure(&*model, qcnn_arena_len),
            Err(QCNN_ERR_MODEL_NOT_INITIALIZED),
            "{name}: a failed init left a usable model"
        );
    }
}

#[test]
fn a_failed_init_clears_an_earlier_model() {
    let blob = AlignedBlob::new(&tiny_blob(), 0);
    let mut model = loaded(&blob);
    let text = AlignedBlob::new(b"not a model at all, really", 0);
    // SAFETY: valid buffers.
    let status = unsafe { qcnn_model_init(text.at(0), text.len, &mut *model) };
    assert_eq!(status, QCNN_ERR_BAD_MAGIC);
    assert_eq!(
        figure(&*model, qcnn_num_classes),
        Err(QCNN_ERR_MODEL_NOT_INITIALIZED)
    );
}

#[test]
fn misaligned_blobs_and_models_are_refused() {
    let bytes = tiny_blob();
    let shifted = AlignedBlob::new(&bytes, 1);
    let mut model = empty_model();
    // SAFETY: valid buffers, the blob one byte off a word boundary.
    let status = unsafe { qcnn_model_init(shifted.at(1), shifted.len, &mut *model) };
    assert_eq!(status, QCNN_ERR_BLOB_MISALIGNED);

    let blob = AlignedBlob::new(&bytes, 0);
    let mut room = vec![0u64; size_of::<QcnnModel>() / 8 + 1];
    // SAFETY: one byte into `room`, which still holds a whole qcnn_model after it.
    let misaligned = unsafe { room.as_mut_ptr().cast::<u8>().add(4) }.cast::<QcnnModel>();
    // SAFETY: valid buffers; the model pointer is only misaligned.
    let status = unsafe { qcnn_model_init(blob.at(0), blob.len, misaligned) };
    assert_eq!(status, QCNN_ERR_MODEL_MISALIGNED);
    assert_eq!(
        figure(misaligned, qcnn_input_len),
        Err(QCNN_ERR_MODEL_MISALIGNED)
    );
    assert!(room.iter().all(|&w| w == 0), "a refused init wrote");
}

#[test]
fn null_pointers_are_refused_everywhere() {
    let blob = AlignedBlob::new(&tiny_blob(), 0);
    let model = loaded(&blob);
    let (image, mut arena, mut logits, mut value) = ([0u8; 4], [0u8; 8], [0i8; 3], 0usize);
    let null_model: *const QcnnModel = ptr::null();
    // SAFETY: every non-NULL pointer is valid for its length.
    unsafe {
        let mut fresh = empty_model();
        assert_eq!(
            qcnn_model_init(ptr::null(), 0, &mut *fresh),
            QCNN_ERR_NULL_POINTER
        );
        assert_eq!(
            qcnn_model_init(blob.at(0), blob.len, ptr::null_mut()),
            QCNN_ERR_NULL_POINTER
        );
        for query in [qcnn_arena_len, qcnn_input_len, qcnn_num_classes] {
            assert_eq!(query(null_model, &mut value), QCNN_ERR_NULL_POINTER);
            assert_eq!(query(&*model, ptr::null_mut()), QCNN_ERR_NULL_POINTER);
        }
        let infer = |m, i, a, l| qcnn_infer(m, i, 4, a, 8, l, 3);
        let (i, a, l) = (image.as_ptr(), arena.as_mut_ptr(), logits.as_mut_ptr());
        assert_eq!(infer(null_model, i, a, l), QCNN_ERR_NULL_POINTER);
        assert_eq!(infer(&*model, ptr::null(), a, l), QCNN_ERR_NULL_POINTER);
        assert_eq!(infer(&*model, i, ptr::null_mut(), l), QCNN_ERR_NULL_POINTER);
        assert_eq!(infer(&*model, i, a, ptr::null_mut()), QCNN_ERR_NULL_POINTER);
        assert_eq!(
            qcnn_argmax(ptr::null(), 3, &mut value),
            QCNN_ERR_NULL_POINTER
        );
        assert_eq!(
            qcnn_argmax(logits.as_ptr(), 3, ptr::null_mut()),
            QCNN_ERR_NULL_POINTER
        );
        assert_eq!(
            qcnn_argmax(logits.as_ptr(), 0, &mut value),
            QCNN_ERR_NO_LOGITS
        );
    }
}

#[test]
fn short_and_overlapping_buffers_are_refused() {
    let blob = AlignedBlob::new(&tiny_blob(), 0);
    let model = loaded(&blob);
    let image = [1u8; 5];
    let mut arena = [0u8; 16];
    let mut logits = [0x11i8; 3];
    let infer = |image_len, arena: *mut u8, arena_len, logits: *mut i8, logits_len| {
        // SAFETY: every buffer is valid for the lengths the cases pass.
        unsafe {
            qcnn_infer(
                &*model,
                image.as_ptr(),
                image_len,
                arena,
                arena_len,
                logits,
                logits_len,
            )
        }
    };
    let (a, l) = (arena.as_mut_ptr(), logits.as_mut_ptr());
    assert_eq!(infer(3, a, 8, l, 3), QCNN_ERR_IMAGE_LENGTH);
    assert_eq!(infer(5, a, 8, l, 3), QCNN_ERR_IMAGE_LENGTH);
    assert_eq!(infer(4, a, 6, l, 3), QCNN_ERR_ARENA_TOO_SMALL);
    assert_eq!(infer(4, a, 8, l, 2), QCNN_ERR_OUTPUT_TOO_SHORT);
    assert_eq!(logits, [0x11; 3], "a failed inference wrote logits");
    // The logits inside the arena, the arena over the image, the arena over the blob.
    // SAFETY: pointers into `arena`, valid for the lengths given.
    let inside = unsafe { a.add(12) }.cast::<i8>();
    assert_eq!(infer(4, a, 16, inside, 3), QCNN_ERR_BUFFERS_OVERLAP);
    assert_eq!(
        infer(4, image.as_ptr().cast_mut(), 8, l, 3),
        QCNN_ERR_BUFFERS_OVERLAP
    );
    assert_eq!(
        infer(4, blob.at(0).cast_mut(), 8, l, 3),
        QCNN_ERR_BUFFERS_OVERLAP
    );
    assert_eq!(
        infer(4, a, 8, image.as_ptr().cast_mut().cast(), 3),
        QCNN_ERR_BUFFERS_OVERLAP
    );
    assert_eq!(infer(4, a, 8, l, 3), QCNN_OK);
}

#[test]
fn the_model_struct_cannot_be_the_output() {
    let blob = AlignedBlob::new(&tiny_blob(), 0);
    let mut model = loaded(&blob);
    let inside = (&raw mut *model).cast::<usize>();
    // SAFETY: `inside` is valid: it is the model struct itself.
    let status = unsafe { qcnn_arena_len(&*model, inside) };
    assert_eq!(status, QCNN_ERR_BUFFERS_OVERLAP);
    assert_eq!(
        figure(&*model, qcnn_arena_len),
        Ok(7),
        "the refused call wrote"
    );
}

#[test]
fn error_strings_are_static_c_strings() {
    for status in [QCNN_OK, QCNN_ERR_CRC_MISMATCH, 999, -3] {
        // SAFETY: qcnn_error_str returns a static NUL-terminated string.
        let text = unsafe { CStr::from_ptr(qcnn_error_str(status)) };
        assert_eq!(text, message(status));
    }
}

/// A version-2 (graph) blob: the chain-only library (`--no-default-features`) refuses it
/// with its own code, before any other check (the CRC included); the full library reads it
/// as a graph, so this one, a chain's header under a graph's version, is refused otherwise.
#[test]
fn graph_blob_is_refused_by_name_without_the_graph_engine() {
    let mut bytes = tiny_blob();
    bytes[4..6].copy_from_slice(&qcnn_core::graph::GRAPH_VERSION.to_le_bytes());
    let blob = AlignedBlob::new(&bytes, 0);
    let mut model = empty_model();
    // SAFETY: a readable blob and a valid qcnn_model.
    let status = unsafe { qcnn_model_init(blob.at(0), blob.len, &mut *model) };
    if cfg!(feature = "graph") {
        assert_ne!(status, QCNN_ERR_GRAPH_NOT_BUILT);
        assert_ne!(status, QCNN_OK);
    } else {
        assert_eq!(status, QCNN_ERR_GRAPH_NOT_BUILT, "{:?}", message(status));
    }
    assert_eq!(
        figure(&*model, qcnn_arena_len),
        Err(QCNN_ERR_MODEL_NOT_INITIALIZED)
    );
}
