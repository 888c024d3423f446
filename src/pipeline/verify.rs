//! `verify`: compare a candidate package against its source model (`.onnx`, run as the fp32
//! program straight from the frontend) or a reference package.

use super::chain::{is_chain, Chain};
use super::{read_package_function, ModelKind};
use crate::backend::read_package;
use crate::frontend::onnx::{
    self, DimSize, DimSummary, FrozenInput, InputShape, OnnxOptions, ShapeSpec,
};
use crate::frontend::torch::{self, TorchOptions};
use crate::image_file::{is_image_file, read_image};
use crate::ir::{sanitize_name, Program, ShapeSet};
use crate::passes::states::{make_states, StatePair, STATES_METADATA_KEY};
use crate::verify::{self, inputs, InputSpec, Side, VerifyError, VerifyOptions, VerifyReport};
use crate::Error;
use std::collections::BTreeMap;
use std::path::Path;

/// Verifies the package `candidate` (its default function; or a chain directory `split`
/// wrote, as its packages joined into one program) against `source`. With `npz`, the inputs
/// come from that archive instead of `options.inputs` (or, for a package whose only input is
/// an image, from that `.png`/`.jpg` file). A failed comparison is a report with
/// `passed == false`, not an error.
pub fn verify(
    source: &Path,
    candidate: &Path,
    npz: Option<&Path>,
    options: &VerifyOptions,
) -> Result<VerifyReport, Error> {
    verify_function(source, candidate, None, &[], npz, options)
}

/// Verifies function `function` of the package `candidate` (its default function when
/// `None`) as [`verify`] does. An ONNX source runs at that function's input shapes, with the
/// `frozen` inputs bound as the candidate was converted; a reference package contributes its
/// function of the same name, or its default one. A chain directory's packages have one
/// function each.
pub fn verify_function(
    source: &Path,
    candidate: &Path,
    function: Option<&str>,
    frozen: &[FrozenInput],
    npz: Option<&Path>,
    options: &VerifyOptions,
) -> Result<VerifyReport, Error> {
    let cand = if is_chain(candidate) {
        if let Some(name) = function {
            return Err(Error::Usage(format!(
                "--function {name}: {} is a chain of single-function packages",
                candidate.display()
            )));
        }
        Chain::read(candidate)?.join()?
    } else if ModelKind::of(candidate)? != ModelKind::Package {
        return Err(Error::Usage(format!(
            "{}: the candidate must be an .mlpackage or a chain directory",
            candidate.display()
        )));
    } else {
        read_package_function(candidate, function)?
    };
    let src = load_source(source, &cand, frozen)?;
    compare(&src, &cand, npz, options)?.map_err(|e| verify_error(e, source, candidate))
}

/// Compares the loaded programs `src` and `cand` as `verify` does, on the input set in the
/// archive `npz` when given (read for `cand`'s inputs), else on the inputs `options` say. An
/// unreadable archive is the outer error; a comparison that could not be carried out is the
/// inner one.
pub(super) fn compare(
    src: &Program,
    cand: &Program,
    npz: Option<&Path>,
    options: &VerifyOptions,
) -> Result<Result<VerifyReport, VerifyError>, Error> {
    let mut options = options.clone();
    if let Some(file) = npz {
        let sample = if is_image_file(file) {
            image_sample(file, cand)?
        } else {
            inputs::read_sample(file, cand.main())?
        };
        options.inputs = InputSpec::Given(vec![sample]);
    }
    Ok(verify::verify_programs(src, cand, &options))
}

/// The input set of a candidate whose only input is an image: that image file decoded.
fn image_sample(file: &Path, cand: &Program) -> Result<inputs::Sample, Error> {
    let main = cand.main();
    let image = match main.inputs.as_slice() {
        [var] => cand
            .description
            .images
            .get(&var.name)
            .map(|&layout| (var, layout)),
        _ => None,
    };
    let Some((var, layout)) = image else {
        return Err(Error::Usage(format!(
            "--inputs {}: an image file is the input of a package whose only input is an \
             image (give a .npz)",
            file.display()
        )));
    };
    let size = var.ty.static_shape().map(|s| (s[2], s[3]));
    let value = read_image(
        file,
        &var.name,
        layout,
        size,
        main.input_shapes.get(&var.name),
    )?;
    Ok(BTreeMap::from([(var.name.clone(), value)]))
}

/// The reference program: an ONNX model as the unoptimised fp32 program (dynamic input
/// dimensions take the candidate's sizes: fixed, or the same ranges or enumerations; the
/// `frozen` inputs bound), or a package as written (its function named like the candidate's,
/// or its default one). The inputs the candidate was converted with frozen must be `frozen`.
pub(super) fn load_source(
    source: &Path,
    candidate: &Program,
    frozen: &[FrozenInput],
) -> Result<Program, Error> {
    let target = candidate.target;
    check_frozen(candidate, frozen, source)?;
    let mut program = match ModelKind::of(source)? {
        ModelKind::Package => {
            let reference = read_package(source)?;
            let name = candidate.main().name.as_str();
            let same = reference.functions.iter().any(|f| f.name == name);
            return reference
                .select_function(same.then_some(name))
                .map_err(Error::Internal);
        }
        ModelKind::Onnx => {
            let summary = onnx::summarize(source)?;
            let input_shapes = summary
                .inputs
                .iter()
                .filter(|input| {
                    input
                        .dims
                        .as_ref()
                        .is_none_or(|d| d.iter().any(|d| !matches!(d, DimSummary::Fixed(_))))
                })
                .filter_map(|input| candidate_shape(candidate, &input.name))
                .collect();
            let dims = Vec::new();
            onnx::load(
                source,
                &OnnxOptions {
                    input_shapes,
                    dims,
                    frozen: frozen.to_vec(),
                    target,
                },
            )?
        }
        ModelKind::Pt2 if !frozen.is_empty() => {
            return Err(Error::Usage(format!(
                "--freeze {}: binding inputs to constants applies to ONNX models only ({} is a .pt2 archive)",
                frozen[0].name,
                source.display()
            )))
        }
        ModelKind::Pt2 => {
            let input_shapes = candidate
                .main()
                .inputs
                .iter()
                .filter_map(|var| candidate_shape(candidate, &var.name))
                .collect();
            let dims = Vec::new();
            torch::load(
                source,
                &TorchOptions {
                    input_shapes,
                    dims,
                    target,
                },
            )?
        }
    };
    pair_states(&mut program, candidate, source)?;
    Ok(program)
}

/// Refuses to load the source without the inputs the candidate was converted with frozen
/// (listed in its metadata under [`onnx::FROZEN_METADATA_KEY`]): the source would ask for
/// inputs the candidate does not have.
fn check_frozen(candidate: &Program, frozen: &[FrozenInput], source: &Path) -> Result<(), Error> {
    let recorded = candidate.metadata.get(onnx::FROZEN_METADATA_KEY);
    let missing: Vec<&str> = recorded
        .into_iter()
        .flat_map(|names| names.split(','))
        .filter(|name| {
            !frozen
                .iter()
                .any(|f| f.name == *name || sanitize_name(name) == f.name)
        })
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(Error::Usage(format!(
        "the candidate was converted with input(s) {} of {} frozen; give the same --freeze NAME=FILE.npy flags",
        missing.join(", "),
        source.display()
    )))
}

/// The shapes the candidate accepts for the source input `name` (the candidate's input is
/// its sanitized name): its flexible shapes, or its static shape; None when it has no such
/// input.
fn candidate_shape(candidate: &Program, name: &str) -> Option<InputShape> {
    let main = candidate.main();
    let var_name = sanitize_name(name);
    let var = main.inputs.iter().find(|v| v.name == var_name)?;
    let shape = match (main.input_shapes.get(&var_name), var.ty.static_shape()) {
        (Some(set), _) => shape_spec(set),
        (None, Some(shape)) => InputShape::fixed(name, &shape).shape,
        (None, None) => return None,
    };
    Some(InputShape {
        name: name.to_string(),
        shape,
    })
}

/// Makes the ONNX source stateful like the candidate, with the pairs recorded in the
/// candidate's metadata when it was converted.
fn pair_states(program: &mut Program, candidate: &Program, source: &Path) -> Result<(), Error> {
    if candidate.main().states.is_empty() {
        return Ok(());
    }
    let pairs = candidate
        .metadata
        .get(STATES_METADATA_KEY)
        .and_then(|text| StatePair::parse_list(text))
        .ok_or_else(|| {
            Error::Usage(format!(
                "the candidate has states but no '{STATES_METADATA_KEY}' metadata saying which \
                 outputs of {} update them; compare against a reference package instead",
                source.display()
            ))
        })?;
    make_states(program.main_mut(), &pairs).map_err(|m| Error::invalid(source, m))
}

/// The `--input-shape` form of the shapes a package input accepts.
fn shape_spec(set: &ShapeSet) -> ShapeSpec {
    match set {
        ShapeSet::Ranges(r) => ShapeSpec::Dims(
            r.iter()
                .map(|&(lo, hi)| match hi {
                    Some(hi) if hi == lo => DimSize::Fixed(lo),
                    _ => DimSize::Range(lo, hi),
                })
                .collect(),
        ),
        ShapeSet::Enumerated(shapes) => ShapeSpec::Enumerated(shapes.clone()),
    }
}

/// The crate error for a verification that could not be carried out.
pub fn verify_error(e: VerifyError, source: &Path, candidate: &Path) -> Error {
    match e {
        VerifyError::Signature(m) => Error::invalid(
            candidate,
            format!("does not match {}: {m}", source.display()),
        ),
        VerifyError::Inputs(m) => Error::Usage(m),
        VerifyError::Run {
            side: Side::Source,
            error,
        } => Error::invalid(source, error.to_string()),
        VerifyError::Run {
            side: Side::Candidate,
            error,
        } => Error::invalid(candidate, error.to_string()),
    }
}
