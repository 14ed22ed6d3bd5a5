//! Which AArch64 extensions this CPU (or, without `std`, this build) has: what
//! `KernelTier::is_supported` asks for the AArch64 tiers.

#[cfg(any(test, feature = "std"))]
macro_rules! has {
    ($($feature:tt),+) => { $(std::arch::is_aarch64_feature_detected!($feature))&&+ };
}

#[cfg(not(any(test, feature = "std")))]
macro_rules! has {
    ($($feature:tt),+) => { cfg!(all($(target_feature = $feature),+)) };
}

pub(crate) fn has_neon() -> bool {
    has!("neon")
}

pub(crate) fn has_neon_dot() -> bool {
    has!("neon", "dotprod")
}
