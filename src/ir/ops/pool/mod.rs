//! Pooling ops: `max_pool`, `avg_pool`, `l2_pool` over 1-D, 2-D or 3-D spatial dims.

pub mod kernels;

use self::kernels as k;
use super::window::{axes, output_dims, Axis1, PadType};
use super::{op, InferArgs, OpArgs, OpDef, Param, ParamType};
use crate::ir::TensorType;

const X: Param = Param::new("x", ParamType::T);
const KERNEL: Param = Param::new("kernel_sizes", ParamType::Int).constant();
const STRIDES: Param = Param::new("strides", ParamType::Int).optional().constant();
const PAD_TYPE: Param = Param::new("pad_type", ParamType::Str).constant();
const PAD: Param = Param::new("pad", ParamType::Int).optional().constant();
const CEIL: Param = Param::new("ceil_mode", ParamType::Bool)
    .constant()
    .default_bool(false);
const EXCLUDE: Param = Param::new("exclude_padding_from_average", ParamType::Bool)
    .constant()
    .default_bool(false);

const MAX_POOL: &[Param] = &[X, KERNEL, STRIDES, PAD_TYPE, PAD, CEIL];
const AVG_POOL: &[Param] = &[X, KERNEL, STRIDES, PAD_TYPE, PAD, EXCLUDE, CEIL];
const L2_POOL: &[Param] = &[X, KERNEL, STRIDES, PAD_TYPE, PAD, CEIL];

/// The resolved attributes of a pool.
#[derive(Clone, Debug)]
pub struct PoolAttrs {
    /// Window geometry per spatial dim.
    pub axes: Vec<Axis1>,
    /// Padding scheme.
    pub pad_type: PadType,
    /// Round output sizes up.
    pub ceil_mode: bool,
}

/// Reads the attributes of a pool with `spatial` dims (the type rule and the kernel both call
/// this). Strides default to 1 and pad to 0 per spatial dim; `ceil_mode` only applies to
/// valid and custom padding.
pub fn pool_attrs<'a>(a: &impl OpArgs<'a>, spatial: usize) -> Result<PoolAttrs, String> {
    let kernel = &a.ints("kernel_sizes")?;
    let strides = a.opt_ints("strides")?;
    let pad = a.opt_ints("pad")?;
    let ceil_mode = a.bool("ceil_mode")?;
    let pad_type = PadType::parse(a.str("pad_type")?)?;
    let pad = match pad_type {
        PadType::Custom => pad.unwrap_or_else(|| vec![0; 2 * spatial]),
        _ => vec![0; 2 * spatial],
    };
    let axes = axes(
        spatial,
        kernel,
        &strides.unwrap_or_else(|| vec![1; spatial]),
        &vec![1; spatial],
        &pad,
    )?;
    Ok(PoolAttrs {
        axes,
        pad_type,
        ceil_mode: ceil_mode && matches!(pad_type, PadType::Valid | PadType::Custom),
    })
}

/// Core ML's limits on `ceil_mode`: 1-D or 2-D only, not with `same` padding, and with
/// symmetric custom padding.
fn check_ceil_mode(spatial: usize, pad_type: &str, pad: Option<&[i64]>) -> Result<(), String> {
    if spatial > 2 {
        return Err("ceil_mode is only supported for 1-D and 2-D pools".into());
    }
    if pad_type.starts_with("same") {
        return Err(format!(
            "ceil_mode cannot be combined with pad_type '{pad_type}'"
        ));
    }
    if pad_type == "custom" && pad.is_some_and(|p| p.chunks(2).any(|c| c.first() != c.last())) {
        return Err(format!("ceil_mode needs symmetric padding, got {pad:?}"));
    }
    Ok(())
}

fn infer_pool(a: &InferArgs) -> Result<Vec<TensorType>, String> {
    infer_pool_max_rank(a, 5)
}

fn infer_l2_pool(a: &InferArgs) -> Result<Vec<TensorType>, String> {
    infer_pool_max_rank(a, 4)
}

fn infer_pool_max_rank(a: &InferArgs, max_rank: usize) -> Result<Vec<TensorType>, String> {
    let x = a.ty("x")?;
    if !(3..=max_rank).contains(&x.rank()) {
        return Err(format!(
            "x {x} must have rank 3 to {max_rank} ([N, C, spatial…])"
        ));
    }
    let pad_type = a.str("pad_type")?;
    let pad = a.opt_ints("pad")?;
    let ceil_mode = a.bool("ceil_mode")?;
    if ceil_mode {
        check_ceil_mode(x.rank() - 2, pad_type, pad.as_deref())?;
    }
    let attrs = pool_attrs(a, x.rank() - 2)?;
    let mut shape = x.shape[..2].to_vec();
    shape.extend(output_dims(
        &x.shape[2..],
        &attrs.axes,
        attrs.pad_type,
        attrs.ceil_mode,
        2,
        |i| a.symbol(i),
    )?);
    Ok(vec![TensorType {
        dtype: x.dtype,
        shape,
    }])
}

/// The definitions of this family.
pub const DEFS: &[OpDef] = &[
    op("max_pool", MAX_POOL, infer_pool, k::max_pool),
    op("avg_pool", AVG_POOL, infer_pool, k::avg_pool),
    op("l2_pool", L2_POOL, infer_l2_pool, k::l2_pool),
];
