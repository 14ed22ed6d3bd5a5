//! The testing kit, `no_std`: core's tests and (feature `testing`) the firmware's `dsp_check`
//! draw their data from one generator ([`SplitMix`]) and their layers from one set of case
//! generators ([`cases`]), and core's tier checks run through [`kernel_tests!`](crate::kernel_tests).

pub mod cases;

use crate::ops::tier::KernelTier;
use rand_xoshiro::rand_core::{Rng, SeedableRng};

/// Runs `check` on `tier`, which this build found on the CPU (`kernel_tests!` marks the
/// tests of the tiers it did not find as ignored). Fails rather than passes when the CPU
/// lacks the tier after all (a binary built elsewhere, or run under another emulated CPU
/// without `--skip` for that tier), so that a missing tier is never counted as a pass.
pub fn run_tier(tier: KernelTier, check: fn(KernelTier)) {
    assert!(
        tier.is_supported(),
        "{tier}: this CPU lacks it; leave its tests out (cargo test -- --skip <tier>)"
    );
    check(tier);
    // The logs' list of the tiers that ran (`scripts/test.sh`'s aarch64 step greps it).
    #[cfg(any(test, feature = "std"))]
    std::eprintln!("ran {tier}");
}

/// One `#[test]` per kernel tier of the target (portable; avx2, avx-vnni, avx512-vnni on
/// x86-64; neon, neon-dot on AArch64) for each named check `fn(KernelTier)`, in a module of
/// the check's name: `cargo test` lists `conv_matches_reference::avx512_vnni` and its
/// siblings. A tier the build machine's CPU lacks is `#[ignore]`d (reported as ignored, never
/// as passed; `core/build.rs` detects it when it builds for its own architecture); when
/// cross-built, [`run_tier`] fails on a CPU without the tier instead.
///
/// `kernel_tests!(simd: check)` leaves the portable tier out, for checks of SIMD code that
/// has no portable form (its reference is the scalar code).
#[macro_export]
macro_rules! kernel_tests {
    (simd: $($check:ident),+ $(,)?) => {$(
        mod $check {
            $crate::kernel_tests!(@simd $check);
        }
    )+};
    ($($check:ident),+ $(,)?) => {$(
        mod $check {
            #[test]
            fn portable() {
                $crate::test_util::run_tier($crate::ops::tier::KernelTier::Portable, super::$check);
            }

            $crate::kernel_tests!(@simd $check);
        }
    )+};
    (@simd $check:ident) => {
        #[cfg(target_arch = "x86_64")]
        #[test]
        #[cfg_attr(qcnn_cpu_lacks_avx2, ignore = "this CPU has no AVX2")]
        fn avx2() {
            $crate::test_util::run_tier($crate::ops::tier::KernelTier::Avx2, super::$check);
        }

        #[cfg(target_arch = "x86_64")]
        #[test]
        #[cfg_attr(qcnn_cpu_lacks_avx_vnni, ignore = "this CPU has no AVX-VNNI")]
        fn avx_vnni() {
            $crate::test_util::run_tier($crate::ops::tier::KernelTier::AvxVnni, super::$check);
        }

        #[cfg(target_arch = "x86_64")]
        #[test]
        #[cfg_attr(qcnn_cpu_lacks_avx512_vnni, ignore = "this CPU has no AVX-512 VNNI/VBMI")]
        fn avx512_vnni() {
            $crate::test_util::run_tier($crate::ops::tier::KernelTier::Avx512Vnni, super::$check);
        }

        #[cfg(target_arch = "aarch64")]
        #[test]
        fn neon() {
            $crate::test_util::run_tier($crate::ops::tier::KernelTier::Neon, super::$check);
        }

        #[cfg(target_arch = "aarch64")]
        #[test]
        #[cfg_attr(qcnn_cpu_lacks_neon_dot, ignore = "this CPU has no dot product")]
        fn neon_dot() {
            $crate::test_util::run_tier($crate::ops::tier::KernelTier::NeonDot, super::$check);
        }
    };
}

/// Runs a batch of `count` random images of `input_len` bytes through `batch` (which writes
/// `classes` logits an image and returns how many images it ran) and checks each image's
/// logits against `one` run on that image alone, and that nothing was written past them:
/// what every batched entry point (`infer_batch` of each model kind and tier) must hold.
#[cfg(any(test, feature = "std"))]
pub fn check_batch<E: core::fmt::Debug + PartialEq>(
    rng: &mut SplitMix,
    (count, input_len, classes): (usize, usize, usize),
    batch: impl FnOnce(&[u8], &mut [i8]) -> Result<usize, E>,
    mut one: impl FnMut(&[u8]) -> Vec<i8>,
    what: &dyn core::fmt::Debug,
) {
    let images = rng.u8s(count * input_len);
    let mut logits = vec![0x33; count * classes + 1];
    assert_eq!(batch(&images, &mut logits), Ok(count), "{what:?}");
    for (i, image) in images.chunks(input_len).enumerate() {
        assert_eq!(
            logits[i * classes..][..classes],
            one(image)[..],
            "image {i} of {count}: {what:?}"
        );
    }
    assert_eq!(
        logits[count * classes],
        0x33,
        "wrote past the logits: {what:?}"
    );
}

/// SplitMix64 (`rand_xoshiro`'s, the stream `qcnn_dataset::rng` pins to the reference
/// values): tiny, fast, and good enough to drive randomized comparisons.
pub struct SplitMix(rand_xoshiro::SplitMix64);

impl SplitMix {
    pub fn new(seed: u64) -> SplitMix {
        SplitMix(rand_xoshiro::SplitMix64::seed_from_u64(seed))
    }

    // The generator's own name for its step; it is no iterator (it never ends), and core's
    // tests and the firmware's `dsp_check` all call it so.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// Uniform in `0..n` (n > 0), up to negligible bias.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// Mostly uniform i32, with extremes mixed in often.
    pub fn i32(&mut self) -> i32 {
        const EXTREMES: [i32; 7] = [i32::MIN, i32::MAX, 0, 1, -1, 1 << 30, -(1 << 30)];
        match self.next() % 8 {
            0 => EXTREMES[self.below(EXTREMES.len())],
            1 => (self.next() as i32) >> (self.next() % 31),
            _ => self.next() as i32,
        }
    }

    /// A weight in the range a blob allows, −127..=127.
    pub fn weight(&mut self) -> i8 {
        (self.below(255) as i32 - 127) as i8
    }

    /// Each of `values` set to `constant`, or to a random byte when it is `None`.
    pub fn fill(&mut self, values: &mut [i8], constant: Option<i8>) {
        for v in values {
            *v = constant.unwrap_or(self.next() as i8);
        }
    }

    #[cfg(any(test, feature = "std"))]
    pub fn i8s(&mut self, n: usize) -> Vec<i8> {
        (0..n).map(|_| self.next() as i8).collect()
    }

    #[cfg(any(test, feature = "std"))]
    pub fn u8s(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }

    /// Weights in the range a blob allows, −127..=127.
    #[cfg(any(test, feature = "std"))]
    pub fn weights(&mut self, n: usize) -> Vec<i8> {
        (0..n).map(|_| self.weight()).collect()
    }
}
