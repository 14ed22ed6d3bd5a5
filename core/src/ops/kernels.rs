//! Which set of kernels a target runs: it decides each layer's scratch, so the arena of one
//! target can be computed on another.

/// Which set of kernels runs the layers. It decides how much scratch each layer takes from
/// the arena, so [`crate::Model::arena_len_for`] gives the arena of a target other than the
/// one running (a firmware's build script, on the host, sizing the arena of a Cortex-M4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernels {
    /// The portable kernels: Cortex-M0/M0+, hosts (whose x86-64 SIMD kernels keep their
    /// buffers on the stack), and any target without the DSP extension.
    Portable,
    /// The Cortex-M4/M7 DSP paths (`thumbv7em`, or `+dsp`): see `ops::arm_dsp`.
    CortexM4Dsp,
}

impl Kernels {
    /// The kernels of the target this crate is compiled for.
    pub const NATIVE: Self = if cfg!(qcnn_arm_dsp) {
        Self::CortexM4Dsp
    } else {
        Self::Portable
    };

    /// The kernels a Rust target gets, by its name (as core's `build.rs` decides: every
    /// `thumbv7em` target has the DSP extension).
    pub fn for_target(target: &str) -> Self {
        if target.starts_with("thumbv7em") {
            Self::CortexM4Dsp
        } else {
            Self::Portable
        }
    }
}
