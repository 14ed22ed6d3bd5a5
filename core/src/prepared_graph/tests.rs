//! The host's graph kernels against the portable graph kernels, for every supported tier, on
//! random cases with odd sizes (channels not a multiple of 4 or 8, odd widths, non-square
//! kernels, asymmetric pads, strides 1–3), random data and requantizers; and whole graphs
//! through [`crate::PreparedModel`] against `Model::infer`. One test per tier through the
//! kit's `kernel_tests!`: a tier this CPU lacks is reported as ignored, never as passed.

use super::*;
use crate::graph::format::Add;
use crate::graph::kernels::{self, PoolOp};
use crate::graph::test_cases::{Channels, ConvCase, clamp, out_shape, random_window};
use crate::model::Model;
use crate::prepared::PreparedModel;
use crate::shape::MapShape;
use crate::test_util::{SplitMix, check_batch};

/// A node's inputs into `out` apart from them, with `scratch`.
fn apart<'x>(inputs: [&'x [i8]; 2], out: &'x mut [i8], scratch: &'x mut [i8]) -> Operands<'x> {
    Operands::Apart {
        inputs,
        out,
        scratch,
    }
}

// The portable tier's graph kernels are the reference, so only the SIMD tiers are checked.
crate::kernel_tests!(simd:
    convs_match_the_portable_conv,
    gemm_nodes_match_the_portable_gemm,
    adds_and_average_pools_match_the_portable_ones,
    graphs_run_like_model_infer_on_every_tier,
);

fn kernels_for(tier: KernelTier, kernel: NodeKernel) -> GraphKernels {
    GraphKernels {
        gemm: gemm_kernel(tier),
        nodes: vec![kernel],
        scratch_len: 0,
    }
}

/// Group-1 convs (im2col + gemm) and grouped or depthwise ones (the AVX2 build of the
/// portable code) against the portable conv.
fn convs_match_the_portable_conv(tier: KernelTier) {
    let mut rng = SplitMix::new(71);
    let mut cases = 0;
    while cases < 400 {
        let window = random_window(&mut rng, 5);
        let groups = [1, 1, 1, 2, 0][rng.below(5)];
        let in_c = if groups == 0 {
            1 + rng.below(19)
        } else {
            groups * (1 + rng.below(13))
        };
        let groups = if groups == 0 { in_c } else { groups };
        let out_c = groups * (1 + rng.below(if groups == 1 { 37 } else { 3 }));
        let input = MapShape {
            c: in_c,
            h: 1 + rng.below(13),
            w: 1 + rng.below(17),
        };
        let Some(out) = out_shape(input, out_c, &window) else {
            continue;
        };
        cases += 1;
        let case = ConvCase::random(&mut rng, (input, out), window, groups);
        let (conv, x) = (case.params(), &case.x);
        let expected = case.portable();
        let prepared = Prepared::Conv(conv);
        let (kernel, scratch_len) = choose(&prepared, tier);
        let expected_kernel = match groups {
            1 => NodeKernel::ConvGemm,
            #[cfg(target_arch = "x86_64")]
            _ => NodeKernel::Avx2,
            #[cfg(not(target_arch = "x86_64"))]
            _ => NodeKernel::Portable,
        };
        assert_eq!(kernel, expected_kernel);
        let offset = rng.below(4);
        let mut scratch = vec![0x55_i8; offset + scratch_len];
        let mut got = vec![0x66; expected.len() + 1];
        let n = expected.len();
        let operands = apart([x, x], &mut got[..n], &mut scratch[offset..]);
        let took = kernels_for(tier, kernel).run(0, &prepared, operands);
        assert_eq!(took, kernel != NodeKernel::Portable);
        if took {
            assert_eq!(
                got[..n],
                expected,
                "{tier}: {input:?} -> {out:?} {window:?} g{groups}"
            );
        }
        assert_eq!(got[n], 0x66, "wrote past the output");
    }
}

fn gemm_nodes_match_the_portable_gemm(tier: KernelTier) {
    let mut rng = SplitMix::new(72);
    for _ in 0..300 {
        let (k, rows) = (1 + rng.below(300), 1 + rng.below(70));
        let x = rng.i8s(k);
        let weights = rng.weights(rows * k);
        let channels = Channels::random(&mut rng, rows);
        let data = channels.data(rng.next() as i8, clamp(&mut rng));
        let mut expected = vec![0; rows];
        kernels::gemm(&x, &mut expected, &weights, &data);
        let prepared = Prepared::Gemm {
            weights: &weights,
            channels: data,
        };
        assert_eq!(choose(&prepared, tier).0, NodeKernel::Gemm);
        let mut got = vec![0x66; rows];
        assert!(kernels_for(tier, NodeKernel::Gemm).run(
            0,
            &prepared,
            apart([&x, &x], &mut got, &mut [])
        ));
        assert_eq!(got, expected, "{tier}: {rows} × {k}");
    }
}

/// Add (also in place) and the average pools: on x86-64 the AVX2 build of the portable code.
fn adds_and_average_pools_match_the_portable_ones(tier: KernelTier) {
    let mut rng = SplitMix::new(73);
    for case in 0..300 {
        let n = 1 + rng.below(700);
        let (a, b) = (rng.i8s(n), rng.i8s(n));
        let multiplier = |rng: &mut SplitMix| (1 << 30) + rng.below(1 << 30) as i32;
        let params = Add {
            left_shift: 20,
            multipliers: [
                multiplier(&mut rng),
                multiplier(&mut rng),
                multiplier(&mut rng),
            ],
            shifts: [
                -(rng.below(4) as i8),
                -(rng.below(4) as i8),
                -(14 + rng.below(8) as i8),
            ],
            clamp: clamp(&mut rng),
        };
        let op = kernels::AddOp {
            params,
            zero_points: [rng.next() as i8, rng.next() as i8, rng.next() as i8],
        };
        let mut expected = vec![0; n];
        kernels::add(&a, &b, &mut expected, &op);
        let prepared = Prepared::Add(op);
        let (kernel, _) = choose(&prepared, tier);
        let host = kernels_for(tier, kernel);
        let mut got = vec![0x66; n];
        if host.run(0, &prepared, apart([&a, &b], &mut got, &mut [])) {
            assert_eq!(got, expected, "{tier}: add of {n}");
        }
        for first in [true, false] {
            let mut inout = if first { a.clone() } else { b.clone() };
            let other = if first { &b } else { &a };
            let over = Operands::AddOver {
                inout: &mut inout,
                other,
                first,
            };
            if host.run(0, &prepared, over) {
                assert_eq!(inout, expected, "{tier}: in-place add of {n}");
            }
        }

        let window = random_window(&mut rng, 7);
        let c = 1 + rng.below(9);
        let input = MapShape {
            c,
            h: 1 + rng.below(15),
            w: 1 + rng.below(19),
        };
        let x = rng.i8s(c * input.plane());
        let average = Some((case % 2 == 0, rng.next() as i8));
        if let Some(out) = out_shape(input, c, &window) {
            let mut expected = vec![0; c * out.plane()];
            let pool = PoolOp {
                in_shape: input,
                out_shape: out,
                window,
                average,
            };
            kernels::pool(&x, &mut expected, &pool, kernels::sum_values);
            let prepared = Prepared::Pool {
                in_shape: input,
                out_shape: out,
                window,
                average,
            };
            let host = kernels_for(tier, choose(&prepared, tier).0);
            let mut got = vec![0x66; expected.len()];
            if host.run(0, &prepared, apart([&x, &x], &mut got, &mut [])) {
                assert_eq!(got, expected, "{tier}: avgpool {input:?} {window:?}");
            }
        }
        let mut expected = vec![0; c];
        kernels::global_average(&x, input, &mut expected);
        let prepared = Prepared::GlobalAverage { in_shape: input };
        let host = kernels_for(tier, choose(&prepared, tier).0);
        let mut got = vec![0x66; c];
        if host.run(0, &prepared, apart([&x, &x], &mut got, &mut [])) {
            assert_eq!(got, expected, "{tier}: global average {input:?}");
        }
    }
}

/// The graph fixture (every node kind, an in-place Add both ways) through the prepared model
/// of every tier, against `Model::infer`, in batches.
fn graphs_run_like_model_infer_on_every_tier(tier: KernelTier) {
    use crate::graph::tests::{blob, fixture, in_place_fixtures};
    let (header, data) = fixture();
    let [over_second, over_first] = in_place_fixtures(&header);
    let mut rng = SplitMix::new(74);
    for h in [header, over_second, over_first] {
        let bytes = blob(&h, &data);
        let model = Model::from_bytes(&bytes).unwrap();
        let prepared = PreparedModel::with_tier(model.clone(), tier).unwrap();
        let kernels = prepared.graph_kernels().unwrap().kernels();
        assert_eq!(kernels[0], NodeKernel::ConvGemm);
        assert_eq!(kernels[6], NodeKernel::Gemm);
        let count = 1 + rng.below(5);
        let mut arena = vec![0x5A; prepared.batch_arena_len(count).unwrap()];
        let mut one = vec![0; model.arena_len()];
        check_batch(
            &mut rng,
            (count, 25, 3),
            |images, logits| prepared.infer_batch(images, &mut arena, logits),
            |image| model.infer(image, &mut one).unwrap().as_slice().to_vec(),
            &tier,
        );
    }
}
