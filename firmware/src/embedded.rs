//! The model blob and test images, embedded in flash by `include_bytes!` from what build.rs
//! prepared (see there for `QCNN_BLOB`, `QCNN_IMAGES`, `QCNN_IMAGE_COUNT`).

include!(concat!(env!("OUT_DIR"), "/embedded_facts.rs"));
// ARENA_LEN (for this target's kernels), INPUT_LEN, NUM_CLASSES, MACS, assert_arena_fits!.
include!(concat!(env!("OUT_DIR"), "/qcnn_model.rs"));

/// Puts the blob on a 4-byte boundary, so its i32 sections are naturally aligned (format.rs).
#[repr(C, align(4))]
struct Aligned<T: ?Sized>(T);

static ALIGNED_BLOB: &Aligned<[u8]> =
    &Aligned(*include_bytes!(concat!(env!("OUT_DIR"), "/model.qcnn")));

/// The `.qcnn` model, as qcnn-quantize wrote it.
pub static BLOB: &[u8] = &ALIGNED_BLOB.0;

/// Test images `0..IMAGE_COUNT`, `IMAGE_BYTES` u8 pixels each.
pub static IMAGES: &[u8; IMAGE_COUNT * IMAGE_BYTES] =
    include_bytes!(concat!(env!("OUT_DIR"), "/images.bin"));

/// The embedded test images in order; the index of each is its index in the test set.
pub fn images() -> impl Iterator<Item = &'static [u8]> {
    IMAGES.chunks_exact(IMAGE_BYTES)
}
