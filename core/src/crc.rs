//! The blob's CRC-32 (ISO-HDLC, zlib's `crc32`: reflected polynomial 0xEDB88320, initial and
//! final value 0xFFFFFFFF), with a table size chosen for the target.
//!
//! - Hosts use the `crc` crate's slicing-by-16 table (16 KiB): fast, and flash is no concern.
//! - Microcontrollers (`target_os = "none"`) use a 16-entry table (64 bytes of flash, two
//!   lookups per byte), or with the `crc-table-256` feature a 256-entry one (1 KiB, one
//!   lookup per byte). The bit-wise loop this replaced cost about 47 instructions per byte on
//!   a Cortex-M4; `firmware/README.md` gives what each table costs there.

/// Computes the blob's CRC-32; see the module docs for the table behind it.
#[derive(Clone, Copy, Debug, Default)]
pub struct Crc32;

impl Crc32 {
    /// The CRC-32 of `bytes`.
    pub fn checksum(&self, bytes: &[u8]) -> u32 {
        checksum(bytes)
    }
}

const POLY: u32 = 0xEDB8_8320;

/// `N` entries (16 or 256): entry `i` is the CRC register after shifting `i` through
/// `log2(N)` bits.
#[allow(dead_code)] // which table runs depends on the target and features; tests use both
const fn table<const N: usize>() -> [u32; N] {
    let bits = N.trailing_zeros();
    let mut table = [0_u32; N];
    let mut i = 0;
    while i < N {
        let mut crc = i as u32;
        let mut bit = 0;
        while bit < bits {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ POLY
            } else {
                crc >> 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
}

#[allow(dead_code)] // which table runs depends on the target and features; tests use both
static NIBBLE_TABLE: [u32; 16] = table::<16>();
#[allow(dead_code)] // which table runs depends on the target and features; tests use both
static BYTE_TABLE: [u32; 256] = table::<256>();

/// Two lookups per byte in a 16-entry table.
#[allow(dead_code)] // which table runs depends on the target and features; tests use both
fn checksum_nibbles(bytes: &[u8]) -> u32 {
    let mut crc = !0_u32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        crc = (crc >> 4) ^ NIBBLE_TABLE[(crc & 0xF) as usize];
        crc = (crc >> 4) ^ NIBBLE_TABLE[(crc & 0xF) as usize];
    }
    !crc
}

/// One lookup per byte in a 256-entry table.
#[allow(dead_code)] // which table runs depends on the target and features; tests use both
fn checksum_bytes(bytes: &[u8]) -> u32 {
    let mut crc = !0_u32;
    for &byte in bytes {
        crc = (crc >> 8) ^ BYTE_TABLE[((crc ^ u32::from(byte)) & 0xFF) as usize];
    }
    !crc
}

#[cfg(all(target_os = "none", not(feature = "crc-table-256")))]
fn checksum(bytes: &[u8]) -> u32 {
    checksum_nibbles(bytes)
}

#[cfg(all(target_os = "none", feature = "crc-table-256"))]
fn checksum(bytes: &[u8]) -> u32 {
    checksum_bytes(bytes)
}

#[cfg(not(target_os = "none"))]
fn checksum(bytes: &[u8]) -> u32 {
    const HOST: crc::Crc<u32, crc::Table<16>> =
        crc::Crc::<u32, crc::Table<16>>::new(&crc::CRC_32_ISO_HDLC);
    HOST.checksum(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_table_gives_zlibs_crc32() {
        let reference = crc::Crc::<u32, crc::NoTable>::new(&crc::CRC_32_ISO_HDLC);
        assert_eq!(checksum(b"123456789"), 0xCBF4_3926);
        for len in [0, 1, 3, 300, 4099] {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 37 % 251) as u8).collect();
            let expected = reference.checksum(&bytes);
            assert_eq!(
                checksum_nibbles(&bytes),
                expected,
                "16 entries, {len} bytes"
            );
            assert_eq!(checksum_bytes(&bytes), expected, "256 entries, {len} bytes");
            assert_eq!(
                Crc32.checksum(&bytes),
                expected,
                "this target's, {len} bytes"
            );
        }
    }
}
