//! The layer-sequence header's decoder, written by hand: the same bytes postcard writes for a
//! [`Header`](super::layout::Header), read without serde. Through postcard the loader and the
//! per-layer walk linked three monomorphized `take_from_bytes`, serde's sequence visitor and
//! `memcpy`s of the decoded `Layer`, about 2 KB of a Cortex-M4 runtime's flash; this reads
//! each field in place. The host's encoder stays on postcard (`write.rs`), so the wire bytes
//! are postcard's; the tests hold this decoder to postcard's on valid and damaged bytes.
//!
//! postcard's rules, as used by the header's types: `u8`/`i8` one byte; `u16`/`u32` LEB128
//! varints of at most 3/5 bytes whose last byte holds only the bits left (2/4), longer
//! encodings of a value accepted; `bool` and an `Option`'s tag one byte, 0 or 1; an enum's
//! variant a `u32` varint; `f32` four bytes, little-endian; struct fields in order.

use super::layout::{Conv2d, Layer, Linear, Pool, QuantParams, Requant, Section, Shape};

/// Reads header fields from the front of `rest`. A read past the end or of a value postcard
/// would refuse marks the decoder failed and gives 0; the public reads then return `None`.
/// One flag checked at the end, rather than a branch after every field, keeps the code
/// small (flash, on a microcontroller).
pub(crate) struct Decoder<'a> {
    rest: &'a [u8],
    failed: bool,
}

impl<'a> Decoder<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Self {
            rest: bytes,
            failed: false,
        }
    }

    /// The bytes not read yet.
    pub(crate) fn rest(&self) -> &'a [u8] {
        self.rest
    }

    fn ok<T>(&self, value: T) -> Option<T> {
        (!self.failed).then_some(value)
    }

    // Not inlined, as `varint` and `section`: a call where each field is read, not a copy
    // of the bounds check (these run once per layer per inference, not per MAC).
    #[inline(never)]
    fn byte(&mut self) -> u8 {
        match self.rest.split_first() {
            Some((&byte, rest)) => {
                self.rest = rest;
                byte
            }
            None => {
                self.failed = true;
                0
            }
        }
    }

    /// A LEB128 varint of at most `max_len` bytes, the last holding at most `last_max`.
    // Reads its bytes itself rather than through `byte`: most fields are varints, and the
    // layers are decoded again at every inference.
    #[inline(never)]
    fn varint(&mut self, max_len: u32, last_max: u8) -> u32 {
        let mut value = 0_u32;
        for (i, &byte) in (0..max_len).zip(self.rest) {
            value |= u32::from(byte & 0x7F).wrapping_shl(7 * i);
            if byte & 0x80 == 0 {
                self.rest = self.rest.get(i as usize + 1..).unwrap_or_default();
                self.failed |= i + 1 == max_len && byte > last_max;
                return value;
            }
        }
        // Out of bytes, or `max_len` of them all with the continuation bit.
        self.failed = true;
        value
    }

    fn varint_u32(&mut self) -> u32 {
        self.varint(5, 0x0F)
    }

    fn varint_u16(&mut self) -> u16 {
        u16::try_from(self.varint(3, 0x03)).unwrap_or_default()
    }

    /// A `bool`, or an `Option`'s tag (1: `Some`).
    fn flag(&mut self) -> bool {
        let byte = self.byte();
        self.failed |= byte > 1;
        byte == 1
    }

    fn f32(&mut self) -> f32 {
        let bytes = [self.byte(), self.byte(), self.byte(), self.byte()];
        f32::from_le_bytes(bytes)
    }

    fn pool(&mut self) -> Pool {
        Pool {
            kernel: self.byte(),
            stride: self.byte(),
        }
    }

    #[inline(never)]
    fn section(&mut self) -> Section {
        Section {
            offset: self.varint_u32(),
            len: self.varint_u32(),
        }
    }

    #[inline(never)]
    fn requant(&mut self) -> Requant {
        Requant {
            bias: self.section(),
            multiplier: self.section(),
            shift: self.section(),
            output: QuantParams {
                scale: self.f32(),
                zero_point: self.byte().cast_signed(),
            },
            weight_scales: self.section(),
        }
    }

    pub(crate) fn u32(&mut self) -> Option<u32> {
        let value = self.varint_u32();
        self.ok(value)
    }

    pub(crate) fn shape(&mut self) -> Option<Shape> {
        let shape = Shape {
            c: self.varint_u16(),
            h: self.varint_u16(),
            w: self.varint_u16(),
        };
        self.ok(shape)
    }

    pub(crate) fn layer(&mut self) -> Option<Layer> {
        let layer = match self.varint_u32() {
            0 => Layer::Conv2d(Conv2d {
                in_channels: self.varint_u16(),
                out_channels: self.varint_u16(),
                kernel: self.byte(),
                stride: self.byte(),
                padding: self.byte(),
                relu: self.flag(),
                pool: match self.flag() {
                    true => Some(self.pool()),
                    false => None,
                },
                weights: self.section(),
                requant: self.requant(),
            }),
            1 => Layer::MaxPool2d(self.pool()),
            2 => Layer::Flatten,
            3 => Layer::Linear(Linear {
                in_features: self.varint_u32(),
                out_features: self.varint_u32(),
                relu: self.flag(),
                weights: self.section(),
                requant: self.requant(),
            }),
            _ => return None,
        };
        self.ok(layer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::SplitMix;

    fn section(rng: &mut SplitMix) -> Section {
        // Small and large values, so that varints of every length occur.
        let mut value = || match rng.below(3) {
            0 => rng.below(128) as u32,
            1 => rng.below(1 << 20) as u32,
            _ => rng.next() as u32,
        };
        Section {
            offset: value(),
            len: value(),
        }
    }

    fn requant(rng: &mut SplitMix) -> Requant {
        Requant {
            bias: section(rng),
            multiplier: section(rng),
            shift: section(rng),
            output: QuantParams {
                scale: f32::from_bits(rng.next() as u32),
                zero_point: rng.next() as i8,
            },
            weight_scales: section(rng),
        }
    }

    fn random_layer(rng: &mut SplitMix) -> Layer {
        let pool = |rng: &mut SplitMix| Pool {
            kernel: rng.next() as u8,
            stride: rng.next() as u8,
        };
        match rng.below(4) {
            0 => Layer::Conv2d(Conv2d {
                in_channels: rng.next() as u16,
                out_channels: rng.below(300) as u16,
                kernel: rng.next() as u8,
                stride: rng.next() as u8,
                padding: rng.next() as u8,
                relu: rng.below(2) == 1,
                pool: (rng.below(2) == 1).then(|| pool(rng)),
                weights: section(rng),
                requant: requant(rng),
            }),
            1 => Layer::MaxPool2d(pool(rng)),
            2 => Layer::Flatten,
            _ => Layer::Linear(Linear {
                in_features: rng.next() as u32,
                out_features: rng.below(5000) as u32,
                relu: rng.below(2) == 1,
                weights: section(rng),
                requant: requant(rng),
            }),
        }
    }

    fn encoded<T: serde::Serialize>(value: &T) -> Vec<u8> {
        let mut buf = [0; 128];
        postcard::to_slice(value, &mut buf).unwrap().to_vec()
    }

    /// A decoded layer (as its `Debug` text) and the bytes after it.
    type Reading<'a> = Option<(String, &'a [u8])>;

    /// Our reading of `bytes` as a `Layer` and the rest, and postcard's, compared as text (a
    /// NaN scale is not equal to itself).
    fn both(bytes: &[u8]) -> (Reading<'_>, Reading<'_>) {
        let ours = {
            let mut decoder = Decoder::new(bytes);
            decoder.layer().map(|l| (format!("{l:?}"), decoder.rest()))
        };
        let theirs = postcard::take_from_bytes::<Layer>(bytes)
            .ok()
            .map(|(l, rest)| (format!("{l:?}"), rest));
        (ours, theirs)
    }

    #[test]
    fn decodes_what_postcard_writes() {
        let mut rng = SplitMix::new(13);
        for _ in 0..2000 {
            let layer = random_layer(&mut rng);
            let mut bytes = encoded(&layer);
            bytes.extend_from_slice(&[0xA5, 7]);
            let mut decoder = Decoder::new(&bytes);
            let decoded = decoder.layer().unwrap();
            assert_eq!(format!("{decoded:?}"), format!("{layer:?}"));
            assert_eq!(decoder.rest(), [0xA5, 7]);
        }
    }

    #[test]
    fn agrees_with_postcard_on_damaged_bytes() {
        let mut rng = SplitMix::new(31);
        let (mut refused, mut read) = (0, 0);
        for _ in 0..20_000 {
            let layer = random_layer(&mut rng);
            let mut bytes = encoded(&layer);
            // Flip bytes, cut the end, or set varint continuation bits.
            for _ in 0..1 + rng.below(3) {
                let at = rng.below(bytes.len());
                match rng.below(3) {
                    0 => bytes[at] = rng.next() as u8,
                    1 => bytes[at] |= 0x80,
                    _ => bytes.truncate(at),
                }
                if bytes.is_empty() {
                    break;
                }
            }
            let (ours, theirs) = both(&bytes);
            assert_eq!(ours, theirs, "{bytes:02x?}");
            if theirs.is_some() {
                read += 1;
            } else {
                refused += 1;
            }
        }
        assert!(
            refused > 1000 && read > 1000,
            "{refused} refused, {read} read"
        );
    }

    #[test]
    fn varints_follow_postcards_limits() {
        let u16s: &[&[u8]] = &[
            &[0x80, 0x00],
            &[0xFF, 0xFF, 0x03],
            &[0xFF, 0xFF, 0x04],
            &[0x80, 0x80, 0x80],
            &[0x7F],
            &[0x80],
            &[],
        ];
        for &bytes in u16s {
            let mut decoder = Decoder::new(bytes);
            let value = decoder.varint_u16();
            let ours = decoder.ok(value);
            let theirs = postcard::take_from_bytes::<u16>(bytes).ok().map(|v| v.0);
            assert_eq!(ours, theirs, "{bytes:02x?}");
        }
        let u32s: &[&[u8]] = &[
            &[0xFF, 0xFF, 0xFF, 0xFF, 0x0F],
            &[0xFF, 0xFF, 0xFF, 0xFF, 0x10],
            &[0x80, 0x80, 0x80, 0x80, 0x80, 0x00],
            &[0x80, 0x80, 0x80, 0x80, 0x00],
        ];
        for &bytes in u32s {
            let ours = Decoder::new(bytes).u32();
            let theirs = postcard::take_from_bytes::<u32>(bytes).ok().map(|v| v.0);
            assert_eq!(ours, theirs, "{bytes:02x?}");
        }
        let shape = Shape {
            c: 3,
            h: 300,
            w: 65535,
        };
        let bytes = encoded(&shape);
        assert_eq!(Decoder::new(&bytes).shape(), Some(shape));
    }
}
