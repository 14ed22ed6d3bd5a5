//! Folding per-channel affine nodes into the Conv or Linear before them, in float, before
//! calibration: the int8 model then has one weighted layer where the ONNX file had two nodes.

/// A Conv (OIHW) or Linear (`[out][in]`) layer's float parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct Weighted {
    pub weight_shape: Vec<usize>,
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
}

impl Weighted {
    pub fn outputs(&self) -> usize {
        self.bias.len()
    }

    /// Inference-mode BatchNormalization on this layer's output,
    /// `y = scale·(x − mean)/√(var + ε) + shift` per output channel, folded in: every weight of
    /// channel `o` times `k = scale/√(var + ε)`, and the bias `(b − mean)·k + shift`. Computed
    /// in f64 and rounded once.
    pub fn fold_batch_norm(
        &mut self,
        scale: &[f32],
        shift: &[f32],
        mean: &[f32],
        var: &[f32],
        epsilon: f32,
    ) -> Result<(), String> {
        let per_output = self.weight.len() / self.outputs().max(1);
        for o in 0..self.outputs() {
            let denominator = f64::from(var[o]) + f64::from(epsilon);
            if denominator.is_nan() || denominator <= 0.0 {
                return Err(format!(
                    "channel {o}: var + epsilon = {denominator} is not positive"
                ));
            }
            let k = f64::from(scale[o]) / denominator.sqrt();
            for w in &mut self.weight[o * per_output..(o + 1) * per_output] {
                *w = (f64::from(*w) * k) as f32;
            }
            self.bias[o] =
                ((f64::from(self.bias[o]) - f64::from(mean[o])) * k + f64::from(shift[o])) as f32;
        }
        self.check_finite()
    }

    /// A constant added to the output: one value for every channel, or one per channel.
    pub fn add_to_bias(&mut self, values: &[f32]) -> Result<(), String> {
        let n = self.outputs();
        for (o, b) in self.bias.iter_mut().enumerate() {
            let v = if values.len() == 1 {
                values[0]
            } else {
                values[o % n]
            };
            *b = (f64::from(*b) + f64::from(v)) as f32;
        }
        self.check_finite()
    }

    fn check_finite(&self) -> Result<(), String> {
        let bad = self
            .weight
            .iter()
            .chain(&self.bias)
            .find(|v| !v.is_finite());
        match bad {
            Some(v) => Err(format!("folding gives a non-finite parameter ({v})")),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two output channels of a 1×1 convolution on two inputs: the folded layer gives what the
    /// layer followed by the BatchNorm gives.
    #[test]
    fn folded_batch_norm_equals_the_two_steps() {
        let layer = Weighted {
            weight_shape: vec![2, 2, 1, 1],
            weight: vec![0.5, -1.0, 2.0, 0.25],
            bias: vec![0.1, -0.3],
        };
        let (scale, shift, mean, var, eps) =
            ([1.5, -0.5], [0.2, 1.0], [0.3, -0.7], [4.0, 0.25], 1e-5);
        let x = [0.8f32, -1.2];
        let run = |l: &Weighted| -> Vec<f64> {
            (0..2)
                .map(|o| {
                    f64::from(l.bias[o])
                        + (0..2)
                            .map(|i| f64::from(l.weight[o * 2 + i]) * f64::from(x[i]))
                            .sum::<f64>()
                })
                .collect()
        };
        let unfolded: Vec<f64> = run(&layer)
            .iter()
            .enumerate()
            .map(|(o, y)| {
                f64::from(scale[o]) * (y - f64::from(mean[o])) / (f64::from(var[o]) + eps).sqrt()
                    + f64::from(shift[o])
            })
            .collect();
        let mut folded = layer.clone();
        folded
            .fold_batch_norm(&scale, &shift, &mean, &var, eps as f32)
            .unwrap();
        for (a, b) in run(&folded).iter().zip(&unfolded) {
            assert!((a - b).abs() < 1e-6, "{a} vs {b}");
        }
    }

    #[test]
    fn a_negative_variance_and_an_overflow_are_errors() {
        let mut layer = Weighted {
            weight_shape: vec![1, 1],
            weight: vec![1.0],
            bias: vec![0.0],
        };
        let err = layer
            .fold_batch_norm(&[1.0], &[0.0], &[0.0], &[-1.0], 1e-5)
            .unwrap_err();
        assert!(err.contains("not positive"), "{err}");
        let err = layer
            .add_to_bias(&[f32::MAX])
            .and_then(|()| layer.add_to_bias(&[f32::MAX]));
        assert!(err.unwrap_err().contains("non-finite"));
    }

    #[test]
    fn bias_adds_broadcast_a_scalar() {
        let mut layer = Weighted {
            weight_shape: vec![2, 1],
            weight: vec![1.0, 1.0],
            bias: vec![1.0, 2.0],
        };
        layer.add_to_bias(&[0.5]).unwrap();
        layer.add_to_bias(&[1.0, -1.0]).unwrap();
        assert_eq!(layer.bias, [2.5, 1.5]);
    }
}
