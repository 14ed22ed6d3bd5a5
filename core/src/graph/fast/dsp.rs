//! The DSP instructions the fast kernels use: the Cortex-M4's (`ops::arm_dsp`) where the
//! target has them, else plain-Rust stand-ins computing the same numbers, so that the host
//! tests run the fast kernels' own bookkeeping (patch layout, tails, padding) against the
//! portable kernels too.

#[cfg(qcnn_arm_dsp)]
pub(crate) use crate::ops::arm_dsp::{
    gather_runs, mac_patch4, mac_patch4_unrolled, max_bytes4, requantize, smlad, sum_bytes,
    sxtb16_pairs,
};

#[cfg(not(qcnn_arm_dsp))]
fn halves(word: u32) -> (i32, i32) {
    (
        i32::from(word as u16 as i16),
        i32::from((word >> 16) as u16 as i16),
    )
}

/// SXTB16 and SXTB16 ROR #8: the int8 bytes of `word` as the int16 pairs (bytes 0 and 2,
/// bytes 1 and 3).
#[cfg(not(qcnn_arm_dsp))]
pub(crate) fn sxtb16_pairs(word: u32) -> (u32, u32) {
    let pair = |lo: u32, hi: u32| {
        (lo as u8 as i8 as i16 as u16 as u32) | (hi as u8 as i8 as i16 as u16 as u32) << 16
    };
    (pair(word, word >> 16), pair(word >> 8, word >> 24))
}

/// SSUB8 then SEL: the lane-wise maximum of four int8 values.
#[cfg(not(qcnn_arm_dsp))]
pub(crate) fn max_bytes4(a: u32, b: u32) -> u32 {
    let lanes = |w: u32| w.to_le_bytes().map(|b| b as i8);
    let (a, b) = (lanes(a), lanes(b));
    u32::from_le_bytes(core::array::from_fn(|i| a[i].max(b[i]) as u8))
}

#[cfg(not(qcnn_arm_dsp))]
pub(crate) fn smlad(a: u32, b: u32, acc: i32) -> i32 {
    let ((a0, a1), (b0, b1)) = (halves(a), halves(b));
    acc.wrapping_add(a0 * b0).wrapping_add(a1 * b1)
}

#[cfg(not(qcnn_arm_dsp))]
pub(crate) fn mac_patch4(patch: &[u32], weights: &[i8], groups: usize, acc: &mut [i32; 4]) {
    for (words, w) in patch
        .chunks_exact(8)
        .zip(weights.chunks_exact(4))
        .take(groups)
    {
        let [w0, w1, w2, w3] = [0, 1, 2, 3].map(|i| i32::from(w.get(i).copied().unwrap_or(0)));
        for (a, pair) in acc.iter_mut().zip(words.chunks_exact(2)) {
            let (x0, x2) = halves(pair.first().copied().unwrap_or(0));
            let (x1, x3) = halves(pair.get(1).copied().unwrap_or(0));
            *a = a
                .wrapping_add(w0 * x0)
                .wrapping_add(w2 * x2)
                .wrapping_add(w1 * x1)
                .wrapping_add(w3 * x3);
        }
    }
}

#[cfg(not(qcnn_arm_dsp))]
pub(crate) fn sum_bytes(bytes: &[i8]) -> i32 {
    bytes.iter().map(|&b| i32::from(b)).sum()
}

#[cfg(not(qcnn_arm_dsp))]
pub(crate) fn gather_runs(
    src: &[i8],
    (plane, row, rows, channels): (usize, usize, usize, usize),
    dst: &mut [i8],
    step: usize,
) -> bool {
    let runs = (0..channels).flat_map(|c| (0..rows).map(move |r| c * plane + r * row));
    let fits = channels > 0
        && rows > 0
        && runs.clone().all(|at| at + 4 <= src.len())
        && (channels * rows - 1) * step + 4 <= dst.len();
    if !fits {
        return false;
    }
    for (i, at) in runs.enumerate() {
        if let (Some(d), Some(s)) = (dst.get_mut(i * step..i * step + 4), src.get(at..at + 4)) {
            d.copy_from_slice(s);
        }
    }
    true
}

/// `out[o · plane] = requantizer o (its six words in `requants`) applied to `best[o]`, for
/// the first `n` channels (the Cortex-M4's is the chain conv's assembly).
#[cfg(not(qcnn_arm_dsp))]
pub(crate) fn requantize(best: &[i32], requants: &[u32], n: usize, out: &mut [i8], plane: usize) {
    let words = requants.chunks_exact(6).take(n);
    for ((&acc, words), q) in best
        .iter()
        .zip(words)
        .zip(out.iter_mut().step_by(plane.max(1)))
    {
        if let Ok(words) = <[u32; 6]>::try_from(words) {
            *q = crate::ops::requant::PreparedRequantizer::from_words(words).apply(acc);
        }
    }
}

/// The same sums as [`mac_patch4`] (the Cortex-M4's runs two groups a loop pass).
#[cfg(not(qcnn_arm_dsp))]
pub(crate) fn mac_patch4_unrolled(
    patch: &[u32],
    weights: &[i8],
    groups: usize,
    acc: &mut [i32; 4],
) {
    mac_patch4(patch, weights, groups, acc)
}
