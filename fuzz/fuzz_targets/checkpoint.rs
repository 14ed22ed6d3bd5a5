//! The checkpoint readers (`.pth` zip/pickle through candle, and `.safetensors`) on any
//! bytes give a checkpoint or a `CheckpointError`, never a panic; the architecture check of
//! whatever loads does not panic either.
#![no_main]

use std::io::Write;
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
    // candle's pickle reader only opens paths, so the bytes go through a temporary file
    // (fuzz/run.sh points TMPDIR at /dev/shm to keep the fuzzer off the disk).
    let mut file = tempfile::Builder::new()
        .suffix(".pth")
        .tempfile()
        .expect("creating a temporary file");
    file.write_all(bytes).expect("writing the temporary file");
    if let Ok(checkpoint) = Checkpoint::read(file.path()) {
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
