//! What each candidate for the blob's checksum costs on this core, over the embedded blob:
//! xxHash32 (format versions 3 and 4), the CRC-32 of versions 1 and 2 (16-entry table, or
//! 256 with `--features crc-table-256`) and Adler-32 (the `adler2` crate). One line each:
//! `# checksum <name> <instructions> <milli-instructions per byte> <value>`. Each runs behind
//! its own `#[inline(never)]` function, so `llvm-nm -S` on the ELF gives its code size.
//!
//! `QCNN_BLOB=<blob> cargo run --release --features checksum-candidates --bin checksum_costs`
//! in `firmware/` (firmware/README.md, "Boot").
#![no_std]
#![no_main]
#![deny(unsafe_code)]

use core::hint::black_box;

use cortex_m_rt::entry;
use cortex_m_semihosting::debug::{self, EXIT_FAILURE, EXIT_SUCCESS};
use cortex_m_semihosting::hprintln;
use panic_semihosting as _;
use qcnn_core::checksum::Checksum;
use qcnn_firmware::embedded::BLOB;
use qcnn_firmware::instructions::InstructionCounter;

#[inline(never)]
fn candidate_xxhash32(bytes: &[u8]) -> u32 {
    Checksum::XxHash32.of(bytes)
}

#[inline(never)]
fn candidate_crc32(bytes: &[u8]) -> u32 {
    Checksum::Crc32.of(bytes)
}

#[inline(never)]
fn candidate_adler32(bytes: &[u8]) -> u32 {
    adler2::adler32_slice(bytes)
}

#[entry]
fn main() -> ! {
    let ok = match run() {
        Ok(()) => EXIT_SUCCESS,
        Err(()) => EXIT_FAILURE,
    };
    debug::exit(ok);
    loop {
        cortex_m::asm::wfi();
    }
}

fn run() -> Result<(), ()> {
    let peripherals = cortex_m::Peripherals::take().ok_or(())?;
    let mut counter = InstructionCounter::calibrate(peripherals.SYST).map_err(drop)?;
    let bytes: &[u8] = black_box(BLOB);
    let crc = if cfg!(feature = "crc-table-256") {
        "crc32-table-256"
    } else {
        "crc32-table-16"
    };
    let candidates: [(&str, fn(&[u8]) -> u32); 3] = [
        ("xxhash32", candidate_xxhash32),
        (crc, candidate_crc32),
        ("adler32", candidate_adler32),
    ];
    for (name, candidate) in candidates {
        let (value, instructions) = counter.count(|| candidate(bytes)).map_err(drop)?;
        let milli = instructions * 1000 / bytes.len().max(1) as u64;
        hprintln!(
            "# checksum {} {} {}.{:03} {:#010x} ({} bytes)",
            name,
            instructions,
            milli / 1000,
            milli % 1000,
            value,
            bytes.len()
        );
    }
    Ok(())
}
