//! What each `qcnn` subcommand does, from parsed arguments to exit code.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use qcnn_quantize::config::Config;

use crate::cli::{Cli, Command, DbCommand};
use crate::db::{Db, Target};
use crate::report;

pub fn run(cli: Cli) -> Result<ExitCode> {
    let config = Config::load(&cli.config)?;
    match &cli.command {
        Command::Db(DbCommand::Init) => {
            let mut db = open_db(&cli, &config)?;
            db.init(&path_text(&config.checkpoint.path)?)?;
            println!("schema ready in {}", db.description());
        }
        Command::Db(DbCommand::AddModel { path }) => {
            let sha256 = crate::model_file::sha256_of_file(path)?;
            let mut db = open_db(&cli, &config)?;
            let id = db.add_model(&path_text(path)?, Some(&sha256))?;
            println!("added model {id}: {}", path.display());
        }
        Command::Results(args) => {
            let rows = open_db(&cli, &config)?.results(args.limit)?;
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

/// The database named by `--database-url`, else by the environment variable that config.yaml
/// names, else the embedded SQLite file (seeded with the release checkpoint when new).
pub fn open_db(cli: &Cli, config: &Config) -> Result<Db> {
    let env_url = std::env::var(&config.database.url_env)
        .ok()
        .filter(|url| !url.is_empty());
    let target = Target::resolve(
        cli.database_url.clone().or(env_url),
        &config.database.sqlite_path,
    )?;
    Ok(Db::open(&target, &path_text(&config.checkpoint.path)?)?)
}

/// Paths are stored as text; a path that is not UTF-8 could not be read back as the same path.
pub fn path_text(path: &Path) -> Result<String> {
    path.to_str()
        .map(str::to_owned)
        .with_context(|| format!("the path {} is not valid UTF-8", path.display()))
}
