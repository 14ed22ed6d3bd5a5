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
