//! Database faults against a real PostgreSQL server (issue 8): a server that dies mid-run,
//! concurrent writers, hostile model paths, passwords, and TLS.

mod support;

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use support::cli::{Run, TestEnv, release_blob};
use support::postgres::{self, PgServer};

fn count_rows(server: &PgServer, table: &str) -> i64 {
    server
        .client()
        .query_one(&format!("SELECT COUNT(*) FROM {table}"), &[])
        .unwrap()
        .get(0)
}

/// A fresh server holding the schema, a harness, and the server's URL.
fn server_with_schema() -> (PgServer, TestEnv, String) {
    let server = PgServer::start();
    let env = TestEnv::new();
    let url = server.url();
    env.run(&["--database-url", &url, "db", "init"])
        .assert_success();
    (server, env, url)
}

/// Starts `qcnn evaluate` of the release blob against `url`, with `extra` arguments.
fn spawn_evaluate(env: &TestEnv, url: &str, extra: &[&str]) -> Child {
    let blob = release_blob().to_str().unwrap();
    env.qcnn()
        .args(["--database-url", url, "evaluate", "--model", blob])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting qcnn")
}

/// The server goes away while `evaluate` is running (connected, inferring): the run fails
/// with a clear message, and nothing of it is left in the database.
#[test]
fn server_stopped_mid_run_leaves_no_partial_rows() {
    let (server, env, url) = server_with_schema();
    let child = spawn_evaluate(&env, &url, &["--threads", "1"]);
    // Wait until qcnn holds its connection, i.e. it is past connecting and into the run.
    let deadline = Instant::now() + Duration::from_secs(60);
    while server
        .psql_superuser("SELECT COUNT(*) FROM pg_stat_activity WHERE application_name = 'qcnn'")
        .trim()
        != "1"
    {
        assert!(Instant::now() < deadline, "qcnn never connected");
        std::thread::sleep(Duration::from_millis(20));
    }
    server.stop();
    let run = Run::from(child.wait_with_output().unwrap());
    run.assert_clean_failure("recording the result in postgres://qcnn_tester:***@127.0.0.1:");
    assert!(!run.stderr.contains(postgres::password()));

    server.restart();
    for table in [
        "model_results",
        "model_result_classes",
        "model_result_confusion",
    ] {
        assert_eq!(
            count_rows(&server, table),
            0,
            "{table} has rows of the failed run"
        );
    }
}

/// Eight `qcnn evaluate` processes at once: eight complete results, none mixed up.
#[test]
fn eight_concurrent_evaluations_write_eight_complete_rows() {
    let (server, env, url) = server_with_schema();
    let children: Vec<Child> = (0..8)
        .map(|_| spawn_evaluate(&env, &url, &["--limit", "200", "--threads", "1", "--json"]))
        .collect();
    let mut ids: Vec<i64> = children
        .into_iter()
        .map(|child| {
            let run = Run::from(child.wait_with_output().unwrap());
            run.assert_success();
            run.json()["result_id"].as_i64().unwrap()
        })
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 8, "eight distinct result ids");
    assert_eq!(count_rows(&server, "model_results"), 8);
    // Every result has its 10 per-class rows and its 100 confusion cells summing to 200.
    let mut client = server.client();
    for id in ids {
        let classes: i64 = client
            .query_one(
                "SELECT COUNT(*) FROM model_result_classes WHERE result_id = $1",
                &[&id],
            )
            .unwrap()
            .get(0);
        assert_eq!(classes, 10);
        let row = client
            .query_one(
                "SELECT COUNT(*), SUM(count)::bigint FROM model_result_confusion WHERE result_id = $1",
                &[&id],
            )
            .unwrap();
        assert_eq!((row.get::<_, i64>(0), row.get::<_, i64>(1)), (100, 200));
    }
}

/// A model file whose path has quotes, semicolons, SQL comment syntax and non-ASCII, through
/// the binary: added, evaluated as the newest row, listed, all intact.
#[test]
fn hostile_model_path_round_trips_through_the_cli() {
    let server = PgServer::start();
    let env = TestEnv::new();
    let path = env.path("it's \"q\"; DROP TABLE model_results; -- ünïcødé 模型.qcnn");
    std::fs::copy(release_blob(), &path).unwrap();
    let path = path.to_str().unwrap();
    let sqlite = format!("sqlite:{}", env.path("hostile.sqlite").display());
    for url in [server.url(), sqlite] {
        let db = ["--database-url", url.as_str()];
        env.run(&[&db[..], &["db", "init"]].concat())
            .assert_success();
        env.run(&[&db[..], &["db", "add-model", path]].concat())
            .assert_success();
        let run = env.run(&[&db[..], &["evaluate", "--limit", "20", "--json"]].concat());
        run.assert_success();
        assert_eq!(run.json()["model_path"], path);
        let rows = env.run(&[&db[..], &["results", "--json"]].concat()).json();
        assert_eq!(rows[0]["model_path"], path);
    }
    assert_eq!(
        count_rows(&server, "model_results"),
        1,
        "the table is still there"
    );
}

/// sslmode=require encrypts against a self-signed certificate; verify-full checks it and
/// rejects a host name the certificate does not carry. The server only accepts TLS over TCP.
#[test]
fn tls_require_works_and_verify_full_rejects_a_wrong_host_name() {
    let server = PgServer::start_tls();
    let env = TestEnv::new();
    let cert = server
        .tls
        .as_ref()
        .unwrap()
        .cert
        .to_str()
        .unwrap()
        .to_owned();
    let at = |host: &str, query: &str| {
        format!(
            "postgres://{}:{}@{host}:{}/qcnn?{query}",
            postgres::USER,
            postgres::password(),
            server.port
        )
    };

    env.run(&[
        "--database-url",
        &at("127.0.0.1", "sslmode=require"),
        "db",
        "init",
    ])
    .assert_success();
    // Without TLS the server turns the client away: so the success above was over TLS.
    env.run(&[
        "--database-url",
        &at("127.0.0.1", "sslmode=disable"),
        "results",
    ])
    .assert_clean_failure("no pg_hba.conf entry");

    let verified = at(
        "localhost",
        &format!("sslmode=verify-full&sslrootcert={cert}"),
    );
    env.run(&["--database-url", &verified, "results"])
        .assert_success();

    let wrong_host = at(
        "127.0.0.1",
        &format!("sslmode=verify-full&sslrootcert={cert}"),
    );
    let run = env.run(&["--database-url", &wrong_host, "results"]);
    run.assert_clean_failure("connecting to PostgreSQL at postgres://qcnn_tester:***@127.0.0.1:");
    assert!(
        run.stderr.contains("certificate verify failed"),
        "{}",
        run.stderr
    );
    // verify-ca checks the chain only, so the same host is accepted.
    let ca_only = at(
        "127.0.0.1",
        &format!("sslmode=verify-ca&sslrootcert={cert}"),
    );
    env.run(&["--database-url", &ca_only, "results"])
        .assert_success();
    // Untrusted: verify-full without the root certificate.
    env.run(&[
        "--database-url",
        &at("localhost", "sslmode=verify-full"),
        "results",
    ])
    .assert_clean_failure("certificate verify failed");
    assert!(!run.stderr.contains(postgres::password()));
}

// Issue 17: schema handling, time limits and TLS.

/// Runs `qcnn` with `args` and a deadline: a hang is killed and fails the test instead of
/// holding up the suite (the deadline is a guard, not a measurement).
fn run_with_deadline(env: &TestEnv, args: &[&str], deadline: Duration) -> Run {
    let mut child = env
        .qcnn()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let end = Instant::now() + deadline;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > end {
            child.kill().unwrap();
            let run = Run::from(child.wait_with_output().unwrap());
            panic!(
                "qcnn {args:?} still waiting after {deadline:?}: {}",
                run.stderr
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Run::from(child.wait_with_output().unwrap())
}

/// Concurrent `db init` on a new database failed 65% of the time (a race in CREATE TABLE)
/// and could seed twice; an advisory lock makes them take turns.
#[test]
fn concurrent_db_init_on_a_new_database() {
    let server = PgServer::start();
    let env = TestEnv::new();
    for round in 0..3 {
        let db = format!("qcnn_init_{round}");
        server.psql_superuser(&format!("CREATE DATABASE {db} OWNER {}", postgres::USER));
        let url = format!("{}_init_{round}", server.url());
        for run in env.run_concurrently(6, &["--database-url", &url, "db", "init"]) {
            run.assert_success();
        }
        let seeds: i64 = ::postgres::Client::connect(&url, ::postgres::NoTls)
            .unwrap()
            .query_one("SELECT COUNT(*) FROM model_weights", &[])
            .unwrap()
            .get(0);
        assert_eq!(seeds, 1, "round {round}: seeded once");
    }
}

/// `db init` said "schema ready" over an incompatible `model_results`, and `evaluate` failed
/// after all its work; both now refuse at once, naming the table and the missing columns.
#[test]
fn incompatible_pre_existing_table_is_refused() {
    let server = PgServer::start();
    let env = TestEnv::new();
    let url = server.url();
    server
        .client()
        .batch_execute("CREATE TABLE model_results (id BIGINT, note TEXT)")
        .unwrap();
    let run = env.run(&["--database-url", &url, "db", "init"]);
    run.assert_clean_failure(
        "model_results exists but lacks the column(s) model_id, model_path, model_sha256",
    );
    assert!(!run.stdout.contains("schema ready"));
    let blob = release_blob().to_str().unwrap();
    env.run(&["--database-url", &url, "evaluate", "--model", blob])
        .assert_clean_failure(
            "qcnn tables without a schema_version: run `qcnn db init` to check and stamp them",
        );
}

/// The schema's version is kept in the database: a newer one is refused before any work, an
/// unversioned one from an older qcnn is checked and stamped by `db init`.
#[test]
fn schema_version_is_checked_before_any_work() {
    let (server, env, url) = server_with_schema();
    let version = |server: &PgServer| -> i64 {
        server
            .client()
            .query_one("SELECT version FROM schema_version", &[])
            .unwrap()
            .get(0)
    };
    assert_eq!(version(&server), 1);
    let blob = release_blob().to_str().unwrap();
    let evaluate = [
        "--database-url",
        &url,
        "evaluate",
        "--model",
        blob,
        "--limit",
        "10",
    ];

    server
        .client()
        .batch_execute("UPDATE schema_version SET version = 2")
        .unwrap();
    env.run(&evaluate)
        .assert_clean_failure("schema version 2 is newer than this qcnn's 1: use a newer qcnn");
    env.run(&["--database-url", &url, "db", "init"])
        .assert_clean_failure("schema version 2 is newer than this qcnn's 1");

    // As a qcnn from before versioning left it.
    server
        .client()
        .batch_execute("DROP TABLE schema_version")
        .unwrap();
    env.run(&["--database-url", &url, "results"])
        .assert_clean_failure("run `qcnn db init` to check and stamp them");
    env.run(&["--database-url", &url, "db", "init"])
        .assert_success();
    assert_eq!(version(&server), 1);
    env.run(&evaluate).assert_success();

    // A database nobody initialised.
    server.psql_superuser(&format!("CREATE DATABASE fresh OWNER {}", postgres::USER));
    let fresh = format!("{}/fresh", url.rsplit_once('/').unwrap().0);
    env.run(&["--database-url", &fresh, "results"])
        .assert_clean_failure("no qcnn schema: run `qcnn db init`");
}

/// A listener that accepts and never answers held qcnn for more than 65 s; the startup
/// handshake now has the connect timeout.
#[test]
fn silent_server_times_out_with_a_clear_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let held = std::thread::spawn(move || {
        let connections: Vec<_> = listener.incoming().take(1).collect();
        std::thread::sleep(Duration::from_secs(120));
        drop(connections);
    });
    let env = TestEnv::new();
    let url = format!("postgres://qcnn:Silent-pw@127.0.0.1:{port}/qcnn?connect_timeout=2");
    let run = run_with_deadline(
        &env,
        &["--database-url", &url, "results"],
        Duration::from_secs(60),
    );
    run.assert_clean_failure(&format!(
        "connecting to PostgreSQL at postgres://qcnn:***@127.0.0.1:{port}/qcnn: no answer to the startup handshake within 2 s (connect_timeout)"
    ));
    drop(held);
}

/// A table locked by another session held qcnn indefinitely; the client now sets
/// `lock_timeout` (30 s, like SQLite's busy timeout) and the error says what timed out.
#[test]
fn locked_table_times_out_with_a_clear_error() {
    let (server, env, url) = server_with_schema();
    let mut holder = server.client();
    let mut lock = holder.transaction().unwrap();
    lock.batch_execute("LOCK TABLE model_results IN ACCESS EXCLUSIVE MODE")
        .unwrap();
    let run = run_with_deadline(
        &env,
        &["--database-url", &url, "results"],
        Duration::from_secs(120),
    );
    run.assert_clean_failure("listing results in postgres://qcnn_tester:***@127.0.0.1:");
    assert!(
        run.stderr
            .contains("canceling statement due to lock timeout"),
        "{}",
        run.stderr
    );
    lock.rollback().unwrap();
}

/// A read-only server (here: default_transaction_read_only) was discovered only when the
/// result was recorded, after the whole evaluation; now before it.
#[test]
fn read_only_server_is_found_before_the_evaluation() {
    let (server, env, url) = server_with_schema();
    server.psql_superuser("ALTER DATABASE qcnn SET default_transaction_read_only = on");
    // A model path that does not exist: the database check must come first to be seen.
    let run = env.run(&[
        "--database-url",
        &url,
        "evaluate",
        "--model",
        "/nonexistent.qcnn",
    ]);
    run.assert_clean_failure("read-only (or no INSERT privilege): a result could not be recorded");
}

/// libpq verifies the server against `sslrootcert` in `require` mode too; qcnn connected to
/// any server. Now a root that did not sign the server's certificate is refused.
#[test]
fn sslrootcert_is_honoured_with_sslmode_require() {
    let server = PgServer::start_tls();
    let env = TestEnv::new();
    let cert = server.tls.as_ref().unwrap().cert.clone();
    let other = env.path("other-ca.crt");
    let key = env.path("other-ca.key");
    let made = std::process::Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args(["-subj", "/CN=some other CA"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&other)
        .output()
        .unwrap();
    assert!(made.status.success());
    let url = |root: &std::path::Path| {
        format!(
            "postgres://{}:{}@127.0.0.1:{}/qcnn?sslmode=require&sslrootcert={}",
            postgres::USER,
            postgres::password(),
            server.port,
            root.display()
        )
    };
    let run = env.run(&["--database-url", &url(&other), "db", "init"]);
    run.assert_clean_failure("connecting to PostgreSQL at postgres://qcnn_tester:***@127.0.0.1:");
    assert!(
        run.stderr.contains("certificate verify failed"),
        "{}",
        run.stderr
    );
    // The right root: accepted, and (as libpq) the host name is not checked in this mode.
    env.run(&["--database-url", &url(&cert), "db", "init"])
        .assert_success();
}
