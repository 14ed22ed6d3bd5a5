//! Cortex-M4/M7 fast paths (`cfg(qcnn_arm_dsp)`, set by `build.rs`), with the DSP extension's
//! dual 16-bit multiply-accumulate: SMLAD adds both products of two int16 pairs to an i32
//! accumulator in one instruction.
//!
//! - [`conv2d()`]: a whole Conv2d (+ fused pool): int16 patches read from a ring of
//!   converted input rows, four output channels per pass of a weight-stationary `asm!` loop.
//! - [`linear()`]: a whole Linear: the input unpacked to int16 pairs once, then two weight
//!   rows at a time.
//!
//! Both take their buffers from the scratch in the caller's arena (`ops::scratch`), and return
//! `false` when a layer is outside their limits; the portable code then runs. Their results are bit-identical to the portable kernels (SMLAD wraps exactly
//! like `wrapping_add`): the firmware's `dsp_check` binary compares them on a Cortex-M4 under
//! qemu, and the firmware test diffs the whole model against the host.
//!
//! SMLAD and SXTB16 are unstable in `core::arch::arm`, so the kernels are `asm!`: this module
//! opts out of the crate's `deny(unsafe_code)`, with a `SAFETY` note on every block.
#![allow(unsafe_code)]

mod byte_max;
mod conv2d;
mod depthwise_rows;
mod linear;
mod patch_mac;
mod pointwise_mac;
mod row3;

pub(crate) use byte_max::max_bytes4;
pub(crate) use conv2d::{RowSource, conv2d, conv2d_rows};
pub(crate) use depthwise_rows::kx3_loops;
pub(crate) use linear::{linear, linear_blocked};
// The pointwise kernel's name for `mac_patch4` (the same loop).
pub(crate) use patch_mac::mac_patch4 as mac_patch4_unrolled;
pub(crate) use patch_mac::{
    add_four, copy_runs, expand_columns, mac_patch4, requantize_columns, requantize_run, smlad,
    sum_bytes, sxtb16_pairs,
};
pub(crate) use pointwise_mac::blocks_loops;
pub(crate) use row3::conv3x3_row;
