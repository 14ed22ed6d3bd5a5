//! The load's scan of every weight for −128, the one int8 value symmetric weights never take
//! (the i32 accumulator's bound, `ops::dot::MAX_DOT_LEN · 127 · 128 < 2^31`, relies on it).
//!
//! After the checksum it is the largest part of a load (the seed model has 810,000 weights),
//! so it reads a word at a time: a byte equal to 0x80 is a zero byte of `word ^ 0x80808080`,
//! and `(t − 0x01010101) & !t & 0x80808080` is non-zero exactly when `t` has a zero byte
//! (a borrow can set a high bit above a zero byte, never without one). The terms of every
//! word are OR-ed and tested once at the end.

const ONES: u32 = 0x0101_0101;
const HIGHS: u32 = 0x8080_8080;

/// Whether any of `weights` is −128. Not inlined: its loop's registers would otherwise spill
/// into the frame of the layer walk that calls it, on the stack through the whole load.
#[inline(never)]
pub(crate) fn holds_minus_128(weights: &[i8]) -> bool {
    let bytes: &[u8] = bytemuck::must_cast_slice(weights);
    // Aligned words: one LDR each on every Cortex-M (the M0 has no unaligned loads).
    let (head, words, tail) = bytemuck::pod_align_to::<u8, u32>(bytes);
    let (blocks, rest) = words.as_chunks::<4>();
    let mut zero_bytes = 0_u32;
    // Four words a round: the loop's own instructions are shared by 16 bytes.
    for block in blocks {
        for &word in block {
            zero_bytes |= zero_byte_bits(word);
        }
    }
    for &word in rest {
        zero_bytes |= zero_byte_bits(word);
    }
    zero_bytes & HIGHS != 0 || head.contains(&0x80) || tail.contains(&0x80)
}

/// High bit set in a byte lane (or above one) where `word` holds 0x80.
#[inline(always)]
fn zero_byte_bits(word: u32) -> u32 {
    let t = word ^ HIGHS;
    t.wrapping_sub(ONES) & !t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_minus_128_at_every_position_and_nothing_else() {
        for len in [0, 1, 3, 4, 15, 16, 17, 40, 70] {
            // Every other value, including the neighbours of 0x80 and bytes that borrow.
            let clean: Vec<i8> = (0..len)
                .map(|i| [-127, 127, 0, 1, -1, 0x7F, -126][i % 7])
                .collect();
            // Every alignment of the slice, so that head, words and tail all get the −128.
            for skip in 0..4.min(len) {
                assert!(!holds_minus_128(&clean[skip..]), "{len}, from {skip}");
                for at in skip..len {
                    let mut dirty = clean.clone();
                    dirty[at] = i8::MIN;
                    assert!(
                        holds_minus_128(&dirty[skip..]),
                        "{len} bytes from {skip}, at {at}"
                    );
                }
            }
        }
        let every_other: Vec<i8> = (-127..=127).collect();
        assert!(!holds_minus_128(&every_other));
        assert!(!holds_minus_128(&[0; 64]));
    }
}
