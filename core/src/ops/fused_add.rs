//! The operands of the patch conv's fused residual Add of four outputs
//! (`graph::fast::dsp::add_columns`), a leaf shared by the Cortex-M4's assembly
//! (`ops::arm_dsp::patch_mac`) and the host's stand-in: as arrays, so that their lengths are
//! checked once, where they are made.

/// The four sums of a channel; its folded requantizer's five words; the Add's two lookup
/// tables (each input's rescaling of an int8 value); the Add's folded output requantizer's five
/// words; and the four residual bytes, overwritten by the four outputs.
pub(crate) type FusedAdd<'a> = (
    &'a [i32; 4],
    &'a [u32; 5],
    (&'a [i32; 256], &'a [i32; 256]),
    &'a [u32; 5],
    &'a mut [i8; 4],
);
