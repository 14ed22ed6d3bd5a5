//! Nodes run in place, their output at their input's offset (issue 12's graph RAM): the one
//! rule the planner (`quantize`), the loader (`super::check`) and the runner
//! (`super::run`) share. A node in place stages what it still has to read through the
//! scratch and calls its kernel (portable, fast or a host tier's, whichever was chosen)
//! unchanged on each staged piece, so its numbers are those of the same node out of place.
//!
//! - A per-channel node (depthwise Conv with `groups` = C = C_out, MaxPool, AveragePool):
//!   channel by channel, input plane c copied to scratch, then the node on that one channel
//!   from scratch into output plane c. Output plane c ends at or before the end of input
//!   plane c when `H_out·W_out ≤ H·W`, so it never reaches a plane not yet copied.
//! - A pointwise Conv (1×1, `groups` 1, stride 1, no pads): [`CHUNK_PIXELS`] pixels at a time,
//!   their `C_in` bytes gathered to scratch, the conv run on that `C_in×1×P` map into a
//!   `C_out×1×P` one in scratch, then scattered to the output planes. Output (o, p) lies only
//!   over input (o, p), already gathered, so any `C_in` and `C_out` work.

use crate::shape::MapShape;

use super::conv_params::ConvParams;
use super::format::map;
use super::format::{NodeOp, TensorDesc};
use super::prepared_node::Prepared;

/// Pixels a pointwise Conv in place gathers at a time, at least: the fast kernel's block of
/// four. The scratch the model needs anyway for its other nodes decides how many more
/// ([`Staging::within`]): each staged piece costs a kernel call and a copy per channel, so
/// fewer, longer pieces cost fewer instructions, and taking room that is there costs no RAM.
pub const CHUNK_PIXELS: usize = 4;

/// How a node runs in place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Staging {
    /// A per-channel node: one input plane of `plane` bytes staged at a time.
    Planes { plane: usize },
    /// A pointwise Conv over `plane` pixels: `pixels` of them at a time, their `in_c` channels
    /// gathered, `out_c` computed.
    Pixels {
        pixels: usize,
        plane: usize,
        in_c: usize,
        out_c: usize,
    },
}

/// Bytes rounded up to a word, so that the kernel's scratch after a staged piece stays
/// aligned as the arena is.
fn words(bytes: usize) -> usize {
    bytes.div_ceil(4).saturating_mul(4)
}

impl Staging {
    /// How node `op` from `input` to `output` may run with its output at its input's offset,
    /// with the least staging ([`CHUNK_PIXELS`] for a pointwise Conv); `None` for a node that
    /// must keep them apart.
    pub fn of(op: &NodeOp, input: MapShape, output: MapShape) -> Option<Staging> {
        let per_channel = input.c == output.c && output.plane() <= input.plane();
        match op {
            NodeOp::Conv(conv)
                if conv.groups == 1
                    && conv.window.kernel == [1, 1]
                    && conv.window.stride == [1, 1]
                    && conv.window.pads == [0; 4]
                    && input.plane() == output.plane() =>
            {
                Some(Staging::Pixels {
                    pixels: CHUNK_PIXELS.min(input.plane()),
                    plane: input.plane(),
                    in_c: input.c,
                    out_c: output.c,
                })
            }
            NodeOp::Conv(conv) if usize::from(conv.groups) == input.c && per_channel => {
                Some(Staging::Planes {
                    plane: input.plane(),
                })
            }
            NodeOp::MaxPool(_) | NodeOp::AveragePool { .. } if per_channel => {
                Some(Staging::Planes {
                    plane: input.plane(),
                })
            }
            _ => None,
        }
    }

    /// This staging with a pointwise Conv's pieces as long as `room` bytes of scratch hold
    /// (whole blocks of [`CHUNK_PIXELS`], or the whole plane), never shorter than
    /// [`Self::of`]'s. The one rule the loader, the runner and the reports share: `room` is
    /// the model's scratch less the node's kernel's (`Graph::staging`), so the longer pieces
    /// take only scratch that another node needs anyway.
    pub fn within(self, room: usize) -> Staging {
        let Staging::Pixels {
            pixels,
            plane,
            in_c,
            out_c,
        } = self
        else {
            return self;
        };
        let per_pixel = in_c.saturating_add(out_c).max(1);
        let fit = (room / per_pixel / CHUNK_PIXELS * CHUNK_PIXELS).min(plane);
        let longer = Staging::Pixels {
            pixels: fit,
            plane,
            in_c,
            out_c,
        };
        if fit > pixels && longer.scratch_len() <= room {
            longer
        } else {
            self
        }
    }

    /// The pixels of a pointwise Conv's staged pieces (0 for a per-channel node), for reports.
    pub fn pixels(&self) -> usize {
        match *self {
            Staging::Planes { .. } => 0,
            Staging::Pixels { pixels, .. } => pixels,
        }
    }

    /// Scratch bytes the staging takes, before the kernel's own.
    pub fn scratch_len(&self) -> usize {
        match *self {
            Staging::Planes { plane } => words(plane),
            Staging::Pixels {
                pixels,
                in_c,
                out_c,
                ..
            } => words(pixels.saturating_mul(in_c))
                .saturating_add(words(pixels.saturating_mul(out_c))),
        }
    }
}

/// `src` into the start of `dst` (nothing if `dst` is shorter): a copy that cannot panic.
fn copy(dst: &mut [i8], src: &[i8]) {
    if let Some(dst) = dst.get_mut(..src.len()) {
        dst.copy_from_slice(src);
    }
}

/// Channel `c` of a per-channel node as a one-channel node: its shapes with one channel, and a
/// depthwise Conv's weights and per-channel data cut to channel `c`.
fn one_channel<'a>(prepared: &Prepared<'a>, c: usize) -> Option<Prepared<'a>> {
    let one = |s: &MapShape| MapShape { c: 1, ..*s };
    Some(match prepared {
        Prepared::Conv(conv) => Prepared::Conv(conv.one_channel(c)?),
        Prepared::Pool {
            in_shape,
            out_shape,
            window,
            average,
        } => Prepared::Pool {
            in_shape: one(in_shape),
            out_shape: one(out_shape),
            window: *window,
            average: *average,
        },
        _ => return None,
    })
}

/// Runs one staged piece of a node: (the piece as a node, its input, its output, the kernel's
/// scratch).
pub(crate) type StagedPiece<'f> = dyn FnMut(&Prepared<'_>, &[i8], &mut [i8], &mut [i8]) + 'f;

/// Runs `prepared` in place over `tensor` (its input's bytes from the shared offset, as many
/// as the larger of input and output), staging through `scratch`; `node` runs one staged
/// piece (node, input, output, the kernel's scratch). `None` if the pieces do not fit, which
/// validation rules out. Each kind's loop is a function of its own, never inlined, so that
/// only the piece it builds is on the stack under the kernel.
pub(crate) fn run(
    staging: Staging,
    prepared: &Prepared<'_>,
    tensor: &mut [i8],
    scratch: &mut [i8],
    node: &mut StagedPiece<'_>,
) -> Option<()> {
    let (in_shape, out_shape) = match prepared {
        Prepared::Conv(ConvParams {
            in_shape,
            out_shape,
            ..
        })
        | Prepared::Pool {
            in_shape,
            out_shape,
            ..
        } => (*in_shape, *out_shape),
        _ => return None,
    };
    match staging {
        Staging::Planes { .. } => {
            run_planes(prepared, (in_shape, out_shape), tensor, scratch, node)
        }
        Staging::Pixels {
            pixels,
            in_c,
            out_c,
            ..
        } => run_pixels(
            prepared,
            (in_shape.plane(), pixels, in_c, out_c),
            tensor,
            scratch,
            node,
        ),
    }
}

/// A per-channel node, one plane at a time. Never inlined, like [`run_pixels`]: the piece
/// each builds is in its own frame only.
#[inline(never)]
fn run_planes(
    prepared: &Prepared<'_>,
    (in_shape, out_shape): (MapShape, MapShape),
    tensor: &mut [i8],
    scratch: &mut [i8],
    node: &mut StagedPiece<'_>,
) -> Option<()> {
    let (plane, out_plane) = (in_shape.plane(), out_shape.plane());
    let (stage, rest) = scratch.split_at_mut_checked(words(plane))?;
    let stage = stage.get_mut(..plane)?;
    for c in 0..in_shape.c {
        copy(stage, tensor.get(c * plane..(c + 1) * plane)?);
        // By reference: moving the piece out of the `Option` would copy it.
        let one = one_channel(prepared, c);
        let out = tensor.get_mut(c * out_plane..(c + 1) * out_plane)?;
        node(one.as_ref()?, stage, out, rest);
    }
    Some(())
}

/// A pointwise Conv over `plane` pixels, `pixels` of them (`in_c` channels in, `out_c` out)
/// at a time.
#[inline(never)]
fn run_pixels(
    prepared: &Prepared<'_>,
    (plane, pixels, in_c, out_c): (usize, usize, usize, usize),
    tensor: &mut [i8],
    scratch: &mut [i8],
    node: &mut StagedPiece<'_>,
) -> Option<()> {
    let Prepared::Conv(conv) = prepared else {
        return None;
    };
    let (gathered, rest) = scratch.split_at_mut_checked(words(pixels * in_c))?;
    let (computed, rest) = rest.split_at_mut_checked(words(pixels * out_c))?;
    // One piece, its width set for each: built once, so that one copy is on the stack.
    let piece = |c: usize| MapShape { c, h: 1, w: 0 };
    let mut chunk = Prepared::Conv(ConvParams {
        in_shape: piece(in_c),
        out_shape: piece(out_c),
        ..*conv
    });
    for p0 in (0..plane).step_by(pixels.max(1)) {
        let n = pixels.min(plane - p0);
        if n == 0 {
            return None;
        }
        let (gathered, computed) = (
            gathered.get_mut(..n * in_c)?,
            computed.get_mut(..n * out_c)?,
        );
        for (c, dst) in gathered.chunks_exact_mut(n).enumerate() {
            copy(dst, tensor.get(c * plane + p0..c * plane + p0 + n)?);
        }
        if let Prepared::Conv(ConvParams {
            in_shape,
            out_shape,
            ..
        }) = &mut chunk
        {
            (in_shape.w, out_shape.w) = (n, n);
        }
        node(&chunk, gathered, computed, rest);
        for (o, src) in computed.chunks_exact(n).enumerate() {
            copy(tensor.get_mut(o * plane + p0..o * plane + p0 + n)?, src);
        }
    }
    Some(())
}

/// Scratch the staging of node `op` takes when the planner put its output at its input's
/// offset (0 otherwise): what the loader adds to the node's kernel scratch.
pub(crate) fn staged_scratch(op: &NodeOp, input: &TensorDesc, output: &TensorDesc) -> usize {
    if input.offset != output.offset {
        return 0;
    }
    Staging::of(op, map(input), map(output)).map_or(0, |s| s.scratch_len())
}
