//! The host's prepared model (`std` only): kernels chosen once, at load, and the direct
//! convolution's weights repacked once, held in a `Vec`.
//!
//! [`crate::Model`] stays `no_std` and allocation-free: it borrows the blob and decides on each
//! call which kernel runs (and, on x86-64, repacks a convolution's weights on the stack every
//! time). A host that runs a model over thousands of images wraps it once in a
//! [`PreparedModel`], which fixes a [`KernelTier`] (the best the CPU has, or the one named by
//! `QCNN_KERNEL_TIER`), picks each layer's kernel for it, and repacks what that kernel wants.
//! Every tier gives the same logits as [`crate::Model::infer`], bit for bit.
//!
//! A graph model's nodes get their kernels the same way, once per node
//! (`crate::prepared_graph`).

use core::fmt;
use std::string::String;
use std::vec::Vec;

use crate::infer::{Batch, InferError};
use crate::model::Model;
use crate::ops::conv2d::Conv2dOp;
use crate::ops::gemm::{GemmKernel, gemm_kernel};
use crate::ops::linear::LinearOp;
use crate::ops::maxpool2d::MaxPool2dOp;
use crate::ops::tier::KernelTier;
use crate::ops::{Kernels, Op};
use crate::prepared_graph::GraphKernels;

/// The environment variable that forces a tier (`portable`, `avx2`, `avx-vnni`,
/// `avx512-vnni`, `neon`, `neon-dot`), for tests and measurements.
pub const TIER_VARIABLE: &str = "QCNN_KERNEL_TIER";

/// Why a tier cannot be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TierError {
    /// `QCNN_KERNEL_TIER` holds no tier's name.
    UnknownName { name: String },
    /// This CPU cannot run the tier.
    Unsupported { tier: KernelTier },
}

impl fmt::Display for TierError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |tiers: &mut dyn Iterator<Item = KernelTier>| {
            tiers.map(KernelTier::name).collect::<Vec<_>>().join(", ")
        };
        match self {
            Self::UnknownName { name } => write!(
                f,
                "{TIER_VARIABLE}={name:?} names no kernel tier (one of: {})",
                list(&mut KernelTier::ALL.into_iter())
            ),
            Self::Unsupported { tier } => write!(
                f,
                "kernel tier {tier} is not supported by this CPU (supported: {})",
                list(&mut KernelTier::supported())
            ),
        }
    }
}

impl std::error::Error for TierError {}

/// The tier `QCNN_KERNEL_TIER` asks for (`None` when unset or empty), checked against the CPU.
pub fn tier_from_env() -> Result<Option<KernelTier>, TierError> {
    let Some(name) = std::env::var_os(TIER_VARIABLE) else {
        return Ok(None);
    };
    let name = name.to_string_lossy();
    if name.is_empty() {
        return Ok(None);
    }
    let tier = KernelTier::from_name(&name).ok_or_else(|| TierError::UnknownName {
        name: name.clone().into_owned(),
    })?;
    if !tier.is_supported() {
        return Err(TierError::Unsupported { tier });
    }
    Ok(Some(tier))
}

/// One layer with its kernel chosen.
enum Kernel<'a> {
    /// The x86-64 direct convolution, weights packed for the tier.
    #[cfg(target_arch = "x86_64")]
    ConvDirect(Conv2dOp<'a>, crate::ops::x86::PackedConv),
    /// im2col and the tier's gemm (or the direct loops, for patches over [`PATCH_BYTES`]).
    ///
    /// [`PATCH_BYTES`]: crate::ops::conv2d::PATCH_BYTES
    Conv(Conv2dOp<'a>, GemmKernel),
    MaxPool(MaxPool2dOp),
    Linear(LinearOp<'a>, GemmKernel),
}

struct Step<'a> {
    kernel: Kernel<'a>,
    /// Bytes of one image's input and output tensors.
    input_len: usize,
    output_len: usize,
}

/// A [`Model`] with its kernels chosen for one [`KernelTier`]; see the module docs.
pub struct PreparedModel<'a> {
    model: Model<'a>,
    tier: KernelTier,
    steps: Vec<Step<'a>>,
    /// The largest tensor of one image, input included.
    max_tensor: usize,
    /// The largest scratch of any layer with the portable kernels (im2col's patches, also
    /// for the convolutions the x86 direct kernel declines), or the x86 direct convolution's
    /// padded input (which is not zeroed between calls); the NEON kernels keep their own
    /// buffers on the stack. One image's worth serves the whole batch, as the layers run one
    /// image at a time or (Linear) need none.
    scratch_len: usize,
    /// A graph model's node kernels (its `steps` are then empty).
    graph: Option<GraphKernels>,
}

impl fmt::Debug for PreparedModel<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PreparedModel")
            .field("tier", &self.tier)
            .field("layers", &self.steps.len())
            .finish_non_exhaustive()
    }
}

impl<'a> PreparedModel<'a> {
    /// With the tier `QCNN_KERNEL_TIER` names, else the best this CPU supports.
    pub fn new(model: Model<'a>) -> Result<Self, TierError> {
        let tier = tier_from_env()?.unwrap_or_else(KernelTier::best);
        Self::with_tier(model, tier)
    }

    /// With `tier`, if this CPU supports it.
    pub fn with_tier(model: Model<'a>, tier: KernelTier) -> Result<Self, TierError> {
        if !tier.is_supported() {
            return Err(TierError::Unsupported { tier });
        }
        if let Some(graph) = model.graph() {
            let graph = Some(GraphKernels::new(&graph, tier));
            return Ok(Self {
                model,
                tier,
                steps: Vec::new(),
                max_tensor: 0,
                scratch_len: 0,
                graph,
            });
        }
        let gemm = gemm_kernel(tier);
        let mut steps = Vec::new();
        let mut max_tensor = model.input_len();
        let mut scratch_len = 0;
        for layer in model.layers() {
            let (input_len, output_len) = (layer.input().len(), layer.output().len());
            scratch_len = scratch_len.max(layer.op().scratch_len(Kernels::Portable));
            let kernel = match *layer.op() {
                Op::Conv2d(op) => conv_kernel(op, tier, gemm),
                Op::MaxPool2d(op) => Kernel::MaxPool(op),
                Op::Flatten => continue,
                Op::Linear(op) => Kernel::Linear(op, gemm),
            };
            #[cfg(target_arch = "x86_64")]
            if let Kernel::ConvDirect(..) = kernel {
                // The padded input's words, aligned anywhere in the arena.
                scratch_len = scratch_len.max(crate::ops::x86::PADDED_WORDS * 4 + 3);
            }
            max_tensor = max_tensor.max(output_len);
            steps.push(Step {
                kernel,
                input_len,
                output_len,
            });
        }
        Ok(Self {
            model,
            tier,
            steps,
            max_tensor,
            scratch_len,
            graph: None,
        })
    }

    pub fn tier(&self) -> KernelTier {
        self.tier
    }

    pub fn model(&self) -> &Model<'a> {
        &self.model
    }

    /// A graph model's node kernels.
    #[cfg(test)]
    pub(crate) fn graph_kernels(&self) -> Option<&GraphKernels> {
        self.graph.as_ref()
    }

    /// Bytes of arena [`Self::infer_batch`] needs for `images` images (two tensors of the
    /// largest size per image, and one layer's scratch); `None` if that overflows `usize`.
    pub fn batch_arena_len(&self, images: usize) -> Option<usize> {
        if let Some(graph) = &self.graph {
            // One image at a time: the model's arena, then the host kernels' scratch.
            let _ = images.checked_mul(self.model.arena_len())?;
            return self.model.arena_len().checked_add(graph.scratch_len);
        }
        images
            .checked_mul(self.max_tensor)?
            .checked_mul(2)?
            .checked_add(self.scratch_len)
    }

    /// [`Model::infer_batch`] with the prepared kernels: the same checks, errors and logits.
    pub fn infer_batch(
        &self,
        images: &[u8],
        arena: &mut [u8],
        logits: &mut [i8],
    ) -> Result<usize, InferError> {
        let arena_len = |count| self.batch_arena_len(count);
        let batch = Batch::check(&self.model, images, arena, logits, arena_len)?;
        if let (Some(kernels), Some(graph)) = (&self.graph, self.model.graph()) {
            // Image by image, as `Model::infer_batch` runs a graph, with the nodes' kernels.
            return batch.each_image(self.model.arena_len(), |image, arena| {
                graph.run_with(image, arena, &mut |_| {}, kernels)
            });
        }
        let Batch {
            images,
            image_len,
            count,
            logits,
            arena,
            ..
        } = batch;
        let (tensors, scratch) = arena.split_at_mut(arena.len() - self.scratch_len);
        let (mut from, mut to) = tensors.split_at_mut(tensors.len() / 2);
        // x_q = pixel − 128 (scale 1/255, zero point −128) is a flip of the sign bit.
        for (dst, &pixel) in from.iter_mut().zip(images) {
            *dst = (pixel ^ 0x80) as i8;
        }
        let mut len = image_len;
        for step in &self.steps {
            let input = &from[..count * step.input_len];
            let output = &mut to[..count * step.output_len];
            step.run(input, output, count, scratch);
            (from, to) = (to, from);
            len = step.output_len;
        }
        logits.copy_from_slice(&from[..count * len]);
        Ok(count)
    }
}

/// The fastest kernel `tier` has for a convolution.
fn conv_kernel(op: Conv2dOp<'_>, tier: KernelTier, gemm: GemmKernel) -> Kernel<'_> {
    #[cfg(target_arch = "x86_64")]
    if let Some(packed) = crate::ops::x86::PackedConv::new(tier, &op) {
        return Kernel::ConvDirect(op, packed);
    }
    let _ = tier;
    Kernel::Conv(op, gemm)
}

impl Step<'_> {
    /// `count` images' inputs, back to back, into their outputs, with one image's scratch.
    fn run(&self, inputs: &[i8], outputs: &mut [i8], count: usize, scratch: &mut [i8]) {
        let (in_len, out_len) = (self.input_len.max(1), self.output_len.max(1));
        let images = inputs
            .chunks_exact(in_len)
            .zip(outputs.chunks_exact_mut(out_len))
            .take(count);
        match &self.kernel {
            #[cfg(target_arch = "x86_64")]
            Kernel::ConvDirect(op, packed) => {
                for (input, output) in images {
                    // The padded input's words in the scratch (which always holds them).
                    let (_, words, _) = bytemuck::pod_align_to_mut::<i8, u32>(scratch);
                    let ran = words
                        .first_chunk_mut()
                        .is_some_and(|padded| packed.run(op, input, output, padded));
                    if !ran {
                        op.run_portable(input, output, scratch);
                    }
                }
            }
            Kernel::Conv(op, gemm) => {
                for (input, output) in images {
                    op.run_portable_with(*gemm, input, output, scratch);
                }
            }
            Kernel::MaxPool(op) => {
                for (input, output) in images {
                    op.run(input, output);
                }
            }
            Kernel::Linear(op, gemm) => op.run_batch_with(*gemm, inputs, outputs),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_blob::Spec;
    use crate::test_util::{SplitMix, check_batch};

    crate::kernel_tests!(prepared_matches_model_infer);

    /// Random models (every layer kind, shapes the direct kernels take and refuse), random
    /// batches: the tier gives [`Model::infer`]'s logits.
    fn prepared_matches_model_infer(tier: KernelTier) {
        let mut rng = SplitMix::new(41);
        for _ in 0..150 {
            let spec = Spec::random(&mut rng);
            let blob = spec.to_blob();
            let model = Model::from_bytes(&blob).unwrap();
            let prepared = PreparedModel::with_tier(model.clone(), tier).unwrap();
            assert_eq!(prepared.tier(), tier);
            let count = rng.below(5) + 1;
            let mut arena = vec![0x5A; prepared.batch_arena_len(count).unwrap()];
            let mut one = vec![0; model.arena_len()];
            check_batch(
                &mut rng,
                (count, model.input_len(), model.num_classes()),
                |images, logits| prepared.infer_batch(images, &mut arena, logits),
                |image| model.infer(image, &mut one).unwrap().as_slice().to_vec(),
                &(tier, &spec),
            );
        }
    }

    #[test]
    fn refuses_what_model_refuses_and_unsupported_tiers() {
        let spec = Spec::seed(&mut SplitMix::new(1));
        let blob = spec.to_blob();
        let model = Model::from_bytes(&blob).unwrap();
        let prepared = PreparedModel::with_tier(model.clone(), KernelTier::Portable).unwrap();
        let need = prepared.batch_arena_len(2).unwrap();
        let mut arena = vec![0; need];
        let mut logits = [0; 20];
        assert_eq!(
            prepared.infer_batch(&[0; 785], &mut arena, &mut logits),
            Err(InferError::WrongBatchLength {
                image_len: 784,
                found: 785
            })
        );
        assert_eq!(
            prepared.infer_batch(&[0; 2 * 784], &mut arena[..need - 1], &mut logits),
            Err(InferError::ArenaTooSmall {
                needed: need,
                found: need - 1
            })
        );
        assert_eq!(
            prepared.infer_batch(&[0; 2 * 784], &mut arena, &mut logits[..19]),
            Err(InferError::OutputTooShort {
                needed: 20,
                found: 19
            })
        );
        for tier in KernelTier::ALL.into_iter().filter(|t| !t.is_supported()) {
            assert_eq!(
                PreparedModel::with_tier(model.clone(), tier).unwrap_err(),
                TierError::Unsupported { tier }
            );
        }
        let unknown = TierError::UnknownName {
            name: "avx3".into(),
        };
        assert!(unknown.to_string().contains("one of: portable, avx2"));
    }
}
