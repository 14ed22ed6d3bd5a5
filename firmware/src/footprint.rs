//! Flash and RAM in use, from the symbols cortex-m-rt's link.x defines, and the stack's
//! high-water mark, from the paint cortex-m-rt's `paint-stack` feature lays at reset and
//! [`repaint_stack`] lays again, so that two phases (the load, an inference) measure apart.
#![allow(unsafe_code)] // the linker symbols are extern statics, and the stack scan reads raw memory

use core::ptr;

use cortex_m_rt::STACK_PAINT_VALUE;

unsafe extern "C" {
    /// Start of flash: the vector table is placed at ORIGIN(FLASH).
    static __vector_table: u32;
    /// Where .data's initial values sit in flash: the last thing in flash.
    static __sidata: u32;
    static __sdata: u32;
    static __edata: u32;
    /// Lowest address of the stack, just above .data, .bss and .uninit.
    static _stack_end: u32;
    /// Initial stack pointer: the top of RAM.
    static _stack_start: u32;
}

/// Taking a linker symbol's address is safe; its "contents" are never read.
fn address(symbol: *const u32) -> usize {
    symbol as usize
}

/// Bytes of flash the image occupies: vectors, code, read-only data (blob and images
/// included) and the initial values of .data.
pub fn flash_used() -> usize {
    let data_len = address(&raw const __edata) - address(&raw const __sdata);
    address(&raw const __sidata) + data_len - address(&raw const __vector_table)
}

/// Bytes of RAM taken by statics: .data, .bss (the arena is there) and .uninit.
pub fn ram_static() -> usize {
    address(&raw const _stack_end) - address(&raw const __sdata)
}

/// The stack region: everything between the statics and the top of RAM.
fn stack_region() -> (usize, usize) {
    (
        address(&raw const _stack_end),
        address(&raw const _stack_start),
    )
}

pub fn stack_size() -> usize {
    let (bottom, top) = stack_region();
    top - bottom
}

/// Most stack bytes used since reset: the stack grows down from the top of RAM over a region
/// painted with `STACK_PAINT_VALUE`, so the lowest word that lost its paint marks the peak.
pub fn stack_peak() -> usize {
    let (bottom, top) = stack_region();
    let mut lowest_used = top;
    let mut word = bottom;
    while word < top {
        // SAFETY: `word` is a 4-byte-aligned address inside the RAM region reserved for the
        // stack (link.x aligns both ends to 4); reading it races with nothing, as nothing else runs.
        if unsafe { ptr::read_volatile(word as *const u32) } != STACK_PAINT_VALUE {
            lowest_used = word;
            break;
        }
        word += 4;
    }
    top - lowest_used
}

/// Bytes just below the stack pointer that [`repaint_stack`] leaves alone: the compiler may
/// read the stack pointer before the function's own prologue pushes its registers there.
/// What runs next (an inference) goes far deeper, so these words never set its peak.
const REPAINT_MARGIN: usize = 64;

/// Paints the free stack again, from the bottom of the region up to [`REPAINT_MARGIN`] below
/// the stack pointer, so that the next [`stack_peak`] is what ran since (its caller's frames
/// included), not the deepest point before.
#[inline(never)]
pub fn repaint_stack() {
    let (bottom, _) = stack_region();
    let in_use = (cortex_m::register::msp::read() as usize & !3).saturating_sub(REPAINT_MARGIN);
    let mut word = bottom;
    while word < in_use {
        // SAFETY: `word` is 4-byte aligned, inside the stack region and below the stack
        // pointer and this call's frame: nothing lives there, and nothing else runs (no
        // interrupt is enabled).
        unsafe { ptr::write_volatile(word as *mut u32, STACK_PAINT_VALUE) };
        word += 4;
    }
}
