//! A bounds-checked f32 matrix product over `matrixmultiply`'s SGEMM, which picks its
//! AVX-512/FMA/AVX/SSE kernel at run time. The float reference's convolutions (after im2col)
//! and its Linear layers (a batch of images at once) are all products of this shape.

/// How the right-hand factor `B` (k×n) is laid out in its slice.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// `B` row by row: element (i, j) at `i·n + j`.
    RowMajor,
    /// `Bᵀ` row by row (an `n×k` matrix such as a Linear weight `[out][in]`): (i, j) at `j·k + i`.
    Transposed,
}

/// Below this inner dimension (e.g. a 1-channel 3×3 convolution's 9), SGEMM's packing and
/// 16×16 tile stores cost more than the multiply-adds: plain loops are several times faster.
const SMALL_K: usize = 16;

/// `c = a · b`, with `a` m×k and `c` m×n row-major. Panics if a slice is too short.
///
/// Each element of `c` is summed in the same order whatever `m`, so one image gives the same
/// numbers alone as in a batch.
pub fn sgemm(m: usize, k: usize, n: usize, a: &[f32], b: &[f32], layout: Layout, c: &mut [f32]) {
    assert!(a.len() >= m * k, "sgemm: a has {} < {m}×{k}", a.len());
    assert!(b.len() >= k * n, "sgemm: b has {} < {k}×{n}", b.len());
    assert!(c.len() >= m * n, "sgemm: c has {} < {m}×{n}", c.len());
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        c[..m * n].fill(0.0);
        return;
    }
    if k < SMALL_K {
        small_k(m, k, n, a, b, layout, c);
        return;
    }
    let (rsb, csb) = match layout {
        Layout::RowMajor => (n, 1),
        Layout::Transposed => (1, k),
    };
    let stride = |s: usize| isize::try_from(s).expect("matrix strides fit in isize");
    // SAFETY: the asserts above keep every element read (a: m×k with strides (k, 1); b: k×n
    // with strides (rsb, csb), whose largest offset is k·n − 1 in both layouts) and written
    // (c: m×n with strides (n, 1), no two elements aliased) inside the slices; β = 0 means
    // `c` is only written, and the borrows rule out any overlap between `c` and `a` or `b`.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            a.as_ptr(),
            stride(k),
            1,
            b.as_ptr(),
            stride(rsb),
            stride(csb),
            0.0,
            c.as_mut_ptr(),
            stride(n),
            1,
        );
    }
}

/// The product as row updates (`c_i += a_ip · b_p`) or, for a transposed `b`, dot products;
/// each element is summed over `p` in order.
fn small_k(m: usize, k: usize, n: usize, a: &[f32], b: &[f32], layout: Layout, c: &mut [f32]) {
    for (a_row, c_row) in a.chunks_exact(k).zip(c.chunks_exact_mut(n)).take(m) {
        match layout {
            Layout::RowMajor => {
                c_row.fill(0.0);
                for (&a_ip, b_row) in a_row.iter().zip(b.chunks_exact(n)) {
                    c_row
                        .iter_mut()
                        .zip(b_row)
                        .for_each(|(c, &b)| *c += a_ip * b);
                }
            }
            Layout::Transposed => {
                for (c, b_col) in c_row.iter_mut().zip(b.chunks_exact(k)) {
                    *c = a_row
                        .iter()
                        .zip(b_col)
                        .fold(0.0, |sum, (&a, &b)| sum + a * b);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both layouts, through SGEMM (k = 19) and the small-k loops (k = 9).
    #[test]
    fn both_layouts_match_the_textbook_product() {
        for k in [19, 9] {
            check_product(5, k, 11);
        }
    }

    fn check_product(m: usize, k: usize, n: usize) {
        let a: Vec<f32> = (0..m * k).map(|i| (i % 7) as f32 - 3.0).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i % 5) as f32 * 0.5 - 1.0).collect();
        let bt: Vec<f32> = (0..n * k).map(|i| b[(i % k) * n + i / k]).collect();
        let mut expected = vec![0.0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                expected[i * n + j] = (0..k).map(|p| a[i * k + p] * b[p * n + j]).sum();
            }
        }
        for (layout, b) in [(Layout::RowMajor, &b), (Layout::Transposed, &bt)] {
            let mut c = vec![f32::NAN; m * n];
            sgemm(m, k, n, &a, b, layout, &mut c);
            // Small integers and halves: every sum is exact in any order.
            assert_eq!(c, expected, "{layout:?} k={k}");
        }
    }

    #[test]
    #[should_panic(expected = "sgemm: b has")]
    fn short_slices_panic_instead_of_reading_out_of_bounds() {
        sgemm(
            2,
            3,
            4,
            &[0.0; 6],
            &[0.0; 11],
            Layout::RowMajor,
            &mut [0.0; 8],
        );
    }
}
