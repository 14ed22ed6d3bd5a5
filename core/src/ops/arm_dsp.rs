//! Cortex-M4/M7 kernel for [`super::gemm`], with the DSP extension's dual 16-bit MAC.
//!
//! Four int8 values in one word are unpacked by SXTB16 into two int16 pairs: bytes 0 and 2
//! (`sxtb16 r, w`) and bytes 1 and 3 (`sxtb16 r, w, ror #8`). SMLAD then adds both products of
//! a pair to an i32 accumulator in one instruction. Weights and inputs are unpacked the same
//! way, so the pairs line up without reordering the weights in the blob.
//!
//! A block of rows × columns accumulators stays in registers, so each unpacked input word
//! serves every row of the block and each unpacked weight word every column: four rows for a
//! single column (Linear), two rows × two columns otherwise (Conv2d's patches). `k mod 4` tail
//! bytes go through the portable dot product.
//!
//! SMLAD and SXTB16 are unstable in `core::arch::arm`, so they are written with `asm!`: this
//! module opts out of the crate's `deny(unsafe_code)`. Every other line is safe Rust, and the
//! results are bit-identical to [`super::gemm::gemm_portable`] (the firmware's `dsp_check`
//! binary proves it on a Cortex-M4 under qemu).
#![allow(unsafe_code)]

use core::arch::asm;

use super::dot::dot;
use super::gemm::gemm_portable;

/// The Cortex-M4 [`super::gemm`]: same contract, same results.
pub fn gemm(weights: &[i8], columns: &[i8], k: usize, acc: &mut [i32]) {
    if k == 0 {
        return gemm_portable(weights, columns, k, acc);
    }
    let (rows, n) = (weights.len() / k, columns.len() / k);
    let row = |r: usize| weights.get(r * k..(r + 1) * k).unwrap_or(&[]);
    let column = |j: usize| columns.get(j * k..(j + 1) * k).unwrap_or(&[]);
    let mut store = |r: usize, j: usize, sum: i32| {
        if let Some(out) = acc.get_mut(r * n + j) {
            *out = sum;
        }
    };
    if n == 1 {
        let x = [column(0)];
        let mut r = 0;
        while r + 4 <= rows {
            let sums = block::<4, 1>([row(r), row(r + 1), row(r + 2), row(r + 3)], x);
            for (i, s) in sums.iter().enumerate() {
                store(r + i, 0, s[0]);
            }
            r += 4;
        }
        while r < rows {
            store(r, 0, block::<1, 1>([row(r)], x)[0][0]);
            r += 1;
        }
        return;
    }
    let mut j = 0;
    while j < n {
        let two = j + 2 <= n;
        let mut r = 0;
        while r < rows {
            match (r + 2 <= rows, two) {
                (true, true) => {
                    let s = block::<2, 2>([row(r), row(r + 1)], [column(j), column(j + 1)]);
                    (store(r, j, s[0][0]), store(r, j + 1, s[0][1]));
                    (store(r + 1, j, s[1][0]), store(r + 1, j + 1, s[1][1]));
                    r += 2;
                }
                (true, false) => {
                    let s = block::<2, 1>([row(r), row(r + 1)], [column(j)]);
                    (store(r, j, s[0][0]), store(r + 1, j, s[1][0]));
                    r += 2;
                }
                (false, true) => {
                    let s = block::<1, 2>([row(r)], [column(j), column(j + 1)]);
                    (store(r, j, s[0][0]), store(r, j + 1, s[0][1]));
                    r += 1;
                }
                (false, false) => {
                    store(r, j, block::<1, 1>([row(r)], [column(j)])[0][0]);
                    r += 1;
                }
            }
        }
        j += if two { 2 } else { 1 };
    }
}

/// `Σ w[r]·x[c]` for every row and column; all slices have the same length `k`.
#[inline(always)]
fn block<const R: usize, const C: usize>(w: [&[i8]; R], x: [&[i8]; C]) -> [[i32; C]; R] {
    let mut acc = [[0_i32; C]; R];
    let Some(k) = w.first().map(|w| w.len()) else {
        return acc;
    };
    let words = k / 4;
    // Each operand as exactly `words` 4-byte groups, so the loop needs no bounds checks.
    let w_words = w.map(|w| w.as_chunks::<4>().0.get(..words).unwrap_or(&[]));
    let x_words = x.map(|x| x.as_chunks::<4>().0.get(..words).unwrap_or(&[]));
    if w_words.iter().chain(&x_words).any(|s| s.len() != words) {
        return acc;
    }
    for i in 0..words {
        let xs = x_words.map(|x| unpack(x[i]));
        for (w, acc) in w_words.iter().zip(&mut acc) {
            let (even, odd) = unpack(w[i]);
            for (a, &(x_even, x_odd)) in acc.iter_mut().zip(&xs) {
                *a = smlad(even, x_even, *a);
                *a = smlad(odd, x_odd, *a);
            }
        }
    }
    let tail = |s: &[i8]| s.get(words * 4..).unwrap_or(&[]);
    for (w, acc) in w.iter().zip(&mut acc) {
        for (a, x) in acc.iter_mut().zip(&x) {
            *a = a.wrapping_add(dot(tail(w), tail(x)));
        }
    }
    acc
}

/// Four int8 as the int16 pairs `(b0, b2)` and `(b1, b3)`.
#[inline(always)]
fn unpack(bytes: [i8; 4]) -> (u32, u32) {
    let word = u32::from_le_bytes(bytes.map(|b| b as u8));
    let (even, odd): (u32, u32);
    // SAFETY: pure register arithmetic: no memory, no stack, no flags.
    unsafe {
        asm!(
            "sxtb16 {even}, {word}",
            "sxtb16 {odd}, {word}, ror #8",
            word = in(reg) word,
            even = lateout(reg) even,
            odd = lateout(reg) odd,
            options(pure, nomem, nostack, preserves_flags),
        );
    }
    (even, odd)
}

/// `acc + a.lo·b.lo + a.hi·b.hi` over int16 halves, wrapping.
#[inline(always)]
fn smlad(a: u32, b: u32, acc: i32) -> i32 {
    let out: i32;
    // SAFETY: pure register arithmetic: no memory, no stack. SMLAD may set the sticky Q flag
    // on overflow, which nothing reads; the result itself wraps.
    unsafe {
        asm!(
            "smlad {out}, {a}, {b}, {acc}",
            a = in(reg) a,
            b = in(reg) b,
            acc = in(reg) acc,
            out = lateout(reg) out,
            options(pure, nomem, nostack),
        );
    }
    out
}
