//! The DSP instructions the fast kernels use: the Cortex-M4's (`ops::arm_dsp`) where the
//! target has them, else plain-Rust stand-ins computing the same numbers, so that the host
//! tests run the fast kernels' own bookkeeping (patch layout, tails, padding) against the
//! portable kernels too.

#[cfg(qcnn_arm_dsp)]
pub(crate) use crate::ops::arm_dsp::{mac_patch4, mac_patch4_unrolled, smlad, sum_bytes};

#[cfg(not(qcnn_arm_dsp))]
fn halves(word: u32) -> (i32, i32) {
    (
        i32::from(word as u16 as i16),
        i32::from((word >> 16) as u16 as i16),
    )
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
