//! All-or-nothing output: every file is written to a temporary file beside its destination,
//! and only when all are complete are they renamed into place.

use std::io::Write;
use std::path::Path;

use anyhow::Context;

pub fn write_all_or_nothing(files: &[(&Path, &[u8])]) -> anyhow::Result<()> {
    let mut staged = Vec::with_capacity(files.len());
    for &(path, bytes) in files {
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        let mut temp = tempfile::Builder::new()
            .prefix(".qcnn-quantize-")
            .tempfile_in(dir)
            .with_context(|| format!("creating a temporary file in {}", dir.display()))?;
        temp.write_all(bytes)
            .and_then(|()| temp.as_file().sync_all())
            .with_context(|| format!("writing {}", temp.path().display()))?;
        staged.push((temp, path));
    }
    let mut placed: Vec<&Path> = Vec::new();
    for (temp, path) in staged {
        if let Err(err) = temp.persist(path) {
            // Undo the renames already done, so no output is left behind.
            for done in placed {
                let _ = std::fs::remove_file(done);
            }
            return Err(err.error).with_context(|| format!("writing {}", path.display()));
        }
        placed.push(path);
    }
    Ok(())
}
