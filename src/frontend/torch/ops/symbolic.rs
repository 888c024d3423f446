//! Symbolic sizes and checks: `sym_size.int` (a `shape` → `gather` the builder follows
//! symbolically), Python integer arithmetic on sizes (`_operator.*`), and the assertion
//! and metadata nodes, which need no ops.

use super::{op, skip, Call, Ctx, Emit, OpEntry};
use crate::ir::DType;
use crate::Error;

/// `sym_size.int(self, dim)`: a rank-0 int32 (a constant when the size is static).
fn sym_size(ctx: &mut Ctx, call: &Call) -> Result<(), Error> {
    let out = ctx.out(call, 0);
    let x = ctx.tensor(call, "self")?;
    let ty = ctx.ty(&x)?;
    let dim = ctx.int_arg(call, "dim")?;
    let axis = ctx.axis(dim, ty.rank())?;
    let y = match ty.shape[axis].fixed() {
        Some(n) => ctx.int(&out, n as i64),
        None => {
            let shape = ctx.op1("shape", &format!("{out}_shape"), &[("x", &x)])?;
            let idx = ctx.int(&format!("{out}_index"), axis as i64);
            ctx.op1("gather", &out, &[("x", &shape), ("indices", &idx)])?
        }
    };
    ctx.bind(call, 0, y);
    Ok(())
}

/// A binary Python operator on two integers `a`, `b`.
fn int_binary(ctx: &mut Ctx, call: &Call, mil: &str) -> Result<(), Error> {
    let out = ctx.out(call, 0);
    let a = ctx.operand(call, "a", DType::I32)?;
    let b = ctx.operand(call, "b", DType::I32)?;
    let y = ctx.op1(mil, &out, &[("x", &a), ("y", &b)])?;
    ctx.bind(call, 0, y);
    Ok(())
}

fn add(ctx: &mut Ctx, call: &Call) -> Result<(), Error> {
    int_binary(ctx, call, "add")
}

fn sub(ctx: &mut Ctx, call: &Call) -> Result<(), Error> {
    int_binary(ctx, call, "sub")
}

fn mul(ctx: &mut Ctx, call: &Call) -> Result<(), Error> {
    int_binary(ctx, call, "mul")
}

fn floordiv(ctx: &mut Ctx, call: &Call) -> Result<(), Error> {
    int_binary(ctx, call, "floor_div")
}

fn modulo(ctx: &mut Ctx, call: &Call) -> Result<(), Error> {
    int_binary(ctx, call, "mod")
}

fn max(ctx: &mut Ctx, call: &Call) -> Result<(), Error> {
    int_binary(ctx, call, "maximum")
}

fn min(ctx: &mut Ctx, call: &Call) -> Result<(), Error> {
    int_binary(ctx, call, "minimum")
}

/// This family's ops.
pub const OPS: &[OpEntry] = &[
    op("aten.sym_size.int", sym_size, &[]),
    op("_operator.add", add, &[]),
    op("_operator.sub", sub, &[]),
    op("_operator.mul", mul, &[]),
    op("_operator.floordiv", floordiv, &[]),
    op("_operator.mod", modulo, &[]),
    op("torch.sym_max", max, &[]),
    op("torch.sym_min", min, &[]),
    op("aten._assert_scalar.default", skip, &[]),
    op("aten._assert_tensor_metadata.default", skip, &[]),
    op("aten._assert_async.msg", skip, &[]),
    op("aten.sym_constrain_range.default", skip, &[]),
    op("aten.sym_constrain_range_for_size.default", skip, &[]),
    op("aten._functional_assert_async.msg", skip, &[]),
];
