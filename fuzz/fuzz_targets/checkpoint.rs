//! The checkpoint readers (`.pth`: zip and the restricted pickle reader; `.safetensors`) on
//! any bytes give a checkpoint or a `CheckpointError`, never a panic; the architecture check of
//! whatever loads does not panic either.
#![no_main]

use std::path::Path;
use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use qcnn_config::architecture::Architecture;
use qcnn_config::config::Config;
use qcnn_quantize::checkpoint::Checkpoint;

/// The release architecture from the repository's config.yaml.
static ARCHITECTURE: LazyLock<Architecture> = LazyLock::new(|| {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../config.yaml");
    Config::load(path.as_ref())
        .expect("the repository's config.yaml loads")
        .architecture()
        .expect("the repository's config.yaml has a model section")
});

fuzz_target!(|bytes: &[u8]| {
    if let Ok(checkpoint) = Checkpoint::from_bytes(Path::new("fuzz.pth"), bytes) {
        for tensor in checkpoint.tensors.values() {
            let elements = tensor
                .shape
                .iter()
                .try_fold(1_usize, |n, &d| n.checked_mul(d));
            assert_eq!(elements, Some(tensor.data.len()), "shape and data agree");
        }
        let _ = checkpoint.check(&ARCHITECTURE);
    }
});
