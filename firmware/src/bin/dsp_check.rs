//! Proves on a Cortex-M4 (issue 7) that the DSP fast paths give exactly the portable code's
//! results: `Conv2dOp::run` (SMLAD over int16 patches, the asm requantizer) against
//! `Conv2dOp::run_portable`, and `LinearOp::run` against `LinearOp::run_portable`, on random
//! shapes (odd and even channel counts, kernels 1/3/5, stride 1–2, padding 0–2, fused pools,
//! the seed model's own layers, long Linear inputs, misaligned weights) with
//! random or extreme data and requantizers (including left shifts, which the fast conv path
//! declines). Each path gets exactly the scratch its `scratch_len` asks for, starting at a
//! varying misalignment, so a path that wrote past its scratch or miscounted its alignment
//! would corrupt its own output or fail; the Linear path also runs in a shorter scratch, where
//! it unpacks its input in blocks (an arena sized for the streaming schedule). Prints one summary line; exits non-zero on the first
//! mismatch. Run by `run-tests.sh` under qemu mps2-an386.
#![no_std]
#![no_main]
#![deny(unsafe_code)]

use cortex_m_rt::entry;
use cortex_m_semihosting::debug::{self, EXIT_FAILURE, EXIT_SUCCESS};
use cortex_m_semihosting::hprintln;
use panic_semihosting as _;
use qcnn_core::ops::Channels;
use qcnn_core::ops::conv2d::Conv2dOp;
use qcnn_core::ops::linear::LinearOp;
use qcnn_core::ops::maxpool2d::PoolWindow;
use qcnn_core::{Kernels, MapShape};
// The vector table's interrupt part (src/interrupts.rs) lives in the firmware's library.
use qcnn_firmware as _;

const CONV_CASES: usize = 400;
const LINEAR_CASES: usize = 300;
const MAX_CHANNELS: usize = 40;
/// Longest Linear input tried.
const MAX_FEATURES: usize = 3600;
/// Scratch for either path: the most the DSP conv can ask for is about 6.9 KB, the DSP
/// Linear 2 bytes a feature; plus 3 bytes of misalignment.
const MAX_SCRATCH: usize = 2 * MAX_FEATURES + 8;
const MAX_INPUT: usize = 8 * 28 * 28;
const MAX_WEIGHTS: usize = 40 * 4096 + 4;

/// SplitMix64, as in core's tests.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn fill(&mut self, values: &mut [i8], extreme: Option<i8>) {
        for v in values {
            *v = extreme.unwrap_or(self.next() as i8);
        }
    }
}

/// Word-aligned weights, so that the Linear fast path (LDRD) can take them.
#[repr(C, align(4))]
struct Aligned([i8; MAX_WEIGHTS]);

/// Per-channel bias, multiplier and shift bytes, as a blob stores them.
struct ChannelBytes {
    bias: [[u8; 4]; MAX_CHANNELS],
    multiplier: [[u8; 4]; MAX_CHANNELS],
    shift: [i8; MAX_CHANNELS],
}

impl ChannelBytes {
    /// Random channels; one case in four has left shifts (non-monotone requantizers).
    fn random(&mut self, rng: &mut Rng, n: usize, k: usize) -> Channels<'_> {
        let left = rng.below(4) == 0;
        for o in 0..n {
            // Scales that spread the sums over the int8 range, as real layers do.
            let bias = (rng.next() as i32) >> 12;
            let multiplier = (1 << 30) + (rng.next() as i32 & 0x3FFF_FFFF);
            let shift = if left {
                rng.below(3) as i8
            } else {
                -((8 + rng.below(6) + (k > 200) as usize * 4) as i8)
            };
            self.bias[o] = bias.to_le_bytes();
            self.multiplier[o] = multiplier.to_le_bytes();
            self.shift[o] = shift;
        }
        Channels {
            bias: &self.bias[..n],
            multiplier: &self.multiplier[..n],
            shift: &self.shift[..n],
            zero_point: rng.next() as i8,
            relu: rng.below(2) == 0,
        }
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
        bias: [[0; 4]; MAX_CHANNELS],
        multiplier: [[0; 4]; MAX_CHANNELS],
        shift: [0; MAX_CHANNELS],
    };

    let mut buffers = Buffers {
        weights: &mut WEIGHTS.0,
        input: INPUT,
        fast: FAST,
        portable: PORTABLE,
        scratch: SCRATCH,
        channels: CHANNELS,
    };
    let status = match check(&mut buffers) {
        Ok(outputs) => {
            hprintln!(
                "dsp_check: {} conv and {} linear random cases ({} outputs): DSP paths identical to the portable code",
                CONV_CASES,
                LINEAR_CASES,
                outputs
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
    let mut rng = Rng(0x5EED);
    let mut outputs = 0;
    for case in 0..CONV_CASES {
        let extreme = [Some(-128), Some(127)].get(case % 10).copied().flatten();
        // The seed model's two convolutions first, then random ones.
        let (c, h, w, o, kernel, stride, padding, pool) = match case {
            0 => (1, 28, 28, 8, 3, 1, 1, (1, 1)),
            1 => (8, 28, 28, 16, 3, 1, 1, (2, 2)),
            _ => {
                let kernel = [1, 3, 5][rng.below(3)];
                let pool = [(1, 1), (2, 2), (rng.below(3) + 1, rng.below(3) + 1)][rng.below(3)];
                let (c, h, w) = (rng.below(8) + 1, rng.below(14) + 6, rng.below(14) + 6);
                (
                    c,
                    h,
                    w,
                    rng.below(MAX_CHANNELS) + 1,
                    kernel,
                    rng.below(2) + 1,
                    rng.below(3),
                    pool,
                )
            }
        };
        let input = MapShape { c, h, w };
        let pool = PoolWindow {
            kernel: pool.0,
            stride: pool.1,
        };
        let conv_len = |len: usize| {
            (len + 2 * padding)
                .checked_sub(kernel)
                .map(|l| l / stride + 1)
        };
        let (Some(out_h), Some(out_w)) = (
            conv_len(h).and_then(|l| pool.output_len(l)),
            conv_len(w).and_then(|l| pool.output_len(l)),
        ) else {
            continue;
        };
        let output = MapShape {
            c: o,
            h: out_h,
            w: out_w,
        };
        let (in_len, out_len) = (c * h * w, o * out_h * out_w);
        let weights_len = o * c * kernel * kernel;
        if out_len > b.fast.len() || weights_len > b.weights.len() {
            continue;
        }
        let weights = &mut b.weights[..weights_len];
        for v in weights.iter_mut() {
            *v = extreme.unwrap_or((rng.below(255) as i32 - 127) as i8);
        }
        rng.fill(&mut b.input[..in_len], extreme);
        let op = Conv2dOp {
            input,
            output,
            kernel,
            stride,
            padding,
            pool,
            weights,
            channels: b.channels.random(&mut rng, o, c * kernel * kernel),
            input_zero_point: rng.next() as i8,
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
            *v = extreme.unwrap_or((rng.below(255) as i32 - 127) as i8);
        }
        rng.fill(&mut b.input[..k], extreme);
        let op = LinearOp {
            in_features: k,
            weights,
            channels: b.channels.random(&mut rng, n, k),
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
