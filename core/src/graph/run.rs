//! Running a validated graph: each node decoded again from the header (without the data
//! scans), its tensors cut from the arena at their planned offsets, its kernel run.

use super::check::prepare;
use super::fast::{self, GraphKernel};
use super::format::map;
use super::format::{Node, TensorDesc};
use super::in_place::{self, Staging};
use super::kernels::{self, PoolOp};
use super::prepared_node::Prepared;
use super::view::Graph;
use crate::ops::kernels::Kernels;

/// The byte range of `desc` in the arena.
fn range(desc: &TensorDesc) -> (usize, usize) {
    let start = usize::try_from(desc.offset).unwrap_or(usize::MAX);
    (start, map(desc).checked_len().unwrap_or(0))
}

/// The output tensor as `&mut`, and the inputs (which validation placed elsewhere) as `&`.
fn views<'b>(
    arena: &'b mut [i8],
    output: (usize, usize),
    inputs: &[(usize, usize)],
) -> Option<(&'b mut [i8], [&'b [i8]; 2])> {
    let (before, rest) = arena.split_at_mut_checked(output.0)?;
    let (out, after) = rest.split_at_mut_checked(output.1)?;
    let (before, after): (&'b [i8], &'b [i8]) = (before, after);
    let after_start = output.0 + output.1;
    let view = |&(start, len): &(usize, usize)| -> Option<&'b [i8]> {
        if start.checked_add(len)? <= output.0 {
            before.get(start..start + len)
        } else if start >= after_start {
            after.get(start - after_start..start - after_start + len)
        } else {
            None
        }
    };
    let first = view(inputs.first()?)?;
    let second = match inputs.get(1) {
        Some(r) => view(r)?,
        None => first,
    };
    Some((out, [first, second]))
}

/// What a node reads and writes, as a host's kernel takes it (read by the `std` prepared
/// model's kernels only).
#[cfg_attr(not(any(test, feature = "std")), allow(dead_code))]
pub(crate) enum Operands<'x> {
    /// The inputs (`b` is an Add's second; `a` again for the others) into `out`, apart from
    /// them, with the scratch the arena holds after the planned tensors.
    Apart {
        inputs: [&'x [i8]; 2],
        out: &'x mut [i8],
        scratch: &'x mut [i8],
    },
    /// An Add the planner wrote over one of its inputs: `inout` (the first input when
    /// `first`) receives the sum, `other` is the other input. (Only x86-64's AVX2 kernels
    /// take one.)
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    AddOver {
        inout: &'x mut [i8],
        other: &'x [i8],
        first: bool,
    },
}

/// A host's own kernels for some nodes, chosen once at load (the `std` prepared model, see
/// `crate::prepared_graph`).
pub(crate) trait NodeKernels {
    /// Node `index` (`prepared`) over `operands`; `false`, having written nothing, for a node
    /// the host did not take: the kernels here then run it.
    fn run(&self, index: usize, prepared: &Prepared<'_>, operands: Operands<'_>) -> bool;
}

/// No host kernels: what the targets run, each check a constant `false` that folds away (so a
/// microcontroller's runner carries none of the hook's code).
pub(crate) struct NoHost;

impl NodeKernels for NoHost {
    #[inline(always)]
    fn run(&self, _: usize, _: &Prepared<'_>, _: Operands<'_>) -> bool {
        false
    }
}

impl<'a> Graph<'a> {
    /// Runs the graph on one image already checked to be `input_len` bytes, in `arena` (at
    /// least `arena_len` bytes); `after(n)` is called once `n` nodes have run. Returns the
    /// logits, or `None` if the arena is too short (the caller checks that first).
    pub(crate) fn run<'b>(
        &self,
        image: &[u8],
        arena: &'b mut [i8],
        after: &mut dyn FnMut(usize),
    ) -> Option<&'b [i8]> {
        self.run_with(image, arena, after, &NoHost)
    }

    /// [`Self::run`], with `host`'s kernels first for the nodes it takes.
    pub(crate) fn run_with<'b, H: NodeKernels>(
        &self,
        image: &[u8],
        arena: &'b mut [i8],
        after: &mut dyn FnMut(usize),
        host: &H,
    ) -> Option<&'b [i8]> {
        // The planned tensors, then the fast kernels' scratch.
        let (arena, scratch) = arena.split_at_mut_checked(self.arena_len)?;
        let image_desc = self.tensor(0)?;
        let (start, len) = range(&image_desc);
        // x_q = pixel − 128 (scale 1/255, zero point −128) is a flip of the sign bit.
        for (dst, &pixel) in arena.get_mut(start..start + len)?.iter_mut().zip(image) {
            *dst = (pixel ^ 0x80) as i8;
        }
        after(0);
        let mut bytes = self.nodes;
        for index in 0..self.node_count {
            self.run_step(&mut bytes, index, host, arena, scratch)?;
            after(index + 1);
        }
        let (start, len) = range(&self.tensor(self.output)?);
        let arena: &'b [i8] = arena;
        arena.get(start..start + len)
    }

    /// Node `index`, decoded from the front of `bytes` (which moves past it), run. Never
    /// inlined: the decoded node sits in this frame alone, once, while its kernel runs.
    #[inline(never)]
    fn run_step<H: NodeKernels>(
        &self,
        bytes: &mut &'a [u8],
        index: usize,
        host: &H,
        arena: &mut [i8],
        scratch: &mut [i8],
    ) -> Option<()> {
        // Run by reference: moving the step out of the `Option` would copy it.
        self.step(bytes, index).as_ref()?.run(host, arena, scratch)
    }

    /// Node `index`, decoded from the front of `bytes` (which moves past it) and checked into
    /// its kernel's form. Never inlined, like [`Step::run`]: the decoded header entries and
    /// the checks' locals are off the stack while the node's kernel runs.
    #[inline(never)]
    fn step(&self, bytes: &mut &'a [u8], index: usize) -> Option<Step<'a>> {
        // By reference: moving the node out of the `Result` would copy it in this frame,
        // which is under `prepare` (the inference's stack peak with the stems' bands).
        let decoded = postcard::take_from_bytes::<Node>(bytes);
        let (node, rest) = decoded.as_ref().ok()?;
        *bytes = rest;
        let mut inputs: heapless::Vec<(u16, TensorDesc), 2> = heapless::Vec::new();
        for &t in &node.inputs {
            let _ = inputs.push((t, self.tensor(t)?));
        }
        let output = (node.output, self.tensor(node.output)?);
        // Pushed, not collected: heapless's `collect` panics on overflow.
        let mut ranges: heapless::Vec<(usize, usize), 2> = heapless::Vec::new();
        for (_, d) in &inputs {
            let _ = ranges.push(range(d));
        }
        // The prepared node written once, into the step: a local of its own would be copied.
        let mut step = Step {
            index,
            kernel: self.kernels.get(index, &node.op),
            prepared: prepare(self.data, node, index, &inputs, &output, false).ok()?,
            inputs: ranges,
            output: range(&output.1),
            staging: None,
        };
        step.staging = self.staging(node, &step.prepared, &inputs.first()?.1, &output.1);
        Some(step)
    }
}

impl Graph<'_> {
    /// How node `node` (`prepared`) stages its input when the planner put its output over it
    /// (`in_place`), with longer pieces in the scratch the model has anyway
    /// (`Staging::within`); `None` for a node apart from its input. Never inlined: its locals
    /// stay off [`Graph::step`]'s frame, which is under `prepare`.
    #[inline(never)]
    fn staging(
        &self,
        node: &Node,
        prepared: &Prepared<'_>,
        input: &TensorDesc,
        output: &TensorDesc,
    ) -> Option<Staging> {
        match prepared {
            Prepared::ConvAdd { .. } | Prepared::Add { .. } => None,
            _ if range(input).0 == range(output).0 => {
                let room = self
                    .scratch_len
                    .saturating_sub(fast::choose(prepared, Kernels::NATIVE).1);
                Some(Staging::of(&node.op, map(input), map(output))?.within(room))
            }
            _ => None,
        }
    }
}

/// One node ready to run: its kernel's form, the kernel chosen at load, and where its tensors
/// sit in the arena.
struct Step<'a> {
    index: usize,
    kernel: GraphKernel,
    prepared: Prepared<'a>,
    /// The inputs' (offset, length) in the arena, and the output's.
    inputs: heapless::Vec<(usize, usize), 2>,
    output: (usize, usize),
    /// How the node stages its input when the planner put its output over it.
    staging: Option<Staging>,
}

impl Step<'_> {
    /// Runs the node over `arena`'s tensors with `scratch`: the one dispatch every node takes.
    /// `None` only for what validation rules out. Never inlined (see [`Graph::step`]).
    #[inline(never)]
    fn run<H: NodeKernels>(&self, host: &H, arena: &mut [i8], scratch: &mut [i8]) -> Option<()> {
        let (index, kernel, prepared) = (self.index, self.kernel, &self.prepared);
        let (ranges, out_range) = (&self.inputs[..], self.output);
        let add_over = ranges.iter().position(|r| *r == out_range);
        // The loader allows three overlaps: a fused ConvAdd over its residual, an Add over
        // one of its inputs, and a staged node over its input (`in_place`).
        if let Prepared::ConvAdd(..) = prepared {
            run_conv_add(kernel, prepared, arena, out_range, ranges, scratch)?;
        } else if let (Prepared::Add(op), Some(which)) = (prepared, add_over) {
            let other = *ranges.get(1 - which.min(1))?;
            let (out, [b, _]) = views(arena, out_range, &[other])?;
            let first = which == 0;
            let over = Operands::AddOver {
                inout: &mut *out,
                other: b,
                first,
            };
            let fast = host.run(index, prepared, over)
                || kernel == GraphKernel::AddTable
                    && fast::add::add_in_place(out, b, first, op, scratch);
            if !fast {
                kernels::add_in_place(out, b, first, op);
            }
        } else if let Some(staging) = self.staging {
            let in_range = *ranges.first()?;
            let end = in_range.0.checked_add(in_range.1.max(out_range.1))?;
            let tensor = arena.get_mut(in_range.0..end)?;
            if !run_over_itself(kernel, prepared, tensor, scratch) {
                in_place::run(
                    staging,
                    prepared,
                    tensor,
                    scratch,
                    &mut |piece, a, out, rest| {
                        run_node(host, index, kernel, piece, [a, a], out, rest)
                    },
                )?;
            }
        } else {
            let (out, [a, b]) = views(arena, out_range, ranges)?;
            run_node(host, index, kernel, prepared, [a, b], out, scratch);
        }
        Some(())
    }
}

/// A node in place that its fast kernel runs over its own input, unstaged (the pointwise
/// Conv: each block's columns are read before its outputs are written; the depthwise Conv:
/// each input plane is widened before its output is written over it); `false` (nothing
/// written) for the others, which `in_place::run` stages.
#[inline(never)]
fn run_over_itself(
    kernel: GraphKernel,
    prepared: &Prepared<'_>,
    tensor: &mut [i8],
    scratch: &mut [i8],
) -> bool {
    match (kernel, prepared) {
        (GraphKernel::Pointwise, Prepared::Conv(conv)) => {
            fast::pointwise::conv_in_place(conv, tensor, scratch)
        }
        (GraphKernel::Depthwise, Prepared::Conv(conv)) => {
            conv.one_input_per_group() && fast::depthwise::conv_in_place(conv, tensor, scratch)
        }
        _ => false,
    }
}

/// A fused Conv + residual Add: the residual copied to the output unless the planner put
/// the output over it, then the conv adding into it element by element.
#[inline(never)]
fn run_conv_add(
    kernel: GraphKernel,
    prepared: &Prepared<'_>,
    arena: &mut [i8],
    out_range: (usize, usize),
    ranges: &[(usize, usize)],
    scratch: &mut [i8],
) -> Option<()> {
    let Prepared::ConvAdd(conv, residual) = prepared else {
        return None;
    };
    let (input, residual_range) = (*ranges.first()?, *ranges.get(1)?);
    let in_place = residual_range == out_range;
    let both = [input, residual_range];
    let (out, [a, b]) = views(arena, out_range, if in_place { &both[..1] } else { &both })?;
    if !in_place {
        for (q, &r) in out.iter_mut().zip(b) {
            *q = r;
        }
    }
    let fast = match kernel {
        GraphKernel::Pointwise => fast::pointwise::conv_add(conv, a, out, residual, scratch),
        GraphKernel::PatchConv => fast::patch_conv::conv_add(conv, a, out, residual, scratch),
        _ => false,
    };
    if !fast {
        kernels::conv_add(conv, a, out, residual);
    }
    Some(())
}

/// Node `index` (`prepared`, or a staged piece of it) from `a` (and `b`) into `out`: the
/// host's kernel if it takes the node, else the fast kernel chosen at load, else the portable
/// code. The one dispatch every node goes through. Never inlined: a staged node calls it
/// under `in_place::run`, and its kernels' frames must not stack on that path twice.
#[allow(clippy::too_many_arguments)]
#[inline(never)]
fn run_node<H: NodeKernels>(
    host: &H,
    index: usize,
    kernel: GraphKernel,
    prepared: &Prepared<'_>,
    [a, b]: [&[i8]; 2],
    out: &mut [i8],
    scratch: &mut [i8],
) {
    let apart = Operands::Apart {
        inputs: [a, b],
        out: &mut *out,
        scratch: &mut *scratch,
    };
    if !host.run(index, prepared, apart) && !run_fast(kernel, prepared, a, b, out, scratch) {
        run_portable(prepared, a, b, out);
    }
}

/// `prepared` with the portable kernels. Never inlined, like [`run_fast`] and
/// [`run_conv_add`]: each keeps its kernels' locals in a frame of its own, on the stack only
/// while it runs, not in [`run_node`]'s under every kernel.
#[inline(never)]
fn run_portable(prepared: &Prepared<'_>, a: &[i8], b: &[i8], out: &mut [i8]) {
    match prepared {
        Prepared::Conv(conv) => kernels::conv(conv, a, out),
        &Prepared::Pool {
            in_shape,
            out_shape,
            window,
            average,
        } => {
            let pool = PoolOp::new(in_shape, out_shape, window, average);
            kernels::pool(a, out, &pool, kernels::sum_values);
        }
        Prepared::GlobalAverage { in_shape } => kernels::global_average(a, *in_shape, out),
        Prepared::Add(op) => kernels::add(a, b, out, op),
        Prepared::Gemm { weights, channels } => kernels::gemm(a, out, weights, channels),
        // Run by `run_conv_add`, which has the residual's bytes.
        Prepared::ConvAdd(..) => {}
    }
}

/// `prepared` with the fast kernel `kernel`; `false` (nothing written) when that kernel
/// declines it (the portable code then runs).
#[inline(never)]
fn run_fast(
    kernel: GraphKernel,
    prepared: &Prepared<'_>,
    a: &[i8],
    b: &[i8],
    out: &mut [i8],
    scratch: &mut [i8],
) -> bool {
    match (kernel, prepared) {
        (GraphKernel::Pointwise, Prepared::Conv(conv)) => {
            fast::pointwise::conv(conv, a, out, scratch)
        }
        (GraphKernel::PatchConv, Prepared::Conv(conv)) => {
            fast::patch_conv::conv(conv, a, out, scratch)
        }
        (GraphKernel::Depthwise, Prepared::Conv(conv)) => {
            fast::depthwise::conv(conv, a, out, scratch)
        }
        (GraphKernel::AddTable, Prepared::Add(op)) => fast::add::add(a, b, out, op, scratch),
        (
            GraphKernel::Average,
            Prepared::Pool {
                in_shape,
                out_shape,
                window,
                average: Some(average),
            },
        ) => {
            fast::average::average_pool(a, *in_shape, out, *out_shape, *window, *average);
            true
        }
        (
            GraphKernel::MaxRows,
            Prepared::Pool {
                in_shape,
                out_shape,
                window,
                average: None,
            },
        ) => fast::max_pool::max_pool(a, *in_shape, out, *out_shape, *window, scratch),
        (GraphKernel::Average, Prepared::GlobalAverage { in_shape }) => {
            fast::average::global_average(a, *in_shape, out);
            true
        }
        (GraphKernel::GemmRows, Prepared::Gemm { weights, channels }) => {
            fast::gemm::gemm(a, out, weights, channels, scratch)
        }
        _ => false,
    }
}
