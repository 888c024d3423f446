//! The model description: the functions' inputs, outputs and states as Core ML features, and
//! the user-defined metadata. A single-function model lists its features at the top level; a
//! multifunction model (iOS18) lists one `FunctionDescription` per function (each with its own
//! states), names the default one, and leaves the top-level features empty, as coremltools'
//! `save_multifunction` writes it.

use super::model_info;
use crate::ir::{ColorLayout, DType, Description, Dim, Function, Program, ShapeSet, Target, Var};
use crate::proto::coreml::{
    array_feature_type::{ArrayDataType, EnumeratedShapes, Shape, ShapeFlexibility, ShapeRange},
    feature_type, state_feature_type, ArrayFeatureType, FeatureDescription, FeatureType,
    FunctionDescription, Metadata, ModelDescription, SizeRange, StateFeatureType,
};
use crate::Error;
use std::collections::BTreeMap;
use std::path::Path;

/// The description of `program`; a feature Core ML cannot express is an
/// [`Error::Unsupported`] for `dest`.
pub fn describe(program: &Program, dest: &Path) -> Result<ModelDescription, Error> {
    let metadata = Some(Metadata {
        user_defined: program.metadata.clone(),
        ..Default::default()
    });
    if !program.is_multifunction() {
        let (input, output) = features(
            program.main(),
            Some(&program.description),
            program.target,
            dest,
        )?;
        let mut d = ModelDescription {
            input,
            output,
            state: states(program.main()),
            metadata,
            ..Default::default()
        };
        model_info::annotate(&mut d, &program.description);
        return Ok(d);
    }
    if !program.description.images.is_empty() || program.description.classifier.is_some() {
        return Err(Error::Unsupported {
            path: dest.to_path_buf(),
            message: "image inputs and classifier outputs need a single-function model".into(),
        });
    }
    if program.target < Target::IOS18 {
        return Err(Error::Unsupported {
            path: dest.to_path_buf(),
            message: format!(
                "a multifunction model ({}) needs target iOS18 or later",
                program.function_names().join(", ")
            ),
        });
    }
    let functions = program
        .functions
        .iter()
        .map(|function| {
            let (input, output) = features(function, None, program.target, dest)?;
            Ok(FunctionDescription {
                name: function.name.clone(),
                input,
                output,
                state: states(function),
                ..Default::default()
            })
        })
        .collect::<Result<_, Error>>()?;
    let mut d = ModelDescription {
        functions,
        default_function_name: program.main().name.clone(),
        metadata,
        ..Default::default()
    };
    model_info::annotate(&mut d, &program.description);
    Ok(d)
}

/// The input and output features of `main`; `description` (for a single-function model)
/// makes some inputs images and some outputs a classifier's.
fn features(
    main: &Function,
    description: Option<&Description>,
    target: Target,
    dest: &Path,
) -> Result<(Vec<FeatureDescription>, Vec<FeatureDescription>), Error> {
    let unsupported = |message: String| Error::Unsupported {
        path: dest.to_path_buf(),
        message,
    };
    let input = main
        .inputs
        .iter()
        .map(|var| {
            let data_type = array_data_type(var, "input", target).map_err(&unsupported)?;
            let flexible = var.ty.static_shape().is_none();
            let set = main.input_shapes.get(&var.name);
            let (shape, flexibility) = match set {
                Some(set) if flexible => {
                    let shape = set.default_shape().iter().map(|&n| n as i64).collect();
                    (shape, Some(shape_flexibility(set)))
                }
                _ => {
                    let shape = var
                        .ty
                        .shape
                        .iter()
                        .map(|d| match d {
                            Dim::Fixed(n) => Ok(*n as i64),
                            Dim::Symbol(s) => Err(unsupported(format!(
                                "input '{}' has symbolic dimension '{s}' but no accepted sizes",
                                var.name
                            ))),
                        })
                        .collect::<Result<Vec<_>, _>>()?;
                    (shape, None)
                }
            };
            // A scalar input is described as a one-element array.
            let shape = if shape.is_empty() { vec![1] } else { shape };
            let mut f = feature(var, data_type, shape);
            if let Some(Some(feature_type::Type::MultiArrayType(a))) =
                f.r#type.as_mut().map(|t| t.r#type.as_mut())
            {
                a.shape_flexibility = flexibility;
            }
            if let Some(&layout) = description.and_then(|d| d.images.get(&var.name)) {
                f.r#type = Some(model_info::image_feature(var, layout, set).map_err(&unsupported)?);
            }
            Ok(f)
        })
        .collect::<Result<_, Error>>()?;
    let output = main
        .outputs()
        .iter()
        .map(|var| {
            let classifier = description.and_then(|d| d.classifier.as_ref());
            if let Some(t) = model_info::classifier_feature(var, classifier, main) {
                return Ok(FeatureDescription {
                    name: var.name.clone(),
                    short_description: String::new(),
                    r#type: Some(t),
                });
            }
            let data_type = array_data_type(var, "output", target).map_err(&unsupported)?;
            // The shape is only given when fully static (and omitted for scalars).
            Ok(feature(var, data_type, static_dims(var)))
        })
        .collect::<Result<_, Error>>()?;
    Ok((input, output))
}

/// The Core ML form of an input's accepted shapes (an unbounded range has upper bound -1).
fn shape_flexibility(set: &ShapeSet) -> ShapeFlexibility {
    match set {
        ShapeSet::Ranges(ranges) => ShapeFlexibility::ShapeRange(ShapeRange {
            size_ranges: ranges
                .iter()
                .map(|&(lo, hi)| SizeRange {
                    lower_bound: lo as u64,
                    upper_bound: hi.map_or(-1, |hi| hi as i64),
                })
                .collect(),
        }),
        ShapeSet::Enumerated(shapes) => ShapeFlexibility::EnumeratedShapes(EnumeratedShapes {
            shapes: shapes
                .iter()
                .map(|s| Shape {
                    shape: s.iter().map(|&n| n as i64).collect(),
                })
                .collect(),
        }),
    }
}

/// The accepted shapes a description input declares (None when it has no flexibility); `Err`
/// names what is malformed.
fn shape_set(array: &ArrayFeatureType) -> Result<Option<ShapeSet>, String> {
    let size = |n: i64| usize::try_from(n).ok().filter(|&n| n > 0);
    match &array.shape_flexibility {
        None => Ok(None),
        Some(ShapeFlexibility::ShapeRange(r)) => {
            if r.size_ranges.len() != array.shape.len() {
                return Err(format!(
                    "its shapeRange has {} ranges for rank {}",
                    r.size_ranges.len(),
                    array.shape.len()
                ));
            }
            r.size_ranges
                .iter()
                .map(|s| {
                    let lo = size(s.lower_bound as i64).ok_or("a lower bound is 0")?;
                    match s.upper_bound {
                        hi if hi < 0 => Ok((lo, None)),
                        hi => match size(hi) {
                            Some(hi) if hi >= lo => Ok((lo, Some(hi))),
                            _ => Err(format!("range {lo}..{hi} is empty")),
                        },
                    }
                })
                .collect::<Result<Vec<_>, String>>()
                .map(|r| Some(ShapeSet::Ranges(r)))
        }
        Some(ShapeFlexibility::EnumeratedShapes(e)) => {
            let shapes = e
                .shapes
                .iter()
                .map(|s| {
                    s.shape
                        .iter()
                        .map(|&n| size(n))
                        .collect::<Option<Vec<_>>>()
                        .filter(|s| s.len() == array.shape.len())
                        .ok_or_else(|| format!("enumerated shape {:?} does not fit", s.shape))
                })
                .collect::<Result<Vec<_>, _>>()?;
            if shapes.is_empty() {
                return Err("its enumeratedShapes list is empty".into());
            }
            Ok(Some(ShapeSet::Enumerated(shapes)))
        }
    }
}

/// A multi-array feature for `var`.
fn feature(var: &Var, data_type: ArrayDataType, shape: Vec<i64>) -> FeatureDescription {
    FeatureDescription {
        name: var.name.clone(),
        short_description: String::new(),
        r#type: Some(FeatureType {
            is_optional: false,
            r#type: Some(feature_type::Type::MultiArrayType(ArrayFeatureType {
                shape,
                data_type: data_type as i32,
                shape_flexibility: None,
                default_optional_value: None,
            })),
        }),
    }
}

/// The state features of `function`.
fn states(function: &Function) -> Vec<FeatureDescription> {
    function.states.iter().map(state_feature).collect()
}

/// The shape of `var` as feature dims when fully static; empty otherwise (and for scalars).
fn static_dims(var: &Var) -> Vec<i64> {
    let shape = var.ty.static_shape().unwrap_or_default();
    shape.into_iter().map(|n| n as i64).collect()
}

/// A state feature for `var` (fp16 and static, checked by the IR validator): a
/// `StateFeatureType` wrapping the multi-array type, listed in `ModelDescription.state`.
fn state_feature(var: &Var) -> FeatureDescription {
    let array = ArrayFeatureType {
        shape: static_dims(var),
        data_type: ArrayDataType::Float16 as i32,
        shape_flexibility: None,
        default_optional_value: None,
    };
    FeatureDescription {
        name: var.name.clone(),
        short_description: String::new(),
        r#type: Some(FeatureType {
            is_optional: false,
            r#type: Some(feature_type::Type::StateType(StateFeatureType {
                r#type: Some(state_feature_type::Type::ArrayType(array)),
            })),
        }),
    }
}

/// Checks the described states `state` against the function's: same names in order, each a
/// multi-array of the state's static shape.
fn check_states(state: &[FeatureDescription], function: &Function) -> Result<(), String> {
    let names = |l: Vec<&str>| l.join(", ");
    let described: Vec<&str> = state.iter().map(|f| f.name.as_str()).collect();
    let declared: Vec<&str> = function.states.iter().map(|v| v.name.as_str()).collect();
    if described != declared {
        return Err(format!(
            "the description lists states [{}] but the function has [{}]",
            names(described),
            names(declared)
        ));
    }
    for (feature, var) in state.iter().zip(&function.states) {
        let shape = match feature.r#type.as_ref().and_then(|t| t.r#type.as_ref()) {
            Some(feature_type::Type::StateType(StateFeatureType {
                r#type: Some(state_feature_type::Type::ArrayType(a)),
            })) => &a.shape,
            _ => {
                return Err(format!(
                    "state '{}' is not a multi-array state",
                    feature.name
                ))
            }
        };
        let static_shape: Option<Vec<i64>> = var
            .ty
            .static_shape()
            .map(|s| s.into_iter().map(|n| n as i64).collect());
        if static_shape.as_ref() != Some(shape) {
            return Err(format!(
                "state '{}' has shape {shape:?} in the description but type {} in the program",
                feature.name, var.ty
            ));
        }
    }
    Ok(())
}

/// The array dtype of model input/output `var`: fp32, int32, or fp16 from iOS16 on.
fn array_data_type(var: &Var, role: &str, target: Target) -> Result<ArrayDataType, String> {
    match var.ty.dtype {
        DType::F32 => Ok(ArrayDataType::Float32),
        DType::I32 => Ok(ArrayDataType::Int32),
        DType::F16 if target >= Target::IOS16 => Ok(ArrayDataType::Float16),
        DType::F16 => Err(format!(
            "{role} '{}' is fp16, which needs target iOS16 or later",
            var.name
        )),
        other => Err(format!(
            "{role} '{}' is {other}; model inputs and outputs must be fp32, fp16 or int32",
            var.name
        )),
    }
}

/// What a description adds to the program: user-defined metadata and the accepted shapes of
/// flexible inputs.
#[derive(Debug)]
pub struct Checked {
    /// User-defined metadata.
    pub metadata: BTreeMap<String, String>,
    /// Accepted shapes by input name, for inputs with shape flexibility.
    pub input_shapes: BTreeMap<String, ShapeSet>,
    /// Image inputs, classifier outputs and human-readable metadata.
    pub description: Description,
}

/// Checks that `description` matches `function` (a single-function model whose features are
/// all multi-arrays of the same names and dtypes; flexible inputs have symbolic dimensions
/// exactly where their accepted sizes vary) and returns what it adds to the program.
pub fn check(
    description: Option<&ModelDescription>,
    function: &Function,
    model_path: &Path,
) -> Result<Checked, Error> {
    let description = present(description, model_path)?;
    if !description.functions.is_empty() {
        return Err(Error::invalid(
            model_path,
            format!(
                "the description lists {} functions but the program has one",
                description.functions.len()
            ),
        ));
    }
    check_states(&description.state, function).map_err(|m| Error::invalid(model_path, m))?;
    let mut images = BTreeMap::new();
    let input_shapes = check_features(
        &description.input,
        &description.output,
        function,
        &mut images,
        model_path,
    )?;
    Ok(Checked {
        metadata: user_defined(description),
        input_shapes,
        description: model_info::read_description(description, function, images)
            .map_err(|m| Error::invalid(model_path, m))?,
    })
}

/// Checks a multifunction description against `program`'s functions: one
/// `FunctionDescription` per function, by name, each checked as [`check`] checks a
/// single-function model. Puts the default function first, records each function's accepted
/// input shapes and returns the user-defined metadata.
pub fn check_multifunction(
    description: &ModelDescription,
    program: &mut Program,
    model_path: &Path,
) -> Result<BTreeMap<String, String>, Error> {
    let invalid = |m: String| Error::invalid(model_path, m);
    if !description.input.is_empty()
        || !description.output.is_empty()
        || !description.state.is_empty()
    {
        return Err(invalid(
            "a multifunction description lists top-level inputs, outputs or states".into(),
        ));
    }
    let mut described: Vec<&str> = description
        .functions
        .iter()
        .map(|f| f.name.as_str())
        .collect();
    described.sort_unstable();
    let mut names = program.function_names();
    names.sort_unstable();
    if described != names {
        return Err(invalid(format!(
            "the description lists functions ({}) but the program has ({})",
            described.join(", "),
            names.join(", ")
        )));
    }
    let default = &description.default_function_name;
    let Some(first) = program.functions.iter().position(|f| f.name == *default) else {
        return Err(invalid(format!(
            "the default function '{default}' is not one of the functions ({})",
            names.join(", ")
        )));
    };
    program.functions[..=first].rotate_right(1);
    for function in &mut program.functions {
        let Some(d) = description
            .functions
            .iter()
            .find(|d| d.name == function.name)
        else {
            continue;
        };
        check_states(&d.state, function)
            .map_err(|m| invalid(format!("function '{}': {m}", d.name)))?;
        let mut images = BTreeMap::new();
        function.input_shapes =
            check_features(&d.input, &d.output, function, &mut images, model_path)
                .and_then(|shapes| match images.keys().next() {
                    Some(name) => Err(Error::Unsupported {
                        path: model_path.to_path_buf(),
                        message: format!("image input '{name}' in a multifunction model"),
                    }),
                    None => Ok(shapes),
                })
                .map_err(|e| match e {
                    Error::Invalid { path, message } => Error::Invalid {
                        path,
                        message: format!("function '{}': {message}", d.name),
                    },
                    Error::Unsupported { path, message } => Error::Unsupported {
                        path,
                        message: format!("function '{}': {message}", d.name),
                    },
                    other => other,
                })?;
    }
    Ok(user_defined(description))
}

/// The description, or the error for a model without one.
fn present<'a>(
    description: Option<&'a ModelDescription>,
    model_path: &Path,
) -> Result<&'a ModelDescription, Error> {
    description.ok_or_else(|| Error::invalid(model_path, "the model has no description"))
}

/// The user-defined metadata of `description`.
fn user_defined(description: &ModelDescription) -> BTreeMap<String, String> {
    description
        .metadata
        .as_ref()
        .map(|m| m.user_defined.clone())
        .unwrap_or_default()
}

/// Checks the features `inputs` and `outputs` against `function`'s inputs and outputs; returns
/// the accepted shapes of its flexible inputs and records its image inputs in `images`.
/// Classifier outputs are only checked for their kind here (see
/// [`model_info::read_description`]).
fn check_features(
    inputs: &[FeatureDescription],
    outputs: &[FeatureDescription],
    function: &Function,
    images: &mut BTreeMap<String, ColorLayout>,
    model_path: &Path,
) -> Result<BTreeMap<String, ShapeSet>, Error> {
    let invalid = |m: String| Error::invalid(model_path, m);
    let unsupported = |message: String| Error::Unsupported {
        path: model_path.to_path_buf(),
        message,
    };
    let function_outputs = function.outputs();
    let mut input_shapes = BTreeMap::new();
    for (role, features, vars) in [
        ("input", inputs, &function.inputs),
        ("output", outputs, &function_outputs),
    ] {
        if features.len() != vars.len() {
            return Err(invalid(format!(
                "the description lists {} {role}s but the function has {}",
                features.len(),
                vars.len()
            )));
        }
        for (feature, var) in features.iter().zip(vars.iter()) {
            if feature.name != var.name {
                return Err(invalid(format!(
                    "description {role} '{}' does not match function {role} '{}'",
                    feature.name, var.name
                )));
            }
            if let (Some(image), "input") = (model_info::image_type(feature), role) {
                let (layout, set) = model_info::read_image(image, var).map_err(&unsupported)?;
                images.insert(var.name.clone(), layout);
                if let Some(set) = set {
                    input_shapes.insert(var.name.clone(), set);
                }
                continue;
            }
            if role == "output"
                && feature
                    .r#type
                    .as_ref()
                    .is_some_and(|t| model_info::is_classifier_output(t, var))
            {
                continue;
            }
            let array = match feature.r#type.as_ref().and_then(|t| t.r#type.as_ref()) {
                Some(feature_type::Type::MultiArrayType(a)) => a,
                Some(other) => {
                    return Err(unsupported(format!(
                        "{role} '{}' is {}; only multi-array {role}s are supported",
                        feature.name,
                        feature_kind(other)
                    )))
                }
                None => return Err(invalid(format!("{role} '{}' has no type", feature.name))),
            };
            let dtype = match ArrayDataType::try_from(array.data_type) {
                Ok(ArrayDataType::Float32) => DType::F32,
                Ok(ArrayDataType::Float16) => DType::F16,
                Ok(ArrayDataType::Int32) => DType::I32,
                Ok(other) => {
                    return Err(unsupported(format!(
                        "{role} '{}' has array type {}",
                        feature.name,
                        other.as_str_name()
                    )))
                }
                Err(_) => {
                    return Err(invalid(format!(
                        "{role} '{}' has unknown array type {}",
                        feature.name, array.data_type
                    )))
                }
            };
            if dtype != var.ty.dtype {
                return Err(invalid(format!(
                    "{role} '{}' is {dtype} in the description but {} in the program",
                    feature.name, var.ty.dtype
                )));
            }
            if role == "input" {
                let set = shape_set(array)
                    .map_err(|m| invalid(format!("input '{}': {m}", feature.name)))?;
                check_input_shape(var, &array.shape, set.as_ref()).map_err(&invalid)?;
                if let Some(set) = set {
                    input_shapes.insert(var.name.clone(), set);
                }
            }
        }
    }
    Ok(input_shapes)
}

/// Checks a description input against the function input: each dimension is symbolic in the
/// program exactly where the accepted sizes vary, and fixed ones agree.
fn check_input_shape(var: &Var, shape: &[i64], set: Option<&ShapeSet>) -> Result<(), String> {
    let rank_ok = shape.len() == var.ty.rank() || (var.ty.rank() == 0 && shape == [1]);
    if !rank_ok {
        return Err(format!(
            "input '{}' has shape {shape:?} in the description but type {} in the program",
            var.name, var.ty
        ));
    }
    if var.ty.rank() == 0 {
        return Ok(());
    }
    for (i, d) in var.ty.shape.iter().enumerate() {
        let sizes: Vec<usize> = match set {
            None => vec![shape[i] as usize],
            Some(ShapeSet::Ranges(r)) if r[i].1 == Some(r[i].0) => vec![r[i].0],
            Some(ShapeSet::Ranges(_)) => Vec::new(),
            Some(ShapeSet::Enumerated(shapes)) => {
                let mut v: Vec<usize> = shapes.iter().map(|s| s[i]).collect();
                v.dedup();
                v
            }
        };
        let ok = match (d, sizes.as_slice()) {
            (Dim::Fixed(n), [m]) => n == m,
            (Dim::Fixed(_), _) => false,
            (Dim::Symbol(_), _) => true,
        };
        if !ok {
            return Err(format!(
                "input '{}' dimension {i} is {d} in the program, which the description's sizes do not match",
                var.name
            ));
        }
    }
    Ok(())
}

/// A human name for a non-array feature type.
fn feature_kind(t: &feature_type::Type) -> &'static str {
    match t {
        feature_type::Type::Int64Type(_) => "an int64 feature",
        feature_type::Type::DoubleType(_) => "a double feature",
        feature_type::Type::StringType(_) => "a string feature",
        feature_type::Type::ImageType(_) => "an image",
        feature_type::Type::MultiArrayType(_) => "a multi-array",
        feature_type::Type::DictionaryType(_) => "a dictionary",
        feature_type::Type::SequenceType(_) => "a sequence",
        feature_type::Type::StateType(_) => "a state",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{Block, Function, TensorType};

    fn program(target: Target, inputs: Vec<Var>) -> Program {
        let outputs = inputs.iter().map(|v| v.name.clone()).collect();
        Program {
            target,
            functions: vec![Function {
                name: "main".into(),
                inputs,
                states: Vec::new(),
                input_shapes: Default::default(),
                block: Block {
                    operations: vec![],
                    outputs,
                },
            }],
            metadata: BTreeMap::from([("k".to_string(), "v".to_string())]),
            description: Default::default(),
        }
    }

    fn array(f: &FeatureDescription) -> &ArrayFeatureType {
        match f.r#type.as_ref().and_then(|t| t.r#type.as_ref()) {
            Some(feature_type::Type::MultiArrayType(a)) => a,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn describes_inputs_outputs_and_metadata() {
        let x = Var::new("x", TensorType::fixed(DType::F16, &[1, 4]));
        let s = Var::new("s", TensorType::scalar(DType::I32));
        let d = describe(
            &program(Target::IOS16, vec![x, s]),
            Path::new("m.mlpackage"),
        )
        .unwrap();
        assert_eq!(
            (
                array(&d.input[0]).shape.as_slice(),
                array(&d.input[0]).data_type
            ),
            (&[1, 4][..], 65552)
        );
        assert_eq!(
            (
                array(&d.input[1]).shape.as_slice(),
                array(&d.input[1]).data_type
            ),
            (&[1][..], 131104)
        );
        assert_eq!(array(&d.output[0]).shape, [1, 4]);
        assert!(array(&d.output[1]).shape.is_empty());
        assert_eq!(d.metadata.unwrap().user_defined["k"], "v");
    }

    #[test]
    fn refuses_what_core_ml_cannot_express() {
        let dest = Path::new("m.mlpackage");
        let half = Var::new("h", TensorType::fixed(DType::F16, &[2]));
        let err = describe(&program(Target::IOS15, vec![half]), dest).unwrap_err();
        assert!(
            matches!(&err, Error::Unsupported { .. }) && err.to_string().contains("'h' is fp16"),
            "{err}"
        );
        let long = Var::new("n", TensorType::fixed(DType::I64, &[2]));
        let err = describe(&program(Target::IOS18, vec![long]), dest).unwrap_err();
        assert!(err.to_string().contains("input 'n' is int64"), "{err}");
        let flexible = Var::new(
            "x",
            TensorType {
                dtype: DType::F32,
                shape: vec![Dim::Symbol("batch".into())],
            },
        );
        let err = describe(&program(Target::IOS18, vec![flexible]), dest).unwrap_err();
        assert!(
            err.to_string().contains("symbolic dimension 'batch'"),
            "{err}"
        );
    }

    #[test]
    fn check_accepts_its_own_description_and_rejects_unreadable_images() {
        let p = program(
            Target::IOS15,
            vec![Var::new("x", TensorType::fixed(DType::F32, &[3]))],
        );
        let mut d = describe(&p, Path::new("m")).unwrap();
        assert_eq!(
            check(Some(&d), p.main(), Path::new("m")).unwrap().metadata["k"],
            "v"
        );
        d.input[0].r#type = Some(FeatureType {
            is_optional: false,
            r#type: Some(feature_type::Type::ImageType(Default::default())),
        });
        let err = check(Some(&d), p.main(), Path::new("m")).unwrap_err();
        assert!(
            matches!(&err, Error::Unsupported { .. })
                && err.to_string().contains("color space INVALID_COLOR_SPACE"),
            "{err}"
        );
    }
}
