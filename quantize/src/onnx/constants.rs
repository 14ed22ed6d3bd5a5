//! The model's constants: initializers and `Constant` node values, by ONNX value name, and how
//! a node reads one of its inputs as a constant (weights, biases, shapes, Clip limits).

use std::collections::HashMap;

use super::node::Node;
use super::tensor::{self, Constant, DataType, Values};

#[derive(Default)]
pub struct Constants(HashMap<String, Constant>);

impl Constants {
    pub fn new(initializers: HashMap<String, Constant>) -> Constants {
        Constants(initializers)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }

    pub fn insert(&mut self, name: String, value: Constant) {
        self.0.insert(name, value);
    }

    /// A `Constant` node: its value under its output's name.
    pub fn constant_node(&mut self, node: &Node) -> Result<(), String> {
        node.only_attributes(&[
            "value",
            "value_float",
            "value_floats",
            "value_int",
            "value_ints",
        ])?;
        let value = if let Some(t) = node.tensor("value")? {
            tensor::decode(t)?
        } else if let Some(v) = node.float("value_float")? {
            floats(vec![], vec![v])
        } else if let Some(v) = node.floats("value_floats")? {
            floats(vec![v.len()], v)
        } else if let Some(v) = node.int("value_int")? {
            ints(vec![], vec![v])
        } else if let Some(v) = node.ints("value_ints")? {
            ints(vec![v.len()], v)
        } else {
            return Err("has no value attribute".into());
        };
        if let Some((index, v)) = value.floats().and_then(tensor::first_non_finite) {
            return Err(format!("its value holds {v} at flat index {index}"));
        }
        let output = node.output(0).ok_or("has no output")?;
        self.0.insert(output.to_owned(), value);
        Ok(())
    }

    /// Input `i` of `node`, which must be a constant.
    pub fn input(&self, node: &Node, i: usize, what: &str) -> Result<&Constant, String> {
        let name = node
            .input(i)
            .ok_or_else(|| format!("has no {what} (input {i})"))?;
        self.0.get(name).ok_or_else(|| {
            format!(
                "its {what} {name} is computed at run time; qcnn needs it as an initializer or \
                 a Constant"
            )
        })
    }

    /// [`Self::input`], when the node has that input at all.
    pub fn optional_input(
        &self,
        node: &Node,
        i: usize,
        what: &str,
    ) -> Result<Option<&Constant>, String> {
        match node.input(i) {
            Some(_) => self.input(node, i, what).map(Some),
            None => Ok(None),
        }
    }
}

fn floats(dims: Vec<usize>, values: Vec<f32>) -> Constant {
    Constant {
        dims,
        values: Values::Float(values),
        data_type: DataType::Float,
    }
}

fn ints(dims: Vec<usize>, values: Vec<i64>) -> Constant {
    Constant {
        dims,
        values: Values::Int(values),
        data_type: DataType::Int64,
    }
}

pub fn as_floats<'c>(constant: &'c Constant, what: &str) -> Result<&'c [f32], String> {
    constant
        .floats()
        .ok_or_else(|| format!("its {what} is not a float tensor"))
}

/// `rows × columns` row-major to `columns × rows`.
pub fn transpose(values: &[f32], rows: usize, columns: usize) -> Vec<f32> {
    (0..columns)
        .flat_map(|c| (0..rows).map(move |r| values[r * columns + c]))
        .collect()
}

/// Does a constant of `dims` broadcast onto the outputs as a scalar (`Some(false)`) or as one
/// value per output (`Some(true)`, its shape `per_output` after leading 1s)?
pub fn broadcast_per_output(dims: &[usize], outputs: usize, per_output: &[usize]) -> Option<bool> {
    let count: usize = dims.iter().product();
    if count == 1 {
        return Some(false);
    }
    let first = dims.iter().position(|&d| d != 1).unwrap_or(dims.len());
    let trimmed = &dims[first..];
    let mut expected = per_output;
    while expected.len() > trimmed.len() && expected.first() == Some(&1) {
        expected = &expected[1..];
    }
    (count == outputs && trimmed == expected).then_some(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transpose_and_broadcasting() {
        assert_eq!(
            transpose(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 2, 3),
            [1.0, 4.0, 2.0, 5.0, 3.0, 6.0]
        );
        assert_eq!(broadcast_per_output(&[], 4, &[4]), Some(false));
        assert_eq!(broadcast_per_output(&[1, 1], 4, &[4]), Some(false));
        assert_eq!(broadcast_per_output(&[4], 4, &[4]), Some(true));
        assert_eq!(broadcast_per_output(&[1, 4], 4, &[4]), Some(true));
        assert_eq!(broadcast_per_output(&[4, 1, 1], 4, &[4, 1, 1]), Some(true));
        assert_eq!(
            broadcast_per_output(&[1, 4, 1, 1], 4, &[4, 1, 1]),
            Some(true)
        );
        // One value per column of a map, not per channel.
        assert_eq!(broadcast_per_output(&[4], 4, &[4, 1, 1]), None);
        assert_eq!(broadcast_per_output(&[3], 4, &[4]), None);
    }
}
