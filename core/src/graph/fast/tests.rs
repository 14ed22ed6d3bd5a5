//! The fast kernels against the portable ones on random cases with odd sizes (channels not a
//! multiple of 4, odd widths, non-square kernels, asymmetric pads, strides 1–3), random and
//! extreme data and requantizers. On the host the DSP instructions are the plain-Rust
//! stand-ins of `dsp.rs`; the firmware's `dsp_check` runs the same comparisons on a
//! Cortex-M4 with the real ones.

use super::*;
use crate::graph::conv_params::ConvParams;
use crate::graph::format::{Add, Window};
use crate::graph::kernels::{self, ChannelData};
use crate::graph::test_cases::{Channels, ConvCase, clamp, out_shape, random_window};
use crate::shape::MapShape;
use crate::test_util::SplitMix;

#[test]
fn patch_conv_matches_the_portable_conv() {
    let mut rng = SplitMix::new(41);
    let mut cases = 0;
    while cases < 300 {
        let window = random_window(&mut rng, 5);
        let input = MapShape {
            c: 1 + rng.below(19),
            h: 1 + rng.below(13),
            w: 1 + rng.below(13),
        };
        let out_c = 1 + rng.below(13);
        let Some(out) = out_shape(input, out_c, &window) else {
            continue;
        };
        cases += 1;
        let k = input.c * usize::from(window.kernel[0]) * usize::from(window.kernel[1]);
        let case = ConvCase::random(&mut rng, (input, out), window, 1);
        let (conv, x, data) = (case.params(), &case.x, case.params().channels);
        let expected = case.portable();
        let mut got = vec![0; expected.len()];
        // Exactly the scratch asked for, at a varying misalignment.
        let offset = rng.below(4);
        let mut scratch = vec![0x55_i8; offset + patch_conv::scratch_bytes(k, window, out_c)];
        assert!(patch_conv::conv(&conv, x, &mut got, &mut scratch[offset..]));
        assert_eq!(got, expected, "{input:?} -> {out:?} {window:?}");

        // With a residual Add fused: the conv's values then TFLite's Add, element by element.
        let (residual, residual_values, sums) = random_residual(&mut rng, &expected, &data);
        let mut portable = residual_values.clone();
        kernels::conv_add(&conv, x, &mut portable, &residual);
        assert_eq!(portable, sums, "portable conv_add {input:?} {window:?}");
        let mut fast = residual_values;
        let mut scratch =
            vec![0x55_i8; offset + patch_conv::conv_add_scratch_bytes(k, window, out_c)];
        assert!(patch_conv::conv_add(
            &conv,
            x,
            &mut fast,
            &residual,
            &mut scratch[offset..],
        ));
        assert_eq!(fast, sums, "fast conv_add {input:?} {window:?}");
    }
}

/// A random residual Add fused after a conv whose outputs are `conv_values`: its
/// parameters, the residual's values, and the sums TFLite's Add gives.
fn random_residual(
    rng: &mut SplitMix,
    conv_values: &[i8],
    data: &ChannelData<'_>,
) -> (kernels::AddOp, Vec<i8>, Vec<i8>) {
    let residual_values = rng.i8s(conv_values.len());
    let residual = kernels::AddOp {
        params: Add {
            left_shift: 20,
            multipliers: [0; 3].map(|_| (1 << 30) + rng.below(1 << 30) as i32),
            shifts: [
                -(rng.below(3) as i8),
                -(rng.below(3) as i8),
                -19 - rng.below(4) as i8,
            ],
            clamp: clamp(rng),
        },
        zero_points: [data.zero_point, rng.next() as i8, rng.next() as i8],
    };
    let mut sums = vec![0; conv_values.len()];
    kernels::add(conv_values, &residual_values, &mut sums, &residual);
    (residual, residual_values, sums)
}

#[test]
fn pointwise_matches_the_portable_conv_also_with_a_residual_add() {
    let mut rng = SplitMix::new(45);
    for case in 0..300 {
        let stride = [1 + rng.below(3) as u8, 1 + rng.below(3) as u8];
        // Mostly stride 1 (the contiguous path), some DS-CNN-sized channel counts.
        let stride = if case % 3 == 0 { stride } else { [1, 1] };
        let window = Window {
            kernel: [1, 1],
            stride,
            pads: [0; 4],
        };
        let c = if case % 10 == 0 {
            64
        } else {
            1 + rng.below(23)
        };
        let input = MapShape {
            c,
            h: 1 + rng.below(13),
            w: 1 + rng.below(13),
        };
        let out_c = 1 + rng.below(13);
        let out = out_shape(input, out_c, &window).unwrap();
        let mut conv = ConvCase::random(&mut rng, (input, out), window, 1);
        // Every fifth case one channel's shift outside the assembly's requantization (a right
        // shift of 1 or a left shift): the whole call then takes `ChannelRequant`.
        if case % 5 == 4 {
            conv.channels.shift[rng.below(out_c)] = rng.below(3) as i8 - 1;
        }
        let (node, x, data) = (conv.params(), &conv.x, conv.params().channels);
        let expected = conv.portable();
        let mut got = vec![0; expected.len()];
        // Exactly the scratch asked for, at a varying misalignment.
        let offset = rng.below(4);
        let mut scratch = vec![0x55_i8; offset + pointwise::scratch_bytes(c)];
        assert!(pointwise::conv(&node, x, &mut got, &mut scratch[offset..]));
        assert_eq!(got, expected, "{input:?} -> {out:?} {window:?}");
        // One byte short: declined, nothing written.
        let mut untouched = vec![7_i8; expected.len()];
        let short = pointwise::scratch_bytes(c) - 4;
        assert!(!pointwise::conv(
            &node,
            x,
            &mut untouched,
            &mut vec![0; short][..],
        ));
        assert!(untouched.iter().all(|&q| q == 7));

        // Written over its own input (a node in place), at stride 1 only; every other case
        // with the spare bytes (four a channel) that a last block of fewer pixels goes to.
        let mut tensor = x.clone();
        tensor.resize(x.len().max(expected.len()), 0x55);
        let spare = if case % 2 == 0 { 4 * out_c } else { 0 };
        let mut scratch = vec![0x55_i8; offset + pointwise::scratch_bytes(c) + spare];
        let over_itself = pointwise::conv_in_place(&node, &mut tensor, &mut scratch[offset..]);
        assert_eq!(over_itself, window.stride == [1, 1]);
        if over_itself {
            assert_eq!(
                tensor[..expected.len()],
                expected[..],
                "in place {input:?} -> {out:?}"
            );
        }

        // With a residual Add fused (ResNet-8's 1×1 downsample convs).
        let (residual, mut fast, sums) = random_residual(&mut rng, &expected, &data);
        let mut scratch = vec![0x55_i8; offset + pointwise::conv_add_scratch_bytes(c, out_c)];
        assert!(pointwise::conv_add(
            &node,
            x,
            &mut fast,
            &residual,
            &mut scratch[offset..],
        ));
        assert_eq!(
            fast, sums,
            "pointwise conv_add {input:?} -> {out:?} {window:?}"
        );
    }
}

#[test]
fn depthwise_matches_the_portable_conv() {
    let mut rng = SplitMix::new(42);
    let mut cases = 0;
    // The last cases' planes are past the whole-plane buffer: read through the ring of rows.
    while cases < 404 {
        let mut window = random_window(&mut rng, 5);
        // Every other case 3×3 (DS-CNN's and MobileNet's), whose strides 1 and 2 have paths
        // of their own.
        if cases % 2 == 0 {
            window.kernel = [3, 3];
            window.pads = window.pads.map(|p| p.min(2));
        }
        // Every tenth a 5×3 kernel (DS-CNN's stem), whose rows of an odd width run one at a
        // time.
        if cases % 10 == 5 {
            window.kernel = [5, 3];
        }
        // Every tenth a 5×5 kernel (the variants' depthwise nodes) at stride 1 and 2 in
        // turn, through the 3-wide passes; odd output widths run one row at a time.
        if cases % 10 == 7 {
            let s = 1 + (cases / 10) % 2;
            (window.kernel, window.stride) = ([5, 5], [s as u8; 2]);
        }
        // Every fifth case a one-channel stem (`group` 1), every third of the others up to
        // three outputs per input channel.
        let c = if cases % 5 == 4 { 1 } else { 1 + rng.below(9) };
        let per_channel = match (c, cases % 3) {
            (1, _) => 1 + rng.below(20),
            (_, 1) => 1 + rng.below(3),
            _ => 1,
        };
        let big = cases >= 400;
        let input = MapShape {
            c,
            h: if big {
                40 + rng.below(20)
            } else {
                1 + rng.below(15)
            },
            w: if big {
                60 - rng.below(10)
            } else {
                1 + rng.below(15)
            },
        };
        let out_c = c * per_channel;
        let Some(out) = out_shape(input, out_c, &window) else {
            continue;
        };
        cases += 1;
        let case = ConvCase::random(&mut rng, (input, out), window, c);
        let (node, x) = (case.params(), &case.x);
        let expected = case.portable();
        let mut got = vec![0; expected.len()];
        let offset = rng.below(4);
        let bytes = depthwise::scratch_bytes(input, out_c, window);
        let mut scratch = vec![0x55_i8; offset + bytes];
        assert!(depthwise::conv(&node, x, &mut got, &mut scratch[offset..]));
        assert_eq!(got, expected, "{input:?} -> {out:?} {window:?}");
        if c == 1 {
            // A stem reads its image in bands of as many rows as the scratch holds (the
            // loader's least: one output row's): more scratch, fewer bands, the same numbers.
            let mut wider = vec![0x55_i8; offset + bytes + rng.below(4096)];
            let mut banded = vec![0; expected.len()];
            assert!(depthwise::conv(&node, x, &mut banded, &mut wider[offset..]));
            assert_eq!(banded, expected, "stem in bands {input:?} {window:?}");
        }
        // With the output over the input (a node in place, no staged copy); a one-channel
        // conv reads its image in bands of rows, never in place (the runner stages it).
        let mut tensor = x.clone();
        let over_itself = depthwise::conv_in_place(&node, &mut tensor, &mut scratch[offset..]);
        assert_eq!(
            over_itself,
            out_c == c && out.plane() <= input.plane() && !big && c > 1,
            "in place {input:?} {window:?}"
        );
        if over_itself {
            assert_eq!(
                tensor[..expected.len()],
                expected[..],
                "in place {input:?} {window:?}"
            );
        }
    }
}

/// The testing kit's Add parameters (`SplitMix::add_params`), as `dsp_check` draws them.
fn random_add(rng: &mut SplitMix) -> Add {
    rng.add_params()
}

#[test]
fn add_tables_match_the_portable_add_also_in_place() {
    let mut rng = SplitMix::new(43);
    for _ in 0..200 {
        let n = 1 + rng.below(300);
        let (a, b) = (rng.i8s(n), rng.i8s(n));
        let op = kernels::AddOp {
            params: random_add(&mut rng),
            zero_points: [rng.next() as i8, rng.next() as i8, rng.next() as i8],
        };
        let mut expected = vec![0; n];
        kernels::add(&a, &b, &mut expected, &op);
        let offset = rng.below(4);
        let mut scratch = vec![0_i8; offset + add::SCRATCH_BYTES];
        let mut got = vec![0; n];
        assert!(add::add(&a, &b, &mut got, &op, &mut scratch[offset..]));
        assert_eq!(got, expected);
        // Over the first input, then over the second.
        for first in [true, false] {
            let (mut inout, other) = if first {
                (a.clone(), &b)
            } else {
                (b.clone(), &a)
            };
            let scratch = &mut scratch[offset..];
            assert!(add::add_in_place(&mut inout, other, first, &op, scratch));
            assert_eq!(inout, expected, "in place, over the first input: {first}");
        }
    }
    // Too little scratch: declined, nothing written.
    let mut out = [7_i8; 4];
    let op = kernels::AddOp {
        params: random_add(&mut rng),
        zero_points: [0; 3],
    };
    let mut short = [0_i8; add::SCRATCH_BYTES - 4];
    assert!(!add::add(&[1; 4], &[2; 4], &mut out, &op, &mut short));
    assert_eq!(out, [7; 4]);
}

#[test]
fn average_and_max_pools_match_the_portable_pools() {
    let mut rng = SplitMix::new(44);
    let mut cases = 0;
    while cases < 300 {
        let mut window = random_window(&mut rng, 15);
        let input = MapShape {
            c: 1 + rng.below(5),
            h: 1 + rng.below(20),
            w: 1 + rng.below(20),
        };
        // Every tenth a window over the whole map, unpadded (DS-CNN's 14×14 average).
        if cases % 10 == 0 {
            window.kernel = [input.h as u8, input.w as u8];
            window.pads = [0; 4];
        }
        let Some(out) = out_shape(input, input.c, &window) else {
            continue;
        };
        cases += 1;
        let x = rng.i8s(input.c * input.h * input.w);
        let average = (rng.below(2) == 0, rng.next() as i8);
        let mut expected = vec![0; out.c * out.h * out.w];
        let pool = kernels::PoolOp::new(input, out, window, Some(average));
        kernels::pool(&x, &mut expected, &pool, kernels::sum_values);
        let mut got = vec![0; expected.len()];
        average::average_pool(&x, input, &mut got, out, window, average);
        assert_eq!(got, expected, "{input:?} {window:?}");

        let mut expected = vec![0; out.c * out.h * out.w];
        let pool = kernels::PoolOp::new(input, out, window, None);
        kernels::pool(&x, &mut expected, &pool, kernels::sum_values);
        let mut got = vec![0; expected.len()];
        let mut scratch = vec![0x55; max_pool::scratch_bytes(input.w, window)];
        assert!(max_pool::max_pool(
            &x,
            input,
            &mut got,
            out,
            window,
            &mut scratch
        ));
        assert_eq!(got, expected, "max {input:?} {window:?}");

        let mut expected = vec![0; input.c];
        kernels::global_average(&x, input, &mut expected);
        let mut got = vec![0; input.c];
        average::global_average(&x, input, &mut got);
        assert_eq!(got, expected);
    }
    // Long planes (past one 512-byte chunk of the DSP sum) at the extremes.
    for value in [i8::MIN, i8::MAX] {
        let input = MapShape { c: 2, h: 40, w: 33 };
        let x = vec![value; 2 * 40 * 33];
        let mut got = [0; 2];
        average::global_average(&x, input, &mut got);
        assert_eq!(got, [value; 2]);
    }
}

#[test]
fn the_choice_follows_the_node_and_the_target() {
    use crate::graph::check::Prepared;
    let no_channels = ChannelData {
        bias: &[],
        multiplier: &[],
        shift: &[],
        zero_point: 0,
        clamp: [-128, 127],
    };
    let conv_k = |groups, c_in, c_out, k: u8| {
        Prepared::Conv(ConvParams {
            in_shape: MapShape {
                c: c_in,
                h: 8,
                w: 8,
            },
            out_shape: MapShape {
                c: c_out,
                h: 8,
                w: 8,
            },
            window: Window {
                kernel: [k, k],
                stride: [1, 1],
                pads: [k / 2; 4],
            },
            groups,
            input_zero_point: 0,
            weights: &[],
            channels: no_channels,
        })
    };
    let conv = |groups, c_in, c_out| conv_k(groups, c_in, c_out, 3);
    let m4 = crate::Kernels::CortexM4Dsp;
    assert_eq!(
        choose(&conv_k(1, 64, 64, 1), m4),
        (GraphKernel::Pointwise, pointwise::scratch_bytes(64))
    );
    assert_eq!(choose(&conv_k(64, 64, 64, 1), m4).0, GraphKernel::Depthwise);
    assert_eq!(
        choose(&conv(1, 16, 16), m4),
        (
            GraphKernel::PatchConv,
            patch_conv::scratch_bytes(
                144,
                Window {
                    kernel: [3, 3],
                    stride: [1, 1],
                    pads: [1, 1, 1, 1],
                },
                16
            )
        )
    );
    assert_eq!(choose(&conv(16, 16, 16), m4).0, GraphKernel::Depthwise);
    // Two outputs per input channel, and a one-channel stem: the depthwise kernel's too.
    assert_eq!(choose(&conv(16, 16, 32), m4).0, GraphKernel::Depthwise);
    assert_eq!(choose(&conv(1, 1, 64), m4).0, GraphKernel::Depthwise);
    // A stem kernel wider than the depthwise kernel's 5 stays with the patch conv.
    assert_eq!(choose(&conv_k(1, 1, 8, 7), m4).0, GraphKernel::PatchConv);
    assert_eq!(choose(&conv(2, 16, 16), m4), (GraphKernel::Portable, 0));
    assert_eq!(
        choose(&conv(1, 16, 16), crate::Kernels::Portable),
        (GraphKernel::Portable, 0)
    );
    // A patch beyond MAX_SCRATCH runs the portable code.
    assert_eq!(choose(&conv(1, 1000, 4), m4), (GraphKernel::Portable, 0));
    // A conv with its residual Add fused: a 1×1 one (any stride) takes the pointwise kernel.
    let map = |c| MapShape { c, h: 8, w: 8 };
    let conv_add = |k: u8, stride: u8| {
        let conv = ConvParams {
            in_shape: map(16),
            out_shape: map(32),
            window: Window {
                kernel: [k, k],
                stride: [stride; 2],
                pads: [0; 4],
            },
            groups: 1,
            input_zero_point: 0,
            weights: &[],
            channels: no_channels,
        };
        let residual = crate::graph::kernels::AddOp {
            params: Add {
                left_shift: 20,
                multipliers: [1 << 30; 3],
                shifts: [0, 0, -20],
                clamp: [-128, 127],
            },
            zero_points: [0; 3],
        };
        Prepared::ConvAdd(conv, residual)
    };
    assert_eq!(
        choose(&conv_add(1, 2), m4),
        (
            GraphKernel::Pointwise,
            pointwise::conv_add_scratch_bytes(16, 32)
        )
    );
    assert_eq!(choose(&conv_add(3, 1), m4).0, GraphKernel::PatchConv);
    assert_eq!(
        choose(&conv_add(1, 2), crate::Kernels::Portable).0,
        GraphKernel::Portable
    );
    // A Gemm of whole words, at least the loop's 32, takes the Linear rows.
    let gemm_node = |in_features: usize, weights: &'static [i8]| Prepared::Gemm {
        weights: &weights[..in_features * 2],
        channels: ChannelData {
            bias: &[[0; 4]; 2],
            multiplier: &[[0; 4]; 2],
            shift: &[0; 2],
            zero_point: 0,
            clamp: [-128, 127],
        },
    };
    static WEIGHTS: [i8; 256] = [0; 256];
    assert_eq!(
        choose(&gemm_node(64, &WEIGHTS), m4),
        (GraphKernel::GemmRows, gemm::scratch_bytes(64))
    );
    assert_eq!(
        choose(&gemm_node(28, &WEIGHTS), m4),
        (GraphKernel::Portable, 0)
    );
    assert_eq!(
        choose(&gemm_node(66, &WEIGHTS), m4),
        (GraphKernel::Portable, 0)
    );
    assert_eq!(
        choose(&gemm_node(64, &WEIGHTS), crate::Kernels::Portable),
        (GraphKernel::Portable, 0)
    );
}

/// Gemm with the Linear rows against the portable Gemm: odd and whole-word input lengths
/// (only whole words of at least 32 taken), any clamp, the scratch exactly as asked at any
/// misalignment; weights off a word boundary declined with nothing written.
#[test]
fn gemm_rows_match_the_portable_gemm() {
    let mut rng = SplitMix::new(49);
    let mut taken = 0;
    for case in 0..300 {
        let k = match case % 3 {
            0 => 4 * (8 + rng.below(64)),
            _ => 1 + rng.below(300),
        };
        let out_c = 1 + rng.below(17);
        // Word-aligned weights, as a blob's sections leave them.
        let mut words = vec![0_u32; (k * out_c).div_ceil(4) + 1];
        let bytes: &mut [i8] = bytemuck::cast_slice_mut(&mut words);
        for w in bytes.iter_mut() {
            *w = rng.next() as i8;
        }
        let x = rng.i8s(k);
        let channels = Channels::random(&mut rng, out_c);
        let data = channels.data(rng.next() as i8, clamp(&mut rng));
        let weights = &bytes[..k * out_c];
        let mut expected = vec![0; out_c];
        kernels::gemm(&x, &mut expected, weights, &data);
        let offset = rng.below(4);
        let mut scratch = vec![0x55_i8; offset + gemm::scratch_bytes(k)];
        let mut got = vec![0x11; out_c];
        let ran = gemm::gemm(&x, &mut got, weights, &data, &mut scratch[offset..]);
        assert_eq!(ran, gemm::takes(k), "k {k}");
        if ran {
            taken += 1;
            assert_eq!(got, expected, "k {k} out {out_c}");
        } else {
            assert!(got.iter().all(|&q| q == 0x11), "k {k}: declined, yet wrote");
        }
        // One byte off a word boundary: declined.
        let skewed = &bytes[1..=k * out_c];
        let mut untouched = vec![0x11; out_c];
        assert!(!gemm::gemm(
            &x,
            &mut untouched,
            skewed,
            &data,
            &mut scratch[offset..]
        ));
        assert!(untouched.iter().all(|&q| q == 0x11));
    }
    assert!(taken >= 100, "only {taken} cases took the rows");
}

#[test]
fn the_kernel_table_keeps_each_nodes_kernel() {
    use crate::graph::format::{Add, Conv, Gemm, MAX_NODES, NodeOp};
    let window = Window {
        kernel: [1, 1],
        stride: [1, 1],
        pads: [0; 4],
    };
    let none = crate::format::Section { offset: 0, len: 0 };
    let sections = crate::graph::format::ChannelSections {
        bias: none,
        multiplier: none,
        shift: none,
        weight_scales: none,
    };
    let conv = NodeOp::Conv(Conv {
        window,
        groups: 1,
        clamp: [-128, 127],
        weights: none,
        channels: sections,
    });
    let add = NodeOp::Add(Add {
        left_shift: 20,
        multipliers: [1; 3],
        shifts: [0; 3],
        clamp: [-128, 127],
    });
    let gemm = NodeOp::Gemm(Gemm {
        clamp: [-128, 127],
        weights: none,
        channels: sections,
    });
    let mut table = KernelTable::default();
    let conv_kernels = [
        GraphKernel::Pointwise,
        GraphKernel::Depthwise,
        GraphKernel::PatchConv,
        GraphKernel::Portable,
    ];
    for index in 0..MAX_NODES {
        table.set(index, &conv, conv_kernels[index % 4]);
    }
    // Rewritten in place, neighbours untouched.
    table.set(5, &add, GraphKernel::AddTable);
    table.set(6, &gemm, GraphKernel::Depthwise);
    table.set(7, &gemm, GraphKernel::GemmRows);
    for index in 0..MAX_NODES {
        let expected = match index {
            5 => GraphKernel::AddTable,
            // Not a Gemm's kernel: recorded as the portable one.
            6 => GraphKernel::Portable,
            7 => GraphKernel::GemmRows,
            _ => conv_kernels[index % 4],
        };
        let op = match index {
            5 => &add,
            6 | 7 => &gemm,
            _ => &conv,
        };
        assert_eq!(table.get(index, op), expected, "node {index}");
    }
    // Past MAX_NODES: nothing recorded, portable.
    table.set(MAX_NODES, &conv, GraphKernel::Pointwise);
    assert_eq!(table.get(MAX_NODES, &conv), GraphKernel::Portable);
}

/// A window as wide as the map is summed as one run of rows (both tiers): against the mean
/// written out tap by tap.
#[test]
fn a_full_width_average_is_the_mean_of_its_taps() {
    let mut rng = SplitMix::new(48);
    for _ in 0..200 {
        let (h, w) = (1 + rng.below(16), 1 + rng.below(16));
        let kh = 1 + rng.below(h);
        let window = Window {
            kernel: [kh as u8, w as u8],
            stride: [1 + rng.below(3) as u8, 1],
            pads: [0; 4],
        };
        let input = MapShape { c: 3, h, w };
        let Some(out) = out_shape(input, 3, &window) else {
            continue;
        };
        let x = rng.i8s(3 * h * w);
        let expected: Vec<i8> = (0..3)
            .flat_map(|c| (0..out.h).map(move |oy| (c, oy)))
            .map(|(c, oy)| {
                let taps = (0..kh).flat_map(|ky| (0..w).map(move |kx| (ky, kx)));
                let sum: i32 = taps
                    .map(|(ky, kx)| {
                        let iy = oy * usize::from(window.stride[0]) + ky;
                        i32::from(x[c * h * w + iy * w + kx])
                    })
                    .sum();
                kernels::rounded_mean(sum, kh * w)
            })
            .collect();
        let mut portable = vec![0; expected.len()];
        let pool = kernels::PoolOp::new(input, out, window, Some((false, 0)));
        kernels::pool(&x, &mut portable, &pool, kernels::sum_values);
        assert_eq!(portable, expected, "{input:?} {window:?}");
        let mut fast = vec![0; expected.len()];
        average::average_pool(&x, input, &mut fast, out, window, (false, 0));
        assert_eq!(fast, expected, "{input:?} {window:?}");
    }
}
