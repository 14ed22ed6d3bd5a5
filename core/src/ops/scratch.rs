//! Scratch: the working memory kernels take from the caller's arena instead of the stack.
//!
//! A layer runs with its input at one end of the arena and its output at the other
//! (`crate::arena`); the gap between them is its scratch. `Model::arena_len` counts, for
//! every layer, input + scratch + output, with the scratch of the hungriest kernel any target
//! may run for that layer (the Cortex-M4 DSP paths or the portable ones), so that one figure,
//! computed on the host at build time, is right for every target.
//!
//! What each kernel takes:
//! - Conv2d on the Cortex-M4 ([`DspConvLayout`]): its prepared requantizers, its weights
//!   interleaved as int16 pairs, a ring of input rows converted to int16, one patch, and two
//!   sets of accumulators (4,951 bytes for the seed model's second conv).
//! - Conv2d, portable im2col: [`crate::ops::conv2d::PATCH_BYTES`] of patches and up to
//!   [`crate::ops::conv2d::PADDED_WEIGHT_BYTES`] of zero-padded weights.
//! - Linear on the Cortex-M4: its input unpacked to int16 pairs (2 bytes a feature).
//! - Everything else: nothing. The kernels keep only fixed arrays of a few hundred bytes at
//!   most on the stack (gemm's 256 bytes of accumulators, the conv's ring bookkeeping).

/// Bytes lost, at most, to aligning a scratch slice to a word boundary.
const ALIGN_SLACK: usize = 3;

/// The whole words of `scratch` that start on a 4-byte boundary.
#[cfg(qcnn_arm_dsp)]
pub(crate) fn words(scratch: &mut [i8]) -> &mut [u32] {
    bytemuck::pod_align_to_mut::<i8, u32>(scratch).1
}

/// Bytes of scratch a kernel needing `words` aligned words asks for.
fn word_bytes(words: usize) -> Option<usize> {
    words.checked_mul(4)?.checked_add(ALIGN_SLACK)
}

/// Output channels one pass of the Cortex-M4 conv kernel computes.
pub(crate) const GROUP: usize = 4;
/// Most output channels the Cortex-M4 conv path takes.
const MAX_CHANNELS: usize = 32;
/// Most words in one patch: the seed model's second conv needs 3 × 12.
const MAX_PATCH_WORDS: usize = 64;
/// Most interleaved weight words: groups × (4 biases + 4 × patch words); 592 for the seed model.
const MAX_WEIGHT_WORDS: usize = 640;
/// Most words of converted rows (two int16 values a word): 481 for the seed model.
const MAX_RING_WORDS: usize = 768;
/// Most rows in the ring.
pub(crate) const MAX_RING_ROWS: usize = 8;
/// Most kernel rows one pooled output reads (pool kernel × kernel; with at most
/// [`MAX_RING_ROWS`] rows in the ring, 4 × 5 is the most): the ring's bookkeeping on the
/// stack holds one offset per kernel row.
pub(crate) const MAX_KERNEL_ROWS: usize = 20;

/// How the Cortex-M4 convolution's ring holds its input rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RingValues {
    /// Converted once to int16 (two values a word): a patch row is a plain word copy. The
    /// whole-map schedule, where speed comes first.
    Int16,
    /// Kept as int8, written there directly by a streamed producer, and sign-extended with
    /// SXTB16 while a patch is filled: half the ring, a few instructions more per patch. The
    /// streamed schedule, where RAM comes first.
    Int8,
}

/// The layout of the Cortex-M4 convolution's scratch: the interleaved weights, the patches,
/// the row ring (see `ops::arm_dsp::conv2d`). `None` from [`Self::new`] when a layer is
/// outside the path's limits and runs the portable code instead.
#[cfg_attr(not(qcnn_arm_dsp), allow(dead_code))] // the kernel reads the rest on the M4
pub(crate) struct DspConvLayout {
    /// Input channels.
    pub c: usize,
    pub k: usize,
    /// Output channels.
    pub channels: usize,
    /// Words per kernel row of a patch: ⌈K·C / 2⌉ (int16 ring), 2·⌈K·C / 4⌉ (int8 ring,
    /// whose rows are read a word of four values at a time).
    pub row_words: usize,
    /// Words per patch: `k · row_words` rounded up to a multiple of 4.
    pub patch_words: usize,
    pub groups: usize,
    /// Values per converted row: (W + 2·padding) · C.
    pub row_values: usize,
    /// Rows in the ring.
    pub ring_rows: usize,
    /// Words of the ring, the spare values a patch row's last word may read included.
    pub ring_words: usize,
}

/// The layer parameters the layout depends on.
pub(crate) struct ConvGeometry {
    pub in_channels: usize,
    pub in_width: usize,
    pub out_channels: usize,
    pub kernel: usize,
    pub stride: usize,
    pub padding: usize,
    pub pool_kernel: usize,
    pub pool_stride: usize,
}

impl DspConvLayout {
    /// The whole-map layout (int16 ring).
    pub fn new(g: &ConvGeometry) -> Option<Self> {
        Self::with_ring(g, RingValues::Int16)
    }

    pub fn with_ring(g: &ConvGeometry, ring: RingValues) -> Option<Self> {
        let (c, k, out) = (g.in_channels, g.kernel, g.out_channels);
        let row_words = match ring {
            RingValues::Int16 => k.checked_mul(c)?.div_ceil(2),
            RingValues::Int8 => k.checked_mul(c)?.div_ceil(4).checked_mul(2)?,
        };
        let patch_words = k.checked_mul(row_words)?.next_multiple_of(4);
        let groups = out.div_ceil(GROUP);
        let row_values = g
            .in_width
            .checked_add(g.padding.checked_mul(2)?)?
            .checked_mul(c)?;
        let ring_rows = g
            .pool_kernel
            .checked_sub(1)?
            .checked_mul(g.stride)?
            .checked_add(k)?;
        let ring_values = ring_rows.checked_mul(row_values)?;
        let ring_words = match ring {
            RingValues::Int16 => ring_values.checked_add(2)?.div_ceil(2),
            // A patch row's last word may read up to three values past the row.
            RingValues::Int8 => ring_values.checked_add(3)?.div_ceil(4),
        };
        let fits = (1..=MAX_CHANNELS).contains(&out)
            && k >= 1
            && (1..=MAX_PATCH_WORDS).contains(&patch_words)
            && groups * (GROUP + GROUP * patch_words) <= MAX_WEIGHT_WORDS
            && ring_words <= MAX_RING_WORDS
            && ring_rows <= MAX_RING_ROWS
            && g.pool_kernel.checked_mul(k)? <= MAX_KERNEL_ROWS
            && g.stride >= 1
            && g.pool_stride >= 1;
        fits.then_some(Self {
            c,
            k,
            channels: out,
            row_words,
            patch_words,
            groups,
            row_values,
            ring_rows,
            ring_words,
        })
    }

    /// Words of prepared requantizers: six per channel.
    pub fn requant_words(&self) -> usize {
        6 * self.channels
    }

    /// Words of interleaved weights: per group, 4 biases and 4 words per patch word.
    pub fn weight_words(&self) -> usize {
        self.groups * (GROUP + GROUP * self.patch_words)
    }

    /// Accumulators of one set: four per group.
    pub fn acc_words(&self) -> usize {
        GROUP * self.groups
    }

    /// All the scratch words: requantizers, weights, ring, patch, two sets of accumulators.
    pub fn total_words(&self) -> usize {
        self.requant_words()
            + self.weight_words()
            + self.ring_words
            + self.patch_words
            + 2 * self.acc_words()
    }

    pub fn scratch_bytes(&self) -> usize {
        word_bytes(self.total_words()).unwrap_or(usize::MAX)
    }
}

/// Input bytes per iteration of the Cortex-M4 Linear loop; shorter inputs run the portable dot.
pub(crate) const LINEAR_STEP: usize = 32;

/// Scratch of the Cortex-M4 Linear path for `in_features` inputs: the input as int16 pairs.
pub(crate) fn dsp_linear_bytes(in_features: usize) -> usize {
    if in_features < LINEAR_STEP {
        return 0;
    }
    word_bytes(in_features.div_ceil(2)).unwrap_or(usize::MAX)
}

/// The least scratch the Cortex-M4 Linear path runs in, unpacking its input in blocks: an
/// i32 accumulator per output and one [`LINEAR_STEP`] of unpacked input. Never more than
/// [`dsp_linear_bytes`].
pub(crate) fn dsp_linear_min_bytes(in_features: usize, out_features: usize) -> usize {
    let blocked = out_features
        .checked_add(LINEAR_STEP / 2)
        .and_then(word_bytes)
        .unwrap_or(usize::MAX);
    blocked.min(dsp_linear_bytes(in_features))
}
