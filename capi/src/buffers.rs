//! C buffers (pointer + length) turned into slices only after the checks that make doing so
//! defined behaviour: not NULL, not wrapping around the address space, and no buffer that is
//! written overlapping any other buffer of the same call.

use crate::status::{
    QCNN_ERR_BUFFER_WRAPS, QCNN_ERR_BUFFERS_OVERLAP, QCNN_ERR_NULL_POINTER, QcnnStatus,
};

/// A range of addresses `[start, start + len)` that a call reads or writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    start: usize,
    len: usize,
}

impl Region {
    /// The region of `len` bytes at `ptr`; NULL is refused even when `len` is 0, and so is a
    /// length a Rust slice cannot have (more than `isize::MAX` bytes, or past the top of memory).
    pub fn new<T>(ptr: *const T, len: usize) -> Result<Region, QcnnStatus> {
        if ptr.is_null() {
            return Err(QCNN_ERR_NULL_POINTER);
        }
        let start = ptr.addr();
        let bytes = len
            .checked_mul(size_of::<T>())
            .filter(|&bytes| isize::try_from(bytes).is_ok())
            .ok_or(QCNN_ERR_BUFFER_WRAPS)?;
        start.checked_add(bytes).ok_or(QCNN_ERR_BUFFER_WRAPS)?;
        Ok(Region { start, len: bytes })
    }

    fn end(&self) -> usize {
        // Cannot overflow: checked in `new`.
        self.start.saturating_add(self.len)
    }

    pub fn overlaps(&self, other: &Region) -> bool {
        self.len != 0 && other.len != 0 && self.start < other.end() && other.start < self.end()
    }

    /// Fails if `self`, a region the call writes, overlaps any of `others`.
    pub fn disjoint_from(&self, others: &[Region]) -> Result<(), QcnnStatus> {
        if others.iter().any(|other| self.overlaps(other)) {
            return Err(QCNN_ERR_BUFFERS_OVERLAP);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn region(start: usize, len: usize) -> Region {
        Region::new(start as *const u8, len).unwrap()
    }

    #[test]
    fn null_and_wrapping_buffers_are_refused() {
        assert_eq!(
            Region::new(core::ptr::null::<u8>(), 0),
            Err(QCNN_ERR_NULL_POINTER)
        );
        assert_eq!(
            Region::new(usize::MAX as *const u8, 2),
            Err(QCNN_ERR_BUFFER_WRAPS)
        );
        assert_eq!(
            Region::new(16 as *const u8, isize::MAX as usize + 1),
            Err(QCNN_ERR_BUFFER_WRAPS)
        );
        assert_eq!(
            Region::new(16 as *const u32, usize::MAX / 2),
            Err(QCNN_ERR_BUFFER_WRAPS)
        );
        assert_eq!(Region::new(16 as *const u32, 3), Ok(region(16, 12)));
    }

    #[test]
    fn overlap_is_any_shared_byte() {
        let a = region(100, 10);
        assert!(a.overlaps(&region(109, 1)));
        assert!(a.overlaps(&region(90, 11)));
        assert!(a.overlaps(&region(102, 2)));
        assert!(!a.overlaps(&region(110, 5)));
        assert!(!a.overlaps(&region(90, 10)));
        // An empty buffer holds no byte to share.
        assert!(!a.overlaps(&region(105, 0)));
        assert_eq!(
            a.disjoint_from(&[region(1, 1), region(105, 1)]),
            Err(QCNN_ERR_BUFFERS_OVERLAP)
        );
        assert_eq!(a.disjoint_from(&[region(1, 1), region(200, 1)]), Ok(()));
    }
}
