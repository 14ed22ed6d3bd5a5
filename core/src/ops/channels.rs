//! An operator's per-output-channel bias and requantization, as the blob stores them.

use crate::quant::Requantizer;

/// Per-output-channel bias and requantization, read straight from the blob.
#[derive(Clone, Copy, Debug)]
pub struct Channels<'a> {
    pub bias: &'a [[u8; 4]],
    pub multiplier: &'a [[u8; 4]],
    pub shift: &'a [i8],
    pub zero_point: i8,
    pub relu: bool,
}

impl<'a> Channels<'a> {
    /// `(bias, requantizer)` for every output channel, in order.
    pub fn iter(&self) -> impl Iterator<Item = (i32, Requantizer)> + 'a {
        let (zero_point, relu) = (self.zero_point, self.relu);
        self.bias.iter().zip(self.multiplier).zip(self.shift).map(
            move |((bias, multiplier), &shift)| {
                let requant =
                    Requantizer::new(i32::from_le_bytes(*multiplier), shift, zero_point, relu);
                (i32::from_le_bytes(*bias), requant)
            },
        )
    }

    /// The channels in consecutive blocks of `n` (the last one may be shorter), matching
    /// `weights.chunks(n · row_len)`.
    pub fn chunks(&self, n: usize) -> impl Iterator<Item = Channels<'a>> + 'a {
        let (zero_point, relu) = (self.zero_point, self.relu);
        let n = n.max(1);
        self.bias
            .chunks(n)
            .zip(self.multiplier.chunks(n))
            .zip(self.shift.chunks(n))
            .map(move |((bias, multiplier), shift)| Channels {
                bias,
                multiplier,
                shift,
                zero_point,
                relu,
            })
    }
}
