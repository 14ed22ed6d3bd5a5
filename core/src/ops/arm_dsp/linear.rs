//! Linear on the Cortex-M4: the input vector is unpacked once into int16 pairs in the scratch
//! (2 bytes a feature, from the caller's arena), then an `asm!` loop runs two weight rows at
//! a time against it.
//!
//! In a scratch too short for the whole unpacked input (an arena sized below the fastest
//! schedule's), the input is unpacked and run in blocks, each output's partial sum kept as an
//! i32 in the scratch: the same sums (wrapping addition is associative), for one more pass
//! over the accumulators per block.
//!
//! Per 8 input bytes: one LDM of four unpacked input words (shared by both rows), and per row
//! one LDRD of 8 weight bytes, four SXTB16 and four SMLAD: 19 instructions per 16 MACs, plus 3
//! per 32 bytes for the loop. The last `k mod 32` bytes of every row, and an odd last row, go
//! through the portable dot product.

use core::arch::asm;

use super::patch_mac::sxtb16_pairs;
use crate::ops::dot::dot;
use crate::ops::linear_op::LinearOp;
use crate::ops::scratch::{self, LINEAR_STEP as STEP};

/// Runs `op` if it fits and `scratch` holds the unpacked input; `false` (nothing written)
/// otherwise.
pub(crate) fn linear(
    op: &LinearOp<'_>,
    input: &[i8],
    output: &mut [i8],
    scratch: &mut [i8],
) -> bool {
    let Some((x, body)) = fitting_input(op, input) else {
        return false;
    };
    let k = op.in_features;
    let Some(unpacked) = scratch::words(scratch).get_mut(..k / 2) else {
        return false;
    };
    unpack(x, unpacked);
    let (x_body, x_tail) = x.split_at(body);
    let row_sum = |row: &[i8], body_sum: i32| {
        body_sum.wrapping_add(dot(row.get(body..).unwrap_or(&[]), x_tail))
    };
    let mut rows = op.weights.chunks_exact(k);
    let mut outputs = output.iter_mut().zip(op.channels.iter());
    while let (Some(r0), Some((out0, (bias0, requant0)))) = (rows.next(), outputs.next()) {
        let sums = match (rows.next(), outputs.next()) {
            (Some(r1), Some((out1, (bias1, requant1)))) => {
                let [s0, s1] = two_rows(r0, r1, unpacked, body);
                *out1 = requant1.apply_outlined(bias1.wrapping_add(row_sum(r1, s1)));
                s0
            }
            _ => dot(r0.get(..body).unwrap_or(&[]), x_body),
        };
        *out0 = requant0.apply_outlined(bias0.wrapping_add(row_sum(r0, sums)));
    }
    true
}

/// The layer's `k` input bytes and its body (`k` rounded down to whole [`STEP`]s) if `op`
/// fits both entry points: a body of at least one step and word-aligned weight rows (LDRD
/// needs them). One check for [`linear`] and [`linear_blocked`].
fn fitting_input<'a>(op: &LinearOp<'_>, input: &'a [i8]) -> Option<(&'a [i8], usize)> {
    let k = op.in_features;
    let body = k - k % STEP;
    let aligned = (op.weights.as_ptr() as usize).is_multiple_of(4) && k.is_multiple_of(4);
    let x = input.get(..k)?;
    (body != 0 && aligned).then_some((x, body))
}

/// `x` (whole words) as int16 pairs into `out`.
fn unpack(x: &[i8], out: &mut [u32]) {
    for (bytes, pair) in x.as_chunks::<4>().0.iter().zip(out.as_chunks_mut::<2>().0) {
        let (even, odd) = sxtb16_pairs(u32::from_le_bytes(bytes.map(|b| b as u8)));
        *pair = [even, odd];
    }
}

/// [`linear`] in a scratch shorter than its unpacked input (only the streaming schedule
/// calls it, so that whole-map firmware does not link it): the scratch holds one i32
/// accumulator per output, then as many whole [`STEP`]s of unpacked input as fit; `false`
/// (nothing written) if not even one does, or the layer is outside the path's limits.
pub(crate) fn linear_blocked(
    op: &LinearOp<'_>,
    input: &[i8],
    output: &mut [i8],
    scratch: &mut [i8],
) -> bool {
    let outputs = op.channels.bias.len().min(output.len());
    let Some((x, body)) = fitting_input(op, input) else {
        return false;
    };
    let k = op.in_features;
    let words = scratch::words(scratch);
    let Some((acc, unpacked)) = words.split_at_mut_checked(outputs) else {
        return false;
    };
    let block = (unpacked.len() / (STEP / 2)) * STEP;
    if block == 0 {
        return false;
    }
    let acc: &mut [i32] = bytemuck::must_cast_slice_mut(acc);
    acc.fill(0);
    let mut start = 0;
    while start < body {
        let len = block.min(body - start);
        let (Some(x_block), Some(unpacked)) =
            (x.get(start..start + len), unpacked.get_mut(..len / 2))
        else {
            return false;
        };
        unpack(x_block, unpacked);
        let mut rows = op.weights.chunks_exact(k.max(1));
        let mut sums = acc.iter_mut();
        while let (Some(r0), Some(a0)) = (rows.next(), sums.next()) {
            let r0 = r0.get(start..).unwrap_or(&[]);
            match (rows.next(), sums.next()) {
                (Some(r1), Some(a1)) => {
                    let r1 = r1.get(start..).unwrap_or(&[]);
                    let [s0, s1] = two_rows(r0, r1, unpacked, len);
                    *a0 = a0.wrapping_add(s0);
                    *a1 = a1.wrapping_add(s1);
                }
                _ => *a0 = a0.wrapping_add(dot(r0.get(..len).unwrap_or(&[]), x_block)),
            }
        }
        start += len;
    }
    let x_tail = x.get(body..).unwrap_or(&[]);
    let rows = op.weights.chunks_exact(k.max(1));
    for (((row, (bias, requant)), out), &sum) in rows.zip(op.channels.iter()).zip(output).zip(&*acc)
    {
        let tail = dot(row.get(body..).unwrap_or(&[]), x_tail);
        *out = requant.apply_outlined(bias.wrapping_add(sum).wrapping_add(tail));
    }
    true
}

/// The dot products of the first `body` bytes (a non-zero multiple of [`STEP`]) of rows `r0`
/// and `r1` (word-aligned) with the input unpacked in `unpacked`.
#[inline(always)]
fn two_rows(r0: &[i8], r1: &[i8], unpacked: &[u32], body: usize) -> [i32; 2] {
    let (mut a0, mut a1) = (0_i32, 0_i32);
    if body == 0 || r0.len() < body || r1.len() < body || unpacked.len() < body / 2 {
        return [0, 0];
    }
    // SAFETY: the loop reads `body` bytes of each row and `body / 2` words of `unpacked`, all
    // checked in bounds above; `body` is a non-zero multiple of 32, so it runs `body / 32 ≥ 1`
    // times and stops exactly when the input pointer reaches its end (kept on the stack and
    // popped before the block ends). The rows are word-aligned (checked by the caller) and
    // advance by 8 bytes per LDRD; `unpacked` is a `u32` array. The LDM register lists are
    // explicit registers in ascending order, so word `i` lands in `r{i}`.
    unsafe {
        asm!(
            "push {{r8}}",
            "2:",
            two_rows_step!(),
            two_rows_step!(),
            two_rows_step!(),
            two_rows_step!(),
            "ldr r8, [sp]",
            "cmp lr, r8",
            "bne 2b",
            "add sp, #4",
            out("r0") _,
            out("r1") _,
            out("r2") _,
            out("r3") _,
            out("r4") _,
            out("r5") _,
            inout("r8") unpacked.as_ptr().add(body / 2) => _,
            inout("r9") a0,
            inout("r10") a1,
            inout("r11") r0.as_ptr() => _,
            inout("r12") r1.as_ptr() => _,
            inout("lr") unpacked.as_ptr() => _,
            options(readonly),
        );
    }
    [a0, a1]
}

/// 8 bytes of both rows: input pairs in r0–r3, row 0 (r11) into r9, row 1 (r12) into r10.
macro_rules! two_rows_step {
    () => {
        concat!(
            "ldm lr!, {{r0, r1, r2, r3}}\n",
            "ldrd r4, r5, [r11], #8\n",
            "sxtb16 r8, r4, ror #8\n",
            "sxtb16 r4, r4\n",
            "smlad r9, r4, r0, r9\n",
            "smlad r9, r8, r1, r9\n",
            "sxtb16 r8, r5, ror #8\n",
            "sxtb16 r5, r5\n",
            "smlad r9, r5, r2, r9\n",
            "smlad r9, r8, r3, r9\n",
            "ldrd r4, r5, [r12], #8\n",
            "sxtb16 r8, r4, ror #8\n",
            "sxtb16 r4, r4\n",
            "smlad r10, r4, r0, r10\n",
            "smlad r10, r8, r1, r10\n",
            "sxtb16 r8, r5, ror #8\n",
            "sxtb16 r5, r5\n",
            "smlad r10, r5, r2, r10\n",
            "smlad r10, r8, r3, r10\n",
        )
    };
}
use two_rows_step;
