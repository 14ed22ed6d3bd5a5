//! What each `qcnn` subcommand does, from parsed arguments to exit code.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use qcnn_config::config::Config;

use crate::cli::{Cli, Command, DbCommand};
use crate::db::{Db, Target};
use crate::report;

pub fn run(cli: Cli) -> Result<ExitCode> {
    let config = Config::load(&cli.config)?;
    match &cli.command {
        Command::Db(DbCommand::Init) => {
            let mut db = open_db(&cli, &config, Access::Init)?;
            db.init(&seed_model(&config)?)?;
            println!("schema ready in {}", report::printable(db.description()));
        }
        Command::Db(DbCommand::AddModel { path }) => {
            let sha256 = crate::model_file::check_for_record(path, &config)?;
            // Stored absolute, so that `evaluate` finds it from any directory.
            let path = std::fs::canonicalize(path)
                .with_context(|| format!("resolving {}", path.display()))?;
            let mut db = open_db(&cli, &config, Access::Write)?;
            let id = db.add_model(&path_text(&path)?, Some(&sha256))?;
            println!(
                "added model {id}: {}",
                report::printable(&path.to_string_lossy())
            );
        }
        Command::Results(args) => {
            let rows = open_db(&cli, &config, Access::Read)?.results(args.limit)?;
            if args.json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                print!("{}", report::results_table(&rows));
            }
        }
        Command::Evaluate(args) => return crate::evaluate::run(&cli, args, &config),
        Command::Predict(args) => crate::predict::run(args, &config)?,
        Command::Profile(args) => crate::profile::run(args, &config)?,
    }
    Ok(ExitCode::SUCCESS)
}

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
fn seed_model(config: &Config) -> Result<String> {
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
