//! Crafted graph blobs: one per [`GraphError`] variant, each a valid fixture with one thing
//! broken, plus the fixture running against a direct integer reference.

use super::format::*;
use super::{GraphError, SectionProblem};
use crate::format::{DataWriter, QuantParams, Section, Shape, encode_graph, graph_encoded_len};
use crate::test_util::SplitMix;
use crate::{Model, ModelError, SectionKind};

const Q: QuantParams = QuantParams {
    scale: 0.05,
    zero_point: -3,
};
const IMAGE: QuantParams = QuantParams {
    scale: crate::format::INPUT_SCALE,
    zero_point: crate::format::INPUT_ZERO_POINT,
};

pub(super) fn tensor(c: u16, h: u16, w: u16, quant: QuantParams, offset: u32) -> TensorDesc {
    TensorDesc {
        shape: Shape { c, h, w },
        quant,
        offset,
    }
}

pub(super) fn node(op: NodeOp, inputs: &[u16], output: u16) -> Node {
    Node {
        op,
        inputs: inputs.iter().copied().collect(),
        output,
    }
}

pub(super) fn channels(
    w: &mut DataWriter,
    rng: &mut SplitMix,
    n: usize,
    shift: i8,
) -> ChannelSections {
    let bias: Vec<i32> = (0..n).map(|_| rng.below(2000) as i32 - 1000).collect();
    ChannelSections {
        bias: w.i32s(&bias).unwrap(),
        multiplier: w.i32s(&vec![1 << 30; n]).unwrap(),
        shift: w.i8s(&vec![shift; n]).unwrap(),
        weight_scales: w.f32s(&vec![0.01; n]).unwrap(),
    }
}

/// image 1×5×5 → conv 3×2 pads (1,0,1,1) stride (1,2) 1→4 +relu = t1 (4×5×3)
/// → depthwise 3×3 pad 1 groups 4 = t2 → Add(t1, t2)+relu = t3 → AvgPool 2×2 s1 pad (0,0,1,1)
/// = t4 → MaxPool 3×3 s2 pad 1 = t5 (4×3×2) → GlobalAveragePool = t6 → Gemm 4→3 = t7.
pub(crate) fn fixture() -> (GraphHeader, Vec<u8>) {
    let mut rng = SplitMix::new(7);
    let mut buf = vec![0_u8; 4096];
    let mut w = DataWriter::new(&mut buf);
    let conv1_w = w.i8s(&rng.weights(4 * 6)).unwrap();
    let conv1_c = channels(&mut w, &mut rng, 4, -8);
    let dw_w = w.i8s(&rng.weights(4 * 9)).unwrap();
    let dw_c = channels(&mut w, &mut rng, 4, -5);
    let fc_w = w.i8s(&rng.weights(3 * 4)).unwrap();
    let fc_c = channels(&mut w, &mut rng, 3, -7);
    let data = w.data().to_vec();
    let q2 = QuantParams {
        scale: 0.08,
        zero_point: 5,
    };
    let tensors = [
        tensor(1, 5, 5, IMAGE, 0),
        tensor(4, 5, 3, Q, 25),
        tensor(4, 5, 3, q2, 85),
        tensor(4, 5, 3, Q, 145),
        tensor(4, 5, 3, Q, 25),
        tensor(4, 3, 2, Q, 85),
        tensor(4, 1, 1, Q, 0),
        tensor(3, 1, 1, Q, 4),
    ];
    let window = |k: [u8; 2], s: [u8; 2], p: [u8; 4]| Window {
        kernel: k,
        stride: s,
        pads: p,
    };
    let nodes = [
        node(
            NodeOp::Conv(Conv {
                window: window([3, 2], [1, 2], [1, 0, 1, 1]),
                groups: 1,
                clamp: [Q.zero_point, 127],
                weights: conv1_w,
                channels: conv1_c,
            }),
            &[0],
            1,
        ),
        node(
            NodeOp::Conv(Conv {
                window: window([3, 3], [1, 1], [1, 1, 1, 1]),
                groups: 4,
                clamp: [-128, 127],
                weights: dw_w,
                channels: dw_c,
            }),
            &[1],
            2,
        ),
        node(
            NodeOp::Add(Add {
                left_shift: 20,
                multipliers: [1 << 30, 1_288_490_189, 1 << 30],
                shifts: [0, 0, -19],
                clamp: [Q.zero_point, 127],
            }),
            &[1, 2],
            3,
        ),
        node(
            NodeOp::AveragePool {
                window: window([2, 2], [1, 1], [0, 0, 1, 1]),
                count_include_pad: false,
            },
            &[3],
            4,
        ),
        node(
            NodeOp::MaxPool(window([3, 3], [2, 2], [1, 1, 1, 1])),
            &[4],
            5,
        ),
        node(NodeOp::GlobalAveragePool, &[5], 6),
        node(
            NodeOp::Gemm(Gemm {
                clamp: [-128, 127],
                weights: fc_w,
                channels: fc_c,
            }),
            &[6],
            7,
        ),
    ];
    let header = GraphHeader {
        tensors: tensors.into_iter().collect(),
        nodes: nodes.into_iter().collect(),
        output: 7,
        arena_len: 205,
        data_len: data.len() as u32,
    };
    (header, data)
}

/// The fixture with its Add (node 2) written in place: over its second input, t2, and over
/// its first, t1 (the AvgPool's output then moves out of the way).
pub(crate) fn in_place_fixtures(header: &GraphHeader) -> [GraphHeader; 2] {
    let mut over_second = header.clone();
    over_second.tensors[3].offset = 85;
    let mut over_first = header.clone();
    over_first.tensors[3].offset = 25;
    over_first.tensors[4].offset = 145;
    [over_second, over_first]
}

pub(crate) fn blob(header: &GraphHeader, data: &[u8]) -> Vec<u8> {
    let mut out = vec![0; graph_encoded_len(header, data.len()).unwrap()];
    let n = encode_graph(header, data, &mut out).unwrap();
    out.truncate(n);
    out
}

fn load_edited(edit: impl FnOnce(&mut GraphHeader, &mut Vec<u8>)) -> Result<usize, ModelError> {
    let (mut header, mut data) = fixture();
    edit(&mut header, &mut data);
    header.data_len = data.len() as u32;
    let bytes = blob(&header, &data);
    Model::from_bytes(&bytes).map(|m| m.arena_len())
}

fn fails(expected: GraphError, edit: impl FnOnce(&mut GraphHeader, &mut Vec<u8>)) {
    assert_eq!(load_edited(edit), Err(ModelError::Graph(expected)));
}

fn conv(header: &mut GraphHeader, i: usize) -> &mut Conv {
    match &mut header.nodes[i].op {
        NodeOp::Conv(c) => c,
        other => panic!("{other:?}"),
    }
}

#[test]
fn fixture_loads_and_runs_like_the_reference() {
    let (header, data) = fixture();
    let bytes = blob(&header, &data);
    let model = Model::from_bytes(&bytes).unwrap();
    assert_eq!(model.arena_len(), 205);
    assert_eq!(model.num_classes(), 3);
    assert_eq!(model.macs(), 4 * 15 * 6 + 4 * 15 * 9 + 12);
    let mut rng = SplitMix::new(3);
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..50 {
        let image = rng.u8s(25);
        let mut arena = vec![0x55; 205];
        let logits = model.infer(&image, &mut arena).unwrap().as_slice().to_vec();
        assert_eq!(logits, reference(&header, &data, &image));
        seen.insert(logits);
    }
    // The outputs vary with the image, so the comparison covered more than constants.
    assert!(seen.len() >= 10, "{seen:?}");
    // A batch gives the same logits.
    let images = rng.u8s(75);
    let mut arena = vec![0; 3 * 205];
    let mut batch = [0_i8; 9];
    model.infer_batch(&images, &mut arena, &mut batch).unwrap();
    for (i, image) in images.chunks(25).enumerate() {
        assert_eq!(batch[i * 3..][..3], reference(&header, &data, image)[..]);
    }
}

#[test]
fn an_in_place_add_runs_like_the_reference_and_no_other_overlap_loads() {
    let (header, data) = fixture();
    let mut rng = SplitMix::new(5);
    for h in in_place_fixtures(&header) {
        let bytes = blob(&h, &data);
        let model = Model::from_bytes(&bytes).unwrap();
        for _ in 0..20 {
            let image = rng.u8s(25);
            let mut arena = vec![0x55; model.arena_len()];
            let logits = model.infer(&image, &mut arena).unwrap().as_slice().to_vec();
            assert_eq!(logits, reference(&h, &data, &image));
        }
    }
    use GraphError::Overlap;
    // One byte off the input: refused.
    fails(
        Overlap {
            first: 1,
            second: 3,
        },
        |h, _| h.tensors[3].offset = 26,
    );
    // Over an input that is read after the Add (the AvgPool reads t1 instead of t3).
    fails(
        Overlap {
            first: 1,
            second: 3,
        },
        |h, _| {
            h.tensors[3].offset = 25;
            h.tensors[4].offset = 145;
            h.nodes[3].inputs[0] = 1;
        },
    );
    // Any node but an Add or a staged one (`in_place`) over its dying input: the
    // GlobalAveragePool over t5.
    fails(
        Overlap {
            first: 5,
            second: 6,
        },
        |h, _| h.tensors[6].offset = 85,
    );
    // An Add of a tensor with itself, over it.
    fails(
        Overlap {
            first: 2,
            second: 3,
        },
        |h, _| {
            h.nodes[2].inputs[0] = 2;
            h.tensors[3].offset = 85;
        },
    );
}

/// The fixture computed directly from the definitions, with every tensor in its own Vec.
// Index loops on purpose: the reference reads like the formulas.
#[allow(clippy::needless_range_loop)]
fn reference(header: &GraphHeader, data: &[u8], image: &[u8]) -> Vec<i8> {
    use crate::quant::multiply_by_quantized_multiplier as mul;
    let word = |s: Section, i: usize| {
        let at = s.offset as usize + 4 * i;
        i32::from_le_bytes(data[at..at + 4].try_into().unwrap())
    };
    let byte = |s: Section, i: usize| data[s.offset as usize + i] as i8;
    let requant = |c: &ChannelSections, o: usize, acc: i32, zp: i8, clamp: [i8; 2]| {
        let v = mul(acc, word(c.multiplier, o), i32::from(byte(c.shift, o))) + i32::from(zp);
        v.clamp(-128, 127)
            .clamp(i32::from(clamp[0]), i32::from(clamp[1])) as i8
    };
    let t = &header.tensors;
    let mut values: Vec<Vec<i8>> = vec![Vec::new(); t.len()];
    values[0] = image.iter().map(|&p| (i32::from(p) - 128) as i8).collect();
    for n in &header.nodes {
        let (i, o) = (&t[n.inputs[0] as usize], &t[n.output as usize]);
        let x = &values[n.inputs[0] as usize];
        let (c, h, w) = (i.shape.c as i64, i.shape.h as i64, i.shape.w as i64);
        let (oc, oh, ow) = (o.shape.c as i64, o.shape.h as i64, o.shape.w as i64);
        let at = |ch: i64, y: i64, xx: i64| -> Option<i32> {
            (y >= 0 && y < h && xx >= 0 && xx < w)
                .then(|| i32::from(x[(ch * h * w + y * w + xx) as usize]))
        };
        let mut out = vec![0_i8; (oc * oh * ow) as usize];
        match &n.op {
            NodeOp::Conv(cv) => {
                let [kh, kw] = cv.window.kernel.map(i64::from);
                let [sh, sw] = cv.window.stride.map(i64::from);
                let (pt, pl) = (i64::from(cv.window.pads[0]), i64::from(cv.window.pads[1]));
                let g = i64::from(cv.groups);
                let (cg, og) = (c / g, oc / g);
                for oo in 0..oc {
                    for y in 0..oh {
                        for xx in 0..ow {
                            let mut acc = word(cv.channels.bias, oo as usize);
                            for ic in 0..cg {
                                for ky in 0..kh {
                                    for kx in 0..kw {
                                        let wi = ((oo * cg + ic) * kh + ky) * kw + kx;
                                        let v = at(
                                            (oo / og) * cg + ic,
                                            y * sh + ky - pt,
                                            xx * sw + kx - pl,
                                        )
                                        .unwrap_or(i32::from(i.quant.zero_point));
                                        acc += i32::from(byte(cv.weights, wi as usize)) * v;
                                    }
                                }
                            }
                            out[(oo * oh * ow + y * ow + xx) as usize] = requant(
                                &cv.channels,
                                oo as usize,
                                acc,
                                o.quant.zero_point,
                                cv.clamp,
                            );
                        }
                    }
                }
            }
            NodeOp::Add(a) => {
                let y = &values[n.inputs[1] as usize];
                let zb = t[n.inputs[1] as usize].quant.zero_point;
                for k in 0..out.len() {
                    let l = 1 << a.left_shift;
                    let p = mul(
                        (i32::from(x[k]) - i32::from(i.quant.zero_point)) * l,
                        a.multipliers[0],
                        a.shifts[0].into(),
                    );
                    let q = mul(
                        (i32::from(y[k]) - i32::from(zb)) * l,
                        a.multipliers[1],
                        a.shifts[1].into(),
                    );
                    let v = mul(p + q, a.multipliers[2], a.shifts[2].into())
                        + i32::from(o.quant.zero_point);
                    out[k] = v
                        .clamp(-128, 127)
                        .clamp(a.clamp[0].into(), a.clamp[1].into())
                        as i8;
                }
            }
            NodeOp::MaxPool(wd) | NodeOp::AveragePool { window: wd, .. } => {
                let [kh, kw] = wd.kernel.map(i64::from);
                let [sh, sw] = wd.stride.map(i64::from);
                let (pt, pl) = (i64::from(wd.pads[0]), i64::from(wd.pads[1]));
                for ch in 0..c {
                    for y in 0..oh {
                        for xx in 0..ow {
                            let taps: Vec<i32> = (0..kh)
                                .flat_map(|ky| (0..kw).map(move |kx| (ky, kx)))
                                .filter_map(|(ky, kx)| at(ch, y * sh + ky - pt, xx * sw + kx - pl))
                                .collect();
                            let v = match n.op {
                                NodeOp::MaxPool(_) => *taps.iter().max().unwrap(),
                                _ => {
                                    let (s, k) = (taps.iter().sum::<i32>(), taps.len() as i32);
                                    if s > 0 {
                                        (s + k / 2) / k
                                    } else {
                                        (s - k / 2) / k
                                    }
                                }
                            };
                            out[(ch * oh * ow + y * ow + xx) as usize] = v as i8;
                        }
                    }
                }
            }
            NodeOp::GlobalAveragePool => {
                for ch in 0..c {
                    let s: i32 = (0..h * w)
                        .map(|k| i32::from(x[(ch * h * w + k) as usize]))
                        .sum();
                    let k = (h * w) as i32;
                    out[ch as usize] = (if s > 0 {
                        (s + k / 2) / k
                    } else {
                        (s - k / 2) / k
                    }) as i8;
                }
            }
            // Compared with the unfused graph instead
            // (`a_fused_conv_add_gives_the_unfused_logits_also_over_its_residual`).
            NodeOp::ConvAdd(_) => panic!("the reference has no fused nodes"),
            NodeOp::Gemm(gm) => {
                for oo in 0..oc as usize {
                    let mut acc = word(gm.channels.bias, oo);
                    for (k, &v) in x.iter().enumerate() {
                        acc += i32::from(byte(gm.weights, oo * x.len() + k)) * i32::from(v);
                    }
                    out[oo] = requant(&gm.channels, oo, acc, o.quant.zero_point, gm.clamp);
                }
            }
        }
        values[n.output as usize] = out;
    }
    values[header.output as usize].clone()
}

#[test]
fn every_graph_error_has_a_crafted_blob() {
    use GraphError::*;
    fails(NoNodes, |h, _| h.nodes.clear());
    fails(BadInputTensor, |h, _| h.tensors[0].quant.scale = f32::NAN);
    fails(UnknownTensor { node: 1, tensor: 9 }, |h, _| {
        h.nodes[1].inputs[0] = 9
    });
    fails(InputCount { node: 2 }, |h, _| {
        h.nodes[2].inputs.pop();
    });
    fails(NotTopological { node: 1, tensor: 3 }, |h, _| {
        h.nodes[1].inputs[0] = 3
    });
    fails(WrittenTwice { node: 1, tensor: 1 }, |h, _| {
        h.nodes[1].output = 1
    });
    fails(NeverWritten { tensor: 8 }, |h, _| {
        let extra = h.tensors[7];
        h.tensors.push(extra).unwrap();
    });
    fails(ShapeMismatch { node: 5, tensor: 6 }, |h, _| {
        h.tensors[6].shape.h = 2
    });
    fails(BadQuant { tensor: 3 }, |h, _| {
        h.tensors[3].quant.scale = f32::NAN
    });
    fails(BadQuant { tensor: 5 }, |h, _| {
        h.tensors[5].quant.zero_point = 0
    });
    fails(BadTensorSize { tensor: 2 }, |h, _| h.tensors[2].shape.c = 0);
    fails(OutsideArena { tensor: 3 }, |h, _| h.arena_len = 200);
    fails(
        Overlap {
            first: 1,
            second: 2,
        },
        |h, _| h.tensors[2].offset = 30,
    );
    fails(BadWindow { node: 4 }, |h, _| {
        h.nodes[4].op = NodeOp::MaxPool(Window {
            kernel: [3, 3],
            stride: [2, 2],
            pads: [3, 1, 1, 1],
        })
    });
    fails(BadGroups { node: 1 }, |h, _| conv(h, 1).groups = 3);
    fails(BadClamp { node: 0 }, |h, _| conv(h, 0).clamp = [5, 4]);
    fails(BadAdd { node: 2 }, |h, _| {
        if let NodeOp::Add(a) = &mut h.nodes[2].op {
            a.shifts[2] = 1;
        }
    });
    fails(DotTooLong { node: 0 }, |h, _| {
        h.tensors[0].shape = Shape {
            c: 3,
            h: 255,
            w: 255,
        };
        h.tensors[1].shape = Shape { c: 4, h: 1, w: 1 };
        h.arena_len = 200_000;
        conv(h, 0).window = Window {
            kernel: [255, 255],
            stride: [1, 1],
            pads: [0; 4],
        };
    });
    let section = |problem| Section {
        node: 0,
        section: SectionKind::Bias,
        problem,
    };
    fails(section(SectionProblem::Length), |h, _| {
        conv(h, 0).channels.bias.len = 12
    });
    fails(section(SectionProblem::OutOfBounds), |h, _| {
        conv(h, 0).channels.bias.offset = 4000
    });
    fails(section(SectionProblem::Misaligned), |h, _| {
        conv(h, 0).channels.bias.offset += 1
    });
    let offset = |h: &GraphHeader, s: fn(&Conv) -> crate::format::Section| match &h.nodes[1].op {
        NodeOp::Conv(c) => s(c).offset as usize,
        _ => unreachable!(),
    };
    let (header, _) = fixture();
    let weights = offset(&header, |c| c.weights);
    let multiplier = offset(&header, |c| c.channels.multiplier);
    let shift = offset(&header, |c| c.channels.shift);
    let scale = offset(&header, |c| c.channels.weight_scales);
    fails(WeightOutOfRange { node: 1 }, |_, d| d[weights + 2] = 0x80);
    fails(NegativeMultiplier { node: 1 }, |_, d| {
        d[multiplier + 3] = 0x80
    });
    fails(ShiftOutOfRange { node: 1 }, |_, d| d[shift] = 31);
    fails(BadWeightScale { node: 1 }, |_, d| d[scale + 3] = 0xFF);
    fails(BadOutput, |h, _| h.output = 5);
}

#[test]
fn graph_errors_name_themselves() {
    let e = ModelError::Graph(GraphError::Overlap {
        first: 1,
        second: 2,
    });
    assert_eq!(
        e.to_string(),
        "graph model: tensors 1 and 2 are alive together but share arena bytes"
    );
    let v5 = {
        let (header, data) = fixture();
        let mut bytes = blob(&header, &data);
        bytes[4] = 5;
        Model::from_bytes_unverified(&bytes).unwrap_err()
    };
    assert_eq!(v5, ModelError::UnsupportedVersion { found: 5 });
}

#[test]
fn damaged_graph_blobs_are_refused_or_run_without_panicking() {
    // A cheap stand-in for the `blob` fuzz target on graph blobs: random byte edits of
    // the header (checksum fixed up, so the checks past it are reached).
    let (header, data) = fixture();
    let good = blob(&header, &data);
    let header_end = 12 + u32::from_le_bytes(good[8..12].try_into().unwrap()) as usize;
    let mut rng = SplitMix::new(11);
    let (mut loaded, mut refused) = (0, 0);
    for _ in 0..3000 {
        let mut bytes = good.clone();
        for _ in 0..1 + rng.below(3) {
            let at = 12 + rng.below(header_end - 12);
            bytes[at] = rng.next() as u8;
        }
        crate::test_blob::fix_checksum(&mut bytes);
        match Model::from_bytes(&bytes) {
            // A valid edit may ask for a huge arena; this test does not allocate one.
            Ok(model) if model.arena_len() > 1 << 20 => refused += 1,
            Ok(model) => {
                loaded += 1;
                let mut arena = vec![0; model.arena_len()];
                let image = rng.u8s(model.input_len());
                let logits = model.infer(&image, &mut arena).unwrap();
                assert_eq!(logits.len(), model.num_classes());
            }
            Err(_) => refused += 1,
        }
    }
    assert!(
        loaded > 0 && refused > 0,
        "{loaded} loaded, {refused} refused"
    );
}

/// The fixture's depthwise conv and Add as one fused node, with the Add's operands swapped
/// (the conv's output first, as the node takes them).
fn fused_add(header: &GraphHeader, conv_node: usize) -> NodeOp {
    let NodeOp::Add(add) = header.nodes[2].op else {
        panic!("node 2 is the fixture's Add")
    };
    NodeOp::ConvAdd(ConvAdd {
        conv: match &header.nodes[conv_node].op {
            NodeOp::Conv(c) => c.clone(),
            other => panic!("{other:?}"),
        },
        conv_zero_point: header.tensors[2].quant.zero_point,
        add: Add {
            multipliers: [add.multipliers[1], add.multipliers[0], add.multipliers[2]],
            shifts: [add.shifts[1], add.shifts[0], add.shifts[2]],
            ..add
        },
    })
}

pub(super) fn logits(header: &GraphHeader, data: &[u8], images: &[Vec<u8>]) -> Vec<Vec<i8>> {
    let bytes = blob(header, data);
    let model = Model::from_bytes(&bytes).unwrap();
    images
        .iter()
        .map(|image| {
            let mut arena = vec![0x55; model.arena_len()];
            model.infer(image, &mut arena).unwrap().as_slice().to_vec()
        })
        .collect()
}

#[test]
fn a_fused_conv_add_gives_the_unfused_logits_also_over_its_residual() {
    let (header, data) = fixture();
    let mut rng = SplitMix::new(11);
    let images: Vec<Vec<u8>> = (0..30).map(|_| rng.u8s(25)).collect();
    let unfused = logits(&header, &data, &images);
    assert!(
        unfused
            .iter()
            .collect::<std::collections::BTreeSet<_>>()
            .len()
            >= 10
    );

    // Add(t1, dw(t1)) as one node reading t1 twice (so not in place): t2 never exists.
    let mut fused = header.clone();
    fused.nodes[1] = node(fused_add(&header, 1), &[1, 1], 3);
    fused.nodes.remove(2);
    fused.tensors.remove(2);
    for n in fused.nodes.iter_mut() {
        for t in n.inputs.iter_mut().chain([&mut n.output]) {
            if *t > 2 {
                *t -= 1;
            }
        }
    }
    fused.output -= 1;
    assert_eq!(logits(&fused, &data, &images), unfused);

    // t1 → dw → t2 → dw → (+ t1), the last conv fused and written over t1, which dies there;
    // against the same graph unfused (the second conv's output t8 at 205).
    let mut chain = header.clone();
    chain
        .tensors
        .push(tensor(4, 5, 3, header.tensors[2].quant, 205))
        .unwrap();
    chain.arena_len = 265;
    let mut second_conv = header.nodes[1].clone();
    second_conv.inputs[0] = 2;
    second_conv.output = 8;
    chain.nodes[2].inputs = [1, 8].into_iter().collect();
    chain.nodes.insert(2, second_conv).unwrap();
    let expected = logits(&chain, &data, &images);
    let mut in_place = header.clone();
    in_place.tensors[3].offset = 25;
    in_place.tensors[4].offset = 145;
    in_place.nodes[2] = node(fused_add(&header, 1), &[2, 1], 3);
    assert_eq!(logits(&in_place, &data, &images), expected);
    assert_ne!(expected, unfused);

    // Written over its conv's input instead (t2, which also dies there): refused.
    let mut over_input = in_place.clone();
    over_input.tensors[3].offset = 85;
    let bytes = blob(&over_input, &data);
    assert_eq!(
        Model::from_bytes(&bytes).map(|m| m.arena_len()),
        Err(ModelError::Graph(GraphError::Overlap {
            first: 2,
            second: 3
        }))
    );
    // A fused node with one input: named.
    let mut one_input = in_place;
    one_input.nodes[2].inputs.pop();
    let bytes = blob(&one_input, &data);
    assert_eq!(
        Model::from_bytes(&bytes).map(|m| m.arena_len()),
        Err(ModelError::Graph(GraphError::InputCount { node: 2 }))
    );
}
