//! Issue 17: what `qcnn-quantize -o … --report …` does to the files it replaces. It never
//! removes or truncates a file it did not create, refuses destinations that are not regular
//! files, writes through symlinks, keeps modes, and checks all of it before the work.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;

fn checkpoint() -> PathBuf {
    fixture("random_init.safetensors")
}

fn quantize(output: &Path, report: Option<&Path>) -> Output {
    let mut command = Command::new(quantize_binary());
    command
        .arg(checkpoint())
        .arg("-o")
        .arg(output)
        .arg("--config")
        .arg(repo_config());
    if let Some(report) = report {
        command.arg("--report").arg(report);
    }
    command.output().unwrap()
}

fn assert_fails(out: &Output, expected: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(expected), "{expected:?} not in {stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

/// The report aimed at a directory: the rollback deleted the model the rename had already put
/// in place, and the previous model was gone.
#[test]
fn report_aimed_at_a_directory_keeps_the_previous_model() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("old.qcnn");
    std::fs::write(&model, b"the previous model").unwrap();
    let report = dir.path().join("a-directory");
    std::fs::create_dir(&report).unwrap();
    let out = quantize(&model, Some(&report));
    assert_fails(&out, "a-directory: refusing to write over a directory");
    assert_eq!(std::fs::read(&model).unwrap(), b"the previous model");
    assert_eq!(listing(dir.path()), ["a-directory", "old.qcnn"]);
}

/// `-o x.qcnn --report x.qcnn` exited 0 and left a JSON file named `.qcnn`.
#[test]
fn output_and_report_naming_the_same_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.qcnn");
    let out = quantize(&path, Some(&path));
    assert_fails(
        &out,
        &format!("{0} and {0} are the same file", path.display()),
    );
    assert!(listing(dir.path()).is_empty());
}

/// `-o` onto a device node replaced it with a regular file (as root, `-o /dev/null` would
/// have replaced the system's). Tested with a FIFO, which the old code replaced the same way.
#[test]
fn output_onto_a_fifo_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("model.qcnn");
    common::mkfifo(&fifo);
    let out = quantize(&fifo, None);
    assert_fails(&out, "model.qcnn: refusing to write over a FIFO");
    let file_type = std::fs::symlink_metadata(&fifo).unwrap().file_type();
    assert!(std::os::unix::fs::FileTypeExt::is_fifo(&file_type));
}

/// `-o` replaced a symlink instead of writing through it, and files came out mode 0600.
#[test]
fn output_through_a_symlink_keeps_the_link_and_the_modes() {
    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().join("release.qcnn");
    std::fs::write(&real, b"old").unwrap();
    std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o640)).unwrap();
    let link = dir.path().join("current.qcnn");
    std::os::unix::fs::symlink("release.qcnn", &link).unwrap();
    let report = dir.path().join("report.json");
    let out = quantize(&link, Some(&report));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(std::fs::symlink_metadata(&link).unwrap().is_symlink());
    assert!(std::fs::read(&real).unwrap().starts_with(b"QCNN"));
    assert_eq!(mode(&real), 0o640, "the replaced file's mode");
    assert_eq!(mode(&report), 0o644, "a new file's mode");
    assert_eq!(
        listing(dir.path()),
        ["current.qcnn", "release.qcnn", "report.json"]
    );
}

/// A read-only output directory was discovered after the whole quantization. The checkpoint
/// here does not exist, so the output check is seen only if it comes first. Root ignores
/// directory modes, so the run is made as `nobody`.
#[test]
fn read_only_output_directory_is_found_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("read-only");
    std::fs::create_dir(&out_dir).unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&out_dir, std::fs::Permissions::from_mode(0o555)).unwrap();
    let model = out_dir.join("m.qcnn");
    let mut command = Command::new(quantize_binary());
    command
        .arg(dir.path().join("missing.pth"))
        .arg("-o")
        .arg(&model)
        .arg("--config")
        .arg(repo_config());
    let out = unprivileged(command).output().unwrap();
    assert_fails(
        &out,
        &format!(
            "{}: cannot write in the directory {}: Permission denied",
            model.display(),
            out_dir.display()
        ),
    );
}
