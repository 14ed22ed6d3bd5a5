//! Proves on a Cortex-M4 (issue 7) that the DSP fast paths give exactly the portable code's
//! results: `Conv2dOp::run` (SMLAD over int16 patches, the asm requantizer) against
//! `Conv2dOp::run_portable`, and `LinearOp::run` against `LinearOp::run_portable`, on random
//! shapes (odd and even channel counts, kernels 1/3/5, stride 1–2, padding 0–2, fused pools,
//! the seed model's own layers, long Linear inputs, misaligned weights) with
//! random or extreme data and requantizers (including left shifts, which the fast conv path
//! declines). Each path gets exactly the scratch its `scratch_len` asks for, starting at a
//! varying misalignment, so a path that wrote past its scratch or miscounted its alignment
//! would corrupt its own output or fail; the Linear path also runs in a shorter scratch, where
//! it unpacks its input in blocks (an arena sized for the streaming schedule). Random
//! Conv2d → Conv2d pairs also run streamed (`qcnn_core::dsp_stream_pair`: the producer's rows
//! written as int8 into the consumer's ring) against both layers on whole maps with the
//! portable code. Its layers come from core's testing kit (`qcnn_core::test_util::cases`, the
//! generators core's own kernel tests use) and are built through the ops' checked constructors
//! (`Conv2dOp::new`, `LinearOp::new`, `Channels::new`): a case the constructors refuse fails
//! the check. Prints a summary line per group; exits non-zero on the first mismatch. Run by
//! `run-tests.sh` under qemu mps2-an386.
#![no_std]
#![no_main]
#![deny(unsafe_code)]

use cortex_m_rt::entry;
use cortex_m_semihosting::debug::{self, EXIT_FAILURE, EXIT_SUCCESS};
use cortex_m_semihosting::hprintln;
use panic_semihosting as _;
use qcnn_core::graph::conv_params::ConvParams;
use qcnn_core::graph::fast;
use qcnn_core::graph::format::Window;
use qcnn_core::graph::kernels::{self as graph_kernels, ChannelData};
use qcnn_core::ops::Channels;
use qcnn_core::ops::conv2d::Conv2dOp;
use qcnn_core::ops::conv2d_op::ConvWindow;
use qcnn_core::ops::linear::LinearOp;
use qcnn_core::ops::maxpool2d::PoolWindow;
use qcnn_core::test_util::SplitMix as Rng;
use qcnn_core::test_util::cases::{ConvLayer, ConvRanges, out_shape};
use qcnn_core::{Kernels, MapShape};
// The vector table's interrupt part (src/interrupts.rs) lives in the firmware's library.
use qcnn_firmware as _;

const CONV_CASES: usize = 400;
/// Random cases of each of the graph's fast kernels (issue 12): patch conv (also with a
/// fused residual Add), depthwise, Add (and in place), average pools, Gemm.
const GRAPH_CASES: usize = 150;
const LINEAR_CASES: usize = 300;
/// Random Conv2d → Conv2d pairs streamed on the M4 (`qcnn_core::dsp_stream_pair`).
const PAIR_CASES: usize = 150;
const MAX_CHANNELS: usize = 40;
/// Per-channel slots: the graph cases include ResNet-8's 64-channel convolutions.
const CHANNEL_SLOTS: usize = 64;
/// Longest Linear input tried.
const MAX_FEATURES: usize = 3600;
/// Scratch for any path: the most the DSP conv can ask for is about 6.9 KB, the DSP
/// Linear 2 bytes a feature, a graph fast kernel `fast::MAX_SCRATCH` (a case asking more
/// is skipped, as the loader runs such a node on the portable code); plus 3 bytes of
/// misalignment.
const MAX_SCRATCH: usize = max(2 * MAX_FEATURES, fast::MAX_SCRATCH) + 8;

const fn max(a: usize, b: usize) -> usize {
    if a > b { a } else { b }
}
const MAX_INPUT: usize = 8 * 28 * 28;
const MAX_WEIGHTS: usize = 40 * 4096 + 4;

/// Word-aligned weights, so that the Linear fast path (LDRD) can take them.
#[repr(C, align(4))]
struct Aligned([i8; MAX_WEIGHTS]);

/// Per-channel bias, multiplier and shift bytes, as a blob stores them.
struct ChannelBytes {
    bias: [[u8; 4]; CHANNEL_SLOTS],
    multiplier: [[u8; 4]; CHANNEL_SLOTS],
    shift: [i8; CHANNEL_SLOTS],
}

impl ChannelBytes {
    /// Random channels (the testing kit's requantizers); one case in four has left shifts
    /// (non-monotone requantizers). `None` only if `n` exceeds the slots.
    fn random(&mut self, rng: &mut Rng, n: usize, k: usize) -> Option<Channels<'_>> {
        let shifts = match (rng.below(4) == 0, k > 200) {
            (true, _) => 0..3,
            // Longer sums need larger right shifts to stay spread over the int8 range.
            (false, true) => -17..-11,
            (false, false) => -13..-7,
        };
        for o in 0..n.min(CHANNEL_SLOTS) {
            let (bias, multiplier, shift) = rng.requantizer(shifts.clone());
            self.bias[o] = bias.to_le_bytes();
            self.multiplier[o] = multiplier.to_le_bytes();
            self.shift[o] = shift;
        }
        Channels::new(
            self.bias.get(..n)?,
            self.multiplier.get(..n)?,
            self.shift.get(..n)?,
            rng.next() as i8,
            rng.below(2) == 0,
        )
    }
}

/// The random convolutions' ranges: odd and even channel counts, kernels 1/3/5, stride 1–2,
/// padding 0–2, any fused pool.
const CONV_RANGES: ConvRanges = ConvRanges {
    kernels: &[1, 3, 5],
    max_stride: 2,
    max_padding: 2,
    odd_pools: true,
    max_in_channels: 8,
    extra_rows: 14,
    extra_columns: 14,
    max_out_channels: MAX_CHANNELS,
};

/// A case the check could not set up, which must not pass silently.
fn refused(layer: &'static str, case: usize) -> Mismatch {
    Mismatch {
        layer,
        case,
        at: 0,
        fast: 0,
        portable: 0,
    }
}

#[entry]
fn main() -> ! {
    static mut WEIGHTS: Aligned = Aligned([0; MAX_WEIGHTS]);
    static mut INPUT: [i8; MAX_INPUT] = [0; MAX_INPUT];
    static mut FAST: [i8; MAX_INPUT] = [0; MAX_INPUT];
    static mut PORTABLE: [i8; MAX_INPUT] = [0; MAX_INPUT];
    static mut SCRATCH: [i8; MAX_SCRATCH] = [0; MAX_SCRATCH];
    static mut CHANNELS: ChannelBytes = ChannelBytes {
        bias: [[0; 4]; CHANNEL_SLOTS],
        multiplier: [[0; 4]; CHANNEL_SLOTS],
        shift: [0; CHANNEL_SLOTS],
    };

    let mut buffers = Buffers {
        weights: &mut WEIGHTS.0,
        input: INPUT,
        fast: FAST,
        portable: PORTABLE,
        scratch: SCRATCH,
        channels: CHANNELS,
    };
    let checked = check(&mut buffers)
        .and_then(|o| Ok((o, check_pairs(&mut buffers)?)))
        .and_then(|(o, p)| Ok((o, p, check_graph(&mut buffers)?)));
    let status = match checked {
        Ok((outputs, pair_outputs, graph_outputs)) => {
            hprintln!(
                "dsp_check: {} conv and {} linear random cases ({} outputs): DSP paths identical to the portable code",
                CONV_CASES,
                LINEAR_CASES,
                outputs
            );
            hprintln!(
                "dsp_check: {} random conv pairs streamed (the producer's int8 rows straight into the consumer's ring; {} outputs): identical to the portable whole-map code",
                PAIR_CASES,
                pair_outputs
            );
            hprintln!(
                "dsp_check: graph kernels, {} random cases each of patch conv (also with a fused residual Add; every third pointwise, its fused Add too), depthwise conv (also one-channel stems), Add (and in place), average and max pools, Gemm ({} outputs): identical to the portable code",
                GRAPH_CASES,
                graph_outputs
            );
            EXIT_SUCCESS
        }
        Err(case) => {
            hprintln!("dsp_check: FAIL: {}", case);
            EXIT_FAILURE
        }
    };
    debug::exit(status);
    loop {
        cortex_m::asm::wfi();
    }
}

struct Buffers<'a> {
    weights: &'a mut [i8],
    input: &'a mut [i8],
    fast: &'a mut [i8],
    portable: &'a mut [i8],
    scratch: &'a mut [i8],
    channels: &'a mut ChannelBytes,
}

/// Exactly `len` bytes of scratch, starting `case mod 4` bytes into the buffer.
fn scratch(buffer: &mut [i8], case: usize, len: usize) -> &mut [i8] {
    let skew = case % 4;
    &mut buffer[skew..skew + len]
}

/// Runs every case; the outputs compared, or the first mismatching case.
fn check(b: &mut Buffers<'_>) -> Result<usize, Mismatch> {
    let mut rng = Rng::new(0x5EED);
    let mut outputs = 0;
    for case in 0..CONV_CASES {
        let extreme = [Some(-128), Some(127)].get(case % 10).copied().flatten();
        // The seed model's two convolutions first, then random ones.
        let seed = |c, out_channels, pool| ConvLayer {
            input: MapShape { c, h: 28, w: 28 },
            window: ConvWindow {
                kernel: 3,
                stride: 1,
                padding: 1,
                pool,
            },
            out_channels,
            input_zero_point: -128,
        };
        let layer = match case {
            0 => seed(1, 8, PoolWindow::IDENTITY),
            1 => seed(
                8,
                16,
                PoolWindow {
                    kernel: 2,
                    stride: 2,
                },
            ),
            _ => rng.conv_layer(&CONV_RANGES),
        };
        let Some(output) = layer.output() else {
            return Err(refused("conv (no output)", case));
        };
        let (in_len, out_len) = (
            layer.input.c * layer.input.plane(),
            output.c * output.plane(),
        );
        let weights_len = layer.weights_len();
        if in_len > b.input.len() || out_len > b.fast.len() || weights_len > b.weights.len() {
            continue;
        }
        let weights = &mut b.weights[..weights_len];
        for v in weights.iter_mut() {
            *v = extreme.unwrap_or(rng.weight());
        }
        rng.fill(&mut b.input[..in_len], extreme);
        let k = layer.input.c * layer.window.kernel * layer.window.kernel;
        let Some(channels) = b.channels.random(&mut rng, output.c, k) else {
            return Err(refused("conv (channels)", case));
        };
        let zero_point = layer.input_zero_point;
        let Ok(op) = Conv2dOp::new(layer.input, layer.window, weights, channels, zero_point) else {
            return Err(refused("conv (constructor refused)", case));
        };
        let x = &b.input[..in_len];
        let dsp_scratch = op.scratch_len(Kernels::CortexM4Dsp);
        let portable_scratch = op.scratch_len(Kernels::Portable);
        if dsp_scratch.max(portable_scratch) + 3 > b.scratch.len() {
            continue;
        }
        op.run(
            x,
            &mut b.fast[..out_len],
            scratch(b.scratch, case, dsp_scratch),
        );
        op.run_portable(
            x,
            &mut b.portable[..out_len],
            scratch(b.scratch, case + 1, portable_scratch),
        );
        compare("conv", case, &b.fast[..out_len], &b.portable[..out_len])?;
        outputs += out_len;
    }
    for case in 0..LINEAR_CASES {
        let extreme = [Some(-128), Some(127)].get(case % 10).copied().flatten();
        let (k, n) = match case {
            0 => (3136, 256),
            1 => (256, 10),
            _ if case % 4 == 0 => (32 * (rng.below(MAX_FEATURES / 32) + 1), rng.below(9) + 1),
            _ => (rng.below(MAX_FEATURES) + 1, rng.below(MAX_CHANNELS) + 1),
        };
        // Every fifth case starts the weights one byte off their alignment.
        let skew = usize::from(case % 5 == 4);
        if skew + k * n > b.weights.len() {
            continue;
        }
        let weights = &mut b.weights[skew..skew + k * n];
        for v in weights.iter_mut() {
            *v = extreme.unwrap_or(rng.weight());
        }
        rng.fill(&mut b.input[..k], extreme);
        let Some(channels) = b.channels.random(&mut rng, n, k) else {
            return Err(refused("linear (channels)", case));
        };
        let Ok(op) = LinearOp::new(k, weights, channels) else {
            return Err(refused("linear (constructor refused)", case));
        };
        let dsp_scratch = op.scratch_len(Kernels::CortexM4Dsp);
        op.run(
            &b.input[..k],
            &mut b.fast[..n],
            scratch(b.scratch, case, dsp_scratch),
        );
        op.run_portable(&b.input[..k], &mut b.portable[..n]);
        compare("linear", case, &b.fast[..n], &b.portable[..n])?;
        outputs += n;
        // A shorter scratch (an arena below the fastest schedule's): the input unpacked in
        // blocks of 32 to 128 features, the sums kept per output.
        let blocked = (4 * (n + 16 * (rng.below(4) + 1)) + 3).min(dsp_scratch.saturating_sub(1));
        if qcnn_core::ops::dsp_linear_blocked(
            &op,
            &b.input[..k],
            &mut b.fast[..n],
            scratch(b.scratch, case + 1, blocked),
        ) {
            compare("linear (blocked)", case, &b.fast[..n], &b.portable[..n])?;
            outputs += n;
        }
    }
    Ok(outputs)
}

/// Random Conv2d → Conv2d pairs (a 3×3, stride-1 producer, as the streamed M4 path takes,
/// and any consumer the DSP kernel takes: odd channel counts and widths, kernels 1/3/5,
/// strides 1–2, pads 0–2, fused pools) streamed against the portable kernels on whole maps.
fn check_pairs(b: &mut Buffers<'_>) -> Result<usize, Mismatch> {
    let mut rng = Rng::new(0xB0A7);
    let mut outputs = 0;
    let mut case = 0;
    let mut tries = 0;
    while case < PAIR_CASES && tries < 20 * PAIR_CASES {
        tries += 1;
        // The seed model's pair first.
        let (c, mid, o, h, w, padding) = if tries == 1 {
            (1, 8, 16, 28, 28, 1)
        } else {
            let (h, w) = (rng.below(16) + 5, rng.below(20) + 5);
            (
                rng.below(4) + 1,
                rng.below(9) + 1,
                rng.below(24) + 1,
                h,
                w,
                rng.below(2),
            )
        };
        let (kernel, stride, pad2) = if tries == 1 {
            (3, 1, 1)
        } else {
            ([1, 3, 5][rng.below(3)], rng.below(2) + 1, rng.below(3))
        };
        let pool = if tries == 1 || rng.below(2) == 0 {
            PoolWindow {
                kernel: 2,
                stride: 2,
            }
        } else {
            PoolWindow::IDENTITY
        };
        let producer_window = ConvWindow {
            kernel: 3,
            stride: 1,
            padding,
            pool: PoolWindow::IDENTITY,
        };
        let consumer_window = ConvWindow {
            kernel,
            stride,
            padding: pad2,
            pool,
        };
        let input = MapShape { c, h, w };
        let Ok(middle) = producer_window.output(input, mid) else {
            continue;
        };
        let Ok(out) = consumer_window.output(middle.shape, o) else {
            continue;
        };
        let (in_len, w1, w2) = (c * h * w, middle.weights_len, out.weights_len);
        let (mid_len, out_len) = (mid * middle.shape.plane(), o * out.shape.plane());
        if mid_len > b.fast.len() || out_len > b.portable.len() || w1 + w2 > b.weights.len() {
            continue;
        }
        let extreme = [Some(-128), Some(127)].get(case % 10).copied().flatten();
        for v in b.weights[..w1 + w2].iter_mut() {
            *v = extreme.unwrap_or(rng.weight());
        }
        rng.fill(&mut b.input[..in_len], extreme);
        let (weights1, weights2) = b.weights[..w1 + w2].split_at(w1);
        // One draw for both layers' channels (the producer's first): a consumer with left
        // shifts is declined by the DSP kernel, and the case skipped.
        let Some(both) = b.channels.random(&mut rng, mid + o, mid * kernel * kernel) else {
            return Err(refused("streamed pair (channels)", case));
        };
        let (Some(first), Some(second)) = (both.slice(0..mid), both.slice(mid..mid + o)) else {
            return Err(refused("streamed pair (channels)", case));
        };
        let (Ok(producer), Ok(consumer)) = (
            Conv2dOp::new(input, producer_window, weights1, first, rng.next() as i8),
            Conv2dOp::new(
                middle.shape,
                consumer_window,
                weights2,
                second,
                rng.next() as i8,
            ),
        ) else {
            return Err(refused("streamed pair (constructor refused)", case));
        };
        let Some(between) = qcnn_core::dsp_pair_between_len(&producer, &consumer) else {
            continue;
        };
        if between + 3 > b.scratch.len() {
            continue;
        }
        let x = &b.input[..in_len];
        // The reference: both layers on whole maps with the portable code (no scratch: the
        // direct loops).
        producer.run_portable(x, &mut b.fast[..mid_len], &mut []);
        consumer.run_portable(&b.fast[..mid_len], &mut b.portable[..out_len], &mut []);
        if !qcnn_core::dsp_stream_pair(
            &producer,
            &consumer,
            x,
            &mut b.fast[..out_len],
            scratch(b.scratch, case, between),
        ) {
            continue;
        }
        compare(
            "streamed pair",
            case,
            &b.fast[..out_len],
            &b.portable[..out_len],
        )?;
        outputs += out_len;
        case += 1;
    }
    if case < PAIR_CASES {
        // Too few cases ran (the DSP path declined the rest): a check that checks little fails.
        return Err(refused("streamed pair (too few cases ran)", case));
    }
    Ok(outputs)
}

/// The graph's channels: the blob's bytes as `ChannelData`, with a random clamp.
fn graph_channels<'c>(
    bytes: &'c mut ChannelBytes,
    rng: &mut Rng,
    n: usize,
    k: usize,
) -> Option<ChannelData<'c>> {
    let zero_point = bytes.random(rng, n, k)?.zero_point();
    // Graph blobs never hold left shifts: the quantize tool writes right shifts for int8 layers.
    for shift in bytes.shift.get_mut(..n)? {
        *shift = -shift.abs().max(1);
    }
    Some(ChannelData {
        bias: &bytes.bias[..n],
        multiplier: &bytes.multiplier[..n],
        shift: &bytes.shift[..n],
        zero_point,
        clamp: rng.clamp(),
    })
}

/// A random window up to `max_side` a side (the testing kit's): strides 1–2, pads below
/// the kernel.
fn random_window(rng: &mut Rng, max_side: usize) -> Window {
    rng.window(max_side, 2)
}

/// The graph's fast kernels (`qcnn_core::graph::fast`) against its portable ones: the
/// ResNet-8, DS-CNN and MobileNet layer shapes first, then random ones with odd sizes.
fn check_graph(b: &mut Buffers<'_>) -> Result<usize, Mismatch> {
    let mut rng = Rng::new(0x6EA9);
    let mut outputs = 0;
    for case in 0..2 * GRAPH_CASES {
        let depthwise = case % 2 == 1;
        let extreme = [Some(-128), Some(127)]
            .get(case % 14 / 2)
            .copied()
            .flatten();
        let square = |k: u8, s: u8, p: u8| Window {
            kernel: [k, k],
            stride: [s, s],
            pads: [p; 4],
        };
        let ds_cnn_stem = Window {
            kernel: [5, 3],
            stride: [2, 2],
            pads: [2, 1, 2, 1],
        };
        // (c, h, w, output channels, window)
        let (c, h, w, o, window) = match case {
            0 => (1, 28, 28, 16, square(3, 1, 1)),
            2 => (64, 7, 7, 64, square(3, 1, 1)),
            4 => (16, 14, 14, 32, square(1, 2, 0)),
            6 => (1, 28, 28, 40, ds_cnn_stem),
            8 => (40, 6, 6, 40, square(1, 1, 0)),
            // A DS-CNN pointwise layer's 64 input channels (16 groups, an even count).
            10 => (64, 9, 9, 40, square(1, 1, 0)),
            1 => (40, 14, 14, 40, square(3, 1, 1)),
            3 => (32, 7, 7, 32, square(3, 2, 1)),
            // The one-channel stems (the depthwise kernel's `stem` path): DS-CNN's, MobileNet's.
            5 => (1, 28, 28, 64, ds_cnn_stem),
            7 => (1, 28, 28, 8, square(3, 2, 1)),
            // The depthwise kernel's small planes (MobileNet's 4×4 stride-2 outputs, 2×2 and
            // 1×1 maps) and a 5×3 stem at stride 1 with an odd output width (its rows one at
            // a time).
            9 => (64, 7, 7, 64, square(3, 2, 1)),
            11 => (16, 2, 2, 16, square(3, 1, 1)),
            13 => (8, 1, 1, 8, square(3, 2, 1)),
            15 => (
                1,
                9,
                13,
                5,
                Window {
                    kernel: [5, 3],
                    stride: [1, 1],
                    pads: [2, 1, 2, 1],
                },
            ),
            // 5×5 depthwise (the variants' mobilenet_dw5 and ds_cnn_narrow) at stride 1 and 2,
            // even and odd output widths (odd: its rows one at a time).
            17 => (16, 14, 14, 16, square(5, 1, 2)),
            19 => (8, 9, 13, 8, square(5, 1, 2)),
            21 => (8, 11, 13, 8, square(5, 2, 2)),
            23 => (32, 14, 14, 32, square(5, 2, 2)),
            // Random: every fifth a one-channel stem, every third up to 3 outputs per channel.
            _ if depthwise => {
                let c = if case % 10 == 9 {
                    1
                } else {
                    rng.below(MAX_CHANNELS) + 1
                };
                let per_channel = match (c, case % 6) {
                    (1, _) => rng.below(MAX_CHANNELS) + 1,
                    (_, 3) => (rng.below(3) + 1).min(CHANNEL_SLOTS / c),
                    _ => 1,
                };
                (
                    c,
                    rng.below(14) + 1,
                    rng.below(14) + 1,
                    c * per_channel,
                    random_window(&mut rng, 5),
                )
            }
            // Every third group-1 case pointwise (1×1, any stride: its own kernel).
            _ if case % 6 == 0 => (
                rng.below(70) + 1,
                rng.below(12) + 1,
                rng.below(12) + 1,
                rng.below(MAX_CHANNELS) + 1,
                {
                    let s = [rng.below(3) as u8 + 1, rng.below(3) as u8 + 1];
                    Window {
                        kernel: [1, 1],
                        stride: s,
                        pads: [0; 4],
                    }
                },
            ),
            _ => (
                rng.below(24) + 1,
                rng.below(12) + 1,
                rng.below(12) + 1,
                rng.below(MAX_CHANNELS) + 1,
                random_window(&mut rng, 5),
            ),
        };
        let pointwise = !depthwise && fast::pointwise::takes(window, 1);
        let input = MapShape { c, h, w };
        let Some(output) = out_shape(input, o, &window) else {
            continue;
        };
        let taps = usize::from(window.kernel[0]) * usize::from(window.kernel[1]);
        let per_output = if depthwise { taps } else { c * taps };
        let (in_len, out_len, weights_len) = (c * h * w, o * output.plane(), o * per_output);
        let scratch_len = if depthwise {
            fast::depthwise::scratch_bytes(input, o, window)
        } else if pointwise {
            fast::pointwise::scratch_bytes(c)
        } else {
            fast::patch_conv::scratch_bytes(per_output, window, o)
        };
        if in_len > b.input.len()
            || out_len > b.fast.len()
            || 1 + weights_len > b.weights.len()
            || scratch_len + 3 > b.scratch.len()
        {
            continue;
        }
        // Weights start one byte off a word every other case: the fast conv reads them
        // unaligned from the blob.
        let skew = case / 2 % 2;
        let weights = &mut b.weights[skew..skew + weights_len];
        for v in weights.iter_mut() {
            *v = extreme.unwrap_or(rng.weight());
        }
        rng.fill(&mut b.input[..in_len], extreme);
        let zero_point = rng.next() as i8;
        let weights = &b.weights[skew..skew + weights_len];
        let Some(channels) = graph_channels(b.channels, &mut rng, o, per_output) else {
            return Err(refused("graph channels", case));
        };
        let x = &b.input[..in_len];
        let node = ConvParams {
            in_shape: input,
            out_shape: output,
            window,
            groups: if depthwise { c as u16 } else { 1 },
            input_zero_point: zero_point,
            weights,
            channels,
        };
        graph_kernels::conv(&node, x, &mut b.portable[..out_len]);
        let ran = if depthwise {
            fast::depthwise::conv(
                &node,
                x,
                &mut b.fast[..out_len],
                scratch(b.scratch, case, scratch_len),
            )
        } else if pointwise {
            fast::pointwise::conv(
                &node,
                x,
                &mut b.fast[..out_len],
                scratch(b.scratch, case, scratch_len),
            )
        } else {
            fast::patch_conv::conv(
                &node,
                x,
                &mut b.fast[..out_len],
                scratch(b.scratch, case, scratch_len),
            )
        };
        let name = if depthwise {
            "depthwise"
        } else if pointwise {
            "pointwise conv"
        } else {
            "patch conv"
        };
        outputs += ran_and_matches(name, case, ran, &b.fast[..out_len], &b.portable[..out_len])?;
        // A pointwise conv at stride 1 written over its own input (a node in place), every
        // other case with the spare bytes a last block of fewer than four pixels goes to.
        let tensor_len = in_len.max(out_len);
        let spare = if case % 2 == 0 { 4 * o } else { 0 };
        let fits = tensor_len <= b.fast.len() && scratch_len + spare + 3 <= b.scratch.len();
        if pointwise && window.stride == [1, 1] && fits {
            b.fast[..in_len].copy_from_slice(x);
            let ran = fast::pointwise::conv_in_place(
                &node,
                &mut b.fast[..tensor_len],
                scratch(b.scratch, case, scratch_len + spare),
            );
            let (fast, portable) = (&b.fast[..out_len], &b.portable[..out_len]);
            outputs += ran_and_matches("pointwise conv in place", case, ran, fast, portable)?;
        }
        let add_scratch_len = if pointwise {
            fast::pointwise::conv_add_scratch_bytes(c, o)
        } else {
            fast::patch_conv::conv_add_scratch_bytes(per_output, window, o)
        };
        if depthwise || add_scratch_len + 3 > b.scratch.len() {
            continue;
        }
        // The same conv with a residual Add fused (ResNet-8's blocks): both paths start from
        // the same random residual and add into it.
        let residual = graph_kernels::AddOp {
            params: rng.add_params(),
            zero_points: [channels.zero_point, rng.next() as i8, rng.next() as i8],
        };
        rng.fill(&mut b.portable[..out_len], extreme);
        b.fast[..out_len].copy_from_slice(&b.portable[..out_len]);
        graph_kernels::conv_add(&node, x, &mut b.portable[..out_len], &residual);
        let s = scratch(b.scratch, case + 1, add_scratch_len);
        let out = &mut b.fast[..out_len];
        let ran = if pointwise {
            fast::pointwise::conv_add(&node, x, out, &residual, s)
        } else {
            fast::patch_conv::conv_add(&node, x, out, &residual, s)
        };
        let name = if pointwise {
            "pointwise conv + add"
        } else {
            "patch conv + add"
        };
        outputs += ran_and_matches(name, case, ran, &b.fast[..out_len], &b.portable[..out_len])?;
    }
    for case in 0..GRAPH_CASES {
        // Add: two random tensors, odd lengths, ResNet-8's last first.
        let n = match case {
            0 => 64 * 7 * 7,
            _ => rng.below(MAX_INPUT / 2) + 1,
        };
        let op = graph_kernels::AddOp {
            params: rng.add_params(),
            zero_points: [rng.next() as i8, rng.next() as i8, rng.next() as i8],
        };
        rng.fill(&mut b.input[..2 * n], None);
        let (x, y) = b.input[..2 * n].split_at(n);
        graph_kernels::add(x, y, &mut b.portable[..n], &op);
        let s = scratch(b.scratch, case, fast::add::SCRATCH_BYTES);
        fast::add::add(x, y, &mut b.fast[..n], &op, s);
        compare("add", case, &b.fast[..n], &b.portable[..n])?;
        // In place over the first input, then over the second.
        let first = case % 2 == 0;
        b.fast[..n].copy_from_slice(if first { x } else { y });
        let other = if first { y } else { x };
        let s = scratch(b.scratch, case + 1, fast::add::SCRATCH_BYTES);
        fast::add::add_in_place(&mut b.fast[..n], other, first, &op, s);
        compare("add in place", case, &b.fast[..n], &b.portable[..n])?;
        outputs += 2 * n;

        // Average pools: DS-CNN's 14×14 window and a global average first.
        let window = match case {
            0 => Window {
                kernel: [14, 14],
                stride: [1, 1],
                pads: [0; 4],
            },
            _ => random_window(&mut rng, 15),
        };
        let input = MapShape {
            c: rng.below(8) + 1,
            h: rng.below(28) + 1,
            w: rng.below(28) + 1,
        };
        let input = if case == 0 {
            MapShape {
                c: 32,
                h: 14,
                w: 14,
            }
        } else {
            input
        };
        let Some(output) = out_shape(input, input.c, &window) else {
            continue;
        };
        let (in_len, out_len) = (input.c * input.plane(), input.c * output.plane());
        if in_len > b.input.len() || out_len > b.fast.len() {
            continue;
        }
        rng.fill(
            &mut b.input[..in_len],
            [Some(-128), Some(127)].get(case % 12).copied().flatten(),
        );
        let x = &b.input[..in_len];
        let average = (rng.below(2) == 0, rng.next() as i8);
        let mut pool = graph_kernels::PoolOp {
            in_shape: input,
            out_shape: output,
            window,
            average: Some(average),
        };
        let portable = &mut b.portable[..out_len];
        graph_kernels::pool(x, portable, &pool, graph_kernels::sum_values);
        fast::average::average_pool(x, input, &mut b.fast[..out_len], output, window, average);
        compare(
            "average pool",
            case,
            &b.fast[..out_len],
            &b.portable[..out_len],
        )?;
        pool.average = None;
        let portable = &mut b.portable[..out_len];
        graph_kernels::pool(x, portable, &pool, graph_kernels::sum_values);
        let scratch_len = fast::max_pool::scratch_bytes(input.w, window);
        let ran = fast::max_pool::max_pool(
            x,
            input,
            &mut b.fast[..out_len],
            output,
            window,
            scratch(b.scratch, case, scratch_len),
        );
        outputs += ran_and_matches(
            "max pool",
            case,
            ran,
            &b.fast[..out_len],
            &b.portable[..out_len],
        )?;
        graph_kernels::global_average(x, input, &mut b.portable[..input.c]);
        fast::average::global_average(x, input, &mut b.fast[..input.c]);
        compare(
            "global average",
            case,
            &b.fast[..input.c],
            &b.portable[..input.c],
        )?;
        outputs += out_len + input.c;
    }
    Ok(outputs + check_gemm(b)?)
}

/// The graph's Gemm with the Linear rows (`fast::gemm`) against the portable Gemm: ResNet-8's
/// and DS-CNN's 64 → 10 and MobileNet's 128 → 10 first, then random lengths (every third
/// whole words of at least 32, which the rows take; the others declined), every fifth case's
/// weights a byte off their word (declined). A case the rows should take and decline fails.
fn check_gemm(b: &mut Buffers<'_>) -> Result<usize, Mismatch> {
    let mut rng = Rng::new(0x6E33);
    let mut outputs = 0;
    for case in 0..GRAPH_CASES {
        let (k, n) = match case {
            0 => (64, 10),
            1 => (128, 10),
            _ if case % 3 == 0 => (4 * (rng.below(250) + 8), rng.below(CHANNEL_SLOTS) + 1),
            _ => (rng.below(1000) + 1, rng.below(CHANNEL_SLOTS) + 1),
        };
        let skew = usize::from(case % 5 == 4);
        if skew + k * n > b.weights.len() || fast::gemm::scratch_bytes(k) + 3 > b.scratch.len() {
            continue;
        }
        let extreme = [Some(-128), Some(127)].get(case % 10).copied().flatten();
        for v in &mut b.weights[skew..skew + k * n] {
            *v = extreme.unwrap_or(rng.weight());
        }
        rng.fill(&mut b.input[..k], extreme);
        let Some(channels) = graph_channels(b.channels, &mut rng, n, k) else {
            return Err(refused("gemm channels", case));
        };
        let (x, weights) = (&b.input[..k], &b.weights[skew..skew + k * n]);
        graph_kernels::gemm(x, &mut b.portable[..n], weights, &channels);
        let s = scratch(b.scratch, case, fast::gemm::scratch_bytes(k));
        let ran = fast::gemm::gemm(x, &mut b.fast[..n], weights, &channels, s);
        if ran != (fast::gemm::takes(k) && skew == 0) {
            return Err(refused("gemm (rows took or declined the wrong case)", case));
        }
        if ran {
            compare("gemm", case, &b.fast[..n], &b.portable[..n])?;
            outputs += n;
        }
    }
    Ok(outputs)
}

/// The outputs compared, once the fast kernel `ran` (a fast kernel that declines a case it
/// must take fails the check) and gave `portable`'s.
fn ran_and_matches(
    layer: &'static str,
    case: usize,
    ran: bool,
    fast: &[i8],
    portable: &[i8],
) -> Result<usize, Mismatch> {
    if !ran {
        return Err(refused(layer, case));
    }
    compare(layer, case, fast, portable)?;
    Ok(fast.len())
}

fn compare(layer: &'static str, case: usize, fast: &[i8], portable: &[i8]) -> Result<(), Mismatch> {
    match fast.iter().zip(portable).position(|(a, b)| a != b) {
        None => Ok(()),
        Some(at) => Err(Mismatch {
            layer,
            case,
            at,
            fast: fast[at],
            portable: portable[at],
        }),
    }
}

struct Mismatch {
    layer: &'static str,
    case: usize,
    at: usize,
    fast: i8,
    portable: i8,
}

impl core::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "{} case {}: output {} is {} with the DSP path, {} portable",
            self.layer, self.case, self.at, self.fast, self.portable
        )
    }
}
