//! The database a command uses: chosen from the command line, the environment and
//! config.yaml, opened, and checked for what the command needs before any work.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use qcnn_config::config::Config;

use crate::cli::Cli;
use crate::db::{Db, Target};

/// What a command needs of the database, checked when it is opened, before any work.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// `db init`: any state; it creates or migrates the schema.
    Init,
    /// The current schema version.
    Read,
    /// The current schema version, and results can be written.
    Write,
}

/// The database named by `--database-url`, else by the environment variable that config.yaml
/// names, else the embedded SQLite file (seeded with the release checkpoint when new).
pub fn open_db(cli: &Cli, config: &Config, access: Access) -> Result<Db> {
    let env_url = std::env::var(&config.database.url_env)
        .ok()
        .filter(|url| !url.is_empty());
    let target = Target::resolve(
        cli.database_url.clone().or(env_url),
        &config.database.sqlite_path,
    )?;
    let mut db = Db::open(&target, &seed_model(config)?)?;
    if access != Access::Init {
        db.check_schema()?;
    }
    if access == Access::Write {
        db.check_writable()?;
    }
    Ok(db)
}

/// The release checkpoint as model_weights records it: an absolute path.
pub fn seed_model(config: &Config) -> Result<String> {
    let path: PathBuf = std::path::absolute(&config.checkpoint.path)
        .with_context(|| format!("resolving {}", config.checkpoint.path.display()))?;
    path_text(&path)
}

/// Paths are stored as text; a path that is not UTF-8 could not be read back as the same path.
pub fn path_text(path: &Path) -> Result<String> {
    path.to_str()
        .map(str::to_owned)
        .with_context(|| format!("the path {} is not valid UTF-8", path.display()))
}
