//! The inner products every layer spends its time in.
//!
//! These portable kernels are the reference. A target-specific fast path (SMLAD on
//! Cortex-M4, SIMD on the host) belongs beside them, behind `cfg`, with tests proving it
//! bit-identical to these.
//!
//! Sums wrap on i32 overflow, as the fixed-width hardware accumulators do; a validated model
//! limits dot lengths to [`MAX_DOT_LEN`] so a single dot product cannot overflow.

/// Longest dot product a model may ask for: `MAX_DOT_LEN · 127 · 128 < 2^31`, so the sum of
/// int8 products fits an i32 exactly.
pub const MAX_DOT_LEN: usize = 1 << 17;

/// `Σ a[i]·b[i]` over the shorter of the two slices.
#[inline]
pub fn dot(a: &[i8], b: &[i8]) -> i32 {
    a.iter().zip(b).fold(0_i32, |acc, (&a, &b)| {
        acc.wrapping_add(i32::from(a) * i32::from(b))
    })
}

/// `Σ a[i]·c`: the contribution of a kernel row lying over padding, every element of
/// which holds the input zero point `c`.
#[inline]
pub fn dot_constant(a: &[i8], c: i8) -> i32 {
    let sum = a
        .iter()
        .fold(0_i32, |acc, &a| acc.wrapping_add(i32::from(a)));
    sum.wrapping_mul(i32::from(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_cases() {
        assert_eq!(dot(&[1, -2, 3], &[4, 5, -6]), 4 - 10 - 18);
        assert_eq!(dot(&[127, -128], &[-128, -128]), -127 * 128 + 128 * 128);
        assert_eq!(dot(&[1, 2, 3], &[1]), 1);
        assert_eq!(dot(&[], &[]), 0);
        assert_eq!(dot_constant(&[1, -2, 3], -128), 2 * -128);
    }

    #[test]
    fn longest_dot_does_not_overflow() {
        let w = vec![-127_i8; MAX_DOT_LEN];
        let x = vec![-128_i8; MAX_DOT_LEN];
        assert_eq!(i64::from(dot(&w, &x)), 127 * 128 * MAX_DOT_LEN as i64);
        assert_eq!(
            i64::from(dot_constant(&w, -128)),
            127 * 128 * MAX_DOT_LEN as i64
        );
    }
}
