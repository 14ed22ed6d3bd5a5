//! The host's kernel tiers: which SIMD instruction set the kernels use.
//!
//! Every tier computes the same int8 numbers, bit for bit; they differ only in speed. A host
//! picks the best tier its CPU supports once, at model load ([`KernelTier::best`]), and a test or
//! a measurement may force any supported one (the `std` prepared model reads `QCNN_KERNEL_TIER`),
//! so that the AVX2 code can be tested and timed on an AVX-512 machine too.
//!
//! Without the `std` feature (microcontrollers) detection is by the target features the crate is
//! compiled with: a tier is "supported" only if the whole binary may use it.

use core::fmt;

/// One set of kernels. The portable tier runs everywhere and is the reference.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KernelTier {
    /// Plain Rust: the reference every other tier is tested against.
    Portable,
    /// x86-64 AVX2 (`vpmaddubsw`/`vpmaddwd`): AMD Zen 1–3, Intel Haswell and later clients.
    Avx2,
    /// x86-64 AVX2 with AVX-VNNI (`vpdpbusd` on 256-bit vectors): Intel Alder Lake and later.
    AvxVnni,
    /// x86-64 AVX-512 F/BW/VL with VNNI and VBMI: Intel Ice Lake and later servers, AMD Zen 4.
    Avx512Vnni,
    /// aarch64 Advanced SIMD (NEON), which every aarch64 CPU has.
    Neon,
    /// aarch64 NEON with the dot-product extension (`sdot`): Cortex-A55/A76 and later, Apple M1.
    NeonDot,
}

impl KernelTier {
    /// Every tier, portable first, then per architecture from the plainest to the fastest.
    pub const ALL: [KernelTier; 6] = [
        Self::Portable,
        Self::Avx2,
        Self::AvxVnni,
        Self::Avx512Vnni,
        Self::Neon,
        Self::NeonDot,
    ];

    /// The name `QCNN_KERNEL_TIER` takes and reports print.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Portable => "portable",
            Self::Avx2 => "avx2",
            Self::AvxVnni => "avx-vnni",
            Self::Avx512Vnni => "avx512-vnni",
            Self::Neon => "neon",
            Self::NeonDot => "neon-dot",
        }
    }

    /// The tier called `name` (as [`Self::name`] prints it), if any.
    pub fn from_name(name: &str) -> Option<KernelTier> {
        Self::ALL.into_iter().find(|tier| tier.name() == name)
    }

    /// Whether this CPU (or, without `std`, this build's target features) can run the tier.
    pub fn is_supported(self) -> bool {
        match self {
            Self::Portable => true,
            #[cfg(target_arch = "x86_64")]
            Self::Avx2 => super::x86::detect::has_avx2(),
            #[cfg(target_arch = "x86_64")]
            Self::AvxVnni => super::x86::detect::has_avx_vnni(),
            #[cfg(target_arch = "x86_64")]
            Self::Avx512Vnni => super::x86::detect::has_avx512_vnni_vbmi(),
            #[cfg(target_arch = "aarch64")]
            Self::Neon => super::aarch64::detect::has_neon(),
            #[cfg(target_arch = "aarch64")]
            Self::NeonDot => super::aarch64::detect::has_neon_dot(),
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }

    /// The fastest supported tier: what a model uses unless told otherwise.
    pub fn best() -> KernelTier {
        Self::ALL
            .into_iter()
            .rev()
            .find(|tier| tier.is_supported())
            .unwrap_or(Self::Portable)
    }

    /// The supported tiers, in [`Self::ALL`]'s order.
    pub fn supported() -> impl Iterator<Item = KernelTier> {
        Self::ALL.into_iter().filter(|tier| tier.is_supported())
    }
}

impl fmt::Display for KernelTier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_portable_is_always_there() {
        for tier in KernelTier::ALL {
            assert_eq!(KernelTier::from_name(tier.name()), Some(tier));
        }
        assert_eq!(KernelTier::from_name("avx3"), None);
        assert!(KernelTier::Portable.is_supported());
        assert!(KernelTier::best().is_supported());
        assert!(KernelTier::supported().any(|t| t == KernelTier::best()));
    }
}
