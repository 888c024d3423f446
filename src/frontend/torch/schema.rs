//! The parts of torch.export's `ExportedProgram` JSON schema (`torch/_export/serde/schema.py`)
//! the converter reads. Unions are single-key objects, enums integers; unknown fields are
//! ignored. Python writes `Infinity`, `-Infinity` and `NaN` as bare tokens, which
//! [`parse`] quotes before handing the text to serde.

use crate::Error;
use serde::de::{Error as _, IgnoredAny};
use serde::{Deserialize, Deserializer};
use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path;

/// Schema majors this reader understands (`SCHEMA_VERSION` 7.x to 9.x).
pub const SUPPORTED_MAJORS: std::ops::RangeInclusive<i64> = 7..=9;

/// A float that may also be written as `Infinity`, `-Infinity` or `NaN`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Float(pub f64);

impl<'de> Deserialize<'de> for Float {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Float, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(f64),
            Token(String),
        }
        match Raw::deserialize(d)? {
            Raw::Number(v) => Ok(Float(v)),
            Raw::Token(t) => match t.as_str() {
                "Infinity" => Ok(Float(f64::INFINITY)),
                "-Infinity" => Ok(Float(f64::NEG_INFINITY)),
                "NaN" => Ok(Float(f64::NAN)),
                other => Err(D::Error::custom(format!("'{other}' is not a float"))),
            },
        }
    }
}

/// A torch `ScalarType` code (`7` = float32, `5` = int64, `12` = bool, …).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScalarType(pub i64);

impl<'de> Deserialize<'de> for ScalarType {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<ScalarType, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Code(i64),
            Name(String),
        }
        const NAMES: &[(&str, i64)] = &[
            ("BYTE", 1),
            ("CHAR", 2),
            ("SHORT", 3),
            ("INT", 4),
            ("LONG", 5),
            ("HALF", 6),
            ("FLOAT", 7),
            ("DOUBLE", 8),
            ("BOOL", 12),
            ("BFLOAT16", 13),
        ];
        match Raw::deserialize(d)? {
            Raw::Code(c) => Ok(ScalarType(c)),
            Raw::Name(n) => NAMES
                .iter()
                .find(|(name, _)| *name == n)
                .map(|&(_, c)| ScalarType(c))
                .ok_or_else(|| D::Error::custom(format!("unknown scalar type '{n}'"))),
        }
    }
}

impl ScalarType {
    /// True for the floating-point types (half, float, double, bfloat16, fp8).
    pub fn is_float(self) -> bool {
        matches!(self.0, 6..=8 | 13 | 29..=33)
    }

    /// True for the integer types.
    pub fn is_int(self) -> bool {
        matches!(self.0, 1..=5 | 28 | 34 | 35)
    }

    /// True for bool.
    pub fn is_bool(self) -> bool {
        self.0 == 12
    }
}

/// `{major, minor}` of the schema the file was written with.
#[derive(Clone, Copy, Debug, Deserialize)]
pub struct SchemaVersion {
    /// Incompatible changes bump it.
    pub major: i64,
    /// Compatible additions bump it.
    pub minor: i64,
}

/// The whole exported program.
#[derive(Debug, Deserialize)]
pub struct ExportedProgram {
    /// The graph and its signature.
    pub graph_module: GraphModule,
    /// Bounds of the symbolic sizes, by symbol (`s0`, …).
    #[serde(default)]
    pub range_constraints: HashMap<String, RangeConstraint>,
    /// Schema version.
    pub schema_version: SchemaVersion,
    /// `TRAINING` or `ATEN` (which IR level the graph is at).
    #[serde(default)]
    pub verifiers: Vec<String>,
}

/// Inclusive bounds of one symbol; null is unbounded.
#[derive(Clone, Debug, Deserialize)]
pub struct RangeConstraint {
    /// Smallest value (null: unbounded).
    #[serde(default)]
    pub min_val: Option<serde_json::Value>,
    /// Largest value (null: unbounded; may exceed i64 for `int_oo`).
    #[serde(default)]
    pub max_val: Option<serde_json::Value>,
}

/// The graph module.
#[derive(Debug, Deserialize)]
pub struct GraphModule {
    /// The graph.
    pub graph: Graph,
    /// Which graph inputs are user inputs, weights, buffers; which outputs are what.
    pub signature: GraphSignature,
}

/// The FX graph.
#[derive(Debug, Deserialize)]
pub struct Graph {
    /// Every placeholder, lifted weights first.
    pub inputs: Vec<Argument>,
    /// Returned values (user outputs and buffer mutations).
    pub outputs: Vec<Argument>,
    /// The nodes in execution order.
    pub nodes: Vec<Node>,
    /// The type of every tensor value.
    pub tensor_values: HashMap<String, TensorMeta>,
    /// The expression of every symbolic integer value.
    #[serde(default)]
    pub sym_int_values: HashMap<String, SymInt>,
}

/// One call.
#[derive(Debug, Deserialize)]
pub struct Node {
    /// `torch.ops.aten.conv2d.default`, `_operator.mul`, …
    pub target: String,
    /// Arguments by schema name; those equal to their default are omitted.
    pub inputs: Vec<NamedArgument>,
    /// Results (multi-output ops list them all).
    pub outputs: Vec<Argument>,
    /// The FX node name (absent in older files).
    #[serde(default)]
    pub name: Option<String>,
}

/// An argument with its schema name.
#[derive(Debug, Deserialize)]
pub struct NamedArgument {
    /// The operator schema's argument name.
    pub name: String,
    /// The value.
    pub arg: Argument,
}

/// A reference to a tensor value.
#[derive(Clone, Debug, Deserialize)]
pub struct TensorArg {
    /// The value's name.
    pub name: String,
}

/// A symbolic integer in an argument: a named value or a literal.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SymIntArg {
    /// A symbolic value computed by a node or taken from an input size.
    AsName(String),
    /// A literal.
    AsInt(i64),
}

/// A symbolic float in an argument.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SymFloatArg {
    /// A named symbolic value.
    AsName(String),
    /// A literal.
    AsFloat(Float),
}

/// A symbolic bool in an argument.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SymBoolArg {
    /// A named symbolic value.
    AsName(String),
    /// A literal.
    AsBool(bool),
}

/// An element of a `Tensor?[]` list.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OptionalTensor {
    /// A tensor.
    AsTensor(TensorArg),
    /// None.
    AsNone(IgnoredAny),
}

/// An argument value (a union: exactly one key).
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Argument {
    /// None.
    AsNone(IgnoredAny),
    /// A tensor.
    AsTensor(TensorArg),
    /// A list of tensors.
    AsTensors(Vec<TensorArg>),
    /// An int.
    AsInt(i64),
    /// A list of ints.
    AsInts(Vec<i64>),
    /// A float.
    AsFloat(Float),
    /// A list of floats.
    AsFloats(Vec<Float>),
    /// A string.
    AsString(String),
    /// A list of strings.
    AsStrings(Vec<String>),
    /// A symbolic int.
    AsSymInt(SymIntArg),
    /// A list of symbolic ints.
    AsSymInts(Vec<SymIntArg>),
    /// A dtype.
    AsScalarType(ScalarType),
    /// A memory format.
    AsMemoryFormat(IgnoredAny),
    /// A layout.
    AsLayout(IgnoredAny),
    /// A device.
    AsDevice(IgnoredAny),
    /// A bool.
    AsBool(bool),
    /// A list of bools.
    AsBools(Vec<bool>),
    /// A symbolic bool.
    AsSymBool(SymBoolArg),
    /// A list of symbolic bools.
    AsSymBools(Vec<SymBoolArg>),
    /// A subgraph (higher-order ops).
    AsGraph(IgnoredAny),
    /// A `Tensor?[]`.
    AsOptionalTensors(Vec<OptionalTensor>),
    /// A script object.
    AsCustomObj(IgnoredAny),
    /// An operator.
    AsOperator(String),
    /// A symbolic float.
    AsSymFloat(SymFloatArg),
    /// A list of symbolic floats.
    AsSymFloats(Vec<SymFloatArg>),
    /// A `Tensor?`.
    AsOptionalTensor(OptionalTensor),
    /// A complex number.
    AsComplex(IgnoredAny),
    /// Lists of tensors.
    AsNestedTensors(IgnoredAny),
    /// Lists of ints.
    AsIntLists(IgnoredAny),
    /// A string-keyed map.
    AsStringToArgument(IgnoredAny),
    /// Lists of floats.
    AsFloatLists(IgnoredAny),
}

/// The static type of a tensor value.
#[derive(Clone, Debug, Deserialize)]
pub struct TensorMeta {
    /// Element type.
    pub dtype: ScalarType,
    /// Sizes, fixed or symbolic.
    pub sizes: Vec<SymInt>,
}

/// A size: a literal or a sympy expression of the input symbols.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SymInt {
    /// `expr_str` is sympy's `str()` (`s0`, `s0 + 1`, …) or `srepr()` in older files.
    AsExpr(SymExpr),
    /// A literal.
    AsInt(i64),
}

/// A sympy expression with its example value.
#[derive(Clone, Debug, Deserialize)]
pub struct SymExpr {
    /// The expression text.
    pub expr_str: String,
}

/// Which graph inputs are what, which outputs are what.
#[derive(Debug, Deserialize)]
pub struct GraphSignature {
    /// One per graph input, in order.
    pub input_specs: Vec<InputSpec>,
    /// One per graph output, in order.
    pub output_specs: Vec<OutputSpec>,
}

/// What a graph input is.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InputSpec {
    /// A user input.
    UserInput {
        /// The placeholder.
        arg: Argument,
    },
    /// A parameter of the state dict.
    Parameter {
        /// The placeholder.
        arg: TensorArg,
        /// Its state-dict name.
        parameter_name: String,
    },
    /// A buffer of the state dict (or a non-persistent one, among the constants).
    Buffer {
        /// The placeholder.
        arg: TensorArg,
        /// Its state-dict name.
        buffer_name: String,
    },
    /// A lifted tensor constant.
    TensorConstant {
        /// The placeholder.
        arg: TensorArg,
        /// Its name among the constants.
        tensor_constant_name: String,
    },
    /// A TorchBind object.
    CustomObj(IgnoredAny),
    /// An effect token.
    Token(IgnoredAny),
    /// A constant non-tensor input.
    ConstantInput {
        /// The placeholder name.
        name: String,
        /// Its value.
        value: ConstantValue,
    },
}

/// The value of a constant non-tensor input.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConstantValue {
    /// None.
    AsNone(IgnoredAny),
    /// An int.
    AsInt(i64),
    /// A float.
    AsFloat(Float),
    /// A string.
    AsString(String),
    /// A bool.
    AsBool(bool),
}

/// What a graph output is.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputSpec {
    /// A user output.
    UserOutput {
        /// The value.
        arg: Argument,
    },
    /// A training loss.
    LossOutput(IgnoredAny),
    /// The new value of a buffer the program mutates.
    BufferMutation {
        /// The value.
        arg: TensorArg,
        /// The buffer's state-dict name.
        buffer_name: String,
    },
    /// A parameter gradient.
    GradientToParameter(IgnoredAny),
    /// A user-input gradient.
    GradientToUserInput(IgnoredAny),
    /// The new value of a user input the program mutates.
    UserInputMutation {
        /// The value.
        arg: TensorArg,
        /// The user input's name.
        user_input_name: String,
    },
    /// An effect token.
    Token(IgnoredAny),
    /// The new value of a parameter the program mutates.
    ParameterMutation {
        /// The value.
        arg: TensorArg,
        /// The parameter's name.
        parameter_name: String,
    },
}

/// Quotes the bare `Infinity`, `-Infinity` and `NaN` tokens Python's `json` writes, outside
/// strings, so that a strict JSON parser accepts the text (see [`Float`]).
pub fn quote_non_finite(text: &str) -> Cow<'_, str> {
    let bytes = text.as_bytes();
    let mut out: Option<String> = None;
    let mut copied = 0;
    let (mut in_string, mut escaped) = (false, false);
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if in_string {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            i += 1;
            continue;
        }
        if c == b'"' {
            in_string = true;
            i += 1;
            continue;
        }
        let token = ["-Infinity", "Infinity", "NaN"]
            .into_iter()
            .find(|t| bytes[i..].starts_with(t.as_bytes()));
        if let Some(token) = token {
            let o = out.get_or_insert_with(|| String::with_capacity(text.len() + 64));
            o.push_str(&text[copied..i]);
            o.push('"');
            o.push_str(token);
            o.push('"');
            i += token.len();
            copied = i;
            continue;
        }
        i += 1;
    }
    match out {
        None => Cow::Borrowed(text),
        Some(mut o) => {
            o.push_str(&text[copied..]);
            Cow::Owned(o)
        }
    }
}

/// Parses the program JSON of the archive at `path`; a schema major outside
/// [`SUPPORTED_MAJORS`] is an [`Error::Invalid`] naming the file and the version.
pub fn parse(text: &str, path: &Path) -> Result<ExportedProgram, Error> {
    #[derive(Deserialize)]
    struct VersionOnly {
        schema_version: Option<SchemaVersion>,
    }
    let text = quote_non_finite(text);
    let bad = |e: serde_json::Error| {
        Error::invalid(path, format!("the exported program is not valid JSON: {e}"))
    };
    let version: VersionOnly = serde_json::from_str(&text).map_err(bad)?;
    let Some(version) = version.schema_version else {
        return Err(Error::invalid(
            path,
            "the exported program has no schema_version",
        ));
    };
    if !SUPPORTED_MAJORS.contains(&version.major) {
        return Err(Error::invalid(
            path,
            format!(
                "the exported program has schema version {}.{}; mlpack reads versions {}.x to {}.x",
                version.major,
                version.minor,
                SUPPORTED_MAJORS.start(),
                SUPPORTED_MAJORS.end()
            ),
        ));
    }
    serde_json::from_str(&text).map_err(|e| {
        Error::invalid(
            path,
            format!("the exported program does not match the torch.export schema: {e}"),
        )
    })
}
