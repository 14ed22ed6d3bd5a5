//! The embedded SQLite file: opened only when it is a regular file or absent (a FIFO would
//! block, a device is no database), waiting for other writers rather than failing.

use std::path::Path;

use super::error::{DbError, WAIT};

pub fn open(path: &Path) -> Result<rusqlite::Connection, DbError> {
    match std::fs::metadata(path) {
        Ok(metadata) if !metadata.is_file() => {
            return Err(DbError::SqliteFile {
                path: path.to_owned(),
                problem: format!(
                    "not a regular file but {}",
                    qcnn_config::regular_file::kind(&metadata)
                ),
            });
        }
        _ => {}
    }
    let open_error = |source| DbError::OpenSqlite {
        path: path.to_owned(),
        source,
    };
    let conn = rusqlite::Connection::open(path).map_err(open_error)?;
    conn.busy_timeout(WAIT).map_err(open_error)?;
    conn.pragma_update(None, "foreign_keys", true)
        .map_err(open_error)?;
    Ok(conn)
}
