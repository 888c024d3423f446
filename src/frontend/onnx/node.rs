//! A view of one ONNX node: a printable label and typed attribute access.

use crate::proto::onnx::{attribute_proto::AttributeType, AttributeProto, NodeProto, TensorProto};

/// One node of the graph being converted.
pub struct Node<'m> {
    /// The node as stored in the model.
    pub proto: &'m NodeProto,
    /// The node's name, or `<op_type> → <first output>` when it has none.
    pub label: String,
}

/// An attribute that is present but not of the expected kind.
pub type AttrError = String;

impl<'m> Node<'m> {
    /// Wraps `proto`.
    pub fn new(proto: &'m NodeProto) -> Node<'m> {
        let label = if proto.name.is_empty() {
            format!(
                "{} -> {}",
                proto.op_type,
                proto.output.first().map_or("?", String::as_str)
            )
        } else {
            proto.name.clone()
        };
        Node { proto, label }
    }

    /// ONNX op type.
    pub fn op_type(&self) -> &str {
        &self.proto.op_type
    }

    /// Name of input `i`, None when absent or empty (an omitted optional input).
    pub fn input_name(&self, i: usize) -> Option<&'m str> {
        self.proto
            .input
            .get(i)
            .map(String::as_str)
            .filter(|n| !n.is_empty())
    }

    /// Number of inputs, counting omitted optional ones before the last given one.
    pub fn num_inputs(&self) -> usize {
        self.proto.input.len()
    }

    /// Name of output `i`, None when absent or empty.
    pub fn output_name(&self, i: usize) -> Option<&'m str> {
        self.proto
            .output
            .get(i)
            .map(String::as_str)
            .filter(|n| !n.is_empty())
    }

    /// The attribute called `name`.
    pub fn attr(&self, name: &str) -> Option<&'m AttributeProto> {
        self.proto.attribute.iter().find(|a| a.name == name)
    }

    fn kind_error(&self, a: &AttributeProto, expected: &str) -> AttrError {
        let actual = AttributeType::try_from(a.r#type).map_or("unknown", |t| t.as_str_name());
        format!("attribute '{}' should be {expected}, is {actual}", a.name)
    }

    /// Integer attribute `name`, if present.
    pub fn int(&self, name: &str) -> Result<Option<i64>, AttrError> {
        match self.attr(name) {
            None => Ok(None),
            Some(a) if matches!(kind(a), AttributeType::Int | AttributeType::Undefined) => {
                Ok(Some(a.i))
            }
            Some(a) => Err(self.kind_error(a, "INT")),
        }
    }

    /// Integer attribute `name`, or `default`.
    pub fn int_or(&self, name: &str, default: i64) -> Result<i64, AttrError> {
        Ok(self.int(name)?.unwrap_or(default))
    }

    /// Float attribute `name`, if present.
    pub fn float(&self, name: &str) -> Result<Option<f32>, AttrError> {
        match self.attr(name) {
            None => Ok(None),
            Some(a) if matches!(kind(a), AttributeType::Float | AttributeType::Undefined) => {
                Ok(Some(a.f))
            }
            Some(a) => Err(self.kind_error(a, "FLOAT")),
        }
    }

    /// Float attribute `name`, or `default`.
    pub fn float_or(&self, name: &str, default: f32) -> Result<f32, AttrError> {
        Ok(self.float(name)?.unwrap_or(default))
    }

    /// Integer-list attribute `name`, if present.
    pub fn ints(&self, name: &str) -> Result<Option<Vec<i64>>, AttrError> {
        match self.attr(name) {
            None => Ok(None),
            Some(a) if matches!(kind(a), AttributeType::Ints | AttributeType::Undefined) => {
                Ok(Some(a.ints.clone()))
            }
            Some(a) => Err(self.kind_error(a, "INTS")),
        }
    }

    /// Float-list attribute `name`, if present.
    pub fn floats(&self, name: &str) -> Result<Option<Vec<f32>>, AttrError> {
        match self.attr(name) {
            None => Ok(None),
            Some(a) if matches!(kind(a), AttributeType::Floats | AttributeType::Undefined) => {
                Ok(Some(a.floats.clone()))
            }
            Some(a) => Err(self.kind_error(a, "FLOATS")),
        }
    }

    /// String attribute `name`, if present (invalid UTF-8 is replaced).
    pub fn string(&self, name: &str) -> Result<Option<String>, AttrError> {
        match self.attr(name) {
            None => Ok(None),
            Some(a) if matches!(kind(a), AttributeType::String | AttributeType::Undefined) => {
                Ok(Some(String::from_utf8_lossy(&a.s).into_owned()))
            }
            Some(a) => Err(self.kind_error(a, "STRING")),
        }
    }

    /// Tensor attribute `name`, if present.
    pub fn tensor(&self, name: &str) -> Result<Option<&'m TensorProto>, AttrError> {
        match self.attr(name) {
            None => Ok(None),
            Some(a) => {
                a.t.as_ref()
                    .map(Some)
                    .ok_or_else(|| self.kind_error(a, "TENSOR"))
            }
        }
    }
}

fn kind(a: &AttributeProto) -> AttributeType {
    AttributeType::try_from(a.r#type).unwrap_or(AttributeType::Undefined)
}
