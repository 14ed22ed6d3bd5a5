//! Which x86-64 instruction sets this CPU (or, without `std`, this build) has: what
//! `KernelTier::is_supported` asks for the x86-64 tiers.

// `is_x86_feature_detected!` caches its answer, so each check is a load and a bit test.
#[cfg(any(test, feature = "std"))]
macro_rules! has {
    ($($feature:tt),+) => { $(std::is_x86_feature_detected!($feature))&&+ };
}

#[cfg(not(any(test, feature = "std")))]
macro_rules! has {
    ($($feature:tt),+) => { cfg!(all($(target_feature = $feature),+)) };
}

/// `KernelTier::Avx512Vnni`: VNNI, byte permutes (VBMI), 128/256-bit forms (VL).
pub(crate) fn has_avx512_vnni_vbmi() -> bool {
    has!(
        "avx512f",
        "avx512bw",
        "avx512vl",
        "avx512vnni",
        "avx512vbmi"
    )
}

/// `KernelTier::AvxVnni`.
pub(crate) fn has_avx_vnni() -> bool {
    has!("avx2", "avxvnni")
}

/// `KernelTier::Avx2`.
pub(crate) fn has_avx2() -> bool {
    has!("avx2")
}
