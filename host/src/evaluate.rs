//! `qcnn evaluate`: score a model on the test set, record the result, apply the gate.

use std::io::IsTerminal;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use indicatif::{ProgressBar, ProgressStyle};
use qcnn_config::config::Config;
use qcnn_dataset::FashionMnist;
use qcnn_dataset::scores::Tally;
use qcnn_quantize::int8_runner::{self, BATCH, Workers};
use qcnn_quantize::validate;

use crate::cli::{Cli, EvaluateArgs};
use crate::database::{Access, open_db, path_text};
use crate::db::{Db, NewResult};
use crate::evaluation::{Evaluation, Gate};
use crate::inference;
use crate::model_file::{self, LoadedModel};
use crate::report;

pub fn run(cli: &Cli, args: &EvaluateArgs, config: &Config) -> Result<ExitCode> {
    // Everything that can be wrong with the database, the model or the dataset is found
    // before the evaluation spends its time.
    let mut db = open_db(cli, config, Access::Write)?;
    let chosen = choose_model(&mut db, args)?;
    let bytes = model_file::read(&chosen.path)?;
    let file_sha256 = model_file::checked_sha256(&chosen.path, &bytes, chosen.sha256.as_deref())?;
    let model_id = match chosen.id {
        Some(id) => Some(id),
        None => match std::fs::canonicalize(&chosen.path) {
            Ok(path) => db.model_id_for_file(&path_text(&path)?, &file_sha256)?,
            Err(_) => None,
        },
    };
    let dataset = FashionMnist::load(&config.data.search_dirs(args.data_dir.as_deref()))?;
    let LoadedModel { blob, float } = model_file::load(&chosen.path, bytes, config, &dataset)?;
    let model = model_file::check_blob(&chosen.path, &blob)?;
    let model_path = chosen.path;

    let test = &dataset.test;
    let samples = args
        .limit
        .map_or(test.len(), |limit| limit.get().min(test.len()));
    let threads = args
        .threads
        .or_else(|| std::thread::available_parallelism().ok())
        .map_or(1, NonZeroUsize::get);
    let images = inference::first_images(test, samples);
    let progress = progress_bar(samples);
    let int8_logits = int8_runner::run(
        &inference::prepare(&model)?,
        &images,
        (Workers::Exactly(threads), BATCH),
        &|n| progress.inc(n as u64),
    )?;
    progress.finish_and_clear();

    let mut int8_tally = Tally::new(model.num_classes());
    for i in 0..samples {
        int8_tally.add(int8_logits.dequantized(i), usize::from(test.label(i)));
    }
    let (float, agreement) = match float {
        Some(float) => {
            let float_logits = float.forward_all(&images);
            let mut tally = Tally::new(model.num_classes());
            for (i, logits) in float_logits.iter().enumerate() {
                tally.add(logits, usize::from(test.label(i)));
            }
            (
                Some(tally.scores()),
                Some(validate::agreement(&float_logits, &int8_logits)),
            )
        }
        None => (None, None),
    };

    let int8 = int8_tally.scores();
    let model_path = path_text(&model_path)?;
    let model_sha256 = qcnn_dataset::checksum::sha256_hex(&blob);
    let result_id = db.record(&NewResult {
        model_id,
        model_path: &model_path,
        model_sha256: &model_sha256,
        samples: samples as u64,
        threads: threads as u64,
        images_per_s: int8_logits.images_per_s(),
        int8: &int8,
        float: float.as_ref(),
        agreement,
    })?;
    let evaluation = Evaluation {
        model_path,
        model_sha256,
        samples,
        threads,
        images_per_s: int8_logits.images_per_s(),
        gate: Gate::check(&config.evaluate, &int8),
        int8,
        float,
        agreement,
        result_id,
        database: db.description().to_owned(),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&evaluation)?);
    } else {
        print!("{}", report::evaluation(&evaluation));
    }
    if evaluation.gate.passed {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("qcnn: {}", report::gate_failure(&evaluation));
        Ok(ExitCode::FAILURE)
    }
}

/// The model to evaluate, and what its `model_weights` row says about it.
struct ChosenModel {
    path: PathBuf,
    id: Option<i64>,
    sha256: Option<String>,
}

/// `--model PATH` (linked afterwards to a model_weights row of the same file, if any),
/// `--model-id N`, or the newest model_weights row.
fn choose_model(db: &mut Db, args: &EvaluateArgs) -> Result<ChosenModel> {
    let row = match (&args.model, args.model_id) {
        (Some(path), _) => {
            return Ok(ChosenModel {
                path: path.clone(),
                id: None,
                sha256: None,
            });
        }
        (None, Some(id)) => db.model(id)?,
        (None, None) => db.newest_model()?,
    };
    Ok(ChosenModel {
        path: PathBuf::from(row.path),
        id: Some(row.id),
        sha256: row.sha256,
    })
}

/// A bar on stderr when it is a terminal; nothing otherwise (logs, pipes, tests).
fn progress_bar(images: usize) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(images as u64);
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:40}] {pos}/{len} images {per_sec}")
            .expect("the template is valid")
            .progress_chars("=> "),
    );
    bar
}
