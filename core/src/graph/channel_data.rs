//! A Conv's or Gemm's per-output-channel data as the graph's kernels read it, straight from
//! the blob: bias, requantization, output zero point and the fused activation's clamp.

use crate::quant::Requantizer;

/// Per-output-channel bias and requantization, straight from the blob.
#[derive(Clone, Copy, Debug)]
pub struct ChannelData<'a> {
    pub bias: &'a [[u8; 4]],
    pub multiplier: &'a [[u8; 4]],
    pub shift: &'a [i8],
    pub zero_point: i8,
    pub clamp: [i8; 2],
}

impl ChannelData<'_> {
    pub(crate) fn channel(&self, o: usize) -> (i32, Requantizer) {
        let word = |s: &[[u8; 4]]| s.get(o).map_or(0, |w| i32::from_le_bytes(*w));
        let shift = self.shift.get(o).copied().unwrap_or(0);
        (
            word(self.bias),
            Requantizer::new(word(self.multiplier), shift, self.zero_point, false),
        )
    }

    /// Whether a channel's multiplier is negative: never in a validated blob; the fast kernels
    /// then decline the node, and the portable code writes every output.
    #[inline]
    pub(crate) fn any_negative_multiplier(&self) -> bool {
        self.multiplier.iter().any(|m| i32::from_le_bytes(*m) < 0)
    }

    #[inline(always)]
    pub(crate) fn finish(&self, requant: &Requantizer, acc: i32) -> i8 {
        clamp(requant.apply(acc), self.clamp)
    }
}

pub(crate) fn clamp(q: i8, [lo, hi]: [i8; 2]) -> i8 {
    q.max(lo).min(hi)
}
