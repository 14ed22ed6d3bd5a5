//! The schema: `init.sql` is written once, for PostgreSQL and Greenplum; SQLite's dialect is
//! derived from it by a few type substitutions.

/// `init.sql` from the repository root, as PostgreSQL and Greenplum run it.
pub const POSTGRES: &str = include_str!("../../../init.sql");

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

/// The same schema in SQLite's dialect.
pub fn sqlite() -> String {
    SQLITE_SUBSTITUTIONS
        .iter()
        .fold(POSTGRES.to_string(), |sql, (from, to)| {
            sql.replace(from, to)
        })
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

    #[test]
    fn sqlite_schema_creates_all_tables() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch(&sqlite()).unwrap();
        // Applying it twice is harmless: `qcnn db init` may run on an existing database.
        conn.execute_batch(&sqlite()).unwrap();
        let mut tables: Vec<String> = conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'model%'")
            .unwrap()
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        tables.sort();
        assert_eq!(
            tables,
            [
                "model_result_classes",
                "model_result_confusion",
                "model_results",
                "model_weights"
            ]
        );
    }
}
