//! Attention fusion: `matmul(q, kᵀ) · scale [+ mask] → softmax(axis -1) → matmul(·, v)`
//! becomes one `scaled_dot_product_attention` from iOS18, and a clean decomposition before:
//! one constant `mul` of `q`, `matmul(…, transpose_y = true)` instead of an explicit
//! transpose of `k`, the masks, `softmax`, `matmul`.
//!
//! Recognised: scales (`mul` by or `real_div` by a constant scalar) on the scores, on `q`,
//! on `k` (before or after its transpose) or on several of them; `k` transposed by
//! `transpose_y`, by a `transpose` op (e.g. the `[0, 2, 3, 1]` of a `[B, S, H, E]` key) or
//! not at all; masks added to the scores (float, any shape broadcasting to them) and masks
//! applied by `select` with a constant fill ≤ -1e4 or -inf (`where(mask, scores, min)`, in
//! either branch order), in any number and order, all before the scale is applied.
//!
//! `scaled_dot_product_attention` needs `q`, `k` and `v` with the same batch dims: a
//! grouped-query key or value repeated by `tile`/`reshape` keeps its repeat ops (they are
//! the key/value operands), and operands that only broadcast in `matmul` keep the
//! decomposed form. The fused op applies 1/√E; any other total scale becomes a `mul` of `q`
//! by `scale·√E`. `select` masks become additive masks (`select(cond, 0, fill)`), except
//! that a -inf fill passes the condition itself as a bool mask; with a finite fill, a row
//! whose every key is masked averages the values uniformly before and softmaxes the raw
//! scores after (no exporter produces such rows except for all-padding inputs).

use crate::interp::{eval_op, Value};
use crate::ir::ops::axis::norm_axis;
use crate::ir::{
    infer_op, Argument, DType, Function, NameTable, Operation, Target, Tensor, TensorType, Var,
};
use std::collections::{HashMap, HashSet};

/// Fills at or below this are "masked out": `exp(fill - max)` is 0 in fp32 for any
/// realistic scores, with or without the scores added.
const MASK_FILL_MAX: f64 = -1e4;

/// Relative tolerance under which a total scale counts as SDPA's own 1/√E.
const SCALE_TOLERANCE: f64 = 1e-6;

/// How a mask meets the scores.
#[derive(Clone, Debug)]
enum Mask {
    /// `add(scores, mask)`.
    Add(String),
    /// `select(cond, scores, fill)` when `keep_when` is true, `select(cond, fill, scores)`
    /// when false; `fill` is a constant.
    Select {
        cond: String,
        fill: String,
        fill_value: Tensor,
        keep_when: bool,
    },
}

/// The key in `[…, S, E]` layout: `transpose(var, perm)`, or `var` itself.
struct Key {
    var: String,
    perm: Option<Vec<i64>>,
}

/// The score chain between the first `matmul` and `softmax`, walked back from `softmax`.
#[derive(Clone, Default)]
struct Scores {
    /// Indices of the chain's ops (replaced by the fusion).
    ops: Vec<usize>,
    /// Masks in the order they apply.
    masks: Vec<Mask>,
    /// Product of the scale factors met.
    scale: f64,
    /// Whether a scale was met (masks must come after every scale).
    scaled: bool,
    /// Index of the `matmul(q, k…)`.
    matmul: usize,
}

/// One recognised attention block.
struct Attention {
    query: String,
    key: Key,
    value: String,
    scale: f64,
    masks: Vec<Mask>,
    /// Ops replaced (the score chain, `softmax` and the last `matmul`).
    replaced: Vec<usize>,
    /// Index of the last `matmul`, where the replacement goes.
    last: usize,
}

/// Read-only view of a function's dataflow.
struct Graph<'a> {
    ops: &'a [Operation],
    producer: HashMap<&'a str, usize>,
    readers: HashMap<&'a str, Vec<usize>>,
    uses: HashMap<&'a str, usize>,
    types: HashMap<String, TensorType>,
    consts: HashMap<String, Tensor>,
}

impl<'a> Graph<'a> {
    fn new(function: &'a Function) -> Graph<'a> {
        let ops = function.block.operations.as_slice();
        let mut producer = HashMap::new();
        let mut readers: HashMap<&str, Vec<usize>> = HashMap::new();
        let mut consts = HashMap::new();
        for (i, op) in ops.iter().enumerate() {
            for out in &op.outputs {
                producer.insert(out.name.as_str(), i);
            }
            for v in op.input_vars() {
                readers.entry(v).or_default().push(i);
            }
            if let Some(t) = op.const_value() {
                consts.insert(op.outputs[0].name.clone(), t.clone());
            }
        }
        Graph {
            ops,
            producer,
            readers,
            uses: function.block.use_counts().into_iter().collect(),
            types: function
                .var_types()
                .into_iter()
                .map(|(n, t)| (n.to_string(), t.clone()))
                .collect(),
            consts,
        }
    }

    fn producer(&self, var: &str) -> Option<(usize, &'a Operation)> {
        self.producer.get(var).map(|&i| (i, &self.ops[i]))
    }

    fn single_use(&self, var: &str) -> bool {
        self.uses.get(var) == Some(&1)
    }

    /// The variable bound to single-argument parameter `param`.
    fn var_arg(&self, op: &'a Operation, param: &str) -> Option<&'a str> {
        match op.input(param)? {
            [Argument::Var(v)] => Some(v),
            _ => None,
        }
    }

    /// The constant value of parameter `param` (inline or a `const` op's output).
    fn const_arg<'s>(&'s self, op: &'s Operation, param: &str) -> Option<&'s Tensor> {
        match op.input(param)? {
            [Argument::Value(t)] => Some(t),
            [Argument::Var(v)] => self.consts.get(v),
            _ => None,
        }
    }

    /// A constant bool parameter, `default` when absent, None when not constant.
    fn flag(&self, op: &Operation, param: &str, default: bool) -> Option<bool> {
        match op.input(param) {
            None => Some(default),
            Some(_) => self.const_arg(op, param)?.scalar_i64().map(|v| v != 0),
        }
    }

    fn ty(&self, var: &str) -> Option<&TensorType> {
        self.types.get(var)
    }

    /// The one-element float constant `var` holds.
    fn scalar(&self, var: &str) -> Option<f64> {
        self.consts
            .get(var)
            .filter(|t| t.dtype().is_float())
            .and_then(Tensor::scalar_f64)
    }

    /// `var` as `inner · factor` when its producer multiplies or divides by a constant
    /// scalar without changing the shape.
    fn scale_step(&self, var: &str) -> Option<(&'a str, f64)> {
        let (_, op) = self.producer(var)?;
        let (x, y) = (self.var_arg(op, "x")?, self.var_arg(op, "y")?);
        let (inner, factor) = match op.op_type.as_str() {
            "mul" => match (self.scalar(x), self.scalar(y)) {
                (_, Some(c)) => (x, c),
                (Some(c), None) => (y, c),
                _ => return None,
            },
            "real_div" => (x, 1.0 / self.scalar(y)?),
            _ => return None,
        };
        (self.ty(inner)? == self.ty(var)?).then_some((inner, factor))
    }

    /// Strips scale steps off `var`, multiplying their factors into `scale`.
    fn peel(&self, mut var: &'a str, scale: &mut f64) -> &'a str {
        while let Some((inner, factor)) = self.scale_step(var) {
            *scale *= factor;
            var = inner;
        }
        var
    }

    /// Walks the score chain back from `t` (the value `softmax` or a later chain op reads)
    /// to the `matmul` producing the raw scores.
    fn walk(&self, t: &str, mut acc: Scores) -> Option<Scores> {
        if !self.single_use(t) {
            return None;
        }
        let (index, op) = self.producer(t)?;
        let ty = self.ty(t)?;
        let chain_ok = |v: &str| self.ty(v) == Some(ty);
        acc.ops.push(index);
        match op.op_type.as_str() {
            "matmul" => {
                acc.matmul = index;
                Some(acc)
            }
            "add" if !acc.scaled => {
                let (x, y) = (self.var_arg(op, "x")?, self.var_arg(op, "y")?);
                [(x, y), (y, x)].into_iter().find_map(|(chain, mask)| {
                    if !chain_ok(chain) {
                        return None;
                    }
                    let mut next = acc.clone();
                    next.masks.insert(0, Mask::Add(mask.to_string()));
                    self.walk(chain, next)
                })
            }
            "select" if !acc.scaled => {
                let cond = self.var_arg(op, "cond")?;
                let (a, b) = (self.var_arg(op, "a")?, self.var_arg(op, "b")?);
                [(a, b, true), (b, a, false)]
                    .into_iter()
                    .find_map(|(chain, fill, keep_when)| {
                        let value = self.consts.get(fill)?;
                        let masks_out = value.dtype().is_float()
                            && value.to_f64_vec().iter().all(|&v| v <= MASK_FILL_MAX);
                        if !masks_out || !chain_ok(chain) {
                            return None;
                        }
                        let mut next = acc.clone();
                        next.masks.insert(
                            0,
                            Mask::Select {
                                cond: cond.to_string(),
                                fill: fill.to_string(),
                                fill_value: value.clone(),
                                keep_when,
                            },
                        );
                        self.walk(chain, next)
                    })
            }
            "mul" | "real_div" => {
                let (inner, factor) = self.scale_step(t)?;
                acc.scale *= factor;
                acc.scaled = true;
                self.walk(inner, acc)
            }
            _ => None,
        }
    }

    /// The key in `[…, S, E]` layout behind `matmul`'s `y` operand.
    fn key(&self, y: &'a str, transpose_y: bool, scale: &mut f64) -> Option<Key> {
        let y = self.peel(y, scale);
        if transpose_y {
            return Some(Key {
                var: y.to_string(),
                perm: None,
            });
        }
        let rank = self.ty(y)?.rank();
        if rank < 2 {
            return None;
        }
        let swap_last = |mut p: Vec<i64>| {
            p.swap(rank - 1, rank - 2);
            let identity = p.iter().enumerate().all(|(i, &v)| v == i as i64);
            (!identity).then_some(p)
        };
        if let Some((_, op)) = self.producer(y).filter(|(_, op)| op.op_type == "transpose") {
            let perm: Vec<i64> = self
                .const_arg(op, "perm")?
                .to_i64_vec()
                .into_iter()
                .map(|p| if p < 0 { p + rank as i64 } else { p })
                .collect();
            let src = self.peel(self.var_arg(op, "x")?, scale);
            return Some(Key {
                var: src.to_string(),
                perm: swap_last(perm),
            });
        }
        Some(Key {
            var: y.to_string(),
            perm: swap_last((0..rank as i64).collect()),
        })
    }

    /// The attention block whose `softmax` is op `index`, if it is one.
    fn attention(&self, index: usize) -> Option<Attention> {
        let softmax = &self.ops[index];
        if softmax.op_type != "softmax" {
            return None;
        }
        let scores = self.var_arg(softmax, "x")?;
        let rank = self.ty(scores)?.rank();
        let axis = match softmax.input("axis") {
            None => -1,
            Some(_) => self.const_arg(softmax, "axis")?.scalar_i64()?,
        };
        if rank < 2 || norm_axis(axis, rank).ok()? != rank - 1 {
            return None;
        }
        let probs = softmax.outputs[0].name.as_str();
        if !self.single_use(probs) {
            return None;
        }
        let last = *self.readers.get(probs)?.first()?;
        let weighted = &self.ops[last];
        if weighted.op_type != "matmul"
            || self.var_arg(weighted, "x")? != probs
            || self.flag(weighted, "transpose_x", false)?
            || self.flag(weighted, "transpose_y", false)?
        {
            return None;
        }
        let value = self.var_arg(weighted, "y")?;
        let chain = self.walk(
            scores,
            Scores {
                scale: 1.0,
                ..Scores::default()
            },
        )?;
        let first = &self.ops[chain.matmul];
        if self.flag(first, "transpose_x", false)? {
            return None;
        }
        let mut scale = chain.scale;
        let query = self.peel(self.var_arg(first, "x")?, &mut scale);
        let key = self.key(
            self.var_arg(first, "y")?,
            self.flag(first, "transpose_y", false)?,
            &mut scale,
        )?;
        if self.ty(query)?.rank() < 2 || self.ty(value)?.rank() < 2 {
            return None;
        }
        let mut replaced = chain.ops;
        replaced.extend([index, last]);
        Some(Attention {
            query: query.to_string(),
            key,
            value: value.to_string(),
            scale,
            masks: chain.masks,
            replaced,
            last,
        })
    }
}

/// Adds typed (and, when every input is constant, folded) ops for one replacement.
struct Emitter<'a> {
    types: &'a mut HashMap<String, TensorType>,
    consts: &'a mut HashMap<String, Tensor>,
    names: &'a mut NameTable,
    origin: Option<String>,
    ops: Vec<Operation>,
}

impl Emitter<'_> {
    fn constant(&mut self, hint: &str, value: Tensor) -> String {
        let name = self.names.fresh(hint);
        self.ops.push(Operation::constant_from(
            name.clone(),
            value.clone(),
            self.origin.clone(),
        ));
        self.types.insert(name.clone(), value.ty());
        self.consts.insert(name.clone(), value);
        name
    }

    fn op(&mut self, op_type: &str, hint: &str, inputs: &[(&str, &str)]) -> Result<String, String> {
        let name = self.names.fresh(hint);
        let mut op = Operation {
            op_type: op_type.to_string(),
            name: name.clone(),
            inputs: inputs
                .iter()
                .map(|(p, v)| (p.to_string(), vec![Argument::Var(v.to_string())]))
                .collect(),
            outputs: Vec::new(),
            attributes: Default::default(),
            origin: self.origin.clone(),
        };
        let types = infer_op(&op, &|v| self.types.get(v).map(|t| (t, self.consts.get(v))))?;
        let [ty] = types.as_slice() else {
            return Err(format!("{op_type} has {} outputs", types.len()));
        };
        if op.input_vars().all(|v| self.consts.contains_key(v)) {
            let consts = &*self.consts;
            let values = eval_op(&op, &|v| consts.get(v).map(Value::from_tensor), &types)?;
            let tensor = values[0].to_tensor(ty.dtype);
            let mut c = Operation::constant(name.clone(), tensor.clone());
            c.origin = self.origin.clone();
            self.ops.push(c);
            self.consts.insert(name.clone(), tensor);
        } else {
            op.outputs = vec![Var::new(name.clone(), ty.clone())];
            self.ops.push(op);
        }
        self.types.insert(name.clone(), ty.clone());
        Ok(name)
    }

    /// A scalar constant of `dtype`.
    fn scalar(&mut self, hint: &str, value: f64, dtype: DType) -> String {
        self.constant(hint, Tensor::scalar_f32(value as f32).cast(dtype))
    }

    /// Zeros of `dtype` shaped like the bool `cond`, as the `select` branch that keeps a
    /// position: Core ML types `select` by its branches alone, so a branch must carry the
    /// condition's shape.
    fn zeros_like(&mut self, cond: &str, hint: &str, dtype: DType) -> Result<String, String> {
        let shape = self
            .types
            .get(cond)
            .and_then(TensorType::static_shape)
            .ok_or_else(|| format!("mask condition '{cond}' has a symbolic shape"))?;
        let n = shape.iter().product::<usize>();
        Ok(self.constant(hint, Tensor::from_f32(&shape, &vec![0.0; n]).cast(dtype)))
    }

    /// The key in `[…, S, E]` layout.
    fn key(&mut self, key: &Key, hint: &str) -> Result<String, String> {
        match &key.perm {
            None => Ok(key.var.clone()),
            Some(perm) => {
                let perm: Vec<i32> = perm.iter().map(|&p| p as i32).collect();
                let perm = self.constant(&format!("{hint}_perm"), Tensor::vec_i32(&perm));
                self.op("transpose", hint, &[("x", &key.var), ("perm", &perm)])
            }
        }
    }

    /// One mask SDPA can take: a bool condition (true = attend) or an additive float mask.
    fn sdpa_mask(&mut self, mask: &Mask, hint: &str) -> Result<String, String> {
        match mask {
            Mask::Add(m) => Ok(m.clone()),
            Mask::Select {
                cond,
                fill,
                fill_value,
                keep_when,
            } => {
                let all_neg_inf = fill_value
                    .to_f64_vec()
                    .iter()
                    .all(|&v| v == f64::NEG_INFINITY);
                match (all_neg_inf, keep_when) {
                    (true, true) => Ok(cond.clone()),
                    (true, false) => self.op("logical_not", hint, &[("x", cond)]),
                    (false, _) => {
                        let zero =
                            self.zeros_like(cond, &format!("{hint}_zero"), fill_value.dtype())?;
                        let (a, b) = if *keep_when {
                            (zero.as_str(), fill.as_str())
                        } else {
                            (fill.as_str(), zero.as_str())
                        };
                        self.op("select", hint, &[("cond", cond), ("a", a), ("b", b)])
                    }
                }
            }
        }
    }

    /// `scaled_dot_product_attention` for `att`; returns its output.
    fn fused(&mut self, att: &Attention, hint: &str) -> Result<String, String> {
        let q_ty = self.types.get(&att.query).cloned().ok_or("query untyped")?;
        let e = q_ty.shape[q_ty.rank() - 1]
            .fixed()
            .ok_or("query embedding size is symbolic")?;
        let factor = att.scale * (e as f64).sqrt();
        let query = if (factor - 1.0).abs() <= SCALE_TOLERANCE {
            att.query.clone()
        } else {
            let f = self.scalar(&format!("{hint}_q_scale"), factor, q_ty.dtype);
            self.op("mul", &format!("{hint}_q"), &[("x", &att.query), ("y", &f)])?
        };
        let key = self.key(&att.key, &format!("{hint}_k"))?;
        let mut mask: Option<String> = None;
        for (i, m) in att.masks.iter().enumerate() {
            let term = self.sdpa_mask(m, &format!("{hint}_mask{i}"))?;
            mask = Some(match mask {
                None => term,
                Some(prev) => {
                    let [prev, term] = [prev, term].map(|v| self.as_additive(&v, hint));
                    let (prev, term) = (prev?, term?);
                    self.op(
                        "add",
                        &format!("{hint}_mask"),
                        &[("x", &prev), ("y", &term)],
                    )?
                }
            });
        }
        let mut inputs = vec![
            ("query", query.as_str()),
            ("key", &key),
            ("value", &att.value),
        ];
        if let Some(m) = &mask {
            inputs.push(("attn_mask", m));
        }
        self.op("scaled_dot_product_attention", hint, &inputs)
    }

    /// A bool mask as 0 / -inf; a float mask as it is.
    fn as_additive(&mut self, mask: &str, hint: &str) -> Result<String, String> {
        if self.types.get(mask).map(|t| t.dtype) != Some(DType::Bool) {
            return Ok(mask.to_string());
        }
        let zero = self.zeros_like(mask, &format!("{hint}_zero"), DType::F32)?;
        let ninf = self.scalar(&format!("{hint}_ninf"), f64::NEG_INFINITY, DType::F32);
        self.op(
            "select",
            &format!("{hint}_additive"),
            &[("cond", mask), ("a", &zero), ("b", &ninf)],
        )
    }

    /// The block decomposed cleanly; returns its output.
    fn decomposed(&mut self, att: &Attention, hint: &str) -> Result<String, String> {
        let q_ty = self.types.get(&att.query).cloned().ok_or("query untyped")?;
        let query = if (att.scale - 1.0).abs() <= SCALE_TOLERANCE {
            att.query.clone()
        } else {
            let f = self.scalar(&format!("{hint}_q_scale"), att.scale, q_ty.dtype);
            self.op("mul", &format!("{hint}_q"), &[("x", &att.query), ("y", &f)])?
        };
        let key = self.key(&att.key, &format!("{hint}_k"))?;
        let yes = self.constant(&format!("{hint}_transpose_y"), Tensor::scalar_bool(true));
        let mut scores = self.op(
            "matmul",
            &format!("{hint}_scores"),
            &[("x", &query), ("y", &key), ("transpose_y", &yes)],
        )?;
        for (i, m) in att.masks.iter().enumerate() {
            let h = format!("{hint}_masked{i}");
            scores = match m {
                Mask::Add(m) => self.op("add", &h, &[("x", &scores), ("y", m)])?,
                Mask::Select {
                    cond,
                    fill,
                    keep_when,
                    ..
                } => {
                    let (a, b) = if *keep_when {
                        (scores.as_str(), fill.as_str())
                    } else {
                        (fill.as_str(), scores.as_str())
                    };
                    self.op("select", &h, &[("cond", cond), ("a", a), ("b", b)])?
                }
            };
        }
        let axis = self.constant(&format!("{hint}_axis"), Tensor::scalar_i32(-1));
        let probs = self.op(
            "softmax",
            &format!("{hint}_weights"),
            &[("x", &scores), ("axis", &axis)],
        )?;
        self.op("matmul", hint, &[("x", &probs), ("y", &att.value)])
    }
}

/// Rewrites every attention block of `function`: into `scaled_dot_product_attention` at
/// targets from iOS18 (when the operands allow it), into the clean decomposition otherwise.
/// Returns how many `scaled_dot_product_attention` ops it made. Ops left unused (transposes,
/// scales of `q` and `k`) are for dead-code elimination to remove.
pub fn fuse_attention(function: &mut Function, target: Target) -> usize {
    let graph = Graph::new(function);
    let mut found: Vec<Attention> = Vec::new();
    let mut claimed: HashSet<usize> = HashSet::new();
    for index in 0..graph.ops.len() {
        if let Some(att) = graph.attention(index) {
            if att.replaced.iter().all(|i| !claimed.contains(i)) {
                claimed.extend(att.replaced.iter().copied());
                found.push(att);
            }
        }
    }
    if found.is_empty() {
        return 0;
    }
    let Graph {
        mut types,
        mut consts,
        ..
    } = graph;
    let mut names = NameTable::of_function(function);
    let mut replacements: HashMap<usize, Vec<Operation>> = HashMap::new();
    let mut removed: HashSet<usize> = HashSet::new();
    let mut fused = 0;
    for att in &found {
        let last = &function.block.operations[att.last];
        let out = &last.outputs[0];
        let hint = format!("{}_attention", last.name);
        let mut emit = |sdpa: bool| {
            let mut e = Emitter {
                types: &mut types,
                consts: &mut consts,
                names: &mut names,
                origin: last.origin.clone(),
                ops: Vec::new(),
            };
            let result = if sdpa {
                e.fused(att, &hint)
            } else {
                e.decomposed(att, &hint)
            };
            let ops = e.ops;
            result
                .ok()
                .and_then(|name| (types.get(&name) == Some(&out.ty)).then_some((name, ops)))
        };
        let (made, sdpa) = match target >= Target::IOS18 {
            true => match emit(true) {
                Some(made) => (Some(made), true),
                None => (emit(false), false),
            },
            false => (emit(false), false),
        };
        let Some((result, mut ops)) = made else {
            continue;
        };
        let final_op = ops.last_mut().expect("the result's producer");
        debug_assert_eq!(final_op.outputs[0].name, result);
        final_op.name = last.name.clone();
        final_op.outputs[0].name = out.name.clone();
        replacements.insert(att.last, ops);
        removed.extend(att.replaced.iter().copied());
        fused += usize::from(sdpa);
    }
    let old = std::mem::take(&mut function.block.operations);
    for (i, op) in old.into_iter().enumerate() {
        if let Some(ops) = replacements.remove(&i) {
            function.block.operations.extend(ops);
        } else if !removed.contains(&i) {
            function.block.operations.push(op);
        }
    }
    fused
}

#[cfg(test)]
mod tests {
    use super::super::fuse;
    use crate::interp::{run, RunOptions, Value};
    use crate::ir::{validate_program, Builder, DType, Program, Target, Tensor, TensorType, Var};
    use std::collections::BTreeMap;

    const B: usize = 2;
    const H: usize = 4;
    const L: usize = 3;
    const S: usize = 5;
    const E: usize = 8;

    /// Deterministic values in [-2, 2).
    fn values(n: usize, seed: u32) -> Vec<f32> {
        (0..n as u32)
            .map(|i| {
                let h = (i ^ seed.wrapping_mul(7919)).wrapping_mul(2_654_435_761) >> 16;
                (h % 4000) as f32 / 1000.0 - 2.0
            })
            .collect()
    }

    fn input(name: &str, shape: &[usize]) -> Var {
        Var::new(name, TensorType::fixed(DType::F32, shape))
    }

    fn op(b: &mut Builder, op_type: &str, hint: &str, inputs: &[(&str, &str)]) -> String {
        let inputs: Vec<(&str, [&str; 1])> = inputs.iter().map(|(p, v)| (*p, [*v])).collect();
        let inputs: Vec<(&str, &[&str])> = inputs.iter().map(|(p, v)| (*p, &v[..])).collect();
        b.op1(op_type, hint, &inputs).unwrap()
    }

    fn scalar(b: &mut Builder, hint: &str, v: f32) -> String {
        b.constant(hint, Tensor::scalar_f32(v))
    }

    fn transpose(b: &mut Builder, x: &str, perm: &[i32]) -> String {
        let p = b.constant("perm", Tensor::vec_i32(perm));
        op(b, "transpose", "t", &[("x", x), ("perm", &p)])
    }

    /// `softmax(scores, -1) · v`.
    fn weigh(b: &mut Builder, scores: &str, v: &str) -> String {
        let axis = b.constant("axis", Tensor::scalar_i32(-1));
        let p = op(b, "softmax", "probs", &[("x", scores), ("axis", &axis)]);
        op(b, "matmul", "out", &[("x", &p), ("y", v)])
    }

    /// Fuses a copy of the program built by `build` at `target`, checks it validates and
    /// computes what the original does on deterministic inputs, and returns its op types.
    fn fused_ops(
        inputs: Vec<Var>,
        target: Target,
        build: impl Fn(&mut Builder) -> String,
    ) -> Vec<String> {
        let mut b = Builder::new("main", inputs.clone());
        let out = build(&mut b);
        let before = Program {
            target,
            functions: vec![b.finish(vec![out])],
            metadata: Default::default(),
            description: Default::default(),
        };
        validate_program(&before).unwrap();
        let mut after = before.clone();
        fuse(&mut after);
        validate_program(&after).unwrap();
        let feeds: BTreeMap<String, Value> = inputs
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let shape = v.ty.static_shape().unwrap();
                let n = shape.iter().product();
                let t = Tensor::from_f32(&shape, &values(n, i as u32 + 1));
                (v.name.clone(), Value::from_tensor(&t))
            })
            .collect();
        let want = run(before.main(), &feeds, RunOptions::default()).unwrap();
        let got = run(after.main(), &feeds, RunOptions::default()).unwrap();
        let (want, got) = (want[0].1.float().unwrap(), got[0].1.float().unwrap());
        assert_eq!(want.shape(), got.shape());
        let scale = want.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
        for (w, g) in want.iter().zip(got.iter()) {
            assert!(w.is_finite(), "reference output {w}");
            assert!((w - g).abs() <= 1e-5 * scale, "fused {g} vs original {w}");
        }
        after
            .main()
            .block
            .operations
            .iter()
            .filter(|o| o.op_type != "const")
            .map(|o| o.op_type.clone())
            .collect()
    }

    fn count(ops: &[String], op_type: &str) -> usize {
        ops.iter().filter(|o| *o == op_type).count()
    }

    /// torch's `nn.MultiheadAttention`-style export: `[B, S, H, E]` projections, the key
    /// transposed by `[0, 2, 3, 1]`, scores divided by √E.
    fn torch_block(b: &mut Builder) -> String {
        let q = transpose(b, "q", &[0, 2, 1, 3]);
        let k = transpose(b, "k", &[0, 2, 3, 1]);
        let v = transpose(b, "v", &[0, 2, 1, 3]);
        let s = op(b, "matmul", "scores", &[("x", &q), ("y", &k)]);
        let d = scalar(b, "sqrt_e", (E as f32).sqrt());
        let s = op(b, "real_div", "scaled", &[("x", &s), ("y", &d)]);
        weigh(b, &s, &v)
    }

    fn bshe() -> Vec<Var> {
        vec![
            input("q", &[B, L, H, E]),
            input("k", &[B, S, H, E]),
            input("v", &[B, S, H, E]),
        ]
    }

    fn bhse() -> Vec<Var> {
        vec![
            input("q", &[B, H, L, E]),
            input("k", &[B, H, S, E]),
            input("v", &[B, H, S, E]),
        ]
    }

    #[test]
    fn torch_export_becomes_one_sdpa_at_ios18() {
        let ops = fused_ops(bshe(), Target::IOS18, torch_block);
        assert_eq!(count(&ops, "scaled_dot_product_attention"), 1, "{ops:?}");
        // q and v keep their head transposes; k gets [0, 2, 1, 3] instead of [0, 2, 3, 1].
        assert_eq!(ops.len(), 4, "{ops:?}");
    }

    #[test]
    fn below_ios18_the_block_is_decomposed_without_the_key_transpose() {
        let ops = fused_ops(bshe(), Target::IOS17, torch_block);
        assert_eq!(count(&ops, "scaled_dot_product_attention"), 0);
        assert_eq!(count(&ops, "real_div"), 0, "{ops:?}");
        assert_eq!(count(&ops, "mul"), 1, "{ops:?}");
        assert_eq!(count(&ops, "transpose"), 3, "{ops:?}");
        assert_eq!(ops.len(), 7, "{ops:?}");
    }

    /// torch's SDPA export: `q·√s` and `k·√s` with a custom scale, `transpose_y`, and an
    /// additive float mask broadcast over heads and query positions.
    #[test]
    fn scales_on_q_and_k_and_an_additive_mask() {
        let mut inputs = bhse();
        inputs.push(input("mask", &[B, 1, 1, S]));
        for target in [Target::IOS18, Target::IOS16] {
            let ops = fused_ops(inputs.clone(), target, |b| {
                let root = scalar(b, "root", 0.3f32.sqrt());
                let q = op(b, "mul", "qs", &[("x", "q"), ("y", &root)]);
                let k = op(b, "mul", "ks", &[("x", &root), ("y", "k")]);
                let yes = b.constant("yes", Tensor::scalar_bool(true));
                let s = op(
                    b,
                    "matmul",
                    "scores",
                    &[("x", &q), ("y", &k), ("transpose_y", &yes)],
                );
                let s = op(b, "add", "masked", &[("x", "mask"), ("y", &s)]);
                weigh(b, &s, "v")
            });
            let fused = usize::from(target >= Target::IOS18);
            assert_eq!(
                count(&ops, "scaled_dot_product_attention"),
                fused,
                "{ops:?}"
            );
            // One mul of q by the combined scale (0.3·√E for SDPA, 0.3 decomposed).
            assert_eq!(count(&ops, "mul"), 1, "{ops:?}");
        }
    }

    /// GPT-2/Llama style: a constant causal condition applied by `select` with the fp32
    /// minimum (scores in the false branch), then a padding mask made of a comparison and
    /// `select` with -inf; the scale sits on the scores as a `mul`.
    #[test]
    fn causal_and_boolean_masks() {
        let mut inputs = bhse();
        inputs.push(input("padding", &[B, 1, 1, S]));
        let ops = fused_ops(inputs, Target::IOS18, |b| {
            let future: Vec<bool> = (0..L * S).map(|i| i % S > i / S + S - L).collect();
            let future = b.constant("future", Tensor::from_bool(&[L, S], &future));
            let k = transpose(b, "k", &[0, 1, 3, 2]);
            let s = op(b, "matmul", "scores", &[("x", "q"), ("y", &k)]);
            let c = scalar(b, "c", 1.0 / (E as f32).sqrt());
            let s = op(b, "mul", "scaled", &[("x", &s), ("y", &c)]);
            let min = scalar(b, "min", f32::MIN);
            let s = op(
                b,
                "select",
                "causal",
                &[("cond", &future), ("a", &min), ("b", &s)],
            );
            let zero = scalar(b, "zero", -1.5);
            let keep = op(b, "greater", "keep", &[("x", "padding"), ("y", &zero)]);
            let ninf = scalar(b, "ninf", f32::NEG_INFINITY);
            let s = op(
                b,
                "select",
                "padded",
                &[("cond", &keep), ("a", &s), ("b", &ninf)],
            );
            weigh(b, &s, "v")
        });
        assert_eq!(count(&ops, "scaled_dot_product_attention"), 1, "{ops:?}");
        assert_eq!(count(&ops, "softmax") + count(&ops, "matmul"), 0, "{ops:?}");
        assert_eq!(count(&ops, "mul"), 0, "the scale is SDPA's own: {ops:?}");
    }

    /// Grouped-query attention: 2 K/V heads repeated to 4 by expand_dims → tile → reshape.
    /// SDPA needs equal batch dims, so the repeats stay and the rest fuses.
    #[test]
    fn grouped_query_keys_keep_their_repeat() {
        let inputs = vec![
            input("q", &[B, H, L, E]),
            input("k", &[B, H / 2, S, E]),
            input("v", &[B, H / 2, S, E]),
        ];
        let ops = fused_ops(inputs, Target::IOS18, |b| {
            let repeat = |b: &mut Builder, x: &str| {
                let axes = b.constant("axes", Tensor::vec_i32(&[2]));
                let x = op(b, "expand_dims", "x5", &[("x", x), ("axes", &axes)]);
                let reps = b.constant("reps", Tensor::vec_i32(&[1, 1, 2, 1, 1]));
                let x = op(b, "tile", "tiled", &[("x", &x), ("reps", &reps)]);
                let shape = b.constant(
                    "shape",
                    Tensor::vec_i32(&[B as i32, H as i32, S as i32, E as i32]),
                );
                op(b, "reshape", "rep", &[("x", &x), ("shape", &shape)])
            };
            let k = repeat(b, "k");
            let v = repeat(b, "v");
            let kt = transpose(b, &k, &[0, 1, 3, 2]);
            let s = op(b, "matmul", "scores", &[("x", "q"), ("y", &kt)]);
            let d = scalar(b, "d", 2.0);
            let s = op(b, "real_div", "scaled", &[("x", &s), ("y", &d)]);
            weigh(b, &s, &v)
        });
        assert_eq!(count(&ops, "scaled_dot_product_attention"), 1, "{ops:?}");
        assert_eq!(count(&ops, "tile"), 2, "{ops:?}");
        assert_eq!(count(&ops, "transpose"), 0, "{ops:?}");
    }

    /// A key shared by every batch only broadcasts in `matmul`: SDPA cannot take it, so the
    /// block is decomposed instead, and still computes the same.
    #[test]
    fn broadcast_operands_stay_decomposed() {
        let inputs = vec![
            input("q", &[B, L, E]),
            input("k", &[1, S, E]),
            input("v", &[1, S, E]),
        ];
        let ops = fused_ops(inputs, Target::IOS18, |b| {
            let k = transpose(b, "k", &[0, 2, 1]);
            let s = op(b, "matmul", "scores", &[("x", "q"), ("y", &k)]);
            weigh(b, &s, "v")
        });
        assert_eq!(count(&ops, "scaled_dot_product_attention"), 0, "{ops:?}");
        assert_eq!(count(&ops, "transpose"), 0, "{ops:?}");
    }

    /// When the attention weights are also an output, nothing is rewritten.
    #[test]
    fn weights_read_elsewhere_block_the_fusion() {
        let mut b = Builder::new("main", bhse());
        let k = transpose(&mut b, "k", &[0, 1, 3, 2]);
        let s = op(&mut b, "matmul", "scores", &[("x", "q"), ("y", &k)]);
        let p = op(&mut b, "softmax", "probs", &[("x", &s)]);
        let out = op(&mut b, "matmul", "out", &[("x", &p), ("y", "v")]);
        let mut program = Program::new(Target::IOS18, vec![b.finish(vec![out, p])]);
        let before = program.clone();
        assert!(fuse(&mut program).counts.is_empty());
        assert_eq!(program, before);
    }
}
