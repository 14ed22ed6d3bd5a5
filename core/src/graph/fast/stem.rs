//! A Conv of a one-channel input (`group` 1, the image stems: ResNet-8's 3×3/1 1→16,
//! DS-CNN's 5×3/2 1→64, MobileNet's 3×3/2 1→8), as a depthwise conv whose every output
//! channel reads channel 0 ([`super::depthwise`]'s arithmetic). The patch conv would stage
//! four input channels at a time and waste three quarters of its work here. Output row by
//! output row, the kernel rows' input is widened to int16 once, then every output channel's
//! taps meet it (SMLAD over the row's pixels) and its sums are requantized.

use super::depthwise::{ChannelTaps, DepthwiseConv, RowRing};

/// [`super::depthwise::conv`] for `node.in_shape.c == 1`, with its ring of rows.
#[inline(never)]
pub(super) fn conv(
    node: &DepthwiseConv<'_>,
    input: &[i8],
    output: &mut [i8],
    ring: &mut RowRing<'_>,
) -> bool {
    let (out_w, out_plane) = (node.out_shape.w, node.out_shape.plane());
    let plane = input.get(..node.in_shape.plane()).unwrap_or_default();
    for oy in 0..node.out_shape.h {
        let (rows, acc) = ring.rows(plane, node, oy);
        for (o, out_c) in output.chunks_exact_mut(out_plane.max(1)).enumerate() {
            let Some(taps) = ChannelTaps::new(node, o) else {
                return false;
            };
            let Some(out_row) = out_c.get_mut(oy * out_w..(oy + 1) * out_w) else {
                return false;
            };
            taps.row(usize::from(node.window.stride[1]), &rows, acc, out_row);
        }
    }
    true
}
