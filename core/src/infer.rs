//! Running a validated model: integers only, inside the caller's arena.

use core::fmt;

use micromath::F32Ext;

use crate::arena::{self, End};
use crate::format::layout::QuantParams;
use crate::model::Model;
use crate::ops::Kernels;
use crate::plan::Schedule;
use crate::stream;

/// Why `infer` (or a `Logits` helper) refused to run. A validated model never fails
/// otherwise.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InferError {
    /// The image is not `model.input_len()` bytes.
    WrongImageLength { expected: usize, found: usize },
    /// A batch is not a whole, non-zero number of `image_len`-byte images.
    WrongBatchLength { image_len: usize, found: usize },
    /// The arena is shorter than the model needs: `model.arena_len()` for `infer`,
    /// `model.min_arena_len_for(Kernels::NATIVE)` for `infer_streaming`,
    /// `model.batch_arena_len(n)` for a batch.
    ArenaTooSmall { needed: usize, found: usize },
    /// The buffer for per-class results is shorter than the number of classes.
    OutputTooShort { needed: usize, found: usize },
}

impl fmt::Display for InferError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::WrongImageLength { expected, found } => {
                write!(f, "image has {found} bytes, the model takes {expected}")
            }
            Self::WrongBatchLength { image_len, found } => write!(
                f,
                "batch has {found} bytes, not a whole non-zero number of {image_len}-byte images"
            ),
            Self::ArenaTooSmall { needed, found } => {
                write!(f, "arena has {found} bytes, the model needs {needed}")
            }
            Self::OutputTooShort { needed, found } => {
                write!(f, "output buffer has {found} slots, needs {needed}")
            }
        }
    }
}

impl core::error::Error for InferError {}

impl Model<'_> {
    /// Classifies one u8 image (C,H,W order, `input_len()` bytes) using `arena`
    /// (at least `arena_len()` bytes), and returns the int8 logits, which live in the arena.
    /// Every layer writes its whole output map: the fastest schedule.
    pub fn infer<'b>(&self, image: &[u8], arena: &'b mut [u8]) -> Result<Logits<'b>, InferError> {
        self.infer_observed(image, arena, &mut |_| {})
    }

    /// [`Self::infer`], calling `after(0)` once the image is in the arena and `after(n)` once
    /// the first `n` layers have run (a Flatten included): how a firmware times each layer.
    pub fn infer_observed<'b>(
        &self,
        image: &[u8],
        arena: &'b mut [u8],
        after: &mut dyn FnMut(usize),
    ) -> Result<Logits<'b>, InferError> {
        self.infer_one::<false>(image, arena, after)
    }

    /// [`Self::infer`] in an arena that may be shorter than `arena_len()`, down to
    /// [`Self::min_arena_len_for`] with [`Kernels::NATIVE`]: the fastest schedule the arena
    /// holds ([`Self::schedule_for_arena`]), which streams the early layers' rows instead of
    /// writing their whole maps where they do not fit. The same logits, bit for bit.
    ///
    /// A separate call so that a firmware running whole maps links none of the streaming
    /// code (about 8 KB of flash on a Cortex-M4).
    pub fn infer_streaming<'b>(
        &self,
        image: &[u8],
        arena: &'b mut [u8],
    ) -> Result<Logits<'b>, InferError> {
        self.infer_streaming_observed(image, arena, &mut |_| {})
    }

    /// [`Self::infer_streaming`] with [`Self::infer_observed`]'s callback; both layers of a
    /// streamed pair report together, when the pair ends.
    pub fn infer_streaming_observed<'b>(
        &self,
        image: &[u8],
        arena: &'b mut [u8],
        after: &mut dyn FnMut(usize),
    ) -> Result<Logits<'b>, InferError> {
        self.infer_one::<true>(image, arena, after)
    }

    /// One image, every layer writing its whole map or, with `STREAMING`, on the fastest
    /// schedule the arena holds. (A const parameter, so that a build calling only the
    /// whole-map entry points compiles none of the streaming code in.)
    fn infer_one<'b, const STREAMING: bool>(
        &self,
        image: &[u8],
        arena: &'b mut [u8],
        after: &mut dyn FnMut(usize),
    ) -> Result<Logits<'b>, InferError> {
        self.check_image(image)?;
        if self.graph().is_some() {
            // A graph's arena is planned whole at quantize time: nothing streams.
            let arena = arena_of(arena, self.arena_len())?;
            return self.run_graph(image, arena, after);
        }
        let schedule = match STREAMING {
            true => {
                let found = arena.len();
                let too_small = || InferError::ArenaTooSmall {
                    needed: self.min_arena_len_for(Kernels::NATIVE),
                    found,
                };
                self.schedule_for_arena(Kernels::NATIVE, found)
                    .ok_or_else(too_small)?
            }
            false => Schedule::whole(self.arena_len()),
        };
        let arena = arena_of(arena, schedule.arena_len)?;
        let values = self.run_layers::<STREAMING>(image, 1, arena, schedule, after)?;
        Ok(self.logits(values))
    }

    fn check_image(&self, image: &[u8]) -> Result<(), InferError> {
        let expected = self.input_len();
        if image.len() != expected {
            return Err(InferError::WrongImageLength {
                expected,
                found: image.len(),
            });
        }
        Ok(())
    }

    /// A graph model on one image, in an arena of exactly `arena_len()` bytes.
    // Never inlined: a chain's inference must not carry the graph runner's frame on its stack.
    #[inline(never)]
    fn run_graph<'b>(
        &self,
        image: &[u8],
        arena: &'b mut [i8],
        after: &mut dyn FnMut(usize),
    ) -> Result<Logits<'b>, InferError> {
        let too_small = InferError::ArenaTooSmall {
            needed: self.arena_len(),
            found: arena.len(),
        };
        let graph = self.graph().ok_or(too_small)?;
        let values = graph.run(image, arena, after).ok_or(too_small)?;
        Ok(self.logits(values))
    }

    fn logits<'b>(&self, values: &'b [i8]) -> Logits<'b> {
        Logits {
            values,
            quant: self.output_quant(),
        }
    }

    /// Bytes of arena [`Self::infer_batch`] needs for `images` images (`images ·
    /// arena_len()`); `None` if that overflows `usize`.
    pub fn batch_arena_len(&self, images: usize) -> Option<usize> {
        images.checked_mul(self.arena_len())
    }

    /// Classifies several images at once: `images` holds whole images back to back, `arena`
    /// at least [`Self::batch_arena_len`] bytes, and image `i`'s int8 logits go to
    /// `logits[i · num_classes()..][..num_classes()]`. Returns the number of images.
    ///
    /// The logits are those of [`Self::infer`] on each image, bit for bit. A batch lets
    /// Linear layers reuse every weight they load across the images, which is what makes it
    /// faster on a host whose caches cannot hold a layer's weights next to everything else.
    pub fn infer_batch(
        &self,
        images: &[u8],
        arena: &mut [u8],
        logits: &mut [i8],
    ) -> Result<usize, InferError> {
        let batch = Batch::check(self, images, arena, logits, |n| self.batch_arena_len(n))?;
        if let Some(graph) = self.graph() {
            // A graph runs image by image in the first `arena_len` bytes.
            return batch.each_image(self.arena_len(), |image, arena| {
                graph.run(image, arena, &mut |_| {})
            });
        }
        let whole = Schedule::whole(self.arena_len());
        let Batch {
            images,
            count,
            logits,
            arena,
            ..
        } = batch;
        logits.copy_from_slice(self.run_layers::<false>(
            images,
            count,
            arena,
            whole,
            &mut |_| {},
        )?);
        Ok(count)
    }

    /// Runs every layer on `count` images (already checked to be `count · input_len()`
    /// bytes) and returns their logits, back to back, inside `arena`.
    ///
    /// The batch's tensors ping-pong like one image's (see [`crate::arena`]), each holding
    /// every image's tensor back to back, with the gap between them as the layer's scratch:
    /// `count · arena_len()` bytes always suffice, as `arena_len()` covers every layer's
    /// input, output and scratch. With `STREAMING`, a pair `schedule` streams runs as one
    /// step (one image only), from the first layer's input to the second one's output;
    /// without, none of the streaming code is compiled in.
    // Never inlined where the graph engine is built in: a graph's inference, which goes the
    // other way, must not carry this frame on its stack. A chain-only build keeps it inlined
    // (less flash and stack for the chain).
    #[cfg_attr(feature = "graph", inline(never))]
    fn run_layers<'b, const STREAMING: bool>(
        &self,
        images: &[u8],
        count: usize,
        arena: &'b mut [i8],
        schedule: Schedule,
        after: &mut dyn FnMut(usize),
    ) -> Result<&'b [i8], InferError> {
        let too_small = InferError::ArenaTooSmall {
            needed: self.batch_arena_len(count).unwrap_or(usize::MAX),
            found: arena.len(),
        };
        // x_q = pixel − 128 (scale 1/255, zero point −128) is a flip of the sign bit.
        for (dst, &pixel) in arena.iter_mut().zip(images) {
            *dst = (pixel ^ 0x80) as i8;
        }
        let (mut end, mut len) = (End::Front, self.input_len());
        after(0);
        let mut layers = self.layers();
        // Layers run so far. Each layer is borrowed where the walk wrote it: moving it (or
        // its op) out, as an iterator would, is a `memcpy` call on a Cortex-M (flash).
        let mut done = 0;
        while let Some(Ok(layer)) = &layers.next_checked() {
            let (op, out_len) = (layer.op(), layer.output().len());
            let index = done;
            done += 1;
            if !op.computes() {
                after(done);
                continue;
            }
            if STREAMING && count == 1 && schedule.streams(index) {
                let out_len =
                    stream::run_with_next(op, &mut layers, arena, end, len).ok_or(too_small)?;
                (end, len) = (end.other(), out_len);
                after(done);
                done += 1;
                after(done);
                continue;
            }
            let (batch_in, batch_out) = (count.saturating_mul(len), count.saturating_mul(out_len));
            // The caller sized the arena for every layer, so this split always succeeds.
            let split = arena::split(arena, end, batch_in, batch_out).ok_or(too_small)?;
            if STREAMING {
                stream::run_layer(op, split.input, split.output, split.scratch);
            } else {
                op.run_batch(split.input, split.output, (len, out_len), split.scratch);
            }
            (end, len) = (end.other(), out_len);
            after(done);
        }
        let arena: &'b [i8] = arena;
        arena::tensor(arena, end, count.saturating_mul(len)).ok_or(too_small)
    }
}

/// The first `needed` bytes of `arena` as int8, or why not.
fn arena_of(arena: &mut [u8], needed: usize) -> Result<&mut [i8], InferError> {
    let found = arena.len();
    let arena = arena
        .get_mut(..needed)
        .ok_or(InferError::ArenaTooSmall { needed, found })?;
    Ok(bytemuck::must_cast_slice_mut(arena))
}

/// A batch checked against its model: whole images, and the logits and arena cut to size.
/// What [`Model::infer_batch`] and `PreparedModel::infer_batch` share.
pub(crate) struct Batch<'a> {
    pub(crate) images: &'a [u8],
    /// Bytes of one image.
    pub(crate) image_len: usize,
    /// Logits per image.
    pub(crate) classes: usize,
    /// Images in the batch, at least one.
    pub(crate) count: usize,
    /// Exactly `count · classes` slots.
    pub(crate) logits: &'a mut [i8],
    /// Exactly the `arena_len(count)` bytes the entry point asked for.
    pub(crate) arena: &'a mut [i8],
}

impl<'a> Batch<'a> {
    /// `images` must be a whole, non-zero number of `model`'s images, `logits` hold every
    /// image's classes, and `arena` hold `arena_len(count)` bytes (`None`: an overflow, which
    /// no arena holds); checked in that order, so that every entry point refuses a bad batch
    /// with the same error.
    pub(crate) fn check(
        model: &Model<'_>,
        images: &'a [u8],
        arena: &'a mut [u8],
        logits: &'a mut [i8],
        arena_len: impl FnOnce(usize) -> Option<usize>,
    ) -> Result<Self, InferError> {
        let image_len = model.input_len();
        let count = images.len() / image_len.max(1);
        if count == 0 || count.saturating_mul(image_len) != images.len() {
            return Err(InferError::WrongBatchLength {
                image_len,
                found: images.len(),
            });
        }
        let classes = model.num_classes();
        let needed = count.saturating_mul(classes);
        let too_short = InferError::OutputTooShort {
            needed,
            found: logits.len(),
        };
        let logits = logits.get_mut(..needed).ok_or(too_short)?;
        let arena = arena_of(arena, arena_len(count).unwrap_or(usize::MAX))?;
        Ok(Self {
            images,
            image_len,
            classes,
            count,
            logits,
            arena,
        })
    }

    /// Runs `run` on each image in turn, in the whole arena, and copies the logits it returns
    /// to the image's slots: how a graph runs a batch. `run` fails only on an arena shorter
    /// than `needed`, which the check already excluded.
    pub(crate) fn each_image<F>(self, needed: usize, mut run: F) -> Result<usize, InferError>
    where
        F: for<'r> FnMut(&[u8], &'r mut [i8]) -> Option<&'r [i8]>,
    {
        let too_small = InferError::ArenaTooSmall {
            needed,
            found: self.arena.len(),
        };
        let images = self.images.chunks_exact(self.image_len.max(1));
        for (image, out) in images.zip(self.logits.chunks_exact_mut(self.classes.max(1))) {
            let values = run(image, &mut *self.arena).ok_or(too_small)?;
            for (dst, &v) in out.iter_mut().zip(values) {
                *dst = v;
            }
        }
        Ok(self.count)
    }
}

/// The int8 class scores of one inference, borrowed from the arena.
#[derive(Clone, Copy, Debug)]
pub struct Logits<'a> {
    values: &'a [i8],
    quant: QuantParams,
}

impl<'a> Logits<'a> {
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Never true for a validated model's output; here for API completeness.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The int8 logit of class `i`.
    pub fn get(&self, i: usize) -> Option<i8> {
        self.values.get(i).copied()
    }

    pub fn as_slice(&self) -> &'a [i8] {
        self.values
    }

    pub fn iter(&self) -> impl Iterator<Item = i8> + 'a {
        self.values.iter().copied()
    }

    /// Scale and zero point of the logits.
    pub fn quant(&self) -> QuantParams {
        self.quant
    }

    /// The predicted class: the index of the largest logit, the first one on ties.
    pub fn argmax(&self) -> usize {
        let first_max = |(best, max), (i, &v)| if v > max { (i, v) } else { (best, max) };
        self.values
            .iter()
            .enumerate()
            .fold((0, i8::MIN), first_max)
            .0
    }

    /// The real value of logit `i`: `scale · (q − zero_point)`.
    pub fn dequantize(&self, i: usize) -> Option<f32> {
        self.get(i).map(|q| self.dequantize_value(q))
    }

    /// Class probabilities into `out[..len()]`. Floating point, off the integer hot path.
    pub fn softmax(&self, out: &mut [f32]) -> Result<(), InferError> {
        let too_short = InferError::OutputTooShort {
            needed: self.len(),
            found: out.len(),
        };
        let out = out.get_mut(..self.len()).ok_or(too_short)?;
        // Subtract the largest logit in the integer domain: the difference is ≤ 0 and finite,
        // whereas dequantizing first turns an extreme scale into inf and inf − inf into NaN.
        let max = self.iter().max().unwrap_or(0);
        let mut sum = 0.0;
        for (p, q) in out.iter_mut().zip(self.iter()) {
            let below_max = f32::from(i16::from(q) - i16::from(max));
            // exp underflows to 0 well above −104; clamping also turns −inf into a number.
            let x = (self.quant.scale * below_max).max(-104.0);
            // micromath on every target, so host and microcontroller agree.
            *p = F32Ext::exp(x);
            sum += *p;
        }
        // sum ≥ 1: the largest logit contributes exp(0).
        for p in out.iter_mut() {
            *p /= sum;
        }
        Ok(())
    }

    fn dequantize_value(&self, q: i8) -> f32 {
        self.quant.dequantize(q)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_blob::Spec;
    use crate::test_util::{SplitMix, check_batch};

    #[test]
    fn softmax_is_a_distribution_for_any_scale() {
        let values = [-128_i8, -1, 0, 5, 127, 127];
        for scale in [f32::MIN_POSITIVE, 1e-3, 1.0, 1e6, 1e38, f32::MAX] {
            let logits = Logits {
                values: &values,
                quant: QuantParams {
                    scale,
                    zero_point: -3,
                },
            };
            let mut out = [0.0_f32; 6];
            logits.softmax(&mut out).unwrap();
            assert!(
                out.iter().all(|p| (0.0..=1.0).contains(p)),
                "{scale}: {out:?}"
            );
            let sum: f32 = out.iter().sum();
            assert!(
                approx::abs_diff_eq!(sum, 1.0, epsilon = 1e-4),
                "{scale}: {out:?}"
            );
        }
    }

    #[test]
    fn random_models_match_the_reference() {
        let mut rng = SplitMix::new(21);
        let mut classes_seen = [false; 2];
        for _ in 0..300 {
            let spec = Spec::random(&mut rng);
            let blob = spec.to_blob();
            let model = Model::from_bytes(&blob).unwrap_or_else(|e| panic!("{e}: {spec:?}"));
            let mut arena = vec![0x5A; model.arena_len()];
            for _ in 0..3 {
                let image = rng.u8s(model.input_len());
                let logits = model.infer(&image, &mut arena).unwrap();
                let expected = spec.reference(&image);
                assert_eq!(logits.as_slice(), &expected[..], "{spec:?}");
                classes_seen[usize::from(logits.argmax() > 0)] = true;
            }
        }
        // Predictions vary, so the comparison covered more than constant outputs.
        assert_eq!(classes_seen, [true, true]);
    }

    #[test]
    fn batches_match_one_image_at_a_time() {
        let mut rng = SplitMix::new(23);
        for _ in 0..100 {
            let spec = Spec::random(&mut rng);
            let blob = spec.to_blob();
            let model = Model::from_bytes(&blob).unwrap_or_else(|e| panic!("{e}: {spec:?}"));
            let count = rng.below(9) + 1;
            let mut arena = vec![0x5A; model.batch_arena_len(count).unwrap()];
            check_batch(
                &mut rng,
                (count, model.input_len(), model.num_classes()),
                |images, logits| model.infer_batch(images, &mut arena, logits),
                |image| spec.reference(image),
                &spec,
            );
        }
    }

    #[test]
    fn bad_batches_are_refused() {
        let spec = Spec::seed(&mut SplitMix::new(1));
        let blob = spec.to_blob();
        let model = Model::from_bytes(&blob).unwrap();
        const ARENA: usize = 9408 + 288;
        let mut arena = vec![0; 3 * ARENA];
        let mut logits = [0; 30];
        for found in [0, 783, 785, 3 * 784 - 1] {
            assert_eq!(
                model.infer_batch(&vec![0; found], &mut arena, &mut logits),
                Err(InferError::WrongBatchLength {
                    image_len: 784,
                    found
                })
            );
        }
        let images = [0; 3 * 784];
        assert_eq!(
            model.infer_batch(&images, &mut arena[..3 * ARENA - 1], &mut logits),
            Err(InferError::ArenaTooSmall {
                needed: 3 * ARENA,
                found: 3 * ARENA - 1
            })
        );
        assert_eq!(
            model.infer_batch(&images, &mut arena, &mut logits[..29]),
            Err(InferError::OutputTooShort {
                needed: 30,
                found: 29
            })
        );
        assert_eq!(model.batch_arena_len(usize::MAX), None);
    }

    /// The seed model's layout: conv 1→8 3×3 pad 1 + ReLU; conv 8→16 3×3 pad 1 + ReLU +
    /// MaxPool 2; Flatten; Linear 3136→256 + ReLU; Linear 256→10.
    #[test]
    fn seed_model_round_trip_and_arena() {
        let spec = Spec::seed(&mut SplitMix::new(1));
        let blob = spec.to_blob();
        let model = Model::from_bytes(&blob).unwrap();
        // Conv2 reads 8×28×28 and writes 16×14×14 (6272 + 3136), working between them in
        // four 72-byte im2col patches, or in the Cortex-M4 path's 4951 bytes of buffers.
        assert_eq!(model.arena_len(), 9408 + 288);
        assert_eq!(
            model.arena_len_for(crate::Kernels::CortexM4Dsp),
            9408 + 4951
        );
        assert_eq!(model.input_len(), 784);
        assert_eq!(model.num_classes(), 10);
        assert_eq!(model.layers().len(), 5);
        assert_eq!(
            model.macs(),
            8 * 784 * 9 + 16 * 784 * 72 + 3136 * 256 + 256 * 10
        );
        println!(
            "seed-shaped blob: {} bytes, arena: {} bytes",
            blob.len(),
            model.arena_len()
        );
        let mut arena = [0_u8; 9408 + 288];
        let mut rng = SplitMix::new(2);
        for _ in 0..3 {
            let image = rng.u8s(784);
            let logits = model.infer(&image, &mut arena).unwrap();
            assert_eq!(logits.as_slice(), &spec.reference(&image)[..]);
        }
    }

    #[test]
    fn observed_inference_reports_every_layer_in_order() {
        let spec = Spec::seed(&mut SplitMix::new(1));
        let blob = spec.to_blob();
        let model = Model::from_bytes(&blob).unwrap();
        let image = SplitMix::new(3).u8s(784);
        let mut arena = vec![0; model.arena_len()];
        let mut seen = Vec::new();
        let logits = model
            .infer_observed(&image, &mut arena, &mut |n| seen.push(n))
            .unwrap();
        assert_eq!(logits.as_slice(), &spec.reference(&image)[..]);
        assert_eq!(seen, [0, 1, 2, 3, 4, 5]);
    }

    #[test]
    fn bad_image_or_arena_is_refused() {
        let spec = Spec::seed(&mut SplitMix::new(1));
        let blob = spec.to_blob();
        let model = Model::from_bytes(&blob).unwrap();
        const ARENA: usize = 9408 + 288;
        let mut arena = vec![0; ARENA];
        assert_eq!(
            model.infer(&[0; 783], &mut arena).unwrap_err(),
            InferError::WrongImageLength {
                expected: 784,
                found: 783
            }
        );
        assert_eq!(
            model.infer(&[0; 784], &mut arena[..ARENA - 1]).unwrap_err(),
            InferError::ArenaTooSmall {
                needed: ARENA,
                found: ARENA - 1
            }
        );
        // `infer_streaming` runs there, streaming; below the least arena no schedule fits,
        // and the error names the least.
        let least = model.min_arena_len_for(Kernels::NATIVE);
        assert!(least < ARENA);
        let image = SplitMix::new(6).u8s(784);
        let streamed = model.infer_streaming(&image, &mut arena[..least]).unwrap();
        assert_eq!(streamed.as_slice(), &spec.reference(&image)[..]);
        assert_eq!(
            model
                .infer_streaming(&[0; 784], &mut arena[..least - 1])
                .unwrap_err(),
            InferError::ArenaTooSmall {
                needed: least,
                found: least - 1
            }
        );
        // A larger arena works and gives the same answer.
        let image = SplitMix::new(5).u8s(784);
        let exact = model.infer(&image, &mut arena).unwrap().as_slice().to_vec();
        let mut big = vec![0; 20_000];
        assert_eq!(
            model.infer(&image, &mut big).unwrap().as_slice(),
            &exact[..]
        );
    }

    fn logits(values: &[i8], scale: f32, zero_point: i8) -> Logits<'_> {
        Logits {
            values,
            quant: QuantParams { scale, zero_point },
        }
    }

    #[test]
    fn logits_helpers() {
        let l = logits(&[-3, 7, 7, -128], 0.5, -1);
        assert_eq!(l.len(), 4);
        assert_eq!(l.argmax(), 1, "first max wins");
        assert_eq!(logits(&[-128, -128], 1.0, 0).argmax(), 0);
        assert_eq!(l.get(1), Some(7));
        assert_eq!(l.get(4), None);
        assert_eq!(l.dequantize(0), Some(-1.0));
        assert_eq!(l.dequantize(3), Some(-63.5));
        assert_eq!(l.iter().collect::<Vec<_>>(), [-3, 7, 7, -128]);

        let mut p = [0.0; 4];
        l.softmax(&mut p).unwrap();
        approx::assert_abs_diff_eq!(p.iter().sum::<f32>(), 1.0, epsilon = 1e-4);
        // exp(0.5·(−3 − 7)) / (2 + exp(−5) + ...) relative to the maxima.
        approx::assert_abs_diff_eq!(p[1], p[2]);
        approx::assert_relative_eq!(p[0] / p[1], (-5.0_f32).exp(), max_relative = 1e-3);
        assert!(p[3] < 1e-20);
        assert_eq!(
            l.softmax(&mut [0.0; 3]).unwrap_err(),
            InferError::OutputTooShort {
                needed: 4,
                found: 3
            }
        );
    }
}
