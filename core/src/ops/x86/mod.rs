//! x86-64 fast paths: the host's kernels, each bit-identical to the portable code it replaces.
//!
//! - [`gemm`]: the [`super::gemm`] primitive with AVX-512 VNNI or AVX2 (Linear layers, and
//!   convolutions the direct kernel below does not take).
//! - [`conv2d()`]: a whole Conv2d (+ ReLU + 2×2 max pool) with AVX-512 VNNI: sixteen output
//!   pixels per vector, no im2col, vectorized requantization.
//!
//! Selection: with the `std` feature (the host enables it) by run-time CPU detection, so one
//! binary runs on any x86-64 and uses what the CPU has; without it (`no_std`) by the target
//! features the crate is compiled with (e.g. `-C target-cpu=native`), else the portable code.
#![allow(unsafe_code)]

mod conv2d;
mod gemm;
mod requant;

pub(crate) use conv2d::conv2d;
pub use gemm::gemm;

// `is_x86_feature_detected!` caches its answer, so each check is a load and a bit test.
#[cfg(any(test, feature = "std"))]
macro_rules! has {
    ($($feature:tt),+) => { $(std::is_x86_feature_detected!($feature))&&+ };
}

#[cfg(not(any(test, feature = "std")))]
macro_rules! has {
    ($($feature:tt),+) => { cfg!(all($(target_feature = $feature),+)) };
}

/// What the VNNI gemm kernel needs.
fn has_avx512_vnni() -> bool {
    has!("avx512f", "avx512bw", "avx512vnni")
}

/// What the direct convolution needs: VNNI, byte permutes (VBMI), 128-bit masked stores (VL).
fn has_avx512_vnni_vbmi() -> bool {
    has!(
        "avx512f",
        "avx512bw",
        "avx512vl",
        "avx512vnni",
        "avx512vbmi"
    )
}

fn has_avx2() -> bool {
    has!("avx2")
}
