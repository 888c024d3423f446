//! FP16 compute precision: ops compute in fp16 with their weights stored as fp16, and casts
//! are inserted only where precision changes (after fp32 function inputs, before fp32 function
//! outputs, and around ops that must stay in fp32).

use crate::ir::ops::{self, ParamType};
use crate::ir::{Argument, DType, NameTable, Operation, Program, Tensor, TensorType, Var};
use half::f16;
use std::collections::HashMap;

/// Op types that never change precision: they move between dtypes themselves or have no
/// float arithmetic of their own.
const NEVER_FP16: &[&str] = &["const", "cast", "shape"];

/// Largest finite fp16 value.
const FP16_MAX: f64 = 65504.0;

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
/// in fp32 (mixed precision); ops whose constant inputs hold finite values beyond fp16's
/// range also stay in fp32. Function inputs and outputs keep their declared dtypes.
pub fn to_fp16(
    program: &mut Program,
    keep_fp32: impl Fn(&Operation) -> Option<String>,
) -> Fp16Report {
    let mut report = Fp16Report::default();
    for function in &mut program.functions {
        let mut names = NameTable::default();
        for v in &function.inputs {
            names.reserve(&v.name);
        }
        for op in &function.block.operations {
            names.reserve(&op.name);
            for o in &op.outputs {
                names.reserve(&o.name);
            }
        }
        let consts: HashMap<String, Tensor> = function
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
            out: Vec::new(),
            casts: 0,
        };

        for mut op in std::mem::take(&mut function.block.operations) {
            let is_float = |v: &str| types.get(v).is_some_and(|t| t.dtype.is_float());
            let decision = if !decides_precision(&op, is_float) {
                None
            } else if let Some(reason) = keep_fp32(&op) {
                Some(Err(reason))
            } else if let Some(reason) = out_of_range_const(&op, &consts) {
                Some(Err(reason))
            } else {
                Some(Ok(()))
            };
            match decision {
                Some(Ok(())) => {
                    rewriter.retarget_inputs(&mut op, &types, &consts, DType::F16);
                    for out in &mut op.outputs {
                        if out.ty.dtype == DType::F32 {
                            out.ty.dtype = DType::F16;
                        }
                    }
                    report.fp16_ops += 1;
                }
                Some(Err(reason)) => {
                    rewriter.retarget_inputs(&mut op, &types, &consts, DType::F32);
                    report.fp32_ops.push((op.name.clone(), reason));
                }
                None if op.op_type != "const" => {
                    rewriter.retarget_inputs(&mut op, &types, &consts, DType::F32)
                }
                None => {}
            }
            for out in &op.outputs {
                types.insert(out.name.clone(), out.ty.clone());
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
        function.block.operations = rewriter.out;
    }
    report
}

/// True when the fp16 pass chooses this op's compute precision: it is not a `const`, `cast`
/// or `shape` op, and it reads or produces a float tensor (`is_float` tells an input
/// variable's kind).
pub fn decides_precision(op: &Operation, is_float: impl Fn(&str) -> bool) -> bool {
    !NEVER_FP16.contains(&op.op_type.as_str())
        && (op.outputs.iter().any(|o| o.ty.dtype.is_float()) || op.input_vars().any(is_float))
}

/// A reason to keep `op` in fp32 when one of its constant float inputs has a finite value
/// that fp16 cannot represent (|v| > 65504; |v| ≥ 1e38 counts as infinity, as in coremltools).
fn out_of_range_const(op: &Operation, consts: &HashMap<String, Tensor>) -> Option<String> {
    op.input_vars().find_map(|v| {
        let t = consts.get(v).filter(|t| t.dtype() == DType::F32)?;
        let max = t
            .to_f64_vec()
            .into_iter()
            .filter(|x| x.is_finite() && x.abs() < 1e38)
            .fold(0.0f64, |m, x| m.max(x.abs()));
        (max > FP16_MAX).then(|| format!("constant '{v}' holds {max:e}, beyond fp16's range"))
    })
}

/// Builds the rewritten op list, creating each cast or re-typed constant once.
struct Rewriter {
    names: NameTable,
    /// (variable, dtype) → the variable holding it in that dtype.
    aliases: HashMap<(String, DType), String>,
    out: Vec<Operation>,
    casts: usize,
}

impl Rewriter {
    /// Rebinds every float input of a type-variable parameter of `op` to a `dtype` version.
    fn retarget_inputs(
        &mut self,
        op: &mut Operation,
        types: &HashMap<String, TensorType>,
        consts: &HashMap<String, Tensor>,
        dtype: DType,
    ) {
        let def = ops::lookup(&op.op_type);
        for (param, args) in &mut op.inputs {
            let follows_t = def
                .and_then(|d| d.param(param))
                .is_none_or(|p| matches!(p.ty, ParamType::T | ParamType::TOrInt));
            if !follows_t {
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
                *name = self.alias(name, ty, consts, dtype);
            }
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
                    to_f16_preserving_tiny(value)
                } else {
                    value.cast(dtype)
                };
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

/// Casts an fp32 constant to fp16; in small tensors (< 400 elements, e.g. epsilons) non-zero
/// values that would flush to zero become ±2⁻²⁴ instead, as coremltools does.
fn to_f16_preserving_tiny(value: &Tensor) -> Tensor {
    let small = value.len() < 400;
    let halves: Vec<f16> = value
        .to_f32_vec()
        .into_iter()
        .map(|v| {
            let h = f16::from_f32(v);
            if small && v != 0.0 && h.to_f32() == 0.0 {
                f16::from_f32(2f32.powi(-24).copysign(v))
            } else {
                h
            }
        })
        .collect();
    Tensor::from_f16(value.shape(), &halves)
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
        Program {
            target: Target::IOS16,
            functions: vec![b.finish(vec![z])],
            metadata: Default::default(),
        }
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
}
