//! x86-64 fast paths: the host's kernels, each bit-identical to the portable code it replaces.
//!
//! - [`gemm()`]: the [`super::gemm`] primitive (Linear layers, and convolutions the direct
//!   kernel does not take).
//! - `conv2d()`: a whole Conv2d (+ ReLU + 2×2 max pool) without im2col: several output pixels
//!   per vector, vectorized requantization.
//!
//! Both are one generic body over `isa::Isa`, instantiated for three tiers
//! ([`KernelTier::Avx512Vnni`], [`KernelTier::AvxVnni`], [`KernelTier::Avx2`]) by the entry
//! points below, the only functions with `#[target_feature]`.
//!
//! Selection: with the `std` feature (the host enables it) by run-time CPU detection, so one
//! binary runs on any x86-64 and uses what the CPU has; without it (`no_std`) by the target
//! features the crate is compiled with (e.g. `-C target-cpu=native`), else the portable code.
//! `Model::infer` takes the best tier on each call; the `std` prepared model picks one at load.
#![allow(unsafe_code)]

pub(crate) mod conv2d;
pub(crate) mod detect;
mod gemm;
pub(crate) mod isa;
mod requant;

pub(crate) use self::conv2d::PADDED_WORDS;
use self::conv2d::{Layer, Weights};
use self::detect::{has_avx_vnni, has_avx2, has_avx512_vnni_vbmi};
use self::isa::{Avx2, Avx512, AvxVnni};
use super::conv2d_op::Conv2dOp;
use super::gemm_portable::{GemmKernel, gemm_portable};
use super::tier::KernelTier;

/// The best tier this CPU supports, for the `no_std` path that decides on each call.
fn best_tier() -> KernelTier {
    if has_avx512_vnni_vbmi() {
        KernelTier::Avx512Vnni
    } else if has_avx_vnni() {
        KernelTier::AvxVnni
    } else if has_avx2() {
        KernelTier::Avx2
    } else {
        KernelTier::Portable
    }
}

// ---------------------------------------------------------------------------------------------
// Entry points: each instantiates a generic body with its instruction set enabled.

macro_rules! entry_points {
    ($isa:ty, $features:literal, $gemm:ident, $conv:ident) => {
        /// # Safety
        /// The CPU supports the features; `k ≥ 1`.
        #[target_feature(enable = $features)]
        unsafe fn $gemm(weights: &[i8], columns: &[i8], k: usize, acc: &mut [i32]) {
            // SAFETY: as this function.
            unsafe { gemm::gemm::<$isa>(weights, columns, k, acc) }
        }

        /// # Safety
        /// The CPU supports the features; `layer` came from `Layer::new` for these slices.
        #[target_feature(enable = $features)]
        unsafe fn $conv(
            layer: &Layer,
            op: &Conv2dOp<'_>,
            packed: Option<&[Weights<$isa>]>,
            input: &[i8],
            output: &mut [i8],
            padded: &mut [u32; PADDED_WORDS],
        ) {
            // SAFETY: as this function.
            unsafe { conv2d::run::<$isa>(layer, op, packed, input, output, padded) }
        }
    };
}

entry_points!(
    Avx512,
    "avx512f,avx512bw,avx512vl,avx512vnni,avx512vbmi",
    gemm_avx512,
    conv_avx512
);
entry_points!(Avx2, "avx2", gemm_avx2, conv_avx2);
entry_points!(AvxVnni, "avx2,avxvnni", gemm_avx_vnni, conv_avx_vnni);

/// The x86-64 [`crate::ops::gemm::gemm`] with the best tier: same contract, same results.
#[inline]
pub fn gemm(weights: &[i8], columns: &[i8], k: usize, acc: &mut [i32]) {
    gemm_kernel(best_tier())(weights, columns, k, acc);
}

/// The gemm kernel of `tier` (the portable one for tiers this CPU lacks or other
/// architectures'). Each kernel checks the CPU again, so calling it is always sound.
pub(crate) fn gemm_kernel(tier: KernelTier) -> GemmKernel {
    fn avx512(weights: &[i8], columns: &[i8], k: usize, acc: &mut [i32]) {
        if k == 0 || !has_avx512_vnni_vbmi() {
            return gemm_portable(weights, columns, k, acc);
        }
        // SAFETY: the CPU supports the kernel's features (checked just above); k ≥ 1.
        unsafe { gemm_avx512(weights, columns, k, acc) }
    }
    fn avx_vnni(weights: &[i8], columns: &[i8], k: usize, acc: &mut [i32]) {
        if k == 0 || !has_avx_vnni() {
            return gemm_portable(weights, columns, k, acc);
        }
        // SAFETY: as above.
        unsafe { gemm_avx_vnni(weights, columns, k, acc) }
    }
    fn avx2(weights: &[i8], columns: &[i8], k: usize, acc: &mut [i32]) {
        if k == 0 || !has_avx2() {
            return gemm_portable(weights, columns, k, acc);
        }
        // SAFETY: as above.
        unsafe { gemm_avx2(weights, columns, k, acc) }
    }
    match tier {
        KernelTier::Avx512Vnni => avx512,
        KernelTier::AvxVnni => avx_vnni,
        KernelTier::Avx2 => avx2,
        _ => gemm_portable,
    }
}

/// A graph node's requantization of one channel's accumulators into `out` with AVX2, eight
/// lanes at a time, bit for bit `ChannelData::finish` with `requant` and `clamp`; `false`
/// (nothing written) without AVX2.
#[cfg(any(test, feature = "std"))]
pub(crate) fn requantize_avx2(
    acc: &[i32],
    requant: &crate::quant::Requantizer,
    clamp: [i8; 2],
    out: &mut [i8],
) -> bool {
    if !has_avx2() {
        return false;
    }
    let vector = requant::VectorRequant::clamped(requant, clamp);
    // SAFETY: the CPU has AVX2 (checked above).
    unsafe { requantize_avx2_body(acc, &vector, out) };
    true
}

/// # Safety
/// The CPU has AVX2.
#[cfg(any(test, feature = "std"))]
#[target_feature(enable = "avx2")]
unsafe fn requantize_avx2_body(acc: &[i32], vector: &requant::VectorRequant, out: &mut [i8]) {
    use core::arch::x86_64::{_mm_storeu_si128, _mm256_loadu_si256};
    for (acc, out) in acc.chunks(8).zip(out.chunks_mut(8)) {
        let mut lanes = [0_i32; 8];
        for (l, &a) in lanes.iter_mut().zip(acc) {
            *l = a;
        }
        let mut bytes = [0_i8; 16];
        // SAFETY: `lanes` holds 32 bytes, `bytes` 16; the CPU has AVX2.
        unsafe {
            let v = _mm256_loadu_si256(lanes.as_ptr().cast());
            _mm_storeu_si128(bytes.as_mut_ptr().cast(), vector.apply::<Avx2>(v));
        }
        for (o, &b) in out.iter_mut().zip(&bytes) {
            *o = b;
        }
    }
}

/// Runs `op` with the best tier if the direct kernel takes the layer; `false` leaves `output`
/// untouched (the caller runs the portable operator).
pub(crate) fn conv2d(op: &Conv2dOp<'_>, input: &[i8], output: &mut [i8]) -> bool {
    conv2d_with(best_tier(), op, input, output)
}

/// [`conv2d()`] with `tier`, weights packed on the fly.
pub(crate) fn conv2d_with(
    tier: KernelTier,
    op: &Conv2dOp<'_>,
    input: &[i8],
    output: &mut [i8],
) -> bool {
    if !tier.is_supported() {
        return false;
    }
    let layer =
        |new: fn(&Conv2dOp<'_>, usize, usize) -> Option<Layer>| new(op, input.len(), output.len());
    let padded = &mut [0_u32; PADDED_WORDS];
    // SAFETY: the CPU supports the tier (checked above); each `layer` fits the slices.
    unsafe {
        match tier {
            KernelTier::Avx512Vnni => match layer(Layer::new::<Avx512>) {
                Some(layer) => conv_avx512(&layer, op, None, input, output, padded),
                None => return false,
            },
            KernelTier::AvxVnni => match layer(Layer::new::<AvxVnni>) {
                Some(layer) => conv_avx_vnni(&layer, op, None, input, output, padded),
                None => return false,
            },
            KernelTier::Avx2 => match layer(Layer::new::<Avx2>) {
                Some(layer) => conv_avx2(&layer, op, None, input, output, padded),
                None => return false,
            },
            _ => return false,
        }
    }
    true
}

/// A Conv2d's weights repacked once for the direct kernel of one tier (the `std` prepared
/// model holds these).
#[cfg(any(test, feature = "std"))]
pub(crate) enum PackedConv {
    Avx512(Layer, std::vec::Vec<Weights<Avx512>>),
    AvxVnni(Layer, std::vec::Vec<Weights<AvxVnni>>),
    Avx2(Layer, std::vec::Vec<Weights<Avx2>>),
}

#[cfg(any(test, feature = "std"))]
impl PackedConv {
    /// The packed layer, if `tier` is an x86 tier this CPU supports and the direct kernel
    /// takes the layer (`input_len`/`output_len`: the tensor sizes it will run on).
    pub fn new(tier: KernelTier, op: &Conv2dOp<'_>) -> Option<PackedConv> {
        if !tier.is_supported() {
            return None;
        }
        /// The layer and its weights for `I`, if the direct kernel takes the layer at the
        /// tensor sizes it will run on.
        fn pack<I: isa::Isa>(op: &Conv2dOp<'_>) -> Option<(Layer, std::vec::Vec<Weights<I>>)> {
            let input_len = op.input.c * op.input.plane();
            let output_len = op.output.c * op.output.plane();
            let layer = Layer::new::<I>(op, input_len, output_len)?;
            let weights = (0..layer.out_channels())
                .step_by(conv2d::BLOCK)
                .map(|first| Weights::pack(op, &layer, first))
                .collect();
            Some((layer, weights))
        }
        Some(match tier {
            KernelTier::Avx512Vnni => pack(op).map(|(l, w)| PackedConv::Avx512(l, w))?,
            KernelTier::AvxVnni => pack(op).map(|(l, w)| PackedConv::AvxVnni(l, w))?,
            KernelTier::Avx2 => pack(op).map(|(l, w)| PackedConv::Avx2(l, w))?,
            _ => return None,
        })
    }

    /// Runs the layer packed by [`Self::new`] from the same `op`, its padded input in
    /// `padded` (whatever it held). `false` (output untouched) if the slices are shorter
    /// than the layer.
    pub fn run(
        &self,
        op: &Conv2dOp<'_>,
        input: &[i8],
        output: &mut [i8],
        padded: &mut [u32; PADDED_WORDS],
    ) -> bool {
        type Fits = fn(&Conv2dOp<'_>, usize, usize) -> Option<Layer>;
        let (tier, fits): (KernelTier, Fits) = match self {
            Self::Avx512(..) => (KernelTier::Avx512Vnni, Layer::new::<Avx512>),
            Self::AvxVnni(..) => (KernelTier::AvxVnni, Layer::new::<AvxVnni>),
            Self::Avx2(..) => (KernelTier::Avx2, Layer::new::<Avx2>),
        };
        if fits(op, input.len(), output.len()).is_none() || !tier.is_supported() {
            return false;
        }
        // SAFETY: `new` checked the CPU and built `layer` from `op`; the slices fit (above).
        unsafe {
            match self {
                Self::Avx512(layer, w) => conv_avx512(layer, op, Some(w), input, output, padded),
                Self::AvxVnni(layer, w) => conv_avx_vnni(layer, op, Some(w), input, output, padded),
                Self::Avx2(layer, w) => conv_avx2(layer, op, Some(w), input, output, padded),
            }
        }
        true
    }
}
