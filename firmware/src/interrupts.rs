//! The device-interrupt part of the vector table. The firmware enables no interrupt, so it
//! holds one entry, the minimum cortex-m-rt's linker script accepts, rather than the generic
//! 240 (960 bytes of flash). A board port that enables interrupts lists their handlers here.
#![allow(unsafe_code)]

unsafe extern "C" {
    /// cortex-m-rt's handler for every vector nobody claimed.
    fn DefaultHandler();
}

// SAFETY: `__INTERRUPTS` is the one symbol cortex-m-rt's `device` feature expects in
// `.vector_table.interrupts`, defined once, and it holds a valid handler address.
#[unsafe(link_section = ".vector_table.interrupts")]
#[unsafe(no_mangle)]
static __INTERRUPTS: [unsafe extern "C" fn(); 1] = [DefaultHandler];
