//! `GroupNormalization`: `layer_norm` over each group of channels, then the affine transform.

use super::{ConvertFn, Ctx, Emit, Node};
use crate::Error;

/// `GroupNormalization(x, scale, bias)`: `x` `[N, C, ...]` is viewed as `[N, G, C/G * rest]`,
/// normalised along the last axis with `layer_norm`, and reshaped back. From opset 21 `scale`
/// and `bias` hold one value per channel; in opset 18 one per group, applied in the grouped view.
fn group_normalization(ctx: &mut Ctx, node: &Node) -> Result<(), Error> {
    let (x, scale, bias) = (
        ctx.input(node, 0)?,
        ctx.input(node, 1)?,
        ctx.input(node, 2)?,
    );
    let out = ctx.out_name(node, 0);
    let groups = ctx.attr(node.int("num_groups"))?;
    let groups = groups.ok_or_else(|| ctx.invalid("attribute 'num_groups' is missing"))?;
    let epsilon = ctx.attr(node.float_or("epsilon", 1e-5))?;
    let shape = ctx.shape(&x)?;
    if shape.len() < 2 {
        return Err(ctx.invalid(format!(
            "input must have rank 2 or more, got {}",
            shape.len()
        )));
    }
    let channels = shape[1];
    let groups = usize::try_from(groups)
        .ok()
        .filter(|&g| g > 0 && channels % g == 0)
        .ok_or_else(|| {
            ctx.invalid(format!(
                "num_groups {groups} does not divide {channels} channels"
            ))
        })?;
    let group_size: usize = shape[1..].iter().product::<usize>() / groups;
    let dims = |v: &[usize]| v.iter().map(|&d| d as i64).collect::<Vec<i64>>();
    let grouped_shape = ctx.ints(
        &format!("{out}_grouped_shape"),
        &dims(&[shape[0], groups, group_size]),
    );
    let grouped = ctx.op1(
        "reshape",
        &format!("{out}_grouped"),
        &[("x", &x), ("shape", &grouped_shape)],
    )?;
    let axes = ctx.ints(&format!("{out}_axes"), &[2]);
    let eps = ctx.float(&format!("{out}_epsilon"), epsilon);
    let normalized = ctx.op1(
        "layer_norm",
        &format!("{out}_normalized"),
        &[("x", &grouped), ("axes", &axes), ("epsilon", &eps)],
    )?;
    let per_channel = ctx.opset >= 21;
    let (affine_input, param_shape) = if per_channel {
        let back = ctx.ints(&format!("{out}_shape"), &dims(&shape));
        let restored = ctx.op1(
            "reshape",
            &format!("{out}_restored"),
            &[("x", &normalized), ("shape", &back)],
        )?;
        let mut param_shape = vec![channels as i64];
        param_shape.resize(shape.len() - 1, 1);
        (restored, param_shape)
    } else {
        (normalized, vec![groups as i64, 1])
    };
    let param_shape = ctx.ints(&format!("{out}_param_shape"), &param_shape);
    let scale = ctx.op1(
        "reshape",
        &format!("{out}_scale"),
        &[("x", &scale), ("shape", &param_shape)],
    )?;
    let bias = ctx.op1(
        "reshape",
        &format!("{out}_bias"),
        &[("x", &bias), ("shape", &param_shape)],
    )?;
    let scaled = ctx.op1(
        "mul",
        &format!("{out}_scaled"),
        &[("x", &affine_input), ("y", &scale)],
    )?;
    let y = if per_channel {
        ctx.op1("add", &out, &[("x", &scaled), ("y", &bias)])?
    } else {
        let shifted = ctx.op1(
            "add",
            &format!("{out}_shifted"),
            &[("x", &scaled), ("y", &bias)],
        )?;
        let back = ctx.ints(&format!("{out}_shape"), &dims(&shape));
        ctx.op1("reshape", &out, &[("x", &shifted), ("shape", &back)])?
    };
    ctx.set_output(node, 0, y);
    Ok(())
}

/// This family's converters.
pub const CONVERTERS: &[(&str, ConvertFn)] = &[("GroupNormalization", group_normalization)];
