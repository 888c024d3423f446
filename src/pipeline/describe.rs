//! The model-description features of `convert` (as coremltools' `ct.convert` has them): image
//! inputs with their scale and bias, classifier outputs from class labels, and metadata. The
//! options are checked against the loaded program before any conversion work; the changes are
//! applied where coremltools applies them (facts: `docs/describe.md`). `inspect` shows them
//! with [`description_info`].

use crate::ir::{
    image_preprocessing, sanitize_name, Argument, Classifier, ColorLayout, DType, Dim, Function,
    NameTable, Operation, Program, Tensor, TensorType, Var,
};
use crate::Error;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The name coremltools gives the class label output; the probabilities are `<label>_probs`.
const LABEL_OUTPUT: &str = "classLabel";

/// An input to describe as an image (`--image-input NAME[=RGB|BGR|GRAY]`).
#[derive(Clone, Debug, PartialEq)]
pub struct ImageInput {
    /// The input's name (the source model's or the program's).
    pub name: String,
    /// Its pixel layout (RGB when not given).
    pub layout: ColorLayout,
}

/// The description flags of `convert`. Everything empty leaves the description as it is.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DescribeOptions {
    /// Inputs fed as images.
    pub images: Vec<ImageInput>,
    /// Factor every image pixel is multiplied by (`--image-scale`).
    pub image_scale: Option<f32>,
    /// Added after scaling: one value, or one per channel in the image's channel order
    /// (`--image-bias`).
    pub image_bias: Option<Vec<f32>>,
    /// File of class labels, one per line or a JSON list (`--class-labels`): makes the model a
    /// classifier.
    pub class_labels: Option<PathBuf>,
    /// `--author`.
    pub author: Option<String>,
    /// `--license`.
    pub license: Option<String>,
    /// `--description`: what the model does.
    pub short_description: Option<String>,
    /// `--version-string`.
    pub version_string: Option<String>,
    /// User-defined metadata entries (`--meta KEY=VALUE`).
    pub meta: Vec<(String, String)>,
    /// Input descriptions by input name (`--input-description`).
    pub input_descriptions: Vec<(String, String)>,
    /// Output descriptions by output name (`--output-description`).
    pub output_descriptions: Vec<(String, String)>,
}

/// What [`DescribeOptions::plan`] resolved against a program: names as the program has them.
#[derive(Clone, Debug, Default)]
pub struct DescribePlan {
    /// Image inputs by program input name.
    images: Vec<(String, ColorLayout)>,
    /// Pixel scale.
    scale: f32,
    /// Bias per channel (or one for all).
    bias: Vec<f32>,
    /// The class labels and the output holding their probabilities.
    classifier: Option<(Vec<String>, String)>,
    /// Feature descriptions by program feature name.
    features: BTreeMap<String, String>,
}

impl DescribeOptions {
    /// True when no flag is given.
    pub fn is_empty(&self) -> bool {
        *self == DescribeOptions::default()
    }

    /// True when a flag changes the program itself (image inputs or a classifier), which
    /// multifunction packages do not support.
    pub fn changes_program(&self) -> bool {
        !self.images.is_empty()
            || self.image_scale.is_some()
            || self.image_bias.is_some()
            || self.class_labels.is_some()
    }

    /// The files the options read.
    pub fn read_paths(&self) -> Vec<&Path> {
        self.class_labels.iter().map(PathBuf::as_path).collect()
    }

    /// Checks every flag against `program` (one-line usage errors naming the flag) and
    /// resolves the names.
    pub fn plan(&self, program: &Program) -> Result<DescribePlan, Error> {
        let main = program.main();
        let mut plan = DescribePlan {
            scale: self.image_scale.unwrap_or(1.0),
            bias: self.image_bias.clone().unwrap_or_else(|| vec![0.0]),
            ..Default::default()
        };
        if self.images.is_empty() && (self.image_scale.is_some() || self.image_bias.is_some()) {
            return Err(usage(
                if self.image_scale.is_some() {
                    "--image-scale"
                } else {
                    "--image-bias"
                },
                "needs --image-input",
            ));
        }
        if !plan.scale.is_finite() || plan.bias.iter().any(|b| !b.is_finite()) {
            return Err(usage(
                "--image-scale",
                "scale and bias must be finite numbers",
            ));
        }
        for image in &self.images {
            let flag = format!("--image-input {}", image.name);
            let var = find(&main.inputs, &image.name).ok_or_else(|| {
                usage(
                    &flag,
                    &format!("no such input (inputs: {})", names(&main.inputs)),
                )
            })?;
            if program.description.images.contains_key(&var.name)
                || plan.images.iter().any(|(n, _)| *n == var.name)
            {
                return Err(usage(&flag, "the input is already an image"));
            }
            check_image(var, image.layout, main).map_err(|m| usage(&flag, &m))?;
            if plan.bias.len() != 1 && plan.bias.len() != image.layout.channels() {
                return Err(usage(
                    "--image-bias",
                    &format!(
                        "{} values for the {} channel(s) of {} input '{}' (give 1 or {})",
                        plan.bias.len(),
                        image.layout.channels(),
                        image.layout,
                        image.name,
                        image.layout.channels()
                    ),
                ));
            }
            plan.images.push((var.name.clone(), image.layout));
        }
        let outputs = main.outputs();
        let mut final_outputs: Vec<String> = outputs.iter().map(|v| v.name.clone()).collect();
        if let Some(path) = &self.class_labels {
            if program.description.classifier.is_some() {
                return Err(usage("--class-labels", "the model is already a classifier"));
            }
            let labels = read_labels(path)?;
            let output = probabilities_output(&outputs, labels.len())
                .map_err(|m| usage(&format!("--class-labels {}", path.display()), &m))?;
            final_outputs.retain(|o| *o != output);
            final_outputs.splice(
                0..0,
                [LABEL_OUTPUT.to_string(), format!("{LABEL_OUTPUT}_probs")],
            );
            plan.classifier = Some((labels, output));
        }
        let input_vars: Vec<String> = main.inputs.iter().map(|v| v.name.clone()).collect();
        for (flag, given, names) in [
            ("--input-description", &self.input_descriptions, &input_vars),
            (
                "--output-description",
                &self.output_descriptions,
                &final_outputs,
            ),
        ] {
            for (name, text) in given {
                let found = names
                    .iter()
                    .find(|n| **n == *name || **n == sanitize_name(name))
                    .ok_or_else(|| {
                        usage(
                            &format!("{flag} {name}"),
                            &format!("no such {} (has: {})", &flag[2..8], names.join(", ")),
                        )
                    })?;
                plan.features.insert(found.clone(), text.clone());
            }
        }
        for (key, _) in &self.meta {
            if key.is_empty() {
                return Err(usage("--meta", "a key is empty"));
            }
        }
        Ok(plan)
    }

    /// Records the metadata flags in `program`'s description and user-defined metadata.
    pub fn apply_metadata(&self, program: &mut Program, plan: &DescribePlan) {
        let d = &mut program.description;
        for (field, value) in [
            (&mut d.author, &self.author),
            (&mut d.license, &self.license),
            (&mut d.short_description, &self.short_description),
            (&mut d.version_string, &self.version_string),
        ] {
            if let Some(v) = value {
                *field = v.clone();
            }
        }
        d.features.extend(plan.features.clone());
        for (k, v) in &self.meta {
            program.metadata.insert(k.clone(), v.clone());
        }
    }
}

impl DescribePlan {
    /// Makes the planned inputs images: each input is read through `mul` by the scale and `add`
    /// of the bias (each only when it changes the pixels), inserted at the top of the program
    /// in fp32, as coremltools' `insert_image_preprocessing_ops` does.
    pub fn apply_images(&self, program: &mut Program) {
        for (name, layout) in &self.images {
            let function = program.main_mut();
            let ty = function
                .inputs
                .iter()
                .find(|v| v.name == *name)
                .map(|v| v.ty.clone())
                .expect("planned against this program");
            let mut names = NameTable::of_function(function);
            let mut ops = Vec::new();
            let mut current = name.clone();
            let mut step = |op_type: &str, suffix: &str, value: Tensor, current: &mut String| {
                let out = names.fresh(&format!("{name}__{suffix}__"));
                let constant = names.fresh(&format!("{out}_y"));
                ops.push(Operation::constant(constant.clone(), value));
                ops.push(Operation {
                    op_type: op_type.into(),
                    name: out.clone(),
                    inputs: vec![
                        ("x".into(), vec![Argument::Var(current.clone())]),
                        ("y".into(), vec![Argument::Var(constant)]),
                    ],
                    outputs: vec![Var::new(out.clone(), ty.clone())],
                    attributes: Default::default(),
                    origin: None,
                });
                *current = out;
            };
            if self.scale != 1.0 {
                step(
                    "mul",
                    "scaled",
                    Tensor::scalar_f32(self.scale),
                    &mut current,
                );
            }
            if self.bias.iter().any(|&b| b != 0.0) {
                let bias = if self.bias.len() == 1 {
                    Tensor::scalar_f32(self.bias[0])
                } else {
                    Tensor::from_f32(&[1, layout.channels(), 1, 1], &self.bias)
                };
                step("add", "biased", bias, &mut current);
            }
            if current != *name {
                function.block.rename_uses(name, &current);
                function.block.operations.splice(0..0, ops);
            }
            program.description.images.insert(name.clone(), *layout);
        }
    }

    /// Makes the program a classifier: a `classify` op at the end reads the probabilities
    /// output (cast to fp32 first when it is fp16) and its label and probabilities outputs
    /// replace it, listed first, as coremltools' `_add_classify_op` does.
    pub fn apply_classifier(&self, program: &mut Program) {
        let Some((labels, output)) = &self.classifier else {
            return;
        };
        let function = program.main_mut();
        let mut names = NameTable::of_function(function);
        let ty = function
            .var_type(output)
            .cloned()
            .expect("planned against this program");
        let mut probabilities = output.clone();
        if ty.dtype != DType::F32 {
            let dtype = names.fresh(&format!("{output}_cast_to_fp32_dtype"));
            let cast = names.fresh(&format!("{output}_cast_to_fp32"));
            function.block.operations.push(Operation::constant(
                dtype.clone(),
                Tensor::scalar_string(DType::F32.name()),
            ));
            function.block.operations.push(Operation {
                op_type: "cast".into(),
                name: cast.clone(),
                inputs: vec![
                    ("x".into(), vec![Argument::Var(output.clone())]),
                    ("dtype".into(), vec![Argument::Var(dtype)]),
                ],
                outputs: vec![Var::new(cast.clone(), ty.with_dtype(DType::F32))],
                attributes: Default::default(),
                origin: None,
            });
            probabilities = cast;
        }
        let label = names.fresh(LABEL_OUTPUT);
        let probs = names.fresh(&format!("{label}_probs"));
        let op_name = names.fresh("classify");
        let n = labels.len();
        function.block.operations.push(Operation {
            op_type: "classify".into(),
            name: op_name,
            inputs: vec![
                ("probabilities".into(), vec![Argument::Var(probabilities)]),
                (
                    "classes".into(),
                    vec![Argument::Value(Tensor::from_strings(&[n], labels.clone()))],
                ),
            ],
            outputs: vec![
                Var::new(label.clone(), TensorType::scalar(DType::String)),
                Var::new(probs.clone(), TensorType::fixed(DType::F64, &[n])),
            ],
            attributes: Default::default(),
            origin: None,
        });
        function.block.outputs.retain(|o| o != output);
        function
            .block
            .outputs
            .splice(0..0, [label.clone(), probs.clone()]);
        program.description.classifier = Some(Classifier {
            label,
            probabilities: probs,
        });
    }
}

/// The variable called `given` (exactly or after sanitising).
fn find<'v>(vars: &'v [Var], given: &str) -> Option<&'v Var> {
    vars.iter()
        .find(|v| v.name == given)
        .or_else(|| vars.iter().find(|v| v.name == sanitize_name(given)))
}

/// The names of `vars`, for messages.
fn names(vars: &[Var]) -> String {
    vars.iter()
        .map(|v| v.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// A usage error naming `flag`.
fn usage(flag: &str, message: &str) -> Error {
    Error::Usage(format!("{flag}: {message}"))
}

/// Checks that `var` can be an image of `layout`: fp32 `[1, C, H, W]` with the layout's
/// channel count; flexible height and width need accepted sizes that keep N and C fixed.
fn check_image(var: &Var, layout: ColorLayout, main: &Function) -> Result<(), String> {
    let c = layout.channels();
    let shape: Vec<String> = var.ty.shape.iter().map(Dim::to_string).collect();
    let described = format!("{} [{}]", var.ty.dtype, shape.join(", "));
    if var.ty.dtype != DType::F32 {
        return Err(format!("an image input is fp32, the input is {described}"));
    }
    if var.ty.rank() != 4 || var.ty.shape[0] != Dim::Fixed(1) || var.ty.shape[1] != Dim::Fixed(c) {
        return Err(format!(
            "a {layout} image input is NCHW [1, {c}, H, W], the input is {described}"
        ));
    }
    if var.ty.static_shape().is_none() && !main.input_shapes.contains_key(&var.name) {
        return Err(format!(
            "the input is {described} with no accepted sizes; give them with --input-shape"
        ));
    }
    Ok(())
}

/// The output holding the probabilities of `count` classes: the only output, or the only one
/// with `count` elements.
fn probabilities_output(outputs: &[Var], count: usize) -> Result<String, String> {
    let elements = |v: &Var| v.ty.static_shape().map(|s| s.iter().product::<usize>());
    let describe = |v: &Var| format!("'{}' {}", v.name, v.ty);
    let candidates: Vec<&Var> = if outputs.len() == 1 {
        outputs.iter().collect()
    } else {
        outputs
            .iter()
            .filter(|v| elements(v) == Some(count))
            .collect()
    };
    match candidates.as_slice() {
        [v] if !v.ty.dtype.is_float() => Err(format!(
            "output {} is not a float tensor of class probabilities",
            describe(v)
        )),
        [v] if elements(v) == Some(count) => Ok(v.name.clone()),
        [v] => Err(format!(
            "{count} labels but output {} does not hold {count} class scores",
            describe(v)
        )),
        [] => Err(format!(
            "{count} labels but no output holds {count} class scores (outputs: {})",
            outputs.iter().map(describe).collect::<Vec<_>>().join(", ")
        )),
        several => Err(format!(
            "{count} labels match several outputs ({}); keep one",
            several
                .iter()
                .map(|v| describe(v))
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// Reads class labels: a JSON list of strings or numbers, or one label per line (trailing
/// empty lines ignored). Labels must be non-empty and distinct (they key a dictionary).
pub fn read_labels(path: &Path) -> Result<Vec<String>, Error> {
    let flag = format!("--class-labels {}", path.display());
    let bytes = crate::input_file::read(path).map_err(|e| crate::input_file::error(path, e))?;
    let text = String::from_utf8(bytes).map_err(|_| usage(&flag, "not UTF-8 text"))?;
    let labels: Vec<String> = if text.trim_start().starts_with('[') {
        let list: Vec<serde_json::Value> = serde_json::from_str(&text)
            .map_err(|e| usage(&flag, &format!("not a JSON list: {e}")))?;
        list.into_iter()
            .enumerate()
            .map(|(i, v)| match v {
                serde_json::Value::String(s) => Ok(s),
                serde_json::Value::Number(n) => Ok(n.to_string()),
                other => Err(usage(
                    &flag,
                    &format!("item {i} is {other}, not a string or number"),
                )),
            })
            .collect::<Result<_, _>>()?
    } else {
        let mut lines: Vec<String> = text
            .lines()
            .map(|l| l.trim_end_matches('\r').to_string())
            .collect();
        while lines.last().is_some_and(|l| l.trim().is_empty()) {
            lines.pop();
        }
        lines
    };
    if labels.is_empty() {
        return Err(usage(&flag, "no labels"));
    }
    let mut seen = BTreeMap::new();
    for (i, label) in labels.iter().enumerate() {
        if label.is_empty() {
            return Err(usage(&flag, &format!("label {} is empty", i + 1)));
        }
        if let Some(first) = seen.insert(label.as_str(), i) {
            return Err(usage(
                &flag,
                &format!(
                    "label '{label}' is listed twice (labels {} and {})",
                    first + 1,
                    i + 1
                ),
            ));
        }
    }
    Ok(labels)
}

/// How many class labels `inspect` lists.
const LABELS_SHOWN: usize = 5;

/// An image input, as `inspect` shows it.
#[derive(Clone, Debug, Serialize)]
pub struct ImageInfo {
    /// Input name.
    pub name: String,
    /// Pixel layout (`RGB`, `BGR`, `GRAY`).
    pub layout: String,
    /// The scale the program applies to the pixels first (1 when none).
    pub scale: f32,
    /// The bias it adds next: one value, or one per channel (0 when none).
    pub bias: Vec<f32>,
}

/// A classifier, as `inspect` shows it.
#[derive(Clone, Debug, Serialize)]
pub struct ClassifierInfo {
    /// The predicted label output.
    pub label_output: String,
    /// The class → probability output.
    pub probabilities_output: String,
    /// Number of classes.
    pub classes: usize,
    /// The first few class labels.
    pub first_labels: Vec<String>,
}

/// The model description of a package, as `inspect` shows it.
#[derive(Clone, Debug, Default, Serialize)]
pub struct DescriptionInfo {
    /// Image inputs.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub images: Vec<ImageInfo>,
    /// Classifier outputs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub classifier: Option<ClassifierInfo>,
    /// `Metadata.author`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub author: String,
    /// `Metadata.license`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub license: String,
    /// `Metadata.shortDescription`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// `Metadata.versionString`.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub version: String,
    /// Input and output descriptions by feature name.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub features: BTreeMap<String, String>,
    /// User-defined metadata.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub user_defined: BTreeMap<String, String>,
}

/// What `program`'s description holds, for `inspect`.
pub fn description_info(program: &Program) -> DescriptionInfo {
    let d = &program.description;
    let main = program.main();
    let images = d
        .images
        .iter()
        .map(|(name, layout)| {
            let (scale, bias) = image_preprocessing(main, name);
            ImageInfo {
                name: name.clone(),
                layout: layout.to_string(),
                scale,
                bias,
            }
        })
        .collect();
    let classifier = d.classifier.as_ref().map(|c| {
        let labels: Vec<String> = c
            .op(main)
            .and_then(|op| op.input("classes"))
            .and_then(|a| match a.first() {
                Some(Argument::Value(t)) if t.dtype() == DType::String => {
                    Some(t.strings().to_vec())
                }
                Some(Argument::Value(t)) => {
                    Some(t.to_i64_vec().iter().map(i64::to_string).collect())
                }
                _ => None,
            })
            .unwrap_or_default();
        ClassifierInfo {
            label_output: c.label.clone(),
            probabilities_output: c.probabilities.clone(),
            classes: labels.len(),
            first_labels: labels.into_iter().take(LABELS_SHOWN).collect(),
        }
    });
    DescriptionInfo {
        images,
        classifier,
        author: d.author.clone(),
        license: d.license.clone(),
        description: d.short_description.clone(),
        version: d.version_string.clone(),
        features: d.features.clone(),
        user_defined: program.metadata.clone(),
    }
}
