//! Which set of kernels a target runs: it decides each layer's scratch, so the arena of one
//! target can be computed on another.

/// Which set of kernels runs the layers. It decides how much scratch each layer takes from
/// the arena, so [`crate::Model::arena_len_for`] gives the arena of a target other than the
/// one running (a firmware's build script, on the host, sizing the arena of a Cortex-M4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernels {
    /// The portable kernels: hosts (whose x86-64 SIMD kernels keep their buffers on the
    /// stack) and other targets with an operating system; im2col takes scratch.
    Portable,
    /// The Cortex-M4/M7 DSP paths (`thumbv7em`, or `+dsp`): see `ops::arm_dsp`.
    CortexM4Dsp,
    /// Bare-metal targets without the DSP extension (Cortex-M0/M0+/M3, ...: core's `build.rs`
    /// sets `cfg(qcnn_direct_kernels)`): Conv2d and Linear run their direct loops, which take
    /// no scratch, so the arena holds none of im2col's.
    Direct,
}

impl Kernels {
    /// The kernels of the target this crate is compiled for.
    pub const NATIVE: Self = if cfg!(qcnn_arm_dsp) {
        Self::CortexM4Dsp
    } else if cfg!(qcnn_direct_kernels) {
        Self::Direct
    } else {
        Self::Portable
    };

    /// The kernels a Rust target gets, by its name, as core's `build.rs` decides: every
    /// `thumbv7em` target has the DSP extension; any other bare-metal one (its OS `none`)
    /// takes the direct loops.
    pub fn for_target(target: &str) -> Self {
        if target.starts_with("thumbv7em") {
            Self::CortexM4Dsp
        } else if target.split('-').any(|part| part == "none") {
            Self::Direct
        } else {
            Self::Portable
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Kernels;

    #[test]
    fn bare_metal_targets_without_dsp_take_the_direct_loops() {
        for (target, kernels) in [
            ("thumbv7em-none-eabihf", Kernels::CortexM4Dsp),
            ("thumbv7em-none-eabi", Kernels::CortexM4Dsp),
            ("thumbv6m-none-eabi", Kernels::Direct),
            ("thumbv7m-none-eabi", Kernels::Direct),
            ("thumbv8m.base-none-eabi", Kernels::Direct),
            ("riscv32imac-unknown-none-elf", Kernels::Direct),
            ("x86_64-unknown-linux-gnu", Kernels::Portable),
            ("aarch64-apple-darwin", Kernels::Portable),
        ] {
            assert_eq!(Kernels::for_target(target), kernels, "{target}");
        }
    }
}
