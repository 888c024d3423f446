//! A plan variant as a command line of the command it names: each key is checked against
//! that command's long flags (clap introspection), the variant becomes an argument list
//! (`true` a bare flag, a scalar a value, a list a repeated flag) and the command's own flag
//! parser reads it. Flags added to a command are thereby plan keys too.

use crate::cli::{Cli, Command};
use crate::pipeline::batch::{Item, ItemOutcome, Plan, Variant, VariantSpec};
use crate::pipeline::{self, CompressOptions};
use crate::verify::{Verdict, VerifyReport};
use crate::Error;
use clap::error::{ContextKind, ContextValue};
use clap::{Arg, ArgAction, Parser};
use serde_json::Value;
use std::any::TypeId;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The commands a variant may run.
pub const COMMANDS: [&str; 5] = ["convert", "palettize", "quantize", "prune", "compress"];

/// Flags that are not plan keys, and why: batch chooses each item's input and output,
/// replaces outputs, and writes its own report.
const NOT_PLAN_KEYS: [(&str, &str); 6] = [
    ("input", "the plan's models are the inputs"),
    (
        "output",
        "outputs are <out-dir>/<model stem>/<variant>.mlpackage",
    ),
    ("force", "batch replaces its outputs"),
    ("json", "see batch --json"),
    ("report", "see batch --report"),
    ("help", "not a setting"),
];

/// A variant checked and parsed by its command's flag parser.
pub struct ParsedVariant {
    /// What the batch driver needs of it.
    pub variant: Variant,
    /// The parsed flags (input and output are placeholders, set per item).
    command: Command,
}

/// The flags of `command` a variant may set.
pub fn plan_flags(command: &clap::Command) -> impl Iterator<Item = &Arg> {
    command.get_arguments().filter(|a| {
        a.get_long()
            .is_some_and(|l| !NOT_PLAN_KEYS.iter().any(|(k, _)| *k == l))
            && !a.is_positional()
            && !a.is_global_set()
    })
}

/// True when `arg` takes a file or folder path (resolved relative to the plan, and hashed
/// into the cache key).
pub fn takes_path(arg: &Arg) -> bool {
    arg.get_value_parser().type_id() == TypeId::of::<PathBuf>()
}

/// Checks and parses the variant `name` of `plan`; `cli` is the whole command line
/// definition. A problem is invalid input naming the JSON path of the key.
pub fn parse(
    plan: &Plan,
    name: &str,
    spec: &VariantSpec,
    cli: &clap::Command,
) -> Result<ParsedVariant, Error> {
    let at =
        |key: &str, m: String| Error::invalid(&plan.path, format!("variants.{name}{key}: {m}"));
    let command = spec.command.as_str();
    let Some(sub) = COMMANDS
        .contains(&command)
        .then(|| cli.find_subcommand(command))
        .flatten()
    else {
        return Err(at(
            ".command",
            format!("'{command}' is not one of {}", COMMANDS.join(", ")),
        ));
    };
    let mut argv = vec![
        "mlpack".to_string(),
        command.to_string(),
        "model.onnx".to_string(),
        "-o".to_string(),
        "output.mlpackage".to_string(),
    ];
    let mut settings: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut written: BTreeMap<String, &str> = BTreeMap::new();
    let mut inputs = Vec::new();
    for (key, value) in &spec.settings {
        let long = key.replace('_', "-");
        let field = format!(".{key}");
        let Some(arg) = plan_flags(sub).find(|a| a.get_long() == Some(long.as_str())) else {
            let why = NOT_PLAN_KEYS
                .iter()
                .find(|(k, _)| *k == long)
                .map(|(_, why)| why);
            return Err(at(
                &field,
                match why {
                    Some(why) => format!("not a plan key ({why})"),
                    None => format!("unknown key for {command}"),
                },
            ));
        };
        if let Some(first) = written.insert(long.clone(), key) {
            return Err(at(&field, format!("the same flag as '{first}'")));
        }
        let values = values(arg, value).map_err(|m| at(&field, m))?;
        for v in &values {
            match v {
                None => argv.push(format!("--{long}")),
                Some(v) if takes_path(arg) => {
                    let path = plan.dir.join(v);
                    argv.push(format!("--{long}={}", path.display()));
                    inputs.push(path);
                }
                Some(v) => argv.push(format!("--{long}={v}")),
            }
        }
        if !values.is_empty() {
            let shown = values
                .into_iter()
                .map(|v| v.unwrap_or_else(|| "true".into()));
            settings.insert(long, shown.collect());
        }
    }
    let parsed = Cli::try_parse_from(&argv).map_err(|e| {
        let key = flag_of(&e)
            .and_then(|long| written.get(&long).map(|k| format!(".{k}")))
            .unwrap_or_default();
        at(&key, clap_message(&e))
    })?;
    let parsed = ParsedVariant {
        variant: Variant {
            name: name.to_string(),
            command: command.to_string(),
            settings: serde_json::to_string(&settings)
                .map_err(|e| Error::Internal(e.to_string()))?,
            inputs,
        },
        command: parsed.command,
    };
    // Settings the flag parser cannot judge (a target name, a recipe file) fail here, once.
    parsed.check().map_err(|e| at("", e.to_string()))?;
    Ok(parsed)
}

/// The values of `value` for `arg`: `None` for a bare flag, none for `false`.
fn values(arg: &Arg, value: &Value) -> Result<Vec<Option<String>>, String> {
    let scalar = |v: &Value| match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        _ => Err("expected a string or a number".to_string()),
    };
    match (arg.get_action(), value) {
        (ArgAction::SetTrue, Value::Bool(true)) => Ok(vec![None]),
        (ArgAction::SetTrue, Value::Bool(false)) => Ok(Vec::new()),
        (ArgAction::SetTrue, _) => Err("a switch: expected true or false".into()),
        (ArgAction::Append, Value::Array(list)) => {
            list.iter().map(|v| scalar(v).map(Some)).collect()
        }
        (_, Value::Array(_)) => Err("takes one value, not a list".into()),
        (_, v) => Ok(vec![Some(scalar(v)?)]),
    }
}

/// The long name of the flag a clap error is about, if it names one.
fn flag_of(e: &clap::Error) -> Option<String> {
    match e.get(ContextKind::InvalidArg)? {
        ContextValue::String(s) => {
            let long = s.strip_prefix("--")?;
            Some(long.split([' ', '=']).next()?.to_string())
        }
        _ => None,
    }
}

/// Clap's message on one line, without its `error:` prefix and usage tail.
fn clap_message(e: &clap::Error) -> String {
    let rendered = e.render().to_string();
    let lines: Vec<&str> = rendered
        .lines()
        .map(str::trim)
        .take_while(|l| !l.is_empty())
        .collect();
    let message = lines.join(" ");
    message
        .strip_prefix("error: ")
        .unwrap_or(&message)
        .to_string()
}

impl ParsedVariant {
    /// Builds the library options once, so that what only they check fails before any item.
    fn check(&self) -> Result<(), Error> {
        match &self.command {
            Command::Convert(args) => args.options().map(drop),
            Command::Palettize(args) => args.options().map(drop),
            Command::Quantize(args) => args.options().map(drop),
            Command::Prune(args) => args.options().map(drop),
            Command::Compress(args) => args.options().map(drop),
            _ => Err(Error::Internal("not a batch command".into())),
        }
    }

    /// Makes `item`: the command on its model, written (replacing) to its output.
    pub fn run(&self, item: &Item) -> Result<ItemOutcome, Error> {
        let compress = match &self.command {
            Command::Convert(args) => {
                let mut options = args.options()?;
                options.input = item.model.path.clone();
                options.output = item.output.clone();
                options.force = true;
                return match args.functions() {
                    ([], _) => {
                        let report = pipeline::convert(&options)?;
                        let mut warnings = report.warnings;
                        warnings.extend(report.verify.as_ref().and_then(written_anyway));
                        Ok(ItemOutcome {
                            verify: json(&report.verify)?,
                            warnings,
                        })
                    }
                    (specs, default) => {
                        let report = pipeline::convert_functions(&options, specs, default)?;
                        let verify: BTreeMap<&str, &Option<VerifyReport>> = report
                            .functions
                            .iter()
                            .map(|f| (f.name.as_str(), &f.report.verify))
                            .collect();
                        let mut warnings: Vec<String> = report
                            .functions
                            .first()
                            .map(|f| f.report.warnings.clone())
                            .unwrap_or_default();
                        warnings.extend(report.functions.iter().filter_map(|f| {
                            written_anyway(f.report.verify.as_ref()?)
                                .map(|w| format!("{}: {w}", f.name))
                        }));
                        Ok(ItemOutcome {
                            verify: Some(json(&verify)?.unwrap_or(Value::Null)),
                            warnings,
                        })
                    }
                };
            }
            Command::Palettize(args) => args.options()?,
            Command::Quantize(args) => args.options()?,
            Command::Prune(args) => args.options()?,
            Command::Compress(args) => args.options()?,
            _ => return Err(Error::Internal("not a batch command".into())),
        };
        compressed(compress, item)
    }
}

/// Runs a compression command on `item`.
fn compressed(mut options: CompressOptions, item: &Item) -> Result<ItemOutcome, Error> {
    options.input = item.model.path.clone();
    options.output = item.output.clone();
    options.force = true;
    let report = pipeline::compress(&options, &|_, _| {})?;
    let mut warnings = report.warnings;
    if report.compression.weights.is_empty() {
        warnings.push(format!(
            "no weight was selected: none has more than {} elements or the recipe skips them all",
            options.recipe.weight_threshold
        ));
    }
    warnings.extend(report.compression.weights.iter().filter_map(|w| {
        let why = w.skipped.as_ref()?;
        Some(format!("weight '{}' left uncompressed: {why}", w.name))
    }));
    warnings.extend(report.verify.as_ref().and_then(written_anyway));
    Ok(ItemOutcome {
        verify: json(&report.verify)?,
        warnings,
    })
}

/// The warning for a package written despite failed verification (`allow-degraded`).
fn written_anyway(v: &VerifyReport) -> Option<String> {
    (v.verdict == Verdict::Failed).then(|| {
        format!(
            "verification failed, wrote the package anyway (allow-degraded): {}",
            v.summary()
        )
    })
}

/// `value` as JSON (`None` for null).
fn json(value: &impl serde::Serialize) -> Result<Option<Value>, Error> {
    let v = serde_json::to_value(value).map_err(|e| Error::Internal(e.to_string()))?;
    Ok((!v.is_null()).then_some(v))
}
