//! The kernel tiers on the real model and the whole test set: every tier this CPU supports
//! gives the same int8 logits, bit for bit, on all 10,000 FashionMNIST test images, and the
//! same as the `no_std` core API. Tiers the CPU lacks are listed as skipped, never counted as
//! passed, and the CPU's best tier must be among those that ran.
//!
//! `bash scripts/test.sh tiers` runs this with `--nocapture`, so that the tiers that ran and
//! those skipped are in the test log.

mod support;

use qcnn_config::config::Config;
use qcnn_core::{KernelTier, Model, PreparedModel};
use qcnn_dataset::FashionMnist;
use qcnn_host::inference::first_images;
use qcnn_quantize::int8_runner::{BATCH, Workers, run};
use support::cli::{release_blob, repo_root};

#[test]
fn every_tier_gives_the_same_logits_on_all_test_images() {
    let blob = std::fs::read(release_blob()).unwrap();
    let model = Model::from_bytes(&blob).unwrap();
    let config = Config::load(&repo_root().join("config.yaml")).unwrap();
    let dataset = FashionMnist::load(&config.data.dirs).unwrap();
    let test = &dataset.test;
    assert_eq!(test.len(), 10_000);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());

    // The core API's logits (best tier, chosen per call) are the reference.
    let mut expected = vec![0_i8; test.len() * model.num_classes()];
    let mut arena = vec![0_u8; model.batch_arena_len(BATCH).unwrap()];
    let batches = test.images(0..test.len()).chunks(BATCH * model.input_len());
    for (images, logits) in batches.zip(expected.chunks_mut(BATCH * model.num_classes())) {
        model.infer_batch(images, &mut arena, logits).unwrap();
    }

    let (mut ran, mut skipped) = (Vec::new(), Vec::new());
    for tier in KernelTier::ALL {
        if !tier.is_supported() {
            skipped.push(tier.name());
            continue;
        }
        let prepared = PreparedModel::with_tier(model.clone(), tier).unwrap();
        let images = first_images(test, test.len());
        let got = run(
            &prepared,
            &images,
            (Workers::Exactly(threads), BATCH),
            &|_| {},
        )
        .unwrap();
        let classes = model.num_classes();
        if let Some(image) =
            (0..test.len()).find(|&i| got.image(i) != &expected[i * classes..][..classes])
        {
            panic!(
                "tier {tier}: image {image} gives {:?}, the core API {:?}",
                got.image(image),
                &expected[image * classes..][..classes]
            );
        }
        ran.push(tier.name());
    }
    println!(
        "kernel tiers on {} test images: ran {}; skipped (not this CPU): {}",
        test.len(),
        ran.join(", "),
        if skipped.is_empty() {
            "none".to_string()
        } else {
            skipped.join(", ")
        }
    );
    let best = KernelTier::best();
    assert!(
        ran.contains(&best.name()),
        "this CPU's best tier {best} did not run"
    );
    // Predictions vary across the test set, so the comparison covered real work.
    let classes: std::collections::HashSet<usize> = expected
        .chunks(model.num_classes())
        .map(qcnn_dataset::metrics::argmax)
        .collect();
    assert_eq!(classes.len(), model.num_classes());
}

/// `QCNN_KERNEL_TIER` is how the host and the bench force a tier: an unknown or unsupported
/// name is an error naming the variable, never a silent fallback.
#[test]
fn qcnn_kernel_tier_is_checked() {
    let env = support::cli::TestEnv::new();
    let model = release_blob().to_str().unwrap().to_owned();
    let run = |tier: &str| {
        let mut command = env.qcnn();
        command
            .env("QCNN_KERNEL_TIER", tier)
            .args(["predict", "--model", &model, "--first", "3"]);
        command.output().unwrap()
    };
    let unknown = run("avx3");
    assert_eq!(unknown.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&unknown.stderr);
    assert!(
        stderr.contains("QCNN_KERNEL_TIER=\"avx3\" names no kernel tier (one of: portable,"),
        "{stderr}"
    );
    let portable = run("portable");
    assert!(portable.status.success());
    let best = run(KernelTier::best().name());
    assert_eq!(portable.stdout, best.stdout);
    if let Some(missing) = KernelTier::ALL.into_iter().find(|t| !t.is_supported()) {
        let refused = run(missing.name());
        assert_eq!(refused.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(
            stderr.contains(&format!(
                "kernel tier {missing} is not supported by this CPU"
            )),
            "{stderr}"
        );
    }
}
