//! Issue 17: a PostgreSQL password never appears in anything qcnn prints, in `--json`
//! output, or in what it stores, however the connection string writes it. A property over
//! generated passwords (every printable ASCII character and some non-ASCII, percent-encoded or
//! not, quoted or not) and the ways of writing a connection string.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};

use percent_encoding::{AsciiSet, CONTROLS, NON_ALPHANUMERIC, utf8_percent_encode};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use qcnn_host::db::{Db, Target, url};
use support::cli::{Run, TestEnv, release_blob};
use support::postgres::{self, PgServer};

/// Starts every generated password, so that finding it in output is never a coincidence.
const MARK: &str = "Zq7";

fn password() -> impl Strategy<Value = String> {
    let character = prop_oneof![
        8 => (0x20u8..0x7f).prop_map(char::from),
        1 => Just('é'),
        1 => Just('模'),
    ];
    proptest::collection::vec(character, 1..20)
        .prop_map(|chars| format!("{MARK}{}", chars.into_iter().collect::<String>()))
}

/// How the connection string carries the password.
#[derive(Clone, Copy, Debug)]
enum Form {
    /// `postgres://user:ENCODED@…`, every non-alphanumeric character percent-encoded.
    UrlEncoded,
    /// `postgres://user:PASSWORD@…`, encoding only what the URL cannot hold (`@`, `%`), as
    /// users write them: `/`, `?`, `:`, `#`, spaces stay literal.
    UrlLiteral,
    /// `postgres://…?password=ENCODED`.
    UrlQuery,
    /// `password='…'`, with `\` escapes.
    KeyValueQuoted,
    /// `password=…`, unquoted, with `\` escaping whitespace, quotes and backslashes.
    KeyValueEscaped,
}

fn form() -> impl Strategy<Value = Form> {
    prop_oneof![
        Just(Form::UrlEncoded),
        Just(Form::UrlLiteral),
        Just(Form::UrlQuery),
        Just(Form::KeyValueQuoted),
        Just(Form::KeyValueEscaped),
    ]
}

/// Whitespace between key=value pairs and around `=`: spaces, tabs, several of them.
fn spacing() -> impl Strategy<Value = (Vec<&'static str>, Vec<&'static str>)> {
    let between = prop_oneof![Just(" "), Just("\t"), Just("  "), Just(" \t ")];
    let around = prop_oneof![Just(""), Just(" "), Just("\t")];
    (
        proptest::collection::vec(between, 5),
        proptest::collection::vec(around, 5),
    )
}

const URL_LITERAL: &AsciiSet = &CONTROLS.add(b'@').add(b'%');

fn connection_string(
    form: Form,
    password: &str,
    port: u16,
    (between, around): &(Vec<&str>, Vec<&str>),
) -> String {
    let user = postgres::USER;
    let encoded = utf8_percent_encode(password, NON_ALPHANUMERIC).to_string();
    match form {
        Form::UrlEncoded => format!("postgres://{user}:{encoded}@127.0.0.1:{port}/qcnn"),
        Form::UrlLiteral => format!(
            "postgres://{user}:{}@127.0.0.1:{port}/qcnn",
            utf8_percent_encode(password, URL_LITERAL)
        ),
        Form::UrlQuery => {
            format!("postgresql://127.0.0.1:{port}/qcnn?user={user}&password={encoded}")
        }
        Form::KeyValueQuoted | Form::KeyValueEscaped => {
            let value = match form {
                Form::KeyValueQuoted => {
                    format!("'{}'", password.replace('\\', "\\\\").replace('\'', "\\'"))
                }
                _ => password
                    .chars()
                    .map(|c| {
                        if c.is_whitespace() || "'\\".contains(c) {
                            format!("\\{c}")
                        } else {
                            c.to_string()
                        }
                    })
                    .collect(),
            };
            let pairs = [
                ("host", "127.0.0.1".to_owned()),
                ("port", port.to_string()),
                ("user", user.to_owned()),
                ("password", value),
                ("dbname", "qcnn".to_owned()),
            ];
            pairs
                .iter()
                .enumerate()
                .map(|(i, (key, value))| {
                    format!(
                        "{}{key}{}={}{value}",
                        between[i],
                        around[i],
                        around[(i + 1) % 5]
                    )
                })
                .collect()
        }
    }
}

/// The library: the string parses with exactly this password, and neither its printable form
/// nor the error of a refused connection holds it.
/// A property runner over `cases` generated cases that keeps no failure file.
fn property_runner(cases: u32) -> TestRunner {
    TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    })
}

#[test]
fn password_is_parsed_and_never_in_descriptions_or_errors() {
    let closed_port = postgres::free_port();
    let connections = AtomicUsize::new(0);
    let mut runner = property_runner(300);
    runner
        .run(
            &(password(), form(), spacing()),
            |(password, form, spacing)| {
                let text = connection_string(form, &password, closed_port, &spacing);
                let parsed = url::parse(&text)
                    .map_err(|e| TestCaseError::fail(format!("{form:?} does not parse: {e}")))?;
                prop_assert_eq!(parsed.config.get_password(), Some(password.as_bytes()));
                let target = Target::resolve(Some(text.clone()), "unused.sqlite".as_ref())
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                let description = target.describe();
                prop_assert!(!description.contains(&password), "{}", description);
                prop_assert!(
                    description
                        .starts_with(&format!("postgres://{}:***@127.0.0.1:", postgres::USER)),
                    "{}",
                    description
                );
                // A refused connection, for the first cases only: each builds a TLS context.
                if connections.fetch_add(1, Ordering::Relaxed) < 40 {
                    let error = match Db::open(&target, "seed.pth") {
                        Ok(_) => return Err(TestCaseError::fail("connected to a closed port")),
                        Err(error) => format!("{:#}", anyhow::Error::from(error)),
                    };
                    prop_assert!(!error.contains(&password), "{}", error);
                    prop_assert!(error.contains("Connection refused"), "{}", error);
                }
                Ok(())
            },
        )
        .unwrap();
}

/// Everything a user sees or keeps, through the binary against a real server whose password
/// is the generated one.
fn check_cli(server: &PgServer, env: &TestEnv, text: &str, password: &str) {
    let role_password = password.replace('\'', "''");
    server.psql_superuser(&format!(
        "ALTER ROLE {} PASSWORD '{role_password}'",
        postgres::USER
    ));
    let blob = release_blob().to_str().unwrap();
    let run = |args: &[&str]| -> Run {
        Run::from(
            env.qcnn()
                .env("DATABASE_URL", text)
                .args(args)
                .output()
                .unwrap(),
        )
    };
    let mut seen = Vec::new();
    for args in [
        &["db", "init"][..],
        &["db", "add-model", blob],
        &["evaluate", "--limit", "10", "--json"],
        &["evaluate", "--limit", "10"],
        &["results"],
        &["results", "--json"],
    ] {
        let out = run(args);
        assert!(out.success, "{args:?} with {text:?}: {}", out.stderr);
        seen.push(out.stdout);
        seen.push(out.stderr);
    }
    // And a failure: the same string with a wrong port.
    let refused = text.replace(&server.port.to_string(), &postgres::free_port().to_string());
    let out = Run::from(
        env.qcnn()
            .env("DATABASE_URL", &refused)
            .args(["results"])
            .output()
            .unwrap(),
    );
    assert!(!out.success);
    seen.push(out.stderr);
    let mut client = ::postgres::Config::new()
        .host("127.0.0.1")
        .port(server.port)
        .user(postgres::USER)
        .password(password)
        .dbname("qcnn")
        .connect(::postgres::NoTls)
        .unwrap();
    // Every row of every table, as text.
    let tables: Vec<String> = client
        .query(
            "SELECT table_name::text FROM information_schema.tables \
             WHERE table_schema = current_schema()",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(tables.len() >= 4, "{tables:?}");
    for table in tables {
        let rows: Option<String> = client
            .query_one(
                &format!("SELECT string_agg(t::text, '|') FROM {table} t"),
                &[],
            )
            .unwrap()
            .get(0);
        seen.extend(rows);
    }
    let encoded = utf8_percent_encode(password, NON_ALPHANUMERIC).to_string();
    for text in seen {
        assert!(
            !text.contains(password) && !text.contains(&encoded),
            "the password {password:?} appears in: {text}"
        );
    }
}

/// The cases of issue 17, then generated ones, against one server.
#[test]
fn password_never_printed_nor_stored_by_the_cli() {
    let server = PgServer::start();
    let env = TestEnv::new();
    let port = server.port;
    let user = postgres::USER;
    for (text, password) in [
        (
            format!("postgres://{user}:top/SECRET9@127.0.0.1:{port}/qcnn"),
            "top/SECRET9",
        ),
        (
            format!("postgres://{user}:a?SECRET8@127.0.0.1:{port}/qcnn"),
            "a?SECRET8",
        ),
        (
            format!("host=127.0.0.1 port={port} user={user} password = SECRET7 dbname=qcnn"),
            "SECRET7",
        ),
        (
            format!("host=127.0.0.1\tport={port}\tuser={user}\tpassword=SECRET6\tdbname=qcnn"),
            "SECRET6",
        ),
        (
            format!("host=127.0.0.1 port={port} user={user} password='SEC RET5' dbname=qcnn"),
            "SEC RET5",
        ),
    ] {
        check_cli(&server, &env, &text, password);
    }
    let mut runner = property_runner(6);
    runner
        .run(
            &(password(), form(), spacing()),
            |(password, form, spacing)| {
                let text = connection_string(form, &password, port, &spacing);
                check_cli(&server, &env, &text, &password);
                Ok(())
            },
        )
        .unwrap();
}
