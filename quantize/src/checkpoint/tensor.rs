//! A tensor of a `state_dict`, as both checkpoint readers give it.

#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    pub shape: Vec<usize>,
    /// Row-major (C order).
    pub data: Vec<f32>,
}

/// BatchNorm2d's step counter, an integer that only training uses: both readers skip it.
pub const TRAINING_COUNTER: &str = ".num_batches_tracked";
