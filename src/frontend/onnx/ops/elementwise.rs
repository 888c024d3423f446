//! Elementwise ops: arithmetic, comparisons, logic, unary math, `IsNaN`/`IsInf`, `Where`,
//! `Cast`, `CastLike`, variadic `Sum`/`Max`/`Min`/`Mean`.

use super::super::tensor::ir_dtype;
use super::shape::broadcast_to;
use super::{alias, ConvertFn, Ctx, Emit, Node};
use crate::ir::ops::broadcast::broadcast_shapes;
use crate::ir::{DType, Tensor};
use crate::proto::onnx::tensor_proto::DataType;
use crate::Error;

/// Defines a converter mapping a two-input broadcasting ONNX op to a MIL op on `x`, `y`.
macro_rules! binary {
    ($($fn_name:ident => $mil:literal),* $(,)?) => {$(
        fn $fn_name(ctx: &mut Ctx, node: &Node) -> Result<(), Error> {
            reject_legacy_axis(ctx, node)?;
            let (x, y) = (ctx.input(node, 0)?, ctx.input(node, 1)?);
            let z = ctx.op1($mil, &ctx.out_name(node, 0), &[("x", &x), ("y", &y)])?;
            ctx.set_output(node, 0, z);
            Ok(())
        }
    )*};
}

unary! {
    sqrt => "sqrt", exp => "exp", log => "log", abs => "abs", erf => "erf", tanh => "tanh",
    floor => "floor", ceil => "ceil", round => "round", sign => "sign", sin => "sin", cos => "cos",
    tan => "tan", asin => "asin", acos => "acos", atan => "atan", sinh => "sinh", cosh => "cosh",
    not => "logical_not",
}

binary! {
    add => "add", sub => "sub", mul => "mul", equal => "equal", less => "less", greater => "greater",
    less_equal => "less_equal", greater_equal => "greater_equal", and => "logical_and",
    or => "logical_or", xor => "logical_xor",
}

/// Before opset 7, binary ops could broadcast `B` from a given `axis` (not NumPy-style);
/// that form is unsupported. Without `axis`, legacy broadcasting aligns trailing dimensions
/// like NumPy.
fn reject_legacy_axis(ctx: &Ctx, node: &Node) -> Result<(), Error> {
    if ctx.opset < 7 && node.attr("axis").is_some() {
        return Err(ctx.unsupported(
            "legacy broadcasting with an 'axis' attribute (opset < 7) is not supported",
        ));
    }
    Ok(())
}

/// `Div`: `real_div` for floats. ONNX integer division truncates toward zero while MIL's
/// `floor_div` rounds down, so for integers the floored quotient is moved up by one wherever
/// the division is inexact (non-zero remainder) and the operands' signs differ.
fn div(ctx: &mut Ctx, node: &Node) -> Result<(), Error> {
    reject_legacy_axis(ctx, node)?;
    let (x, y) = (ctx.input(node, 0)?, ctx.input(node, 1)?);
    let out = ctx.out_name(node, 0);
    let dtype = ctx.ty(&x)?.dtype;
    if dtype.is_float() {
        let z = ctx.op1("real_div", &out, &[("x", &x), ("y", &y)])?;
        ctx.set_output(node, 0, z);
        return Ok(());
    }
    let floored = ctx.op1(
        "floor_div",
        &format!("{out}_floored"),
        &[("x", &x), ("y", &y)],
    )?;
    let remainder = ctx.op1("mod", &format!("{out}_remainder"), &[("x", &x), ("y", &y)])?;
    let zero = ctx.int(&format!("{out}_zero"), 0);
    let zero = coerce(ctx, &zero, dtype, &format!("{out}_zero_typed"))?;
    let one = ctx.int(&format!("{out}_one"), 1);
    let one = coerce(ctx, &one, dtype, &format!("{out}_one_typed"))?;
    let inexact = ctx.op1(
        "not_equal",
        &format!("{out}_inexact"),
        &[("x", &remainder), ("y", &zero)],
    )?;
    let x_neg = ctx.op1(
        "less",
        &format!("{out}_x_negative"),
        &[("x", &x), ("y", &zero)],
    )?;
    let y_neg = ctx.op1(
        "less",
        &format!("{out}_y_negative"),
        &[("x", &y), ("y", &zero)],
    )?;
    let differ = ctx.op1(
        "logical_xor",
        &format!("{out}_signs_differ"),
        &[("x", &x_neg), ("y", &y_neg)],
    )?;
    let adjust = ctx.op1(
        "logical_and",
        &format!("{out}_adjust"),
        &[("x", &inexact), ("y", &differ)],
    )?;
    let raised = ctx.op1(
        "add",
        &format!("{out}_raised"),
        &[("x", &floored), ("y", &one)],
    )?;
    let z = ctx.op1(
        "select",
        &out,
        &[("cond", &adjust), ("a", &raised), ("b", &floored)],
    )?;
    ctx.set_output(node, 0, z);
    Ok(())
}

/// `Mod`: `fmod=0` takes the sign of the divisor, like MIL `mod`. C-style `fmod=1` (the sign
/// of the dividend) is that remainder minus `y` wherever it is non-zero and its sign differs
/// from the dividend's.
fn modulo(ctx: &mut Ctx, node: &Node) -> Result<(), Error> {
    let c_style = ctx.attr(node.int_or("fmod", 0))? != 0;
    let (x, y) = (ctx.input(node, 0)?, ctx.input(node, 1)?);
    let out = ctx.out_name(node, 0);
    if !c_style {
        let z = ctx.op1("mod", &out, &[("x", &x), ("y", &y)])?;
        ctx.set_output(node, 0, z);
        return Ok(());
    }
    let floored = ctx.op1("mod", &format!("{out}_floored"), &[("x", &x), ("y", &y)])?;
    let zero = if ctx.ty(&x)?.dtype.is_float() {
        ctx.float(&format!("{out}_zero"), 0.0)
    } else {
        ctx.int(&format!("{out}_zero"), 0)
    };
    let zero = coerce(ctx, &zero, ctx.ty(&x)?.dtype, &format!("{out}_zero_typed"))?;
    let nonzero = ctx.op1(
        "not_equal",
        &format!("{out}_nonzero"),
        &[("x", &floored), ("y", &zero)],
    )?;
    let r_neg = ctx.op1(
        "less",
        &format!("{out}_remainder_negative"),
        &[("x", &floored), ("y", &zero)],
    )?;
    let x_neg = ctx.op1(
        "less",
        &format!("{out}_dividend_negative"),
        &[("x", &x), ("y", &zero)],
    )?;
    let differ = ctx.op1(
        "logical_xor",
        &format!("{out}_signs_differ"),
        &[("x", &r_neg), ("y", &x_neg)],
    )?;
    let shift = ctx.op1(
        "logical_and",
        &format!("{out}_shift"),
        &[("x", &nonzero), ("y", &differ)],
    )?;
    let shifted = ctx.op1(
        "sub",
        &format!("{out}_shifted"),
        &[("x", &floored), ("y", &y)],
    )?;
    let z = ctx.op1(
        "select",
        &out,
        &[("cond", &shift), ("a", &shifted), ("b", &floored)],
    )?;
    ctx.set_output(node, 0, z);
    Ok(())
}

/// Makes `var` have `dtype`: a constant is converted in place, anything else gets a `cast`.
pub fn coerce(ctx: &mut Ctx, var: &str, dtype: DType, hint: &str) -> Result<String, Error> {
    if ctx.ty(var)?.dtype == dtype {
        return Ok(var.to_string());
    }
    if let Some(value) = ctx.const_value(var) {
        let converted = value.cast(dtype);
        return Ok(ctx.constant(hint, converted));
    }
    ctx.cast(var, dtype, hint)
}

/// `Pow`: the exponent is converted to the base's type (ONNX allows them to differ).
fn pow(ctx: &mut Ctx, node: &Node) -> Result<(), Error> {
    reject_legacy_axis(ctx, node)?;
    let (x, y) = (ctx.input(node, 0)?, ctx.input(node, 1)?);
    let out = ctx.out_name(node, 0);
    let dtype = ctx.ty(&x)?.dtype;
    let y = coerce(ctx, &y, dtype, &format!("{out}_exponent"))?;
    let z = ctx.op1("pow", &out, &[("x", &x), ("y", &y)])?;
    ctx.set_output(node, 0, z);
    Ok(())
}

/// A scalar constant of `dtype` (fp32 or int32) holding `value`.
pub fn scalar_like(ctx: &mut Ctx, hint: &str, dtype: DType, value: f32) -> String {
    if dtype.is_float() {
        ctx.constant(hint, Tensor::scalar_f32(value))
    } else {
        ctx.constant(hint, Tensor::scalar_i32(value as i32))
    }
}

/// `Neg`: multiplication by -1.
fn neg(ctx: &mut Ctx, node: &Node) -> Result<(), Error> {
    let x = ctx.input(node, 0)?;
    let out = ctx.out_name(node, 0);
    let minus_one = scalar_like(ctx, &format!("{out}_minus_one"), ctx.ty(&x)?.dtype, -1.0);
    let y = ctx.op1("mul", &out, &[("x", &x), ("y", &minus_one)])?;
    ctx.set_output(node, 0, y);
    Ok(())
}

/// `Reciprocal`: `1 / x` with `real_div` (MIL `inverse` adds an epsilon to `x`).
fn reciprocal(ctx: &mut Ctx, node: &Node) -> Result<(), Error> {
    let x = ctx.input(node, 0)?;
    let out = ctx.out_name(node, 0);
    let one = ctx.float(&format!("{out}_one"), 1.0);
    let y = ctx.op1("real_div", &out, &[("x", &one), ("y", &x)])?;
    ctx.set_output(node, 0, y);
    Ok(())
}

/// `Where(condition, X, Y)` → `select(cond, a, b)`.
fn where_(ctx: &mut Ctx, node: &Node) -> Result<(), Error> {
    let (c, mut a, b) = (
        ctx.input(node, 0)?,
        ctx.input(node, 1)?,
        ctx.input(node, 2)?,
    );
    let out = ctx.out_name(node, 0);
    // MIL's select takes its output shape from its branches alone (coremltools' type rule
    // ignores `cond`), so when the condition carries dimensions the branches lack, branch `a`
    // is broadcast to the full shape first.
    let (ct, at, bt) = (ctx.ty(&c)?, ctx.ty(&a)?, ctx.ty(&b)?);
    let branches = broadcast_shapes(&at.shape, &bt.shape).map_err(|e| ctx.invalid(e))?;
    let full = broadcast_shapes(&ct.shape, &branches).map_err(|e| ctx.invalid(e))?;
    if full != branches {
        let dims: Option<Vec<i64>> = full.iter().map(|d| d.fixed().map(|n| n as i64)).collect();
        let dims = dims.ok_or_else(|| {
            ctx.unsupported(format!(
                "the condition's shape {} is larger than the branches' and not static",
                ct
            ))
        })?;
        a = broadcast_to(ctx, &a, &dims, &format!("{out}_a"))?;
    }
    let y = ctx.op1("select", &out, &[("cond", &c), ("a", &a), ("b", &b)])?;
    ctx.set_output(node, 0, y);
    Ok(())
}

/// `IsNaN` → `not_equal(x, x)`: MIL has no isnan, and NaN is the only value unequal to itself.
fn is_nan(ctx: &mut Ctx, node: &Node) -> Result<(), Error> {
    let x = ctx.input(node, 0)?;
    let y = ctx.op1("not_equal", &ctx.out_name(node, 0), &[("x", &x), ("y", &x)])?;
    ctx.set_output(node, 0, y);
    Ok(())
}

/// `IsInf(detect_positive, detect_negative)` as a comparison with an infinite constant (which
/// stays infinite in fp16): both signs → `equal(abs(x), inf)`, one sign → `equal(x, ±inf)`,
/// neither → `greater(x, inf)`, which is false for every value, NaN included.
fn is_inf(ctx: &mut Ctx, node: &Node) -> Result<(), Error> {
    let x = ctx.input(node, 0)?;
    let out = ctx.out_name(node, 0);
    let dtype = ctx.ty(&x)?.dtype;
    if !dtype.is_float() {
        return Err(ctx.invalid(format!("input must be a float tensor, not {dtype}")));
    }
    let positive = ctx.attr(node.int_or("detect_positive", 1))? != 0;
    let negative = ctx.attr(node.int_or("detect_negative", 1))? != 0;
    let (mil, lhs, limit) = match (positive, negative) {
        (true, true) => {
            let abs = ctx.op1("abs", &format!("{out}_abs"), &[("x", &x)])?;
            ("equal", abs, f32::INFINITY)
        }
        (true, false) => ("equal", x, f32::INFINITY),
        (false, true) => ("equal", x, f32::NEG_INFINITY),
        (false, false) => ("greater", x, f32::INFINITY),
    };
    let limit = scalar_like(ctx, &format!("{out}_limit"), dtype, limit);
    let y = ctx.op1(mil, &out, &[("x", &lhs), ("y", &limit)])?;
    ctx.set_output(node, 0, y);
    Ok(())
}

/// Folds a variadic op into a chain of binary MIL ops; the last one is named after the output.
fn variadic(ctx: &mut Ctx, node: &Node, mil: &str) -> Result<(), Error> {
    let out = ctx.out_name(node, 0);
    let y = fold_inputs(ctx, node, mil, &out)?;
    ctx.set_output(node, 0, y);
    Ok(())
}

/// Every input of `node` combined by binary MIL op `mil`, left to right; the ops are named
/// `{out}_partial{i}` except the last, named `last`. One input is returned as it is.
pub(super) fn fold_inputs(
    ctx: &mut Ctx,
    node: &Node,
    mil: &str,
    last: &str,
) -> Result<String, Error> {
    let n = node.num_inputs();
    if n == 0 {
        return Err(ctx.invalid("needs at least one input"));
    }
    let out = ctx.out_name(node, 0);
    let mut acc = ctx.input(node, 0)?;
    for i in 1..n {
        let next = ctx.input(node, i)?;
        let hint = if i + 1 == n {
            last.to_string()
        } else {
            format!("{out}_partial{i}")
        };
        acc = ctx.op1(mil, &hint, &[("x", &acc), ("y", &next)])?;
    }
    Ok(acc)
}

fn sum(ctx: &mut Ctx, node: &Node) -> Result<(), Error> {
    variadic(ctx, node, "add")
}

fn max(ctx: &mut Ctx, node: &Node) -> Result<(), Error> {
    variadic(ctx, node, "maximum")
}

fn min(ctx: &mut Ctx, node: &Node) -> Result<(), Error> {
    variadic(ctx, node, "minimum")
}

/// `Cast`: every float type becomes fp32 and every integer type int32 (the IR's types), so
/// casts between types that map to the same IR type disappear — except a cast of a float to
/// FLOAT16, whose rounding is kept by going through fp16 and back.
fn cast(ctx: &mut Ctx, node: &Node) -> Result<(), Error> {
    let to = ctx
        .attr(node.int("to"))?
        .ok_or_else(|| ctx.invalid("attribute 'to' is missing"))?;
    let dtype = ir_dtype(to as i32).ok_or_else(|| {
        ctx.unsupported(format!(
            "casting to {} is not supported",
            super::super::tensor::elem_type_name(to as i32)
        ))
    })?;
    let mut x = ctx.input(node, 0)?;
    let out = ctx.out_name(node, 0);
    if to as i32 == DataType::Bfloat16 as i32 {
        let y = to_bfloat16(ctx, &x, &out)?;
        ctx.set_output(node, 0, y);
        return Ok(());
    }
    if to as i32 == DataType::Float16 as i32 && ctx.ty(&x)?.dtype.is_float() {
        x = coerce(ctx, &x, DType::F16, &format!("{out}_fp16"))?;
    }
    let y = coerce(ctx, &x, dtype, &out)?;
    ctx.set_output(node, 0, y);
    Ok(())
}

/// A cast to BFLOAT16 of `x`: a constant is rounded to bfloat16 (nearest, ties to even) and
/// kept as fp32; a computed value cannot be, as Core ML has no bfloat16 type.
pub fn to_bfloat16(ctx: &mut Ctx, x: &str, out: &str) -> Result<String, Error> {
    let Some(value) = ctx.const_value(x).cloned() else {
        return Err(ctx.unsupported(
            "casting a computed value to BFLOAT16 is not supported: Core ML has no bfloat16 type, so the value would not be rounded",
        ));
    };
    let rounded: Vec<f32> = value
        .to_f32_vec()
        .iter()
        .map(|&v| half::bf16::from_f32(v).to_f32())
        .collect();
    Ok(ctx.constant(out, Tensor::from_f32(value.shape(), &rounded)))
}

/// `Mean`: the broadcast sum of every input divided by their count.
fn mean(ctx: &mut Ctx, node: &Node) -> Result<(), Error> {
    let n = node.num_inputs();
    let out = ctx.out_name(node, 0);
    let acc = fold_inputs(ctx, node, "add", &format!("{out}_partial{}", n.max(1) - 1))?;
    let count = ctx.float(&format!("{out}_count"), n as f32);
    let y = ctx.op1("real_div", &out, &[("x", &acc), ("y", &count)])?;
    ctx.set_output(node, 0, y);
    Ok(())
}

/// `CastLike(x, like)`: `Cast` to the IR type of `like` (to BFLOAT16 as `Cast` does).
fn cast_like(ctx: &mut Ctx, node: &Node) -> Result<(), Error> {
    let (x, like) = (ctx.input(node, 0)?, ctx.input(node, 1)?);
    if ctx.is_bfloat16(node, 1) {
        let y = to_bfloat16(ctx, &x, &ctx.out_name(node, 0))?;
        ctx.set_output(node, 0, y);
        return Ok(());
    }
    let dtype = ctx.ty(&like)?.dtype;
    let y = coerce(ctx, &x, dtype, &ctx.out_name(node, 0))?;
    ctx.set_output(node, 0, y);
    Ok(())
}

/// This family's converters.
pub const CONVERTERS: &[(&str, ConvertFn)] = &[
    ("Abs", abs),
    ("Acos", acos),
    ("Add", add),
    ("And", and),
    ("Asin", asin),
    ("Atan", atan),
    ("Cast", cast),
    ("Ceil", ceil),
    ("Cos", cos),
    ("Cosh", cosh),
    ("Div", div),
    ("Equal", equal),
    ("Erf", erf),
    ("Exp", exp),
    ("Floor", floor),
    ("Greater", greater),
    ("GreaterOrEqual", greater_equal),
    ("Identity", alias),
    ("IsInf", is_inf),
    ("IsNaN", is_nan),
    ("Less", less),
    ("LessOrEqual", less_equal),
    ("Log", log),
    ("Max", max),
    ("Min", min),
    ("Mod", modulo),
    ("Mul", mul),
    ("Neg", neg),
    ("Not", not),
    ("Or", or),
    ("Pow", pow),
    ("Reciprocal", reciprocal),
    ("Round", round),
    ("Sign", sign),
    ("Sin", sin),
    ("Sinh", sinh),
    ("Sqrt", sqrt),
    ("Sub", sub),
    ("Sum", sum),
    ("Tan", tan),
    ("Tanh", tanh),
    ("Where", where_),
    ("Xor", xor),
    ("Mean", mean),
    ("CastLike", cast_like),
];
