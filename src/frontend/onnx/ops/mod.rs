//! The converter table: ONNX op type → the function that emits its MIL ops. One file per op
//! family; `supported_op_types` and the unsupported-operator check read this table.

/// Defines a converter mapping a one-input ONNX op to a one-input MIL op on `x`.
macro_rules! unary {
    ($($fn_name:ident => $mil:literal),* $(,)?) => {$(
        fn $fn_name(ctx: &mut Ctx, node: &Node) -> Result<(), Error> {
            let x = ctx.input(node, 0)?;
            let y = ctx.op1($mil, &ctx.out_name(node, 0), &[("x", &x)])?;
            ctx.set_output(node, 0, y);
            Ok(())
        }
    )*};
}

mod activation;
mod composite_activation;
mod constant;
mod conv;
mod einsum;
mod elementwise;
mod gather_scatter;
mod group_norm;
mod linear;
mod normalization;
mod pool;
mod quantization;
mod recurrent;
mod reduction;
mod resize;
mod shape;
mod slice;
mod tensor_ops;
mod transformers;

use super::convert::Ctx;
use super::node::Node;
use crate::frontend::emitter::Emit;
use crate::ir::ops::axis::norm_axis;
use crate::Error;

/// Converts one node: reads its inputs from the context, adds ops, binds its outputs.
pub type ConvertFn = fn(&mut Ctx, &Node) -> Result<(), Error>;

/// Every converter, by ONNX op type (default domain).
const TABLE: &[&[(&str, ConvertFn)]] = &[
    activation::CONVERTERS,
    composite_activation::CONVERTERS,
    constant::CONVERTERS,
    conv::CONVERTERS,
    einsum::CONVERTERS,
    elementwise::CONVERTERS,
    gather_scatter::CONVERTERS,
    group_norm::CONVERTERS,
    linear::CONVERTERS,
    normalization::CONVERTERS,
    pool::CONVERTERS,
    quantization::CONVERTERS,
    recurrent::CONVERTERS,
    reduction::CONVERTERS,
    resize::CONVERTERS,
    shape::CONVERTERS,
    slice::CONVERTERS,
    tensor_ops::CONVERTERS,
    transformers::CONVERTERS,
];

/// The converter for ONNX op type `op_type`.
pub fn converter(op_type: &str) -> Option<ConvertFn> {
    TABLE
        .iter()
        .flat_map(|family| family.iter())
        .find(|(name, _)| *name == op_type)
        .map(|(_, f)| *f)
}

/// The converter for op type `op_type` of ONNX domain `domain` (`""`/`ai.onnx`, or
/// onnxruntime's `com.microsoft` contrib ops).
pub fn converter_in(domain: &str, op_type: &str) -> Option<ConvertFn> {
    match domain {
        "" | "ai.onnx" => converter(op_type),
        "com.microsoft" => quantization::MICROSOFT_CONVERTERS
            .iter()
            .find(|(name, _)| *name == op_type)
            .map(|(_, f)| *f),
        _ => None,
    }
}

/// Every converted op type, sorted.
pub fn op_types() -> Vec<&'static str> {
    let mut names: Vec<&'static str> = TABLE
        .iter()
        .flat_map(|family| family.iter())
        .map(|(name, _)| *name)
        .collect();
    names.sort_unstable();
    names
}

/// Normalises a possibly negative ONNX axis for a tensor of `rank`.
pub fn axis(ctx: &Ctx, axis: i64, rank: usize) -> Result<usize, Error> {
    norm_axis(axis, rank)
        .map_err(|_| ctx.invalid(format!("axis {axis} is out of range for rank {rank}")))
}

/// Normalises a list of axes; duplicates are an error.
pub fn axes(ctx: &Ctx, axes: &[i64], rank: usize) -> Result<Vec<usize>, Error> {
    let mut out = Vec::with_capacity(axes.len());
    for &a in axes {
        let a = axis(ctx, a, rank)?;
        if out.contains(&a) {
            return Err(ctx.invalid(format!("axis {a} is listed twice")));
        }
        out.push(a);
    }
    Ok(out)
}

/// Integers of an attribute (before opset `moved_at`) or of constant input `input` (from it).
pub fn ints_attr_or_input(
    ctx: &mut Ctx,
    node: &Node,
    attr: &str,
    input: usize,
    moved_at: i64,
) -> Result<Option<Vec<i64>>, Error> {
    if ctx.opset < moved_at {
        ctx.attr(node.ints(attr))
    } else {
        Ok(ctx.const_input(node, input)?.map(|t| t.to_i64_vec()))
    }
}

/// Converts a node by aliasing output 0 to input 0 (no op is emitted).
pub fn alias(ctx: &mut Ctx, node: &Node) -> Result<(), Error> {
    let x = ctx.input(node, 0)?;
    ctx.set_output(node, 0, x);
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn table_has_no_duplicates_and_is_sorted() {
        let names = super::op_types();
        let mut dedup = names.clone();
        dedup.dedup();
        assert_eq!(names, dedup);
        assert!(names.contains(&"Conv") && names.contains(&"Gemm"));
    }
}
