//! `qcnn_model`: caller-allocated storage for the engine's `Model`, opaque to C.
//!
//! Its size is one number, `QCNN_MODEL_SIZE`, and it flows one way: [`REQUIRED_MODEL_SIZE`]
//! (what a `Slot` takes on the 64-bit host that generates the header) is written into
//! `include/qcnn.h` by the header test, and every build, for every target, reads the number
//! back from that header and asserts that a `Slot` fits. So when the engine's `Model` grows
//! or shrinks, the drift test fails until the header is regenerated, and a build whose header
//! promises too little does not compile. On 32-bit targets the `Slot` is smaller (pointers
//! are), so the 64-bit figure is an upper bound there.

use core::ptr;

use qcnn_core::Model;

use crate::buffers::Region;
use crate::status::{
    QCNN_ERR_MODEL_MISALIGNED, QCNN_ERR_MODEL_NOT_INITIALIZED, QCNN_ERR_NULL_POINTER, QcnnStatus,
};

/// Alignment of `qcnn_model`, in bytes: that of `uint64_t` on the targets qcnn supports.
pub const QCNN_MODEL_ALIGN: usize = 8;

/// `sizeof(qcnn_model)` as the generated header states it.
const HEADER_MODEL_SIZE: usize = define_in_header("QCNN_MODEL_SIZE");

/// Bytes a `Slot` needs here, rounded up to the alignment: the value the header test writes.
pub const REQUIRED_MODEL_SIZE: usize = size_of::<Slot>().next_multiple_of(QCNN_MODEL_ALIGN);

/// The size `qcnn_model` has on the Rust side. Library builds take the header's value, so
/// Rust and C agree on it; tests take the larger of the two, so that they still build (and
/// the drift test can rewrite the header) when the engine's `Model` has outgrown it.
#[cfg(not(test))]
const QCNN_MODEL_SIZE: usize = HEADER_MODEL_SIZE;
#[cfg(test)]
const QCNN_MODEL_SIZE: usize = if REQUIRED_MODEL_SIZE > HEADER_MODEL_SIZE {
    REQUIRED_MODEL_SIZE
} else {
    HEADER_MODEL_SIZE
};

const _: () = assert!(
    size_of::<Model<'static>>() <= QCNN_MODEL_SIZE && REQUIRED_MODEL_SIZE <= QCNN_MODEL_SIZE,
    "include/qcnn.h gives qcnn_model fewer bytes than the engine's Model needs: \
     regenerate it (QCNN_UPDATE_HEADER=1 cargo test header, see README)"
);
const _: () = assert!(
    align_of::<Slot>() <= QCNN_MODEL_ALIGN && align_of::<QcnnModel>() == QCNN_MODEL_ALIGN,
    "QCNN_MODEL_ALIGN does not cover the engine's Model"
);
const _: () = assert!(
    size_of::<QcnnModel>() == QCNN_MODEL_SIZE && HEADER_MODEL_SIZE.is_multiple_of(QCNN_MODEL_ALIGN)
);

/// Storage for one loaded model, allocated by the caller (statically, on the stack or in a
/// struct) with the size and alignment the header gives. Its contents are private: fill it
/// with `qcnn_model_init` and pass it to the other functions.
#[repr(C)]
pub struct QcnnModel {
    storage: QcnnModelStorage,
}

/// The bytes of a `qcnn_model`, with a `uint64_t` member for its alignment.
#[repr(C)]
pub union QcnnModelStorage {
    opaque: [u8; QCNN_MODEL_SIZE],
    align: u64,
}

/// What a `qcnn_model` holds once initialized.
#[repr(C)]
struct Slot {
    /// `INITIALIZED` only after a successful `qcnn_model_init`; a zeroed (static) or failed
    /// `qcnn_model` is refused rather than read as a `Model`.
    tag: u32,
    /// The blob the model borrows, for the overlap checks of `qcnn_infer`.
    blob: Region,
    model: Model<'static>,
}

#[cfg(test)]
impl QcnnModel {
    /// What C's `static qcnn_model m;` holds: all zero bytes.
    pub fn zeroed() -> QcnnModel {
        QcnnModel {
            storage: QcnnModelStorage { align: 0 },
        }
    }
}

const INITIALIZED: u32 = u32::from_le_bytes(*b"QCNN");

/// The region a `qcnn_model` occupies, after the NULL and alignment checks.
pub fn region_of(model: *const QcnnModel) -> Result<Region, QcnnStatus> {
    let region = Region::new(model, 1)?;
    if !model.addr().is_multiple_of(QCNN_MODEL_ALIGN) {
        return Err(QCNN_ERR_MODEL_MISALIGNED);
    }
    Ok(region)
}

/// Marks `out` unusable, so that a failed init never leaves an older model behind.
///
/// # Safety
/// `out` passed [`region_of`] and points to a writable `qcnn_model`.
pub unsafe fn clear(out: *mut QcnnModel) {
    // SAFETY: as the caller guarantees; the tag is the Slot's first field (repr(C)).
    unsafe { ptr::write_volatile(out.cast::<u32>(), 0) };
}

/// Stores `model`, which borrows `blob`, into `out`.
///
/// # Safety
/// `out` passed [`region_of`] and points to a writable `qcnn_model`; `blob` stays valid and
/// unchanged for as long as the `qcnn_model` is used.
pub unsafe fn store(out: *mut QcnnModel, blob: Region, model: Model<'_>) {
    // SAFETY: the caller keeps the blob alive (the C API's documented contract), which is
    // what 'static stands for here.
    let model: Model<'static> = unsafe { core::mem::transmute::<Model<'_>, Model<'static>>(model) };
    let slot = out.cast::<Slot>();
    // SAFETY: `out` is aligned to QCNN_MODEL_ALIGN ≥ align_of::<Slot>() and holds
    // QCNN_MODEL_SIZE ≥ size_of::<Slot>() bytes (the assertions above).
    unsafe {
        ptr::write(
            slot,
            Slot {
                tag: 0,
                blob,
                model,
            },
        );
        ptr::write_volatile(&raw mut (*slot).tag, INITIALIZED);
    }
}

/// The model in `model` and the blob it borrows, if `qcnn_model_init` filled it.
///
/// # Safety
/// `model` is NULL or points to a readable `qcnn_model` (initialized or not), which nothing
/// writes while the returned reference is used.
pub unsafe fn load<'m>(
    model: *const QcnnModel,
) -> Result<(&'m Model<'static>, Region), QcnnStatus> {
    if model.is_null() {
        return Err(QCNN_ERR_NULL_POINTER);
    }
    region_of(model)?;
    let slot = model.cast::<Slot>();
    // SAFETY: aligned and readable (checked, and the caller's contract); a volatile read, as
    // the bytes of a never-initialized qcnn_model are whatever C left there.
    let tag = unsafe { ptr::read_volatile(&raw const (*slot).tag) };
    if tag != INITIALIZED {
        return Err(QCNN_ERR_MODEL_NOT_INITIALIZED);
    }
    // SAFETY: the tag is only set by `store`, after the whole Slot was written.
    let slot = unsafe { &*slot };
    Ok((&slot.model, slot.blob))
}

/// The decimal value of `#define NAME <value>` in the committed header, at compile time.
const fn define_in_header(name: &str) -> usize {
    let header = include_str!("../include/qcnn.h").as_bytes();
    let name = name.as_bytes();
    const DEFINE: &[u8] = b"#define ";
    let mut at = 0;
    while at + DEFINE.len() + name.len() < header.len() {
        if starts_with_at(header, at, DEFINE)
            && starts_with_at(header, at + DEFINE.len(), name)
            && header[at + DEFINE.len() + name.len()] == b' '
        {
            let mut digit = at + DEFINE.len() + name.len() + 1;
            let mut value = 0;
            while digit < header.len() && header[digit].is_ascii_digit() {
                value = value * 10 + (header[digit] - b'0') as usize;
                digit += 1;
            }
            assert!(value > 0, "include/qcnn.h: the define has no decimal value");
            return value;
        }
        at += 1;
    }
    panic!("include/qcnn.h does not define the size of qcnn_model")
}

const fn starts_with_at(haystack: &[u8], at: usize, needle: &[u8]) -> bool {
    let mut i = 0;
    while i < needle.len() {
        if at + i >= haystack.len() || haystack[at + i] != needle[i] {
            return false;
        }
        i += 1;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_zeroed_or_cleared_model_is_not_initialized() {
        let mut storage = QcnnModel::zeroed();
        let model = &raw mut storage;
        // SAFETY: a valid, writable qcnn_model.
        unsafe {
            assert!(matches!(load(model), Err(QCNN_ERR_MODEL_NOT_INITIALIZED)));
            ptr::write_bytes(model.cast::<u8>(), 0xA5, size_of::<QcnnModel>());
            clear(model);
            assert!(matches!(load(model), Err(QCNN_ERR_MODEL_NOT_INITIALIZED)));
        }
    }
}
