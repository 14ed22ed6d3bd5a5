//! The `.qcnn` model blob: layout and header types.
//!
//! ```text
//! offset            size         field
//! 0                 4            magic  b"QCNN"
//! 4                 2            format version, u16 little-endian (= VERSION)
//! 6                 2            flags, u16 little-endian, must be 0
//! 8                 4            header length H, u32 little-endian
//! 12                H            header: postcard-encoded `Header`
//! 12+H              P            zero padding up to a multiple of 4 (P < 4)
//! D = 12+H+P        data_len     data section: every `Section` is relative to D
//! D+data_len        4            checksum of bytes 0..D+data_len, LE
//! ```
//!
//! The version names the header and the checksum ([`framing`]):
//!
//! | version | header | checksum |
//! | --- | --- | --- |
//! | 1 | [`Header`] (a layer sequence) | CRC-32 (ISO-HDLC, as zlib's `crc32`) |
//! | 2 | [`crate::graph::GraphHeader`] (a graph) | CRC-32 |
//! | 3 (= [`VERSION`], written now) | [`Header`] | xxHash32, seed 0 |
//! | 4 (= [`GRAPH_VERSION`], written now) | [`crate::graph::GraphHeader`] | xxHash32, seed 0 |
//!
//! Versions 3 and 4 differ from 1 and 2 in the checksum only, which costs about a tenth of
//! the CRC-32's instructions on a Cortex-M4 ([`crate::checksum`]); blobs of versions 1 and 2
//! are still read, and run exactly as before.
//!
//! The data section holds, for every Conv2d and Linear layer:
//! - `weights`: i8, symmetric per output channel (zero point 0), values in −127..=127;
//!   Conv2d is OIHW, Linear is `[out][in]` (PyTorch's layouts).
//! - `bias`: i32 LE per output channel, at scale `s_in·s_w[o]`, with the input
//!   zero point already folded in: `bias[o] = round(b[o] / (s_in·s_w[o])) − z_in·Σ w[o]`.
//!   The kernels then accumulate `Σ w·x` on the raw int8 input, so padding
//!   contributes `w·z_in` and cancels exactly as if it were the real value 0.
//! - `multiplier`: i32 LE per output channel, in `0..=i32::MAX`, (TFLite's Q31
//!   mantissa, normally in `[2^30, 2^31)`).
//! - `shift`: i8 per output channel, in `-31..=30`; positive shifts left.
//!
//! - `weight_scales`: f32 LE per output channel (reports only).
//!
//! i32 and f32 sections start at a multiple of 4 from `D`, and `D` itself is a multiple of 4,
//! so a blob placed on a 4-byte boundary (e.g. `include_bytes!` into an aligned static)
//! has naturally aligned word sections. Writers should use [`DataWriter`] and [`encode`],
//! which apply these rules, and then `Model::from_bytes` to check what they wrote.
//!
//! Activations are int8 in C,H,W order, so Flatten is PyTorch's flatten.
//!
//! The files: [`mod@layout`] (the constants, the framing of each version, the header types),
//! `decode` (the layer-sequence header's decoder, postcard's wire format without serde),
//! [`mod@read`] (the framing's checks when a blob is loaded) and [`mod@write`] (the encoder and the
//! data-section writer). Inside the crate, import from those files, not through this one: it
//! only gathers them for the crate's users.

pub(crate) mod decode;
pub mod layout;
pub mod read;
pub mod write;

pub use crate::checksum::Checksum;
pub use layout::*;
pub use read::{expected_checksum, verify_checksum};
pub use write::{DataWriter, EncodeError, encode, encode_graph, encoded_len, graph_encoded_len};

#[cfg(test)]
mod tests {
    use super::*;

    fn header(data_len: u32) -> Header {
        Header {
            input: Shape { c: 1, h: 2, w: 2 },
            layers: heapless::Vec::new(),
            data_len,
        }
    }

    #[test]
    fn data_writer_aligns_word_sections() {
        let mut buf = [0xEE; 32];
        let mut writer = DataWriter::new(&mut buf);
        assert_eq!(
            writer.i8s(&[1, -1, 3]).unwrap(),
            Section { offset: 0, len: 3 }
        );
        assert_eq!(writer.i32s(&[-2]).unwrap(), Section { offset: 4, len: 4 });
        assert_eq!(writer.i8s(&[5]).unwrap(), Section { offset: 8, len: 1 });
        assert_eq!(writer.f32s(&[1.0]).unwrap(), Section { offset: 12, len: 4 });
        assert_eq!(writer.len(), 16);
        assert_eq!(
            writer.data(),
            [
                1, 0xFF, 3, 0, 0xFE, 0xFF, 0xFF, 0xFF, 5, 0, 0, 0, 0, 0, 0x80, 0x3F
            ]
        );
        assert_eq!(
            writer.i32s(&[0; 5]),
            Err(EncodeError::BufferTooSmall { needed: 36 })
        );
        assert_eq!(writer.len(), 16, "a failed push writes nothing");
    }

    #[test]
    fn encode_lays_out_prefix_header_padding_data_checksum() {
        let data = [9, 8, 7];
        let header = header(3);
        let len = encoded_len(&header, data.len()).unwrap();
        let mut out = vec![0xEE; len + 5];
        assert_eq!(encode(&header, &data, &mut out), Ok(len));
        let out = &out[..len];
        assert_eq!(out[..4], MAGIC);
        assert_eq!(out[4..8], [3, 0, 0, 0]);
        let header_len = u32::from_le_bytes(out[8..12].try_into().unwrap()) as usize;
        assert_eq!(
            postcard::from_bytes::<Header>(&out[12..12 + header_len]),
            Ok(header.clone())
        );
        let d = data_offset(header_len);
        assert_eq!(d % 4, 0);
        assert!(out[12 + header_len..d].iter().all(|&b| b == 0));
        assert_eq!(out[d..d + 3], data);
        assert_eq!(
            out[d + 3..],
            xxhash_rust::xxh32::xxh32(&out[..d + 3], 0).to_le_bytes()
        );
        assert_eq!(len, d + 3 + CHECKSUM_LEN);
    }

    #[test]
    fn every_version_names_its_header_and_checksum() {
        let versions = [
            (CRC32_VERSION, Layout::Sequence, Checksum::Crc32),
            (CRC32_GRAPH_VERSION, Layout::Graph, Checksum::Crc32),
            (VERSION, Layout::Sequence, Checksum::XxHash32),
            (GRAPH_VERSION, Layout::Graph, Checksum::XxHash32),
        ];
        for (version, layout, checksum) in versions {
            assert_eq!(
                framing(version),
                Some(Framing { layout, checksum }),
                "{version}"
            );
        }
        assert_eq!(
            (CRC32_VERSION, CRC32_GRAPH_VERSION, VERSION, GRAPH_VERSION),
            (1, 2, 3, 4)
        );
        assert_eq!(framing(0), None);
        assert_eq!(framing(5), None);
    }

    #[test]
    fn encode_refuses_inconsistent_input() {
        let mut out = [0; 64];
        assert_eq!(
            encode(&header(4), &[1, 2, 3], &mut out),
            Err(EncodeError::DataLenMismatch { header: 4, data: 3 })
        );
        let needed = encoded_len(&header(3), 3).unwrap();
        assert_eq!(
            encode(&header(3), &[1, 2, 3], &mut out[..needed - 1]),
            Err(EncodeError::BufferTooSmall { needed })
        );
    }
}
