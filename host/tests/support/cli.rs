//! Running the real `qcnn` binary in a temp dir with its own config.yaml.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// The release checkpoint (pulled by `dvc pull`).
pub fn release_checkpoint() -> PathBuf {
    repo_root().join("checkpoints/CNNModel_FashionMNIST_best_metric_model.pth")
}

/// The `qcnn` binary under test: this build's, or the one in `$QCNN_TEST_BIN_DIR`, which runs
/// these tests against another build (e.g. an older release, to see a regression test fail).
pub fn qcnn_binary() -> PathBuf {
    match std::env::var_os("QCNN_TEST_BIN_DIR") {
        Some(dir) => Path::new(&dir).join("qcnn"),
        None => PathBuf::from(env!("CARGO_BIN_EXE_qcnn")),
    }
}

/// A temp dir holding a config.yaml like the repository's, with absolute paths, its own
/// SQLite file and the given gate.
pub struct TestEnv {
    pub dir: tempfile::TempDir,
}

impl TestEnv {
    /// Gate at 0, so that a short `--limit` run of any model passes.
    pub fn new() -> TestEnv {
        Self::with_gate(0.0, 0.0)
    }

    pub fn with_gate(min_accuracy: f64, min_f1_macro: f64) -> TestEnv {
        let dir = tempfile::tempdir().unwrap();
        let root = repo_root();
        let text = std::fs::read_to_string(root.join("config.yaml")).unwrap();
        let replace = |text: String, from: &str, to: String| {
            assert!(
                text.contains(from),
                "config.yaml no longer contains {from:?}"
            );
            text.replace(from, &to)
        };
        let text = replace(
            text,
            "path: checkpoints/",
            format!("path: {}/checkpoints/", root.display()),
        );
        let text = replace(
            text,
            "- data/FashionMNIST/raw",
            format!("- {}/data/FashionMNIST/raw", root.display()),
        );
        let text = replace(
            text,
            "min_accuracy: 0.92",
            format!("min_accuracy: {min_accuracy}"),
        );
        let text = replace(
            text,
            "min_f1_macro: 0.92",
            format!("min_f1_macro: {min_f1_macro}"),
        );
        std::fs::write(dir.path().join("config.yaml"), text).unwrap();
        TestEnv { dir }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `qcnn` in the temp dir, with its config and no DATABASE_URL from the caller.
    pub fn qcnn(&self) -> Command {
        let mut command = Command::new(qcnn_binary());
        command
            .current_dir(self.dir.path())
            .env_remove("DATABASE_URL")
            .arg("--config")
            .arg(self.path("config.yaml"));
        command
    }

    pub fn run(&self, args: &[&str]) -> Run {
        Run::from(self.qcnn().args(args).output().expect("running qcnn"))
    }

    /// `count` runs of `qcnn args` started together, then waited for, in start order.
    pub fn run_concurrently(&self, count: usize, args: &[&str]) -> Vec<Run> {
        let children: Vec<std::process::Child> = (0..count)
            .map(|_| {
                self.qcnn()
                    .args(args)
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .expect("starting qcnn")
            })
            .collect();
        children
            .into_iter()
            .map(|child| Run::from(child.wait_with_output().expect("waiting for qcnn")))
            .collect()
    }

    /// A FIFO named `name` in the temp dir (a file no reader should block on).
    pub fn fifo(&self, name: &str) -> PathBuf {
        let fifo = self.path(name);
        let made = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
        assert!(made.success(), "mkfifo {}", fifo.display());
        fifo
    }
}

/// A finished run, with its output as text.
pub struct Run {
    pub success: bool,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(out: Output) -> Run {
        Run {
            success: out.status.success(),
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

impl Run {
    /// Failed with exit code 1 and a message, not a panic (which exits 101) or a signal.
    pub fn assert_clean_failure(&self, expected: &str) {
        assert_eq!(
            self.code,
            Some(1),
            "stdout: {}\nstderr: {}",
            self.stdout,
            self.stderr
        );
        assert!(
            self.stderr.contains(expected),
            "stderr lacks {expected:?}: {}",
            self.stderr
        );
        assert!(!self.stderr.contains("panicked"), "{}", self.stderr);
    }

    pub fn assert_success(&self) {
        assert!(
            self.success,
            "stdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("{e}: {}", self.stdout))
    }
}

/// The release checkpoint quantized once per test binary, as a `.qcnn` blob, so that the
/// tests that are not about quantization do not each pay for it.
pub fn release_blob() -> &'static Path {
    static BLOB: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    &BLOB
        .get_or_init(|| {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("release.qcnn");
            let config =
                qcnn_config::config::Config::load(&repo_root().join("config.yaml")).unwrap();
            let dataset = qcnn_dataset::FashionMnist::load(&config.data.dirs).unwrap();
            let loaded = qcnn_host::model_file::load(
                &release_checkpoint(),
                qcnn_host::model_file::read(&release_checkpoint()).unwrap(),
                &config,
                &dataset,
            )
            .unwrap();
            std::fs::write(&path, loaded.blob).unwrap();
            (dir, path)
        })
        .1
}

fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0\n"))
        .unwrap_or(false)
}

/// `command` as the user `nobody` when the tests run as root, who ignores file modes; as it
/// is otherwise. The environment and working directory carry over.
pub fn unprivileged(command: Command) -> Command {
    if !is_root() {
        return command;
    }
    let mut wrapped = Command::new("runuser");
    wrapped
        .args(["-u", "nobody", "--"])
        .arg(command.get_program())
        .args(command.get_args());
    if let Some(dir) = command.get_current_dir() {
        wrapped.current_dir(dir);
    }
    for (key, value) in command.get_envs() {
        match value {
            Some(value) => wrapped.env(key, value),
            None => wrapped.env_remove(key),
        };
    }
    wrapped
}

/// Lets `nobody` read (and enter) `dir` and what it holds.
pub fn make_readable_by_all(dir: &Path) {
    let status = Command::new("chmod")
        .arg("-R")
        .arg("a+rX")
        .arg(dir)
        .status()
        .unwrap();
    assert!(status.success(), "chmod {}", dir.display());
}
