//! A batch plan file: the models (paths or globs relative to the plan) and the named variants
//! to make of each, read and checked as data. What a variant's settings mean is the caller's
//! business (the CLI maps them onto its commands' flags).

use super::glob::expand;
use crate::pipeline::ModelKind;
use crate::Error;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Top-level keys a plan may hold (`$schema` lets editors find the schema).
const PLAN_KEYS: [&str; 3] = ["models", "variants", "$schema"];

/// A plan file as written: model patterns and raw variant settings.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The plan file.
    pub path: PathBuf,
    /// The folder model patterns and file settings are relative to.
    pub dir: PathBuf,
    /// Model paths or globs, in plan order.
    pub models: Vec<String>,
    /// Variants by name (sorted).
    pub variants: BTreeMap<String, VariantSpec>,
}

/// One variant as written: its command and the other keys, unchecked.
#[derive(Clone, Debug)]
pub struct VariantSpec {
    /// The `command` value.
    pub command: String,
    /// Every key but `command`, as written.
    pub settings: Map<String, Value>,
}

/// A model the plan names, found on disk.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Model {
    /// Its path relative to the plan folder, `/`-separated: the name reports and sorting use.
    pub name: String,
    /// The path to read it at.
    pub path: PathBuf,
    /// The file name without its extension: the folder its outputs go to.
    pub stem: String,
}

impl Plan {
    /// Reads and checks the plan at `path`: a JSON object with a non-empty `models` list of
    /// strings and a non-empty `variants` object whose names are file-name safe and whose
    /// values are objects with a string `command`. Problems are invalid input naming the JSON
    /// path of the offending key.
    pub fn load(path: &Path) -> Result<Plan, Error> {
        let bytes = crate::input_file::read(path).map_err(|e| crate::input_file::error(path, e))?;
        let value: Value = serde_json::from_slice(&bytes)
            .map_err(|e| Error::invalid(path, format!("not a JSON plan: {e}")))?;
        let invalid = |m: String| Error::invalid(path, m);
        let Value::Object(top) = value else {
            return Err(invalid("the plan must be a JSON object".into()));
        };
        if let Some(key) = top.keys().find(|k| !PLAN_KEYS.contains(&k.as_str())) {
            return Err(invalid(format!(
                "{key}: unknown key (a plan has {})",
                PLAN_KEYS[..2].join(" and ")
            )));
        }
        let models = match top.get("models") {
            Some(Value::Array(list)) if !list.is_empty() => list
                .iter()
                .enumerate()
                .map(|(k, m)| match m {
                    Value::String(s) if !s.is_empty() => Ok(s.clone()),
                    _ => Err(invalid(format!(
                        "models[{k}]: expected a path or glob string"
                    ))),
                })
                .collect::<Result<Vec<_>, _>>()?,
            Some(_) => {
                return Err(invalid(
                    "models: expected a non-empty list of paths or globs".into(),
                ))
            }
            None => return Err(invalid("models: missing".into())),
        };
        let variants = match top.get("variants") {
            Some(Value::Object(map)) if !map.is_empty() => map
                .iter()
                .map(|(name, v)| Ok((name.clone(), variant(name, v).map_err(&invalid)?)))
                .collect::<Result<BTreeMap<_, _>, Error>>()?,
            Some(_) => return Err(invalid("variants: expected a non-empty object".into())),
            None => return Err(invalid("variants: missing".into())),
        };
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        Ok(Plan {
            path: path.to_path_buf(),
            dir,
            models,
            variants,
        })
    }

    /// The models the plan names, sorted by name and each once: literal paths must exist and
    /// every glob must match a model. Glob matches inside one of `exclude` (the output and
    /// cache folders) are left out. Two models with the same stem would write to the same
    /// folder: invalid input naming both.
    pub fn models(&self, exclude: &[&Path]) -> Result<Vec<Model>, Error> {
        let mut found = Vec::new();
        for (k, pattern) in self.models.iter().enumerate() {
            let at = |m: String| Error::invalid(&self.path, format!("models[{k}]: {m}"));
            let matches = expand(&self.dir, pattern, exclude).map_err(&at)?;
            if matches.is_empty() {
                return Err(at(format!(
                    "'{pattern}' matches no .onnx, .pt2 or .mlpackage"
                )));
            }
            for (name, path) in matches {
                ModelKind::of(&path).map_err(|e| at(e.to_string()))?;
                let stem = path
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default();
                found.push(Model { name, path, stem });
            }
        }
        found.sort();
        found.dedup_by(|a, b| a.name == b.name);
        let mut by_stem: BTreeMap<&str, &Model> = BTreeMap::new();
        for m in &found {
            if let Some(other) = by_stem.insert(&m.stem, m) {
                return Err(Error::invalid(
                    &self.path,
                    format!(
                        "models: {} and {} both write to the folder '{}'; rename one",
                        other.name, m.name, m.stem
                    ),
                ));
            }
        }
        Ok(found)
    }
}

/// Checks one variant: a file-name-safe name, an object with a string `command`.
fn variant(name: &str, value: &Value) -> Result<VariantSpec, String> {
    let safe = !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if !safe {
        return Err(format!(
            "variants.{name}: a variant name is a file name: letters, digits, '-', '_' and '.', not first"
        ));
    }
    let Value::Object(map) = value else {
        return Err(format!("variants.{name}: expected an object"));
    };
    let command = match map.get("command") {
        Some(Value::String(c)) => c.clone(),
        Some(_) => return Err(format!("variants.{name}.command: expected a string")),
        None => return Err(format!("variants.{name}: missing key 'command'")),
    };
    let mut settings = map.clone();
    settings.remove("command");
    Ok(VariantSpec { command, settings })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan_in(dir: &Path, text: &str) -> Result<Plan, Error> {
        let path = dir.join("plan.json");
        std::fs::write(&path, text).unwrap();
        Plan::load(&path)
    }

    fn message(r: Result<Plan, Error>) -> String {
        r.expect_err("refused").to_string()
    }

    #[test]
    fn refuses_malformed_plans_naming_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        assert!(message(plan_in(d, "[]")).contains("must be a JSON object"));
        assert!(message(plan_in(
            d,
            r#"{"models":["a.onnx"],"variants":{"x":{"command":"convert"}},"extra":1}"#
        ))
        .contains("extra: unknown key"));
        assert!(message(plan_in(
            d,
            r#"{"models":[],"variants":{"x":{"command":"convert"}}}"#
        ))
        .contains("models: expected a non-empty list"));
        assert!(message(plan_in(
            d,
            r#"{"models":["a.onnx", 3],"variants":{"x":{"command":"convert"}}}"#
        ))
        .contains("models[1]: expected"));
        assert!(message(plan_in(
            d,
            r#"{"models":["a.onnx"],"variants":{"x":{"nbits":4}}}"#
        ))
        .contains("variants.x: missing key 'command'"));
        assert!(message(plan_in(
            d,
            r#"{"models":["a.onnx"],"variants":{"../x":{"command":"convert"}}}"#
        ))
        .contains("variants.../x: a variant name is a file name"));
        let plan = plan_in(
            d,
            r#"{"$schema":"s","models":["a.onnx"],"variants":{"p4":{"command":"palettize","nbits":4}}}"#,
        )
        .unwrap();
        assert_eq!(plan.variants["p4"].command, "palettize");
        assert_eq!(plan.variants["p4"].settings["nbits"], 4);
        assert!(!plan.variants["p4"].settings.contains_key("command"));
    }

    #[test]
    fn models_are_found_sorted_and_stems_must_differ() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for f in ["b.onnx", "a.pt2", "sub/a.onnx", "notes.txt"] {
            std::fs::create_dir_all(d.join(f).parent().unwrap()).unwrap();
            std::fs::write(d.join(f), b"x").unwrap();
        }
        let plan = plan_in(
            d,
            r#"{"models":["*", "b.onnx"],"variants":{"v":{"command":"convert"}}}"#,
        )
        .unwrap();
        let names: Vec<String> = plan
            .models(&[])
            .unwrap()
            .into_iter()
            .map(|m| m.name)
            .collect();
        assert_eq!(names, ["a.pt2", "b.onnx"]);
        let plan = plan_in(
            d,
            r#"{"models":["**/*.onnx", "a.pt2"],"variants":{"v":{"command":"convert"}}}"#,
        )
        .unwrap();
        let e = plan.models(&[]).unwrap_err().to_string();
        assert!(
            e.contains("a.pt2 and sub/a.onnx both write to the folder 'a'"),
            "{e}"
        );
        let plan = plan_in(
            d,
            r#"{"models":["missing.onnx"],"variants":{"v":{"command":"convert"}}}"#,
        )
        .unwrap();
        assert!(plan
            .models(&[])
            .unwrap_err()
            .to_string()
            .contains("models[0]: 'missing.onnx' matches no"));
        let plan = plan_in(
            d,
            r#"{"models":["notes.txt"],"variants":{"v":{"command":"convert"}}}"#,
        )
        .unwrap();
        assert!(plan
            .models(&[])
            .unwrap_err()
            .to_string()
            .contains("unknown model format"));
        let plan = plan_in(
            d,
            r#"{"models":["**/*.onnx"],"variants":{"v":{"command":"convert"}}}"#,
        )
        .unwrap();
        let names: Vec<String> = plan
            .models(&[&d.join("sub")])
            .unwrap()
            .into_iter()
            .map(|m| m.name)
            .collect();
        assert_eq!(names, ["b.onnx"]);
    }
}
