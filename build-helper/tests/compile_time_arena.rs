//! The generated constants: the arena for each kind of target, and `assert_arena_fits!`,
//! which must stop the compilation of a firmware whose arena is one byte short.

use std::process::Command;

use qcnn_core::format::{
    self, Conv2d, DataWriter, Header, Layer, Linear, Pool, QuantParams, Requant, Shape,
};
use qcnn_core::{Kernels, Model};

/// A small valid model: 1×6×6 → Conv2d 1→2 3×3 pad 1 + ReLU + pool 2 → Flatten → Linear 18→4.
fn blob() -> Vec<u8> {
    let mut buf = vec![0_u8; 1024];
    let mut data = DataWriter::new(&mut buf);
    let requant = |data: &mut DataWriter<'_>, n: usize| Requant {
        bias: data.i32s(&vec![3; n]).unwrap(),
        multiplier: data.i32s(&vec![1 << 30; n]).unwrap(),
        shift: data.i8s(&vec![-2; n]).unwrap(),
        output: QuantParams {
            scale: 0.05,
            zero_point: -3,
        },
        weight_scales: data.f32s(&vec![0.01; n]).unwrap(),
    };
    let conv_weights = data
        .i8s(&[1, -2, 3, -4, 5, -6, 7, -8, 9, 9, 8, 7, 6, 5, 4, 3, 2, 1])
        .unwrap();
    let conv_requant = requant(&mut data, 2);
    let linear_weights = data.i8s(&[1; 18 * 4]).unwrap();
    let linear_requant = requant(&mut data, 4);
    let layers = [
        Layer::Conv2d(Conv2d {
            in_channels: 1,
            out_channels: 2,
            kernel: 3,
            stride: 1,
            padding: 1,
            relu: true,
            pool: Some(Pool {
                kernel: 2,
                stride: 2,
            }),
            weights: conv_weights,
            requant: conv_requant,
        }),
        Layer::Flatten,
        Layer::Linear(Linear {
            in_features: 18,
            out_features: 4,
            relu: false,
            weights: linear_weights,
            requant: linear_requant,
        }),
    ];
    let header = Header {
        input: Shape { c: 1, h: 6, w: 6 },
        layers: heapless::Vec::from_slice(&layers).unwrap(),
        data_len: data.len() as u32,
    };
    let mut out = vec![0; format::encoded_len(&header, data.len()).unwrap()];
    format::encode(&header, data.data(), &mut out).unwrap();
    out
}

#[test]
fn constants_follow_the_targets_kernels() {
    let blob = blob();
    let model = Model::from_bytes(&blob).unwrap();
    for kernels in [Kernels::CortexM4Dsp, Kernels::Portable] {
        let source = qcnn_build::rust_source(&blob, kernels).unwrap();
        let line = format!(
            "pub const ARENA_LEN: usize = {};",
            model.arena_len_for(kernels)
        );
        assert!(source.contains(&line), "{line} not in\n{source}");
        assert!(source.contains("pub const INPUT_LEN: usize = 36;"));
        assert!(source.contains("pub const NUM_CLASSES: usize = 4;"));
    }
    assert!(model.arena_len_for(Kernels::CortexM4Dsp) > model.arena_len_for(Kernels::Portable));
    let mut corrupt = blob.clone();
    corrupt[40] ^= 1;
    assert!(qcnn_build::rust_source(&corrupt, Kernels::Portable).is_err());
}

/// Compiles the generated constants plus `tail` as a library with the `rustc` that runs the
/// tests; returns whether it compiled and what rustc printed.
fn compile(tail: &str) -> (bool, String) {
    let source = qcnn_build::rust_source(&blob(), Kernels::CortexM4Dsp).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("firmware.rs");
    std::fs::write(&file, format!("{source}\n{tail}\n")).unwrap();
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    let output = Command::new(rustc)
        .args([
            "--edition",
            "2024",
            "--crate-type",
            "lib",
            "--emit",
            "metadata",
            "-o",
        ])
        .arg(dir.path().join("out.rmeta"))
        .arg(&file)
        .output()
        .expect("running rustc");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn an_arena_one_byte_short_fails_to_compile() {
    let arena =
        |len: &str| format!("pub const MY_ARENA: usize = {len};\nassert_arena_fits!(MY_ARENA);");
    let (ok, stderr) = compile(&arena("ARENA_LEN"));
    assert!(ok, "an arena of ARENA_LEN bytes must compile: {stderr}");
    let (ok, stderr) = compile(&arena("ARENA_LEN - 1"));
    assert!(!ok, "an arena one byte short compiled");
    assert!(
        stderr.contains("the arena is smaller than the model's ARENA_LEN"),
        "{stderr}"
    );
}
