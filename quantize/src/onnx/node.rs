//! One ONNX node as the importer reads it: its label for errors, its inputs and outputs, and
//! typed access to its attributes. An attribute the importer does not know for the operator is
//! an error, so nothing it would change is silently ignored.

use super::proto::attribute_proto::AttributeType;
use super::proto::{AttributeProto, NodeProto, TensorProto};

pub struct Node<'a> {
    pub proto: &'a NodeProto,
    /// The node's name, or `#<position>` in the graph when it has none.
    pub label: String,
}

impl<'a> Node<'a> {
    pub fn new(proto: &'a NodeProto, position: usize) -> Node<'a> {
        let label = if proto.name.is_empty() {
            format!("#{position}")
        } else {
            proto.name.clone()
        };
        Node { proto, label }
    }

    pub fn op(&self) -> &str {
        &self.proto.op_type
    }

    /// Input `i`, or `None` when it is absent or empty (ONNX's "optional input not given").
    pub fn input(&self, i: usize) -> Option<&'a str> {
        self.proto
            .input
            .get(i)
            .map(String::as_str)
            .filter(|s| !s.is_empty())
    }

    pub fn output(&self, i: usize) -> Option<&'a str> {
        self.proto
            .output
            .get(i)
            .map(String::as_str)
            .filter(|s| !s.is_empty())
    }

    /// Every attribute is one of `known`.
    pub fn only_attributes(&self, known: &[&str]) -> Result<(), String> {
        match self
            .proto
            .attribute
            .iter()
            .find(|a| !known.contains(&a.name.as_str()))
        {
            Some(a) => Err(format!(
                "attribute {} is not supported (qcnn reads {})",
                a.name,
                if known.is_empty() {
                    "none for this operator".to_owned()
                } else {
                    known.join(", ")
                }
            )),
            None => Ok(()),
        }
    }

    fn attribute(
        &self,
        name: &str,
        kind: AttributeType,
    ) -> Result<Option<&'a AttributeProto>, String> {
        let Some(a) = self.proto.attribute.iter().find(|a| a.name == name) else {
            return Ok(None);
        };
        if a.r#type != kind as i32 {
            let actual = AttributeType::try_from(a.r#type).map_or_else(
                |_| format!("type {}", a.r#type),
                |t| t.as_str_name().to_owned(),
            );
            return Err(format!(
                "attribute {name} is {actual}, expected {}",
                kind.as_str_name()
            ));
        }
        Ok(Some(a))
    }

    pub fn int(&self, name: &str) -> Result<Option<i64>, String> {
        Ok(self.attribute(name, AttributeType::Int)?.map(|a| a.i))
    }

    pub fn ints(&self, name: &str) -> Result<Option<Vec<i64>>, String> {
        Ok(self
            .attribute(name, AttributeType::Ints)?
            .map(|a| a.ints.clone()))
    }

    pub fn float(&self, name: &str) -> Result<Option<f32>, String> {
        Ok(self.attribute(name, AttributeType::Float)?.map(|a| a.f))
    }

    pub fn floats(&self, name: &str) -> Result<Option<Vec<f32>>, String> {
        Ok(self
            .attribute(name, AttributeType::Floats)?
            .map(|a| a.floats.clone()))
    }

    pub fn string(&self, name: &str) -> Result<Option<String>, String> {
        Ok(self
            .attribute(name, AttributeType::String)?
            .map(|a| String::from_utf8_lossy(&a.s).into_owned()))
    }

    pub fn tensor(&self, name: &str) -> Result<Option<&'a TensorProto>, String> {
        match self.attribute(name, AttributeType::Tensor)? {
            Some(a) => {
                a.t.as_ref()
                    .map(Some)
                    .ok_or_else(|| format!("attribute {name} holds no tensor"))
            }
            None => Ok(None),
        }
    }
}
