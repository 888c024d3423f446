//! Quantized ONNX: `QuantizeLinear`/`DequantizeLinear` (QDQ models), `DynamicQuantizeLinear`,
//! the integer ops `MatMulInteger`/`ConvInteger`, `QLinearMatMul`/`QLinearConv`, and
//! onnxruntime's `com.microsoft` `MatMulNBits`. docs/quantized-onnx.md says what becomes what
//! on each target.
//!
//! - A `DequantizeLinear` of a constant 8-bit (4-bit from iOS18) tensor becomes the constexpr
//!   op that rebuilds it at load time, so the package keeps the integers; below iOS16, or when
//!   the target's constexpr op cannot express the layout, it is folded to a float constant
//!   with a warning.
//! - A `QuantizeLinear` whose every reader is a `DequantizeLinear` (an activation pair)
//!   becomes MIL `quantize`/`dequantize` from iOS17 on; below iOS17 the pair is removed with a
//!   warning when both sides use the same parameters.
//! - Everything else computes exactly what ONNX specifies in fp32 arithmetic (integers are
//!   int32 in the program): `clip(round(x / scale) + zero_point)`, `(x - zero_point) * scale`.

use super::conv::conv_with;
use super::{axis as norm_axis, ConvertFn, Ctx, Emit, Node};
use crate::compress::quantize::{QuantDtype, Quantized};
use crate::ir::{DType, Target, Tensor, TensorType};
use crate::passes::compress::prequantized_weight_ops;
use crate::proto::onnx::tensor_proto::DataType;
use crate::Error;
use half::f16;

/// An ONNX integer type holding quantized values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum QType {
    I4,
    U4,
    I8,
    U8,
    I16,
    U16,
    I32,
}

impl QType {
    fn of(d: DataType) -> Option<QType> {
        Some(match d {
            DataType::Int4 => QType::I4,
            DataType::Uint4 => QType::U4,
            DataType::Int8 => QType::I8,
            DataType::Uint8 => QType::U8,
            DataType::Int16 => QType::I16,
            DataType::Uint16 => QType::U16,
            DataType::Int32 => QType::I32,
            _ => return None,
        })
    }

    /// Smallest and largest value.
    fn range(self) -> (f32, f32) {
        match self {
            QType::I4 => (-8.0, 7.0),
            QType::U4 => (0.0, 15.0),
            QType::I8 => (-128.0, 127.0),
            QType::U8 => (0.0, 255.0),
            QType::I16 => (-32768.0, 32767.0),
            QType::U16 => (0.0, 65535.0),
            QType::I32 => (i32::MIN as f32, i32::MAX as f32),
        }
    }

    /// The type a constexpr weight stores these values in (4- and 8-bit types only).
    fn stored(self) -> Option<QuantDtype> {
        match self {
            QType::I8 => Some(QuantDtype::Int8),
            QType::U8 => Some(QuantDtype::Uint8),
            QType::I4 => Some(QuantDtype::Int4),
            QType::U4 => Some(QuantDtype::Uint4),
            _ => None,
        }
    }

    /// The IR dtype and name of MIL `quantize`'s output (8-bit types only).
    fn activation(self) -> Option<(DType, &'static str)> {
        match self {
            QType::I8 => Some((DType::I8, "int8")),
            QType::U8 => Some((DType::U8, "uint8")),
            _ => None,
        }
    }
}

/// The quantized type of input `i` of `node`, from its declared element type; an error for
/// types that are not integers (float8 and float4 quantization).
fn input_qtype(ctx: &Ctx, node: &Node, i: usize) -> Result<Option<QType>, Error> {
    match ctx.elem_type(node, i) {
        None => Ok(None),
        Some(d) => QType::of(d).map(Some).ok_or_else(|| {
            ctx.unsupported(format!(
                "{} quantization is not supported (integer types only)",
                d.as_str_name()
            ))
        }),
    }
}

/// How scales and zero points map onto the quantized tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Layout {
    PerTensor,
    PerAxis(usize),
    /// Blocks of `block` elements along `axis`; the parameters have the tensor's rank.
    Blocked {
        axis: usize,
        block: usize,
    },
}

/// The constant scale and zero point of a quantize or dequantize node.
#[derive(Clone, Debug)]
struct Params {
    /// Scales, row-major in `shape`.
    scale: Vec<f32>,
    /// Zero points (same shape), None when omitted (zero).
    zero_point: Option<Vec<i64>>,
    /// Shape of the scale tensor.
    shape: Vec<usize>,
    layout: Layout,
}

impl PartialEq for Params {
    fn eq(&self, other: &Params) -> bool {
        let zeros = |p: &Params| {
            p.zero_point
                .clone()
                .unwrap_or_else(|| vec![0; p.scale.len()])
        };
        self.scale == other.scale && zeros(self) == zeros(other) && self.layout == other.layout
    }
}

/// Reads inputs 1 (scale) and 2 (zero point) and the `axis`/`block_size` attributes of a
/// quantize or dequantize node whose quantized side has type `x`.
fn read_params(ctx: &mut Ctx, node: &Node, x: &TensorType) -> Result<Params, Error> {
    let scale = ctx
        .const_input(node, 1)?
        .ok_or_else(|| ctx.invalid("the scale input is missing"))?;
    let zero_point = ctx.const_input(node, 2)?;
    let rank = x.rank();
    let (axis, block) = axis_and_block(ctx, node)?;
    let shape = scale.shape().to_vec();
    let layout = if block > 0 {
        let axis = norm_axis(ctx, axis, rank)?;
        let dims = ctx.shape_of(x)?;
        let expected: Vec<usize> = dims
            .iter()
            .enumerate()
            .map(|(d, &n)| {
                if d == axis {
                    n.div_ceil(block as usize)
                } else {
                    n
                }
            })
            .collect();
        if shape != expected {
            return Err(ctx.invalid(format!(
                "scale has shape {shape:?}, blocks of {block} on axis {axis} of {dims:?} need {expected:?}"
            )));
        }
        Layout::Blocked {
            axis,
            block: block as usize,
        }
    } else if scale.len() == 1 {
        Layout::PerTensor
    } else if shape.len() == 1 {
        let axis = norm_axis(ctx, axis, rank)?;
        if let Some(n) = x.shape[axis].fixed() {
            if n != scale.len() {
                return Err(ctx.invalid(format!(
                    "{} scales for axis {axis} of size {n}",
                    scale.len()
                )));
            }
        }
        Layout::PerAxis(axis)
    } else {
        return Err(ctx.invalid(format!(
            "scale has shape {shape:?}: neither a scalar nor a vector, and no block_size"
        )));
    };
    if let Some(z) = &zero_point {
        if z.len() != scale.len() {
            return Err(ctx.invalid(format!(
                "zero point has shape {:?}, scale {shape:?}",
                z.shape()
            )));
        }
    }
    Ok(Params {
        scale: scale.to_f32_vec(),
        zero_point: zero_point.map(|z| z.to_i64_vec()),
        shape,
        layout,
    })
}

/// `values` (one per scale) as an fp32 constant that broadcasts against a tensor of type `x`:
/// a scalar, a vector along its axis, or blocked values repeated over each block.
fn broadcast(ctx: &Ctx, values: &[f32], layout: Layout, x: &TensorType) -> Result<Tensor, Error> {
    Ok(match layout {
        Layout::PerTensor => Tensor::scalar_f32(values[0]),
        Layout::PerAxis(axis) => {
            let mut shape = vec![1; x.rank()];
            shape[axis] = values.len();
            Tensor::from_f32(&shape, values)
        }
        Layout::Blocked { axis, block } => {
            let dims = ctx.shape_of(x)?;
            let outer: usize = dims[..axis].iter().product();
            let inner: usize = dims[axis + 1..].iter().product();
            let (n, blocks) = (dims[axis], dims[axis].div_ceil(block));
            let mut out = Vec::with_capacity(outer * n * inner);
            for o in 0..outer {
                for i in 0..n {
                    let row = (o * blocks + i / block) * inner;
                    out.extend_from_slice(&values[row..row + inner]);
                }
            }
            Tensor::from_f32(&dims, &out)
        }
    })
}

/// The zero points of `p` as floats (None when omitted or all zero).
fn float_zero_points(p: &Params) -> Option<Vec<f32>> {
    p.zero_point
        .as_ref()
        .filter(|z| z.iter().any(|&v| v != 0))
        .map(|z| z.iter().map(|&v| v as f32).collect())
}

/// `clip(round(x / scale) + zero_point)` to `qtype`'s range, kept in fp32 (integral values).
fn quantize_float(
    ctx: &mut Ctx,
    x: &str,
    x_ty: &TensorType,
    p: &Params,
    qtype: QType,
    out: &str,
) -> Result<String, Error> {
    let scale = broadcast(ctx, &p.scale, p.layout, x_ty)?;
    let scale = ctx.constant(&format!("{out}_scale"), scale);
    let q = ctx.op1(
        "real_div",
        &format!("{out}_div"),
        &[("x", x), ("y", &scale)],
    )?;
    let mut q = ctx.op1("round", &format!("{out}_round"), &[("x", &q)])?;
    if let Some(z) = float_zero_points(p) {
        let z = broadcast(ctx, &z, p.layout, x_ty)?;
        let z = ctx.constant(&format!("{out}_zero_point"), z);
        q = ctx.op1("add", &format!("{out}_shift"), &[("x", &q), ("y", &z)])?;
    }
    saturate(ctx, &q, qtype, out)
}

/// `clip(x, lo, hi)` to `qtype`'s range.
fn saturate(ctx: &mut Ctx, x: &str, qtype: QType, out: &str) -> Result<String, Error> {
    let (lo, hi) = qtype.range();
    let lo = ctx.float(&format!("{out}_min"), lo);
    let hi = ctx.float(&format!("{out}_max"), hi);
    ctx.op1(
        "clip",
        &format!("{out}_clip"),
        &[("x", x), ("alpha", &lo), ("beta", &hi)],
    )
}

/// `(x - zero_point) * scale` in fp32 for an integer (or fp32) `x` of type `x_ty`.
fn dequantize_math(
    ctx: &mut Ctx,
    x: &str,
    x_ty: &TensorType,
    p: &Params,
    out: &str,
) -> Result<String, Error> {
    let mut d = if x_ty.dtype == DType::F32 {
        x.to_string()
    } else {
        ctx.cast(x, DType::F32, &format!("{out}_float"))?
    };
    if let Some(z) = float_zero_points(p) {
        let z = broadcast(ctx, &z, p.layout, x_ty)?;
        let z = ctx.constant(&format!("{out}_zero_point"), z);
        d = ctx.op1("sub", &format!("{out}_centered"), &[("x", &d), ("y", &z)])?;
    }
    let scale = broadcast(ctx, &p.scale, p.layout, x_ty)?;
    let scale = ctx.constant(&format!("{out}_scale"), scale);
    ctx.op1("mul", out, &[("x", &d), ("y", &scale)])
}

/// True when the scale and zero point (inputs 1 and 2) are constants (or the zero point is
/// omitted).
fn constant_params(ctx: &mut Ctx, node: &Node) -> Result<bool, Error> {
    Ok(ctx.try_const_input(node, 1)?.is_some()
        && (node.input_name(2).is_none() || ctx.try_const_input(node, 2)?.is_some()))
}

/// Input `i` of `node` (a scale or zero point, possibly computed at run time) as fp32 shaped
/// to broadcast against a tensor of type `x`: one value as it is, a vector along `axis`, or
/// blocked values gathered so each element of the block reads its block's. None when omitted.
fn param_var(
    ctx: &mut Ctx,
    node: &Node,
    i: usize,
    x: &TensorType,
    axis: i64,
    block: i64,
) -> Result<Option<String>, Error> {
    let Some(v) = ctx.opt_input(node, i)? else {
        return Ok(None);
    };
    let out = format!("{}_param{i}", ctx.out_name(node, 0));
    let v_ty = ctx.ty(&v)?;
    let v = if v_ty.dtype == DType::F32 {
        v
    } else {
        ctx.cast(&v, DType::F32, &format!("{out}_float"))?
    };
    let count = ctx.shape_of(&v_ty)?.iter().product::<usize>();
    let rank = x.rank();
    if block > 0 {
        let axis = norm_axis(ctx, axis, rank)?;
        let n = ctx.shape_of(x)?[axis];
        let index: Vec<i64> = (0..n as i64).map(|j| j / block).collect();
        let index = ctx.ints(&format!("{out}_blocks"), &index);
        let axis = ctx.int(&format!("{out}_axis"), axis as i64);
        return ctx
            .op1(
                "gather",
                &out,
                &[("x", &v), ("indices", &index), ("axis", &axis)],
            )
            .map(Some);
    }
    if count == 1 || v_ty.rank() != 1 {
        return Ok(Some(v));
    }
    let axis = norm_axis(ctx, axis, rank)?;
    let mut shape = vec![1i64; rank];
    shape[axis] = count as i64;
    let shape = ctx.ints(&format!("{out}_shape"), &shape);
    ctx.op1("reshape", &out, &[("x", &v), ("shape", &shape)])
        .map(Some)
}

/// The `axis` and `block_size` attributes of a quantize or dequantize node.
fn axis_and_block(ctx: &Ctx, node: &Node) -> Result<(i64, i64), Error> {
    let block = if ctx.opset >= 21 {
        ctx.attr(node.int_or("block_size", 0))?
    } else {
        0
    };
    Ok((ctx.attr(node.int_or("axis", 1))?, block))
}

/// `QuantizeLinear` / `DequantizeLinear` with parameters computed at run time: the fp32
/// arithmetic on variables; `qtype` is the quantizing side's type (None: dequantize).
fn runtime_params_math(
    ctx: &mut Ctx,
    node: &Node,
    x: &str,
    x_ty: &TensorType,
    qtype: Option<QType>,
) -> Result<String, Error> {
    let out = ctx.out_name(node, 0);
    let (axis, block) = axis_and_block(ctx, node)?;
    let scale = param_var(ctx, node, 1, x_ty, axis, block)?
        .ok_or_else(|| ctx.invalid("the scale input is missing"))?;
    let zero_point = param_var(ctx, node, 2, x_ty, axis, block)?;
    let xf = if x_ty.dtype == DType::F32 {
        x.to_string()
    } else {
        ctx.cast(x, DType::F32, &format!("{out}_float"))?
    };
    match qtype {
        Some(qtype) => {
            let q = ctx.op1(
                "real_div",
                &format!("{out}_div"),
                &[("x", &xf), ("y", &scale)],
            )?;
            let mut q = ctx.op1("round", &format!("{out}_round"), &[("x", &q)])?;
            if let Some(z) = zero_point {
                q = ctx.op1("add", &format!("{out}_shift"), &[("x", &q), ("y", &z)])?;
            }
            let q = saturate(ctx, &q, qtype, &out)?;
            ctx.cast(&q, DType::I32, &out)
        }
        None => {
            let d = match zero_point {
                Some(z) => ctx.op1("sub", &format!("{out}_centered"), &[("x", &xf), ("y", &z)])?,
                None => xf,
            };
            ctx.op1("mul", &out, &[("x", &d), ("y", &scale)])
        }
    }
}

/// `DequantizeLinear`: a constexpr weight for constant integers, MIL `dequantize` after a
/// MIL `quantize`, fp32 arithmetic otherwise (also on the fp32-held integers of an activation
/// pair below iOS17).
fn dequantize_linear(ctx: &mut Ctx, node: &Node) -> Result<(), Error> {
    let out = ctx.out_name(node, 0);
    if !constant_params(ctx, node)? {
        let x = ctx.input(node, 0)?;
        let x_ty = ctx.ty(&x)?;
        let y = runtime_params_math(ctx, node, &x, &x_ty, None)?;
        ctx.set_output(node, 0, y);
        return Ok(());
    }
    if let Some(w) = ctx.try_const_input(node, 0)? {
        let y = dequantize_constant(ctx, node, &w, &out)?;
        ctx.set_output(node, 0, y);
        return Ok(());
    }
    let x = ctx.input(node, 0)?;
    let x_ty = ctx.ty(&x)?;
    let y = match x_ty.dtype {
        DType::I8 | DType::U8 => mil_dequantize(ctx, node, &x, &x_ty, &out)?,
        _ => {
            let p = read_params(ctx, node, &x_ty)?;
            dequantize_math(ctx, &x, &x_ty, &p, &out)?
        }
    };
    ctx.set_output(node, 0, y);
    Ok(())
}

/// A constant `DequantizeLinear`: the constexpr op of the target when it can hold the
/// integers, else a float constant (with a warning saying why, for 4- and 8-bit types).
fn dequantize_constant(ctx: &mut Ctx, node: &Node, w: &Tensor, out: &str) -> Result<String, Error> {
    let x_ty = w.ty();
    let p = read_params(ctx, node, &x_ty)?;
    let qtype = input_qtype(ctx, node, 0)?;
    if let Some(stored) = qtype.and_then(QType::stored) {
        match constexpr_weight(ctx, w, &p, stored, out)? {
            Ok(var) => return Ok(var),
            Err(reason) => ctx.warn(format!(
                "quantized weights dequantized to float constants: {reason}"
            )),
        }
    }
    let x = ctx.input(node, 0)?;
    dequantize_math(ctx, &x, &x_ty, &p, out)
}

/// The constexpr op holding constant integers `w` with parameters `p`, or why the target
/// cannot express it.
fn constexpr_weight(
    ctx: &mut Ctx,
    w: &Tensor,
    p: &Params,
    stored: QuantDtype,
    out: &str,
) -> Result<Result<String, String>, Error> {
    let shape = w.shape().to_vec();
    if ctx.target < Target::IOS16 {
        return Ok(Err(format!(
            "Core ML's constexpr ops need iOS16 (target is {})",
            ctx.target
        )));
    }
    if shape.is_empty() {
        return Ok(Err("a scalar cannot be a constexpr weight".into()));
    }
    let param_shape = match p.layout {
        Layout::PerTensor => vec![1; shape.len()],
        Layout::PerAxis(axis) => {
            let mut s = vec![1; shape.len()];
            s[axis] = shape[axis];
            s
        }
        Layout::Blocked { axis, block } if shape[axis] % block != 0 => {
            return Ok(Err(format!(
                "blocks of {block} do not divide axis {axis} of {shape:?}"
            )))
        }
        Layout::Blocked { .. } => p.shape.clone(),
    };
    let quantized = Quantized {
        values: w.to_i64_vec().iter().map(|&v| v as u8).collect(),
        scales: p.scale.clone(),
        zero_points: p
            .zero_point
            .as_ref()
            .filter(|z| z.iter().any(|&v| v != 0))
            .map(|z| z.iter().map(|&v| v as i32).collect()),
        param_shape,
    };
    let name = ctx.e.b.fresh_name(out);
    let ops = match prequantized_weight_ops(&name, stored, quantized, &shape, ctx.target) {
        Ok(ops) => ops,
        Err(e) => return Ok(Err(format!("{e} (target is {})", ctx.target))),
    };
    for op in ops {
        ctx.e.b.push(op).map_err(|e| ctx.invalid(e))?;
    }
    Ok(Ok(name))
}

/// MIL `dequantize` of the int8/uint8 output of a MIL `quantize`.
fn mil_dequantize(
    ctx: &mut Ctx,
    node: &Node,
    x: &str,
    x_ty: &TensorType,
    out: &str,
) -> Result<String, Error> {
    let p = read_params(ctx, node, x_ty)?;
    let mut inputs = mil_params(ctx, &p, x_ty.dtype, out)?;
    inputs.push(("input", x.to_string()));
    let refs: Vec<(&str, &str)> = inputs.iter().map(|(k, v)| (*k, v.as_str())).collect();
    ctx.op1("dequantize", out, &refs)
}

/// The `scale`, `zero_point` (of `dtype`) and `axis` arguments of MIL `quantize`/`dequantize`.
fn mil_params(
    ctx: &mut Ctx,
    p: &Params,
    dtype: DType,
    out: &str,
) -> Result<Vec<(&'static str, String)>, Error> {
    let (shape, axis) = match p.layout {
        Layout::PerTensor => (vec![], None),
        Layout::PerAxis(axis) => (vec![p.scale.len()], Some(axis)),
        Layout::Blocked { .. } => {
            return Err(Error::Internal(
                "blocked parameters reached MIL quantize/dequantize".into(),
            ))
        }
    };
    let mut params = vec![(
        "scale",
        ctx.constant(
            &format!("{out}_scale"),
            Tensor::from_f32(&shape, &p.scale[..shape.iter().product()]),
        ),
    )];
    if let Some(z) = &p.zero_point {
        let z = Tensor::from_i64_as(dtype, &shape, &z[..shape.iter().product()]);
        params.push(("zero_point", ctx.constant(&format!("{out}_zero_point"), z)));
    }
    if let Some(axis) = axis {
        params.push(("axis", ctx.int(&format!("{out}_axis"), axis as i64)));
    }
    Ok(params)
}

/// The type `QuantizeLinear` produces: its zero point's, else `output_dtype` (opset 21),
/// else uint8.
fn output_qtype(ctx: &Ctx, node: &Node) -> Result<QType, Error> {
    if node.input_name(2).is_some() {
        if let Some(q) = input_qtype(ctx, node, 2)? {
            return Ok(q);
        }
    }
    let declared = ctx.attr(node.int_or("output_dtype", 0))?;
    if declared == 0 {
        return Ok(QType::U8);
    }
    let d = DataType::try_from(declared as i32)
        .map_err(|_| ctx.invalid(format!("unknown output_dtype {declared}")))?;
    QType::of(d).ok_or_else(|| {
        ctx.unsupported(format!(
            "{} quantization is not supported (integer types only)",
            d.as_str_name()
        ))
    })
}

/// `QuantizeLinear`: MIL `quantize` (iOS17+) or the fp32 rounding kept in fp32 (below) when
/// only `DequantizeLinear` nodes read it, fp32 arithmetic to int32 otherwise.
fn quantize_linear(ctx: &mut Ctx, node: &Node) -> Result<(), Error> {
    let mut x = ctx.input(node, 0)?;
    let x_ty = ctx.ty(&x)?;
    let out = ctx.out_name(node, 0);
    let qtype = output_qtype(ctx, node)?;
    if !constant_params(ctx, node)? {
        let y = runtime_params_math(ctx, node, &x, &x_ty, Some(qtype))?;
        ctx.set_output(node, 0, y);
        return Ok(());
    }
    let p = read_params(ctx, node, &x_ty)?;
    if x_ty.dtype == DType::F32 {
        if let Some(y) = activation_pair(ctx, node, &x, &x_ty, qtype, &p, &out)? {
            ctx.set_output(node, 0, y);
            return Ok(());
        }
    } else {
        x = ctx.cast(&x, DType::F32, &format!("{out}_float"))?;
    }
    let q = quantize_float(ctx, &x, &x_ty.with_dtype(DType::F32), &p, qtype, &out)?;
    let y = ctx.cast(&q, DType::I32, &out)?;
    ctx.set_output(node, 0, y);
    Ok(())
}

/// An activation Q/DQ pair: the variable to bind the `QuantizeLinear` output to when every
/// reader is a `DequantizeLinear`: MIL `quantize` from iOS17 on (8-bit, per tensor or per
/// axis); below, the quantized values computed and held in fp32, with a warning (Core ML has
/// no activation quantization there, so the pair costs float ops instead of saving work).
/// None otherwise.
fn activation_pair(
    ctx: &mut Ctx,
    node: &Node,
    x: &str,
    x_ty: &TensorType,
    qtype: QType,
    p: &Params,
    out: &str,
) -> Result<Option<String>, Error> {
    let Some(name) = node.output_name(0) else {
        return Ok(None);
    };
    let (readers, returned) = ctx.consumers(name);
    let only_dequantized = !returned
        && !readers.is_empty()
        && readers.iter().all(|n| {
            n.op_type == "DequantizeLinear"
                && (n.domain.is_empty() || n.domain == "ai.onnx")
                && n.input.first().is_some_and(|i| i == name)
                && !n.input.iter().skip(1).any(|i| i == name)
        });
    if !only_dequantized {
        return Ok(None);
    }
    let mut reader_params = Vec::with_capacity(readers.len());
    for reader in readers {
        let reader = Node::new(reader);
        match read_params(ctx, &reader, x_ty) {
            Ok(rp) => reader_params.push(rp),
            Err(_) => return Ok(None),
        }
    }
    if ctx.target >= Target::IOS17 {
        let Some((dtype, dtype_name)) = qtype.activation() else {
            return Ok(None);
        };
        let blocked = |p: &Params| matches!(p.layout, Layout::Blocked { .. });
        if blocked(p) || reader_params.iter().any(blocked) {
            return Ok(None);
        }
        let mut inputs = mil_params(ctx, p, dtype, out)?;
        inputs.push(("input", x.to_string()));
        inputs.push((
            "output_dtype",
            ctx.string(&format!("{out}_dtype"), dtype_name),
        ));
        let refs: Vec<(&str, &str)> = inputs.iter().map(|(k, v)| (*k, v.as_str())).collect();
        return ctx.op1("quantize", out, &refs).map(Some);
    }
    ctx.warn(format!(
        "activation QuantizeLinear/DequantizeLinear pairs computed as fp32 rounding: Core ML quantizes activations from iOS17 on (target is {})",
        ctx.target
    ));
    quantize_float(ctx, x, x_ty, p, qtype, out).map(Some)
}

/// Input `i` of `node` (constant or computed) as fp32; with more than one element, reshaped
/// to `shape(count)`. None when omitted.
fn shaped_input(
    ctx: &mut Ctx,
    node: &Node,
    i: usize,
    shape: &dyn Fn(usize) -> Vec<usize>,
    hint: &str,
) -> Result<Option<String>, Error> {
    let Some(v) = ctx.opt_input(node, i)? else {
        return Ok(None);
    };
    let v_ty = ctx.ty(&v)?;
    let v = if v_ty.dtype == DType::F32 {
        v
    } else {
        ctx.cast(&v, DType::F32, &format!("{hint}_float"))?
    };
    let count = ctx.shape_of(&v_ty)?.iter().product::<usize>();
    if count == 1 {
        return Ok(Some(v));
    }
    let dims: Vec<i64> = shape(count).iter().map(|&d| d as i64).collect();
    let dims = ctx.ints(&format!("{hint}_shape"), &dims);
    ctx.op1("reshape", hint, &[("x", &v), ("shape", &dims)])
        .map(Some)
}

/// Integer tensor `a` minus zero-point input `zp` of `node` (a vector shaped by
/// `zp_shape`), in fp32.
fn centered(
    ctx: &mut Ctx,
    node: &Node,
    a: &str,
    zp: usize,
    zp_shape: &dyn Fn(usize) -> Vec<usize>,
    hint: &str,
) -> Result<String, Error> {
    let af = ctx.cast(a, DType::F32, &format!("{hint}_float"))?;
    match shaped_input(ctx, node, zp, zp_shape, &format!("{hint}_zero_point"))? {
        Some(z) => ctx.op1("sub", &format!("{hint}_centered"), &[("x", &af), ("y", &z)]),
        None => Ok(af),
    }
}

/// Largest number of products of two 8-bit values whose sum fp32 holds exactly (2^24).
const EXACT_PRODUCTS: usize = (1 << 24) / (255 * 255);

/// Warns when a sum of `k` products of 8-bit values may exceed what fp32 holds exactly.
fn check_exact_sum(ctx: &mut Ctx, k: Option<usize>) {
    if k.is_none_or(|k| k > EXACT_PRODUCTS) {
        ctx.warn(format!(
            "integer matmul/conv computed in fp32: sums of more than {EXACT_PRODUCTS} products may round"
        ));
    }
}

/// `[…, count, 1]` for a per-row zero point of a rank-`rank` matrix operand.
fn per_row(rank: usize) -> impl Fn(usize) -> Vec<usize> {
    move |count| {
        let mut s = vec![1; rank.max(2)];
        s[rank.max(2) - 2] = count;
        s
    }
}

/// `MatMulInteger(A, B, a_zero_point?, b_zero_point?)`: `(A - a_zp) @ (B - b_zp)` in fp32,
/// as int32.
fn matmul_integer(ctx: &mut Ctx, node: &Node) -> Result<(), Error> {
    let out = ctx.out_name(node, 0);
    let (a, b) = (ctx.input(node, 0)?, ctx.input(node, 1)?);
    let a_ty = ctx.ty(&a)?;
    let ac = centered(ctx, node, &a, 2, &per_row(a_ty.rank()), &format!("{out}_a"))?;
    let bc = centered(ctx, node, &b, 3, &|n| vec![n], &format!("{out}_b"))?;
    check_exact_sum(ctx, a_ty.shape.last().and_then(|d| d.fixed()));
    let y = ctx.op1("matmul", &format!("{out}_float"), &[("x", &ac), ("y", &bc)])?;
    let y = ctx.cast(&y, DType::I32, &out)?;
    ctx.set_output(node, 0, y);
    Ok(())
}

/// Output-channel shape `[1, C, 1, …]` of a rank-`rank` convolution output, or `[C, 1, …]`
/// for its weight.
fn channel_shape(c: usize, rank: usize, weight: bool) -> Vec<usize> {
    let mut s = vec![1; rank];
    s[usize::from(!weight)] = c;
    s
}

/// The centered operands of an integer convolution: `node`'s inputs `x` and `w` (at the first
/// two `inputs` positions) minus their zero points (at the last two, per tensor, or per output
/// channel for the weight), with the weight's shape.
fn centered_conv_inputs(
    ctx: &mut Ctx,
    node: &Node,
    inputs: [usize; 4],
    out: &str,
) -> Result<(String, String, Vec<usize>), Error> {
    let [x, w, x_zero, w_zero] = inputs;
    let (x, w) = (ctx.input(node, x)?, ctx.input(node, w)?);
    let w_shape = ctx.shape(&w)?;
    let rank = w_shape.len();
    let xc = centered(ctx, node, &x, x_zero, &|c| vec![c], &format!("{out}_x"))?;
    let per_channel = |c| channel_shape(c, rank, true);
    let wc = centered(ctx, node, &w, w_zero, &per_channel, &format!("{out}_w"))?;
    Ok((xc, wc, w_shape))
}

/// `ConvInteger(x, w, x_zero_point?, w_zero_point?)`: the convolution of the centered
/// integers in fp32, as int32.
fn conv_integer(ctx: &mut Ctx, node: &Node) -> Result<(), Error> {
    let out = ctx.out_name(node, 0);
    let (xc, wc, w_shape) = centered_conv_inputs(ctx, node, [0, 1, 2, 3], &out)?;
    check_exact_sum(ctx, Some(w_shape[1..].iter().product()));
    let y = conv_with(ctx, node, &xc, &wc, None, &format!("{out}_float"))?;
    let y = ctx.cast(&y, DType::I32, &out)?;
    ctx.set_output(node, 0, y);
    Ok(())
}

/// The requantization factor `a_scale * b_scale / y_scale` of a QLinear op (scales at inputs
/// `a`, `b`, `y`; `b`'s vector shaped by `b_shape`). Constant scales declared float16 are
/// combined with rounding to float16 after each step, as NumPy computes it; float16 scales
/// computed at run time are refused.
fn requant_factor(
    ctx: &mut Ctx,
    node: &Node,
    [a, b, y]: [usize; 3],
    b_shape: &dyn Fn(usize) -> Vec<usize>,
    out: &str,
) -> Result<String, Error> {
    let half = ctx.elem_type(node, a) == Some(DataType::Float16);
    let consts = (
        ctx.try_const_input(node, a)?,
        ctx.try_const_input(node, b)?,
        ctx.try_const_input(node, y)?,
    );
    if let (Some(sa), Some(sb), Some(sy)) = consts {
        let (sa, sy) = (
            single(ctx, &sa, "scale of the first input")?,
            single(ctx, &sy, "output scale")?,
        );
        let r = |v: f32| if half { f16::from_f32(v).to_f32() } else { v };
        let factor: Vec<f32> = sb.to_f32_vec().iter().map(|&b| r(r(sa * b) / sy)).collect();
        let factor = match factor.len() {
            1 => Tensor::scalar_f32(factor[0]),
            n => Tensor::from_f32(&b_shape(n), &factor),
        };
        return Ok(ctx.constant(&format!("{out}_factor"), factor));
    }
    if half {
        return Err(ctx.unsupported(
            "float16 scales computed at run time are not supported (their float16 products cannot be reproduced)",
        ));
    }
    let one = |_: usize| vec![1];
    let sa = shaped_input(ctx, node, a, &one, &format!("{out}_a_scale"))?;
    let sb = shaped_input(ctx, node, b, b_shape, &format!("{out}_b_scale"))?;
    let sy = shaped_input(ctx, node, y, &one, &format!("{out}_y_scale"))?;
    let (Some(sa), Some(sb), Some(sy)) = (sa, sb, sy) else {
        return Err(ctx.invalid("a scale input is missing"));
    };
    let ab = ctx.op1("mul", &format!("{out}_ab_scale"), &[("x", &sa), ("y", &sb)])?;
    ctx.op1(
        "real_div",
        &format!("{out}_factor"),
        &[("x", &ab), ("y", &sy)],
    )
}

/// How a QLinear op brings its result into the output type's range, as the ONNX reference
/// implementation does.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Overflow {
    /// `round` then wrap around (`QLinearMatMul`: NumPy's `astype` of an out-of-range value;
    /// ONNX requires that the result never overflows, so in-spec models never see it).
    Wrap,
    /// `clip` then `round` (`QLinearConv`).
    Saturate,
}

/// `acc * factor + y_zero_point` rounded into the output type, as int32.
fn requantize(
    ctx: &mut Ctx,
    node: &Node,
    acc: &str,
    factor: &str,
    overflow: Overflow,
    out: &str,
) -> Result<String, Error> {
    let qtype = match input_qtype(ctx, node, 7)? {
        Some(q) => q,
        None => input_qtype(ctx, node, 0)?.unwrap_or(QType::U8),
    };
    let mut r = ctx.op1(
        "mul",
        &format!("{out}_scaled"),
        &[("x", acc), ("y", factor)],
    )?;
    let scalar = |_: usize| vec![1];
    if let Some(z) = shaped_input(ctx, node, 7, &scalar, &format!("{out}_zero_point"))? {
        if ctx.ty(&z)?.shape.iter().any(|d| d.fixed() != Some(1)) {
            return Err(ctx.unsupported("a per-channel output zero point is not supported"));
        }
        r = ctx.op1("add", &format!("{out}_shift"), &[("x", &r), ("y", &z)])?;
    }
    match overflow {
        Overflow::Saturate => {
            r = saturate(ctx, &r, qtype, out)?;
            r = ctx.op1("round", &format!("{out}_round"), &[("x", &r)])?;
        }
        Overflow::Wrap => {
            r = ctx.op1("round", &format!("{out}_round"), &[("x", &r)])?;
            let (lo, hi) = qtype.range();
            let lo_var = ctx.float(&format!("{out}_low"), lo);
            let span = ctx.float(&format!("{out}_span"), hi - lo + 1.0);
            r = ctx.op1(
                "sub",
                &format!("{out}_offset"),
                &[("x", &r), ("y", &lo_var)],
            )?;
            r = ctx.op1("mod", &format!("{out}_wrap"), &[("x", &r), ("y", &span)])?;
            r = ctx.op1(
                "add",
                &format!("{out}_wrapped"),
                &[("x", &r), ("y", &lo_var)],
            )?;
        }
    }
    ctx.cast(&r, DType::I32, out)
}

/// The one value of a per-tensor scale, or an error naming it.
fn single(ctx: &Ctx, t: &Tensor, what: &str) -> Result<f32, Error> {
    match t.to_f32_vec().as_slice() {
        [s] => Ok(*s),
        _ => Err(ctx.unsupported(format!("a per-channel {what} is not supported"))),
    }
}

/// `QLinearMatMul`: the integer matmul of the centered inputs (fp32), requantized with
/// `a_scale * b_scale / y_scale`.
fn qlinear_matmul(ctx: &mut Ctx, node: &Node) -> Result<(), Error> {
    let out = ctx.out_name(node, 0);
    let (a, b) = (ctx.input(node, 0)?, ctx.input(node, 3)?);
    let a_ty = ctx.ty(&a)?;
    let scalar = |n: usize| vec![n];
    let ac = centered(ctx, node, &a, 2, &per_row(a_ty.rank()), &format!("{out}_a"))?;
    let bc = centered(ctx, node, &b, 5, &scalar, &format!("{out}_b"))?;
    check_exact_sum(ctx, a_ty.shape.last().and_then(|d| d.fixed()));
    let acc = ctx.op1("matmul", &format!("{out}_acc"), &[("x", &ac), ("y", &bc)])?;
    let factor = requant_factor(ctx, node, [1, 4, 6], &scalar, &out)?;
    let y = requantize(ctx, node, &acc, &factor, Overflow::Wrap, &out)?;
    ctx.set_output(node, 0, y);
    Ok(())
}

/// `QLinearConv`: the integer convolution of the centered inputs plus the int32 bias (fp32),
/// requantized per output channel with `x_scale * w_scale / y_scale`.
fn qlinear_conv(ctx: &mut Ctx, node: &Node) -> Result<(), Error> {
    let out = ctx.out_name(node, 0);
    let (xc, wc, w_shape) = centered_conv_inputs(ctx, node, [0, 3, 2, 5], &out)?;
    let bias = match ctx.opt_input(node, 8)? {
        Some(b) => Some(ctx.cast(&b, DType::F32, &format!("{out}_bias"))?),
        None => None,
    };
    check_exact_sum(ctx, Some(w_shape[1..].iter().product()));
    let acc = conv_with(ctx, node, &xc, &wc, bias.as_deref(), &format!("{out}_acc"))?;
    let factor = requant_factor(
        ctx,
        node,
        [1, 4, 6],
        &|c| channel_shape(c, w_shape.len(), false),
        &out,
    )?;
    let y = requantize(ctx, node, &acc, &factor, Overflow::Saturate, &out)?;
    ctx.set_output(node, 0, y);
    Ok(())
}

/// `DynamicQuantizeLinear(x)` → uint8 `y`, `y_scale`, `y_zero_point`, computed as ONNX
/// specifies: the range of `x` widened to include 0, mapped onto [0, 255].
fn dynamic_quantize_linear(ctx: &mut Ctx, node: &Node) -> Result<(), Error> {
    let x = ctx.input(node, 0)?;
    let out = ctx.out_name(node, 0);
    let h = |s: &str| format!("{out}_{s}");
    let zero = ctx.float(&h("zero"), 0.0);
    let max = ctx.op1("reduce_max", &h("max_x"), &[("x", &x)])?;
    let max = ctx.op1("maximum", &h("max"), &[("x", &max), ("y", &zero)])?;
    let min = ctx.op1("reduce_min", &h("min_x"), &[("x", &x)])?;
    let min = ctx.op1("minimum", &h("min"), &[("x", &min), ("y", &zero)])?;
    let range = ctx.op1("sub", &h("range"), &[("x", &max), ("y", &min)])?;
    let empty = ctx.op1("equal", &h("empty"), &[("x", &max), ("y", &min)])?;
    let one = ctx.float(&h("one"), 1.0);
    let range = ctx.op1(
        "select",
        &h("range_nonzero"),
        &[("cond", &empty), ("a", &one), ("b", &range)],
    )?;
    let levels = ctx.float(&h("levels"), 255.0);
    let scale_name = ctx.out_name(node, 1);
    let scale = ctx.op1("real_div", &scale_name, &[("x", &range), ("y", &levels)])?;
    let ratio = ctx.op1("real_div", &h("min_ratio"), &[("x", &min), ("y", &scale)])?;
    let zp = ctx.op1("sub", &h("zp_float"), &[("x", &zero), ("y", &ratio)])?;
    let zp = saturate(ctx, &zp, QType::U8, &h("zp"))?;
    let zp = ctx.op1("round", &h("zp_round"), &[("x", &zp)])?;
    let q = ctx.op1("real_div", &h("div"), &[("x", &x), ("y", &scale)])?;
    let q = ctx.op1("round", &h("round"), &[("x", &q)])?;
    let q = ctx.op1("add", &h("shift"), &[("x", &q), ("y", &zp)])?;
    let q = saturate(ctx, &q, QType::U8, &out)?;
    let y = ctx.cast(&q, DType::I32, &out)?;
    let zp_name = ctx.out_name(node, 2);
    let zp = ctx.cast(&zp, DType::I32, &zp_name)?;
    ctx.set_output(node, 0, y);
    ctx.set_output(node, 1, scale);
    ctx.set_output(node, 2, zp);
    Ok(())
}

/// `com.microsoft` `MatMulNBits(A, B, scales, zero_points?, g_idx?, bias?)`: `A @ Wᵀ` with
/// `W` [N, K] stored as 4- or 8-bit blocks of `block_size` along K, B packed
/// [N, blocks, block_size·bits/8] (first element in the low bits). From iOS18 the weight is a
/// `constexpr_blockwise_shift_scale` of uint4/uint8 data feeding `linear`; no float copy is
/// ever made, so earlier targets are refused.
fn matmul_nbits(ctx: &mut Ctx, node: &Node) -> Result<(), Error> {
    if ctx.target < Target::IOS18 {
        return Err(ctx.unsupported(format!(
            "MatMulNBits needs target iOS18 or later (constexpr_blockwise_shift_scale holds its block-quantized weight; target is {})",
            ctx.target
        )));
    }
    let out = ctx.out_name(node, 0);
    let required = |ctx: &Ctx, name: &str| -> Result<usize, Error> {
        match ctx.attr(node.int(name))? {
            Some(v) if v > 0 => Ok(v as usize),
            _ => Err(ctx.invalid(format!("attribute '{name}' must be a positive integer"))),
        }
    };
    let (k, n, block) = (
        required(ctx, "K")?,
        required(ctx, "N")?,
        required(ctx, "block_size")?,
    );
    let bits = ctx.attr(node.int_or("bits", 4))? as usize;
    let (stored, mask) = match bits {
        4 => (QuantDtype::Uint4, 0x0f),
        8 => (QuantDtype::Uint8, 0xff),
        _ => {
            return Err(ctx.unsupported(format!(
                "{bits}-bit MatMulNBits is not supported (4 and 8 bits are)"
            )))
        }
    };
    if k % block != 0 {
        return Err(ctx.unsupported(format!(
            "K = {k} is not a multiple of block_size {block}, which constexpr_blockwise_shift_scale needs"
        )));
    }
    let blocks = k / block;
    let blob = block * bits / 8;
    let b = ctx
        .const_input(node, 1)?
        .ok_or_else(|| ctx.invalid("input B is missing"))?;
    if b.shape() != [n, blocks, blob] {
        return Err(ctx.invalid(format!(
            "B has shape {:?}, expected [{n}, {blocks}, {blob}] for N={n}, K={k}, block_size={block}, bits={bits}",
            b.shape()
        )));
    }
    if let Some(g) = ctx.const_input(node, 4)? {
        let trivial = g
            .to_i64_vec()
            .iter()
            .enumerate()
            .all(|(i, &v)| v == (i / block) as i64);
        if !trivial {
            return Err(ctx.unsupported("a g_idx that reorders the blocks is not supported"));
        }
    }
    let packed: Vec<u8> = b.to_i64_vec().iter().map(|&v| v as u8).collect();
    let per_byte = 8 / bits;
    let unpack = |bytes: &[u8], i: usize| (bytes[i / per_byte] >> (bits * (i % per_byte))) & mask;
    let values: Vec<u8> = (0..n * k)
        .map(|i| unpack(&packed[(i / k) * blocks * blob..], i % k))
        .collect();
    let scales = ctx
        .const_input(node, 2)?
        .ok_or_else(|| ctx.invalid("input scales is missing"))?
        .to_f32_vec();
    if scales.len() != n * blocks {
        return Err(ctx.invalid(format!(
            "{} scales, expected N·blocks = {}",
            scales.len(),
            n * blocks
        )));
    }
    let zero_points: Vec<i32> = match ctx.const_input(node, 3)? {
        None => vec![1 << (bits - 1); n * blocks],
        Some(_) if ctx.elem_type(node, 3) != Some(DataType::Uint8) => {
            return Err(ctx.unsupported("float zero points are not supported (uint8 ones are)"))
        }
        Some(z) => {
            let row = (blocks * bits).div_ceil(8);
            let bytes: Vec<u8> = z.to_i64_vec().iter().map(|&v| v as u8).collect();
            if bytes.len() != n * row {
                return Err(ctx.invalid(format!(
                    "zero_points has {} bytes, expected {}",
                    bytes.len(),
                    n * row
                )));
            }
            (0..n * blocks)
                .map(|i| i32::from(unpack(&bytes[(i / blocks) * row..], i % blocks)))
                .collect()
        }
    };
    let quantized = Quantized {
        values,
        scales,
        zero_points: Some(zero_points),
        param_shape: vec![n, blocks],
    };
    let weight = ctx.e.b.fresh_name(&format!("{out}_weight"));
    let ops = prequantized_weight_ops(&weight, stored, quantized, &[n, k], ctx.target)
        .map_err(|e| ctx.invalid(e))?;
    for op in ops {
        ctx.e.b.push(op).map_err(|e| ctx.invalid(e))?;
    }
    let a = ctx.input(node, 0)?;
    let bias = ctx.opt_input(node, 5)?;
    let rank = ctx.rank(&a)?;
    let y = if (1..=3).contains(&rank) {
        let mut inputs = vec![("x", a.as_str()), ("weight", weight.as_str())];
        if let Some(b) = &bias {
            inputs.push(("bias", b));
        }
        ctx.op1("linear", &out, &inputs)?
    } else {
        let t = ctx.boolean(&format!("{out}_transpose_y"), true);
        let f = ctx.boolean(&format!("{out}_transpose_x"), false);
        let hint = if bias.is_some() {
            format!("{out}_matmul")
        } else {
            out.clone()
        };
        let y = ctx.op1(
            "matmul",
            &hint,
            &[
                ("x", &a),
                ("y", &weight),
                ("transpose_x", &f),
                ("transpose_y", &t),
            ],
        )?;
        match &bias {
            Some(b) => ctx.op1("add", &out, &[("x", &y), ("y", b)])?,
            None => y,
        }
    };
    ctx.set_output(node, 0, y);
    Ok(())
}

/// This family's converters (default domain).
pub const CONVERTERS: &[(&str, ConvertFn)] = &[
    ("ConvInteger", conv_integer),
    ("DequantizeLinear", dequantize_linear),
    ("DynamicQuantizeLinear", dynamic_quantize_linear),
    ("MatMulInteger", matmul_integer),
    ("QLinearConv", qlinear_conv),
    ("QLinearMatMul", qlinear_matmul),
    ("QuantizeLinear", quantize_linear),
];

/// This family's `com.microsoft` converters (onnxruntime contrib ops).
pub const MICROSOFT_CONVERTERS: &[(&str, ConvertFn)] = &[("MatMulNBits", matmul_nbits)];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conv_channel_shapes() {
        assert_eq!(channel_shape(8, 4, true), vec![8, 1, 1, 1]);
        assert_eq!(channel_shape(8, 4, false), vec![1, 8, 1, 1]);
    }
}
