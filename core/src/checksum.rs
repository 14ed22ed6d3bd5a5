//! The blob's checksum: the last 4 bytes of every blob, little-endian, over every byte before
//! them. Which function computes it is part of the format version ([`crate::format::framing`]).
//!
//! - Versions 3 and 4 (what `qcnn-quantize` writes): xxHash32 with seed 0 (the `xxhash-rust`
//!   crate, `no_std`), 16 bytes a round in four independent lanes of 32-bit multiply, add and
//!   rotate. On a Cortex-M4 it costs about 1.1 instructions a byte, against 10.0 for the
//!   CRC-32 with a 16-entry table and 7.0 with a 256-entry one (`firmware/README.md`, "Boot"),
//!   so the default load of the seed model costs less than one inference. Like the CRC-32 it
//!   catches any single flipped bit, and any damage within one of the 4-byte words it reads
//!   (each of its steps is a bijection of its state); it is not a defence against a
//!   deliberate forgery (neither is a CRC): that takes a signature.
//! - Versions 1 and 2 (still read): the CRC-32 of [`crate::crc`].

use crate::crc::Crc32;

/// A checksum function a format version names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Checksum {
    /// CRC-32 (ISO-HDLC, zlib's `crc32`): versions 1 and 2.
    Crc32,
    /// xxHash32, seed 0: versions 3 and 4.
    XxHash32,
}

impl Checksum {
    /// The checksum of `bytes`.
    pub fn of(self, bytes: &[u8]) -> u32 {
        match self {
            Self::Crc32 => Crc32.checksum(bytes),
            Self::XxHash32 => xxhash_rust::xxh32::xxh32(bytes, 0),
        }
    }

    /// Its name in messages.
    pub fn name(self) -> &'static str {
        match self {
            Self::Crc32 => "CRC-32",
            Self::XxHash32 => "xxHash32",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_checksum_gives_its_published_value() {
        // xxHash's own test vectors (seed 0), and zlib's crc32 check value.
        assert_eq!(Checksum::XxHash32.of(b""), 0x02CC_5D05);
        assert_eq!(Checksum::XxHash32.of(b"a"), 0x550D_7456);
        assert_eq!(Checksum::XxHash32.of(b"abc"), 0x32D1_53FF);
        assert_eq!(Checksum::Crc32.of(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn every_single_bit_flip_changes_the_checksum() {
        // Lengths around the 16-byte rounds and the 4-byte and 1-byte tails.
        for len in [1, 4, 15, 16, 17, 33, 100] {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 73 % 256) as u8).collect();
            for checksum in [Checksum::XxHash32, Checksum::Crc32] {
                let clean = checksum.of(&bytes);
                for bit in 0..len * 8 {
                    let mut flipped = bytes.clone();
                    flipped[bit / 8] ^= 1 << (bit % 8);
                    assert_ne!(
                        checksum.of(&flipped),
                        clean,
                        "{checksum:?}, {len} bytes, bit {bit}"
                    );
                }
            }
        }
    }
}
