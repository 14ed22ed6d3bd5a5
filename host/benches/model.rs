//! Whole-model throughput of the int8 engine, single thread, over the first 256 FashionMNIST
//! test images: one image at a time (batch 1) and in batches of `int8_runner::BATCH` (what
//! `qcnn evaluate` runs), with the blob `bash bench/compare.sh` builds
//! (`out/model.qcnn`, or the path in `QCNN_BENCH_MODEL`).
//!
//! `cargo bench -p qcnn-host --bench model`

use std::hint::black_box;
use std::path::{Path, PathBuf};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use qcnn_config::config::Config;
use qcnn_core::Model;
use qcnn_dataset::FashionMnist;

const IMAGES: usize = 256;

fn model(c: &mut Criterion) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let blob_path = std::env::var_os("QCNN_BENCH_MODEL")
        .map_or_else(|| root.join("out/model.qcnn"), PathBuf::from);
    let blob = match std::fs::read(&blob_path) {
        Ok(blob) => blob,
        Err(err) => {
            eprintln!(
                "model bench skipped: {}: {err}; build the blob with \
                 `qcnn-quantize -o out/model.qcnn`",
                blob_path.display()
            );
            return;
        }
    };
    let model = Model::from_bytes(&blob).expect("a valid model blob");
    let config = Config::load(&root.join("config.yaml")).expect("config.yaml");
    let dataset =
        FashionMnist::load(&config.data.search_dirs(None)).expect("the FashionMNIST files");
    let images: Vec<&[u8]> = (0..IMAGES).map(|i| dataset.test.image(i)).collect();
    let mut arena = vec![0_u8; model.arena_len()];

    let mut group = c.benchmark_group("model");
    group.throughput(Throughput::Elements(IMAGES as u64));
    group.bench_function("qcnn int8 batch 1", |b| {
        b.iter(|| {
            for image in &images {
                black_box(
                    model
                        .infer(black_box(image), &mut arena)
                        .expect("inference"),
                )
                .argmax();
            }
        })
    });
    let batch = qcnn_quantize::int8_runner::BATCH;
    let pixels = dataset.test.images(0..IMAGES);
    let mut batch_arena = vec![0_u8; model.batch_arena_len(batch).expect("a batch arena")];
    let mut logits = vec![0_i8; batch * model.num_classes()];
    group.bench_function(format!("qcnn int8 batch {batch}"), |b| {
        b.iter(|| {
            for images in pixels.chunks(batch * model.input_len()) {
                model
                    .infer_batch(black_box(images), &mut batch_arena, &mut logits)
                    .expect("inference");
            }
            black_box(&logits);
        })
    });
    group.finish();
}

criterion_group!(benches, model);
criterion_main!(benches);
