//! The `qcnn` binary end to end, against SQLite and a real PostgreSQL server: the commands,
//! the embedded default, and each failure named clearly with a non-zero exit and no panic.

mod support;

use support::cli::{TestEnv, release_blob, release_checkpoint};
use support::postgres::{self, PgServer};

#[test]
fn embedded_sqlite_is_created_and_seeded_on_first_run() {
    let env = TestEnv::new();
    assert!(!env.path("qcnn.sqlite").exists());
    let run = env.run(&["results", "--json"]);
    run.assert_success();
    assert_eq!(run.json(), serde_json::json!([]));
    let conn = rusqlite::Connection::open(env.path("qcnn.sqlite")).unwrap();
    let seeded: Vec<String> = conn
        .prepare("SELECT path FROM model_weights")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(seeded, [release_checkpoint().to_str().unwrap()]);
}

#[test]
fn unreachable_server_is_named_without_its_password() {
    let env = TestEnv::new();
    let secret = "Unreach4ble-pw";
    let url = format!(
        "postgres://qcnn:{secret}@127.0.0.1:{}/qcnn",
        postgres::free_port()
    );
    for args in [
        &["db", "init"][..],
        &["results"],
        &["evaluate", "--limit", "1"],
    ] {
        let run = env.run(&[&["--database-url", &url][..], args].concat());
        run.assert_clean_failure("connecting to PostgreSQL at postgres://qcnn:***@127.0.0.1:");
        assert!(run.stderr.contains("Connection refused"), "{}", run.stderr);
        assert!(!run.stderr.contains(secret) && !run.stdout.contains(secret));
    }
}

#[test]
fn bad_password_is_reported_and_never_printed() {
    let server = PgServer::start();
    let env = TestEnv::new();
    let wrong = "Wr0ng-Secret-77";
    let run = env
        .qcnn()
        .env("DATABASE_URL", server.url_with_password(wrong))
        .args(["db", "init"])
        .output()
        .unwrap();
    let run = support::cli::Run::from(run);
    run.assert_clean_failure("password authentication failed for user \"qcnn_tester\"");
    assert!(!run.stderr.contains(wrong) && !run.stdout.contains(wrong));
}

#[test]
fn database_url_comes_from_the_configured_environment_variable() {
    let server = PgServer::start();
    let env = TestEnv::new();
    let run = support::cli::Run::from(
        env.qcnn()
            .env("DATABASE_URL", server.url())
            .args(["db", "init"])
            .output()
            .unwrap(),
    );
    run.assert_success();
    assert!(
        run.stdout
            .contains("schema ready in postgres://qcnn_tester:***@127.0.0.1:"),
        "{}",
        run.stdout
    );
    assert!(!run.stdout.contains(postgres::password()));
    assert!(
        !env.path("qcnn.sqlite").exists(),
        "PostgreSQL was used, not the embedded file"
    );
    let seeded: String = server
        .client()
        .query_one("SELECT path FROM model_weights", &[])
        .unwrap()
        .get(0);
    assert_eq!(seeded, release_checkpoint().to_str().unwrap());
}

#[test]
fn unknown_model_id_on_both_backends() {
    let server = PgServer::start();
    let env = TestEnv::new();
    let sqlite = format!("sqlite:{}", env.path("ids.sqlite").display());
    for url in [server.url(), sqlite] {
        env.run(&["--database-url", &url, "db", "init"])
            .assert_success();
        let run = env.run(&["--database-url", &url, "evaluate", "--model-id", "999"]);
        run.assert_clean_failure("model id 999 is not in model_weights");
    }
}

#[test]
fn unreadable_model_files_are_named() {
    let env = TestEnv::new();
    let missing = env.path("missing.qcnn");
    let missing = missing.to_str().unwrap();
    env.run(&["db", "add-model", missing])
        .assert_clean_failure(&format!("reading model file {missing}"));
    env.run(&["evaluate", "--model", missing])
        .assert_clean_failure(&format!("reading model file {missing}"));
    let dir = env.dir.path().to_str().unwrap();
    env.run(&["evaluate", "--model", dir])
        .assert_clean_failure(&format!("reading model file {dir}"));

    // Readable but not a model: refused by the loader by name, by `db add-model` too.
    let garbage = env.path("garbage.qcnn");
    std::fs::write(&garbage, b"definitely not a QCNN blob").unwrap();
    let garbage = garbage.to_str().unwrap();
    env.run(&["db", "add-model", garbage])
        .assert_clean_failure(&format!("loading model {garbage}"));
    env.run(&["evaluate", "--model", garbage])
        .assert_clean_failure(&format!("loading model {garbage}"));
    let checkpoint = env.path("broken.pth");
    std::fs::write(&checkpoint, b"PK\x03\x04 truncated zip").unwrap();
    let checkpoint = checkpoint.to_str().unwrap();
    env.run(&["predict", "--model", checkpoint])
        .assert_clean_failure(&format!("quantizing checkpoint {checkpoint}"));
}

/// Evaluate, then list, on each backend: the row holds what `evaluate --json` printed.
#[test]
fn evaluate_records_a_result_that_results_lists() {
    let server = PgServer::start();
    let env = TestEnv::new();
    let blob = release_blob().to_str().unwrap();
    for url in [
        server.url(),
        format!("sqlite:{}", env.path("eval.sqlite").display()),
    ] {
        let db = ["--database-url", url.as_str()];
        env.run(&[&db[..], &["db", "init"]].concat())
            .assert_success();
        env.run(&[&db[..], &["db", "add-model", blob]].concat())
            .assert_success();
        // No --model: the newest model_weights row, which is the blob.
        let run = env.run(
            &[
                &db[..],
                &["evaluate", "--limit", "300", "--threads", "2", "--json"],
            ]
            .concat(),
        );
        run.assert_success();
        assert!(
            !run.stdout.contains(postgres::password())
                && !run.stderr.contains(postgres::password())
        );
        let e = run.json();
        assert_eq!(e["model_path"], blob);
        assert_eq!(e["samples"], 300);
        assert_eq!(e["threads"], 2);
        assert_eq!(e["model_sha256"].as_str().unwrap().len(), 64);
        assert!(e["images_per_s"].as_f64().unwrap() > 0.0);
        assert!(
            e["float"].is_null() && e["agreement"].is_null(),
            "a blob has no float reference"
        );
        let int8 = &e["int8"];
        assert_eq!(int8["per_class"].as_array().unwrap().len(), 10);
        let confusion: Vec<Vec<u64>> = serde_json::from_value(int8["confusion"].clone()).unwrap();
        assert_eq!(confusion.iter().flatten().sum::<u64>(), 300);
        let accuracy = int8["accuracy"].as_f64().unwrap();
        assert!(
            accuracy > 0.85,
            "the release model classifies well: {accuracy}"
        );

        let listed = env.run(&[&db[..], &["results", "--json", "--limit", "5"]].concat());
        listed.assert_success();
        let rows = listed.json();
        assert_eq!(rows.as_array().unwrap().len(), 1);
        assert_eq!(rows[0]["id"], e["result_id"]);
        assert_eq!(rows[0]["accuracy"], int8["accuracy"]);
        assert_eq!(rows[0]["model_sha256"], e["model_sha256"]);
        assert!(
            rows[0]["model_id"].as_i64().is_some(),
            "linked to its model_weights row"
        );
        let table = env.run(&[&db[..], &["results"]].concat());
        table.assert_success();
        assert!(table.stdout.contains(blob), "{}", table.stdout);
    }
}

#[test]
fn failing_the_gate_exits_non_zero_and_still_records() {
    let env = TestEnv::with_gate(0.999, 0.999);
    let blob = release_blob().to_str().unwrap();
    let run = env.run(&["evaluate", "--model", blob, "--limit", "200"]);
    run.assert_clean_failure("gate failed: int8 accuracy");
    assert!(
        run.stderr.contains("below evaluate.min_accuracy 0.999"),
        "{}",
        run.stderr
    );
    assert!(
        run.stdout.contains("FAILED"),
        "the table says so too: {}",
        run.stdout
    );
    let rows = env.run(&["results", "--json"]).json();
    assert_eq!(rows.as_array().unwrap().len(), 1);
}

/// One line per image, as the firmware prints: `img <i> pred <class> logits <10 × int8>`.
#[test]
fn predict_prints_the_firmware_format() {
    let env = TestEnv::new();
    let run = env.run(&[
        "predict",
        "--model",
        release_blob().to_str().unwrap(),
        "--first",
        "5",
    ]);
    run.assert_success();
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 5);
    for (i, line) in lines.iter().enumerate() {
        let fields: Vec<&str> = line.split(' ').collect();
        assert_eq!(fields.len(), 15, "{line}");
        assert_eq!(
            (fields[0], fields[1], fields[2], fields[4]),
            ("img", &*i.to_string(), "pred", "logits")
        );
        let logits: Vec<i8> = fields[5..].iter().map(|v| v.parse().unwrap()).collect();
        let predicted: usize = fields[3].parse().unwrap();
        let max = *logits.iter().max().unwrap();
        assert_eq!(predicted, logits.iter().position(|&l| l == max).unwrap());
    }
    // Test image 0 is an ankle boot (class 9), which the release model gets right.
    assert!(lines[0].starts_with("img 0 pred 9 "), "{}", lines[0]);
}

/// Issue 17: raw control characters (newlines, ANSI escapes) in a stored path went to the
/// terminal in `qcnn results`, where they can forge rows or recolour the screen.
#[test]
fn control_characters_in_stored_paths_are_escaped() {
    let env = TestEnv::new();
    let path = env.path("evil\n    99 2026-01-01 forged\u{1b}[31mred.qcnn");
    std::fs::copy(release_blob(), &path).unwrap();
    let added = env.run(&["db", "add-model", path.to_str().unwrap()]);
    added.assert_success();
    let evaluated = env.run(&["evaluate", "--limit", "10"]);
    evaluated.assert_success();
    let listed = env.run(&["results"]);
    listed.assert_success();
    for run in [&added, &evaluated, &listed] {
        assert!(!run.stdout.contains('\u{1b}'), "{:?}", run.stdout);
        assert!(!run.stdout.contains("\n    99"), "{:?}", run.stdout);
    }
    assert!(
        listed
            .stdout
            .contains("evil\\n    99 2026-01-01 forged\\u{1b}[31mred.qcnn"),
        "{}",
        listed.stdout
    );
    assert_eq!(listed.stdout.lines().count(), 2, "a header and one row");
    // --json keeps the path exactly (JSON escapes it).
    let rows = env.run(&["results", "--json"]).json();
    assert_eq!(rows[0]["model_path"], path.to_str().unwrap());
}
