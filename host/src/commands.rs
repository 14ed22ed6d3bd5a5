//! What each `qcnn` subcommand does, from parsed arguments to exit code.

use std::process::ExitCode;

use anyhow::{Context, Result};
use qcnn_config::config::Config;

use crate::cli::{Cli, Command, DbCommand};
use crate::database::{Access, open_db, path_text, seed_model};
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
