//! The schema and its version: `init.sql` is written once, for PostgreSQL and Greenplum;
//! SQLite's dialect is derived from it by a few type substitutions. The `schema_version` table
//! records which version a database holds, so that every command can refuse a missing, older
//! or newer schema before it does any work, and `qcnn db init` can migrate.

use super::sql::{BackendError, Param, Transaction};

/// `init.sql` from the repository root, as PostgreSQL and Greenplum run it.
pub const POSTGRES: &str = include_str!("../../../init.sql");

/// The version this qcnn reads and writes.
pub const VERSION: i64 = 1;

/// `MIGRATIONS[n]` takes a database from version `n` to `n + 1` (0: nothing yet), in
/// PostgreSQL's dialect. Each is idempotent, so it may also complete a partial schema.
const MIGRATIONS: [&str; VERSION as usize] = [POSTGRES];

/// The tables of version [`VERSION`] and their columns, as `init.sql` creates them (checked
/// by a test); an existing table must have all of them.
pub const TABLES: [(&str, &[&str]); 4] = [
    ("model_weights", &["id", "path", "sha256", "added_at"]),
    (
        "model_results",
        &[
            "id",
            "model_id",
            "model_path",
            "model_sha256",
            "created_at",
            "samples",
            "threads",
            "images_per_s",
            "loss",
            "accuracy",
            "f1_macro",
            "float_loss",
            "float_accuracy",
            "float_f1_macro",
            "agreement",
        ],
    ),
    (
        "model_result_classes",
        &[
            "result_id",
            "variant",
            "class",
            "precision",
            "recall",
            "f1",
            "support",
        ],
    ),
    (
        "model_result_confusion",
        &["result_id", "variant", "actual", "predicted", "count"],
    ),
];

/// An arbitrary key for PostgreSQL's advisory lock, taken by `qcnn db init`.
const INIT_LOCK: i64 = 0x7163_6e6e_0017;

/// PostgreSQL-only column types and SQLite's equivalents. Each must occur in `init.sql`
/// (checked by a test), so a change there cannot silently skip a substitution.
const SQLITE_SUBSTITUTIONS: [(&str, &str); 2] = [
    // SQLite's rowid alias; AUTOINCREMENT keeps ids of deleted rows from being reused.
    ("BIGSERIAL PRIMARY KEY", "INTEGER PRIMARY KEY AUTOINCREMENT"),
    // SQLite has no time type: UTC text, "YYYY-MM-DD HH:MM:SS", which sorts chronologically.
    (
        "TIMESTAMPTZ NOT NULL DEFAULT now()",
        "TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP",
    ),
];

/// `sql` in SQLite's dialect.
pub fn to_sqlite(sql: &str) -> String {
    SQLITE_SUBSTITUTIONS
        .iter()
        .fold(sql.to_string(), |sql, (from, to)| sql.replace(from, to))
}

/// The whole schema in SQLite's dialect.
pub fn sqlite() -> String {
    to_sqlite(POSTGRES)
}

/// What a database holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SchemaState {
    /// None of qcnn's tables.
    Empty,
    /// qcnn's tables without `schema_version`: made by a qcnn from before versioning, or by
    /// something else that happens to use the names.
    Unversioned,
    Version(i64),
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SchemaProblem {
    #[error("no qcnn schema: run `qcnn db init`")]
    Missing,
    #[error("qcnn tables without a schema_version: run `qcnn db init` to check and stamp them")]
    Unversioned,
    #[error("schema version {0}, this qcnn needs {VERSION}: run `qcnn db init` to migrate")]
    Older(i64),
    #[error("schema version {0} is newer than this qcnn's {VERSION}: use a newer qcnn")]
    Newer(i64),
    #[error(
        "{table} exists but lacks the column(s) {missing} of qcnn's schema version {VERSION}: rename or drop it, or use another database"
    )]
    Incompatible { table: String, missing: String },
    #[error("read-only (or no INSERT privilege): a result could not be recorded")]
    ReadOnly,
}

impl From<SchemaProblem> for BackendError {
    fn from(problem: SchemaProblem) -> Self {
        BackendError::Schema(Box::new(problem))
    }
}

/// What a command needs changed before it can run, if anything.
pub fn problem(state: &SchemaState) -> Option<SchemaProblem> {
    match *state {
        SchemaState::Empty => Some(SchemaProblem::Missing),
        SchemaState::Unversioned => Some(SchemaProblem::Unversioned),
        SchemaState::Version(VERSION) => None,
        SchemaState::Version(v) if v > VERSION => Some(SchemaProblem::Newer(v)),
        SchemaState::Version(v) => Some(SchemaProblem::Older(v)),
    }
}

pub fn state(tx: &mut Transaction) -> Result<SchemaState, BackendError> {
    let tables = existing_tables(tx)?;
    if tables.iter().any(|t| t == "schema_version") {
        let version = tx.query_one("SELECT MAX(version) FROM schema_version", &[], |r| {
            r.opt_int(0)
        })?;
        return Ok(SchemaState::Version(version.unwrap_or(0)));
    }
    let ours = TABLES
        .iter()
        .any(|(name, _)| tables.iter().any(|t| t == name));
    Ok(if ours {
        SchemaState::Unversioned
    } else {
        SchemaState::Empty
    })
}

/// Serialises `qcnn db init` across processes until the transaction ends. SQLite's
/// transactions already take the write lock up front.
pub fn lock(tx: &mut Transaction) -> Result<(), BackendError> {
    if !tx.is_sqlite() {
        tx.query(
            "SELECT pg_advisory_xact_lock($1)::text",
            &[Param::Int(INIT_LOCK)],
            |_| Ok(()),
        )?;
    }
    Ok(())
}

/// Brings the schema to [`VERSION`]; tables from before versioning are checked column by
/// column first.
pub fn migrate(tx: &mut Transaction) -> Result<(), BackendError> {
    let from = match state(tx)? {
        SchemaState::Version(v) if v > VERSION => return Err(SchemaProblem::Newer(v).into()),
        SchemaState::Version(v) => v,
        SchemaState::Empty => 0,
        SchemaState::Unversioned => {
            check_columns(tx)?;
            0
        }
    };
    for migration in &MIGRATIONS[from.max(0) as usize..] {
        if tx.is_sqlite() {
            tx.batch(&to_sqlite(migration))?;
        } else {
            tx.batch(migration)?;
        }
    }
    if from < VERSION {
        tx.execute(
            "UPDATE schema_version SET version = $1",
            &[Param::Int(VERSION)],
        )?;
    }
    Ok(())
}

/// Every existing table of ours has every column the schema gives it.
fn check_columns(tx: &mut Transaction) -> Result<(), BackendError> {
    let tables = existing_tables(tx)?;
    for (table, columns) in TABLES {
        if !tables.iter().any(|t| t == table) {
            continue;
        }
        let existing = existing_columns(tx, table)?;
        let missing: Vec<&str> = columns
            .iter()
            .copied()
            .filter(|c| !existing.iter().any(|e| e == c))
            .collect();
        if !missing.is_empty() {
            return Err(SchemaProblem::Incompatible {
                table: table.to_owned(),
                missing: missing.join(", "),
            }
            .into());
        }
    }
    Ok(())
}

fn existing_tables(tx: &mut Transaction) -> Result<Vec<String>, BackendError> {
    let sql = if tx.is_sqlite() {
        "SELECT name FROM sqlite_master WHERE type = 'table'"
    } else {
        "SELECT table_name::text FROM information_schema.tables \
         WHERE table_schema = current_schema()"
    };
    tx.query(sql, &[], |r| r.text(0))
}

fn existing_columns(tx: &mut Transaction, table: &str) -> Result<Vec<String>, BackendError> {
    let sql = if tx.is_sqlite() {
        "SELECT name FROM pragma_table_info($1)"
    } else {
        "SELECT column_name::text FROM information_schema.columns \
         WHERE table_schema = current_schema() AND table_name = $1"
    };
    tx.query(sql, &[Param::Text(table)], |r| r.text(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_substitution_applies() {
        for (from, _) in SQLITE_SUBSTITUTIONS {
            assert!(
                POSTGRES.contains(from),
                "init.sql no longer contains {from:?}"
            );
        }
        let sqlite = sqlite();
        assert!(!sqlite.contains("BIGSERIAL") && !sqlite.contains("TIMESTAMPTZ"));
    }

    /// `TABLES` is exactly what init.sql creates, column for column and in order.
    #[test]
    fn tables_list_matches_init_sql() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch(&sqlite()).unwrap();
        // Applying it twice is harmless: `qcnn db init` may run on an existing database.
        conn.execute_batch(&sqlite()).unwrap();
        let names = |sql: &str| -> Vec<String> {
            conn.prepare(sql)
                .unwrap()
                .query_map([], |row| row.get(0))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap()
        };
        let mut tables = names(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
        );
        tables.sort();
        let mut expected: Vec<&str> = TABLES.iter().map(|(name, _)| *name).collect();
        expected.push("schema_version");
        expected.sort();
        assert_eq!(tables, expected);
        for (table, columns) in TABLES {
            let actual = names(&format!(
                "SELECT name FROM pragma_table_info('{table}') ORDER BY cid"
            ));
            assert_eq!(actual, columns, "columns of {table}");
        }
        assert_eq!(
            names("SELECT CAST(version AS TEXT) FROM schema_version"),
            ["1"]
        );
    }
}
