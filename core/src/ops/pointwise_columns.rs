//! Where the pointwise kernel's blocks (`pointwise_blocks`, the Cortex-M4's assembly and the
//! host's stand-in) take their four input columns from, and what each source must hold: a
//! leaf both share, so that they check the same bounds.

/// Where a block's four columns come from.
#[derive(Clone, Copy)]
pub(crate) enum Columns<'a> {
    /// Already unpacked in the patch (one block).
    Unpacked,
    /// Four pixels in a row from this map (channel step `in_plane`), the first block's at
    /// its start, each next block's four bytes on.
    Map(&'a [i8], usize),
    /// The same from the output slice itself, each block's read before its outputs are
    /// written (a pointwise Conv in place: output (o, p) lies over input (o, p) only).
    Output(usize),
}

/// Whether `blocks ≥ 1` blocks of `n ≥ 1` output channels and `c` input channels (`patch`
/// words, eight per group of four channels) fit: `weights` holds `n` rows of `c`, the
/// per-channel slices `n` entries, `out` every block's four bytes of every channel at steps
/// of `plane`, and the columns' source every block's four bytes of every input channel.
#[allow(clippy::too_many_arguments)]
pub(crate) fn blocks_fit(
    columns: Columns<'_>,
    patch_words: usize,
    weights: usize,
    [bias, multiplier, shift]: [usize; 3],
    out: usize,
    plane: usize,
    blocks: usize,
) -> bool {
    let (n, c) = (bias, patch_words / 2);
    let reads = |in_plane: usize, len: usize| {
        in_plane >= 4 && (c - 1).saturating_mul(in_plane).saturating_add(4 * blocks) <= len
    };
    n > 0
        && c > 0
        && blocks > 0
        && patch_words.is_multiple_of(8)
        && match columns {
            Columns::Unpacked => blocks == 1,
            Columns::Map(input, in_plane) => reads(in_plane, input.len()),
            Columns::Output(in_plane) => reads(in_plane, out),
        }
        && weights >= n.saturating_mul(c)
        && multiplier >= n
        && shift >= n
        && plane >= blocks.saturating_mul(4)
        && out >= (n - 1).saturating_mul(plane).saturating_add(4 * blocks)
}
