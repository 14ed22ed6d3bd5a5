//! qcnn-capi: qcnn-core for C and C++ firmware, as a static library and `include/qcnn.h`.
//!
//! Every function returns a status code (`QCNN_OK` or a `QCNN_ERR_*`) and never panics: NULL
//! pointers, buffers that wrap the address space, a written buffer overlapping another one, a
//! misaligned blob or model struct, an uninitialized model and short buffers are all refused
//! with a code before any of them is turned into a Rust reference. The panic handler calls C's
//! `abort()`, and the test command proves it unreachable: the thumb library links into a
//! program without a C library (so without `abort`) only because no panic path is left
//! (`capi/run-tests.sh panic-never`).
//!
//! The caller owns all memory: a `qcnn_model` (`QCNN_MODEL_SIZE` bytes, aligned to
//! `QCNN_MODEL_ALIGN`), the blob (4-byte aligned, alive as long as the model is used), an
//! arena of `qcnn_arena_len` bytes and the logits buffer. Nothing is allocated.
#![cfg_attr(not(test), no_std)]
#![allow(unsafe_code)] // an FFI surface: raw pointers in, checked before use

mod buffers;
#[cfg(test)]
mod header;
mod model_slot;
mod status;
#[cfg(test)]
mod tests;

use core::ffi::c_char;
use core::{ptr, slice};

use qcnn_core::Model;

use crate::buffers::Region;
pub use crate::model_slot::{QCNN_MODEL_ALIGN, QcnnModel, QcnnModelStorage};
pub use crate::status::*;

/// The blob's required alignment: its 32-bit sections are 4-byte aligned relative to its start
/// (see the format), so that they can be read as words where they lie, in flash.
pub const QCNN_BLOB_ALIGN: usize = 4;

/// Validates the model blob (magic, version, checksum, every shape, section and parameter range)
/// and stores a model that borrows it in `*out`; nothing is copied.
///
/// `blob` must start on a `QCNN_BLOB_ALIGN` (4-byte) boundary and stay valid and unchanged
/// while `*out` is used: a `const` array in flash is the usual home. On failure `*out` is
/// left marked uninitialized, and the other functions refuse it (a NULL or misaligned `out`
/// is not written at all).
///
/// # Safety
/// `blob` points to `blob_len` readable bytes and `out` to a writable `qcnn_model`, or they
/// are NULL (refused).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn qcnn_model_init(
    blob: *const u8,
    blob_len: usize,
    out: *mut QcnnModel,
) -> QcnnStatus {
    into_status(|| {
        let out_region = model_slot::region_of(out)?;
        // SAFETY: `out` is non-NULL, aligned and, by the contract, writable.
        unsafe { model_slot::clear(out) };
        let blob_region = Region::new(blob, blob_len)?;
        if !blob.addr().is_multiple_of(QCNN_BLOB_ALIGN) {
            return Err(QCNN_ERR_BLOB_MISALIGNED);
        }
        out_region.disjoint_from(&[blob_region])?;
        // SAFETY: non-NULL, within the address space, readable by the contract, and not
        // written during this call (it does not overlap `out`).
        let bytes = unsafe { slice::from_raw_parts(blob, blob_len) };
        let model = Model::from_bytes(bytes).map_err(status::of_model_error)?;
        // SAFETY: `out` checked above; the caller keeps the blob alive (the contract).
        unsafe { model_slot::store(out, blob_region, model) };
        Ok(())
    })
}

/// Stores in `*arena_len_out` the arena bytes `qcnn_infer` needs for this model.
///
/// # Safety
/// `model` points to a readable `qcnn_model` and `arena_len_out` to a writable `size_t`, or
/// they are NULL (refused).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn qcnn_arena_len(
    model: *const QcnnModel,
    arena_len_out: *mut usize,
) -> QcnnStatus {
    // SAFETY: as the caller guarantees.
    unsafe { report(model, arena_len_out, Model::arena_len) }
}

/// Stores in `*input_len_out` the bytes of one input image: channels × height × width u8
/// pixels, in C, H, W order.
///
/// # Safety
/// As `qcnn_arena_len`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn qcnn_input_len(
    model: *const QcnnModel,
    input_len_out: *mut usize,
) -> QcnnStatus {
    // SAFETY: as the caller guarantees.
    unsafe { report(model, input_len_out, Model::input_len) }
}

/// Stores in `*num_classes_out` the number of classes: the length of the logits.
///
/// # Safety
/// As `qcnn_arena_len`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn qcnn_num_classes(
    model: *const QcnnModel,
    num_classes_out: *mut usize,
) -> QcnnStatus {
    // SAFETY: as the caller guarantees.
    unsafe { report(model, num_classes_out, Model::num_classes) }
}

/// Classifies one u8 image of `image_len` (= `qcnn_input_len`) bytes, using `arena`
/// (at least `qcnn_arena_len` bytes, any alignment, contents need not be initialized), and
/// writes the int8 logits to `logits_out[0 .. qcnn_num_classes)`. Integer arithmetic only;
/// the logits are bit-identical to the Rust engine's (`qcnn predict`) on every target.
///
/// The arena and the logits buffer must not overlap each other, the image, the blob or the
/// `qcnn_model`. On failure `logits_out` is unchanged.
///
/// # Safety
/// Each pointer points to its stated number of readable (`model`, `image`) or writable
/// (`arena`, `logits_out`) bytes, or is NULL (refused).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn qcnn_infer(
    model: *const QcnnModel,
    image: *const u8,
    image_len: usize,
    arena: *mut u8,
    arena_len: usize,
    logits_out: *mut i8,
    logits_len: usize,
) -> QcnnStatus {
    into_status(|| {
        // SAFETY: as the caller guarantees.
        let (loaded, blob) = unsafe { model_slot::load(model) }?;
        let model_region = model_slot::region_of(model)?;
        let image_region = Region::new(image, image_len)?;
        let arena_region = Region::new(arena, arena_len)?;
        let logits_region = Region::new(logits_out, logits_len)?;
        arena_region.disjoint_from(&[model_region, blob, image_region, logits_region])?;
        logits_region.disjoint_from(&[model_region, blob, image_region])?;
        let classes = loaded.num_classes();
        if logits_len < classes {
            return Err(QCNN_ERR_OUTPUT_TOO_SHORT);
        }
        // SAFETY: each region is non-NULL, inside the address space, valid by the contract,
        // and the two written ones overlap nothing else this call touches.
        let (image, arena, logits_out) = unsafe {
            (
                slice::from_raw_parts(image, image_len),
                slice::from_raw_parts_mut(arena, arena_len),
                slice::from_raw_parts_mut(logits_out, logits_len),
            )
        };
        let logits = loaded.infer(image, arena).map_err(status::of_infer_error)?;
        for (out, logit) in logits_out.iter_mut().zip(logits.iter()) {
            *out = logit;
        }
        Ok(())
    })
}

/// Stores in `*class_out` the index of the largest of the `len` logits, the first one on ties
/// (as `qcnn predict`'s `pred`).
///
/// # Safety
/// `logits` points to `len` readable int8 values and `class_out` to a writable `size_t`, or
/// they are NULL (refused).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn qcnn_argmax(
    logits: *const i8,
    len: usize,
    class_out: *mut usize,
) -> QcnnStatus {
    into_status(|| {
        Region::new(logits, len)?;
        if class_out.is_null() {
            return Err(QCNN_ERR_NULL_POINTER);
        }
        if len == 0 {
            return Err(QCNN_ERR_NO_LOGITS);
        }
        // SAFETY: non-NULL, inside the address space, readable by the contract.
        let logits = unsafe { slice::from_raw_parts(logits, len) };
        let first_max = |(best, max), (i, &v)| if v > max { (i, v) } else { (best, max) };
        let (class, _) = logits.iter().enumerate().fold((0, i8::MIN), first_max);
        // SAFETY: non-NULL and writable by the contract; any alignment.
        unsafe { ptr::write_unaligned(class_out, class) };
        Ok(())
    })
}

/// A short, static, NUL-terminated English description of `status` (a `qcnn_status`);
/// codes this library does not define get "unknown qcnn status". Never NULL.
#[unsafe(no_mangle)]
pub extern "C" fn qcnn_error_str(status: QcnnStatus) -> *const c_char {
    status::message(status).as_ptr()
}

/// Writes one of the loaded model's figures to `out`.
///
/// # Safety
/// As `qcnn_arena_len`.
unsafe fn report(
    model: *const QcnnModel,
    out: *mut usize,
    figure: fn(&Model<'static>) -> usize,
) -> QcnnStatus {
    into_status(|| {
        // SAFETY: as the caller guarantees.
        let (loaded, _) = unsafe { model_slot::load(model) }?;
        let value = figure(loaded);
        let out_region = Region::new(out, 1)?;
        out_region.disjoint_from(&[model_slot::region_of(model)?])?;
        // SAFETY: non-NULL, writable by the contract, outside the model; any alignment.
        unsafe { ptr::write_unaligned(out, value) };
        Ok(())
    })
}

fn into_status(call: impl FnOnce() -> Result<(), QcnnStatus>) -> QcnnStatus {
    match call() {
        Ok(()) => QCNN_OK,
        Err(status) => status,
    }
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    unsafe extern "C" {
        fn abort() -> !;
    }
    // SAFETY: C's abort takes nothing and does not return. Unreachable in the shipped
    // library: see the crate documentation.
    unsafe { abort() }
}
