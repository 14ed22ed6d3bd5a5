//! The vector operations the x86-64 kernels are written in, once per instruction set.
//!
//! [`super::gemm`], [`super::conv2d`] and [`super::requant`] are one generic body each over
//! [`Isa`]; the three implementations here are the only per-ISA code. Every method is
//! `#[inline(always)]` and has no target features of its own: the kernels' entry points (in
//! [`super`]) carry `#[target_feature]`, and once the generic body is inlined into them the
//! intrinsics inline too.
//!
//! - [`Avx512`]: 16 i32 lanes, `vpdpbusd` (u8 × i8, four products per lane), `vpermb` gathers;
//!   four input channels per lane in the channel-packed convolution.
//! - [`AvxVnni`]: 8 lanes, AVX-VNNI's 256-bit `vpdpbusd`, `vpshufb` gathers; four channels
//!   per lane.
//! - [`Avx2`]: 8 lanes; in the convolution, products through `vpmaddwd` on u8 values
//!   zero-extended to i16 (by the gather itself, or two channels per lane in the packed
//!   layout: two products per lane, exact, where `vpmaddubsw` on biased inputs could
//!   saturate); in the gemm, `vpmaddubsw` on `|x|` and `w·sign x` (exact for weights in
//!   −127..=127), 32 bytes per step with no widening.
// Every method is a thin wrapper over intrinsics, with the trait's one safety contract.
#![allow(clippy::missing_safety_doc, unsafe_op_in_unsafe_fn)]

use core::arch::x86_64::*;

/// # Safety (every `unsafe fn`)
/// The CPU supports the implementation's instruction set, and pointers are readable for the bytes the method names.
pub(crate) trait Isa: Copy {
    /// i32 lanes per vector: output pixels per vector in the direct convolution.
    const LANES: usize;
    /// Output channels the direct convolution keeps in registers at once.
    const CONV_CHANNELS: usize;
    /// The same when the channel-packed layout computes a pool's two conv rows together
    /// (twice the accumulators, each weight broadcast serving both).
    const PAIRED_CHANNELS: usize;
    /// Bytes of `k` one gemm step consumes.
    const STEP: usize;
    /// The gemm multiplies `w ^ 0x80` (unsigned) by `x`, so it subtracts `128·Σx` afterwards.
    const BIASED_WEIGHTS: bool;
    /// Sixteen accumulators fit the register file (4 rows × 4 columns in the gemm).
    const MANY_REGISTERS: bool;
    /// Most columns one gemm block takes (1..=4). Where a product costs one instruction
    /// (`vpdpbusd`) several columns share each weight load; where it costs the same per
    /// (row, column) pair whatever the blocking (AVX2's sign trick), one column and more rows
    /// do without the columns' registers.
    const GEMM_COLUMNS: usize;
    type V: Copy;
    /// One kernel row's four weights, as [`Isa::dot`] takes them.
    type Word: Copy + Default;
    /// The input bytes under one kernel row for every pixel of a vector.
    type Pixels: Copy;
    type Index: Copy;

    fn word(row: [i8; 4]) -> Self::Word;

    unsafe fn splat(x: i32) -> Self::V;
    unsafe fn add(a: Self::V, b: Self::V) -> Self::V;
    unsafe fn sub(a: Self::V, b: Self::V) -> Self::V;
    unsafe fn and(a: Self::V, b: Self::V) -> Self::V;
    unsafe fn min(a: Self::V, b: Self::V) -> Self::V;
    unsafe fn max(a: Self::V, b: Self::V) -> Self::V;
    /// Left shift by `n` (0..=31), wrapping.
    unsafe fn sll(a: Self::V, n: i32) -> Self::V;
    /// Arithmetic right shift by `n` (0..=31).
    unsafe fn sra(a: Self::V, n: i32) -> Self::V;
    /// `(a·m + 2^30) >> 31` per lane (the low 32 bits), `i32::MAX` where `a = m = i32::MIN`
    /// if `may_overflow`.
    unsafe fn mul_high_rounding(a: Self::V, m: i32, may_overflow: bool) -> Self::V;
    /// `x + 1` where `remainder > threshold`.
    unsafe fn round_up(x: Self::V, remainder: Self::V, threshold: Self::V) -> Self::V;
    /// Lanes already within −128..=127, as bytes in lane order (the rest of the vector unused).
    unsafe fn narrow(a: Self::V) -> __m128i;
    /// Each odd lane moved down into the even lane below it.
    unsafe fn odd_to_even(a: Self::V) -> Self::V;

    /// The gather pattern for a stride (1..=3).
    unsafe fn gather_index(stride: usize) -> Self::Index;
    /// Reads 64 bytes from `row`: pixel `i` gets the bytes at `i·stride..i·stride + 4`.
    unsafe fn gather(row: *const u8, index: Self::Index, stride: usize) -> Self::Pixels;
    /// `acc + Σ pixel bytes · word bytes` per lane.
    unsafe fn dot(acc: Self::V, pixels: Self::Pixels, word: &Self::Word) -> Self::V;

    /// Input channels one 32-bit lane holds in the channel-packed convolution: four u8 for
    /// `vpdpbusd`, two u16 for `vpmaddwd`.
    const PACK: usize;
    /// Products one kernel row costs in the row-gather convolution, in dot instructions
    /// (to choose between the two layouts).
    const ROW_DOTS: usize;
    /// `PACK` biased input bytes (channel order) as one lane.
    fn pack_lane(bytes: [u8; 4]) -> u32 {
        let shift = 32 / Self::PACK;
        bytes
            .iter()
            .take(Self::PACK)
            .enumerate()
            .fold(0, |lane, (j, &b)| lane | u32::from(b) << (j * shift))
    }
    /// `PACK` weights (channel order) as one word of [`Isa::dot_packed`].
    fn pack_word(weights: [i8; 4]) -> i32;
    /// `LANES` consecutive lanes from `p`.
    unsafe fn load_lanes(p: *const u32) -> Self::V;
    /// `acc + Σ lane parts · word parts` per lane (`PACK` products each).
    unsafe fn dot_packed(acc: Self::V, pixels: Self::V, word: i32) -> Self::V;

    /// `len ≤ STEP` bytes of a gemm row (weights: `w ^ 0x80` when biased) or column.
    unsafe fn load_row(p: *const i8, len: usize) -> Self::V;
    unsafe fn load_column(p: *const i8, len: usize) -> Self::V;
    /// `acc + Σ row · column` per lane, on what the loads return.
    unsafe fn madd(acc: Self::V, row: Self::V, column: Self::V) -> Self::V;
    /// `acc + Σ column bytes` per lane (for the `128·Σx` correction).
    unsafe fn add_bytes(acc: Self::V, column: Self::V) -> Self::V;
    /// The lane sums of four vectors, as `[Σa, Σb, Σc, Σd]`.
    unsafe fn reduce4(a: Self::V, b: Self::V, c: Self::V, d: Self::V) -> __m128i;
}

/// `len < 32` bytes from `p`, zero-padded: the 256-bit kernels' tail load.
#[inline(always)]
unsafe fn load_partial_256(p: *const i8, len: usize) -> __m256i {
    let mut buffer = [0_i8; 32];
    // SAFETY: the caller guarantees `len ≤ 32` readable bytes at `p`.
    unsafe {
        core::ptr::copy_nonoverlapping(p, buffer.as_mut_ptr(), len.min(32));
        _mm256_loadu_si256(buffer.as_ptr().cast())
    }
}

/// Bytes `b` of a 32-bit lane in which a pixel's four kernel-row bytes sit: byte `b` of lane
/// `i` (pixel) reads row byte `i·stride + b`.
const fn dot_byte(pixel: usize, b: usize, stride: usize) -> u8 {
    ((pixel * stride + b) & 63) as u8
}

/// The methods that are one intrinsic each, as a table `method => intrinsic`: lane-wise
/// operations on two vectors, then the shifts by a count (held in an `__m128i`).
macro_rules! lane_ops {
    ($v:ty: $($op:ident => $op_intrinsic:ident),+; shifts: $($shift:ident => $shift_intrinsic:ident),+) => {
        $(
            #[inline(always)]
            unsafe fn $op(a: $v, b: $v) -> $v {
                $op_intrinsic(a, b)
            }
        )+
        $(
            #[inline(always)]
            unsafe fn $shift(a: $v, n: i32) -> $v {
                $shift_intrinsic(a, _mm_cvtsi32_si128(n))
            }
        )+
    };
}

// ---------------------------------------------------------------------------------------------

/// AVX-512 F, BW, VL, VNNI and VBMI.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Avx512;

impl Isa for Avx512 {
    const LANES: usize = 16;
    const CONV_CHANNELS: usize = 16;
    const PAIRED_CHANNELS: usize = 8;
    const STEP: usize = 64;
    const BIASED_WEIGHTS: bool = true;
    const MANY_REGISTERS: bool = true;
    const GEMM_COLUMNS: usize = 4;
    type V = __m512i;
    type Word = i32;
    type Pixels = __m512i;
    type Index = __m512i;

    #[inline(always)]
    fn word(row: [i8; 4]) -> i32 {
        i32::from_le_bytes(row.map(|b| b as u8))
    }

    #[inline(always)]
    unsafe fn splat(x: i32) -> __m512i {
        _mm512_set1_epi32(x)
    }
    lane_ops!(__m512i:
        add => _mm512_add_epi32,
        sub => _mm512_sub_epi32,
        and => _mm512_and_si512,
        min => _mm512_min_epi32,
        max => _mm512_max_epi32;
        shifts: sll => _mm512_sll_epi32, sra => _mm512_sra_epi32
    );
    #[inline(always)]
    unsafe fn mul_high_rounding(a: __m512i, m: i32, may_overflow: bool) -> __m512i {
        let mv = _mm512_set1_epi32(m);
        let half = _mm512_set1_epi64(1 << 30);
        // Bits 31..63 of each 64-bit product: a logical shift gives the same low 32 bits as
        // the arithmetic one.
        let even = _mm512_srli_epi64::<31>(_mm512_add_epi64(_mm512_mul_epi32(a, mv), half));
        let odd = _mm512_mul_epi32(_mm512_srli_epi64::<32>(a), mv);
        let odd = _mm512_slli_epi64::<1>(_mm512_add_epi64(odd, half));
        let high = _mm512_mask_blend_epi32(0xAAAA, even, odd);
        if may_overflow {
            let overflow = _mm512_cmpeq_epi32_mask(a, mv);
            _mm512_mask_blend_epi32(overflow, high, _mm512_set1_epi32(i32::MAX))
        } else {
            high
        }
    }
    #[inline(always)]
    unsafe fn round_up(x: __m512i, remainder: __m512i, threshold: __m512i) -> __m512i {
        let up = _mm512_cmpgt_epi32_mask(remainder, threshold);
        _mm512_mask_add_epi32(x, up, x, _mm512_set1_epi32(1))
    }
    #[inline(always)]
    unsafe fn narrow(a: __m512i) -> __m128i {
        _mm512_cvtepi32_epi8(a)
    }
    #[inline(always)]
    unsafe fn odd_to_even(a: __m512i) -> __m512i {
        _mm512_srli_epi64::<32>(a)
    }

    #[inline(always)]
    unsafe fn gather_index(stride: usize) -> __m512i {
        let index: [u8; 64] = core::array::from_fn(|i| dot_byte(i / 4, i % 4, stride));
        // SAFETY: `index` holds 64 bytes.
        unsafe { _mm512_loadu_si512(index.as_ptr().cast()) }
    }
    #[inline(always)]
    unsafe fn gather(row: *const u8, index: __m512i, _stride: usize) -> __m512i {
        // SAFETY: the caller guarantees 64 readable bytes.
        _mm512_permutexvar_epi8(index, unsafe { _mm512_loadu_si512(row.cast()) })
    }
    #[inline(always)]
    unsafe fn dot(acc: __m512i, pixels: __m512i, word: &i32) -> __m512i {
        _mm512_dpbusd_epi32(acc, pixels, _mm512_set1_epi32(*word))
    }

    const PACK: usize = 4;
    const ROW_DOTS: usize = 1;
    #[inline(always)]
    fn pack_word(weights: [i8; 4]) -> i32 {
        i32::from_le_bytes(weights.map(|b| b as u8))
    }
    #[inline(always)]
    unsafe fn load_lanes(p: *const u32) -> __m512i {
        // SAFETY: the caller guarantees 64 readable bytes.
        unsafe { _mm512_loadu_si512(p.cast()) }
    }
    #[inline(always)]
    unsafe fn dot_packed(acc: __m512i, pixels: __m512i, word: i32) -> __m512i {
        _mm512_dpbusd_epi32(acc, pixels, _mm512_set1_epi32(word))
    }

    #[inline(always)]
    unsafe fn load_row(p: *const i8, len: usize) -> __m512i {
        // Masked-off bytes become 0x80 but meet column bytes of 0.
        _mm512_xor_si512(
            unsafe { Self::load_column(p, len) },
            _mm512_set1_epi8(i8::MIN),
        )
    }
    #[inline(always)]
    unsafe fn load_column(p: *const i8, len: usize) -> __m512i {
        // SAFETY: the caller guarantees `len` readable bytes; the mask keeps the load to them.
        unsafe {
            if len >= 64 {
                _mm512_loadu_si512(p.cast())
            } else {
                _mm512_maskz_loadu_epi8((1_u64 << len) - 1, p)
            }
        }
    }
    #[inline(always)]
    unsafe fn madd(acc: __m512i, row: __m512i, column: __m512i) -> __m512i {
        _mm512_dpbusd_epi32(acc, row, column)
    }
    #[inline(always)]
    unsafe fn add_bytes(acc: __m512i, column: __m512i) -> __m512i {
        _mm512_dpbusd_epi32(acc, _mm512_set1_epi8(1), column)
    }
    #[inline(always)]
    unsafe fn reduce4(a: __m512i, b: __m512i, c: __m512i, d: __m512i) -> __m128i {
        // Interleave and add pairwise until each 128-bit lane holds one partial sum of each.
        let ab = _mm512_add_epi32(_mm512_unpacklo_epi32(a, b), _mm512_unpackhi_epi32(a, b));
        let cd = _mm512_add_epi32(_mm512_unpacklo_epi32(c, d), _mm512_unpackhi_epi32(c, d));
        let abcd = _mm512_add_epi32(_mm512_unpacklo_epi64(ab, cd), _mm512_unpackhi_epi64(ab, cd));
        let half = _mm256_add_epi32(
            _mm512_castsi512_si256(abcd),
            _mm512_extracti64x4_epi64::<1>(abcd),
        );
        unsafe { reduce_256(half) }
    }
}

/// The two 128-bit halves of `v` added.
#[inline(always)]
unsafe fn reduce_256(v: __m256i) -> __m128i {
    _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v))
}

// ---------------------------------------------------------------------------------------------
// The two 256-bit sets share everything but the products.

/// The 256-bit operations both AVX2 tiers use, `VNNI` choosing the products.
macro_rules! avx2_common {
    () => {
        const LANES: usize = 8;
        const CONV_CHANNELS: usize = 8;
        const PAIRED_CHANNELS: usize = 4;
        const MANY_REGISTERS: bool = false;
        type V = __m256i;
        type Index = __m256i;

        #[inline(always)]
        unsafe fn splat(x: i32) -> __m256i {
            _mm256_set1_epi32(x)
        }
        lane_ops!(__m256i:
            add => _mm256_add_epi32,
            sub => _mm256_sub_epi32,
            and => _mm256_and_si256,
            min => _mm256_min_epi32,
            max => _mm256_max_epi32;
            shifts: sll => _mm256_sll_epi32, sra => _mm256_sra_epi32
        );
        #[inline(always)]
        unsafe fn mul_high_rounding(a: __m256i, m: i32, may_overflow: bool) -> __m256i {
            let mv = _mm256_set1_epi32(m);
            let half = _mm256_set1_epi64x(1 << 30);
            // As for AVX-512; AVX2 has no 64-bit arithmetic shift, and needs none.
            let even = _mm256_srli_epi64::<31>(_mm256_add_epi64(_mm256_mul_epi32(a, mv), half));
            let odd = _mm256_mul_epi32(_mm256_srli_epi64::<32>(a), mv);
            let odd = _mm256_slli_epi64::<1>(_mm256_add_epi64(odd, half));
            let high = _mm256_blend_epi32::<0b1010_1010>(even, odd);
            if may_overflow {
                let overflow = _mm256_cmpeq_epi32(a, mv);
                _mm256_blendv_epi8(high, _mm256_set1_epi32(i32::MAX), overflow)
            } else {
                high
            }
        }
        #[inline(always)]
        unsafe fn round_up(x: __m256i, remainder: __m256i, threshold: __m256i) -> __m256i {
            // The compare gives −1 where it holds.
            _mm256_sub_epi32(x, _mm256_cmpgt_epi32(remainder, threshold))
        }
        #[inline(always)]
        unsafe fn narrow(a: __m256i) -> __m128i {
            // The values fit, so the saturating packs keep them.
            let words = _mm256_packs_epi32(a, a);
            let bytes = _mm256_packs_epi16(words, words);
            _mm_unpacklo_epi32(
                _mm256_castsi256_si128(bytes),
                _mm256_extracti128_si256::<1>(bytes),
            )
        }
        #[inline(always)]
        unsafe fn odd_to_even(a: __m256i) -> __m256i {
            _mm256_srli_epi64::<32>(a)
        }
        #[inline(always)]
        unsafe fn load_lanes(p: *const u32) -> __m256i {
            // SAFETY: the caller guarantees 32 readable bytes.
            unsafe { _mm256_loadu_si256(p.cast()) }
        }
        #[inline(always)]
        unsafe fn load_column(p: *const i8, len: usize) -> __m256i {
            // SAFETY: the caller guarantees `len` readable bytes.
            unsafe {
                if len >= 32 {
                    _mm256_loadu_si256(p.cast())
                } else {
                    load_partial_256(p, len)
                }
            }
        }
        #[inline(always)]
        unsafe fn reduce4(a: __m256i, b: __m256i, c: __m256i, d: __m256i) -> __m128i {
            let abcd = _mm256_hadd_epi32(_mm256_hadd_epi32(a, b), _mm256_hadd_epi32(c, d));
            unsafe { reduce_256(abcd) }
        }
    };
}

/// Both 128-bit lanes of a gather: pixels 0..4 read from `row`, pixels 4..8 from
/// `row + 4·stride`, so each lane's bytes lie within its own 16 (`3·stride + 4 ≤ 16`).
#[inline(always)]
unsafe fn load_lanes(row: *const u8, stride: usize) -> __m256i {
    // SAFETY: the caller guarantees 64 readable bytes from `row`; `4·stride + 16 ≤ 28`.
    unsafe { _mm256_loadu2_m128i(row.add(4 * stride).cast::<__m128i>(), row.cast::<__m128i>()) }
}

/// AVX2 and AVX-VNNI.
#[derive(Clone, Copy, Debug)]
pub(crate) struct AvxVnni;

impl Isa for AvxVnni {
    avx2_common!();
    const STEP: usize = 32;
    const BIASED_WEIGHTS: bool = true;
    const GEMM_COLUMNS: usize = 4;
    type Word = i32;
    type Pixels = __m256i;

    #[inline(always)]
    fn word(row: [i8; 4]) -> i32 {
        i32::from_le_bytes(row.map(|b| b as u8))
    }

    #[inline(always)]
    unsafe fn gather_index(stride: usize) -> __m256i {
        let index: [u8; 32] = core::array::from_fn(|i| dot_byte(i % 16 / 4, i % 4, stride));
        // SAFETY: `index` holds 32 bytes.
        unsafe { _mm256_loadu_si256(index.as_ptr().cast()) }
    }
    #[inline(always)]
    unsafe fn gather(row: *const u8, index: __m256i, stride: usize) -> __m256i {
        _mm256_shuffle_epi8(unsafe { load_lanes(row, stride) }, index)
    }
    #[inline(always)]
    unsafe fn dot(acc: __m256i, pixels: __m256i, word: &i32) -> __m256i {
        _mm256_dpbusd_avx_epi32(acc, pixels, _mm256_set1_epi32(*word))
    }

    const PACK: usize = 4;
    const ROW_DOTS: usize = 1;
    #[inline(always)]
    fn pack_word(weights: [i8; 4]) -> i32 {
        i32::from_le_bytes(weights.map(|b| b as u8))
    }
    #[inline(always)]
    unsafe fn dot_packed(acc: __m256i, pixels: __m256i, word: i32) -> __m256i {
        _mm256_dpbusd_avx_epi32(acc, pixels, _mm256_set1_epi32(word))
    }

    #[inline(always)]
    unsafe fn load_row(p: *const i8, len: usize) -> __m256i {
        // Padding bytes become 0x80 but meet column bytes of 0.
        _mm256_xor_si256(
            unsafe { Self::load_column(p, len) },
            _mm256_set1_epi8(i8::MIN),
        )
    }
    #[inline(always)]
    unsafe fn madd(acc: __m256i, row: __m256i, column: __m256i) -> __m256i {
        _mm256_dpbusd_avx_epi32(acc, row, column)
    }
    #[inline(always)]
    unsafe fn add_bytes(acc: __m256i, column: __m256i) -> __m256i {
        _mm256_dpbusd_avx_epi32(acc, _mm256_set1_epi8(1), column)
    }
}

/// AVX2 alone.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Avx2;

impl Isa for Avx2 {
    avx2_common!();
    const STEP: usize = 32;
    const BIASED_WEIGHTS: bool = false;
    const GEMM_COLUMNS: usize = 1;
    /// Kernel-row weights 0, 1 and 2, 3 as two i16 pairs, each already in all eight lanes:
    /// `vpmaddwd` then reads them from memory, with no broadcast on the shuffle port.
    type Word = [[i32; 8]; 2];
    /// Kernel-row bytes 0, 1 and 2, 3 of every pixel, zero-extended to i16 pairs.
    type Pixels = [__m256i; 2];

    #[inline(always)]
    fn word(row: [i8; 4]) -> [[i32; 8]; 2] {
        let pair = |a: i8, b: i8| (i32::from(b) << 16) | i32::from(a as i16 as u16);
        [[pair(row[0], row[1]); 8], [pair(row[2], row[3]); 8]]
    }

    #[inline(always)]
    unsafe fn gather_index(stride: usize) -> __m256i {
        // Pixel p, pair j: bytes [2j, 0x80, 2j + 1, 0x80] (0x80: vpshufb writes zero).
        let index: [u8; 32] = core::array::from_fn(|i| match i % 2 {
            0 => dot_byte(i % 16 / 4, i % 4 / 2, stride),
            _ => 0x80,
        });
        // SAFETY: `index` holds 32 bytes.
        unsafe { _mm256_loadu_si256(index.as_ptr().cast()) }
    }
    #[inline(always)]
    unsafe fn gather(row: *const u8, index: __m256i, stride: usize) -> [__m256i; 2] {
        let bytes = unsafe { load_lanes(row, stride) };
        // Pair 1 is pair 0 two bytes further on.
        let next = _mm256_add_epi8(index, _mm256_set1_epi16(2));
        [
            _mm256_shuffle_epi8(bytes, index),
            _mm256_shuffle_epi8(bytes, next),
        ]
    }
    #[inline(always)]
    unsafe fn dot(acc: __m256i, pixels: [__m256i; 2], word: &[[i32; 8]; 2]) -> __m256i {
        // Each i32 lane: two u8 × i8 products (|sum| ≤ 2·255·127), exact in vpmaddwd.
        let low = _mm256_madd_epi16(pixels[0], _mm256_loadu_si256(word[0].as_ptr().cast()));
        let high = _mm256_madd_epi16(pixels[1], _mm256_loadu_si256(word[1].as_ptr().cast()));
        _mm256_add_epi32(acc, _mm256_add_epi32(low, high))
    }

    const PACK: usize = 2;
    const ROW_DOTS: usize = 2;
    #[inline(always)]
    fn pack_word(weights: [i8; 4]) -> i32 {
        (i32::from(weights[1]) << 16) | i32::from(weights[0] as i16 as u16)
    }
    #[inline(always)]
    unsafe fn dot_packed(acc: __m256i, pixels: __m256i, word: i32) -> __m256i {
        // Two u8 × i8 products per lane, each exact in i16 and summed exactly in i32.
        _mm256_add_epi32(acc, _mm256_madd_epi16(pixels, _mm256_set1_epi32(word)))
    }

    #[inline(always)]
    unsafe fn load_row(p: *const i8, len: usize) -> __m256i {
        unsafe { Self::load_column(p, len) }
    }
    #[inline(always)]
    unsafe fn madd(acc: __m256i, row: __m256i, column: __m256i) -> __m256i {
        // w·x = |x|·(w·sign x): `vpmaddubsw` takes |x| ≤ 128 unsigned and w·sign x, which is
        // within −127..=127 because weights are (a blob's never hold −128), so each pair sums
        // to at most 2·128·127 = 32512 and never saturates. `vpabsb` on the same column is
        // computed once per step: every row's call sees the same value.
        let products = _mm256_maddubs_epi16(_mm256_abs_epi8(column), _mm256_sign_epi8(row, column));
        _mm256_add_epi32(acc, _mm256_madd_epi16(products, _mm256_set1_epi16(1)))
    }
    #[inline(always)]
    unsafe fn add_bytes(acc: __m256i, column: __m256i) -> __m256i {
        let pairs = _mm256_maddubs_epi16(_mm256_set1_epi8(1), column);
        _mm256_add_epi32(acc, _mm256_madd_epi16(pairs, _mm256_set1_epi16(1)))
    }
}
