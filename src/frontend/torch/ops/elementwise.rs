//! Elementwise ops: arithmetic (with torch's `alpha` and type promotion to the recorded
//! output dtype), comparisons, logic, unary math, `where`, `clamp`.

use super::ArgDefault::{Int, None as NoDefault};
use super::{bind_in_place, op, Call, Ctx, Emit, OpEntry};
use crate::ir::DType;
use crate::Error;

/// `x ⊕ alpha·y` with both operands converted to the output dtype; `reversed` swaps them
/// (`rsub`).
fn arith(ctx: &mut Ctx, call: &Call, mil: &str, reversed: bool) -> Result<(), Error> {
    let out = ctx.out(call, 0);
    let dtype = ctx.out_dtype(call, 0)?;
    let mut x = ctx.operand(call, "self", dtype)?;
    let mut y = ctx.operand(call, "other", dtype)?;
    if reversed {
        std::mem::swap(&mut x, &mut y);
    }
    let alpha = ctx.opt_float(call, "alpha")?.unwrap_or(1.0);
    if alpha != 1.0 {
        let a = ctx.scalar_const(&format!("{out}_alpha"), alpha, dtype);
        y = ctx.op1("mul", &format!("{out}_scaled"), &[("x", &y), ("y", &a)])?;
    }
    let z = ctx.op1(mil, &out, &[("x", &x), ("y", &y)])?;
    bind_in_place(ctx, call, z);
    Ok(())
}

fn add(ctx: &mut Ctx, call: &Call) -> Result<(), Error> {
    arith(ctx, call, "add", false)
}

fn sub(ctx: &mut Ctx, call: &Call) -> Result<(), Error> {
    arith(ctx, call, "sub", false)
}

fn rsub(ctx: &mut Ctx, call: &Call) -> Result<(), Error> {
    arith(ctx, call, "sub", true)
}

fn mul(ctx: &mut Ctx, call: &Call) -> Result<(), Error> {
    arith(ctx, call, "mul", false)
}

fn maximum(ctx: &mut Ctx, call: &Call) -> Result<(), Error> {
    arith(ctx, call, "maximum", false)
}

fn minimum(ctx: &mut Ctx, call: &Call) -> Result<(), Error> {
    arith(ctx, call, "minimum", false)
}

/// `div` with `rounding_mode` None (true division, in float), `floor` or `trunc` (integers).
fn div(ctx: &mut Ctx, call: &Call) -> Result<(), Error> {
    let out = ctx.out(call, 0);
    let dtype = ctx.out_dtype(call, 0)?;
    let mode = ctx.opt_string(call, "rounding_mode")?;
    let x = ctx.operand(call, "self", dtype)?;
    let y = ctx.operand(call, "other", dtype)?;
    let z = match (mode.as_deref(), dtype.is_float()) {
        (None, true) => ctx.op1("real_div", &out, &[("x", &x), ("y", &y)])?,
        (Some("floor"), false) => ctx.op1("floor_div", &out, &[("x", &x), ("y", &y)])?,
        (Some("floor"), true) => {
            let q = ctx.op1(
                "real_div",
                &format!("{out}_quotient"),
                &[("x", &x), ("y", &y)],
            )?;
            ctx.op1("floor", &out, &[("x", &q)])?
        }
        (Some("trunc"), false) => {
            // Truncation equals flooring for non-negative operands; only constant ones
            // (which fold) can be checked for that.
            let both_const = ctx.const_value(&x).is_some() && ctx.const_value(&y).is_some();
            if !both_const {
                return Err(ctx.unsupported("integer division with rounding_mode='trunc' on run-time values is not supported"));
            }
            let (a, b) = (
                ctx.const_value(&x)
                    .map(|t| t.to_i64_vec())
                    .unwrap_or_default(),
                ctx.const_value(&y)
                    .map(|t| t.to_i64_vec())
                    .unwrap_or_default(),
            );
            if a.iter().chain(&b).any(|&v| v < 0) {
                return Err(ctx.unsupported("integer division with rounding_mode='trunc' of negative values is not supported"));
            }
            ctx.op1("floor_div", &out, &[("x", &x), ("y", &y)])?
        }
        (m, _) => {
            return Err(ctx.unsupported(format!(
                "division with rounding_mode {m:?} on {} is not supported",
                dtype.name()
            )))
        }
    };
    bind_in_place(ctx, call, z);
    Ok(())
}

/// `pow(self, exponent)` with tensor or scalar operands.
fn pow(ctx: &mut Ctx, call: &Call) -> Result<(), Error> {
    let out = ctx.out(call, 0);
    let dtype = ctx.out_dtype(call, 0)?;
    let x = ctx.operand(call, "self", dtype)?;
    let e = ctx.operand(call, "exponent", dtype)?;
    let z = ctx.op1("pow", &out, &[("x", &x), ("y", &e)])?;
    bind_in_place(ctx, call, z);
    Ok(())
}

/// The dtype two operands are compared in: fp32 if either is a float, int32 otherwise.
fn comparison_dtype(ctx: &mut Ctx, call: &Call) -> Result<DType, Error> {
    let mut float = false;
    for name in ["self", "other"] {
        let is_float = match ctx.opt_tensor(call, name) {
            Ok(Some(v)) => ctx.ty(&v)?.dtype.is_float(),
            _ => ctx
                .opt_float(call, name)
                .ok()
                .flatten()
                .is_some_and(|v| v.fract() != 0.0),
        };
        float |= is_float;
    }
    Ok(if float { DType::F32 } else { DType::I32 })
}

fn compare(ctx: &mut Ctx, call: &Call, mil: &str) -> Result<(), Error> {
    let out = ctx.out(call, 0);
    let dtype = comparison_dtype(ctx, call)?;
    let x = ctx.operand(call, "self", dtype)?;
    let y = ctx.operand(call, "other", dtype)?;
    let z = ctx.op1(mil, &out, &[("x", &x), ("y", &y)])?;
    ctx.bind(call, 0, z);
    Ok(())
}

fn eq(ctx: &mut Ctx, call: &Call) -> Result<(), Error> {
    compare(ctx, call, "equal")
}

fn ne(ctx: &mut Ctx, call: &Call) -> Result<(), Error> {
    compare(ctx, call, "not_equal")
}

fn lt(ctx: &mut Ctx, call: &Call) -> Result<(), Error> {
    compare(ctx, call, "less")
}

fn le(ctx: &mut Ctx, call: &Call) -> Result<(), Error> {
    compare(ctx, call, "less_equal")
}

fn gt(ctx: &mut Ctx, call: &Call) -> Result<(), Error> {
    compare(ctx, call, "greater")
}

fn ge(ctx: &mut Ctx, call: &Call) -> Result<(), Error> {
    compare(ctx, call, "greater_equal")
}

/// Logical ops, and bitwise ops on bools (the only bitwise use in exported masks).
fn logical(ctx: &mut Ctx, call: &Call, mil: &str) -> Result<(), Error> {
    let out = ctx.out(call, 0);
    if ctx.out_dtype(call, 0)? != DType::Bool {
        return Err(ctx.unsupported("bitwise operations on integers are not supported"));
    }
    let x = ctx.operand(call, "self", DType::Bool)?;
    let y = ctx.operand(call, "other", DType::Bool)?;
    let z = ctx.op1(mil, &out, &[("x", &x), ("y", &y)])?;
    bind_in_place(ctx, call, z);
    Ok(())
}

fn and(ctx: &mut Ctx, call: &Call) -> Result<(), Error> {
    logical(ctx, call, "logical_and")
}

fn or(ctx: &mut Ctx, call: &Call) -> Result<(), Error> {
    logical(ctx, call, "logical_or")
}

fn xor(ctx: &mut Ctx, call: &Call) -> Result<(), Error> {
    logical(ctx, call, "logical_xor")
}

fn not(ctx: &mut Ctx, call: &Call) -> Result<(), Error> {
    let out = ctx.out(call, 0);
    if ctx.out_dtype(call, 0)? != DType::Bool {
        return Err(ctx.unsupported("bitwise not on integers is not supported"));
    }
    let x = ctx.operand(call, "self", DType::Bool)?;
    let z = ctx.op1("logical_not", &out, &[("x", &x)])?;
    bind_in_place(ctx, call, z);
    Ok(())
}

/// A one-input MIL op on `self` converted to the output dtype.
fn unary(ctx: &mut Ctx, call: &Call, mil: &str) -> Result<(), Error> {
    let out = ctx.out(call, 0);
    let dtype = ctx.out_dtype(call, 0)?;
    let x = ctx.operand(call, "self", dtype)?;
    let y = ctx.op1(mil, &out, &[("x", &x)])?;
    bind_in_place(ctx, call, y);
    Ok(())
}

/// Defines converters mapping a one-input aten op to a one-input MIL op.
macro_rules! unary_ops {
    ($($fn_name:ident => $mil:literal),* $(,)?) => {$(
        fn $fn_name(ctx: &mut Ctx, call: &Call) -> Result<(), Error> {
            unary(ctx, call, $mil)
        }
    )*};
}

unary_ops! {
    sqrt => "sqrt", exp => "exp", log => "log", abs => "abs", erf => "erf", sin => "sin",
    cos => "cos", floor => "floor", ceil => "ceil", round => "round", sign => "sign",
}

/// `neg(x)` = `x · -1`.
fn neg(ctx: &mut Ctx, call: &Call) -> Result<(), Error> {
    let out = ctx.out(call, 0);
    let dtype = ctx.out_dtype(call, 0)?;
    let x = ctx.operand(call, "self", dtype)?;
    let m = ctx.scalar_const(&format!("{out}_minus_one"), -1.0, dtype);
    let y = ctx.op1("mul", &out, &[("x", &x), ("y", &m)])?;
    bind_in_place(ctx, call, y);
    Ok(())
}

/// `rsqrt(x)` → MIL `rsqrt` with no epsilon.
fn rsqrt(ctx: &mut Ctx, call: &Call) -> Result<(), Error> {
    let out = ctx.out(call, 0);
    let x = ctx.operand(call, "self", DType::F32)?;
    let eps = ctx.float(&format!("{out}_epsilon"), 0.0);
    let y = ctx.op1("rsqrt", &out, &[("x", &x), ("epsilon", &eps)])?;
    bind_in_place(ctx, call, y);
    Ok(())
}

/// `reciprocal(x)` = `1 / x`.
fn reciprocal(ctx: &mut Ctx, call: &Call) -> Result<(), Error> {
    let out = ctx.out(call, 0);
    let x = ctx.operand(call, "self", DType::F32)?;
    let one = ctx.float(&format!("{out}_one"), 1.0);
    let y = ctx.op1("real_div", &out, &[("x", &one), ("y", &x)])?;
    bind_in_place(ctx, call, y);
    Ok(())
}

/// `where(condition, self, other)` → `select`.
fn where_(ctx: &mut Ctx, call: &Call) -> Result<(), Error> {
    let out = ctx.out(call, 0);
    let dtype = ctx.out_dtype(call, 0)?;
    let cond = ctx.operand(call, "condition", DType::Bool)?;
    let mut a = ctx.operand(call, "self", dtype)?;
    let b = ctx.operand(call, "other", dtype)?;
    // coremltools types `select` from its branches alone: when the condition is larger than
    // both, branch `a` is first broadcast to the condition's shape (a + 0·cond).
    let (ca, cb, cc) = (ctx.rank(&a)?, ctx.rank(&b)?, ctx.rank(&cond)?);
    let (sa, sc) = (ctx.ty(&a)?.shape, ctx.ty(&cond)?.shape);
    if dtype != DType::Bool && (cc > ca.max(cb) || (cc == ca && sa != sc && cb <= ca)) {
        let mask = ctx.coerce(&cond, dtype, &format!("{out}_cond_number"))?;
        let zero = ctx.scalar_const(&format!("{out}_zero"), 0.0, dtype);
        let zeros = ctx.op1(
            "mul",
            &format!("{out}_zeros"),
            &[("x", &mask), ("y", &zero)],
        )?;
        a = ctx.op1("add", &format!("{out}_a_full"), &[("x", &a), ("y", &zeros)])?;
    }
    let y = ctx.op1("select", &out, &[("cond", &cond), ("a", &a), ("b", &b)])?;
    ctx.bind(call, 0, y);
    Ok(())
}

/// `clamp(self, min?, max?)` (scalar or tensor bounds): `clip` for two constant float
/// bounds, `maximum`/`minimum` otherwise.
fn clamp(ctx: &mut Ctx, call: &Call) -> Result<(), Error> {
    let out = ctx.out(call, 0);
    let dtype = ctx.out_dtype(call, 0)?;
    let x = ctx.operand(call, "self", dtype)?;
    let bound = |ctx: &mut Ctx, name: &str| -> Result<Option<String>, Error> {
        let given = call.node.inputs.iter().find(|a| a.name == name);
        match given.map(|a| &a.arg) {
            None | Some(super::schema::Argument::AsNone(_)) => Ok(None),
            Some(_) => ctx.operand(call, name, dtype).map(Some),
        }
    };
    let lo = bound(ctx, "min")?;
    let hi = bound(ctx, "max")?;
    let scalar = |ctx: &Ctx, v: &Option<String>| {
        v.as_ref()
            .and_then(|v| ctx.const_value(v))
            .filter(|t| t.len() == 1)
            .and_then(|t| t.scalar_f64().or_else(|| t.to_f64_vec().first().copied()))
    };
    let y = match (scalar(ctx, &lo), scalar(ctx, &hi)) {
        (Some(a), Some(b)) if dtype.is_float() => {
            let (a, b) = (
                ctx.float(&format!("{out}_alpha"), a as f32),
                ctx.float(&format!("{out}_beta"), b as f32),
            );
            ctx.op1("clip", &out, &[("x", &x), ("alpha", &a), ("beta", &b)])?
        }
        _ => {
            let mut y = x;
            if let Some(lo) = lo {
                let hint = if hi.is_some() {
                    format!("{out}_low")
                } else {
                    out.clone()
                };
                y = ctx.op1("maximum", &hint, &[("x", &y), ("y", &lo)])?;
            }
            if let Some(hi) = hi {
                y = ctx.op1("minimum", &out, &[("x", &y), ("y", &hi)])?;
            }
            y
        }
    };
    bind_in_place(ctx, call, y);
    Ok(())
}

/// `clamp_min(self, min)`.
fn clamp_min(ctx: &mut Ctx, call: &Call) -> Result<(), Error> {
    let out = ctx.out(call, 0);
    let dtype = ctx.out_dtype(call, 0)?;
    let x = ctx.operand(call, "self", dtype)?;
    let lo = ctx.operand(call, "min", dtype)?;
    let y = ctx.op1("maximum", &out, &[("x", &x), ("y", &lo)])?;
    bind_in_place(ctx, call, y);
    Ok(())
}

/// `clamp_max(self, max)`.
fn clamp_max(ctx: &mut Ctx, call: &Call) -> Result<(), Error> {
    let out = ctx.out(call, 0);
    let dtype = ctx.out_dtype(call, 0)?;
    let x = ctx.operand(call, "self", dtype)?;
    let hi = ctx.operand(call, "max", dtype)?;
    let y = ctx.op1("minimum", &out, &[("x", &x), ("y", &hi)])?;
    bind_in_place(ctx, call, y);
    Ok(())
}

/// `isinf(self)`: `|x| == inf`.
fn isinf(ctx: &mut Ctx, call: &Call) -> Result<(), Error> {
    let out = ctx.out(call, 0);
    let x = ctx.operand(call, "self", DType::F32)?;
    let a = ctx.op1("abs", &format!("{out}_abs"), &[("x", &x)])?;
    let inf = ctx.float(&format!("{out}_inf"), f32::INFINITY);
    let y = ctx.op1("equal", &out, &[("x", &a), ("y", &inf)])?;
    ctx.bind(call, 0, y);
    Ok(())
}

/// `masked_fill(self, mask, value)` → `select(mask, value, self)`.
fn masked_fill(ctx: &mut Ctx, call: &Call) -> Result<(), Error> {
    let out = ctx.out(call, 0);
    let dtype = ctx.out_dtype(call, 0)?;
    let x = ctx.operand(call, "self", dtype)?;
    let mask = ctx.operand(call, "mask", DType::Bool)?;
    let v = ctx.operand(call, "value", dtype)?;
    let y = ctx.op1("select", &out, &[("cond", &mask), ("a", &v), ("b", &x)])?;
    bind_in_place(ctx, call, y);
    Ok(())
}

/// This family's ops.
pub const OPS: &[OpEntry] = &[
    op("aten.add.Tensor", add, &[("alpha", Int(1))]),
    op("aten.add.Scalar", add, &[("alpha", Int(1))]),
    op("aten.add_.Tensor", add, &[("alpha", Int(1))]),
    op("aten.sub.Tensor", sub, &[("alpha", Int(1))]),
    op("aten.sub.Scalar", sub, &[("alpha", Int(1))]),
    op("aten.sub_.Tensor", sub, &[("alpha", Int(1))]),
    op("aten.rsub.Scalar", rsub, &[("alpha", Int(1))]),
    op("aten.rsub.Tensor", rsub, &[("alpha", Int(1))]),
    op("aten.mul.Tensor", mul, &[]),
    op("aten.mul.Scalar", mul, &[]),
    op("aten.mul_.Tensor", mul, &[]),
    op("aten.div.Tensor", div, &[]),
    op("aten.div.Scalar", div, &[]),
    op("aten.div_.Tensor", div, &[]),
    op("aten.div.Tensor_mode", div, &[]),
    op("aten.floor_divide.default", div_floor, &[]),
    op("aten.pow.Tensor_Scalar", pow, &[]),
    op("aten.pow.Tensor_Tensor", pow, &[]),
    op("aten.pow.Scalar", pow, &[]),
    op("aten.maximum.default", maximum, &[]),
    op("aten.minimum.default", minimum, &[]),
    op("aten.eq.Tensor", eq, &[]),
    op("aten.eq.Scalar", eq, &[]),
    op("aten.ne.Tensor", ne, &[]),
    op("aten.ne.Scalar", ne, &[]),
    op("aten.lt.Tensor", lt, &[]),
    op("aten.lt.Scalar", lt, &[]),
    op("aten.le.Tensor", le, &[]),
    op("aten.le.Scalar", le, &[]),
    op("aten.gt.Tensor", gt, &[]),
    op("aten.gt.Scalar", gt, &[]),
    op("aten.ge.Tensor", ge, &[]),
    op("aten.ge.Scalar", ge, &[]),
    op("aten.logical_and.default", and, &[]),
    op("aten.logical_or.default", or, &[]),
    op("aten.logical_xor.default", xor, &[]),
    op("aten.logical_not.default", not, &[]),
    op("aten.bitwise_and.Tensor", and, &[]),
    op("aten.bitwise_or.Tensor", or, &[]),
    op("aten.bitwise_xor.Tensor", xor, &[]),
    op("aten.bitwise_not.default", not, &[]),
    op("aten.__and__.Tensor", and, &[]),
    op("aten.__or__.Tensor", or, &[]),
    op("aten.__xor__.Tensor", xor, &[]),
    op("aten.sqrt.default", sqrt, &[]),
    op("aten.rsqrt.default", rsqrt, &[]),
    op("aten.reciprocal.default", reciprocal, &[]),
    op("aten.exp.default", exp, &[]),
    op("aten.log.default", log, &[]),
    op("aten.abs.default", abs, &[]),
    op("aten.neg.default", neg, &[]),
    op("aten.erf.default", erf, &[]),
    op("aten.sin.default", sin, &[]),
    op("aten.cos.default", cos, &[]),
    op("aten.floor.default", floor, &[]),
    op("aten.ceil.default", ceil, &[]),
    op("aten.round.default", round, &[]),
    op("aten.sign.default", sign, &[]),
    op("aten.isinf.default", isinf, &[]),
    op("aten.masked_fill.Scalar", masked_fill, &[]),
    op("aten.masked_fill.Tensor", masked_fill, &[]),
    op("aten.masked_fill_.Scalar", masked_fill, &[]),
    op("aten.where.self", where_, &[]),
    op("aten.where.ScalarSelf", where_, &[]),
    op("aten.where.ScalarOther", where_, &[]),
    op("aten.where.Scalar", where_, &[]),
    op(
        "aten.clamp.default",
        clamp,
        &[("min", NoDefault), ("max", NoDefault)],
    ),
    op(
        "aten.clamp.Tensor",
        clamp,
        &[("min", NoDefault), ("max", NoDefault)],
    ),
    op(
        "aten.clamp_.default",
        clamp,
        &[("min", NoDefault), ("max", NoDefault)],
    ),
    op("aten.clamp_min.default", clamp_min, &[]),
    op("aten.clamp_max.default", clamp_max, &[]),
];

/// `floor_divide(self, other)`: division rounded down.
fn div_floor(ctx: &mut Ctx, call: &Call) -> Result<(), Error> {
    let out = ctx.out(call, 0);
    let dtype = ctx.out_dtype(call, 0)?;
    let x = ctx.operand(call, "self", dtype)?;
    let y = ctx.operand(call, "other", dtype)?;
    let z = if dtype.is_float() {
        let q = ctx.op1(
            "real_div",
            &format!("{out}_quotient"),
            &[("x", &x), ("y", &y)],
        )?;
        ctx.op1("floor", &out, &[("x", &q)])?
    } else {
        ctx.op1("floor_div", &out, &[("x", &x), ("y", &y)])?
    };
    ctx.bind(call, 0, z);
    Ok(())
}
