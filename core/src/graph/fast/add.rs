//! TFLite's int8 Add ([`crate::graph::kernels::add`]) with the two input rescalings looked
//! up: each is a function of one int8 value, so both 256-entry tables are built once per call
//! in the scratch, and each element costs two loads, an add and the output's one multiply
//! instead of three multiplies (CMSIS-NN's `arm_elementwise_add_s8` takes about 81
//! instructions an element on the Cortex-M4).

use crate::quant::{Requantizer, multiply_by_quantized_multiplier};

use super::super::kernels::AddOp;
use super::requant::ChannelRequant;

/// Words of the two tables of 256 i32.
pub(crate) const TABLE_WORDS: usize = 2 * 256;

/// The two tables, and the slack of aligning them to a word.
pub const SCRATCH_BYTES: usize = 4 * TABLE_WORDS + 3;

/// The element-wise part, shared by [`add`] and [`add_in_place`].
pub(crate) struct Tables<'s> {
    pub(crate) a: &'s [i32; 256],
    pub(crate) b: &'s [i32; 256],
    /// The sum's rescaling to the output, its zero point and the fused clamp, prepared once
    /// (validated multipliers are non-negative, shifts 0 or right).
    pub(crate) output: ChannelRequant,
}

impl Tables<'_> {
    #[inline(always)]
    pub(crate) fn apply(&self, x: i8, y: i8) -> i8 {
        let sum = self.a[usize::from(x as u8)].saturating_add(self.b[usize::from(y as u8)]);
        self.output.apply(sum)
    }
}

/// Builds `op`'s tables in `scratch`; `None` when it is too short.
pub(crate) fn tables<'s>(scratch: &'s mut [i8], op: &AddOp) -> Option<Tables<'s>> {
    let (params, zero_points) = (&op.params, op.zero_points);
    let words = bytemuck::pod_align_to_mut::<i8, i32>(scratch).1;
    let (a, rest) = words.split_first_chunk_mut::<256>()?;
    let (b, _) = rest.split_first_chunk_mut::<256>()?;
    let left = 1_i32 << params.left_shift.min(20);
    let [ma, mb, _] = params.multipliers;
    let [sa, sb, _] = params.shifts.map(i32::from);
    let [za, zb, _] = zero_points.map(i32::from);
    for (q, (ta, tb)) in (0_u8..=255).zip(a.iter_mut().zip(b.iter_mut())) {
        let x = i32::from(q as i8);
        *ta = multiply_by_quantized_multiplier((x - za) * left, ma, sa);
        *tb = multiply_by_quantized_multiplier((x - zb) * left, mb, sb);
    }
    let output = output_requantizer(op);
    Some(Tables {
        a,
        b,
        output: ChannelRequant::new(&output, params.clamp)?,
    })
}

/// The Add's rescaling of the sum to its output (before the clamp).
pub(crate) fn output_requantizer(op: &AddOp) -> Requantizer {
    Requantizer {
        multiplier: op.params.multipliers[2],
        shift: i32::from(op.params.shifts[2]),
        zero_point: i32::from(op.zero_points[2]),
        min: i32::from(i8::MIN),
    }
}

/// The tables of a residual Add fused into a conv, built in the first [`TABLE_WORDS`] of
/// `words`, and the words after them; `None` when `words` is too short.
pub(crate) fn residual_tables<'s>(
    words: &'s mut [u32],
    residual: &AddOp,
) -> Option<(Tables<'s>, &'s mut [u32])> {
    let (head, rest) = words.split_at_mut_checked(TABLE_WORDS)?;
    let t = tables(bytemuck::cast_slice_mut(head), residual)?;
    Some((t, rest))
}

/// `output = a + b`; `false` (nothing written) when `scratch` is shorter than
/// [`SCRATCH_BYTES`].
pub fn add(a: &[i8], b: &[i8], output: &mut [i8], op: &AddOp, scratch: &mut [i8]) -> bool {
    let Some(t) = tables(scratch, op) else {
        return false;
    };
    for ((out, &x), &y) in output.iter_mut().zip(a).zip(b) {
        *out = t.apply(x, y);
    }
    true
}

/// The same Add written over one of its inputs (the planner's in-place Add): `inout` holds
/// the first input (`inout_is_first`) or the second, and receives the sum.
pub fn add_in_place(
    inout: &mut [i8],
    other: &[i8],
    inout_is_first: bool,
    op: &AddOp,
    scratch: &mut [i8],
) -> bool {
    let Some(t) = tables(scratch, op) else {
        return false;
    };
    // Two loops, so that the choice of operand order is made once.
    let pairs = inout.iter_mut().zip(other);
    if inout_is_first {
        pairs.for_each(|(q, &o)| *q = t.apply(*q, o));
    } else {
        pairs.for_each(|(q, &o)| *q = t.apply(o, *q));
    }
    true
}
