//! `qcnn predict`: the int8 predictions and logits of the first test images, in the format
//! the firmware prints, so that the two outputs can be diffed line by line.

use std::io::Write;

use anyhow::Result;
use qcnn_config::config::Config;
use qcnn_dataset::FashionMnist;
use qcnn_dataset::metrics::argmax;
use qcnn_quantize::int8_runner::{self, BATCH, Workers};

use crate::cli::PredictArgs;
use crate::inference;
use crate::model_file;

pub fn run(args: &PredictArgs, config: &Config) -> Result<()> {
    let dataset = FashionMnist::load(&config.data.search_dirs(args.data_dir.as_deref()))?;
    let bytes = model_file::read(&args.model)?;
    let loaded = model_file::load(&args.model, bytes, config, &dataset)?;
    let model = model_file::check_blob(&args.model, &loaded.blob)?;
    let count = args.first.min(dataset.test.len());
    let logits = int8_runner::run(
        &inference::prepare(&model)?,
        &inference::first_images(&dataset.test, count),
        (Workers::Exactly(1), BATCH),
        &|_| {},
    )?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for i in 0..count {
        let values = logits.image(i);
        let text: Vec<String> = values.iter().map(i8::to_string).collect();
        writeln!(
            out,
            "img {i} pred {} logits {}",
            argmax(values),
            text.join(" ")
        )?;
    }
    out.flush()?;
    Ok(())
}
