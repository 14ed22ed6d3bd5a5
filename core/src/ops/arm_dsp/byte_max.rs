//! The lane-wise maximum of four int8 values a word (SSUB8 sets each byte's GE flag where the
//! first is at least the second, SEL picks by them): what the graph's MaxPool folds with.

use core::arch::asm;

/// `max(a[i], b[i])` for each of the four int8 lanes of `a` and `b`.
#[inline(always)]
pub(crate) fn max_bytes4(a: u32, b: u32) -> u32 {
    let out: u32;
    // SAFETY: register arithmetic only; SSUB8's result is discarded, its GE flags read by SEL.
    unsafe {
        asm!(
            "ssub8 {out}, {a}, {b}",
            "sel {out}, {a}, {b}",
            out = out(reg) out,
            a = in(reg) a,
            b = in(reg) b,
            options(pure, nomem, nostack),
        );
    }
    out
}
