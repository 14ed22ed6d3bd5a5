//! Writing output files so that a failure, or a kill at any instant, leaves each destination
//! either as it was or complete, and never harms what the user did not ask to replace.
//!
//! - Destinations are checked before any work ([`check`]): each must be a regular file or
//!   absent (a device, FIFO or directory is refused, so `-o /dev/null` cannot replace the
//!   device node), in a writable directory, and no two may be the same file.
//! - A symlink is written through: its target is replaced, the link stays.
//! - Bytes go to a temporary file beside the destination (mode: the old file's, else 0644),
//!   are synced, then renamed over it. A kill leaves the temporary file behind; the next write
//!   to the same destination removes it once its process is gone.
//! - With several files, an old file is kept as a hard link until all are in place, so a
//!   failed rename puts every earlier file back as it was instead of deleting it.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use qcnn_config::regular_file;

#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("{}: refusing to write over {kind}", path.display())]
    NotRegular { path: PathBuf, kind: &'static str },
    #[error("{} and {} are the same file", first.display(), second.display())]
    SameFile { first: PathBuf, second: PathBuf },
    #[error("{}: cannot write in the directory {}", path.display(), dir.display())]
    NotWritable {
        path: PathBuf,
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: more than 40 levels of symbolic links", path.display())]
    SymlinkLoop { path: PathBuf },
    #[error("writing {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// New files get `rw-r--r--`, as a shell redirection would with the usual umask.
const NEW_FILE_MODE: u32 = 0o644;
/// The marker in the names of temporary and backup files, followed by the writer's pid.
const PARTIAL: &str = ".qcnn-partial-";
const BACKUP: &str = ".qcnn-backup-";

/// A checked destination.
#[derive(Clone, Debug)]
pub struct Destination {
    /// As the user named it.
    pub path: PathBuf,
    /// With symlinks followed: the file that is replaced.
    pub real: PathBuf,
    /// Mode bits of the file written.
    pub mode: u32,
    /// Device and inode of the existing file.
    existing: Option<(u64, u64)>,
}

impl Destination {
    fn dir(&self) -> &Path {
        match self.real.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        }
    }

    fn sibling(&self, marker: &str, pid: u32) -> PathBuf {
        let name = self.real.file_name().unwrap_or_default().to_string_lossy();
        self.dir().join(format!(".{name}{marker}{pid}"))
    }
}

/// Checks every destination, as described in the module documentation, without writing
/// anything; call it before the work whose result will be written.
pub fn check(paths: &[&Path]) -> Result<Vec<Destination>, OutputError> {
    let mut destinations: Vec<Destination> = Vec::with_capacity(paths.len());
    for &path in paths {
        let destination = check_one(path)?;
        if let Some(earlier) = destinations.iter().find(|d| same_file(d, &destination)) {
            return Err(OutputError::SameFile {
                first: earlier.path.clone(),
                second: path.to_owned(),
            });
        }
        destinations.push(destination);
    }
    Ok(destinations)
}

/// Writes `bytes` to `path` atomically (see the module documentation).
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), OutputError> {
    write_all_or_nothing(&[(path, bytes)])
}

/// Writes every file, or (on an error) leaves every destination as it was.
pub fn write_all_or_nothing(files: &[(&Path, &[u8])]) -> Result<(), OutputError> {
    let paths: Vec<&Path> = files.iter().map(|(path, _)| *path).collect();
    let destinations = check(&paths)?;
    let pid = std::process::id();
    for destination in &destinations {
        remove_stale_siblings(destination);
    }
    let mut staged = Vec::with_capacity(files.len());
    let result = (|| {
        for (destination, (_, bytes)) in destinations.iter().zip(files) {
            let temp = destination.sibling(PARTIAL, pid);
            staged.push(temp.clone());
            write_synced(&temp, bytes, destination.mode).map_err(|source| OutputError::Io {
                path: destination.path.clone(),
                source,
            })?;
        }
        Ok(())
    })();
    if let Err(err) = result {
        staged
            .iter()
            .for_each(|temp| drop(std::fs::remove_file(temp)));
        return Err(err);
    }
    place(&destinations, &staged, pid)
}

/// Renames each staged file over its destination; on a failure, puts the earlier ones back.
fn place(destinations: &[Destination], staged: &[PathBuf], pid: u32) -> Result<(), OutputError> {
    // With one file a rename is all or nothing already; with several, keep each old file.
    let keep_old = destinations.len() > 1;
    let mut placed: Vec<(&Destination, Option<PathBuf>)> = Vec::new();
    for (destination, temp) in destinations.iter().zip(staged) {
        let backup = destination.sibling(BACKUP, pid);
        let backup = (keep_old
            && destination.existing.is_some()
            && std::fs::hard_link(&destination.real, &backup).is_ok())
        .then_some(backup);
        if let Err(source) = std::fs::rename(temp, &destination.real) {
            for (done, backup) in placed.into_iter().rev() {
                match backup {
                    Some(backup) => drop(std::fs::rename(backup, &done.real)),
                    // The file did not exist before, so it is ours to remove.
                    None if done.existing.is_none() => drop(std::fs::remove_file(&done.real)),
                    None => {}
                }
            }
            if let Some(backup) = backup {
                let _ = std::fs::remove_file(backup);
            }
            staged
                .iter()
                .for_each(|temp| drop(std::fs::remove_file(temp)));
            return Err(OutputError::Io {
                path: destination.path.clone(),
                source,
            });
        }
        placed.push((destination, backup));
    }
    for (destination, backup) in placed {
        if let Some(backup) = backup {
            let _ = std::fs::remove_file(backup);
        }
        // The rename itself must reach the disk too.
        let _ = File::open(destination.dir()).and_then(|dir| dir.sync_all());
    }
    Ok(())
}

fn write_synced(temp: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(temp)?;
    // Set after creation: the mode given to open() is reduced by the umask.
    file.set_permissions(std::fs::Permissions::from_mode(mode))?;
    file.write_all(bytes)?;
    file.sync_all()
}

fn check_one(path: &Path) -> Result<Destination, OutputError> {
    let io_error = |source| OutputError::Io {
        path: path.to_owned(),
        source,
    };
    let (real, metadata) = follow_symlinks(path)?;
    let (mode, existing) = match &metadata {
        Some(metadata) if !metadata.is_file() => {
            return Err(OutputError::NotRegular {
                path: path.to_owned(),
                kind: regular_file::kind(metadata),
            });
        }
        Some(metadata) => (
            metadata.permissions().mode() & 0o7777,
            Some((metadata.dev(), metadata.ino())),
        ),
        None => (NEW_FILE_MODE, None),
    };
    if real.file_name().is_none() {
        return Err(io_error(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "names no file",
        )));
    }
    let destination = Destination {
        path: path.to_owned(),
        real,
        mode,
        existing,
    };
    let dir = destination.dir().to_owned();
    rustix::fs::access(
        dir.as_path(),
        rustix::fs::Access::WRITE_OK | rustix::fs::Access::EXEC_OK,
    )
    .map_err(|errno| OutputError::NotWritable {
        path: path.to_owned(),
        dir: dir.clone(),
        source: errno.into(),
    })?;
    Ok(destination)
}

/// `path` with every symlink followed (a dangling one names the file to create), and the
/// metadata of what it leads to, if that exists.
fn follow_symlinks(path: &Path) -> Result<(PathBuf, Option<std::fs::Metadata>), OutputError> {
    let mut current = path.to_owned();
    for _ in 0..40 {
        match std::fs::symlink_metadata(&current) {
            Ok(metadata) if metadata.file_type().is_symlink() => {
                let target = std::fs::read_link(&current).map_err(|source| OutputError::Io {
                    path: path.to_owned(),
                    source,
                })?;
                current = match current.parent() {
                    Some(dir) => dir.join(target),
                    None => target,
                };
            }
            Ok(metadata) => return Ok((current, Some(metadata))),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok((current, None)),
            Err(source) => {
                return Err(OutputError::Io {
                    path: path.to_owned(),
                    source,
                });
            }
        }
    }
    Err(OutputError::SymlinkLoop {
        path: path.to_owned(),
    })
}

fn same_file(a: &Destination, b: &Destination) -> bool {
    if a.existing.is_some() && a.existing == b.existing {
        return true;
    }
    let canonical = |d: &Destination| {
        std::fs::canonicalize(d.dir())
            .ok()
            .map(|dir| dir.join(d.real.file_name().unwrap_or_default()))
    };
    a.real == b.real || (canonical(a).is_some() && canonical(a) == canonical(b))
}

/// Removes the temporary and backup files that killed writers left for `destination`.
fn remove_stale_siblings(destination: &Destination) {
    let Some(name) = destination.real.file_name() else {
        return;
    };
    let prefix = format!(".{}", name.to_string_lossy());
    let Ok(entries) = std::fs::read_dir(destination.dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let file_name = file_name.to_string_lossy();
        let Some(rest) = file_name.strip_prefix(&prefix) else {
            continue;
        };
        let pid = rest
            .strip_prefix(PARTIAL)
            .or_else(|| rest.strip_prefix(BACKUP))
            .and_then(|pid| pid.parse::<u32>().ok());
        // Our own pid can only be an earlier process's: this one removes its files itself.
        let gone = pid.is_some_and(|pid| {
            pid == std::process::id() || !Path::new(&format!("/proc/{pid}")).exists()
        });
        if gone && entry.file_type().is_ok_and(|t| t.is_file()) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    /// Issue 17: with the report aimed at a directory, the old model was deleted.
    #[test]
    fn a_failing_second_file_leaves_the_first_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let model = dir.path().join("old.qcnn");
        std::fs::write(&model, b"the previous model").unwrap();
        let report = dir.path().join("a-directory");
        std::fs::create_dir(&report).unwrap();
        let err = write_all_or_nothing(&[(&model, b"new"), (&report, b"{}")]).unwrap_err();
        assert!(
            err.to_string()
                .contains("refusing to write over a directory"),
            "{err}"
        );
        assert_eq!(std::fs::read(&model).unwrap(), b"the previous model");
    }

    /// The rollback itself, past the checks: the second rename fails (its staged file
    /// vanished), and the first file is put back, not deleted.
    #[test]
    fn a_failed_rename_puts_earlier_files_back() {
        let dir = tempfile::tempdir().unwrap();
        let first = dir.path().join("first");
        std::fs::write(&first, b"old first").unwrap();
        let sub = dir.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        let second = sub.join("second");
        let destinations = check(&[&first, &second]).unwrap();
        let pid = std::process::id();
        let staged: Vec<PathBuf> = destinations
            .iter()
            .map(|d| d.sibling(PARTIAL, pid))
            .collect();
        write_synced(&staged[0], b"new first", 0o644).unwrap();
        write_synced(&staged[1], b"new second", 0o644).unwrap();
        std::fs::remove_file(&staged[1]).unwrap();
        assert!(place(&destinations, &staged, pid).is_err());
        assert_eq!(std::fs::read(&first).unwrap(), b"old first");
        assert!(!second.exists());
        let mut left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        left.sort();
        assert_eq!(left, ["first", "sub"], "no temporary or backup file left");
    }

    #[test]
    fn the_same_file_twice_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.qcnn");
        let err = check(&[&path, &path]).unwrap_err();
        assert!(matches!(err, OutputError::SameFile { .. }), "{err}");
        // Also through a symlink, and as a hard link of an existing file.
        let link = dir.path().join("link");
        std::os::unix::fs::symlink("x.qcnn", &link).unwrap();
        assert!(check(&[&path, &link]).is_err());
        std::fs::write(&path, b"x").unwrap();
        let hard = dir.path().join("hard");
        std::fs::hard_link(&path, &hard).unwrap();
        assert!(check(&[&path, &hard]).is_err());
    }

    #[test]
    fn devices_and_fifos_are_refused_before_any_write() {
        let err = check(&[Path::new("/dev/null")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "/dev/null: refusing to write over a character device"
        );
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        assert!(made.unwrap().success(), "mkfifo (coreutils)");
        let err = write_atomically(&fifo, b"x").unwrap_err();
        assert!(
            err.to_string().ends_with("refusing to write over a FIFO"),
            "{err}"
        );
    }

    #[test]
    fn symlinks_are_written_through_and_modes_kept() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real.qcnn");
        std::fs::write(&real, b"old").unwrap();
        std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o640)).unwrap();
        let link = dir.path().join("link.qcnn");
        std::os::unix::fs::symlink("real.qcnn", &link).unwrap();
        write_atomically(&link, b"new").unwrap();
        assert!(std::fs::symlink_metadata(&link).unwrap().is_symlink());
        assert_eq!(std::fs::read(&real).unwrap(), b"new");
        assert_eq!(mode(&real), 0o640);

        let fresh = dir.path().join("fresh.qcnn");
        write_atomically(&fresh, b"new").unwrap();
        assert_eq!(mode(&fresh), NEW_FILE_MODE);
    }

    #[test]
    fn a_missing_directory_is_found_by_the_check() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("no/such/dir/m.qcnn");
        let err = check(&[&path]).unwrap_err();
        assert!(matches!(err, OutputError::NotWritable { .. }), "{err}");
    }

    #[test]
    fn leftovers_of_dead_writers_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.qcnn");
        // No process has pid 0x7fff_fff0 (above Linux's pid_max).
        let stale = dir
            .path()
            .join(format!(".m.qcnn{PARTIAL}{}", 0x7fff_fff0u32));
        std::fs::write(&stale, b"partial").unwrap();
        let unrelated = dir.path().join(".other.qcnn-partial-x");
        std::fs::write(&unrelated, b"not ours").unwrap();
        write_atomically(&path, b"new").unwrap();
        assert!(!stale.exists());
        assert!(unrelated.exists());
    }
}
