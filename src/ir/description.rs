//! What a Core ML model description says about a program beyond its tensors: which inputs
//! are images, which outputs make it a classifier, and the human-readable metadata. The
//! backend writes it into `Model.description` and reads it back (see `docs/describe.md`).

use super::{Function, Operation};
use std::collections::BTreeMap;
use std::fmt;

/// The model-level description of a program.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Description {
    /// `Metadata.author`.
    pub author: String,
    /// `Metadata.license`.
    pub license: String,
    /// `Metadata.shortDescription`: what the model does.
    pub short_description: String,
    /// `Metadata.versionString`.
    pub version_string: String,
    /// `FeatureDescription.shortDescription` of inputs and outputs, by feature name.
    pub features: BTreeMap<String, String>,
    /// Inputs described as images (`imageType`), by input name.
    pub images: BTreeMap<String, ColorLayout>,
    /// The classifier outputs, when the model is a classifier.
    pub classifier: Option<Classifier>,
}

impl Description {
    /// True when the description says nothing beyond the features' types.
    pub fn is_empty(&self) -> bool {
        *self == Description::default()
    }
}

/// The pixel layout of an image input (Core ML's `ImageFeatureType.ColorSpace`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ColorLayout {
    /// Three channels in red, green, blue order.
    Rgb,
    /// Three channels in blue, green, red order.
    Bgr,
    /// One 8-bit grayscale channel.
    Gray,
}

impl ColorLayout {
    /// The channel count of the layout.
    pub fn channels(self) -> usize {
        match self {
            ColorLayout::Rgb | ColorLayout::Bgr => 3,
            ColorLayout::Gray => 1,
        }
    }

    /// Parses `RGB`, `BGR` or `GRAY` (any case).
    pub fn parse(text: &str) -> Option<ColorLayout> {
        match text.to_ascii_uppercase().as_str() {
            "RGB" => Some(ColorLayout::Rgb),
            "BGR" => Some(ColorLayout::Bgr),
            "GRAY" | "GRAYSCALE" => Some(ColorLayout::Gray),
            _ => None,
        }
    }
}

impl fmt::Display for ColorLayout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ColorLayout::Rgb => "RGB",
            ColorLayout::Bgr => "BGR",
            ColorLayout::Gray => "GRAY",
        })
    }
}

/// The two outputs of a classifier, both produced by the program's `classify` op.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Classifier {
    /// The predicted class label output (`ModelDescription.predictedFeatureName`).
    pub label: String,
    /// The class → probability output (`ModelDescription.predictedProbabilitiesName`).
    pub probabilities: String,
}

impl Classifier {
    /// The `classify` op of `function` producing these outputs, if there is one.
    pub fn op<'f>(&self, function: &'f Function) -> Option<&'f Operation> {
        function.block.operations.iter().find(|op| {
            op.op_type == "classify"
                && op.outputs.len() == 2
                && op.outputs[0].name == self.label
                && op.outputs[1].name == self.probabilities
        })
    }
}

/// The scale and bias an image input's pixels go through at the top of the program: a `mul`
/// by a scalar constant, then an `add` of a scalar or per-channel constant, each the only
/// reader of the value before it, as coremltools inserts them (and as
/// [`insert_image_preprocessing`](crate::passes) does). `(1, [0])` when there are none.
pub fn image_preprocessing(function: &Function, input: &str) -> (f32, Vec<f32>) {
    let only_reader = |name: &str| {
        let mut readers = function
            .block
            .operations
            .iter()
            .filter(|op| op.input_vars().any(|v| v == name));
        match (readers.next(), readers.next()) {
            (Some(op), None) if op.input("x").and_then(|a| a[0].var()) == Some(name) => Some(op),
            _ => None,
        }
    };
    let constant_y = |op: &Operation| {
        let name = op.input("y")?.first()?.var()?;
        let value = function.block.producer(name)?.1.const_value()?;
        value.dtype().is_float().then(|| value.to_f32_vec())
    };
    let mut scale = 1.0;
    let mut bias = vec![0.0];
    let mut op = only_reader(input);
    if let Some(mul) = op.filter(|o| o.op_type == "mul") {
        match constant_y(mul) {
            Some(v) if v.len() == 1 => {
                scale = v[0];
                op = only_reader(&mul.outputs[0].name);
            }
            _ => return (scale, bias),
        }
    }
    if let Some(v) = op
        .filter(|o| o.op_type == "add")
        .and_then(constant_y)
        .filter(|v| v.len() == 1 || v.len() == 3)
    {
        bias = v;
    }
    (scale, bias)
}
