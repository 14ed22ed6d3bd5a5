//! The status codes every function returns, their messages, and how the engine's errors map
//! onto them. Codes are plain integers rather than a Rust enum, so that any value a C caller
//! passes to `qcnn_error_str` is valid.

use core::ffi::CStr;

use qcnn_core::{InferError, ModelError};

/// What a qcnn function reports: `QCNN_OK` (0) or one of the `QCNN_ERR_*` codes (positive).
pub type QcnnStatus = i32;

/// Success.
pub const QCNN_OK: QcnnStatus = 0;
/// A pointer argument is NULL.
pub const QCNN_ERR_NULL_POINTER: QcnnStatus = 1;
/// A buffer's address plus its length runs past the end of the address space.
pub const QCNN_ERR_BUFFER_WRAPS: QcnnStatus = 2;
/// Two buffers overlap where one of them is written (arena, logits, the model struct).
pub const QCNN_ERR_BUFFERS_OVERLAP: QcnnStatus = 3;
/// The model blob does not start on a 4-byte boundary.
pub const QCNN_ERR_BLOB_MISALIGNED: QcnnStatus = 4;
/// The `qcnn_model` is not aligned to `QCNN_MODEL_ALIGN`.
pub const QCNN_ERR_MODEL_MISALIGNED: QcnnStatus = 5;
/// The `qcnn_model` was not filled by a successful `qcnn_model_init`.
pub const QCNN_ERR_MODEL_NOT_INITIALIZED: QcnnStatus = 6;
/// The blob is shorter than the smallest possible model.
pub const QCNN_ERR_BLOB_TOO_SHORT: QcnnStatus = 7;
/// The blob does not start with the magic `QCNN`: it is not a qcnn model.
pub const QCNN_ERR_BAD_MAGIC: QcnnStatus = 8;
/// The blob's format version or flags are not the ones this library reads.
pub const QCNN_ERR_UNSUPPORTED_VERSION: QcnnStatus = 9;
/// The blob's CRC-32 does not match its contents: it is corrupt.
pub const QCNN_ERR_CRC_MISMATCH: QcnnStatus = 10;
/// The blob is intact but describes an invalid model (shapes, sections or parameter ranges).
pub const QCNN_ERR_INVALID_MODEL: QcnnStatus = 11;
/// The image is not `qcnn_input_len` bytes.
pub const QCNN_ERR_IMAGE_LENGTH: QcnnStatus = 12;
/// The arena is shorter than `qcnn_arena_len`.
pub const QCNN_ERR_ARENA_TOO_SMALL: QcnnStatus = 13;
/// The logits buffer is shorter than `qcnn_num_classes`.
pub const QCNN_ERR_OUTPUT_TOO_SHORT: QcnnStatus = 14;
/// `qcnn_argmax` was given no logits.
pub const QCNN_ERR_NO_LOGITS: QcnnStatus = 15;
/// A graph model (format version 2) given to the chain-only library, built without the graph
/// engine: link the full library (`libqcnn_capi_full.a`) to run it.
pub const QCNN_ERR_GRAPH_NOT_BUILT: QcnnStatus = 16;
/// The last code; `qcnn_error_str` describes every code up to it.
#[cfg(test)]
pub const LAST_STATUS: QcnnStatus = QCNN_ERR_GRAPH_NOT_BUILT;

/// The message of `status`. Short: they live in the firmware's flash.
pub fn message(status: QcnnStatus) -> &'static CStr {
    match status {
        QCNN_OK => c"ok",
        QCNN_ERR_NULL_POINTER => c"NULL pointer",
        QCNN_ERR_BUFFER_WRAPS => c"buffer wraps past the end of memory",
        QCNN_ERR_BUFFERS_OVERLAP => c"buffers overlap",
        QCNN_ERR_BLOB_MISALIGNED => c"blob not 4-byte aligned",
        QCNN_ERR_MODEL_MISALIGNED => c"qcnn_model misaligned",
        QCNN_ERR_MODEL_NOT_INITIALIZED => c"qcnn_model not initialized",
        QCNN_ERR_BLOB_TOO_SHORT => c"blob too short",
        QCNN_ERR_BAD_MAGIC => c"not a qcnn model",
        QCNN_ERR_UNSUPPORTED_VERSION => c"unsupported model version",
        QCNN_ERR_CRC_MISMATCH => c"CRC mismatch: corrupt blob",
        QCNN_ERR_INVALID_MODEL => c"invalid model",
        QCNN_ERR_IMAGE_LENGTH => c"wrong image length",
        QCNN_ERR_ARENA_TOO_SMALL => c"arena too small",
        QCNN_ERR_OUTPUT_TOO_SHORT => c"logits buffer too short",
        QCNN_ERR_NO_LOGITS => c"no logits",
        QCNN_ERR_GRAPH_NOT_BUILT => c"graph model, but this library has no graph engine",
        _ => c"unknown qcnn status",
    }
}

/// The blob checks a firmware can act on get codes of their own; the many structural
/// checks (each named by `ModelError` on the host, e.g. by `qcnn predict`) share one.
pub fn of_model_error(error: ModelError) -> QcnnStatus {
    match error {
        ModelError::TooShort { .. } => QCNN_ERR_BLOB_TOO_SHORT,
        ModelError::BadMagic => QCNN_ERR_BAD_MAGIC,
        ModelError::UnsupportedVersion { .. } | ModelError::UnknownFlags { .. } => {
            QCNN_ERR_UNSUPPORTED_VERSION
        }
        ModelError::CrcMismatch { .. } => QCNN_ERR_CRC_MISMATCH,
        ModelError::GraphSupportNotBuilt => QCNN_ERR_GRAPH_NOT_BUILT,
        _ => QCNN_ERR_INVALID_MODEL,
    }
}

pub fn of_infer_error(error: InferError) -> QcnnStatus {
    match error {
        InferError::WrongImageLength { .. } | InferError::WrongBatchLength { .. } => {
            QCNN_ERR_IMAGE_LENGTH
        }
        InferError::ArenaTooSmall { .. } => QCNN_ERR_ARENA_TOO_SMALL,
        InferError::OutputTooShort { .. } => QCNN_ERR_OUTPUT_TOO_SHORT,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UNKNOWN_STATUS: &CStr = c"unknown qcnn status";

    #[test]
    fn every_code_has_its_own_message() {
        for code in QCNN_OK..=LAST_STATUS {
            assert_ne!(message(code), UNKNOWN_STATUS, "code {code}");
        }
        let mut all: Vec<_> = (QCNN_OK..=LAST_STATUS).map(message).collect();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 17, "two codes share a message");
        assert_eq!(message(QCNN_OK), c"ok");
        assert_eq!(message(QCNN_ERR_NO_LOGITS), c"no logits");
        assert_eq!(
            message(QCNN_ERR_GRAPH_NOT_BUILT),
            c"graph model, but this library has no graph engine"
        );
        for code in [-1, LAST_STATUS + 1, i32::MIN, i32::MAX] {
            assert_eq!(message(code), UNKNOWN_STATUS, "code {code}");
        }
    }
}
