//! Compression (decompression-at-load) ops: `constexpr_*`.
//!
//! The iOS16 ops take their parameters as attributes (programs for iOS16/17); the iOS18 ops
//! and the iOS18 forms of `constexpr_lut_to_dense`, `constexpr_sparse_to_dense` and
//! `constexpr_cast` take them as inputs, bound to inline values or to another constexpr op's
//! output (chained compression). One registry entry serves both forms of a name: the type
//! rule tells them apart by the parameters present (`shape` only exists in the iOS16 form),
//! and [`check_form`] keeps each form to its targets.

pub mod kernels;

use self::kernels as k;
use super::axis::norm_axis;
use super::{InferArgs, OpArgs, OpDef, Param, ParamType};
use crate::ir::{DType, Operation, Target, Tensor, TensorType};

/// A parameter of a constexpr op: any dtype (checked by the type rule), and not marked
/// constant because iOS18 chains bind it to another constexpr op's output by name.
const fn p(name: &'static str) -> Param {
    Param::new(name, ParamType::Any)
}

const AFFINE: &[Param] = &[
    p("quantized_data"),
    p("zero_point"),
    p("scale"),
    p("axis").constant(),
];
const LUT_TO_DENSE: &[Param] = &[
    p("indices"),
    p("lut"),
    p("shape").optional().constant(),
    p("vector_axis").optional().constant().since(Target::IOS18),
];
const SPARSE_TO_DENSE: &[Param] = &[
    p("nonzero_data"),
    p("mask"),
    p("shape").optional().constant(),
];
const CAST: &[Param] = &[p("source_val"), p("output_dtype").constant()];
const BLOCKWISE: &[Param] = &[p("data"), p("scale"), p("offset").optional()];
const LUT_TO_SPARSE: &[Param] = &[
    p("indices_mask"),
    p("indices_nonzero_data"),
    p("lut"),
    p("vector_axis").optional().constant(),
];
const SPARSE_BLOCKWISE: &[Param] = &[
    p("data_mask"),
    p("nonzero_data"),
    p("scale"),
    p("offset").optional(),
];

/// The static shape of parameter `name`, or an error (constexpr values are never symbolic).
fn fixed_shape(a: &InferArgs, name: &str) -> Result<Vec<usize>, String> {
    let t = a.ty(name)?;
    t.static_shape()
        .ok_or_else(|| format!("{name} has a symbolic shape {t}"))
}

/// Fails unless parameter `name` has one of `allowed` dtypes.
fn dtype_in(a: &InferArgs, name: &str, allowed: &[DType]) -> Result<DType, String> {
    let d = a.ty(name)?.dtype;
    if allowed.contains(&d) {
        Ok(d)
    } else {
        let names: Vec<&str> = allowed.iter().map(|d| d.name()).collect();
        Err(format!(
            "{name} is {d}, expected one of {}",
            names.join(", ")
        ))
    }
}

/// The `shape` parameter of the iOS16 forms (uint32 values).
fn shape_param(a: &InferArgs) -> Result<Vec<usize>, String> {
    let t = a.const_value("shape")?;
    if t.dtype() != DType::U32 || t.shape().len() != 1 {
        return Err(format!(
            "shape must be a rank-1 uint32 tensor, got {}",
            t.ty()
        ));
    }
    Ok(t.to_i64_vec().into_iter().map(|d| d as usize).collect())
}

const FLOATS: &[DType] = &[DType::F16, DType::F32];
const LUT_TYPES: &[DType] = &[DType::U8, DType::I8, DType::F16, DType::F32];
const INDEX_TYPES: &[DType] = &[
    DType::U1,
    DType::U2,
    DType::U3,
    DType::U4,
    DType::U6,
    DType::U8,
];
const QUANT_TYPES: &[DType] = &[
    DType::I4,
    DType::U4,
    DType::I8,
    DType::U8,
    DType::F16,
    DType::F32,
];

/// Checks a rank-0/1 per-axis parameter of `constexpr_affine_dequantize`.
fn per_axis(a: &InferArgs, name: &str, channels: usize) -> Result<(), String> {
    let s = fixed_shape(a, name)?;
    match s.as_slice() {
        [] => Ok(()),
        [n] if *n == channels => Ok(()),
        _ => Err(format!(
            "{name} has shape {s:?}, expected a scalar or [{channels}]"
        )),
    }
}

fn infer_affine(a: &InferArgs) -> Result<Vec<TensorType>, String> {
    dtype_in(a, "quantized_data", &[DType::U8, DType::I8])?;
    dtype_in(a, "zero_point", &[DType::U8, DType::I8, DType::F32])?;
    let dst = dtype_in(a, "scale", FLOATS)?;
    let shape = fixed_shape(a, "quantized_data")?;
    if shape.is_empty() {
        return Err("quantized_data must have rank 1 or more".into());
    }
    let axis = norm_axis(a.int("axis")?, shape.len())?;
    per_axis(a, "scale", shape[axis])?;
    per_axis(a, "zero_point", shape[axis])?;
    Ok(vec![TensorType::fixed(dst, &shape)])
}

/// Output shape and LUT dtype of an iOS18 palettized tensor whose indices have shape
/// `indices`, checking the LUT's grouping and vector layout.
fn lut_output(
    a: &InferArgs,
    indices: &[usize],
    index_dtype: DType,
) -> Result<(Vec<usize>, DType), String> {
    let dtype = dtype_in(a, "lut", LUT_TYPES)?;
    let lut = fixed_shape(a, "lut")?;
    let rank = indices.len();
    if rank == 0 || lut.len() != rank + 2 {
        return Err(format!(
            "lut has shape {lut:?}; expected rank {} (indices rank {rank} + 2)",
            rank + 2
        ));
    }
    for (d, (&n, &g)) in indices.iter().zip(&lut).enumerate() {
        if g == 0 || n % g != 0 {
            return Err(format!(
                "lut has {g} groups on axis {d}, which does not divide {n}"
            ));
        }
    }
    let palettes = 1usize << index_dtype.bits();
    if lut[rank] != palettes {
        return Err(format!(
            "lut has {} entries per palette, {index_dtype} indices need {palettes}",
            lut[rank]
        ));
    }
    let vector = lut[rank + 1];
    let mut out = indices.to_vec();
    match (a.value("vector_axis"), vector) {
        (None, 1) => {}
        (None, _) => return Err(format!("lut vectors of {vector} need a vector_axis")),
        (Some(v), _) => {
            let axis = v.scalar_i64().ok_or("vector_axis must be a scalar")?;
            let axis = norm_axis(axis, rank)?;
            out[axis] *= vector;
        }
    }
    Ok((out, dtype))
}

fn infer_lut_to_dense(a: &InferArgs) -> Result<Vec<TensorType>, String> {
    if a.opt_ty("shape").is_none() {
        let index_dtype = dtype_in(a, "indices", INDEX_TYPES)?;
        let indices = fixed_shape(a, "indices")?;
        let (shape, dtype) = lut_output(a, &indices, index_dtype)?;
        return Ok(vec![TensorType::fixed(dtype, &shape)]);
    }
    dtype_in(a, "indices", &[DType::U8])?;
    let dtype = dtype_in(a, "lut", LUT_TYPES)?;
    let lut = fixed_shape(a, "lut")?;
    let bits = match lut.as_slice() {
        [2] => 1,
        [4] => 2,
        [16] => 4,
        [64] => 6,
        [256] => 8,
        _ => {
            return Err(format!(
                "lut has shape {lut:?}, expected [2], [4], [16], [64] or [256]"
            ))
        }
    };
    let shape = shape_param(a)?;
    let packed = fixed_shape(a, "indices")?;
    let need = (shape.iter().product::<usize>() * bits).div_ceil(8);
    if packed != [need] {
        return Err(format!(
            "indices has shape {packed:?}, expected [{need}] ({bits}-bit indices for shape {shape:?})"
        ));
    }
    Ok(vec![TensorType::fixed(dtype, &shape)])
}

/// The set elements of a uint1 mask: a popcount when it holds packed bits, else a count of
/// its nonzero bytes in short runs whose u32 sums vectorize.
fn set_elements(mask: &Tensor) -> usize {
    match mask.packed_bits() {
        Some(bits) => bits.iter().map(|b| b.count_ones() as usize).sum(),
        None => mask
            .bytes()
            .chunks(1 << 12)
            .map(|run| run.iter().map(|&b| u32::from(b != 0)).sum::<u32>() as usize)
            .sum(),
    }
}

fn infer_sparse_to_dense(a: &InferArgs) -> Result<Vec<TensorType>, String> {
    let nonzero = fixed_shape(a, "nonzero_data")?;
    if nonzero.len() != 1 {
        return Err(format!("nonzero_data must have rank 1, got {nonzero:?}"));
    }
    if a.opt_ty("shape").is_none() {
        let dtype = dtype_in(a, "nonzero_data", QUANT_TYPES)?;
        dtype_in(a, "mask", &[DType::U1])?;
        let mask = fixed_shape(a, "mask")?;
        if let Some(m) = a.value("mask") {
            let ones = set_elements(m);
            if ones != nonzero[0] {
                return Err(format!(
                    "mask has {ones} set bits but nonzero_data has {} values",
                    nonzero[0]
                ));
            }
        }
        return Ok(vec![TensorType::fixed(dtype, &mask)]);
    }
    let dtype = dtype_in(a, "nonzero_data", LUT_TYPES)?;
    dtype_in(a, "mask", &[DType::U8])?;
    let shape = shape_param(a)?;
    let mask = fixed_shape(a, "mask")?;
    let need = shape.iter().product::<usize>().div_ceil(8);
    if mask != [need] {
        return Err(format!(
            "mask has shape {mask:?}, expected [{need}] for shape {shape:?}"
        ));
    }
    if let Some(m) = a.value("mask") {
        let ones: usize = m.bytes().iter().map(|b| b.count_ones() as usize).sum();
        if ones != nonzero[0] {
            return Err(format!(
                "mask has {ones} set bits but nonzero_data has {} values",
                nonzero[0]
            ));
        }
    }
    Ok(vec![TensorType::fixed(dtype, &shape)])
}

fn infer_cast(a: &InferArgs) -> Result<Vec<TensorType>, String> {
    dtype_in(a, "source_val", &[DType::F16])?;
    let to = a.str("output_dtype")?;
    if to != "fp32" {
        return Err(format!("output_dtype must be \"fp32\", got \"{to}\""));
    }
    Ok(vec![a.ty("source_val")?.with_dtype(DType::F32)])
}

/// Checks `scale` (and `offset`) of a blockwise op against the dense shape `dense` and the
/// source dtype; returns the output dtype.
fn blockwise_params(a: &InferArgs, dense: &[usize], src: DType) -> Result<DType, String> {
    let dst = dtype_in(a, "scale", FLOATS)?;
    let scale = fixed_shape(a, "scale")?;
    if scale.len() != dense.len() {
        return Err(format!(
            "scale has rank {}, data has rank {}",
            scale.len(),
            dense.len()
        ));
    }
    for (d, (&n, &s)) in dense.iter().zip(&scale).enumerate() {
        if s == 0 || n % s != 0 {
            return Err(format!("scale size {s} on axis {d} does not divide {n}"));
        }
    }
    if a.opt_ty("offset").is_some() {
        let off = dtype_in(a, "offset", QUANT_TYPES)?;
        if off.is_int() && off != src {
            return Err(format!("offset is {off} but data is {src}"));
        }
        if fixed_shape(a, "offset")? != scale {
            return Err("offset must have the shape of scale".into());
        }
    }
    Ok(dst)
}

fn infer_blockwise(a: &InferArgs) -> Result<Vec<TensorType>, String> {
    let src = dtype_in(a, "data", QUANT_TYPES)?;
    let shape = fixed_shape(a, "data")?;
    if shape.is_empty() {
        return Err("data must have rank 1 or more".into());
    }
    let dst = blockwise_params(a, &shape, src)?;
    Ok(vec![TensorType::fixed(dst, &shape)])
}

fn infer_lut_to_sparse(a: &InferArgs) -> Result<Vec<TensorType>, String> {
    dtype_in(a, "indices_mask", &[DType::U1])?;
    let index_dtype = dtype_in(a, "indices_nonzero_data", INDEX_TYPES)?;
    let mask = fixed_shape(a, "indices_mask")?;
    let nnz = fixed_shape(a, "indices_nonzero_data")?;
    if nnz.len() != 1 {
        return Err("indices_nonzero_data must have rank 1".into());
    }
    let (dense, dtype) = lut_output(a, &mask, index_dtype)?;
    let vector = dense.iter().product::<usize>() / mask.iter().product::<usize>().max(1);
    Ok(vec![
        TensorType::fixed(DType::U1, &dense),
        TensorType::fixed(dtype, &[nnz[0] * vector]),
    ])
}

fn infer_sparse_blockwise(a: &InferArgs) -> Result<Vec<TensorType>, String> {
    dtype_in(a, "data_mask", &[DType::U1])?;
    let src = dtype_in(a, "nonzero_data", QUANT_TYPES)?;
    let mask = fixed_shape(a, "data_mask")?;
    let nnz = fixed_shape(a, "nonzero_data")?;
    if nnz.len() != 1 || mask.is_empty() {
        return Err("nonzero_data must have rank 1 and data_mask rank 1 or more".into());
    }
    let dst = blockwise_params(a, &mask, src)?;
    Ok(vec![
        TensorType::fixed(DType::U1, &mask),
        TensorType::fixed(dst, &nnz),
    ])
}

/// Checks that a constexpr op uses the form of its program's target: parameters as
/// attributes before iOS18 (and, for `lut_to_dense`/`sparse_to_dense`, the iOS16 form with
/// `shape`), as inputs from iOS18 on (and without `shape`). Other ops pass.
pub fn check_form(op: &Operation, target: Target) -> Result<(), String> {
    if !op.op_type.starts_with("constexpr_") {
        return Ok(());
    }
    let two_forms = matches!(
        op.op_type.as_str(),
        "constexpr_lut_to_dense" | "constexpr_sparse_to_dense"
    );
    if target < Target::IOS18 {
        if let Some((param, _)) = op.inputs.first() {
            return Err(format!(
                "parameter '{param}' must be an attribute before iOS18 (program targets {target})"
            ));
        }
        if two_forms && !op.attributes.contains_key("shape") {
            return Err(format!(
                "the iOS18 form (no 'shape') needs target iOS18 (program targets {target})"
            ));
        }
    } else {
        if let Some(param) = op.attributes.keys().next() {
            return Err(format!(
                "parameter '{param}' must be an input from iOS18 on, not an attribute"
            ));
        }
        if two_forms && op.input("shape").is_some() {
            return Err("the iOS16 form (with 'shape') is not used from iOS18 on".into());
        }
    }
    Ok(())
}

const fn def(
    name: &'static str,
    since: Target,
    params: &'static [Param],
    infer: super::InferFn,
    kernel: crate::interp::KernelFn,
) -> OpDef {
    super::op(name, params, infer, kernel).since(since)
}

/// The definitions of this family.
pub const DEFS: &[OpDef] = &[
    def(
        "constexpr_affine_dequantize",
        Target::IOS16,
        AFFINE,
        infer_affine,
        k::affine_dequantize,
    ),
    def(
        "constexpr_lut_to_dense",
        Target::IOS16,
        LUT_TO_DENSE,
        infer_lut_to_dense,
        k::lut_to_dense,
    ),
    def(
        "constexpr_sparse_to_dense",
        Target::IOS16,
        SPARSE_TO_DENSE,
        infer_sparse_to_dense,
        k::sparse_to_dense,
    ),
    def("constexpr_cast", Target::IOS16, CAST, infer_cast, k::cast),
    def(
        "constexpr_blockwise_shift_scale",
        Target::IOS18,
        BLOCKWISE,
        infer_blockwise,
        k::blockwise_shift_scale,
    ),
    def(
        "constexpr_lut_to_sparse",
        Target::IOS18,
        LUT_TO_SPARSE,
        infer_lut_to_sparse,
        k::lut_to_sparse,
    ),
    def(
        "constexpr_sparse_blockwise_shift_scale",
        Target::IOS18,
        SPARSE_BLOCKWISE,
        infer_sparse_blockwise,
        k::sparse_blockwise_shift_scale,
    ),
];
