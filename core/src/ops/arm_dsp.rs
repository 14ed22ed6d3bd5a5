//! Cortex-M4/M7 kernel for [`super::gemm`], with the DSP extension's dual 16-bit MAC.
//!
//! Four int8 values in one word are unpacked by SXTB16 into two int16 pairs: bytes 0 and 2
//! (`sxtb16 r, w`) and bytes 1 and 3 (`sxtb16 r, w, ror #8`). SMLAD then adds both products of
//! a pair to an i32 accumulator in one instruction. Weights and inputs are unpacked the same
//! way, so the pairs line up without reordering the weights in the blob.
//!
//! The inner loops are whole `asm!` blocks, because they need every one of the 12 registers
//! an `asm!` block may use and the compiler's version of them spilled accumulators:
//! - one column (Linear): four weight rows share each unpacked input word, 16 bytes per
//!   iteration: 23 instructions per 16 MACs;
//! - two or more columns (Conv2d's patches): each pair of columns is first unpacked into a
//!   stack buffer of int16 pairs, then two rows × two columns run from it: each unpacked
//!   weight word serves both columns and each input pair both rows: 18 instructions per 16 MACs.
//!
//! Rows or columns left over from those blocks, and the `k mod 16` (one column) or `k mod 8`
//! (pairs) tail bytes, go through the portable dot product.
//!
//! SMLAD and SXTB16 are unstable in `core::arch::arm`, so they are written with `asm!`: this
//! module opts out of the crate's `deny(unsafe_code)`. The results are bit-identical to
//! [`super::gemm::gemm_portable`] (the firmware's `dsp_check` binary proves it on a
//! Cortex-M4 under qemu): SMLAD wraps exactly like the portable `wrapping_add`.
#![allow(unsafe_code)]

use core::arch::asm;
use core::mem::MaybeUninit;

use super::chunk_len;
use super::dot::dot;
use super::gemm::gemm_portable;

/// Input bytes of one column unpacked per pass: the int16 buffer holds two columns of this,
/// 512 bytes of stack.
const CHUNK: usize = 128;
/// Byte distance between the two columns in the unpacked buffer (hard-coded in the asm).
const PAIR_STRIDE: usize = 2 * CHUNK;
const _: () = assert!(
    PAIR_STRIDE == 256,
    "two_columns_step! hard-codes the offsets"
);
/// Row pairs whose sums one `asm!` call of the whole-patch loop collects.
const GROUP_PAIRS: usize = 8;

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
    let mut done_rows = 0;
    let mut done_columns = 0;
    if n == 1 {
        done_columns = 1;
        let x = column(0);
        while let Some(block) = weights.get(done_rows * k..(done_rows + 4) * k) {
            for (i, sum) in four_rows(block, k, x).into_iter().enumerate() {
                store(done_rows + i, 0, sum);
            }
            done_rows += 4;
        }
    } else {
        done_rows = rows - rows % 2;
        let weights = weights.get(..done_rows * k).unwrap_or(&[]);
        while let Some(pair) = columns.get(done_columns * k..(done_columns + 2) * k) {
            two_columns(weights, pair, k, |r, c, sum| {
                store(r, done_columns + c, sum)
            });
            done_columns += 2;
        }
    }
    // What the blocks left: the last rows (all columns), then the last column (all rows).
    for r in done_rows..rows {
        for j in 0..n {
            store(r, j, dot(row(r), column(j)));
        }
    }
    for j in done_columns..n {
        for r in 0..done_rows {
            store(r, j, dot(row(r), column(j)));
        }
    }
}

/// `Σ w[r]·x` for the four rows of `block` (4 × `k` bytes); `x` has `k` bytes.
#[inline(always)]
fn four_rows(block: &[i8], k: usize, x: &[i8]) -> [i32; 4] {
    let mut acc = [0_i32; 4];
    let iterations = k / 16;
    let body = iterations * 16;
    if iterations > 0 && block.len() >= 4 * k && x.len() >= body {
        let w = block.as_ptr();
        // SAFETY: the loop reads bytes `[0, body)` of `x` and of each row `r·k..r·k + k` of
        // `block` (rows 0 and 1 from `w`, rows 2 and 3 from `w + 2k`), all checked in bounds
        // just above. It runs `iterations ≥ 1` times, until `x` reaches `x + body`, which it
        // keeps on the stack and pops before the block ends.
        unsafe {
            asm!(
                "push {{{t}}}",
                "2:",
                four_rows_step!(),
                four_rows_step!(),
                four_rows_step!(),
                four_rows_step!(),
                "ldr {t}, [sp]",
                "cmp {xp}, {t}",
                "bne 2b",
                "add sp, #4",
                a0 = inout(reg) acc[0],
                a1 = inout(reg) acc[1],
                a2 = inout(reg) acc[2],
                a3 = inout(reg) acc[3],
                p0 = inout(reg) w => _,
                p2 = inout(reg) w.add(2 * k) => _,
                k = in(reg) k,
                xp = inout(reg) x.as_ptr() => _,
                t = inout(reg) x.as_ptr().add(body) => _,
                x = out(reg) _,
                xo = out(reg) _,
                w = out(reg) _,
                options(readonly),
            );
        }
    } else {
        return four_rows_portable(block, k, x, 0);
    }
    let mut tail = four_rows_portable(block, k, x, body);
    for (a, t) in acc.iter_mut().zip(&mut tail) {
        *t = a.wrapping_add(*t);
    }
    tail
}

/// 4 bytes of `x` against 4 bytes of each of the four rows; all pointers advance by 4.
macro_rules! four_rows_step {
    () => {
        concat!(
            "ldr {x}, [{xp}], #4\n",
            "sxtb16 {xo}, {x}, ror #8\n",
            "sxtb16 {x}, {x}\n",
            "ldr {w}, [{p0}, {k}]\n",
            "sxtb16 {t}, {w}, ror #8\n",
            "sxtb16 {w}, {w}\n",
            "smlad {a1}, {w}, {x}, {a1}\n",
            "smlad {a1}, {t}, {xo}, {a1}\n",
            "ldr {w}, [{p2}, {k}]\n",
            "sxtb16 {t}, {w}, ror #8\n",
            "sxtb16 {w}, {w}\n",
            "smlad {a3}, {w}, {x}, {a3}\n",
            "smlad {a3}, {t}, {xo}, {a3}\n",
            "ldr {w}, [{p2}], #4\n",
            "sxtb16 {t}, {w}, ror #8\n",
            "sxtb16 {w}, {w}\n",
            "smlad {a2}, {w}, {x}, {a2}\n",
            "smlad {a2}, {t}, {xo}, {a2}\n",
            "ldr {w}, [{p0}], #4\n",
            "sxtb16 {t}, {w}, ror #8\n",
            "sxtb16 {w}, {w}\n",
            "smlad {a0}, {w}, {x}, {a0}\n",
            "smlad {a0}, {t}, {xo}, {a0}\n",
        )
    };
}
use four_rows_step;

/// The four rows' dot products with `x` from byte `from` on.
#[inline(always)]
fn four_rows_portable(block: &[i8], k: usize, x: &[i8], from: usize) -> [i32; 4] {
    let mut rows = block
        .chunks_exact(k.max(1))
        .map(|row| dot(range(row, from, row.len()), range(x, from, x.len())));
    core::array::from_fn(|_| rows.next().unwrap_or(0))
}

/// Every row of `weights` (an even number of `k`-byte rows) against the two columns of
/// `pair` (2 × `k` bytes), two rows at a time; gives each sum to `store(row, column, sum)`.
#[inline(always)]
fn two_columns(weights: &[i8], pair: &[i8], k: usize, mut store: impl FnMut(usize, usize, i32)) {
    let (col0, col1) = pair.split_at(k.min(pair.len()));
    // Unpacked int16 pairs: column 0 from byte 0, column 1 from byte PAIR_STRIDE. Left
    // uninitialized (zeroing it cost more than the unpacking): the asm only reads what
    // `unpack_into` wrote.
    let mut unpacked = [const { MaybeUninit::<u32>::uninit() }; 2 * PAIR_STRIDE / 4];
    if k.is_multiple_of(8) && k <= CHUNK && col1.len() == k {
        let (u0, u1) = unpacked.split_at_mut(PAIR_STRIDE / 4);
        unpack_into(col0, u0);
        unpack_into(col1, u1);
        for (group, weights) in weights.chunks(chunk_len(k, 2 * GROUP_PAIRS)).enumerate() {
            let pairs = weights.len() / chunk_len(k, 2);
            let mut sums = [[0_i32; 4]; GROUP_PAIRS];
            if pairs > 0 {
                // SAFETY: for each of the `pairs ≤ GROUP_PAIRS` row pairs the loop reads the
                // `k` bytes of both rows (all inside `weights`) and `2k ≤ PAIR_STRIDE` bytes of
                // each half of `unpacked`, all written by `unpack_into` (k is a multiple of 8,
                // so every iteration covers two whole words), and writes the pair's 4 sums to
                // `sums[pair]`. Its own three stack words are released before it ends.
                unsafe {
                    asm!(
                        "sub sp, sp, #12",
                        "str {x}, [sp]",
                        "str {w}, [sp, #4]",
                        "str {we1}, [sp, #8]",
                        "3:",
                        "movs {a00}, #0",
                        "movs {a01}, #0",
                        "movs {a10}, #0",
                        "movs {a11}, #0",
                        "2:",
                        two_columns_step!(),
                        two_columns_step!(),
                        "ldr {x}, [sp]",
                        "cmp {p0}, {x}",
                        "bne 2b",
                        // Row pair done: store its sums, move to the next pair.
                        "ldr {x}, [sp, #4]",
                        "str {a00}, [{x}], #4",
                        "str {a01}, [{x}], #4",
                        "str {a10}, [{x}], #4",
                        "str {a11}, [{x}], #4",
                        "str {x}, [sp, #4]",
                        "add {p0}, {p0}, {k}",
                        "sub {xp}, {xp}, {k}, lsl #1",
                        "ldr {x}, [sp]",
                        "add {x}, {x}, {k}, lsl #1",
                        "str {x}, [sp]",
                        "ldr {x}, [sp, #8]",
                        "subs {x}, {x}, #1",
                        "str {x}, [sp, #8]",
                        "bne 3b",
                        "add sp, sp, #12",
                        a00 = out(reg) _,
                        a01 = out(reg) _,
                        a10 = out(reg) _,
                        a11 = out(reg) _,
                        p0 = inout(reg) weights.as_ptr() => _,
                        k = in(reg) k,
                        xp = inout(reg) unpacked.as_ptr() => _,
                        x = inout(reg) weights.as_ptr().add(k) => _,
                        w = inout(reg) sums.as_mut_ptr() => _,
                        we1 = inout(reg) pairs => _,
                        wo0 = out(reg) _,
                        wo1 = out(reg) _,
                    );
                }
            }
            for (p, [s00, s01, s10, s11]) in sums.into_iter().take(pairs).enumerate() {
                let r = 2 * (group * GROUP_PAIRS + p);
                store(r, 0, s00);
                store(r, 1, s01);
                store(r + 1, 0, s10);
                store(r + 1, 1, s11);
            }
        }
        return;
    }
    for (r, rows) in weights.chunks_exact(chunk_len(k, 2)).enumerate() {
        let Some((r0, r1)) = rows.split_at_checked(k) else {
            break;
        };
        let mut sums = [[0_i32; 2]; 2];
        let mut start = 0;
        while start < k {
            let len = CHUNK.min(k - start);
            let (x0, x1) = (
                col0.get(start..start + len).unwrap_or(&[]),
                col1.get(start..start + len).unwrap_or(&[]),
            );
            // A chunk is unpacked once and serves every row pair; with k > CHUNK (never the
            // case for Conv2d's patches) it is unpacked again for each pair.
            if r == 0 || k > CHUNK {
                let (u0, u1) = unpacked.split_at_mut(PAIR_STRIDE / 4);
                unpack_into(x0, u0);
                unpack_into(x1, u1);
            }
            let iterations = len / 8;
            if iterations > 0 && r0.len() >= start + 8 * iterations && r1.len() == r0.len() {
                let w = r0.as_ptr().wrapping_add(start);
                let [[a00, a01], [a10, a11]] = &mut sums;
                // SAFETY: the loop reads `8·iterations ≤ len` bytes of row 0 from `start` (and
                // the same of row 1, `k` bytes further), in bounds as checked above, and
                // `16·iterations ≤ 2·len ≤ PAIR_STRIDE` bytes of each half of `unpacked`.
                // It runs `iterations ≥ 1` times, until row 0's pointer reaches its end, which
                // it keeps on the stack and pops before the block ends.
                unsafe {
                    asm!(
                        "push {{{x}}}",
                        "2:",
                        two_columns_step!(),
                        two_columns_step!(),
                        "ldr {x}, [sp]",
                        "cmp {p0}, {x}",
                        "bne 2b",
                        "add sp, #4",
                        a00 = inout(reg) *a00,
                        a01 = inout(reg) *a01,
                        a10 = inout(reg) *a10,
                        a11 = inout(reg) *a11,
                        p0 = inout(reg) w => _,
                        k = in(reg) k,
                        xp = inout(reg) unpacked.as_ptr() => _,
                        x = inout(reg) w.add(8 * iterations) => _,
                        w = out(reg) _,
                        we1 = out(reg) _,
                        wo0 = out(reg) _,
                        wo1 = out(reg) _,
                        options(readonly),
                    );
                }
            }
            // The odd word and the tail bytes of this chunk.
            let (from, to) = (start + 8 * iterations, start + len);
            for (row_sums, w) in sums.iter_mut().zip([r0, r1]) {
                for (sum, x) in row_sums.iter_mut().zip([col0, col1]) {
                    *sum = sum.wrapping_add(dot(range(w, from, to), range(x, from, to)));
                }
            }
            start += len;
        }
        for (i, row_sums) in sums.iter().enumerate() {
            for (c, &sum) in row_sums.iter().enumerate() {
                store(2 * r + i, c, sum);
            }
        }
    }
}

/// Two words of both rows against the two unpacked columns; the pointers advance by 8 and 16.
macro_rules! two_columns_step {
    () => {
        concat!(
            "ldr {w}, [{p0}, {k}]\n",
            "sxtb16 {wo1}, {w}, ror #8\n",
            "sxtb16 {we1}, {w}\n",
            "ldr {w}, [{p0}], #4\n",
            "sxtb16 {wo0}, {w}, ror #8\n",
            "sxtb16 {w}, {w}\n",
            "ldr {x}, [{xp}, #4]\n",
            "smlad {a00}, {wo0}, {x}, {a00}\n",
            "smlad {a10}, {wo1}, {x}, {a10}\n",
            "ldr {x}, [{xp}, #256]\n",
            "smlad {a01}, {w}, {x}, {a01}\n",
            "smlad {a11}, {we1}, {x}, {a11}\n",
            "ldr {x}, [{xp}, #260]\n",
            "smlad {a01}, {wo0}, {x}, {a01}\n",
            "smlad {a11}, {wo1}, {x}, {a11}\n",
            "ldr {x}, [{xp}], #8\n",
            "smlad {a00}, {w}, {x}, {a00}\n",
            "smlad {a10}, {we1}, {x}, {a10}\n",
        )
    };
}
use two_columns_step;

/// `s[from..to]`, empty when out of bounds.
#[inline(always)]
fn range(s: &[i8], from: usize, to: usize) -> &[i8] {
    s.get(from..to).unwrap_or(&[])
}

/// Unpacks the whole words of `x` into `(even, odd)` int16 pairs: `out[2i]`, `out[2i + 1]`.
#[inline(always)]
fn unpack_into(x: &[i8], out: &mut [MaybeUninit<u32>]) {
    for (bytes, out) in x.as_chunks::<4>().0.iter().zip(out.as_chunks_mut::<2>().0) {
        let word = u32::from_le_bytes(bytes.map(|b| b as u8));
        let (even, odd): (u32, u32);
        // SAFETY: pure register arithmetic: no memory, no stack, no flags.
        unsafe {
            asm!(
                "sxtb16 {even}, {word}",
                "sxtb16 {odd}, {word}, ror #8",
                word = in(reg) word,
                // `out`, not `lateout`: `even` is written while `word` is still to be read.
                even = out(reg) even,
                odd = lateout(reg) odd,
                options(pure, nomem, nostack, preserves_flags),
            );
        }
        out[0].write(even);
        out[1].write(odd);
    }
}
