//! The panic-never check (issue 8): loads the model and runs inference with a panic handler
//! that is an undefined symbol, so this binary only links if no panic is reachable from
//! `Model::from_bytes` or `infer`. Build it with `cargo build --release --bin panic_check`.
//!
//! The blob and image pass through `black_box`, so the optimizer must treat them as arbitrary
//! bytes and cannot prove a bounds check dead from the contents of this particular model.
//! Nothing is formatted: the result is only the exit status, which `run-tests.sh` also checks
//! under qemu.
#![no_std]
#![no_main]
#![deny(unsafe_code)]

use core::hint::black_box;

use cortex_m_rt::entry;
use cortex_m_semihosting::debug::{self, EXIT_FAILURE, EXIT_SUCCESS};
use panic_never as _;
use qcnn_core::Model;
use qcnn_firmware::embedded::{self, ARENA_LEN, BLOB};

#[entry]
fn main() -> ! {
    static mut ARENA: [u8; ARENA_LEN] = [0; ARENA_LEN];

    let blob: &[u8] = black_box(BLOB);
    let arena: &mut [u8] = black_box(ARENA);
    let ran = match Model::from_bytes(blob) {
        Ok(model) => embedded::images().all(|image| model.infer(black_box(image), arena).is_ok()),
        Err(_) => false,
    };
    debug::exit(if ran { EXIT_SUCCESS } else { EXIT_FAILURE });
    loop {
        cortex_m::asm::wfi();
    }
}
