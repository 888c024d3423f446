//! FP16 compute precision: ops compute in fp16 with their weights stored as fp16, and casts
//! are inserted only where precision changes (after fp32 function inputs, before fp32 function
//! outputs, and around ops that must stay in fp32).
//!
//! Every float value an op reads follows the op's precision, whatever the parameter (a gather
//! table, concat values, select branches, reshape data...), except parameters that are
//! settings ([`ParamType::Setting`]). Constants are converted, never cast at run time; a finite
//! fp32 constant beyond fp16's range saturates to ±65504 (so additive masks such as
//! `finfo(fp32).min` stay finite) and infinities stay infinite. A constant whose every use now
//! reads its converted copy is dropped as soon as the last use is rebound, so a model's fp32
//! and fp16 weights are not all held at once.

use crate::ir::ops::{self, ParamType, Precision};
use crate::ir::{Argument, DType, NameTable, Operation, Program, Tensor, TensorType, Var};
use half::f16;
use half::slice::HalfFloatSliceExt;
use rayon::prelude::*;
use std::collections::{HashMap, HashSet};

/// Elements per parallel task when converting a constant to fp16.
const CONVERT_TASK: usize = 1 << 16;

/// What the fp16 pass did.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Fp16Report {
    /// Ops now computing in fp16.
    pub fp16_ops: usize,
    /// Ops kept in fp32, with the reason.
    pub fp32_ops: Vec<(String, String)>,
    /// Cast ops inserted.
    pub casts: usize,
}

/// Converts the program to fp16 compute. `keep_fp32(op)` returns a reason when an op must stay
/// in fp32 (mixed precision). Function inputs and outputs keep their declared dtypes.
pub fn to_fp16(
    program: &mut Program,
    keep_fp32: impl Fn(&Operation) -> Option<String>,
) -> Fp16Report {
    let mut report = Fp16Report::default();
    for function in &mut program.functions {
        let names = NameTable::of_function(function);
        let mut consts: HashMap<String, Tensor> = function
            .block
            .operations
            .iter()
            .filter_map(|op| {
                op.const_value()
                    .map(|v| (op.outputs[0].name.clone(), v.clone()))
            })
            .collect();
        let mut types: HashMap<String, TensorType> = function
            .inputs
            .iter()
            .map(|v| (v.name.clone(), v.ty.clone()))
            .collect();
        let declared_outputs: HashMap<String, DType> = function
            .outputs()
            .into_iter()
            .map(|v| (v.name, v.ty.dtype))
            .collect();
        let mut rewriter = Rewriter {
            names,
            aliases: HashMap::new(),
            uses: use_counts(function),
            const_at: HashMap::new(),
            dropped: HashSet::new(),
            out: Vec::new(),
            casts: 0,
        };

        for mut op in std::mem::take(&mut function.block.operations) {
            let is_float = |v: &str| types.get(v).is_some_and(|t| t.dtype.is_float());
            let always = match ops::lookup(&op.op_type).map(|def| def.precision) {
                Some(Precision::Fp32(reason)) => Some(reason),
                _ => None,
            };
            let decision = if !decides_precision(&op, is_float) {
                None
            } else if let Some(reason) = always {
                Some(Err(reason.to_string()))
            } else if let Some(reason) = keep_fp32(&op) {
                Some(Err(reason))
            } else {
                Some(Ok(()))
            };
            match decision {
                Some(Ok(())) => {
                    rewriter.retarget_inputs(&mut op, &types, &mut consts, DType::F16);
                    if op.op_type.starts_with("constexpr_") {
                        retype_inline_floats(&mut op, DType::F16);
                    }
                    for out in &mut op.outputs {
                        if out.ty.dtype == DType::F32 {
                            out.ty.dtype = DType::F16;
                        }
                    }
                    report.fp16_ops += 1;
                }
                Some(Err(reason)) => {
                    rewriter.retarget_inputs(&mut op, &types, &mut consts, DType::F32);
                    report.fp32_ops.push((op.name.clone(), reason));
                }
                None => {}
            }
            for out in &op.outputs {
                types.insert(out.name.clone(), out.ty.clone());
            }
            if op.op_type == "const" {
                rewriter
                    .const_at
                    .insert(op.outputs[0].name.clone(), rewriter.out.len());
            }
            rewriter.out.push(op);
        }

        let outputs = function.block.outputs.clone();
        for name in outputs {
            let Some(ty) = types.get(&name).cloned() else {
                continue;
            };
            if ty.dtype != DType::F16 || declared_outputs.get(&name) != Some(&DType::F32) {
                continue;
            }
            let inner = rewriter.names.fresh(&format!("{name}_fp16"));
            for op in &mut rewriter.out {
                op.rename_input(&name, &inner);
                for o in &mut op.outputs {
                    if o.name == name {
                        o.name = inner.clone();
                    }
                }
            }
            rewriter.push_cast(&inner, &name, &ty, DType::F32);
        }
        report.casts += rewriter.casts;
        let dropped = rewriter.dropped;
        function.block.operations = rewriter
            .out
            .into_iter()
            .enumerate()
            .filter_map(|(i, op)| (!dropped.contains(&i)).then_some(op))
            .collect();
    }
    report
}

/// Converts the float values a constexpr op holds inline (its scales) to `dtype`, which its
/// output then has: a pre-quantized model's weights are constexpr ops before this pass.
fn retype_inline_floats(op: &mut Operation, dtype: DType) {
    let inline = op.attributes.values_mut().chain(
        op.inputs
            .iter_mut()
            .flat_map(|(_, args)| args.iter_mut())
            .filter_map(|a| match a {
                Argument::Value(t) => Some(t),
                Argument::Var(_) => None,
            }),
    );
    for t in inline {
        if t.dtype().is_float() && t.dtype() != dtype {
            *t = t.cast(dtype);
        }
    }
}

/// True when the fp16 pass chooses this op's compute precision: it is not a `const` or an op
/// whose definition keeps its precision (`cast`, `shape`, state ops; states are fp16 whatever
/// the compute precision), and it reads or produces a float tensor (`is_float` tells an input
/// variable's kind).
pub fn decides_precision(op: &Operation, is_float: impl Fn(&str) -> bool) -> bool {
    let kept = op.op_type == "const"
        || ops::lookup(&op.op_type).is_some_and(|def| def.precision == Precision::Kept);
    !kept && (op.outputs.iter().any(|o| o.ty.dtype.is_float()) || op.input_vars().any(is_float))
}

/// How many op arguments read each variable, plus one for each function output.
fn use_counts(function: &crate::ir::Function) -> HashMap<String, usize> {
    let mut uses: HashMap<String, usize> = HashMap::new();
    let ops = &function.block.operations;
    let reads = ops.iter().flat_map(|op| op.input_vars());
    for name in reads.chain(function.block.outputs.iter().map(String::as_str)) {
        *uses.entry(name.to_string()).or_default() += 1;
    }
    uses
}

/// Builds the rewritten op list, creating each cast or re-typed constant once.
struct Rewriter {
    names: NameTable,
    /// (variable, dtype) → the variable holding it in that dtype.
    aliases: HashMap<(String, DType), String>,
    /// Reads of each variable not yet rebound to an alias.
    uses: HashMap<String, usize>,
    /// Position in `out` of each `const` op.
    const_at: HashMap<String, usize>,
    /// Positions in `out` of `const` ops no longer read, their values already dropped.
    dropped: HashSet<usize>,
    out: Vec<Operation>,
    casts: usize,
}

impl Rewriter {
    /// Rebinds every float input of `op` (settings excepted) to a `dtype` version.
    fn retarget_inputs(
        &mut self,
        op: &mut Operation,
        types: &HashMap<String, TensorType>,
        consts: &mut HashMap<String, Tensor>,
        dtype: DType,
    ) {
        let def = ops::lookup(&op.op_type);
        for (param, args) in &mut op.inputs {
            let is_setting = def
                .and_then(|d| d.param(param))
                .is_some_and(|p| p.ty == ParamType::Setting);
            if is_setting {
                continue;
            }
            for arg in args {
                let Argument::Var(name) = arg else { continue };
                let Some(ty) = types.get(name.as_str()) else {
                    continue;
                };
                if !matches!(ty.dtype, DType::F16 | DType::F32) || ty.dtype == dtype {
                    continue;
                }
                let alias = self.alias(name, ty, consts, dtype);
                let original = std::mem::replace(name, alias);
                self.release_use(&original, consts);
            }
        }
    }

    /// Counts one read of `name` as rebound; a constant no longer read at all is dropped
    /// (its op removed at the end of the pass, its value now).
    fn release_use(&mut self, name: &str, consts: &mut HashMap<String, Tensor>) {
        let Some(left) = self.uses.get_mut(name) else {
            return;
        };
        *left = left.saturating_sub(1);
        if *left > 0 {
            return;
        }
        if let Some(&at) = self.const_at.get(name) {
            consts.remove(name);
            self.out[at].attributes.clear();
            self.dropped.insert(at);
        }
    }

    /// The variable holding `name` in `dtype`: a re-typed constant or a cast, made once.
    fn alias(
        &mut self,
        name: &str,
        ty: &TensorType,
        consts: &HashMap<String, Tensor>,
        dtype: DType,
    ) -> String {
        if let Some(a) = self.aliases.get(&(name.to_string(), dtype)) {
            return a.clone();
        }
        let alias = self.names.fresh(&format!("{name}_to_{}", dtype.name()));
        match consts.get(name) {
            Some(value) => {
                let converted = if dtype == DType::F16 {
                    value.defer(DType::F16, value.shape(), to_f16_saturating)
                } else {
                    value.cast(dtype)
                };
                value.release_pages();
                self.out.push(Operation::constant(alias.clone(), converted));
            }
            None => self.push_cast(name, &alias, ty, dtype),
        }
        self.aliases
            .insert((name.to_string(), dtype), alias.clone());
        alias
    }

    /// Appends `out = cast(x=src, dtype=…)`.
    fn push_cast(&mut self, src: &str, out: &str, ty: &TensorType, dtype: DType) {
        let dtype_var = self.names.fresh(&format!("{out}_dtype"));
        self.out.push(Operation::constant(
            dtype_var.clone(),
            Tensor::scalar_string(dtype.name()),
        ));
        let name = self.names.fresh(&format!("cast_{out}"));
        self.out.push(Operation {
            op_type: "cast".into(),
            name,
            inputs: vec![
                ("x".into(), vec![Argument::Var(src.to_string())]),
                ("dtype".into(), vec![Argument::Var(dtype_var)]),
            ],
            outputs: vec![Var::new(out, ty.with_dtype(dtype))],
            attributes: Default::default(),
            origin: None,
        });
        self.casts += 1;
    }
}

/// Converts an fp32 constant to fp16. Finite values beyond fp16's range saturate to ±65504
/// (infinities and NaN stay as they are); in small tensors (< 400 elements, e.g. epsilons)
/// non-zero values that would flush to zero become ±2⁻²⁴ instead, as coremltools does.
fn to_f16_saturating(value: &Tensor) -> Tensor {
    let small = value.len() < 400;
    let fix = |v: f32, h: f16| {
        if v.is_finite() && h.is_infinite() {
            f16::MAX.copysign(h)
        } else if small && v != 0.0 && h.to_f32() == 0.0 {
            f16::from_f32(2f32.powi(-24).copysign(v))
        } else {
            h
        }
    };
    let widened;
    // fp32 elements are read straight from the tensor's bytes, without a widened copy.
    let wide: &[u8] = if value.dtype() == DType::F32 {
        value.bytes()
    } else {
        widened = value.cast(DType::F32);
        widened.bytes()
    };
    let mut out = vec![0u8; 2 * value.len()];
    out.par_chunks_mut(2 * CONVERT_TASK)
        .zip(wide.par_chunks(4 * CONVERT_TASK))
        .for_each(|(out, wide)| {
            let (mut floats, mut halves) = ([0f32; 256], [f16::ZERO; 256]);
            for (out, wide) in out.chunks_mut(2 * 256).zip(wide.chunks(4 * 256)) {
                let n = out.len() / 2;
                for (f, b) in floats.iter_mut().zip(wide.chunks_exact(4)) {
                    *f = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                }
                // Vector conversion (F16C where the CPU has it), then the saturation rules.
                halves[..n].convert_from_f32_slice(&floats[..n]);
                for ((b, &h), &v) in out.chunks_exact_mut(2).zip(&halves[..n]).zip(&floats) {
                    b.copy_from_slice(&fix(v, h).to_le_bytes());
                }
            }
        });
    Tensor::from_bytes(DType::F16, value.shape(), out.into()).expect("two bytes per element")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{validate_program, Builder, Target};

    fn program() -> Program {
        let mut b = Builder::new(
            "main",
            vec![Var::new("x", TensorType::fixed(DType::F32, &[2]))],
        );
        let w = b.constant("w", Tensor::from_f32(&[2], &[1.5, 1e-9]));
        let y = b.op1("add", "y", &[("x", &["x"]), ("y", &[&w])]).unwrap();
        let z = b.op1("add", "z", &[("x", &[&y]), ("y", &[&y])]).unwrap();
        Program::new(Target::IOS16, vec![b.finish(vec![z])])
    }

    #[test]
    fn casts_only_at_the_boundaries() {
        let mut p = program();
        let report = to_fp16(&mut p, |_| None);
        validate_program(&p).unwrap();
        assert_eq!(report.fp16_ops, 2);
        assert_eq!(
            report.casts, 2,
            "one cast after the input, one before the output"
        );
        let f = p.main();
        assert_eq!(f.inputs[0].ty.dtype, DType::F32);
        assert_eq!(f.outputs()[0].ty.dtype, DType::F32);
        assert_eq!(f.outputs()[0].name, "z");
        let w16 = f
            .block
            .operations
            .iter()
            .find(|o| o.name == "w_to_fp16")
            .unwrap()
            .const_value()
            .unwrap();
        assert_eq!(w16.dtype(), DType::F16);
        assert_eq!(
            w16.to_f32_vec(),
            vec![1.5, 2f32.powi(-24)],
            "tiny constants do not flush to zero"
        );
    }

    #[test]
    fn converted_constants_are_dropped_once_nothing_reads_them() {
        // `w` feeds an fp16 op only: its fp32 op is gone after the pass. `v` also feeds an op
        // kept in fp32, so it stays next to its fp16 copy.
        let mut b = Builder::new(
            "main",
            vec![Var::new("x", TensorType::fixed(DType::F32, &[2]))],
        );
        let w = b.constant("w", Tensor::from_f32(&[2], &[1.0, 2.0]));
        let v = b.constant("v", Tensor::from_f32(&[2], &[3.0, 4.0]));
        let y = b.op1("add", "y", &[("x", &["x"]), ("y", &[&w])]).unwrap();
        let z = b.op1("mul", "z", &[("x", &[&y]), ("y", &[&v])]).unwrap();
        let k = b.op1("add", "k", &[("x", &[&z]), ("y", &[&v])]).unwrap();
        let mut p = Program::new(Target::IOS16, vec![b.finish(vec![k])]);
        to_fp16(&mut p, |op| (op.name == "k").then(|| "rule".to_string()));
        validate_program(&p).unwrap();
        let names: Vec<&str> = p.main().op_names();
        assert!(!names.contains(&"w"), "{names:?}");
        assert!(names.contains(&"w_to_fp16"), "{names:?}");
        assert!(
            names.contains(&"v") && names.contains(&"v_to_fp16"),
            "{names:?}"
        );
    }

    #[test]
    fn kept_ops_get_fp32_inputs() {
        let mut p = program();
        let report = to_fp16(&mut p, |op| (op.name == "z").then(|| "rule".to_string()));
        validate_program(&p).unwrap();
        assert_eq!(report.fp16_ops, 1);
        assert_eq!(report.fp32_ops, vec![("z".to_string(), "rule".to_string())]);
        assert_eq!(
            report.casts, 2,
            "input to fp16, y back to fp32 for z; z's output needs none"
        );
    }

    /// A transformer-style program: an embedding gather from a constant table, a class-token
    /// constant concatenated to it, and an additive mask `(1 - m) * finfo(fp32).min` chosen by
    /// `select` against a constant branch.
    fn embedding_program() -> Program {
        let mut b = Builder::new(
            "main",
            vec![
                Var::new("ids", TensorType::fixed(DType::I32, &[2])),
                Var::new("m", TensorType::fixed(DType::F32, &[3])),
            ],
        );
        let table = b.constant(
            "table",
            Tensor::from_f32(
                &[5, 3],
                &(0..15).map(|v| v as f32 * 0.25).collect::<Vec<_>>(),
            ),
        );
        let zero = b.constant("zero", Tensor::scalar_i32(0));
        let emb = b
            .op1(
                "gather",
                "emb",
                &[("x", &[&table]), ("indices", &["ids"]), ("axis", &[&zero])],
            )
            .unwrap();
        let cls = b.constant("cls", Tensor::from_f32(&[1, 3], &[9.0, 8.0, 7.0]));
        let cat = b
            .op1(
                "concat",
                "cat",
                &[("values", &[&cls, &emb]), ("axis", &[&zero])],
            )
            .unwrap();
        let one = b.constant("one", Tensor::from_f32(&[], &[1.0]));
        let inv = b
            .op1("sub", "inv", &[("x", &[&one]), ("y", &["m"])])
            .unwrap();
        let min = b.constant("min", Tensor::from_f32(&[], &[f32::MIN]));
        let mask = b
            .op1("mul", "mask", &[("x", &[&inv]), ("y", &[&min])])
            .unwrap();
        let half = b.constant("half", Tensor::from_f32(&[], &[0.5]));
        let keep = b
            .op1("greater", "keep", &[("x", &["m"]), ("y", &[&half])])
            .unwrap();
        let big = b.constant(
            "big",
            Tensor::from_f32(&[3], &[-1e30, f32::NEG_INFINITY, 70000.0]),
        );
        let chosen = b
            .op1(
                "select",
                "chosen",
                &[("cond", &[&keep]), ("a", &[&big]), ("b", &[&mask])],
            )
            .unwrap();
        let scores = b
            .op1("add", "scores", &[("x", &[&cat]), ("y", &[&chosen])])
            .unwrap();
        Program::new(Target::IOS17, vec![b.finish(vec![scores])])
    }

    fn run_program(p: &Program, emulate_fp16: bool) -> Vec<f32> {
        use crate::interp::{run, RunOptions, Value};
        use ndarray::{ArrayD, IxDyn};
        let inputs = std::collections::BTreeMap::from([
            (
                "ids".to_string(),
                Value::Int(ArrayD::from_shape_vec(IxDyn(&[2]), vec![4, 1]).unwrap()),
            ),
            (
                "m".to_string(),
                Value::Float(ArrayD::from_shape_vec(IxDyn(&[3]), vec![1.0, 0.0, 1.0]).unwrap()),
            ),
        ]);
        let out = run(p.main(), &inputs, RunOptions { emulate_fp16 }).unwrap();
        out[0].1.float().unwrap().iter().copied().collect()
    }

    #[test]
    fn every_float_input_follows_the_op() {
        let mut p = embedding_program();
        let report = to_fp16(&mut p, |_| None);
        crate::passes::remove_dead_code(&mut p);
        validate_program(&p).unwrap();
        assert!(report.fp32_ops.is_empty(), "{:?}", report.fp32_ops);
        let f = p.main();
        for op in &f.block.operations {
            if op.op_type == "cast" {
                continue;
            }
            for out in &op.outputs {
                assert_ne!(out.ty.dtype, DType::F32, "{} stayed fp32", op.name);
            }
        }
        assert_eq!(report.casts, 2, "m in, scores out: constants are converted");
        let value = |name: &str| {
            f.block
                .operations
                .iter()
                .find(|o| o.name == name)
                .and_then(|o| o.const_value())
                .unwrap_or_else(|| panic!("no constant {name}"))
                .to_f32_vec()
        };
        assert_eq!(
            value("min_to_fp16"),
            vec![-65504.0],
            "finite constants saturate"
        );
        assert_eq!(
            value("big_to_fp16"),
            vec![-65504.0, f32::NEG_INFINITY, 65504.0],
            "infinity stays infinite"
        );
        assert_eq!(value("table_to_fp16").len(), 15);
        // (1 - m) * min stays finite: 0 or -65504, never NaN.
        let fp32 = run_program(&embedding_program(), false);
        let fp16 = run_program(&p, true);
        assert!(fp16.iter().all(|v| v.is_finite()), "{fp16:?}");
        assert_eq!(fp32.len(), fp16.len());
        for (a, b) in fp32.iter().zip(&fp16) {
            let expected = a.clamp(-65504.0, 65504.0);
            assert!(
                (expected - b).abs() <= 1e-2 * expected.abs().max(1.0),
                "{a} vs {b}"
            );
        }
    }

    #[test]
    fn any_op_type_can_stay_fp32() {
        let mut p = embedding_program();
        let keep = ["emb", "cat", "chosen"];
        let report = to_fp16(&mut p, |op| {
            keep.contains(&op.name.as_str()).then(|| "rule".to_string())
        });
        validate_program(&p).unwrap();
        let kept: Vec<&str> = report.fp32_ops.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(kept, keep);
        let f = p.main();
        let table = f.block.operations.iter().find(|o| o.name == "emb").unwrap();
        assert_eq!(table.outputs[0].ty.dtype, DType::F32);
    }
}
