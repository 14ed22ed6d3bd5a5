//! Constant tensors: initializers and `Constant` node values, decoded from `TensorProto` into
//! f32 (weights) or i64 (shapes) with their dimensions. Sizes are checked against the declared
//! dimensions before anything is allocated from them.

use super::proto::TensorProto;
use super::proto::tensor_proto::DataLocation;
pub use super::proto::tensor_proto::DataType;

#[derive(Clone, Debug, PartialEq)]
pub enum Values {
    Float(Vec<f32>),
    Int(Vec<i64>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Constant {
    pub dims: Vec<usize>,
    pub values: Values,
    /// The element type in the file: QDQ models need to know int8 from uint8 from int32.
    pub data_type: DataType,
}

impl Constant {
    pub fn value_count(&self) -> usize {
        match &self.values {
            Values::Float(v) => v.len(),
            Values::Int(v) => v.len(),
        }
    }

    pub fn floats(&self) -> Option<&[f32]> {
        match &self.values {
            Values::Float(v) => Some(v),
            Values::Int(_) => None,
        }
    }

    pub fn ints(&self) -> Option<&[i64]> {
        match &self.values {
            Values::Int(v) => Some(v),
            Values::Float(_) => None,
        }
    }
}

/// Decodes `tensor`; the error says what is wrong with it (the caller names the tensor).
pub fn decode(tensor: &TensorProto) -> Result<Constant, String> {
    if tensor.data_location == Some(DataLocation::External as i32)
        || !tensor.external_data.is_empty()
    {
        return Err(
            "its data is in an external file, which qcnn does not read; export the \
                    model in one file (no external data)"
                .into(),
        );
    }
    if tensor.segment.is_some() {
        return Err("it is a segment of a larger tensor, which qcnn does not read".into());
    }
    let dims = tensor
        .dims
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| format!("dimension {d} is negative")))
        .collect::<Result<Vec<usize>, String>>()?;
    let count = dims
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .ok_or_else(|| format!("dimensions {dims:?} overflow"))?;
    let data_type = DataType::try_from(tensor.data_type)
        .map_err(|_| format!("unknown data type {}", tensor.data_type))?;
    let raw = &tensor.raw_data;
    let held = |n: usize| {
        if n == count {
            Ok(())
        } else {
            Err(format!(
                "dimensions {dims:?} need {count} values, it holds {n}"
            ))
        }
    };
    let values = match data_type {
        DataType::Float if !raw.is_empty() => {
            held(raw.len() / 4).and_then(|()| whole(raw.len(), 4))?;
            Values::Float(
                raw.chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                    .collect(),
            )
        }
        DataType::Float => {
            held(tensor.float_data.len())?;
            Values::Float(tensor.float_data.clone())
        }
        DataType::Double if !raw.is_empty() => {
            held(raw.len() / 8).and_then(|()| whole(raw.len(), 8))?;
            Values::Float(
                raw.chunks_exact(8)
                    .map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")) as f32)
                    .collect(),
            )
        }
        DataType::Double => {
            held(tensor.double_data.len())?;
            Values::Float(tensor.double_data.iter().map(|&v| v as f32).collect())
        }
        DataType::Int64 if !raw.is_empty() => {
            held(raw.len() / 8).and_then(|()| whole(raw.len(), 8))?;
            Values::Int(
                raw.chunks_exact(8)
                    .map(|b| i64::from_le_bytes(b.try_into().expect("8 bytes")))
                    .collect(),
            )
        }
        DataType::Int64 => {
            held(tensor.int64_data.len())?;
            Values::Int(tensor.int64_data.clone())
        }
        DataType::Int32 if !raw.is_empty() => {
            held(raw.len() / 4).and_then(|()| whole(raw.len(), 4))?;
            Values::Int(
                raw.chunks_exact(4)
                    .map(|b| i64::from(i32::from_le_bytes([b[0], b[1], b[2], b[3]])))
                    .collect(),
            )
        }
        DataType::Bool if !raw.is_empty() => {
            held(raw.len())?;
            Values::Int(raw.iter().map(|&b| i64::from(b)).collect())
        }
        // The integer tensors of QDQ models: weights, zero points, biases.
        DataType::Int8 | DataType::Uint8 if !raw.is_empty() => {
            held(raw.len())?;
            let signed = data_type == DataType::Int8;
            Values::Int(
                raw.iter()
                    .map(|&b| {
                        if signed {
                            i64::from(b as i8)
                        } else {
                            i64::from(b)
                        }
                    })
                    .collect(),
            )
        }
        DataType::Int16 | DataType::Uint16 if !raw.is_empty() => {
            held(raw.len() / 2).and_then(|()| whole(raw.len(), 2))?;
            let signed = data_type == DataType::Int16;
            Values::Int(
                raw.chunks_exact(2)
                    .map(|b| {
                        let bytes = [b[0], b[1]];
                        if signed {
                            i64::from(i16::from_le_bytes(bytes))
                        } else {
                            i64::from(u16::from_le_bytes(bytes))
                        }
                    })
                    .collect(),
            )
        }
        // int32_data also carries bool, int8, uint8 and int16 values, one per entry.
        DataType::Int32
        | DataType::Bool
        | DataType::Int8
        | DataType::Uint8
        | DataType::Int16
        | DataType::Uint16 => {
            held(tensor.int32_data.len())?;
            Values::Int(tensor.int32_data.iter().map(|&v| i64::from(v)).collect())
        }
        other => {
            return Err(format!(
                "data type {} is not supported (float, double, int64, int32, int16, int8, \
                 uint16, uint8 and bool are)",
                other.as_str_name()
            ));
        }
    };
    Ok(Constant {
        dims,
        values,
        data_type,
    })
}

fn whole(len: usize, size: usize) -> Result<(), String> {
    if len.is_multiple_of(size) {
        Ok(())
    } else {
        Err(format!(
            "{len} raw bytes are not a whole number of {size}-byte values"
        ))
    }
}

/// The first value that is not finite, with its flat index.
pub fn first_non_finite(values: &[f32]) -> Option<(usize, f32)> {
    values
        .iter()
        .enumerate()
        .find(|(_, v)| !v.is_finite())
        .map(|(i, &v)| (i, v))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tensor(data_type: DataType, dims: &[i64]) -> TensorProto {
        TensorProto {
            data_type: data_type as i32,
            dims: dims.to_vec(),
            ..Default::default()
        }
    }

    #[test]
    fn raw_and_typed_fields_decode_alike() {
        let mut raw = tensor(DataType::Float, &[2]);
        raw.raw_data = [1.5f32, -2.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let mut typed = tensor(DataType::Float, &[2]);
        typed.float_data = vec![1.5, -2.0];
        assert_eq!(decode(&raw).unwrap(), decode(&typed).unwrap());
        let mut ints = tensor(DataType::Int64, &[2]);
        ints.raw_data = [-1i64, 3136].iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(decode(&ints).unwrap().ints(), Some(&[-1, 3136][..]));
        // QDQ models' integers: int8 and uint8 one byte each, raw or typed.
        let mut int8 = tensor(DataType::Int8, &[3]);
        int8.raw_data = vec![0x80, 0x7f, 0xff];
        assert_eq!(decode(&int8).unwrap().ints(), Some(&[-128, 127, -1][..]));
        let mut uint8 = tensor(DataType::Uint8, &[2]);
        uint8.raw_data = vec![0x80, 0xff];
        assert_eq!(decode(&uint8).unwrap().ints(), Some(&[128, 255][..]));
        let mut typed_int8 = tensor(DataType::Int8, &[2]);
        typed_int8.int32_data = vec![-5, 7];
        let typed = decode(&typed_int8).unwrap();
        assert_eq!(typed.ints(), Some(&[-5, 7][..]));
        assert_eq!(typed.data_type, DataType::Int8);
        // A scalar has no dimensions and one value.
        let mut scalar = tensor(DataType::Float, &[]);
        scalar.float_data = vec![0.5];
        assert_eq!(decode(&scalar).unwrap().dims, Vec::<usize>::new());
    }

    #[test]
    fn sizes_types_and_locations_are_checked() {
        let mut short = tensor(DataType::Float, &[3]);
        short.raw_data = vec![0; 8];
        assert!(
            decode(&short)
                .unwrap_err()
                .contains("need 3 values, it holds 2")
        );
        let mut ragged = tensor(DataType::Float, &[1]);
        ragged.raw_data = vec![0; 5];
        assert!(decode(&ragged).is_err());
        let negative = tensor(DataType::Float, &[-1]);
        assert!(decode(&negative).unwrap_err().contains("negative"));
        let huge = tensor(DataType::Float, &[i64::MAX, i64::MAX]);
        assert!(decode(&huge).unwrap_err().contains("overflow"));
        let half = tensor(DataType::Float16, &[0]);
        assert!(decode(&half).unwrap_err().contains("FLOAT16"));
        let mut external = tensor(DataType::Float, &[1]);
        external.data_location = Some(DataLocation::External as i32);
        assert!(decode(&external).unwrap_err().contains("external file"));
    }
}
