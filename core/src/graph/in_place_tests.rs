//! Nodes run in place (`super::in_place`): on random cases of every kind, the same graph with
//! the node's output at its input's offset gives the same output map and logits as with the
//! output apart, on the portable kernels, the Cortex-M4's (their host stand-ins) and every
//! host tier (one test per tier, `kernel_tests!`: a tier this CPU lacks is reported as ignored);
//! and the loader refuses every alias that breaks a condition.

use super::Graph;
use super::format::*;
use super::in_place::{CHUNK_PIXELS, Staging};
use super::tests::{blob, channels, fixture, logits, node, tensor};
use crate::format::{DataWriter, QuantParams};
use crate::graph::GraphError;
use crate::ops::Kernels;
use crate::ops::tier::KernelTier;
use crate::test_util::SplitMix;
use crate::{Model, ModelError, PreparedModel};

const IMAGE: QuantParams = QuantParams {
    scale: crate::format::INPUT_SCALE,
    zero_point: crate::format::INPUT_ZERO_POINT,
};
const Q: QuantParams = QuantParams {
    scale: 0.05,
    zero_point: -3,
};
const CLASSES: u16 = 16;

#[derive(Clone, Copy, Debug)]
enum Kind {
    Depthwise,
    MaxPool,
    AveragePool,
    Pointwise,
}

/// image 1×H×W → stem conv 3×3 pad 1 (1 → C) = t1 → the node under test = t2 → Gemm = t3,
/// with t2 apart from t1 (`apart`) and over it (`over`), or `None` for an out-of-place case
/// only (a shape the node cannot run in place in).
struct Case {
    apart: GraphHeader,
    over: GraphHeader,
    data: Vec<u8>,
    /// Bytes of t2, where it lies in `apart` and in `over`.
    t2: (usize, usize, usize),
}

/// A clamp the loader accepts (low ≤ high).
fn valid_clamp(rng: &mut SplitMix) -> [i8; 2] {
    [-128 + rng.below(100) as i8, 127 - rng.below(100) as i8]
}

fn window(rng: &mut SplitMix) -> Window {
    crate::graph::test_cases::random_window(rng, 3)
}

fn case(rng: &mut SplitMix, kind: Kind) -> Option<Case> {
    let (c, h, w) = (1 + rng.below(9), 1 + rng.below(12), 1 + rng.below(12));
    let mut buf = vec![0_u8; 1 << 16];
    let mut writer = DataWriter::new(&mut buf);
    let stem = NodeOp::Conv(Conv {
        window: Window {
            kernel: [3, 3],
            stride: [1, 1],
            pads: [1; 4],
        },
        groups: 1,
        clamp: [-128, 127],
        weights: writer.i8s(&rng.weights(c * 9)).unwrap(),
        channels: channels(&mut writer, rng, c, -7),
    });
    let input = crate::shape::MapShape { c, h, w };
    let (op, out_c, win) = match kind {
        Kind::Pointwise => {
            let out_c = 1 + rng.below(20);
            let window = Window {
                kernel: [1, 1],
                stride: [1, 1],
                pads: [0; 4],
            };
            let op = NodeOp::Conv(Conv {
                window,
                groups: 1,
                clamp: valid_clamp(rng),
                weights: writer.i8s(&rng.weights(out_c * c)).unwrap(),
                channels: channels(&mut writer, rng, out_c, -6),
            });
            (op, out_c, window)
        }
        Kind::Depthwise => {
            let win = window(rng);
            let taps = usize::from(win.kernel[0]) * usize::from(win.kernel[1]);
            let op = NodeOp::Conv(Conv {
                window: win,
                groups: c as u16,
                clamp: valid_clamp(rng),
                weights: writer.i8s(&rng.weights(c * taps)).unwrap(),
                channels: channels(&mut writer, rng, c, -5),
            });
            (op, c, win)
        }
        Kind::MaxPool => {
            let win = window(rng);
            (NodeOp::MaxPool(win), c, win)
        }
        Kind::AveragePool => {
            let win = window(rng);
            let count_include_pad = rng.below(2) == 1;
            (
                NodeOp::AveragePool {
                    window: win,
                    count_include_pad,
                },
                c,
                win,
            )
        }
    };
    let out = crate::graph::test_cases::out_shape(input, out_c, &win)?;
    let pooled = matches!(kind, Kind::MaxPool | Kind::AveragePool);
    let q2 = if pooled {
        Q
    } else {
        QuantParams {
            scale: 0.07,
            zero_point: 4,
        }
    };
    let (len1, len2) = (c * h * w, out.c * out.h * out.w);
    let gemm = NodeOp::Gemm(Gemm {
        clamp: [-128, 127],
        weights: writer
            .i8s(&rng.weights(usize::from(CLASSES) * len2))
            .unwrap(),
        channels: channels(&mut writer, rng, usize::from(CLASSES), -9),
    });
    let data = writer.data().to_vec();
    let shape = |s: &crate::shape::MapShape| (s.c as u16, s.h as u16, s.w as u16);
    let (oc, oh, ow) = shape(&out);
    let header = |offsets: [usize; 4], arena: usize| GraphHeader {
        tensors: [
            tensor(1, h as u16, w as u16, IMAGE, offsets[0] as u32),
            tensor(c as u16, h as u16, w as u16, Q, offsets[1] as u32),
            tensor(oc, oh, ow, q2, offsets[2] as u32),
            tensor(CLASSES, 1, 1, Q, offsets[3] as u32),
        ]
        .into_iter()
        .collect(),
        nodes: [
            node(stem.clone(), &[0], 1),
            node(op.clone(), &[1], 2),
            node(gemm.clone(), &[2], 3),
        ]
        .into_iter()
        .collect(),
        output: 3,
        arena_len: arena as u32,
        data_len: data.len() as u32,
    };
    let plane = h * w;
    // Apart: image, t1, t2 and the logits one after the other.
    let apart = header(
        [0, plane, plane + len1, plane + len1 + len2],
        plane + len1 + len2 + usize::from(CLASSES),
    );
    // Over: t1 and t2 at 0, the image and then the logits after the larger.
    let m = len1.max(len2);
    let over = header([m, 0, 0, m], m + plane.max(usize::from(CLASSES)));
    Some(Case {
        apart,
        over,
        data,
        t2: (len2, plane + len1, 0),
    })
}

/// The logits and t2's bytes of `header` on `image`, with the portable kernels.
fn portable(model: &Model<'_>, image: &[u8], t2: (usize, usize)) -> (Vec<i8>, Vec<u8>) {
    let mut arena = vec![0x55; model.arena_len()];
    let logits = model.infer(image, &mut arena).unwrap().as_slice().to_vec();
    (logits, arena[t2.1..t2.1 + t2.0].to_vec())
}

/// The same with the Cortex-M4's kernels (their host stand-ins), chosen as its loader does,
/// with `extra` bytes of scratch beyond the model's (longer staged pieces: `Staging::within`).
fn cortex_m4(
    model: &Model<'_>,
    image: &[u8],
    t2: (usize, usize),
    extra: usize,
) -> (Vec<i8>, Vec<u8>) {
    let graph = model.graph().unwrap();
    let (tensors, tensor_count, nodes, node_count, data, output) = graph.parts();
    let m4 = Graph::from_parts(
        (tensors, tensor_count),
        (nodes, node_count),
        data,
        output,
        graph.kernel_table_for(Kernels::CortexM4Dsp),
        (
            graph.arena_len(),
            graph.scratch_len_for(Kernels::CortexM4Dsp) + extra,
            graph.input_shape(),
            graph.num_classes(),
            graph.output_quant(),
        ),
    );
    let mut arena = vec![0x55_i8; graph.arena_len() + m4.scratch_len()];
    let logits = m4.run(image, &mut arena, &mut |_| {}).unwrap().to_vec();
    let t2 = arena[t2.1..t2.1 + t2.0].iter().map(|&v| v as u8).collect();
    (logits, t2)
}

/// The same on host tier `tier`.
fn on_tier(
    model: &Model<'_>,
    tier: KernelTier,
    image: &[u8],
    t2: (usize, usize),
) -> (Vec<i8>, Vec<u8>) {
    let prepared = PreparedModel::with_tier(model.clone(), tier).unwrap();
    let mut arena = vec![0x55; prepared.batch_arena_len(1).unwrap()];
    let mut logits = vec![0_i8; model.num_classes()];
    prepared
        .infer_batch(image, &mut arena, &mut logits)
        .unwrap();
    (logits, arena[t2.1..t2.1 + t2.0].to_vec())
}

/// One in-place case as the checks below take it: the graph with the node's output apart
/// and over its input, an image, where t2 lies in each, and the portable run's logits and
/// t2 (the reference both checks compare with).
struct Run<'m> {
    kind: Kind,
    apart: Model<'m>,
    over: Model<'m>,
    image: Vec<u8>,
    /// Bytes of t2, where it lies in `apart` and in `over`.
    t2: (usize, usize, usize),
    expected: (Vec<i8>, Vec<u8>),
}

/// Runs `check` on 40 cases of each kind that the loader takes in place (the same cases for
/// every caller: one seed), after checking that it refuses only the overlaps it must and
/// that the portable kernels give the same output with the node in place as apart.
fn each_in_place_case(mut check: impl FnMut(&Run<'_>)) {
    let mut rng = SplitMix::new(21);
    for kind in [
        Kind::Depthwise,
        Kind::MaxPool,
        Kind::AveragePool,
        Kind::Pointwise,
    ] {
        let (mut ran, mut refused, mut varied) = (0, 0, std::collections::BTreeSet::new());
        while ran < 40 {
            let Some(case) = case(&mut rng, kind) else {
                continue;
            };
            let apart_blob = blob(&case.apart, &case.data);
            let over_blob = blob(&case.over, &case.data);
            let t1 = &case.over.tensors[1];
            let t2 = &case.over.tensors[2];
            let fits = t2.shape.c == t1.shape.c
                && usize::from(t2.shape.h) * usize::from(t2.shape.w)
                    <= usize::from(t1.shape.h) * usize::from(t1.shape.w);
            let over = match Model::from_bytes(&over_blob) {
                Ok(model) => model,
                Err(e) => {
                    // Only a per-channel node whose output plane outgrows its input's.
                    assert!(!matches!(kind, Kind::Pointwise) && !fits, "{kind:?}: {e:?}");
                    assert_eq!(
                        e,
                        ModelError::Graph(GraphError::Overlap {
                            first: 1,
                            second: 2
                        })
                    );
                    refused += 1;
                    continue;
                }
            };
            let apart = Model::from_bytes(&apart_blob).unwrap();
            // The staging is in the scratch the loader sized.
            assert!(over.arena_len() > case.over.arena_len as usize, "{kind:?}");
            let (len, at_apart, at_over) = case.t2;
            let image = rng.u8s(apart.input_len());
            let expected = portable(&apart, &image, (len, at_apart));
            assert_eq!(
                portable(&over, &image, (len, at_over)),
                expected,
                "{kind:?}"
            );
            varied.insert(expected.1.clone());
            check(&Run {
                kind,
                apart,
                over,
                image,
                t2: case.t2,
                expected,
            });
            ran += 1;
        }
        // The maps compared vary, so the comparison covered more than constants.
        assert!(
            varied.len() >= 30,
            "{kind:?}: {} distinct maps",
            varied.len()
        );
        eprintln!("{kind:?}: {ran} cases in place, {refused} refused");
    }
}

#[test]
fn every_kind_in_place_gives_the_out_of_place_output_on_the_cortex_m4() {
    // The scratch added beyond the loader's: its own stream, so the cases stay the tiers'.
    let mut rng = SplitMix::new(22);
    each_in_place_case(|run| {
        let Run { kind, over, .. } = run;
        // What a report shows: the node's staging on the M4, its pieces at least the
        // least, and with the node's kernel within the scratch the M4's loader sizes.
        let graph = over.graph().unwrap();
        let n = graph.nodes().find(|n| n.in_place()).unwrap();
        let m4 = Kernels::CortexM4Dsp;
        // The M4's pointwise kernel runs over its own input: no staging, and the node's
        // scratch is the kernel's alone.
        if let Kind::Pointwise = kind {
            assert_eq!(graph.node_staging(&n, m4), None);
            let in_c = usize::from(n.inputs[0].1.shape.c);
            let kernel = crate::graph::fast::pointwise::scratch_bytes(in_c);
            assert_eq!(graph.node_scratch_len(&n, m4), kernel);
        }
        // The portable kernels stage it, with pieces as long as the scratch holds.
        let staged_on = Kernels::Portable;
        let staging = graph.node_staging(&n, staged_on).unwrap();
        if let Staging::Pixels {
            plane, in_c, out_c, ..
        } = staging
        {
            let least = CHUNK_PIXELS.min(plane);
            assert!((least..=plane).contains(&staging.pixels()), "{staging:?}");
            let least_scratch = Staging::Pixels {
                pixels: least,
                plane,
                in_c,
                out_c,
            };
            let kernel = graph.node_scratch_len(&n, staged_on) - least_scratch.scratch_len();
            assert!(kernel + staging.scratch_len() <= graph.scratch_len_for(staged_on));
        }
        let (len, at_apart, at_over) = run.t2;
        assert_eq!(
            cortex_m4(&run.apart, &run.image, (len, at_apart), 0),
            run.expected,
            "{kind:?} M4"
        );
        // The least staging, and pieces as long as more scratch holds (to whole planes).
        for extra in [0, rng.below(600), 5000] {
            assert_eq!(
                cortex_m4(over, &run.image, (len, at_over), extra),
                run.expected,
                "{kind:?} M4, {extra} bytes more scratch"
            );
        }
    });
}

// One test per host tier (`kernel_tests!`): a tier this CPU lacks is reported as ignored,
// never skipped inside a test that passes.
crate::kernel_tests!(every_kind_in_place_gives_the_out_of_place_output_on_the_tier);

fn every_kind_in_place_gives_the_out_of_place_output_on_the_tier(tier: KernelTier) {
    each_in_place_case(|run| {
        let (len, at_apart, at_over) = run.t2;
        let kind = run.kind;
        assert_eq!(
            on_tier(&run.apart, tier, &run.image, (len, at_apart)),
            run.expected,
            "{tier:?}"
        );
        assert_eq!(
            on_tier(&run.over, tier, &run.image, (len, at_over)),
            run.expected,
            "{kind:?} {tier:?}"
        );
    });
}

#[test]
fn a_pointwise_staging_grows_in_blocks_within_its_room_and_never_past_the_plane() {
    let least = |plane: usize| Staging::Pixels {
        pixels: CHUNK_PIXELS.min(plane),
        plane,
        in_c: 6,
        out_c: 10,
    };
    // 16 bytes a pixel: 100 bytes of room hold 6 pixels, so one block of four.
    assert_eq!(least(50).within(100).pixels(), 4);
    assert_eq!(least(50).within(128).pixels(), 8);
    assert_eq!(least(50).within(10_000).pixels(), 50);
    // Never shorter than the least, even with no room.
    assert_eq!(least(50).within(0).pixels(), 4);
    assert_eq!(least(3).within(10_000).pixels(), 3);
    for room in 0..2000 {
        for plane in [1, 3, 4, 7, 49, 196] {
            let grown = least(plane).within(room);
            let p = grown.pixels();
            assert!(
                p >= least(plane).pixels() && p <= plane,
                "{room} {plane}: {p}"
            );
            assert!(p == plane || p % CHUNK_PIXELS == 0, "{room} {plane}: {p}");
            if p > least(plane).pixels() {
                assert!(grown.scratch_len() <= room, "{room} {plane}: {p}");
            }
        }
    }
    // A per-channel node's staging is its plane, whatever the room.
    let planes = Staging::Planes { plane: 49 };
    assert_eq!(planes.within(10_000), planes);
}

fn load(header: &GraphHeader, data: &[u8]) -> Result<usize, ModelError> {
    Model::from_bytes(&blob(header, data)).map(|m| m.arena_len())
}

fn overlap(first: u16, second: u16) -> Result<usize, ModelError> {
    Err(ModelError::Graph(GraphError::Overlap { first, second }))
}

#[test]
fn the_fixtures_pools_in_place_give_its_logits() {
    let (header, data) = fixture();
    let mut pooled_over = header.clone();
    // AvgPool t3 → t4 and MaxPool t4 → t5 (a smaller plane), each over its input.
    pooled_over.tensors[4].offset = 145;
    pooled_over.tensors[5].offset = 145;
    let mut rng = SplitMix::new(5);
    let images: Vec<Vec<u8>> = (0..30).map(|_| rng.u8s(25)).collect();
    let expected = logits(&header, &data, &images);
    assert!(
        expected
            .iter()
            .collect::<std::collections::BTreeSet<_>>()
            .len()
            >= 10
    );
    assert_eq!(logits(&pooled_over, &data, &images), expected);
    // The loader adds one staged plane (5×3 bytes, a word's multiple) to the scratch.
    assert_eq!(load(&pooled_over, &data), Ok(205 + 16));
}

#[test]
fn an_alias_that_breaks_a_condition_is_refused() {
    let (header, data) = fixture();
    let edited = |edit: &dyn Fn(&mut GraphHeader)| {
        let mut h = header.clone();
        edit(&mut h);
        load(&h, &data)
    };
    // The input must die at the node: the depthwise conv's input t1 is read again by the Add.
    assert_eq!(edited(&|h| h.tensors[2].offset = 25), overlap(1, 2));
    // The same offset, not a shifted one: the MaxPool's output one byte past its input.
    assert_eq!(
        edited(&|h| {
            h.tensors[4].offset = 145;
            h.tensors[5].offset = 146;
        }),
        overlap(4, 5)
    );
    // The kind: a 3×2 conv over its image (a GlobalAveragePool over its input: `tests`).
    assert_eq!(edited(&|h| h.tensors[1].offset = 0), overlap(0, 1));
    // The shape: a pool whose output plane outgrows its input's (2×2, pads 1 all round: 6×4
    // from 5×3) over its input.
    assert_eq!(
        edited(&|h| {
            let NodeOp::AveragePool { window, .. } = &mut h.nodes[3].op else {
                panic!("node 3 is the fixture's AveragePool")
            };
            window.pads = [1; 4];
            h.tensors[4] = tensor(4, 6, 4, Q, 145);
            h.arena_len = 250;
            h.nodes[4].op = NodeOp::MaxPool(Window {
                kernel: [3, 3],
                stride: [2, 2],
                pads: [1, 1, 1, 1],
            });
        }),
        overlap(3, 4)
    );
}
