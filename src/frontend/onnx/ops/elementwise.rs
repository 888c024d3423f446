//! Elementwise ops: arithmetic, comparisons, logic, bitwise ops and shifts on integers, unary
//! math, `IsNaN`/`IsInf`, `Where`, `Cast`, `CastLike`, variadic `Sum`/`Max`/`Min`/`Mean`.

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
    atanh => "atanh", not => "logical_not",
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

/// `Asinh` (MIL has none): `sign(x) · log(|x| + sqrt(x² + 1))`, on `|x|` so that large
/// negative inputs do not cancel.
fn asinh(ctx: &mut Ctx, node: &Node) -> Result<(), Error> {
    let x = ctx.input(node, 0)?;
    let out = ctx.out_name(node, 0);
    let abs = ctx.op1("abs", &format!("{out}_abs"), &[("x", &x)])?;
    let square = ctx.op1("square", &format!("{out}_square"), &[("x", &x)])?;
    let one = ctx.float(&format!("{out}_one"), 1.0);
    let plus_one = ctx.op1(
        "add",
        &format!("{out}_square_plus_one"),
        &[("x", &square), ("y", &one)],
    )?;
    let root = ctx.op1("sqrt", &format!("{out}_root"), &[("x", &plus_one)])?;
    let sum = ctx.op1("add", &format!("{out}_sum"), &[("x", &abs), ("y", &root)])?;
    let magnitude = ctx.op1("log", &format!("{out}_magnitude"), &[("x", &sum)])?;
    let sign = ctx.op1("sign", &format!("{out}_sign"), &[("x", &x)])?;
    let y = ctx.op1("mul", &out, &[("x", &sign), ("y", &magnitude)])?;
    ctx.set_output(node, 0, y);
    Ok(())
}

/// `Acosh` (MIL has none): `log(x + sqrt((x − 1)(x + 1)))`; the factored square root keeps
/// inputs near 1 from cancelling. NaN below 1, as in ONNX.
fn acosh(ctx: &mut Ctx, node: &Node) -> Result<(), Error> {
    let x = ctx.input(node, 0)?;
    let out = ctx.out_name(node, 0);
    let one = ctx.float(&format!("{out}_one"), 1.0);
    let below = ctx.op1(
        "sub",
        &format!("{out}_minus_one"),
        &[("x", &x), ("y", &one)],
    )?;
    let above = ctx.op1("add", &format!("{out}_plus_one"), &[("x", &x), ("y", &one)])?;
    let product = ctx.op1(
        "mul",
        &format!("{out}_product"),
        &[("x", &below), ("y", &above)],
    )?;
    let root = ctx.op1("sqrt", &format!("{out}_root"), &[("x", &product)])?;
    let sum = ctx.op1("add", &format!("{out}_sum"), &[("x", &x), ("y", &root)])?;
    let y = ctx.op1("log", &out, &[("x", &sum)])?;
    ctx.set_output(node, 0, y);
    Ok(())
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

/// An ONNX integer type's width in bits and whether it is signed; None for other types.
fn int_width(elem: DataType) -> Option<(u32, bool)> {
    use DataType as D;
    match elem {
        D::Int8 => Some((8, true)),
        D::Int16 => Some((16, true)),
        D::Int32 => Some((32, true)),
        D::Int64 => Some((64, true)),
        D::Uint8 => Some((8, false)),
        D::Uint16 => Some((16, false)),
        D::Uint32 => Some((32, false)),
        D::Uint64 => Some((64, false)),
        _ => None,
    }
}

/// The declared integer type of input `i` (width, signed): the bit ops depend on it.
fn int_input_width(ctx: &Ctx, node: &Node, i: usize) -> Result<(u32, bool), Error> {
    match ctx.elem_type(node, i) {
        Some(elem) => int_width(elem).ok_or_else(|| {
            ctx.invalid(format!(
                "input #{i} must be an integer tensor, not {}",
                elem.as_str_name()
            ))
        }),
        None => Err(ctx.unsupported(format!(
            "the element type of input #{i} is not declared, and the result depends on it"
        ))),
    }
}

/// The 31 low bits (0..=30) of int32 `x` along a new trailing axis, as 0/1 int32 values:
/// `mod(floor_div(x, 2^i), 2)` for the `powers` 2^0..2^30. Floor rounding makes these the
/// two's-complement bits of negative values too.
fn low_bits(ctx: &mut Ctx, x: &str, powers: &str, hint: &str) -> Result<String, Error> {
    let last = ctx.ints(&format!("{hint}_axis"), &[-1]);
    let column = ctx.op1(
        "expand_dims",
        &format!("{hint}_column"),
        &[("x", x), ("axes", &last)],
    )?;
    let shifted = ctx.op1(
        "floor_div",
        &format!("{hint}_shifted"),
        &[("x", &column), ("y", powers)],
    )?;
    let two = ctx.int(&format!("{hint}_two"), 2);
    ctx.op1("mod", hint, &[("x", &shifted), ("y", &two)])
}

/// The sign bit (bit 31) of int32 `x` as a 0/1 int32 value.
fn sign_bit(ctx: &mut Ctx, x: &str, hint: &str) -> Result<String, Error> {
    let zero = ctx.int(&format!("{hint}_zero"), 0);
    let negative = ctx.op1(
        "less",
        &format!("{hint}_negative"),
        &[("x", x), ("y", &zero)],
    )?;
    ctx.cast(&negative, DType::I32, hint)
}

/// A bitwise operation on 0/1 int32 bits.
#[derive(Clone, Copy)]
enum BitOp {
    And,
    Or,
    Xor,
}

/// `op` on 0/1 int32 tensors `a` and `b` (broadcast): a product, a maximum or a sum mod 2.
fn combine_bits(ctx: &mut Ctx, op: BitOp, a: &str, b: &str, hint: &str) -> Result<String, Error> {
    match op {
        BitOp::And => ctx.op1("mul", hint, &[("x", a), ("y", b)]),
        BitOp::Or => ctx.op1("maximum", hint, &[("x", a), ("y", b)]),
        BitOp::Xor => {
            let sum = ctx.op1("add", &format!("{hint}_sum"), &[("x", a), ("y", b)])?;
            let two = ctx.int(&format!("{hint}_two"), 2);
            ctx.op1("mod", hint, &[("x", &sum), ("y", &two)])
        }
    }
}

/// `BitwiseAnd`/`BitwiseOr`/`BitwiseXor` (Core ML has no bitwise ops), exactly in int32 arithmetic:
/// both operands are split into their 31 low bits and their sign bit, the bits are
/// combined, and the result is reassembled as `Σ bit_i · 2^i + sign · (−2^31)`. Every integer
/// type is held as int32 with its value sign- or zero-extended, and these operations commute
/// with that extension, so 32 bits are exact for each of them.
fn bitwise(ctx: &mut Ctx, node: &Node, op: BitOp) -> Result<(), Error> {
    let (a, b) = (ctx.input(node, 0)?, ctx.input(node, 1)?);
    let out = ctx.out_name(node, 0);
    for var in [&a, &b] {
        let dtype = ctx.ty(var)?.dtype;
        if dtype != DType::I32 {
            return Err(ctx.invalid(format!("takes integer tensors, not {dtype}")));
        }
    }
    let exponents: Vec<i64> = (0..31).map(|i| 1i64 << i).collect();
    let powers = ctx.ints(&format!("{out}_powers"), &exponents);
    let bits_a = low_bits(ctx, &a, &powers, &format!("{out}_a_bits"))?;
    let bits_b = low_bits(ctx, &b, &powers, &format!("{out}_b_bits"))?;
    let bits = combine_bits(ctx, op, &bits_a, &bits_b, &format!("{out}_bits"))?;
    // Bits 0..=15 and 16..=30 are summed apart, each to less than 2^16, which a reduction
    // carried out in floating point (as the interpreter's is) still sums exactly.
    let last = ctx.ints(&format!("{out}_last_axis"), &[-1]);
    let no_keep = ctx.boolean(&format!("{out}_keep_dims"), false);
    let mut halves = Vec::with_capacity(2);
    for (half, range) in [("lower", 0..16), ("upper", 16..31)] {
        let weights: Vec<i64> = (0..31)
            .map(|i| {
                if range.contains(&i) {
                    1i64 << (i - range.start)
                } else {
                    0
                }
            })
            .collect();
        let weights = ctx.ints(&format!("{out}_{half}_weights"), &weights);
        let weighted = ctx.op1(
            "mul",
            &format!("{out}_{half}_weighted"),
            &[("x", &bits), ("y", &weights)],
        )?;
        halves.push(ctx.op1(
            "reduce_sum",
            &format!("{out}_{half}"),
            &[("x", &weighted), ("axes", &last), ("keep_dims", &no_keep)],
        )?);
    }
    let shift = ctx.int(&format!("{out}_upper_shift"), 1 << 16);
    let upper = ctx.op1(
        "mul",
        &format!("{out}_upper_shifted"),
        &[("x", &halves[1]), ("y", &shift)],
    )?;
    let low = ctx.op1(
        "add",
        &format!("{out}_low"),
        &[("x", &halves[0]), ("y", &upper)],
    )?;
    let sign_a = sign_bit(ctx, &a, &format!("{out}_a_sign"))?;
    let sign_b = sign_bit(ctx, &b, &format!("{out}_b_sign"))?;
    let sign = combine_bits(ctx, op, &sign_a, &sign_b, &format!("{out}_sign"))?;
    let min = ctx.int(&format!("{out}_int_min"), i32::MIN as i64);
    let high = ctx.op1("mul", &format!("{out}_high"), &[("x", &sign), ("y", &min)])?;
    let y = ctx.op1("add", &out, &[("x", &low), ("y", &high)])?;
    ctx.set_output(node, 0, y);
    Ok(())
}

fn bitwise_and(ctx: &mut Ctx, node: &Node) -> Result<(), Error> {
    bitwise(ctx, node, BitOp::And)
}

fn bitwise_or(ctx: &mut Ctx, node: &Node) -> Result<(), Error> {
    bitwise(ctx, node, BitOp::Or)
}

fn bitwise_xor(ctx: &mut Ctx, node: &Node) -> Result<(), Error> {
    bitwise(ctx, node, BitOp::Xor)
}

/// `BitwiseNot`: `−1 − x` for signed types (two's complement), `2^N − 1 − x` for unsigned
/// types of N ≤ 16 bits. For 32- and 64-bit unsigned types every result of an input held in
/// int32 is at least 2^31, outside the int32 range Core ML computes in.
fn bitwise_not(ctx: &mut Ctx, node: &Node) -> Result<(), Error> {
    let x = ctx.input(node, 0)?;
    let out = ctx.out_name(node, 0);
    let all_ones = match int_input_width(ctx, node, 0)? {
        (_, true) => -1,
        (bits, false) if bits <= 16 => (1i64 << bits) - 1,
        (bits, false) => {
            return Err(ctx.unsupported(format!(
                "the bitwise not of a {bits}-bit unsigned integer is outside the int32 range Core ML computes in"
            )))
        }
    };
    let all_ones = ctx.int(&format!("{out}_all_ones"), all_ones);
    let y = ctx.op1("sub", &out, &[("x", &all_ones), ("y", &x)])?;
    ctx.set_output(node, 0, y);
    Ok(())
}

/// `BitShift(x, y, direction)` on unsigned integers of N bits, in int32 arithmetic:
/// `x · 2^y` (mod 2^N for N ≤ 16) to the left, `floor(x / 2^y)` to the right, with `2^y` from
/// `pow` on `y` clamped so that it stays in range, and 0 where the shift is so large that
/// every bit leaves (for 32/64 bits: where any result that fits in int32 is 0).
fn bit_shift(ctx: &mut Ctx, node: &Node) -> Result<(), Error> {
    let (x, y) = (ctx.input(node, 0)?, ctx.input(node, 1)?);
    let out = ctx.out_name(node, 0);
    let left = match ctx.attr(node.string("direction"))?.as_deref() {
        Some("LEFT") => true,
        Some("RIGHT") => false,
        Some(other) => {
            return Err(ctx.invalid(format!("direction '{other}' is neither LEFT nor RIGHT")))
        }
        None => return Err(ctx.invalid("attribute 'direction' is missing")),
    };
    let bits = match int_input_width(ctx, node, 0)? {
        (bits, false) => bits,
        (bits, true) => {
            return Err(ctx.invalid(format!(
                "shifts unsigned integers, not {bits}-bit signed ones"
            )))
        }
    };
    // Shifts from `gone` on give 0; shifts are clamped below it for `pow`.
    let gone = if left { bits.min(31) } else { 31 };
    let top = ctx.int(&format!("{out}_top_shift"), gone as i64 - 1);
    let clamped = ctx.op1(
        "minimum",
        &format!("{out}_clamped"),
        &[("x", &y), ("y", &top)],
    )?;
    let two = ctx.int(&format!("{out}_two"), 2);
    let factor = ctx.op1(
        "pow",
        &format!("{out}_factor"),
        &[("x", &two), ("y", &clamped)],
    )?;
    let mut shifted = if left {
        ctx.op1(
            "mul",
            &format!("{out}_shifted"),
            &[("x", &x), ("y", &factor)],
        )?
    } else {
        ctx.op1(
            "floor_div",
            &format!("{out}_shifted"),
            &[("x", &x), ("y", &factor)],
        )?
    };
    if left && bits <= 16 {
        let modulus = ctx.int(&format!("{out}_modulus"), 1i64 << bits);
        shifted = ctx.op1(
            "mod",
            &format!("{out}_wrapped"),
            &[("x", &shifted), ("y", &modulus)],
        )?;
    }
    let gone_c = ctx.int(&format!("{out}_gone"), gone as i64);
    let all_gone = ctx.op1(
        "greater_equal",
        &format!("{out}_all_gone"),
        &[("x", &y), ("y", &gone_c)],
    )?;
    let zero = ctx.int(&format!("{out}_zero"), 0);
    let z = ctx.op1(
        "select",
        &out,
        &[("cond", &all_gone), ("a", &zero), ("b", &shifted)],
    )?;
    ctx.set_output(node, 0, z);
    Ok(())
}

/// This family's converters.
pub const CONVERTERS: &[(&str, ConvertFn)] = &[
    ("Abs", abs),
    ("Acos", acos),
    ("Acosh", acosh),
    ("Add", add),
    ("And", and),
    ("Asin", asin),
    ("Asinh", asinh),
    ("Atan", atan),
    ("Atanh", atanh),
    ("BitShift", bit_shift),
    ("BitwiseAnd", bitwise_and),
    ("BitwiseNot", bitwise_not),
    ("BitwiseOr", bitwise_or),
    ("BitwiseXor", bitwise_xor),
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
