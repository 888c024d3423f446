//! The model-description flags of `convert`: image inputs, class labels and metadata.

use super::split_assignment;
use crate::ir::ColorLayout;
use crate::pipeline::{DescribeOptions, ImageInput};
use clap::Args;
use std::path::PathBuf;

/// Image inputs, classifier labels and metadata written into the model description.
#[derive(Debug, Args)]
pub struct DescribeArgs {
    /// Make input NAME an image (Core ML imageType) of the given layout, default RGB; it must
    /// be fp32 NCHW [1,3,H,W] (RGB, BGR) or [1,1,H,W] (GRAY) (repeatable).
    #[arg(long = "image-input", value_name = "NAME[=RGB|BGR|GRAY]", value_parser = parse_image)]
    images: Vec<ImageInput>,
    /// Multiply image pixels (0..255) by S before the model sees them.
    #[arg(long, value_name = "S", value_parser = parse_f32)]
    image_scale: Option<f32>,
    /// Add B after scaling: one value, or one per channel in the image's channel order.
    #[arg(long, value_name = "B[,G,R]", value_parser = parse_bias)]
    image_bias: Option<Bias>,
    /// Make the model a classifier: class labels, one per line or a JSON list, for the
    /// output holding the class probabilities (the only output, or the one with as many
    /// elements as labels).
    #[arg(long, value_name = "FILE")]
    class_labels: Option<PathBuf>,
    /// Model author (metadata).
    #[arg(long, value_name = "TEXT")]
    author: Option<String>,
    /// Model license (metadata).
    #[arg(long, value_name = "TEXT")]
    license: Option<String>,
    /// What the model does (metadata short description).
    #[arg(long, value_name = "TEXT")]
    description: Option<String>,
    /// Model version (metadata version string).
    #[arg(long, value_name = "TEXT")]
    version_string: Option<String>,
    /// A user-defined metadata entry (repeatable).
    #[arg(long = "meta", value_name = "KEY=VALUE", value_parser = split_assignment)]
    meta: Vec<(String, String)>,
    /// Description of input NAME (repeatable).
    #[arg(long = "input-description", value_name = "NAME=TEXT", value_parser = split_assignment)]
    input_descriptions: Vec<(String, String)>,
    /// Description of output NAME (repeatable; a classifier's outputs are classLabel and
    /// classLabel_probs).
    #[arg(long = "output-description", value_name = "NAME=TEXT", value_parser = split_assignment)]
    output_descriptions: Vec<(String, String)>,
}

impl DescribeArgs {
    /// The library form.
    pub fn options(&self) -> DescribeOptions {
        DescribeOptions {
            images: self.images.clone(),
            image_scale: self.image_scale,
            image_bias: self.image_bias.clone().map(|b| b.0),
            class_labels: self.class_labels.clone(),
            author: self.author.clone(),
            license: self.license.clone(),
            short_description: self.description.clone(),
            version_string: self.version_string.clone(),
            meta: self.meta.clone(),
            input_descriptions: self.input_descriptions.clone(),
            output_descriptions: self.output_descriptions.clone(),
        }
    }
}

/// Parses `NAME[=RGB|BGR|GRAY]`.
fn parse_image(text: &str) -> Result<ImageInput, String> {
    let (name, layout) = match text.split_once('=') {
        Some((name, layout)) => (
            name,
            ColorLayout::parse(layout)
                .ok_or_else(|| format!("'{layout}' is not RGB, BGR or GRAY"))?,
        ),
        None => (text, ColorLayout::Rgb),
    };
    if name.is_empty() {
        return Err(format!("'{text}' names no input"));
    }
    Ok(ImageInput {
        name: name.to_string(),
        layout,
    })
}

/// A finite float32.
fn parse_f32(text: &str) -> Result<f32, String> {
    match text.trim().parse::<f32>() {
        Ok(v) if v.is_finite() => Ok(v),
        _ => Err(format!("expected a finite number, got '{text}'")),
    }
}

/// The values of `--image-bias`.
#[derive(Clone, Debug)]
struct Bias(Vec<f32>);

/// One finite number, or three separated by commas.
fn parse_bias(text: &str) -> Result<Bias, String> {
    let values = text
        .split(',')
        .map(parse_f32)
        .collect::<Result<Vec<_>, _>>()?;
    match values.len() {
        1 | 3 => Ok(Bias(values)),
        n => Err(format!("expected 1 or 3 values, got {n}")),
    }
}
