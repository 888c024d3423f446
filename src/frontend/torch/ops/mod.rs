//! The converter table: op key (`aten.conv2d.default`, `_operator.add`) → the function that
//! emits its MIL ops and the op's argument defaults. The serializer omits arguments equal to
//! their schema default, so each entry lists the defaults of its optional arguments (from the
//! op schemas in ATen's `native_functions.yaml`). One file per op family.

mod activation;
mod attention;
mod conv;
mod creation;
mod elementwise;
mod index;
mod linear;
mod normalization;
mod pool;
mod reduction;
mod shape;
mod symbolic;

use super::convert::{op_key, Call, Ctx};
use crate::frontend::emitter::Emit;
use crate::Error;
use std::collections::HashMap;
use std::sync::OnceLock;

/// Converts one node: reads its arguments from the context, adds ops, binds its outputs.
pub type ConvertFn = fn(&mut Ctx, &Call) -> Result<(), Error>;

/// The schema default of an optional argument.
#[derive(Debug)]
pub enum ArgDefault {
    /// `None`.
    None,
    /// An int.
    Int(i64),
    /// An int list.
    Ints(&'static [i64]),
    /// A float.
    Float(f64),
    /// A bool.
    Bool(bool),
    /// A string.
    Str(&'static str),
}

/// One supported op.
pub struct OpEntry {
    /// `aten.<name>.<overload>` or `_operator.<name>`.
    pub key: &'static str,
    /// Its converter.
    pub convert: ConvertFn,
    /// Defaults of its optional arguments, by schema name.
    pub defaults: &'static [(&'static str, ArgDefault)],
}

/// A table entry.
const fn op(
    key: &'static str,
    convert: ConvertFn,
    defaults: &'static [(&'static str, ArgDefault)],
) -> OpEntry {
    OpEntry {
        key,
        convert,
        defaults,
    }
}

/// Every family's entries.
const TABLE: &[&[OpEntry]] = &[
    activation::OPS,
    attention::OPS,
    conv::OPS,
    creation::OPS,
    elementwise::OPS,
    index::OPS,
    linear::OPS,
    normalization::OPS,
    pool::OPS,
    reduction::OPS,
    shape::OPS,
    symbolic::OPS,
];

fn map() -> &'static HashMap<&'static str, &'static OpEntry> {
    static MAP: OnceLock<HashMap<&'static str, &'static OpEntry>> = OnceLock::new();
    MAP.get_or_init(|| {
        TABLE
            .iter()
            .flat_map(|family| family.iter())
            .map(|e| (e.key, e))
            .collect()
    })
}

/// The entry for op key `key`.
pub fn entry(key: &str) -> Option<&'static OpEntry> {
    map().get(key).copied()
}

/// Every supported op key, sorted.
pub fn keys() -> Vec<&'static str> {
    let mut keys: Vec<&'static str> = map().keys().copied().collect();
    keys.sort_unstable();
    keys
}

/// Output 0 is input `self` (identity-like ops: `clone`, `alias`, `dropout` at inference…).
fn pass_through(ctx: &mut Ctx, call: &Call) -> Result<(), Error> {
    let name = ["self", "input", "x"]
        .into_iter()
        .find(|n| call.node.inputs.iter().any(|a| a.name == *n))
        .unwrap_or("self");
    let x = ctx.tensor(call, name)?;
    ctx.bind(call, 0, x);
    Ok(())
}

/// Nodes with no result the program needs (asserts, metadata checks).
fn skip(_: &mut Ctx, _: &Call) -> Result<(), Error> {
    Ok(())
}

/// Binds output 0 of an in-place op to `y` and rebinds the mutated argument `self` too, so
/// later readers of either name see the new value.
fn bind_in_place(ctx: &mut Ctx, call: &Call, y: String) {
    let in_place = op_key(&call.node.target)
        .split('.')
        .nth(1)
        .is_some_and(|name| name.ends_with('_'));
    if in_place {
        let target = call.node.inputs.iter().find(|a| a.name == "self");
        if let Some(schema::Argument::AsTensor(t)) = target.map(|a| &a.arg) {
            ctx.bind_name(&t.name, y.clone());
        }
    }
    ctx.bind(call, 0, y);
}

use super::schema;

#[cfg(test)]
mod tests {
    #[test]
    fn keys_are_unique_and_qualified() {
        let total: usize = super::TABLE.iter().map(|f| f.len()).sum();
        let keys = super::keys();
        assert_eq!(keys.len(), total, "an op key is listed twice");
        assert!(keys.iter().all(|k| k.starts_with("aten.")
            || k.starts_with("_operator.")
            || k.starts_with("torch.")));
    }
}
