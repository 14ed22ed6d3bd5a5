//! Reading the files a user names (models, checkpoints, configs, certificates): only regular
//! files, since a FIFO would block forever and `/dev/zero` would never end, and never more
//! than a stated limit, so a wrong path costs an error instead of all memory.

use std::fs::{File, Metadata};
use std::io::{Error, ErrorKind, Read};
use std::path::Path;

/// A `.qcnn` blob: a microcontroller model is kilobytes to a few megabytes.
pub const MAX_BLOB_BYTES: u64 = 256 << 20;
/// A float checkpoint (`.pth`, `.safetensors`).
pub const MAX_CHECKPOINT_BYTES: u64 = 1 << 30;
/// A config file or a PEM certificate.
pub const MAX_TEXT_BYTES: u64 = 1 << 20;

/// Fails unless `path` is a regular file (after following symlinks), without opening it.
pub fn check(path: &Path) -> std::io::Result<Metadata> {
    let metadata = std::fs::metadata(path)?;
    if metadata.is_file() {
        Ok(metadata)
    } else {
        Err(Error::new(
            ErrorKind::InvalidInput,
            format!("not a regular file but {}", kind(&metadata)),
        ))
    }
}

/// The whole of the regular file `path`, if it holds at most `limit` bytes.
pub fn read(path: &Path, limit: u64) -> std::io::Result<Vec<u8>> {
    check(path)?;
    let file = File::open(path)?;
    // Checked again on what was opened, in case the path changed in between.
    let metadata = file.metadata()?;
    if !metadata.is_file() {
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!("not a regular file but {}", kind(&metadata)),
        ));
    }
    let too_large = || {
        Error::new(
            ErrorKind::InvalidData,
            format!("larger than the {} limit", size(limit)),
        )
    };
    if metadata.len() > limit {
        return Err(too_large());
    }
    let mut bytes = Vec::with_capacity(metadata.len() as usize);
    file.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(too_large());
    }
    Ok(bytes)
}

/// What a non-regular file is, for messages.
pub fn kind(metadata: &Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let file_type = metadata.file_type();
    if file_type.is_dir() {
        "a directory"
    } else if file_type.is_char_device() {
        "a character device"
    } else if file_type.is_block_device() {
        "a block device"
    } else if file_type.is_fifo() {
        "a FIFO"
    } else if file_type.is_socket() {
        "a socket"
    } else if file_type.is_file() {
        "a regular file"
    } else {
        "something else"
    }
}

fn size(bytes: u64) -> String {
    if bytes >= 1 << 30 {
        format!("{} GiB", bytes >> 30)
    } else {
        format!("{} MiB", bytes >> 20)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_and_directories_are_refused_without_reading() {
        let err = read(Path::new("/dev/zero"), MAX_BLOB_BYTES).unwrap_err();
        assert_eq!(err.to_string(), "not a regular file but a character device");
        let dir = tempfile::tempdir().unwrap();
        let err = read(dir.path(), MAX_BLOB_BYTES).unwrap_err();
        assert_eq!(err.to_string(), "not a regular file but a directory");
    }

    #[test]
    fn files_over_the_limit_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big");
        std::fs::write(&path, vec![7u8; (2 << 20) + 1]).unwrap();
        let err = read(&path, 2 << 20).unwrap_err();
        assert_eq!(err.to_string(), "larger than the 2 MiB limit");
        assert_eq!(read(&path, 3 << 20).unwrap().len(), (2 << 20) + 1);
    }
}
