//! The results database: the embedded SQLite file by default, PostgreSQL (or Greenplum) when a
//! `postgres://` URL is given. Every operation runs in one transaction, with bound parameters.

mod error;
mod postgres_connection;
pub mod schema;
mod sql;
mod sqlite;
pub mod url;

use std::path::{Path, PathBuf};

use serde::Serialize;

use qcnn_dataset::scores::Scores;
use schema::SchemaProblem;
use sql::{BackendError, Param, Row, Transaction};

pub use error::{DbError, WAIT};

/// Where results go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    Sqlite(PathBuf),
    /// A connection string (URL or key/value); may hold a password.
    Postgres(String),
}

impl Target {
    /// `--database-url` wins over the environment variable; with neither, the SQLite file.
    pub fn resolve(url: Option<String>, default_sqlite: &Path) -> Result<Target, DbError> {
        let Some(url) = url else {
            return Ok(Target::Sqlite(default_sqlite.to_owned()));
        };
        if let Some(path) = url
            .strip_prefix("sqlite://")
            .or(url.strip_prefix("sqlite:"))
        {
            // An empty path or `:memory:` is a database that vanishes when qcnn exits, which
            // `sqlite:$UNSET` produces silently.
            if path.is_empty() || path.starts_with(':') {
                return Err(DbError::SqliteWithoutFile(path.to_owned()));
            }
            Ok(Target::Sqlite(PathBuf::from(path)))
        } else if url::is_postgres(&url) || url.contains('=') {
            url::parse(&url).map_err(|reason| DbError::BadUrl { reason })?;
            Ok(Target::Postgres(url))
        } else {
            Err(DbError::UnsupportedUrl(scheme_of(&url)))
        }
    }

    /// A description safe to print: the SQLite path or the connection string's printable form.
    pub fn describe(&self) -> String {
        match self {
            Target::Sqlite(path) => format!("SQLite {}", path.display()),
            Target::Postgres(text) => match url::parse(text) {
                Ok(parsed) => url::printable(&parsed.config),
                Err(_) => "PostgreSQL (a connection string that does not parse)".to_owned(),
            },
        }
    }
}

/// What comes before `:` if it looks like a URL scheme: all that an error may show of a string
/// that could hold a password.
fn scheme_of(url: &str) -> String {
    match url.split_once(':') {
        Some((scheme, _))
            if !scheme.is_empty()
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)) =>
        {
            format!("{scheme}:")
        }
        _ => "(not shown)".to_owned(),
    }
}

/// A row of `model_weights`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ModelRow {
    pub id: i64,
    pub path: String,
    pub sha256: Option<String>,
    pub added_at: String,
}

/// One evaluation, as `qcnn evaluate` records it.
#[derive(Clone, Debug)]
pub struct NewResult<'a> {
    pub model_id: Option<i64>,
    pub model_path: &'a str,
    /// Of the int8 blob that ran.
    pub model_sha256: &'a str,
    pub samples: u64,
    pub threads: u64,
    pub images_per_s: f64,
    pub int8: &'a Scores,
    pub float: Option<&'a Scores>,
    pub agreement: Option<f64>,
}

/// A `model_results` row without its per-class details, as `qcnn results` lists it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ResultRow {
    pub id: i64,
    pub model_id: Option<i64>,
    pub model_path: String,
    pub model_sha256: String,
    pub created_at: String,
    pub samples: i64,
    pub threads: i64,
    pub images_per_s: f64,
    pub loss: f64,
    pub accuracy: f64,
    pub f1_macro: f64,
    pub float_loss: Option<f64>,
    pub float_accuracy: Option<f64>,
    pub float_f1_macro: Option<f64>,
    pub agreement: Option<f64>,
}

enum Backend {
    Sqlite(rusqlite::Connection),
    Postgres(postgres::Client),
}

pub struct Db {
    backend: Backend,
    /// For messages; never holds a password.
    description: String,
}

impl Db {
    /// Opens the database. The embedded SQLite file is given the schema and seeded with
    /// `seed_model` (the release checkpoint) on first use, including when it exists but is
    /// empty (a `touch`ed file, or one a failed first run left); PostgreSQL is connected to,
    /// and `qcnn db init` creates its schema.
    pub fn open(target: &Target, seed_model: &str) -> Result<Db, DbError> {
        match target {
            Target::Sqlite(path) => {
                let mut db = Db {
                    backend: Backend::Sqlite(sqlite::open(path)?),
                    description: target.describe(),
                };
                if db.schema_state()? != schema::SchemaState::Version(schema::VERSION) {
                    db.init(seed_model)?;
                }
                Ok(db)
            }
            Target::Postgres(text) => {
                let (client, description) = postgres_connection::connect(text)?;
                Ok(Db {
                    backend: Backend::Postgres(client),
                    description,
                })
            }
        }
    }

    pub fn description(&self) -> &str {
        &self.description
    }

    fn schema_state(&mut self) -> Result<schema::SchemaState, DbError> {
        self.transaction("reading the schema version", schema::state)
    }

    /// Fails unless the schema is this qcnn's version, so that a command learns of a missing,
    /// old or newer schema before it does any work.
    pub fn check_schema(&mut self) -> Result<(), DbError> {
        match schema::problem(&self.schema_state()?) {
            None => Ok(()),
            Some(problem) => Err(DbError::NotReady {
                db: self.description.clone(),
                problem,
            }),
        }
    }

    /// Fails when a result could not be recorded (a read-only file or server, no INSERT
    /// privilege), before an evaluation spends its time.
    pub fn check_writable(&mut self) -> Result<(), DbError> {
        const WHAT: &str = "checking that results can be written";
        let writable = if let Backend::Sqlite(conn) = &self.backend {
            !conn
                .is_readonly(rusqlite::DatabaseName::Main)
                .map_err(|source| DbError::Query {
                    what: WHAT,
                    db: self.description.clone(),
                    source: source.into(),
                })?
        } else {
            self.transaction(WHAT, |tx| {
                tx.query_one(
                    "SELECT current_setting('transaction_read_only') = 'off' \
                     AND has_table_privilege('model_results', 'INSERT') \
                     AND has_table_privilege('model_result_classes', 'INSERT') \
                     AND has_table_privilege('model_result_confusion', 'INSERT')",
                    &[],
                    |r| r.boolean(0),
                )
            })?
        };
        if writable {
            Ok(())
        } else {
            Err(DbError::NotReady {
                db: self.description.clone(),
                problem: SchemaProblem::ReadOnly,
            })
        }
    }

    /// Brings the schema to this qcnn's version (creating it, or checking and stamping tables
    /// from before versioning), and adds `seed_model` if `model_weights` is empty. Concurrent
    /// runs take turns: SQLite's write lock, PostgreSQL's advisory lock.
    pub fn init(&mut self, seed_model: &str) -> Result<(), DbError> {
        self.transaction("creating the schema", |tx| {
            schema::lock(tx)?;
            schema::migrate(tx)?;
            let models = tx.query_one("SELECT COUNT(*) FROM model_weights", &[], |r| r.int(0))?;
            if models == 0 {
                insert_model(tx, seed_model, None)?;
            }
            Ok(())
        })
    }

    pub fn add_model(&mut self, path: &str, sha256: Option<&str>) -> Result<i64, DbError> {
        self.transaction("adding a model", |tx| insert_model(tx, path, sha256))
    }

    /// The most recently added model.
    pub fn newest_model(&mut self) -> Result<ModelRow, DbError> {
        let rows = self.transaction("reading the newest model", |tx| {
            tx.query(
                "SELECT id, path, sha256, CAST(added_at AS TEXT) FROM model_weights \
                 ORDER BY added_at DESC, id DESC LIMIT 1",
                &[],
                model_from_row,
            )
        })?;
        rows.into_iter()
            .next()
            .ok_or_else(|| DbError::NoModels(self.description.clone()))
    }

    pub fn model(&mut self, id: i64) -> Result<ModelRow, DbError> {
        let rows = self.transaction("reading a model", |tx| {
            tx.query(
                "SELECT id, path, sha256, CAST(added_at AS TEXT) FROM model_weights WHERE id = $1",
                &[Param::Int(id)],
                model_from_row,
            )
        })?;
        rows.into_iter()
            .next()
            .ok_or_else(|| DbError::UnknownModelId {
                id,
                db: self.description.clone(),
            })
    }

    /// The newest `model_weights` row with exactly this path and SHA-256, if any: a file
    /// replaced since `db add-model` is not that row's model.
    pub fn model_id_for_file(&mut self, path: &str, sha256: &str) -> Result<Option<i64>, DbError> {
        let ids = self.transaction("looking up a model path", |tx| {
            tx.query(
                "SELECT id FROM model_weights WHERE path = $1 AND (sha256 = $2 OR sha256 IS NULL) \
                 ORDER BY id DESC LIMIT 1",
                &[Param::Text(path), Param::Text(sha256)],
                |r| r.int(0),
            )
        })?;
        Ok(ids.into_iter().next())
    }

    /// Writes a result with its per-class and confusion rows, all or nothing.
    pub fn record(&mut self, result: &NewResult) -> Result<i64, DbError> {
        self.transaction("recording the result", |tx| {
            let float = result.float;
            let id = tx.query_one(
                "INSERT INTO model_results (model_id, model_path, model_sha256, samples, threads, \
                 images_per_s, loss, accuracy, f1_macro, float_loss, float_accuracy, \
                 float_f1_macro, agreement) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING id",
                &[
                    Param::OptInt(result.model_id),
                    Param::Text(result.model_path),
                    Param::Text(result.model_sha256),
                    Param::Int(result.samples as i64),
                    Param::Int(result.threads as i64),
                    Param::Real(result.images_per_s),
                    Param::Real(result.int8.loss),
                    Param::Real(result.int8.accuracy),
                    Param::Real(result.int8.f1_macro),
                    Param::OptReal(float.map(|s| s.loss)),
                    Param::OptReal(float.map(|s| s.accuracy)),
                    Param::OptReal(float.map(|s| s.f1_macro)),
                    Param::OptReal(result.agreement),
                ],
                |r| r.int(0),
            )?;
            let variants = [("int8", Some(result.int8)), ("float", float)];
            for (variant, scores) in variants {
                if let Some(scores) = scores {
                    insert_details(tx, id, variant, scores)?;
                }
            }
            Ok(id)
        })
    }

    /// The newest `limit` results, newest first.
    pub fn results(&mut self, limit: u32) -> Result<Vec<ResultRow>, DbError> {
        self.transaction("listing results", |tx| {
            tx.query(
                "SELECT id, model_id, model_path, model_sha256, CAST(created_at AS TEXT), samples, \
                 threads, images_per_s, loss, accuracy, f1_macro, float_loss, float_accuracy, \
                 float_f1_macro, agreement FROM model_results ORDER BY id DESC LIMIT $1",
                &[Param::Int(i64::from(limit))],
                |r| {
                    Ok(ResultRow {
                        id: r.int(0)?,
                        model_id: r.opt_int(1)?,
                        model_path: r.text(2)?,
                        model_sha256: r.text(3)?,
                        created_at: r.text(4)?,
                        samples: r.int(5)?,
                        threads: r.int(6)?,
                        images_per_s: r.real(7)?,
                        loss: r.real(8)?,
                        accuracy: r.real(9)?,
                        f1_macro: r.real(10)?,
                        float_loss: r.opt_real(11)?,
                        float_accuracy: r.opt_real(12)?,
                        float_f1_macro: r.opt_real(13)?,
                        agreement: r.opt_real(14)?,
                    })
                },
            )
        })
    }

    /// Runs `body` in one transaction, committed only if it succeeds.
    fn transaction<T>(
        &mut self,
        what: &'static str,
        body: impl FnOnce(&mut Transaction) -> Result<T, BackendError>,
    ) -> Result<T, DbError> {
        let run = || -> Result<T, BackendError> {
            match &mut self.backend {
                Backend::Sqlite(conn) => {
                    // IMMEDIATE takes the write lock up front, so concurrent writers wait
                    // (busy_timeout) instead of failing when a read lock would need upgrading.
                    let tx =
                        conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
                    let value = body(&mut Transaction::Sqlite(&tx))?;
                    tx.commit()?;
                    Ok(value)
                }
                Backend::Postgres(client) => {
                    let mut tx = client.transaction()?;
                    let value = body(&mut Transaction::Postgres(&mut tx))?;
                    tx.commit()?;
                    Ok(value)
                }
            }
        };
        run().map_err(|source| DbError::Query {
            what,
            db: self.description.clone(),
            source,
        })
    }
}

fn insert_model(
    tx: &mut Transaction,
    path: &str,
    sha256: Option<&str>,
) -> Result<i64, BackendError> {
    tx.query_one(
        "INSERT INTO model_weights (path, sha256) VALUES ($1, $2) RETURNING id",
        &[Param::Text(path), Param::OptText(sha256)],
        |r| r.int(0),
    )
}

fn model_from_row(r: &dyn Row) -> Result<ModelRow, BackendError> {
    Ok(ModelRow {
        id: r.int(0)?,
        path: r.text(1)?,
        sha256: r.opt_text(2)?,
        added_at: r.text(3)?,
    })
}

fn insert_details(
    tx: &mut Transaction,
    result_id: i64,
    variant: &str,
    scores: &Scores,
) -> Result<(), BackendError> {
    for (class, m) in scores.per_class.iter().enumerate() {
        tx.execute(
            "INSERT INTO model_result_classes (result_id, variant, class, precision, recall, f1, \
             support) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            &[
                Param::Int(result_id),
                Param::Text(variant),
                Param::Int(class as i64),
                Param::Real(m.precision),
                Param::Real(m.recall),
                Param::Real(m.f1),
                Param::Int(m.support as i64),
            ],
        )?;
    }
    for (actual, row) in scores.confusion.rows().iter().enumerate() {
        for (predicted, &count) in row.iter().enumerate() {
            tx.execute(
                "INSERT INTO model_result_confusion (result_id, variant, actual, predicted, count) \
                 VALUES ($1, $2, $3, $4, $5)",
                &[
                    Param::Int(result_id),
                    Param::Text(variant),
                    Param::Int(actual as i64),
                    Param::Int(predicted as i64),
                    Param::Int(count as i64),
                ],
            )?;
        }
    }
    Ok(())
}
