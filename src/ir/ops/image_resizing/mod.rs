//! Image resizing over the last two dims: `upsample_nearest_neighbor`,
//! `resize_nearest_neighbor`, `upsample_bilinear`, `resize_bilinear`.

pub mod kernels;

use self::kernels as k;
use super::{op, InferArgs, OpArgs, OpDef, Param, ParamType};
use crate::ir::{Dim, TensorType};

const X: Param = Param::new("x", ParamType::T);
const fn scale(name: &'static str) -> Param {
    Param::new(name, ParamType::Setting)
        .constant()
        .default_float(1.0)
}
const fn size(name: &'static str) -> Param {
    Param::new(name, ParamType::Int).constant()
}
const UPSAMPLE_NN: &[Param] = &[X, scale("scale_factor_height"), scale("scale_factor_width")];
const RESIZE_NN: &[Param] = &[X, size("target_size_height"), size("target_size_width")];
const UPSAMPLE_BILINEAR: &[Param] = &[
    X,
    scale("scale_factor_height"),
    scale("scale_factor_width"),
    Param::new("align_corners", ParamType::Bool)
        .constant()
        .default_bool(true),
];
const RESIZE_BILINEAR: &[Param] = &[
    X,
    size("target_size_height").default_int(1),
    size("target_size_width").default_int(1),
    Param::new("sampling_mode", ParamType::Str)
        .constant()
        .default_str("DEFAULT"),
];

/// The sampling modes of `resize_bilinear`.
pub const SAMPLING_MODES: [&str; 5] = [
    "STRICT_ALIGN_CORNERS",
    "ALIGN_CORNERS",
    "UNALIGN_CORNERS",
    "DEFAULT",
    "OFFSET_CORNERS",
];

/// `floor(n * factor)`, the upsampled size of a dim.
pub fn scaled_size(n: usize, factor: f64) -> Result<usize, String> {
    let out = (n as f64 * factor).floor();
    if factor.is_nan() || factor <= 0.0 || !out.is_finite() || out > i32::MAX as f64 {
        return Err(format!(
            "scale factor {factor} is not a usable positive number"
        ));
    }
    Ok(out as usize)
}

fn with_spatial(
    a: &InferArgs,
    h: impl Fn(&Dim) -> Result<Dim, String>,
    w: impl Fn(&Dim) -> Result<Dim, String>,
) -> Result<Vec<TensorType>, String> {
    let x = a.ty("x")?;
    let r = x.rank();
    if r < 3 {
        return Err(format!("x {x} must have rank 3 or more"));
    }
    let mut shape = x.shape.clone();
    shape[r - 2] = h(&x.shape[r - 2])?;
    shape[r - 1] = w(&x.shape[r - 1])?;
    Ok(vec![TensorType {
        dtype: x.dtype,
        shape,
    }])
}

fn infer_upsample(a: &InferArgs) -> Result<Vec<TensorType>, String> {
    let r = a.ty("x")?.rank();
    let (sh, sw) = scale_factors(a)?;
    let dim = |d: &Dim, s: f64, i: usize| match d.fixed() {
        Some(n) => scaled_size(n, s).map(Dim::Fixed),
        None => Ok(a.symbol(i)),
    };
    with_spatial(
        a,
        |d| dim(d, sh, r.saturating_sub(2)),
        |d| dim(d, sw, r.saturating_sub(1)),
    )
}

/// The `scale_factor_height` and `scale_factor_width` of an upsample op.
pub fn scale_factors<'a>(a: &impl OpArgs<'a>) -> Result<(f64, f64), String> {
    Ok((
        a.float("scale_factor_height")?,
        a.float("scale_factor_width")?,
    ))
}

/// Target size parameter `name` of a resize op, which must be positive.
pub fn target_size<'a>(a: &impl OpArgs<'a>, name: &str) -> Result<usize, String> {
    let v = a.int(name)?;
    usize::try_from(v)
        .ok()
        .filter(|&v| v > 0)
        .ok_or_else(|| format!("{name} must be positive, got {v}"))
}

fn target(a: &InferArgs, name: &str) -> Result<Dim, String> {
    target_size(a, name).map(Dim::Fixed)
}

fn infer_resize_nn(a: &InferArgs) -> Result<Vec<TensorType>, String> {
    with_spatial(
        a,
        |_| target(a, "target_size_height"),
        |_| target(a, "target_size_width"),
    )
}

fn infer_resize_bilinear(a: &InferArgs) -> Result<Vec<TensorType>, String> {
    let mode = a.str("sampling_mode")?;
    if !SAMPLING_MODES.contains(&mode) {
        return Err(format!(
            "unknown sampling_mode '{mode}' (expected one of {SAMPLING_MODES:?})"
        ));
    }
    infer_resize_nn(a)
}

/// The definitions of this family.
pub const DEFS: &[OpDef] = &[
    op(
        "upsample_nearest_neighbor",
        UPSAMPLE_NN,
        infer_upsample,
        k::upsample_nearest_neighbor,
    ),
    op(
        "resize_nearest_neighbor",
        RESIZE_NN,
        infer_resize_nn,
        k::resize_nearest_neighbor,
    ),
    op(
        "upsample_bilinear",
        UPSAMPLE_BILINEAR,
        infer_upsample,
        k::upsample_bilinear,
    ),
    op(
        "resize_bilinear",
        RESIZE_BILINEAR,
        infer_resize_bilinear,
        k::resize_bilinear,
    ),
];
