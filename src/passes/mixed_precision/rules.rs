//! Rules keeping chosen ops in fp32: by MIL op type, by op or source-node name (glob), and by
//! pattern (the variance/RMS computation of a decomposed LayerNorm or RMSNorm).

use super::precision_ops;
use crate::ir::glob;
use crate::ir::ops::{self, NormRole, Square};
use crate::ir::{Argument, Function, Operation};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// Ops to keep in fp32, as given on the command line or in a recipe's `fp32` key.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fp32Rules {
    /// MIL op types (`pow`, `reduce_mean`, …).
    #[serde(default)]
    pub ops: Vec<String>,
    /// Globs (`*`, `?`) matched against op names and source (ONNX) node names.
    #[serde(default)]
    pub nodes: Vec<String>,
    /// Named op patterns.
    #[serde(default)]
    pub patterns: Vec<Fp32Pattern>,
}

/// A named group of ops that is numerically fragile in fp16.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Fp32Pattern {
    /// A decomposed LayerNorm/RMSNorm from its pow/square through its sqrt/rsqrt, with its
    /// reduce ops (the mean's and the variance's), and every fused `layer_norm` op.
    LayerNorm,
}

impl Fp32Pattern {
    /// The name used on the command line and in recipes.
    pub fn name(self) -> &'static str {
        match self {
            Fp32Pattern::LayerNorm => "layer-norm",
        }
    }
}

impl Fp32Rules {
    /// True when no rule is given.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty() && self.nodes.is_empty() && self.patterns.is_empty()
    }

    /// Adds `other`'s rules to these.
    pub fn extend(&mut self, other: &Fp32Rules) {
        self.ops.extend(other.ops.iter().cloned());
        self.nodes.extend(other.nodes.iter().cloned());
        self.patterns.extend(other.patterns.iter().copied());
    }

    /// The ops of `function` the rules keep in fp32 (by op name, with the first rule that
    /// keeps each). Only ops whose precision the fp16 pass chooses can match; a rule that
    /// matches none of them is an error naming the rule.
    pub fn select(&self, function: &Function) -> Result<BTreeMap<String, String>, String> {
        let candidates: Vec<&Operation> = precision_ops(function).map(|(_, op)| op).collect();
        let mut kept = BTreeMap::new();
        let mut problems = Vec::new();
        for op_type in &self.ops {
            let rule = format!("--fp32-ops {op_type}");
            let matched: Vec<&Operation> = candidates
                .iter()
                .copied()
                .filter(|op| &op.op_type == op_type)
                .collect();
            if matched.is_empty() {
                problems.push(format!("{rule}: no float op of type '{op_type}'"));
            }
            for op in matched {
                kept.entry(op.name.clone()).or_insert_with(|| rule.clone());
            }
        }
        for pattern in &self.nodes {
            let rule = format!("--fp32-nodes {pattern}");
            let matched: Vec<&Operation> = candidates
                .iter()
                .copied()
                .filter(|op| {
                    glob(pattern, &op.name)
                        || op.origin.as_deref().is_some_and(|o| glob(pattern, o))
                })
                .collect();
            if matched.is_empty() {
                problems.push(format!(
                    "{rule}: matches no float op name or source node name"
                ));
            }
            for op in matched {
                kept.entry(op.name.clone()).or_insert_with(|| rule.clone());
            }
        }
        for pattern in &self.patterns {
            let rule = format!("--fp32-pattern {}", pattern.name());
            let regions = match pattern {
                Fp32Pattern::LayerNorm => norm_regions(function),
            };
            if regions.is_empty() {
                problems.push(format!(
                    "{rule}: no decomposed LayerNorm/RMSNorm (pow or square → reduce → sqrt or rsqrt) found"
                ));
            }
            for name in regions.into_iter().flatten() {
                kept.entry(name).or_insert_with(|| rule.clone());
            }
        }
        if problems.is_empty() {
            Ok(kept)
        } else {
            Err(problems.join("; "))
        }
    }
}

/// Longest run of elementwise ops (epsilon add, scaling) between the variance's reduce op
/// and its sqrt/rsqrt.
const MAX_NORM_GAP: usize = 3;

/// The LayerNorm/RMSNorm regions of `function`, each as op names in program order: a fused
/// `layer_norm` op alone, or for a decomposed norm the mean's reduce op (LayerNorm only), the
/// pow/square, the variance's reduce op, the elementwise ops with a constant operand after it,
/// and the sqrt/rsqrt.
pub fn norm_regions(function: &Function) -> Vec<Vec<String>> {
    let ops = &function.block.operations;
    let mut producer: HashMap<&str, usize> = HashMap::new();
    let mut consumers: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, op) in ops.iter().enumerate() {
        for o in &op.outputs {
            producer.insert(&o.name, i);
        }
        for v in op.input_vars() {
            consumers.entry(v).or_default().push(i);
        }
    }
    let is_const = |v: &str| producer.get(v).is_some_and(|&i| ops[i].op_type == "const");
    let users = |i: usize| -> &[usize] {
        ops[i]
            .outputs
            .first()
            .and_then(|o| consumers.get(o.name.as_str()))
            .map_or(&[], Vec::as_slice)
    };
    let mut regions = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        if role(op).fused {
            regions.push(vec![op.name.clone()]);
            continue;
        }
        if !is_square(op, &producer, ops) {
            continue;
        }
        for &reduce in users(i) {
            if !is_reduce(&ops[reduce]) {
                continue;
            }
            let mut chain = vec![reduce];
            let mut end = None;
            let mut cur = reduce;
            for _ in 0..=MAX_NORM_GAP {
                let next = users(cur);
                if let Some(&root) = next.iter().find(|&&n| role(&ops[n]).root) {
                    end = Some(root);
                    break;
                }
                match next {
                    [only] if role(&ops[*only]).step && ops[*only].input_vars().any(is_const) => {
                        chain.push(*only);
                        cur = *only;
                    }
                    _ => break,
                }
            }
            let Some(root) = end else { continue };
            let mut region = vec![i];
            region.extend(chain);
            region.push(root);
            if let Some(mean) = mean_reduce(op, &producer, ops) {
                region.push(mean);
            }
            region.sort_unstable();
            region.dedup();
            regions.push(region.iter().map(|&k| ops[k].name.clone()).collect());
        }
    }
    regions
}

/// The part `op` can play in a norm, from its op definition.
fn role(op: &Operation) -> NormRole {
    ops::lookup(&op.op_type).map_or(NormRole::NONE, |def| def.norm)
}

/// True when `op` squares its input: `square(x)`, `pow(x, 2)`, `mul(x, x)` (as its op
/// definition's [`Square`] form says).
fn is_square(op: &Operation, producer: &HashMap<&str, usize>, ops: &[Operation]) -> bool {
    match role(op).square {
        None => false,
        Some(Square::Always) => true,
        Some(Square::ByTwo) => op
            .input("y")
            .and_then(|a| a.first())
            .and_then(|a| match a {
                Argument::Value(t) => Some(t.clone()),
                Argument::Var(v) => producer
                    .get(v.as_str())
                    .and_then(|&i| ops[i].const_value().cloned()),
            })
            .is_some_and(|t| t.len() == 1 && t.to_f32_vec() == [2.0]),
        Some(Square::BySelf) => {
            let x = op
                .input("x")
                .and_then(|a| a.first())
                .and_then(Argument::var);
            let y = op
                .input("y")
                .and_then(|a| a.first())
                .and_then(Argument::var);
            x.is_some() && x == y
        }
    }
}

/// True for a reduction giving a norm's mean or variance.
fn is_reduce(op: &Operation) -> bool {
    role(op).reduce
}

/// For a square of `sub(x, m)` where `m` is a reduce of `x` (a LayerNorm's centring), the
/// index of that reduce op.
fn mean_reduce(
    square: &Operation,
    producer: &HashMap<&str, usize>,
    ops: &[Operation],
) -> Option<usize> {
    let first_var = |op: &Operation, param: &str| {
        op.input(param)
            .and_then(|a| a.first())
            .and_then(Argument::var)
            .map(str::to_string)
    };
    let centred = first_var(square, "x")?;
    let sub = &ops[*producer.get(centred.as_str())?];
    if sub.op_type != "sub" {
        return None;
    }
    let (x, m) = (first_var(sub, "x")?, first_var(sub, "y")?);
    let reduce = *producer.get(m.as_str())?;
    (is_reduce(&ops[reduce]) && first_var(&ops[reduce], "x")? == x).then_some(reduce)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{Builder, DType, Tensor, TensorType, Var};

    /// y = LayerNorm(x) decomposed as ONNX exports it, followed by a relu.
    fn layer_norm() -> Function {
        let mut b = Builder::new(
            "main",
            vec![Var::new("x", TensorType::fixed(DType::F32, &[2, 4]))],
        );
        let axes = b.constant("axes", Tensor::vec_i32(&[-1]));
        let keep = b.constant("keep", Tensor::scalar_bool(true));
        let two = b.constant("two", Tensor::scalar_f32(2.0));
        let eps = b.constant("eps", Tensor::scalar_f32(1e-5));
        let mean = b
            .op1(
                "reduce_mean",
                "mean",
                &[("x", &["x"]), ("axes", &[&axes]), ("keep_dims", &[&keep])],
            )
            .unwrap();
        let d = b
            .op1("sub", "d", &[("x", &["x"]), ("y", &[&mean])])
            .unwrap();
        let sq = b.op1("pow", "sq", &[("x", &[&d]), ("y", &[&two])]).unwrap();
        let var = b
            .op1(
                "reduce_mean",
                "var",
                &[("x", &[&sq]), ("axes", &[&axes]), ("keep_dims", &[&keep])],
            )
            .unwrap();
        let ve = b
            .op1("add", "ve", &[("x", &[&var]), ("y", &[&eps])])
            .unwrap();
        let sd = b.op1("sqrt", "sd", &[("x", &[&ve])]).unwrap();
        let n = b
            .op1("real_div", "n", &[("x", &[&d]), ("y", &[&sd])])
            .unwrap();
        let y = b.op1("relu", "y", &[("x", &[&n])]).unwrap();
        b.finish(vec![y])
    }

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn finds_the_pow_to_sqrt_region_and_both_reduces() {
        let regions = norm_regions(&layer_norm());
        assert_eq!(regions.len(), 1, "{regions:?}");
        let region: Vec<&str> = regions[0].iter().map(String::as_str).collect();
        assert_eq!(region, ["mean", "sq", "var", "ve", "sd"]);
    }

    /// Llama's RMSNorm as exported at opset 13 and 18 (reduce axes as attribute or input both
    /// become `reduce_mean` axes): `pow(x, 2) → reduce_mean → add ε → rsqrt → mul x → mul w`.
    /// Fusion leaves it decomposed; the pattern covers it before and after fusion, and covers
    /// a fused LayerNorm.
    #[test]
    fn covers_rms_norm_and_fused_layer_norm() {
        use crate::ir::{Program, Target};
        let mut b = Builder::new(
            "main",
            vec![Var::new("x", TensorType::fixed(DType::F32, &[1, 3, 4]))],
        );
        let axes = b.constant("axes", Tensor::vec_i32(&[-1]));
        let keep = b.constant("keep", Tensor::scalar_bool(true));
        let two = b.constant("two", Tensor::scalar_f32(2.0));
        let eps = b.constant("eps", Tensor::scalar_f32(1e-6));
        let w = b.constant("w", Tensor::from_f32(&[4], &[1.0, 0.5, 2.0, 1.5]));
        let sq = b
            .op1("pow", "sq", &[("x", &["x"]), ("y", &[&two])])
            .unwrap();
        let ms = b
            .op1(
                "reduce_mean",
                "ms",
                &[("x", &[&sq]), ("axes", &[&axes]), ("keep_dims", &[&keep])],
            )
            .unwrap();
        let ve = b
            .op1("add", "ve", &[("x", &[&ms]), ("y", &[&eps])])
            .unwrap();
        let r = b.op1("rsqrt", "r", &[("x", &[&ve])]).unwrap();
        let n = b.op1("mul", "n", &[("x", &["x"]), ("y", &[&r])]).unwrap();
        let y = b.op1("mul", "y", &[("x", &[&n]), ("y", &[&w])]).unwrap();
        let rms = b.finish(vec![y]);
        let rules = Fp32Rules {
            patterns: vec![Fp32Pattern::LayerNorm],
            ..Default::default()
        };
        let mut program = Program::new(Target::IOS17, vec![rms]);
        assert_eq!(crate::passes::fuse(&mut program).total(), 0);
        let kept: Vec<String> = rules.select(program.main()).unwrap().into_keys().collect();
        assert_eq!(kept, names(&["ms", "r", "sq", "ve"]));

        let mut program = Program::new(Target::IOS17, vec![layer_norm()]);
        assert_eq!(crate::passes::fuse(&mut program).counts["layer_norm"], 1);
        let kept = rules.select(program.main()).unwrap();
        assert_eq!(kept.keys().collect::<Vec<_>>(), ["n"]);
    }

    #[test]
    fn rules_select_and_empty_rules_fail() {
        let f = layer_norm();
        let rules = Fp32Rules {
            ops: names(&["sqrt"]),
            nodes: names(&["*"]),
            patterns: vec![],
        };
        let kept = rules.select(&f).unwrap();
        // Every float op matches "*" (constants do not count); sqrt keeps its first rule.
        assert_eq!(kept.len(), 8, "{kept:?}");
        assert_eq!(kept["sd"], "--fp32-ops sqrt");
        assert_eq!(kept["y"], "--fp32-nodes *");
        let bad = Fp32Rules {
            ops: names(&["conv", "sqrt"]),
            nodes: names(&["nothing*"]),
            patterns: vec![],
        };
        let e = bad.select(&f).unwrap_err();
        assert!(
            e.contains("--fp32-ops conv: no float op of type 'conv'"),
            "{e}"
        );
        assert!(e.contains("--fp32-nodes nothing*"), "{e}");
        assert!(!e.contains("sqrt"), "{e}");
    }

    #[test]
    fn a_pattern_without_a_norm_is_an_error() {
        let mut b = Builder::new(
            "main",
            vec![Var::new("x", TensorType::fixed(DType::F32, &[4]))],
        );
        let y = b.op1("sqrt", "y", &[("x", &["x"])]).unwrap();
        let f = b.finish(vec![y]);
        let rules = Fp32Rules {
            patterns: vec![Fp32Pattern::LayerNorm],
            ..Default::default()
        };
        let e = rules.select(&f).unwrap_err();
        assert!(
            e.starts_with("--fp32-pattern layer-norm: no decomposed"),
            "{e}"
        );
    }
}
