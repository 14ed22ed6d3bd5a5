//! The loader's tests: a small chain fixture, a crafted blob for every `ModelError`, older
//! format versions, and random mutations that must never panic.

use super::*;
use crate::checksum::Checksum;
use crate::format::PREFIX_LEN;
use crate::format::read::verify_checksum;
use crate::format::{Conv2d, Header, Linear};
use crate::test_blob::{Spec, encode, fix_checksum, with_version};
use crate::test_util::SplitMix;

/// input 1×6×6 → Conv2d 1→2 3×3 pad 1 + ReLU + MaxPool 2 → 2×3×3 → Flatten → Linear 18→4.
fn fixture() -> (Header, Vec<u8>) {
    let mut rng = SplitMix::new(99);
    let mut spec = Spec::new(MapShape { c: 1, h: 6, w: 6 });
    spec.conv(&mut rng, 2, (3, 1, 1), (2, 2), true);
    spec.flatten();
    spec.linear(&mut rng, 4, false);
    spec.header_and_data()
}

fn conv(header: &mut Header) -> &mut Conv2d {
    match &mut header.layers[0] {
        Layer::Conv2d(conv) => conv,
        other => panic!("{other:?}"),
    }
}

fn linear(header: &mut Header) -> &mut Linear {
    match &mut header.layers[2] {
        Layer::Linear(linear) => linear,
        other => panic!("{other:?}"),
    }
}

/// The fixture with its header and data edited, encoded by the crate's encoder.
fn edited(edit: impl FnOnce(&mut Header, &mut Vec<u8>)) -> Vec<u8> {
    let (mut header, mut data) = fixture();
    edit(&mut header, &mut data);
    encode(&header, &data)
}

/// The fixture's bytes edited after encoding; `reseal` recomputes the checksum.
fn patched(reseal: bool, edit: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let (header, data) = fixture();
    let mut blob = encode(&header, &data);
    edit(&mut blob);
    if reseal {
        fix_checksum(&mut blob);
    }
    blob
}

fn header_len(blob: &[u8]) -> usize {
    u32::from_le_bytes(blob[8..12].try_into().unwrap()) as usize
}

fn at(section: Section) -> usize {
    section.offset as usize
}

/// Forces this test to list every variant: adding one without a crafted blob fails to
/// compile here.
fn variant(e: &ModelError) -> usize {
    use ModelError::*;
    match e {
        TooShort { .. } => 0,
        BadMagic => 1,
        UnsupportedVersion { .. } => 2,
        UnknownFlags { .. } => 3,
        ChecksumMismatch { .. } => 4,
        HeaderOutOfBounds { .. } => 5,
        HeaderDecode => 6,
        HeaderTrailingBytes => 7,
        NonZeroPadding => 8,
        DataLength { .. } => 9,
        EmptyInput => 10,
        InputTooLarge => 11,
        NoLayers => 12,
        NeedsMap { .. } => 13,
        NeedsVector { .. } => 14,
        ChannelMismatch { .. } => 15,
        FeatureMismatch { .. } => 16,
        BadKernel { .. } => 17,
        BadStride { .. } => 18,
        BadPool { .. } => 19,
        EmptyOutput { .. } => 20,
        TooLarge { .. } => 21,
        DotTooLong { .. } => 22,
        SectionLength { .. } => 23,
        SectionOutOfBounds { .. } => 24,
        SectionMisaligned { .. } => 25,
        WeightOutOfRange { .. } => 26,
        NegativeMultiplier { .. } => 27,
        ShiftOutOfRange { .. } => 28,
        BadOutputScale { .. } => 29,
        BadWeightScale { .. } => 30,
        OutputNotVector => 31,
        Graph(_) => 32,
        GraphSupportNotBuilt => 33,
    }
}
const VARIANTS: usize = 34;

#[test]
fn fixture_is_valid() {
    let (header, data) = fixture();
    let blob = encode(&header, &data);
    let model = Model::from_bytes(&blob).unwrap();
    assert_eq!(model.num_classes(), 4);
    let layers: Vec<CheckedLayer> = model.layers().collect();
    assert_eq!(layers.len(), 3);
    assert_eq!(
        layers[0].output(),
        TensorShape::Map(MapShape { c: 2, h: 3, w: 3 })
    );
    assert_eq!(layers[1].output(), TensorShape::Vector(18));
    // The conv's input, output and scratch: im2col's four patches of 9 bytes padded to
    // 16 and its 2 × 16 padded weights; the Cortex-M4 path's buffers (81 words).
    assert_eq!(layers[0].scratch_len(Kernels::Portable), 4 * 16 + 2 * 16);
    assert_eq!(layers[0].scratch_len(Kernels::CortexM4Dsp), 81 * 4 + 3);
    assert_eq!(model.arena_len_for(Kernels::Portable), 36 + 96 + 18);
    assert_eq!(model.arena_len_for(Kernels::CortexM4Dsp), 36 + 327 + 18);
    assert_eq!(
        model.arena_len(),
        model.arena_len_for(Kernels::NATIVE),
        "this target's figure"
    );
}

#[test]
fn every_error_has_a_crafted_blob() {
    use ModelError::*;
    use SectionKind::*;
    let (header, data) = fixture();
    let valid = encode(&header, &data);
    let data_len = data.len() as u32;
    let padding = format::data_offset(header_len(&valid)) - PREFIX_LEN - header_len(&valid);
    assert!(
        padding > 0,
        "the fixture must have header padding to corrupt"
    );
    let stored_sum = u32::from_le_bytes(valid[valid.len() - 4..].try_into().unwrap());

    let cases: Vec<(&str, Vec<u8>, ModelError)> = vec![
        ("truncated", valid[..15].to_vec(), TooShort { len: 15 }),
        ("magic", patched(false, |b| b[0] = b'X'), BadMagic),
        (
            "version",
            patched(true, |b| b[4] = 5),
            UnsupportedVersion { found: 5 },
        ),
        (
            "flags",
            patched(true, |b| b[6] = 1),
            UnknownFlags { found: 1 },
        ),
        ("checksum", patched(false, |b| b[valid.len() - 5] ^= 1), {
            let mut b = valid.clone();
            b[valid.len() - 5] ^= 1;
            ChecksumMismatch {
                checksum: Checksum::XxHash32,
                stored: stored_sum,
                computed: xxhash_rust::xxh32::xxh32(&b[..b.len() - 4], 0),
            }
        }),
        (
            "header length",
            patched(true, |b| b[8..12].copy_from_slice(&u32::MAX.to_le_bytes())),
            HeaderOutOfBounds {
                header_len: u32::MAX,
            },
        ),
        (
            "header bytes",
            patched(true, |b| b[8..12].copy_from_slice(&1_u32.to_le_bytes())),
            HeaderDecode,
        ),
        (
            "header trailing",
            patched(true, |b| {
                let len = header_len(b) as u32 + 4;
                b[8..12].copy_from_slice(&len.to_le_bytes());
            }),
            HeaderTrailingBytes,
        ),
        (
            "padding",
            patched(true, |b| {
                let at = PREFIX_LEN + header_len(b);
                b[at] = 1;
            }),
            NonZeroPadding,
        ),
        (
            "data length",
            patched(true, |b| b.insert(b.len() - 4, 0)),
            DataLength {
                header: data_len,
                actual: data.len() + 1,
            },
        ),
        ("empty input", edited(|h, _| h.input.h = 0), EmptyInput),
        (
            "huge input",
            edited(|h, _| {
                h.input = format::Shape {
                    c: 1,
                    h: 65535,
                    w: 65535,
                }
            }),
            InputTooLarge,
        ),
        ("no layers", edited(|h, _| h.layers.clear()), NoLayers),
        (
            "flatten twice",
            edited(|h, _| {
                h.layers = heapless::Vec::from_slice(&[Layer::Flatten, Layer::Flatten]).unwrap()
            }),
            NeedsMap { layer: 1 },
        ),
        (
            "no flatten",
            edited(|h, _| {
                h.layers.remove(1);
            }),
            NeedsVector { layer: 1 },
        ),
        (
            "conv channels",
            edited(|h, _| conv(h).in_channels = 3),
            ChannelMismatch {
                layer: 0,
                expected: 1,
                found: 3,
            },
        ),
        (
            "linear features",
            edited(|h, _| linear(h).in_features = 17),
            FeatureMismatch {
                layer: 2,
                expected: 18,
                found: 17,
            },
        ),
        (
            "even kernel",
            edited(|h, _| conv(h).kernel = 2),
            BadKernel { layer: 0 },
        ),
        (
            "stride 3",
            edited(|h, _| conv(h).stride = 3),
            BadStride { layer: 0 },
        ),
        (
            "pool 0",
            edited(|h, _| {
                conv(h).pool = Some(Pool {
                    kernel: 0,
                    stride: 2,
                })
            }),
            BadPool { layer: 0 },
        ),
        (
            "kernel larger than input",
            edited(|h, _| {
                conv(h).kernel = 9;
            }),
            EmptyOutput { layer: 0 },
        ),
        (
            "huge output",
            edited(|h, _| {
                h.input = format::Shape {
                    c: 1,
                    h: 40000,
                    w: 40000,
                };
                conv(h).out_channels = 16;
            }),
            TooLarge { layer: 0 },
        ),
        (
            "long dot",
            edited(|h, _| {
                h.input = format::Shape {
                    c: 65535,
                    h: 1,
                    w: 1,
                };
                conv(h).in_channels = 65535;
                conv(h).pool = None;
            }),
            DotTooLong { layer: 0 },
        ),
        (
            "weights length",
            edited(|h, _| conv(h).weights.len -= 1),
            SectionLength {
                layer: 0,
                section: Weights,
            },
        ),
        (
            "weights offset",
            edited(|h, _| conv(h).weights.offset = data_len),
            SectionOutOfBounds {
                layer: 0,
                section: Weights,
            },
        ),
        (
            "bias alignment",
            edited(|h, _| conv(h).requant.bias.offset += 1),
            SectionMisaligned {
                layer: 0,
                section: Bias,
            },
        ),
        (
            "weight -128",
            edited(|h, d| d[at(conv(h).weights) + 1] = 0x80),
            WeightOutOfRange { layer: 0 },
        ),
        (
            "negative multiplier",
            edited(|h, d| d[at(linear(h).requant.multiplier) + 3] = 0x80),
            NegativeMultiplier { layer: 2 },
        ),
        (
            "shift 31",
            edited(|h, d| d[at(linear(h).requant.shift)] = 31),
            ShiftOutOfRange { layer: 2 },
        ),
        (
            "NaN scale",
            edited(|h, _| linear(h).requant.output.scale = f32::NAN),
            BadOutputScale { layer: 2 },
        ),
        (
            "negative weight scale",
            edited(|h, d| {
                let at = at(conv(h).requant.weight_scales);
                d[at..at + 4].copy_from_slice(&(-1.0_f32).to_le_bytes());
            }),
            BadWeightScale { layer: 0 },
        ),
        (
            "no classifier",
            edited(|h, _| h.layers.truncate(1)),
            OutputNotVector,
        ),
        (
            "a graph (version 4) with no nodes; graph::tests has one blob per GraphError",
            {
                let (mut header, data) = crate::graph::tests::fixture();
                header.nodes.clear();
                crate::graph::tests::blob(&header, &data)
            },
            if cfg!(feature = "graph") {
                Graph(crate::graph::GraphError::NoNodes)
            } else {
                GraphSupportNotBuilt
            },
        ),
    ];

    // A build reaches only one of the two graph outcomes; scripts/test.sh runs this test
    // with and without the `graph` feature, so each is covered by one of the runs.
    let mut covered = [false; VARIANTS];
    covered[variant(&if cfg!(feature = "graph") {
        GraphSupportNotBuilt
    } else {
        Graph(crate::graph::GraphError::NoNodes)
    })] = true;
    for (name, blob, expected) in &cases {
        let err = Model::from_bytes(blob).expect_err(name);
        assert_eq!(err, *expected, "{name}");
        // Display names the problem; it is never empty.
        assert!(!err.to_string().is_empty());
        covered[variant(&err)] = true;
        // Without the checksum, every other check still refuses the same blob.
        if !matches!(expected, ChecksumMismatch { .. }) {
            assert_eq!(
                Model::from_bytes_unverified(blob).expect_err(name),
                *expected,
                "{name}, unverified"
            );
        }
    }
    assert_eq!(covered, [true; VARIANTS], "variants without a crafted blob");
}

#[test]
fn unverified_load_skips_only_the_checksum() {
    let (header, data) = fixture();
    let valid = encode(&header, &data);
    assert_eq!(verify_checksum(&valid), Ok(()));
    // A flipped bias bit with the old checksum: only the checksum can tell.
    let mut flipped = valid.clone();
    let bias = valid.len() - 4 - data.len() + at(conv(&mut header.clone()).requant.bias);
    flipped[bias] ^= 0x01;
    let err = Model::from_bytes(&flipped).unwrap_err();
    assert!(matches!(err, ModelError::ChecksumMismatch { .. }), "{err}");
    assert!(
        err.to_string().starts_with("xxHash32 mismatch: stored 0x"),
        "{err}"
    );
    assert_eq!(verify_checksum(&flipped), Err(err));
    let model = Model::from_bytes_unverified(&flipped).unwrap();
    assert_eq!(
        model.arena_len(),
        Model::from_bytes(&valid).unwrap().arena_len()
    );
    assert_eq!(
        verify_checksum(&valid[..3]),
        Err(ModelError::TooShort { len: 3 })
    );
    assert_eq!(
        verify_checksum(&with_version(&valid, 5)),
        Err(ModelError::UnsupportedVersion { found: 5 })
    );
    // Any single flipped bit of a blob is refused by the default load.
    for bit in 0..valid.len() * 8 {
        let mut flipped = valid.clone();
        flipped[bit / 8] ^= 1 << (bit % 8);
        assert!(Model::from_bytes(&flipped).is_err(), "bit {bit}");
    }
}

#[test]
fn version_1_blobs_with_a_crc_32_still_load_and_run_the_same() {
    let (header, data) = fixture();
    let current = encode(&header, &data);
    let old = with_version(&current, format::CRC32_VERSION);
    assert_eq!(old[..current.len() - 4], {
        let mut v = current[..current.len() - 4].to_vec();
        v[4] = 1;
        v
    });
    let crc = crate::crc::Crc32.checksum(&old[..old.len() - 4]);
    assert_eq!(old[old.len() - 4..], crc.to_le_bytes(), "zlib's crc32");
    assert_eq!(verify_checksum(&old), Ok(()));
    let (new_model, old_model) = (
        Model::from_bytes(&current).unwrap(),
        Model::from_bytes(&old).unwrap(),
    );
    let mut rng = SplitMix::new(5);
    let (mut a, mut b) = (
        vec![0; new_model.arena_len()],
        vec![0; old_model.arena_len()],
    );
    for _ in 0..20 {
        let image = rng.u8s(new_model.input_len());
        assert_eq!(
            new_model.infer(&image, &mut a).unwrap().as_slice(),
            old_model.infer(&image, &mut b).unwrap().as_slice()
        );
    }
    // Each version is held to its own checksum: a CRC-32 under version 3 or an xxHash32
    // under version 1 is a corrupt blob, named with the function expected.
    let mut swapped = old.clone();
    swapped[4] = 3;
    assert!(matches!(
        Model::from_bytes(&swapped),
        Err(ModelError::ChecksumMismatch {
            checksum: Checksum::XxHash32,
            ..
        })
    ));
    let mut swapped = current.clone();
    swapped[4] = 1;
    let err = Model::from_bytes(&swapped).unwrap_err();
    assert!(matches!(
        err,
        ModelError::ChecksumMismatch {
            checksum: Checksum::Crc32,
            ..
        }
    ));
    assert!(err.to_string().starts_with("CRC-32 mismatch"), "{err}");
    // Any flipped bit of the old blob is still refused.
    for bit in 0..old.len() * 8 {
        let mut flipped = old.clone();
        flipped[bit / 8] ^= 1 << (bit % 8);
        assert!(Model::from_bytes(&flipped).is_err(), "bit {bit}");
    }
}

#[test]
fn version_2_graph_blobs_with_a_crc_32_still_load() {
    let (header, data) = crate::graph::tests::fixture();
    let current = crate::graph::tests::blob(&header, &data);
    assert_eq!(current[4..6], format::GRAPH_VERSION.to_le_bytes());
    let old = with_version(&current, format::CRC32_GRAPH_VERSION);
    if !cfg!(feature = "graph") {
        // Without the graph engine both graph versions are refused alike, checksum or not.
        for blob in [&current, &old] {
            assert_eq!(
                Model::from_bytes(blob).unwrap_err(),
                ModelError::GraphSupportNotBuilt
            );
        }
        return;
    }
    let (new_model, old_model) = (
        Model::from_bytes(&current).unwrap(),
        Model::from_bytes(&old).unwrap(),
    );
    assert!(old_model.graph().is_some());
    assert_eq!(old_model.arena_len(), new_model.arena_len());
    let mut rng = SplitMix::new(6);
    let mut arena = vec![0; new_model.arena_len()];
    for _ in 0..10 {
        let image = rng.u8s(new_model.input_len());
        let expected = new_model
            .infer(&image, &mut arena)
            .unwrap()
            .as_slice()
            .to_vec();
        assert_eq!(
            old_model.infer(&image, &mut arena).unwrap().as_slice(),
            expected
        );
    }
    let mut flipped = old.clone();
    flipped[old.len() - 5] ^= 0x10;
    assert!(matches!(
        Model::from_bytes(&flipped),
        Err(ModelError::ChecksumMismatch {
            checksum: Checksum::Crc32,
            ..
        })
    ));
}

#[test]
fn the_model_is_a_small_view() {
    // Where things are, not decoded layers or nodes: a dozen words on any target, and a
    // graph's kernel per node (16 bytes; the C API's qcnn_model holds one on a 64-bit host
    // in QCNN_MODEL_SIZE bytes).
    let table = if cfg!(feature = "graph") { 16 } else { 0 };
    assert!(core::mem::size_of::<Model>() <= 11 * core::mem::size_of::<usize>() + table);
}

#[test]
fn layer_count_limit() {
    let pool = Layer::MaxPool2d(Pool {
        kernel: 1,
        stride: 1,
    });
    let mut layers = heapless::Vec::new();
    while layers.len() < format::MAX_LAYERS - 1 {
        layers.push(pool.clone()).unwrap();
    }
    layers.push(Layer::Flatten).unwrap();
    let header = Header {
        input: format::Shape { c: 1, h: 2, w: 2 },
        layers,
        data_len: 0,
    };
    let blob = encode(&header, &[]);
    let model = Model::from_bytes(&blob).unwrap();
    assert_eq!(model.layers().len(), format::MAX_LAYERS);
    assert_eq!(model.num_classes(), 4);
    assert_eq!(
        model
            .infer(&[0, 1, 254, 255], &mut [0; 8])
            .unwrap()
            .as_slice(),
        [-128, -127, 126, 127]
    );

    // One more layer: splice a 17th pool into the postcard header (layer count is the
    // varint after the three one-byte shape fields; a pool is tag 1, kernel, stride).
    let header_len = header_len(&blob);
    let mut header_bytes = blob[PREFIX_LEN..PREFIX_LEN + header_len].to_vec();
    assert_eq!(header_bytes[3] as usize, format::MAX_LAYERS);
    header_bytes[3] += 1;
    header_bytes.splice(4..4, [1, 1, 1]);
    let mut long = blob[..8].to_vec();
    long.extend((header_bytes.len() as u32).to_le_bytes());
    long.extend(&header_bytes);
    long.resize(
        format::data_offset(header_bytes.len()) + format::CHECKSUM_LEN,
        0,
    );
    fix_checksum(&mut long);
    assert_eq!(
        Model::from_bytes(&long).unwrap_err(),
        ModelError::HeaderDecode
    );
}

#[test]
fn random_mutations_never_panic() {
    let mut rng = SplitMix::new(1234);
    let (mut loaded, mut rejected) = (0, 0);
    let blobs: Vec<Vec<u8>> = (0..50).map(|_| Spec::random(&mut rng).to_blob()).collect();
    for round in 0..20_000 {
        let mut blob = blobs[round % blobs.len()].clone();
        match rng.below(6) {
            0 => blob.truncate(rng.below(blob.len())),
            1 => {
                let n = rng.below(8) + 1;
                blob.extend(rng.u8s(n));
            }
            _ => {
                for _ in 0..rng.below(4) + 1 {
                    let i = rng.below(blob.len());
                    blob[i] = if rng.below(2) == 0 {
                        blob[i] ^ (1 << rng.below(8))
                    } else {
                        rng.next() as u8
                    };
                }
            }
        }
        // Mostly re-seal the checksum so the deeper checks get exercised.
        if blob.len() >= 4 && rng.below(8) != 0 {
            fix_checksum(&mut blob);
        }
        let Ok(model) = Model::from_bytes(&blob) else {
            rejected += 1;
            continue;
        };
        loaded += 1;
        if model.arena_len() > 1 << 22 || model.input_len() > 1 << 22 {
            continue;
        }
        let mut arena = vec![0; model.arena_len()];
        for _ in 0..2 {
            let image = rng.u8s(model.input_len());
            let logits = model.infer(&image, &mut arena).unwrap();
            assert_eq!(logits.len(), model.num_classes());
            assert!(logits.argmax() < logits.len());
        }
    }
    // Both outcomes happened: mutated weights load and run, broken structure is refused.
    assert!(
        loaded > 1000 && rejected > 1000,
        "loaded {loaded}, rejected {rejected}"
    );
}
