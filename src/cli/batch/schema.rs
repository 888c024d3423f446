//! The JSON Schema of a batch plan, generated from the same flag definitions that the plan's
//! variants are parsed with (`mlpack batch --schema`).

use super::variant::{plan_flags, takes_path, COMMANDS};
use clap::{Arg, ArgAction};
use serde_json::{json, Map, Value};
use std::any::TypeId;

/// The plan schema (JSON Schema 2020-12); `cli` is the whole command line definition.
pub fn plan_schema(cli: &clap::Command) -> Value {
    let mut defs = Map::new();
    for name in COMMANDS {
        let sub = cli
            .find_subcommand(name)
            .expect("every batch command is a subcommand");
        defs.insert(name.to_string(), command_schema(name, sub));
    }
    let variant: Vec<Value> = COMMANDS
        .iter()
        .map(|c| json!({ "$ref": format!("#/$defs/{c}") }))
        .collect();
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "mlpack batch plan",
        "description": "Models (paths or globs relative to the plan) and named variants, each a command with that command's flags as keys (without dashes; '-' or '_' between words). Paths in flag values are relative to the plan. Outputs: <out-dir>/<model stem>/<variant>.mlpackage.",
        "type": "object",
        "required": ["models", "variants"],
        "additionalProperties": false,
        "properties": {
            "$schema": { "type": "string" },
            "models": {
                "type": "array",
                "minItems": 1,
                "items": { "type": "string", "minLength": 1 },
                "description": ".onnx, .pt2 or .mlpackage paths or globs ('*' and '?' within a name, '**' across folders)"
            },
            "variants": {
                "type": "object",
                "minProperties": 1,
                "propertyNames": { "pattern": "^[A-Za-z0-9_-][A-Za-z0-9_.-]*$" },
                "additionalProperties": { "oneOf": variant }
            }
        },
        "$defs": defs
    })
}

/// The schema of a variant running `name` (flags of `sub`).
fn command_schema(name: &str, sub: &clap::Command) -> Value {
    let mut properties = Map::new();
    properties.insert("command".into(), json!({ "const": name }));
    let mut required = vec![Value::from("command")];
    for arg in plan_flags(sub) {
        let long = arg.get_long().expect("plan flags are long flags");
        let schema = flag_schema(arg);
        if arg.is_required_set() {
            required.push(Value::from(long));
        }
        let snake = long.replace('-', "_");
        if snake != long {
            properties.insert(snake, schema.clone());
        }
        properties.insert(long.to_string(), schema);
    }
    json!({
        "type": "object",
        "description": sub.get_about().map(|a| a.to_string()).unwrap_or_default(),
        "required": required,
        "additionalProperties": false,
        "properties": properties,
    })
}

/// The schema of one flag's value: a boolean switch, or a value (a list of them if the flag
/// repeats), with its help text, choices and default.
fn flag_schema(arg: &Arg) -> Value {
    let mut schema = Map::new();
    if let Some(help) = arg.get_help() {
        let relative = if takes_path(arg) {
            " (a path relative to the plan)"
        } else {
            ""
        };
        schema.insert(
            "description".into(),
            Value::from(format!("{help}{relative}")),
        );
    }
    if matches!(arg.get_action(), ArgAction::SetTrue) {
        schema.insert("type".into(), Value::from("boolean"));
        return Value::Object(schema);
    }
    let kind = value_type(arg);
    let mut one = Map::new();
    one.insert("type".into(), Value::from(kind));
    let choices: Vec<Value> = arg
        .get_possible_values()
        .iter()
        .map(|p| Value::from(p.get_name()))
        .collect();
    if !choices.is_empty() {
        one.insert("enum".into(), Value::Array(choices));
    }
    let defaults: Vec<Value> = arg
        .get_default_values()
        .iter()
        .map(|d| typed(&d.to_string_lossy(), kind))
        .collect();
    if let [default] = defaults.as_slice() {
        schema.insert("default".into(), default.clone());
    }
    if matches!(arg.get_action(), ArgAction::Append) {
        let one = Value::Object(one);
        schema.insert(
            "oneOf".into(),
            json!([one, { "type": "array", "items": one }]),
        );
    } else {
        schema.extend(one);
    }
    Value::Object(schema)
}

/// The JSON type of `arg`'s values, by the type its parser produces.
fn value_type(arg: &Arg) -> &'static str {
    let id = arg.get_value_parser().type_id();
    let integers = [
        TypeId::of::<usize>(),
        TypeId::of::<u32>(),
        TypeId::of::<u64>(),
        TypeId::of::<i64>(),
    ];
    if integers.iter().any(|t| id == *t) {
        "integer"
    } else if id == TypeId::of::<f64>() || id == TypeId::of::<f32>() {
        "number"
    } else {
        "string"
    }
}

/// `text` as a JSON value of `kind`.
fn typed(text: &str, kind: &str) -> Value {
    match kind {
        "integer" => text
            .parse::<i64>()
            .map_or_else(|_| Value::from(text), Value::from),
        "number" => text
            .parse::<f64>()
            .map_or_else(|_| Value::from(text), Value::from),
        _ => Value::from(text),
    }
}
