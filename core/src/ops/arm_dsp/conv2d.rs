//! Conv2d (+ fused ReLU and pool) on the Cortex-M4, without im2col bytes or gemm calls:
//!
//! 1. Input rows are converted once to int16, pixel-major (for each padded column, its C
//!    channel values), into a ring holding the rows one pooled output row needs. Padding
//!    columns hold the input zero point; kernel rows over padding rows are zero points.
//!    A streamed producer instead writes its int8 rows straight into a ring of int8 values
//!    ([`RingValues::Int8`]: half the bytes).
//! 2. A conv output's patch is then K runs of K·C consecutive int16 values, one per kernel
//!    row, copied as words into a small patch buffer (zero words pad it to a multiple of 4).
//!    From an int8 ring each word of four values becomes two patch words with SXTB16:
//!    values (0, 2) and (1, 3), an order the interleaved weights follow.
//! 3. The weights are interleaved once per run to match: for each group of four output
//!    channels, their four biases, then for every patch word the four channels' int16 pairs.
//!    The `asm!` loop starts four accumulators at the biases (one LDM), then per patch word
//!    does one LDM of four weight words, one LDR and four SMLAD: 26 instructions per 32 MACs.
//!
//! Every buffer (prepared requantizers, interleaved weights, the ring, the patch, the
//! accumulators) comes from the scratch the caller's arena provides; the layout is
//! [`DspConvLayout`], which `Model::arena_len` counts on every target. Only the ring's
//! bookkeeping (112 bytes) stays on the stack.
//!
//! A fused pool takes the max of the accumulators over its window, then requantizes once:
//! this path only takes layers whose requantizers are all monotone (no left shift, as every
//! int8 layer the quantize tool writes); others run the portable code.

use core::arch::asm;

use crate::ops::conv2d_op::Conv2dOp;
use crate::ops::requant::PreparedRequantizer;
use crate::ops::scratch::{self, DspConvLayout, GROUP, MAX_KERNEL_ROWS, MAX_RING_ROWS, RingValues};

/// Carves the layer's buffers out of `words`, in the order `DspConvLayout::total_words`
/// counts them.
struct Buffers<'s> {
    requants: &'s mut [u32],
    weights: &'s mut [u32],
    ring: &'s mut [u32],
    patch: &'s mut [u32],
    acc: &'s mut [i32],
    best: &'s mut [i32],
}

impl<'s> Buffers<'s> {
    fn carve(layout: &DspConvLayout, words: &'s mut [u32]) -> Option<Self> {
        let (requants, rest) = words.split_at_mut_checked(layout.requant_words())?;
        let (weights, rest) = rest.split_at_mut_checked(layout.weight_words())?;
        let (ring, rest) = rest.split_at_mut_checked(layout.ring_words)?;
        let (patch, rest) = rest.split_at_mut_checked(layout.patch_words)?;
        let (acc, rest) = rest.split_at_mut_checked(layout.acc_words())?;
        let (best, _) = rest.split_at_mut_checked(layout.acc_words())?;
        Some(Self {
            requants,
            weights,
            ring,
            patch,
            acc: bytemuck::must_cast_slice_mut(acc),
            best: bytemuck::must_cast_slice_mut(best),
        })
    }
}

/// Where the kernel's input rows come from, and how the ring holds them.
pub(crate) trait RowSource {
    const RING: RingValues;
    /// Writes input row `row` into ring slot `slot`, between the padding columns.
    fn load(
        &mut self,
        op: &Conv2dOp<'_>,
        layout: &DspConvLayout,
        row: usize,
        ring: &mut [u32],
        slot: usize,
    );
}

/// The whole input map.
struct MapRows<'r> {
    input: &'r [i8],
    plane: usize,
    width: usize,
}

impl RowSource for MapRows<'_> {
    const RING: RingValues = RingValues::Int16;

    #[inline(always)]
    fn load(
        &mut self,
        op: &Conv2dOp<'_>,
        layout: &DspConvLayout,
        row: usize,
        ring: &mut [u32],
        slot: usize,
    ) {
        let values = bytemuck::must_cast_slice_mut(ring);
        convert_row(
            op,
            layout,
            self.input,
            self.plane,
            row * self.width,
            values,
            slot,
        );
    }
}

/// Runs `op` if it fits the path's limits and `scratch` holds its buffers; `false` (nothing
/// written) otherwise.
pub(crate) fn conv2d(
    op: &Conv2dOp<'_>,
    input: &[i8],
    output: &mut [i8],
    scratch: &mut [i8],
) -> bool {
    let mut rows = MapRows {
        input,
        plane: op.input.plane(),
        width: op.input.w,
    };
    conv2d_from(op, &mut rows, output, scratch)
}

/// [`conv2d`] reading its input rows from a streamed producer (`crate::stream` implements
/// [`RowSource`] for it; a separate instance, so the whole-map one is the same code as before
/// streaming existed).
pub(crate) fn conv2d_rows(
    op: &Conv2dOp<'_>,
    rows: &mut impl RowSource,
    output: &mut [i8],
    scratch: &mut [i8],
) -> bool {
    conv2d_from(op, rows, output, scratch)
}

fn conv2d_from<S: RowSource>(
    op: &Conv2dOp<'_>,
    rows: &mut S,
    output: &mut [i8],
    scratch: &mut [i8],
) -> bool {
    let Some(layout) = DspConvLayout::with_ring(&op.geometry(), S::RING) else {
        return false;
    };
    let Some(b) = Buffers::carve(&layout, scratch::words(scratch)) else {
        return false;
    };
    // Only monotone requantizers (every validated channel without a left shift): the max
    // of the accumulators is then the max of the outputs.
    let mut slots = b.requants.chunks_exact_mut(6);
    for (_, requant) in op.channels.iter() {
        match (PreparedRequantizer::new(&requant), slots.next()) {
            (Some(prepared), Some(slot)) if requant.is_monotone() => {
                slot.copy_from_slice(&prepared.to_words());
            }
            _ => return false,
        }
    }
    b.weights.fill(0);
    interleave_weights::<S>(op, &layout, b.weights);
    let channels = op.output.c;
    let requants = &*b.requants;
    let weights = &*b.weights;

    let ring = b.ring;
    match S::RING {
        RingValues::Int16 => {
            let values: &mut [i16] = bytemuck::must_cast_slice_mut(&mut *ring);
            values.fill(i16::from(op.input_zero_point));
        }
        RingValues::Int8 => {
            let values: &mut [i8] = bytemuck::must_cast_slice_mut(&mut *ring);
            values.fill(op.input_zero_point);
        }
    }
    // (The ring is read as words below and written as values by the row source.)
    // Which input row each ring slot holds.
    let mut loaded = [isize::MIN; MAX_RING_ROWS];
    // A kernel row over the top or bottom padding: every patch word is the zero point twice.
    let half = u32::from(i16::from(op.input_zero_point) as u16);
    let padding_word = half | half << 16;
    let patch = b.patch;
    let (acc, best) = (b.acc, b.best);
    let plane = op.output.plane();
    // Ring offsets (in values) of the kernel rows of each conv row of a pooled row.
    let mut bases = [0_usize; MAX_KERNEL_ROWS];
    let (k, pool) = (layout.k, op.pool);
    for py in 0..op.output.h {
        for dy in 0..pool.kernel {
            for ky in 0..k {
                let iy = ((py * pool.stride + dy) * op.stride + ky) as isize - op.padding as isize;
                let base = match usize::try_from(iy).ok().filter(|&iy| iy < op.input.h) {
                    Some(row) => {
                        let slot = row % layout.ring_rows.max(1);
                        if loaded.get(slot) != Some(&iy) {
                            rows.load(op, &layout, row, ring, slot);
                            if let Some(l) = loaded.get_mut(slot) {
                                *l = iy;
                            }
                        }
                        slot * layout.row_values
                    }
                    None => PADDING_ROW,
                };
                if let Some(b) = bases.get_mut(dy * k + ky) {
                    *b = base;
                }
            }
        }
        let ring = &*ring;
        for px in 0..op.output.w {
            // The first position's sums start the max; the others fold into it.
            for dy in 0..pool.kernel {
                let bases = bases.get(dy * k..dy * k + k).unwrap_or(&[]);
                for dx in 0..pool.kernel {
                    let x = px * pool.stride + dx;
                    fill_patch(
                        S::RING,
                        ring,
                        bases,
                        x * op.stride * layout.c,
                        layout.row_words,
                        patch,
                        padding_word,
                    );
                    // One call site, so the kernel is inlined once.
                    let first = dy == 0 && dx == 0;
                    kernel(
                        weights,
                        patch,
                        layout.groups,
                        if first { &mut *best } else { &mut *acc },
                    );
                    if !first {
                        // Four at a time: the accumulators come in whole groups.
                        let pairs = best.chunks_exact_mut(GROUP).zip(acc.chunks_exact(GROUP));
                        for (best, sums) in pairs {
                            for (best, &sum) in best.iter_mut().zip(sums) {
                                *best = (*best).max(sum);
                            }
                        }
                    }
                }
            }
            let pixel = py * op.output.w + px;
            requantize(
                best,
                requants,
                channels,
                output.get_mut(pixel..).unwrap_or(&mut []),
                plane,
            );
        }
    }
    true
}

/// The requantization loop of [`requantize`] and [`requantize_channel`], which differ in
/// `load`: the LDM of each output's six requantizer words, advancing or not. Per output,
/// exactly `PreparedRequantizer::apply`: the left shift; the rounding doubling high multiply
/// as a 64-bit product plus 2^30, bits 31..62; the rounding right shift (`+1` when the
/// dropped bits exceed half, minus one for negatives); the saturating zero point; then SSAT
/// to int8 and the max with `min` (equal to max-then-min, as min ≤ 127).
macro_rules! requantize_asm {
    ($load:literal, $sums:expr, $requants:expr, $n:expr, $out:expr, $stride:expr) => {
        asm!(
            "2:",
            "ldr r0, [r9], #4",
            $load,
            "lsl r0, r0, r2",
            "smull r2, r1, r0, r1",
            "adds r2, r2, #0x40000000",
            "adc r1, r1, #0",
            "lsrs r2, r2, #31",
            "orr r0, r2, r1, lsl #1",
            "and r2, r0, r4",
            "lsrs r1, r0, #31",
            "add r1, r1, r4, asr #1",
            "asr r0, r0, r3",
            "cmp r2, r1",
            "it gt",
            "addgt r0, r0, #1",
            "qadd r0, r0, r5",
            "ssat r0, #8, r0",
            "cmp r0, r8",
            "it lt",
            "movlt r0, r8",
            "strb r0, [r11]",
            "add r11, r11, r12",
            "subs lr, lr, #1",
            "bne 2b",
            out("r0") _,
            out("r1") _,
            out("r2") _,
            out("r3") _,
            out("r4") _,
            out("r5") _,
            out("r8") _,
            inout("r9") $sums.as_ptr() => _,
            inout("r10") $requants.as_ptr() => _,
            inout("r11") $out.as_mut_ptr() => _,
            in("r12") $stride,
            inout("lr") $n => _,
            options(nostack),
        )
    };
}

/// `out[o · plane] = requant[o].apply(best[o])` for the first `n` channels, whose prepared
/// requantizers are six words each in `requants` ([`PreparedRequantizer::to_words`]), in
/// assembly: 24 instructions per output instead of the compiler's ~45 (its loop spills).
#[inline(always)]
pub(crate) fn requantize(best: &[i32], requants: &[u32], n: usize, out: &mut [i8], plane: usize) {
    let fits = n > 0 && best.len() >= n && requants.len() >= 6 * n && out.len() > (n - 1) * plane;
    if !fits {
        return;
    }
    // SAFETY: reads `n ≥ 1` accumulators of `best` and `n` prepared requantizers (six words
    // each, in LDM order, word-aligned), and writes `out[o · plane]` for `o < n`, all
    // in bounds as checked above. Registers only; no stack.
    unsafe {
        requantize_asm!(
            "ldm r10!, {{r1, r2, r3, r4, r5, r8}}",
            best,
            requants,
            n,
            out,
            plane
        )
    }
}

/// `out[i · stride] = requant.apply(sums[i])` for the first `n` sums, all with the one prepared
/// requantizer `requant` ([`PreparedRequantizer::to_words`]): [`requantize`]'s assembly for the
/// outputs of one channel (the streamed producer's rows, `super::row3`).
pub(crate) fn requantize_channel(
    sums: &[i32],
    requant: &[u32; 6],
    n: usize,
    out: &mut [i8],
    stride: usize,
) {
    let fits = n > 0 && sums.len() >= n && out.len() > (n - 1) * stride;
    if !fits {
        return;
    }
    // SAFETY: reads `n ≥ 1` sums and the six words of `requant`, and writes `out[i · stride]`
    // for `i < n`, all in bounds as checked above. Registers only; no stack.
    unsafe {
        requantize_asm!(
            "ldm r10, {{r1, r2, r3, r4, r5, r8}}",
            sums,
            requant,
            n,
            out,
            stride
        )
    }
}

/// Writes the biases and the int16 weight pairs of every group (see the module docs); `out`
/// starts zeroed, so channels beyond the last and the padding words weigh 0.
// Generic over the row source, so that each instance links only its own ring's layout.
fn interleave_weights<S: RowSource>(op: &Conv2dOp<'_>, layout: &DspConvLayout, out: &mut [u32]) {
    let group_words = GROUP + GROUP * layout.patch_words;
    let (c, k) = (layout.c, layout.k);
    {
        let halves: &mut [i16] = bytemuck::must_cast_slice_mut(out);
        let per_output = c * k * k;
        for (o, w_out) in op.weights.chunks_exact(per_output.max(1)).enumerate() {
            let group = (o / GROUP) * group_words + GROUP + o % GROUP;
            for (ch, w_ch) in w_out.chunks_exact((k * k).max(1)).enumerate() {
                for (ky, w_row) in w_ch.chunks_exact(k.max(1)).enumerate() {
                    for (kx, &w) in w_row.iter().enumerate() {
                        let value = kx * c + ch;
                        // Where SXTB16 or the int16 copy puts this value in the patch.
                        let (word, half) = match S::RING {
                            RingValues::Int16 => (value / 2, value % 2),
                            RingValues::Int8 => (2 * (value / 4) + value % 2, value % 4 / 2),
                        };
                        let word = group + GROUP * (ky * layout.row_words + word);
                        if let Some(h) = halves.get_mut(2 * word + half) {
                            *h = i16::from(w);
                        }
                    }
                }
            }
        }
    }
    for (o, (bias, _)) in op.channels.iter().enumerate() {
        if let Some(slot) = out.get_mut((o / GROUP) * group_words + o % GROUP) {
            *slot = bias as u32;
        }
    }
}

/// Converts an input row of every channel (channel `ch`'s at `src[ch · plane + offset..]`)
/// into ring slot `slot`, between the padding columns (which keep the zero point they were
/// filled with).
fn convert_row(
    op: &Conv2dOp<'_>,
    layout: &DspConvLayout,
    src: &[i8],
    plane: usize,
    offset: usize,
    values: &mut [i16],
    slot: usize,
) {
    let w = op.input.w;
    let start = slot * layout.row_values + op.padding * layout.c;
    let Some(dst) = values.get_mut(start..) else {
        return;
    };
    let planes = src.chunks(plane.max(1)).take(layout.c);
    for (ch, plane) in planes.enumerate() {
        let src = plane.get(offset..offset + w).unwrap_or(&[]);
        for (d, &v) in dst.iter_mut().skip(ch).step_by(layout.c.max(1)).zip(src) {
            *d = i16::from(v);
        }
    }
}

/// The base of a kernel row lying over the top or bottom padding.
const PADDING_ROW: usize = usize::MAX;

/// Copies the patch of the conv output whose kernel rows start at `bases[ky] + offset`
/// (values into the ring): `row_words` words per kernel row; a row whose base is
/// [`PADDING_ROW`] is `padding_word` throughout.
#[inline(always)]
fn fill_patch(
    kind: RingValues,
    ring: &[u32],
    bases: &[usize],
    offset: usize,
    row_words: usize,
    patch: &mut [u32],
    padding_word: u32,
) {
    for (&base, dst) in bases.iter().zip(patch.chunks_exact_mut(row_words.max(1))) {
        if base == PADDING_ROW {
            for word in dst {
                *word = padding_word;
            }
            continue;
        }
        let start = base + offset;
        // A kernel row may start at an odd value (odd C): the copies read unaligned words.
        match kind {
            RingValues::Int16 => {
                if start + 2 * dst.len() <= 2 * ring.len() {
                    copy_words(dst, ring.as_ptr().cast::<u16>().wrapping_add(start).cast());
                }
            }
            RingValues::Int8 => {
                if start + 2 * dst.len() <= 4 * ring.len() {
                    expand_words(dst, ring.as_ptr().cast::<u8>().wrapping_add(start).cast());
                }
            }
        }
    }
}

/// Four patch words from two words of int8 values: `r9` reads, `r8` writes (both advance).
macro_rules! expand_four_words {
    () => {
        concat!(
            "ldr r4, [r9], #4\n",
            "ldr r5, [r9], #4\n",
            "sxtb16 r0, r4\n",
            "sxtb16 r1, r4, ror #8\n",
            "sxtb16 r2, r5\n",
            "sxtb16 r3, r5, ror #8\n",
            "stm r8!, {{r0, r1, r2, r3}}",
        )
    };
}

/// Fills `dst` (an even number of words) from the `2 · dst.len()` int8 values at `src`
/// (readable, any alignment): each word of four values becomes two patch words with SXTB16,
/// values (0, 2) and (1, 3); twelve words without a loop (a 3×3 kernel row over 8 channels,
/// as the seed model's second conv's), else four patch words per pass when the length allows.
#[inline(always)]
fn expand_words(dst: &mut [u32], src: *const u32) {
    let n = dst.len();
    if n == 0 || !n.is_multiple_of(2) {
        return;
    }
    if n == 12 {
        // SAFETY: reads 6 words at `src` (unaligned LDR is allowed on ARMv7-M with the
        // default CCR.UNALIGN_TRP clear) and writes the 12 words of `dst` (word-aligned, a
        // `u32` slice of length 12).
        // A 3×3 kernel row over 8 channels (the seed model's conv2), without a loop: the
        // streamed schedule expands three such rows for every patch, and a loop's compare and
        // branch were 6 of the 27 instructions of each.
        unsafe {
            asm!(
                expand_four_words!(),
                expand_four_words!(),
                expand_four_words!(),
                out("r0") _,
                out("r1") _,
                out("r2") _,
                out("r3") _,
                out("r4") _,
                out("r5") _,
                inout("r9") src => _,
                inout("r8") dst.as_mut_ptr() => _,
                options(nostack),
            );
        }
        return;
    }
    if n.is_multiple_of(4) {
        // SAFETY: reads `n / 2` words at `src` (unaligned LDR is allowed on ARMv7-M with the
        // default CCR.UNALIGN_TRP clear) and writes the `n` words of `dst` (word-aligned, a
        // `u32` slice; `n` a non-zero multiple of 4, so the loop ends exactly at its end).
        unsafe {
            asm!(
                "2:",
                expand_four_words!(),
                "cmp r8, r12",
                "bne 2b",
                out("r0") _,
                out("r1") _,
                out("r2") _,
                out("r3") _,
                out("r4") _,
                out("r5") _,
                inout("r9") src => _,
                inout("r8") dst.as_mut_ptr() => _,
                in("r12") dst.as_mut_ptr().add(n),
                options(nostack),
            );
        }
        return;
    }
    // SAFETY: as above, two patch words per pass (`n` a non-zero multiple of 2).
    unsafe {
        asm!(
            "2:",
            "ldr {w}, [{src}], #4",
            "sxtb16 {a}, {w}",
            "sxtb16 {b}, {w}, ror #8",
            "strd {a}, {b}, [{dst}], #8",
            "cmp {dst}, {end}",
            "bne 2b",
            w = out(reg) _,
            a = out(reg) _,
            b = out(reg) _,
            src = inout(reg) src => _,
            dst = inout(reg) dst.as_mut_ptr() => _,
            end = in(reg) dst.as_mut_ptr().add(n),
            options(nostack),
        );
    }
}

/// Copies `dst.len()` words from `src`, which must hold that many bytes and be 2-aligned:
/// four words per LDM/STM pair when `src` is word-aligned and the length a multiple of 4 (the
/// seed model's second conv: 12 words a kernel row), else word by word with LDR, which the
/// Cortex-M4 allows unaligned. (A Rust loop would become a `memcpy` call, dearer here.)
#[inline(always)]
fn copy_words(dst: &mut [u32], src: *const u32) {
    let n = dst.len();
    if n == 0 {
        return;
    }
    if n.is_multiple_of(4) && (src as usize).is_multiple_of(4) {
        // SAFETY: copies `n` words (a non-zero multiple of 4, so the loop ends exactly at the
        // end of `dst`) from the caller's `n` readable words at `src`; both word-aligned.
        unsafe {
            asm!(
                "2:",
                "ldm r4!, {{r0, r1, r2, r3}}",
                "stm r5!, {{r0, r1, r2, r3}}",
                "cmp r5, r12",
                "bne 2b",
                out("r0") _,
                out("r1") _,
                out("r2") _,
                out("r3") _,
                inout("r4") src => _,
                inout("r5") dst.as_mut_ptr() => _,
                in("r12") dst.as_mut_ptr().add(n),
                options(nostack),
            );
        }
        return;
    }
    // SAFETY: copies `n ≥ 1` words from the caller's `4n` readable bytes at `src` (2-aligned:
    // unaligned LDR is allowed on ARMv7-M, with the default CCR.UNALIGN_TRP clear) into `dst`.
    unsafe {
        asm!(
            "2:",
            "ldr {w}, [{src}], #4",
            "str {w}, [{dst}], #4",
            "cmp {dst}, {end}",
            "bne 2b",
            w = out(reg) _,
            src = inout(reg) src => _,
            dst = inout(reg) dst.as_mut_ptr() => _,
            end = in(reg) dst.as_mut_ptr().add(n),
            options(nostack),
        );
    }
}

/// `acc[4g + i] = bias + Σ_t weight(g, t, i) · patch[t]` for each of the `groups` groups of
/// `weights` (laid out as in the module docs). `patch.len()` is a non-zero multiple of 4.
#[inline(always)]
fn kernel(weights: &[u32], patch: &[u32], groups: usize, acc: &mut [i32]) {
    let words = patch.len();
    let fits = words > 0
        && words.is_multiple_of(4)
        && groups > 0
        && weights.len() >= groups * (GROUP + GROUP * words)
        && acc.len() >= GROUP * groups;
    if !fits {
        return;
    }
    // SAFETY: for each of the `groups ≥ 1` groups the loop reads 4 + 4·words words of
    // `weights` (consecutively, all in bounds as checked above) and the `words` words of
    // `patch` (a non-zero multiple of 4, so the unrolled loop ends exactly at its end), and
    // writes 4 words of `acc` (in bounds). Both buffers are `u32`/`i32` slices, so word-aligned
    // for LDM/STM; the register lists are explicit registers in ascending order, so word `i`
    // of each list maps to channel `i` of the group. Its three stack words are released
    // before it ends.
    unsafe {
        asm!(
            "sub sp, sp, #12",
            "str r0, [sp]",
            "str r1, [sp, #4]",
            "str r12, [sp, #8]",
            "1:",
            "ldm r11!, {{r0, r1, r2, r3}}",
            "2:",
            kernel_step!(),
            kernel_step!(),
            kernel_step!(),
            kernel_step!(),
            "cmp r12, lr",
            "bne 2b",
            "ldr r9, [sp]",
            "stm r9!, {{r0, r1, r2, r3}}",
            "str r9, [sp]",
            "ldr r12, [sp, #8]",
            "ldr r9, [sp, #4]",
            "subs r9, r9, #1",
            "str r9, [sp, #4]",
            "bne 1b",
            "add sp, sp, #12",
            inout("r0") acc.as_mut_ptr() => _,
            inout("r1") groups => _,
            out("r2") _,
            out("r3") _,
            out("r4") _,
            out("r5") _,
            out("r8") _,
            out("r9") _,
            out("r10") _,
            inout("r11") weights.as_ptr() => _,
            inout("r12") patch.as_ptr() => _,
            inout("lr") patch.as_ptr().add(words) => _,
        );
    }
}

/// One patch word (r12) against the four channels' weight words.
macro_rules! kernel_step {
    () => {
        concat!(
            "ldm r11!, {{r4, r5, r8, r10}}\n",
            "ldr r9, [r12], #4\n",
            "smlad r0, r4, r9, r0\n",
            "smlad r1, r5, r9, r1\n",
            "smlad r2, r8, r9, r2\n",
            "smlad r3, r10, r9, r3\n",
        )
    };
}
use kernel_step;
