//! Creation and conversion: `full`, `zeros`, `ones`, `*_like`, `new_*`, `arange`,
//! `scalar_tensor`, `_to_copy`/`to`, `copy_`, and the `triu`/`tril` masks.

use super::super::convert::SymVal;
use super::shape::shape_vector;
use super::ArgDefault::{Bool, Int, None as NoDefault};
use super::{op, ArgDefault, Call, Ctx, Emit, OpEntry};
use crate::ir::{DType, Tensor};
use crate::Error;

/// A constant of `dtype` and `shape` with every element `value`.
fn filled(dtype: DType, shape: &[usize], value: f64) -> Tensor {
    let n: usize = shape.iter().product();
    match dtype {
        DType::Bool => Tensor::from_bool(shape, &vec![value != 0.0; n]),
        d if d.is_float() => Tensor::from_f32(shape, &vec![value as f32; n]),
        _ => Tensor::from_i32(shape, &vec![value as i32; n]),
    }
}

/// A tensor of `sizes` filled with `value` in output 0's dtype: a constant when the sizes
/// are known, `fill` of the run-time shape otherwise.
fn fill_sizes(ctx: &mut Ctx, call: &Call, sizes: &[SymVal], value: f64) -> Result<(), Error> {
    let out = ctx.out(call, 0);
    let dtype = ctx.out_dtype(call, 0)?;
    let known: Option<Vec<usize>> = sizes
        .iter()
        .map(|s| match s {
            SymVal::Known(n) if *n >= 0 => Some(*n as usize),
            _ => None,
        })
        .collect();
    let y = match known {
        Some(shape) => ctx.constant(&out, filled(dtype, &shape, value)),
        None => {
            let shape = shape_vector(ctx, sizes, &format!("{out}_shape"))?;
            let work = if dtype == DType::Bool {
                DType::I32
            } else {
                dtype
            };
            let v = ctx.scalar_const(&format!("{out}_value"), value, work);
            let hint = if work == dtype {
                out.clone()
            } else {
                format!("{out}_number")
            };
            let y = ctx.op1("fill", &hint, &[("shape", &shape), ("value", &v)])?;
            ctx.coerce(&y, dtype, &out)?
        }
    };
    ctx.bind(call, 0, y);
    Ok(())
}

/// The sizes of `self` (run-time ones from `shape`).
fn sizes_of(ctx: &mut Ctx, x: &str, hint: &str) -> Result<Vec<SymVal>, Error> {
    let ty = ctx.ty(x)?;
    let mut shape_var = None;
    let mut out = Vec::with_capacity(ty.rank());
    for (i, d) in ty.shape.iter().enumerate() {
        out.push(match d.fixed() {
            Some(n) => SymVal::Known(n as i64),
            None => {
                let s = match &shape_var {
                    Some(s) => s,
                    None => shape_var.insert(ctx.op1(
                        "shape",
                        &format!("{hint}_shape_of"),
                        &[("x", x)],
                    )?),
                }
                .clone();
                let idx = ctx.int(&format!("{hint}_dim{i}_index"), i as i64);
                SymVal::Var(ctx.op1(
                    "gather",
                    &format!("{hint}_dim{i}"),
                    &[("x", &s), ("indices", &idx)],
                )?)
            }
        });
    }
    Ok(out)
}

/// `full(size, fill_value)`.
fn full(ctx: &mut Ctx, call: &Call) -> Result<(), Error> {
    let sizes = ctx.sym_ints(call, "size")?;
    let value = ctx.float_arg(call, "fill_value")?;
    fill_sizes(ctx, call, &sizes, value)
}

/// `zeros(size)` / `ones(size)` / `empty(size)` (as zeros).
fn zeros(ctx: &mut Ctx, call: &Call) -> Result<(), Error> {
    let sizes = ctx.sym_ints(call, "size")?;
    fill_sizes(ctx, call, &sizes, 0.0)
}

fn ones(ctx: &mut Ctx, call: &Call) -> Result<(), Error> {
    let sizes = ctx.sym_ints(call, "size")?;
    fill_sizes(ctx, call, &sizes, 1.0)
}

/// `full_like(self, fill_value)`, `zeros_like`, `ones_like`.
fn like(ctx: &mut Ctx, call: &Call, value: Option<f64>) -> Result<(), Error> {
    let x = ctx.tensor(call, "self")?;
    let value = match value {
        Some(v) => v,
        None => ctx.float_arg(call, "fill_value")?,
    };
    let hint = ctx.out(call, 0);
    let sizes = sizes_of(ctx, &x, &hint)?;
    fill_sizes(ctx, call, &sizes, value)
}

fn full_like(ctx: &mut Ctx, call: &Call) -> Result<(), Error> {
    like(ctx, call, None)
}

fn zeros_like(ctx: &mut Ctx, call: &Call) -> Result<(), Error> {
    like(ctx, call, Some(0.0))
}

fn ones_like(ctx: &mut Ctx, call: &Call) -> Result<(), Error> {
    like(ctx, call, Some(1.0))
}

/// `new_full(self, size, fill_value)`, `new_zeros`, `new_ones`, `new_empty`.
fn new_filled(ctx: &mut Ctx, call: &Call, value: Option<f64>) -> Result<(), Error> {
    let sizes = ctx.sym_ints(call, "size")?;
    let value = match value {
        Some(v) => v,
        None => ctx.float_arg(call, "fill_value")?,
    };
    fill_sizes(ctx, call, &sizes, value)
}

fn new_full(ctx: &mut Ctx, call: &Call) -> Result<(), Error> {
    new_filled(ctx, call, None)
}

fn new_zeros(ctx: &mut Ctx, call: &Call) -> Result<(), Error> {
    new_filled(ctx, call, Some(0.0))
}

fn new_ones(ctx: &mut Ctx, call: &Call) -> Result<(), Error> {
    new_filled(ctx, call, Some(1.0))
}

/// `arange(end)`, `arange(start, end)`, `arange(start, end, step)` in output 0's dtype:
/// a constant when the bounds are known, `range_1d` otherwise.
fn arange(ctx: &mut Ctx, call: &Call) -> Result<(), Error> {
    let out = ctx.out(call, 0);
    let dtype = ctx.out_dtype(call, 0)?;
    let has = |n: &str| call.node.inputs.iter().any(|a| a.name == n);
    let bound = |ctx: &mut Ctx, name: &str, default: f64| -> Result<Bound, Error> {
        if !has(name) {
            return Ok(Bound::Known(default));
        }
        match ctx.opt_sym_int(call, name) {
            Ok(Some(SymVal::Var(v))) => Ok(Bound::Var(v)),
            Ok(Some(SymVal::Known(n))) => Ok(Bound::Known(n as f64)),
            _ => ctx.float_arg(call, name).map(Bound::Known),
        }
    };
    let start = bound(ctx, "start", 0.0)?;
    let end = bound(ctx, "end", 0.0)?;
    let step = bound(ctx, "step", 1.0)?;
    if let (Bound::Known(a), Bound::Known(b), Bound::Known(s)) = (&start, &end, &step) {
        if *s == 0.0 {
            return Err(ctx.invalid("arange step is 0"));
        }
        let n = ((b - a) / s).ceil().max(0.0) as usize;
        let values: Vec<f64> = (0..n).map(|i| a + i as f64 * s).collect();
        let t = match dtype {
            d if d.is_float() => {
                Tensor::from_f32(&[n], &values.iter().map(|&v| v as f32).collect::<Vec<_>>())
            }
            _ => Tensor::from_i32(&[n], &values.iter().map(|&v| v as i32).collect::<Vec<_>>()),
        };
        let y = ctx.constant(&out, t);
        ctx.bind(call, 0, y);
        return Ok(());
    }
    let var = |ctx: &mut Ctx, b: Bound, what: &str| -> Result<String, Error> {
        match b {
            Bound::Known(v) => Ok(ctx.scalar_const(&format!("{out}_{what}"), v, dtype)),
            Bound::Var(v) => ctx.coerce(&v, dtype, &format!("{out}_{what}")),
        }
    };
    let (s, e, st) = (
        var(ctx, start, "start")?,
        var(ctx, end, "end")?,
        var(ctx, step, "step")?,
    );
    let y = ctx.op1(
        "range_1d",
        &out,
        &[("end", &e), ("start", &s), ("step", &st)],
    )?;
    ctx.bind(call, 0, y);
    Ok(())
}

/// A known or run-time `arange` bound.
enum Bound {
    Known(f64),
    Var(String),
}

/// `scalar_tensor(s)`.
fn scalar_tensor(ctx: &mut Ctx, call: &Call) -> Result<(), Error> {
    let out = ctx.out(call, 0);
    let dtype = ctx.out_dtype(call, 0)?;
    let y = ctx.operand(call, "s", dtype)?;
    let y = if ctx.const_value(&y).is_some() && y != out {
        let t = ctx
            .const_value(&y)
            .cloned()
            .unwrap_or_else(|| Tensor::scalar_f32(0.0));
        ctx.constant(&out, t)
    } else {
        y
    };
    ctx.bind(call, 0, y);
    Ok(())
}

/// `_to_copy(self, dtype, …)`, `to.*`, `type_as`: a cast to output 0's dtype.
fn to_copy(ctx: &mut Ctx, call: &Call) -> Result<(), Error> {
    let out = ctx.out(call, 0);
    let dtype = ctx.out_dtype(call, 0)?;
    let x = ctx.tensor(call, "self")?;
    let y = ctx.coerce(&x, dtype, &out)?;
    ctx.bind(call, 0, y);
    Ok(())
}

/// `copy_(self, src)`: `self` (and the output) now hold `src` in `self`'s dtype, broadcast.
fn copy_(ctx: &mut Ctx, call: &Call) -> Result<(), Error> {
    let out = ctx.out(call, 0);
    let dtype = ctx.out_dtype(call, 0)?;
    let dst = ctx.tensor(call, "self")?;
    let src = ctx.tensor(call, "src")?;
    let src = ctx.coerce(&src, dtype, &format!("{out}_src"))?;
    let (dst_ty, src_ty) = (ctx.ty(&dst)?, ctx.ty(&src)?);
    let y = if dst_ty.shape == src_ty.shape {
        src
    } else {
        let zero = ctx.scalar_const(&format!("{out}_zero"), 0.0, dtype);
        let base = ctx.op1("mul", &format!("{out}_zeros"), &[("x", &dst), ("y", &zero)])?;
        ctx.op1("add", &out, &[("x", &base), ("y", &src)])?
    };
    // A write into a slice writes into the sliced value, and on through slices of slices.
    let mut written = call.tensor_name("self");
    let mut value = y.clone();
    while let Some(view) = written.as_deref().and_then(|t| ctx.view(t)) {
        let base = ctx.value(&view.base)?;
        value = super::index::scatter_slice(
            ctx,
            &format!("{out}_{}", view.base),
            &base,
            &value,
            view.axis,
            view.start,
            view.end,
        )?;
        ctx.bind_name(&view.base, value.clone());
        written = Some(view.base);
    }
    super::bind_in_place(ctx, call, y);
    Ok(())
}

/// `triu(self, diagonal)` / `tril(self, diagonal)`: `select` with a constant mask over
/// the last two (static) dims.
fn triangle(ctx: &mut Ctx, call: &Call, upper: bool) -> Result<(), Error> {
    let out = ctx.out(call, 0);
    let x = ctx.tensor(call, "self")?;
    let shape = ctx.shape(&x)?;
    if shape.len() < 2 {
        return Err(ctx.invalid("triu/tril need at least two dims"));
    }
    let k = ctx.int_arg(call, "diagonal")?;
    let (rows, cols) = (shape[shape.len() - 2], shape[shape.len() - 1]);
    let mask: Vec<bool> = (0..rows)
        .flat_map(|i| {
            (0..cols).map(move |j| {
                let d = j as i64 - i as i64;
                if upper {
                    d >= k
                } else {
                    d <= k
                }
            })
        })
        .collect();
    let mask = ctx.constant(
        &format!("{out}_mask"),
        Tensor::from_bool(&[rows, cols], &mask),
    );
    let dtype = ctx.ty(&x)?.dtype;
    let zero = ctx.scalar_const(&format!("{out}_zero"), 0.0, dtype);
    let y = ctx.op1("select", &out, &[("cond", &mask), ("a", &x), ("b", &zero)])?;
    ctx.bind(call, 0, y);
    Ok(())
}

fn triu(ctx: &mut Ctx, call: &Call) -> Result<(), Error> {
    triangle(ctx, call, true)
}

fn tril(ctx: &mut Ctx, call: &Call) -> Result<(), Error> {
    triangle(ctx, call, false)
}

/// `dtype, layout, device, pin_memory` of the factory functions.
const FACTORY: &[(&str, ArgDefault)] = &[
    ("dtype", NoDefault),
    ("layout", NoDefault),
    ("device", NoDefault),
    ("pin_memory", NoDefault),
];

const LIKE: &[(&str, ArgDefault)] = &[
    ("dtype", NoDefault),
    ("layout", NoDefault),
    ("device", NoDefault),
    ("pin_memory", NoDefault),
    ("memory_format", NoDefault),
];

const TO: &[(&str, ArgDefault)] = &[
    ("dtype", NoDefault),
    ("non_blocking", Bool(false)),
    ("copy", Bool(false)),
    ("memory_format", NoDefault),
];

/// This family's ops.
pub const OPS: &[OpEntry] = &[
    op("aten.full.default", full, FACTORY),
    op("aten.zeros.default", zeros, FACTORY),
    op("aten.ones.default", ones, FACTORY),
    op("aten.empty.memory_format", zeros, LIKE),
    op("aten.full_like.default", full_like, LIKE),
    op("aten.zeros_like.default", zeros_like, LIKE),
    op("aten.ones_like.default", ones_like, LIKE),
    op("aten.empty_like.default", zeros_like, LIKE),
    op("aten.new_full.default", new_full, FACTORY),
    op("aten.new_zeros.default", new_zeros, FACTORY),
    op("aten.new_ones.default", new_ones, FACTORY),
    op("aten.new_empty.default", new_zeros, FACTORY),
    op("aten.arange.default", arange, FACTORY),
    op("aten.arange.start", arange, FACTORY),
    op("aten.arange.start_step", arange, FACTORY),
    op("aten.scalar_tensor.default", scalar_tensor, FACTORY),
    op("aten._to_copy.default", to_copy, LIKE),
    op("aten.to.dtype", to_copy, TO),
    op("aten.to.dtype_layout", to_copy, TO),
    op("aten.to.device", to_copy, TO),
    op("aten.to.other", to_copy, TO),
    op("aten.type_as.default", to_copy, &[]),
    op(
        "aten.copy_.default",
        copy_,
        &[("non_blocking", Bool(false))],
    ),
    op("aten.copy.default", copy_, &[("non_blocking", Bool(false))]),
    op("aten.triu.default", triu, &[("diagonal", Int(0))]),
    op("aten.tril.default", tril, &[("diagonal", Int(0))]),
];
