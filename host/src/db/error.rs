//! What can go wrong with the results database, and how long it may take.

use std::path::PathBuf;
use std::time::Duration;

use super::schema::SchemaProblem;
use super::sql::BackendError;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error(
        "unsupported database URL {0}… (expected postgres://…, postgresql://…, key=value pairs or sqlite:PATH)"
    )]
    UnsupportedUrl(String),
    #[error(
        "sqlite:{0} names no file: the database would vanish when qcnn exits (is the variable in sqlite:$VAR unset?)"
    )]
    SqliteWithoutFile(String),
    #[error("invalid PostgreSQL connection string (not shown, it may hold a password): {reason}")]
    BadUrl { reason: String },
    #[error("connecting to PostgreSQL at {url}")]
    Connect {
        url: String,
        #[source]
        source: postgres::Error,
    },
    #[error(
        "connecting to PostgreSQL at {url}: no answer to the startup handshake within {seconds} s (connect_timeout)"
    )]
    ConnectTimeout { url: String, seconds: u64 },
    #[error("connecting to PostgreSQL at {url}: cannot start the connecting thread")]
    ConnectThread {
        url: String,
        #[source]
        source: std::io::Error,
    },
    #[error("reading the TLS root certificate {}", path.display())]
    RootCert {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("setting up TLS for {url}")]
    Tls {
        url: String,
        #[source]
        source: native_tls::Error,
    },
    #[error("opening the SQLite database {}", path.display())]
    OpenSqlite {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("the SQLite database {}: {problem}", path.display())]
    SqliteFile { path: PathBuf, problem: String },
    #[error("{what} in {db}")]
    Query {
        what: &'static str,
        db: String,
        #[source]
        source: BackendError,
    },
    #[error("{db}: {problem}")]
    NotReady { db: String, problem: SchemaProblem },
    #[error("model id {id} is not in model_weights of {db} (see `qcnn db add-model`)")]
    UnknownModelId { id: i64, db: String },
    #[error("model_weights of {0} is empty: add a model with `qcnn db add-model PATH`")]
    NoModels(String),
}

/// How long SQLite waits for another writer, and PostgreSQL for a connection, a lock or a
/// statement.
pub const WAIT: Duration = Duration::from_secs(30);
