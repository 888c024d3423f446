//! `convert --function`: one package holding several functions (a Core ML multifunction model,
//! iOS18), each the source model converted at its own input shapes. The functions' identical
//! weights are stored once (the blob writer stores equal contents once).

use super::convert::{build, check_output, ConvertOptions, ConvertReport, InputShapes};
use super::ModelKind;
use crate::backend::write_package;
use crate::frontend::onnx::{self, InputShape};
use crate::frontend::torch;
use crate::ir::{sanitize_name, Program, Target};
use crate::Error;
use serde::Serialize;
use std::path::PathBuf;
use std::str::FromStr;

/// `--function NAME:INPUT=SHAPE[,INPUT=SHAPE…]`: a function of the package and the shapes of
/// the source inputs it is converted at (each shape as `--input-shape` takes it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FunctionSpec {
    /// Function name, a MIL identifier.
    pub name: String,
    /// Shapes by source input name.
    pub inputs: Vec<InputShape>,
}

impl FromStr for FunctionSpec {
    type Err = String;

    /// Splits the shapes at each comma followed by `INPUT=`, so `ids=1,8,mask=1,8` is two.
    fn from_str(s: &str) -> Result<FunctionSpec, String> {
        let (name, shapes) = s
            .split_once(':')
            .ok_or_else(|| format!("expected NAME:INPUT=SHAPE[,INPUT=SHAPE...], got '{s}'"))?;
        if name.is_empty() || sanitize_name(name) != name {
            return Err(format!(
                "function name '{name}' is not an identifier ([A-Za-z_][A-Za-z0-9_]*)"
            ));
        }
        let mut groups: Vec<String> = Vec::new();
        for piece in shapes.split(',') {
            match groups.last_mut() {
                Some(group) if !piece.contains('=') => {
                    group.push(',');
                    group.push_str(piece);
                }
                _ => groups.push(piece.to_string()),
            }
        }
        let inputs = groups
            .iter()
            .map(|g| g.parse::<InputShape>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("function '{name}': {e}"))?;
        if let Some(twice) = inputs
            .iter()
            .enumerate()
            .find(|(i, a)| inputs[..*i].iter().any(|b| b.name == a.name))
        {
            return Err(format!(
                "function '{name}' gives input '{}' twice",
                twice.1.name
            ));
        }
        Ok(FunctionSpec {
            name: name.to_string(),
            inputs,
        })
    }
}

/// What converting one function did.
#[derive(Clone, Debug, Serialize)]
pub struct FunctionReport {
    /// Function name.
    pub name: String,
    /// Its conversion, as `convert` reports a single-function package.
    #[serde(flatten)]
    pub report: ConvertReport,
}

/// What `convert --function` did.
#[derive(Clone, Debug, Serialize)]
pub struct MultifunctionReport {
    /// Written package.
    pub output: PathBuf,
    /// The function Core ML runs when none is named.
    pub default_function: String,
    /// Each function, the default first.
    pub functions: Vec<FunctionReport>,
}

/// Converts the ONNX model `options.input` once per function of `functions` and writes one
/// package holding them all, `default` (or the first) as its default function.
///
/// `options.input_shapes` apply to every function; a function's own shape for an input
/// replaces an `--input-shape` of the same input. Each function is fused, set to
/// `options.precision` and verified against the source at its own shapes.
pub fn convert_functions(
    options: &ConvertOptions,
    functions: &[FunctionSpec],
    default: Option<&str>,
) -> Result<MultifunctionReport, Error> {
    if options.target < Target::IOS18 {
        return Err(Error::Usage(format!(
            "--function makes a multifunction model, which needs --target iOS18 or later (got {})",
            options.target
        )));
    }
    if !ModelKind::of(&options.input)?.is_source() {
        return Err(Error::Usage(format!(
            "{}: --function converts ONNX and .pt2 models only",
            options.input.display()
        )));
    }
    if options.describe.changes_program() {
        return Err(Error::Usage(
            "--image-input and --class-labels need a single-function model (no --function)".into(),
        ));
    }
    let ordered = order(functions, default)?;
    check_output(&options.read_paths(), &options.output, options.force)?;
    check_input_names(options, functions)?;
    let mut program: Option<Program> = None;
    let mut reports = Vec::with_capacity(ordered.len());
    for spec in ordered {
        let built = build(options, &shapes_of(&options.input_shapes, spec))
            .map_err(|e| in_function(e, &spec.name))?;
        reports.push(FunctionReport {
            name: spec.name.clone(),
            report: built.report(options),
        });
        let mut function = built.program.functions.into_iter().next().ok_or_else(|| {
            Error::Internal(format!("function '{}' converted to nothing", spec.name))
        })?;
        function.name = spec.name.clone();
        match &mut program {
            None => {
                program = Some(Program {
                    functions: vec![function],
                    ..built.program
                })
            }
            Some(p) => p.functions.push(function),
        }
    }
    let program = program.ok_or_else(|| Error::Usage("no --function given".into()))?;
    write_package(&program, &options.output, options.force)?;
    Ok(MultifunctionReport {
        output: options.output.clone(),
        default_function: program.main().name.clone(),
        functions: reports,
    })
}

/// The specs with `default` (or the first) first; names must be unique and `default` one of
/// them.
fn order<'a>(
    functions: &'a [FunctionSpec],
    default: Option<&str>,
) -> Result<Vec<&'a FunctionSpec>, Error> {
    for (i, f) in functions.iter().enumerate() {
        if functions[..i].iter().any(|g| g.name == f.name) {
            return Err(Error::Usage(format!(
                "--function {}: two functions have this name",
                f.name
            )));
        }
    }
    let mut ordered: Vec<&FunctionSpec> = functions.iter().collect();
    if let Some(default) = default {
        let Some(i) = functions.iter().position(|f| f.name == default) else {
            let names: Vec<&str> = functions.iter().map(|f| f.name.as_str()).collect();
            return Err(Error::Usage(format!(
                "--default-function {default}: not one of the functions ({})",
                names.join(", ")
            )));
        };
        ordered[..=i].rotate_right(1);
    }
    Ok(ordered)
}

/// Fails naming every function input that is not an input of the source model.
fn check_input_names(options: &ConvertOptions, functions: &[FunctionSpec]) -> Result<(), Error> {
    let names: Vec<String> = match ModelKind::of(&options.input)? {
        ModelKind::Pt2 => torch::summarize(&options.input)?.inputs,
        _ => onnx::summarize(&options.input)?
            .inputs
            .into_iter()
            .map(|i| i.name)
            .collect(),
    };
    let known: Vec<&str> = names.iter().map(String::as_str).collect();
    let unknown: Vec<String> = functions
        .iter()
        .flat_map(|f| {
            f.inputs
                .iter()
                .filter(|s| {
                    !known
                        .iter()
                        .any(|k| *k == s.name || sanitize_name(k) == s.name)
                })
                .map(move |s| format!("'{}' (function {})", s.name, f.name))
        })
        .collect();
    if unknown.is_empty() {
        return Ok(());
    }
    Err(Error::Usage(format!(
        "--function names inputs the model does not have: {} (inputs: {})",
        unknown.join(", "),
        known.join(", ")
    )))
}

/// The shapes one function is converted at: the global ones, with the function's own
/// replacing global `--input-shape`s of the same inputs.
fn shapes_of(global: &InputShapes, spec: &FunctionSpec) -> InputShapes {
    let mut inputs: Vec<InputShape> = global
        .inputs
        .iter()
        .filter(|g| !spec.inputs.iter().any(|s| s.name == g.name))
        .cloned()
        .collect();
    inputs.extend(spec.inputs.iter().cloned());
    InputShapes {
        inputs,
        dims: global.dims.clone(),
        frozen: global.frozen.clone(),
    }
}

/// `error` with the function it concerns named.
fn in_function(error: Error, name: &str) -> Error {
    let prefix = |m: String| format!("function '{name}': {m}");
    match error {
        Error::Usage(m) => Error::Usage(prefix(m)),
        Error::VerificationFailed(m) => Error::VerificationFailed(prefix(m)),
        Error::Invalid { path, message } => Error::Invalid {
            path,
            message: prefix(message),
        },
        Error::Unsupported { path, message } => Error::Unsupported {
            path,
            message: prefix(message),
        },
        Error::NeedsConstant {
            path,
            message,
            inputs,
        } => Error::NeedsConstant {
            path,
            message: prefix(message),
            inputs,
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_function_specs() {
        let spec: FunctionSpec = "prefill:ids=1,128,mask=1,128".parse().unwrap();
        assert_eq!(spec.name, "prefill");
        assert_eq!(
            spec.inputs,
            [
                InputShape::fixed("ids", &[1, 128]),
                InputShape::fixed("mask", &[1, 128])
            ]
        );
        let spec: FunctionSpec = "short:ids=1,8|1,16".parse().unwrap();
        assert_eq!(spec.inputs, ["ids=1,8|1,16".parse::<InputShape>().unwrap()]);
        let err = |s: &str| s.parse::<FunctionSpec>().unwrap_err();
        assert!(err("ids=1,8").contains("expected NAME:INPUT=SHAPE"));
        assert!(err("pre-fill:ids=1,8").contains("'pre-fill' is not an identifier"));
        assert!(err("9a:ids=1,8").contains("not an identifier"));
        assert!(err("f:1,8").contains("function 'f'"));
        assert!(err("f:ids=1,0").contains("'0'"));
        assert!(err("f:ids=1,2,ids=1,3").contains("gives input 'ids' twice"));
    }

    #[test]
    fn orders_the_default_function_first() {
        let specs: Vec<FunctionSpec> = ["a:x=1", "b:x=2", "c:x=3"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let names = |d| {
            order(&specs, d)
                .unwrap()
                .iter()
                .map(|f| f.name.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(names(None), ["a", "b", "c"]);
        assert_eq!(names(Some("c")), ["c", "a", "b"]);
        let err = order(&specs, Some("d")).unwrap_err().to_string();
        assert!(
            err.contains("--default-function d") && err.contains("(a, b, c)"),
            "{err}"
        );
        let twice = [specs[0].clone(), specs[0].clone()];
        assert!(order(&twice, None)
            .unwrap_err()
            .to_string()
            .contains("two functions"));
    }

    #[test]
    fn function_shapes_replace_global_input_shapes_and_keep_dims() {
        let global = InputShapes {
            inputs: vec![
                InputShape::fixed("ids", &[1, 4]),
                InputShape::fixed("mask", &[1, 4]),
            ],
            dims: vec!["batch=1".parse().unwrap()],
            frozen: Vec::new(),
        };
        let spec: FunctionSpec = "f:ids=1,8".parse().unwrap();
        let shapes = shapes_of(&global, &spec);
        assert_eq!(
            shapes.inputs,
            [
                InputShape::fixed("mask", &[1, 4]),
                InputShape::fixed("ids", &[1, 8])
            ]
        );
        assert_eq!(shapes.dims, global.dims);
    }
}
