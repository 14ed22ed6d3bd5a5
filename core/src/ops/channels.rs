//! An operator's per-output-channel bias and requantization, as the blob stores them.

use crate::quant::Requantizer;

/// Per-output-channel bias and requantization, read straight from the blob. Only
/// [`Self::new`] builds one, so its three slices always have one entry per channel.
#[derive(Clone, Copy, Debug)]
pub struct Channels<'a> {
    pub(crate) bias: &'a [[u8; 4]],
    pub(crate) multiplier: &'a [[u8; 4]],
    pub(crate) shift: &'a [i8],
    pub(crate) zero_point: i8,
    pub(crate) relu: bool,
}

impl<'a> Channels<'a> {
    /// Little-endian bias and multiplier words and a shift per channel, all as long;
    /// `None` if their lengths differ.
    pub fn new(
        bias: &'a [[u8; 4]],
        multiplier: &'a [[u8; 4]],
        shift: &'a [i8],
        zero_point: i8,
        relu: bool,
    ) -> Option<Self> {
        (bias.len() == multiplier.len() && bias.len() == shift.len()).then_some(Self {
            bias,
            multiplier,
            shift,
            zero_point,
            relu,
        })
    }

    /// Output channels.
    pub fn len(&self) -> usize {
        self.bias.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bias.is_empty()
    }

    /// The output zero point every channel requantizes to.
    pub fn zero_point(&self) -> i8 {
        self.zero_point
    }

    /// Channels `range`; `None` where it falls outside.
    pub fn slice(&self, range: core::ops::Range<usize>) -> Option<Self> {
        Some(Self {
            bias: self.bias.get(range.clone())?,
            multiplier: self.multiplier.get(range.clone())?,
            shift: self.shift.get(range)?,
            ..*self
        })
    }

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
