//! Reading an `.mlpackage` back into a program. Large constants borrow the memory-mapped
//! weight file.

use super::blob::BlobFile;
use super::value::{
    decode_immediate, decode_list, dictionary_key, state_tensor_type, static_shape, tensor_type,
};
use super::{description, manifest, MODEL_PATH_PREFIX};
use crate::ir::{
    ops, validate_program, Argument, Block, DType, Function, Operation, Program, Target, Tensor,
    TensorType, Var,
};
use crate::proto::coreml::mil_spec as mil;
use crate::proto::coreml::{model, Model};
use crate::{input_file, Error};
use bytes::Bytes;
use prost::Message;
use std::collections::btree_map::{BTreeMap, Entry};
use std::fs;
use std::path::{Component, Path, PathBuf};

/// Reads the `.mlpackage` directory at `path`.
///
/// Constants stored in weight.bin as fp16/fp32/(u)int8/(u)int16/(u)int32 borrow slices of the
/// memory-mapped file; sub-byte constants are unpacked. Program-level attributes (such as
/// coremltools' `buildInfo`) and metadata other than `userDefined` are not kept. Every error
/// names the file concerned; the program read is validated (a failure is
/// [`Error::Invalid`]).
pub fn read_package(path: &Path) -> Result<Program, Error> {
    let meta = fs::metadata(path).map_err(|e| Error::io(path, e))?;
    if !meta.is_dir() {
        return Err(Error::invalid(
            path,
            "not a directory (an .mlpackage is a directory)",
        ));
    }
    let manifest_path = path.join("Manifest.json");
    input_file::check_inside(path, &manifest_path)
        .map_err(|m| Error::invalid(&manifest_path, m))?;
    let model_path = path
        .join("Data")
        .join(manifest::root_model_path(&manifest_path)?);
    input_file::check_inside(path, &model_path).map_err(|m| Error::invalid(&model_path, m))?;
    let bytes = input_file::read(&model_path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => {
            Error::invalid(&model_path, "missing (Manifest.json names it as the model)")
        }
        _ => input_file::error(&model_path, e),
    })?;
    let model = Model::decode(Bytes::from(bytes)).map_err(|e| {
        Error::invalid(
            &model_path,
            format!("not a Core ML model specification: {e}"),
        )
    })?;
    let model_dir = model_path.parent().unwrap_or(path).to_path_buf();
    let mut reader = Reader {
        package: path,
        model_path: &model_path,
        model_dir,
        weights: BTreeMap::new(),
    };
    let mut program = reader.program(&model)?;
    unknown_ops(&program).map_err(|message| Error::Unsupported {
        path: model_path.clone(),
        message,
    })?;
    validate_program(&program).map_err(|e| Error::invalid(&model_path, e.to_string()))?;
    match model.description.as_ref() {
        Some(d) if !d.functions.is_empty() => {
            program.metadata = description::check_multifunction(d, &mut program, &model_path)?;
        }
        d => {
            if program.functions.len() != 1 {
                return Err(Error::invalid(
                    &model_path,
                    format!(
                        "the program has {} functions ({}) but the description lists none",
                        program.functions.len(),
                        program.function_names().join(", ")
                    ),
                ));
            }
            let checked = description::check(d, program.main(), &model_path)?;
            program.metadata = checked.metadata;
            program.main_mut().input_shapes = checked.input_shapes;
            program.description = checked.description;
        }
    }
    Ok(program)
}

/// Fails with a message listing every op type the registry does not know, with counts.
fn unknown_ops(program: &Program) -> Result<(), String> {
    let mut unknown: BTreeMap<&str, usize> = BTreeMap::new();
    for op in program.functions.iter().flat_map(|f| &f.block.operations) {
        if op.op_type != "const" && ops::lookup(&op.op_type).is_none() {
            *unknown.entry(&op.op_type).or_default() += 1;
        }
    }
    if unknown.is_empty() {
        return Ok(());
    }
    let list: Vec<String> = unknown.iter().map(|(t, n)| format!("{t} ({n})")).collect();
    Err(format!(
        "op types mlpack does not support: {}",
        list.join(", ")
    ))
}

/// The IR type of a `classify` op's probabilities output (MIL's `dict<class, fp64>`): an fp64
/// vector with one element per class (the validator checks the rest).
fn classify_probabilities_type(inputs: &[(String, Vec<Argument>)]) -> TensorType {
    let classes = inputs
        .iter()
        .find(|(p, _)| p == "classes")
        .and_then(|(_, a)| match a.first() {
            Some(Argument::Value(t)) => Some(t.len()),
            _ => None,
        })
        .unwrap_or(0);
    TensorType::fixed(DType::F64, &[classes])
}

/// Decoding state: the model file (for messages) and the weight files opened so far.
struct Reader<'a> {
    /// The package folder, which every file read must resolve inside.
    package: &'a Path,
    model_path: &'a Path,
    /// The directory `@model_path` refers to.
    model_dir: PathBuf,
    /// Weight files by path relative to `model_dir`, each mapped once.
    weights: BTreeMap<String, BlobFile>,
}

impl Reader<'_> {
    fn invalid(&self, message: String) -> Error {
        Error::invalid(self.model_path, message)
    }

    fn unsupported(&self, message: String) -> Error {
        Error::Unsupported {
            path: self.model_path.to_path_buf(),
            message,
        }
    }

    /// The program of `model`, without its metadata (see [`description::check`]).
    fn program(&mut self, model: &Model) -> Result<Program, Error> {
        let version = model.specification_version;
        let target = Target::ALL
            .into_iter()
            .find(|t| t.spec_version() == version)
            .ok_or_else(|| {
                self.unsupported(format!(
                    "specification version {version} is not supported (mlpack reads 6 to 9)"
                ))
            })?;
        let Some(model::Type::MlProgram(program)) = &model.r#type else {
            return Err(self.unsupported(
                "not an ML Program (neural networks and other model types are not supported)"
                    .into(),
            ));
        };
        if program.functions.is_empty() {
            return Err(self.invalid("the program has no functions".into()));
        }
        let functions = program
            .functions
            .iter()
            .map(|(name, function)| self.function(name, function, target))
            .collect::<Result<_, _>>()?;
        Ok(Program {
            target,
            functions,
            metadata: BTreeMap::new(),
            description: Default::default(),
        })
    }

    /// The MIL function `name` of a program for `target`.
    fn function(
        &mut self,
        name: &str,
        function: &mil::Function,
        target: Target,
    ) -> Result<Function, Error> {
        let version = target.spec_version();
        if function.opset != target.opset() {
            return Err(self.invalid(format!(
                "function '{name}' uses opset '{}', but specification version {version} means '{}'",
                function.opset,
                target.opset()
            )));
        }
        if function.block_specializations.len() != 1 {
            return Err(self.unsupported(format!(
                "function '{name}' has {} block specializations; exactly one is supported",
                function.block_specializations.len()
            )));
        }
        let block = function
            .block_specializations
            .get(&function.opset)
            .ok_or_else(|| {
                self.invalid(format!(
                    "function '{name}' has no block for opset '{}'",
                    function.opset
                ))
            })?;
        if !block.inputs.is_empty() {
            return Err(self.invalid(format!(
                "the body of function '{name}' declares block inputs"
            )));
        }
        let (mut inputs, mut states) = (Vec::new(), Vec::new());
        for v in &function.inputs {
            let context = format!("function '{name}' input");
            match state_tensor_type(v.r#type.as_ref(), &v.name) {
                Some(ty) => states.push(Var::new(
                    v.name.clone(),
                    ty.map_err(|p| p.at(self.model_path, &format!("{context} '{}'", v.name)))?,
                )),
                None => inputs.push(self.var(v, &context)?),
            }
        }
        let operations = block
            .operations
            .iter()
            .map(|op| self.operation(op))
            .collect::<Result<_, _>>()?;
        Ok(Function {
            name: name.to_string(),
            inputs,
            states,
            input_shapes: Default::default(),
            block: Block {
                operations,
                outputs: block.outputs.clone(),
            },
        })
    }

    /// A typed variable; `context` says where it is declared.
    fn var(&self, v: &mil::NamedValueType, context: &str) -> Result<Var, Error> {
        let ty = tensor_type(v.r#type.as_ref(), &v.name)
            .map_err(|p| p.at(self.model_path, &format!("{context} '{}'", v.name)))?;
        Ok(Var::new(v.name.clone(), ty))
    }

    fn operation(&mut self, op: &mil::Operation) -> Result<Operation, Error> {
        let op_type = &op.r#type;
        let name = match op.attributes.get("name") {
            Some(v) => self
                .value(v, &format!("'{op_type}' op's name"))?
                .as_string()
                .map(str::to_string),
            None => None,
        }
        .ok_or_else(|| {
            self.invalid(format!(
                "an op of type '{op_type}' has no string 'name' attribute"
            ))
        })?;
        let context = format!("op '{name}' ({op_type})");
        if !op.blocks.is_empty() {
            return Err(self.unsupported(format!(
                "{context}: nested blocks (control flow) are not supported"
            )));
        }
        let mut attributes = BTreeMap::new();
        for (key, value) in op.attributes.iter().filter(|(k, _)| *k != "name") {
            attributes.insert(
                key.clone(),
                self.value(value, &format!("{context}: attribute '{key}'"))?,
            );
        }
        let mut inputs = Vec::with_capacity(op.inputs.len());
        for (param, argument) in &op.inputs {
            let args =
                argument
                    .arguments
                    .iter()
                    .map(|binding| match &binding.binding {
                        Some(mil::argument::binding::Binding::Name(var)) => {
                            Ok(Argument::Var(var.clone()))
                        }
                        Some(mil::argument::binding::Binding::Value(v)) => Ok(Argument::Value(
                            self.value(v, &format!("{context}: input '{param}'"))?,
                        )),
                        None => Err(self
                            .invalid(format!("{context}: input '{param}' has an empty binding"))),
                    })
                    .collect::<Result<_, _>>()?;
            inputs.push((param.clone(), args));
        }
        // Parameters in the registry's order; unknown ones (rejected by validation) last.
        let def = ops::lookup(op_type);
        inputs.sort_by_key(|(p, _)| {
            def.and_then(|d| d.params.iter().position(|q| q.name == p))
                .unwrap_or(usize::MAX)
        });
        let outputs = op
            .outputs
            .iter()
            .map(|v| match dictionary_key(v.r#type.as_ref()) {
                Some(_) if op_type == "classify" => Ok(Var::new(
                    v.name.clone(),
                    classify_probabilities_type(&inputs),
                )),
                _ => self.var(v, &format!("{context}: output")),
            })
            .collect::<Result<_, _>>()?;
        Ok(Operation {
            op_type: op_type.clone(),
            name,
            inputs,
            outputs,
            attributes,
            origin: None,
        })
    }

    /// A constant, immediate or from a weight file; `context` names it in errors.
    fn value(&mut self, v: &mil::Value, context: &str) -> Result<Tensor, Error> {
        if let Some(list) = decode_list(v) {
            return list.map_err(|p| p.at(self.model_path, context));
        }
        let ty =
            tensor_type(v.r#type.as_ref(), "value").map_err(|p| p.at(self.model_path, context))?;
        let shape = static_shape(&ty).map_err(|p| p.at(self.model_path, context))?;
        match &v.value {
            Some(mil::value::Value::ImmediateValue(imm)) => {
                decode_immediate(imm, ty.dtype, &shape).map_err(|p| p.at(self.model_path, context))
            }
            Some(mil::value::Value::BlobFileValue(blob)) => self
                .blob_file(&blob.file_name, context)?
                .tensor(blob.offset, ty.dtype, &shape, context),
            None => Err(self.invalid(format!("{context}: the value is empty"))),
        }
    }

    /// The weight file called `file_name` (`@model_path/…`), mapped on first use.
    fn blob_file(&mut self, file_name: &str, context: &str) -> Result<&BlobFile, Error> {
        let relative = file_name
            .strip_prefix(MODEL_PATH_PREFIX)
            .filter(|r| {
                Path::new(r)
                    .components()
                    .all(|c| matches!(c, Component::Normal(_)))
            })
            .ok_or_else(|| {
                self.invalid(format!(
                    "{context}: weight file '{file_name}' is not inside the package"
                ))
            })?;
        Ok(match self.weights.entry(relative.to_string()) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => {
                let path = self.model_dir.join(relative);
                input_file::check_inside(self.package, &path)
                    .map_err(|m| Error::invalid(&path, m))?;
                e.insert(BlobFile::open(&path)?)
            }
        })
    }
}
