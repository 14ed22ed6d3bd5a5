//! The embedded SQLite file's first use (issue 17): atomic under concurrency, repaired when a
//! file exists but is empty, and never a database that vanishes.

mod support;

use support::cli::{Run, TestEnv, release_blob};

/// A `touch`ed file, or one a first run left when the disk was full, failed every later run
/// with `no such table`; now it gets the schema like a new file.
#[test]
fn empty_sqlite_file_gets_the_schema() {
    let env = TestEnv::new();
    std::fs::write(env.path("qcnn.sqlite"), b"").unwrap();
    let run = env.run(&["results", "--json"]);
    run.assert_success();
    assert_eq!(run.json(), serde_json::json!([]));
    let blob = release_blob().to_str().unwrap();
    env.run(&["evaluate", "--limit", "20", "--model", blob])
        .assert_success();
    assert_eq!(
        env.run(&["results", "--json"])
            .json()
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

/// Eight processes using a new SQLite file at once: 7 failures in 80 before the fix.
#[test]
fn concurrent_first_uses_all_succeed() {
    for round in 0..4 {
        let env = TestEnv::new();
        for run in env.run_concurrently(8, &["results", "--json"]) {
            assert!(run.success, "round {round}: {}", run.stderr);
        }
        let seeded: i64 = rusqlite::Connection::open(env.path("qcnn.sqlite"))
            .unwrap()
            .query_row("SELECT COUNT(*) FROM model_weights", [], |r| r.get(0))
            .unwrap();
        assert_eq!(seeded, 1, "seeded once");
    }
}

/// `sqlite:`, `sqlite://` and `sqlite::memory:` exited 0 with "recorded" into a database
/// that vanished (easy to hit with `sqlite:$UNSET`).
#[test]
fn sqlite_urls_without_a_file_are_refused() {
    let env = TestEnv::new();
    let blob = release_blob().to_str().unwrap();
    for url in ["sqlite:", "sqlite://", "sqlite::memory:"] {
        let run = env.run(&[
            "--database-url",
            url,
            "evaluate",
            "--limit",
            "10",
            "--model",
            blob,
        ]);
        eprintln!("{}", run.stderr.trim_end());
        run.assert_clean_failure("names no file: the database would vanish when qcnn exits");
        assert!(!run.stdout.contains("recorded"), "{}", run.stdout);
    }
}

/// A database path that is a FIFO blocked forever, a directory gave SQLite's own words.
#[test]
fn sqlite_path_that_is_not_a_regular_file() {
    let env = TestEnv::new();
    let fifo = env.fifo("db.fifo");
    let run = env.run(&[
        "--database-url",
        &format!("sqlite:{}", fifo.display()),
        "results",
    ]);
    run.assert_clean_failure(&format!(
        "the SQLite database {}: not a regular file but a FIFO",
        fifo.display()
    ));
}

/// A read-only SQLite file was discovered only when the result was recorded, after the
/// whole evaluation; now before it. Root ignores file modes, so the run is made as `nobody`.
#[test]
fn read_only_sqlite_file_is_found_before_the_evaluation() {
    let env = TestEnv::new();
    env.run(&["results"]).assert_success();
    let db = env.path("qcnn.sqlite");
    support::cli::make_readable_by_all(env.dir.path());
    set_mode(&db, 0o444);
    // A model path that does not exist: the database check must come first to be seen.
    let mut command = support::cli::unprivileged(env.qcnn());
    command.args(["evaluate", "--model", "/nonexistent/model.qcnn"]);
    let run = Run::from(command.output().unwrap());
    eprintln!("{}", run.stderr.trim_end());
    run.assert_clean_failure(&format!(
        "qcnn: error: SQLite {}: read-only (or no INSERT privilege): a result could not be recorded",
        db.display()
    ));
}

fn set_mode(path: &std::path::Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}
