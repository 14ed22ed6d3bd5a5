//! qcnn-core: int8 CNN inference with no heap, over a checked, zero-copy model blob.
//!
//! ```no_run
//! # fn classify(blob: &[u8], image: &[u8; 784]) -> Result<usize, Box<dyn core::error::Error>> {
//! let model = qcnn_core::Model::from_bytes(blob)?; // validates everything, copies nothing
//! let mut arena = [0_u8; 14359]; // at least model.arena_len() (qcnn-build gives it at build time)
//! let logits = model.infer(image, &mut arena)?;
//! Ok(logits.argmax())
//! # }
//! ```
//!
//! # The model blob (`.qcnn`)
//!
//! Magic `QCNN`, a format version, a postcard-encoded [`format::Header`] (input shape, the
//! layer list, quantization parameters, and [`format::Section`]s pointing into the data),
//! the data section (weights, biases, multipliers, shifts, weight scales), and a checksum over
//! everything before it (xxHash32 since format version 3, a CRC-32 before; [`checksum`]). [`mod@format`] gives the byte layout and is the contract between the
//! quantize tool (which writes blobs with [`format::DataWriter`] and [`format::encode`]) and
//! everything that runs them.
//!
//! [`Model::from_bytes`] borrows the blob (so `include_bytes!` of a blob in flash works) and
//! checks magic, version, flags, checksum, header and data lengths, that every shape chains from
//! layer to layer, that every section lies in bounds with the right length and alignment, and
//! every parameter range. Each failure is a named [`ModelError`] variant. Once it returns
//! `Ok`, [`Model::infer`] cannot panic or index out of bounds for any image.
//! [`Model::from_bytes_unverified`] makes every check but the checksum over the whole blob,
//! for a blob checked once with [`verify_checksum`].
//!
//! The [`Model`] itself is a view of the blob (56 bytes on a 32-bit target): each layer is
//! decoded from the header again when it runs, so nothing the size of the layer list is held
//! in RAM.
//!
//! # Arithmetic (TFLite's int8 scheme)
//!
//! - Activations are int8, asymmetric per tensor: `real = scale·(q − zero_point)`. The u8
//!   image enters as `q = pixel − 128` (scale 1/255, zero point −128).
//! - Weights are int8, symmetric per output channel, in −127..=127.
//! - Each output accumulates `bias + Σ w·x` in i32 over the raw int8 inputs. The bias is at
//!   scale `s_in·s_w` and already contains `−z_in·Σw`, and padding holds `z_in`, so padded
//!   positions contribute exactly as a real 0 would.
//! - [`quant`] requantizes with an int32 multiplier and shift, bit-exactly as TFLite's
//!   `MultiplyByQuantizedMultiplier` (SaturatingRoundingDoublingHighMul, then
//!   RoundingDivideByPOT), adds the output zero point and clamps to −128..=127 (to
//!   `zero_point..=127` when ReLU is fused). No float on the inference path.
//! - Conv2d may carry a fused MaxPool: each pooled output is the max of the requantized conv
//!   outputs in its window, so the unpooled map is never stored.
//! - [`Logits`] gives the int8 scores, their dequantized values, the argmax, and a softmax
//!   (micromath, off the hot path).
//!
//! # Memory
//!
//! The caller owns the activation arena (`&mut [u8]` of at least [`Model::arena_len`]
//! bytes). Layers ping-pong between its two ends, and the gap between a layer's input and
//! output is its kernels' scratch (the Cortex-M4 DSP paths' int16 rows and interleaved
//! weights, the portable im2col patches), so the need is the largest `input + scratch +
//! output` of any layer, and no kernel keeps more than a few hundred bytes on the stack. The
//! scratch depends on the kernels ([`Kernels`]): for the seed model 9,696 bytes with the
//! portable kernels, 14,359 on a Cortex-M4 (its second conv reads 8×28×28 and writes the
//! pooled 16×14×14 with 4,951 bytes of scratch between them); [`Model::arena_len_for`] gives
//! another target's figure, and [`Model::plan`] where every tensor sits. No heap, no
//! recursion, no large stack arrays.
//!
//! [`Model::infer_streaming`] runs in less, down to [`Model::min_arena_len_for`]: where a
//! Conv2d's whole output map does not fit next to the following Conv2d or MaxPool2d, it
//! computes its rows as that layer reads them (8,001 bytes for the seed model on a Cortex-M4),
//! with the same logits.
//!
//! [`Model::infer_batch`] runs several images at once in `n ·` [`Model::arena_len`] bytes,
//! with the same logits as one at a time: Linear layers then reuse each weight across the
//! images, which on a host is worth more than the extra arena (the seed model's first Linear
//! has 800 KB of weights).
#![cfg_attr(not(any(test, feature = "std")), no_std)]
#![deny(unsafe_code)]

mod arena;
pub mod checksum;
pub mod crc;
pub mod error;
pub mod format;
pub mod graph;
mod infer;
pub mod model;
pub mod ops;
pub mod plan;
#[cfg(any(test, feature = "std"))]
pub mod prepared;
#[cfg(any(test, feature = "std"))]
mod prepared_graph;
pub mod quant;
#[cfg(test)]
mod reference;
pub mod shape;
mod stream;
#[cfg(test)]
mod test_blob;
#[cfg(any(test, feature = "testing"))]
#[doc(hidden)]
pub mod test_util;
mod weight_range;

pub use error::ModelError;
pub use format::layout::QuantParams;
pub use format::layout::SectionKind;
pub use format::read::verify_checksum;
pub use infer::{InferError, Logits};
pub use model::{CheckedLayer, LayerKind, Layers, Model};
pub use ops::kernels::Kernels;
pub use ops::tier::KernelTier;
#[cfg(any(test, feature = "std"))]
pub use prepared::{PreparedModel, TierError};
pub use shape::{MapShape, TensorShape};
#[cfg(qcnn_arm_dsp)]
#[doc(hidden)]
pub use stream::{dsp_pair_between_len, dsp_stream_pair};
