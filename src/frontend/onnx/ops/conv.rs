//! `Conv`, `ConvTranspose`, `Col2Im`, and the padding and window attributes they share with
//! pooling.

use super::{ConvertFn, Ctx, Emit, Node};
use crate::frontend::lowering::conv_dilations_groups;
use crate::ir::Tensor;
use crate::Error;

/// Window geometry common to convolution and pooling, in MIL terms.
pub struct Window {
    /// `pad_type`: `custom`, `valid`, `same` or `same_lower`.
    pub pad_type: &'static str,
    /// MIL `pad` ([begin0, end0, begin1, end1, …]) when `pad_type` is `custom`.
    pub pad: Option<Vec<i64>>,
    /// Strides, one per spatial dimension.
    pub strides: Vec<i64>,
}

/// ONNX `pads` ([b0, b1, …, e0, e1, …]) in MIL order ([b0, e0, b1, e1, …]).
pub fn mil_pad_order(pads: &[i64]) -> Vec<i64> {
    let n = pads.len() / 2;
    (0..n).flat_map(|i| [pads[i], pads[n + i]]).collect()
}

/// Reads `auto_pad`, `pads` and `strides` for `spatial` spatial dimensions.
pub fn window(ctx: &Ctx, node: &Node, spatial: usize) -> Result<Window, Error> {
    let auto_pad = ctx
        .attr(node.string("auto_pad"))?
        .unwrap_or_else(|| "NOTSET".into());
    let strides = ctx
        .attr(node.ints("strides"))?
        .unwrap_or_else(|| vec![1; spatial]);
    if strides.len() != spatial || strides.iter().any(|&s| s < 1) {
        return Err(ctx.invalid(format!(
            "strides {strides:?} do not fit {spatial} spatial dimensions"
        )));
    }
    let (pad_type, pad) = match auto_pad.as_str() {
        "NOTSET" => {
            let pads = ctx
                .attr(node.ints("pads"))?
                .unwrap_or_else(|| vec![0; 2 * spatial]);
            if pads.len() != 2 * spatial || pads.iter().any(|&p| p < 0) {
                return Err(ctx.invalid(format!(
                    "pads {pads:?} do not fit {spatial} spatial dimensions"
                )));
            }
            ("custom", Some(mil_pad_order(&pads)))
        }
        "VALID" => ("valid", None),
        "SAME_UPPER" => ("same", None),
        "SAME_LOWER" => ("same_lower", None),
        other => return Err(ctx.invalid(format!("unknown auto_pad '{other}'"))),
    };
    Ok(Window {
        pad_type,
        pad,
        strides,
    })
}

/// Adds the `const` ops for a window's parameters and returns (param, var) pairs.
pub fn window_params(ctx: &mut Ctx, out: &str, w: &Window) -> Vec<(&'static str, String)> {
    let mut params = vec![
        ("strides", ctx.ints(&format!("{out}_strides"), &w.strides)),
        (
            "pad_type",
            ctx.string(&format!("{out}_pad_type"), w.pad_type),
        ),
    ];
    if let Some(pad) = &w.pad {
        params.push(("pad", ctx.ints(&format!("{out}_pad"), pad)));
    }
    params
}

/// `Conv(X, W, B?)` → `conv` (1-D to 3-D, groups, dilations, any padding mode).
fn conv(ctx: &mut Ctx, node: &Node) -> Result<(), Error> {
    let (x, w) = (ctx.input(node, 0)?, ctx.input(node, 1)?);
    let bias = ctx.opt_input(node, 2)?;
    let out = ctx.out_name(node, 0);
    let y = conv_with(ctx, node, &x, &w, bias.as_deref(), &out)?;
    ctx.set_output(node, 0, y);
    Ok(())
}

/// The MIL `conv` of `x` and `w` (plus `bias`) with the window attributes of `node` (a `Conv`
/// or one of its quantized forms), named after `out`.
pub fn conv_with(
    ctx: &mut Ctx,
    node: &Node,
    x: &str,
    w: &str,
    bias: Option<&str>,
    out: &str,
) -> Result<String, Error> {
    let groups = ctx.attr(node.int_or("group", 1))?;
    conv_grouped(ctx, node, x, w, bias, groups, out)
}

/// [`conv_with`] in `groups` groups, whatever the node's `group` attribute (for nodes that
/// share `Conv`'s window attributes but have none, like `LpPool`).
pub fn conv_grouped(
    ctx: &mut Ctx,
    node: &Node,
    x: &str,
    w: &str,
    bias: Option<&str>,
    groups: i64,
    out: &str,
) -> Result<String, Error> {
    let rank = ctx.rank(x)?;
    if !(3..=5).contains(&rank) {
        return Err(ctx.unsupported(format!(
            "only 1-D to 3-D convolutions are supported, input has rank {rank}"
        )));
    }
    let spatial = rank - 2;
    let win = window(ctx, node, spatial)?;
    let dilations = ctx
        .attr(node.ints("dilations"))?
        .unwrap_or_else(|| vec![1; spatial]);
    if dilations.len() != spatial || dilations.iter().any(|&d| d < 1) {
        return Err(ctx.invalid(format!(
            "dilations {dilations:?} do not fit {spatial} spatial dimensions"
        )));
    }
    let mut params = vec![("x", x.to_string()), ("weight", w.to_string())];
    if let Some(b) = bias {
        params.push(("bias", b.to_string()));
    }
    params.extend(window_params(ctx, out, &win));
    params.extend(conv_dilations_groups(ctx, out, &dilations, groups));
    let refs: Vec<(&str, &str)> = params.iter().map(|(p, v)| (*p, v.as_str())).collect();
    ctx.op1("conv", out, &refs)
}

/// `ConvTranspose(X, W, B?)` → `conv_transpose` (weight layout `[C_in, C_out/groups, K…]`
/// is the same in both). Explicit `pads` and `output_padding` (extra outputs at the end,
/// passed as `output_shape`) are supported; `auto_pad` SAME_* and the `output_shape`
/// attribute are not, because runtimes disagree on where their odd padding goes.
fn conv_transpose(ctx: &mut Ctx, node: &Node) -> Result<(), Error> {
    let (x, w) = (ctx.input(node, 0)?, ctx.input(node, 1)?);
    let bias = ctx.opt_input(node, 2)?;
    let out = ctx.out_name(node, 0);
    let x_shape = ctx.shape(&x)?;
    let w_shape = ctx.shape(&w)?;
    let rank = x_shape.len();
    if !(3..=5).contains(&rank) || w_shape.len() != rank {
        return Err(ctx.unsupported(format!(
            "only 1-D to 3-D transposed convolutions are supported, input has rank {rank}"
        )));
    }
    let spatial = rank - 2;
    if ctx.attr(node.ints("output_shape"))?.is_some() {
        return Err(ctx.unsupported(
            "the 'output_shape' attribute is not supported; give pads and output_padding",
        ));
    }
    let auto_pad = ctx
        .attr(node.string("auto_pad"))?
        .unwrap_or_else(|| "NOTSET".into());
    let pads = match auto_pad.as_str() {
        "NOTSET" => ctx
            .attr(node.ints("pads"))?
            .unwrap_or_else(|| vec![0; 2 * spatial]),
        "VALID" => vec![0; 2 * spatial],
        other => return Err(ctx.unsupported(format!("auto_pad '{other}' is not supported"))),
    };
    let strides = ctx
        .attr(node.ints("strides"))?
        .unwrap_or_else(|| vec![1; spatial]);
    let dilations = ctx
        .attr(node.ints("dilations"))?
        .unwrap_or_else(|| vec![1; spatial]);
    let output_padding = ctx
        .attr(node.ints("output_padding"))?
        .unwrap_or_else(|| vec![0; spatial]);
    let fits = |v: &[i64], n: usize, min: i64| v.len() == n && v.iter().all(|&d| d >= min);
    if !fits(&pads, 2 * spatial, 0)
        || !fits(&strides, spatial, 1)
        || !fits(&dilations, spatial, 1)
        || !fits(&output_padding, spatial, 0)
    {
        return Err(ctx.invalid(
            "pads, strides, dilations or output_padding do not fit the spatial dimensions",
        ));
    }
    let groups = ctx.attr(node.int_or("group", 1))?;
    let mut params = vec![("x", x), ("weight", w)];
    if let Some(b) = bias {
        params.push(("bias", b));
    }
    params.push((
        "pad",
        ctx.ints(&format!("{out}_pad"), &mil_pad_order(&pads)),
    ));
    if output_padding.iter().any(|&p| p != 0) {
        let mut sizes = Vec::with_capacity(spatial);
        for i in 0..spatial {
            let full = (x_shape[2 + i] as i64 - 1) * strides[i]
                + (w_shape[2 + i] as i64 - 1) * dilations[i]
                + 1;
            sizes.push(full - pads[i] - pads[spatial + i] + output_padding[i]);
        }
        params.push((
            "output_shape",
            ctx.ints(&format!("{out}_output_shape"), &sizes),
        ));
    }
    params.push(("pad_type", ctx.string(&format!("{out}_pad_type"), "custom")));
    params.push(("strides", ctx.ints(&format!("{out}_strides"), &strides)));
    params.extend(conv_dilations_groups(ctx, &out, &dilations, groups));
    let refs: Vec<(&str, &str)> = params.iter().map(|(p, v)| (*p, v.as_str())).collect();
    let y = ctx.op1("conv_transpose", &out, &refs)?;
    ctx.set_output(node, 0, y);
    Ok(())
}

/// `Col2Im(x, image_shape, block_shape)` with `dilations`, `pads`, `strides`: the columns of
/// `x` (`[N, C·∏block, L]`) summed back into images `[N, C, *image_shape]`. The columns are
/// laid out on their grid of block positions and put through a `conv_transpose` whose
/// depthwise kernel (one group per channel) has a single 1 per column entry, at that entry's
/// place in the block: each value lands where its block puts it and overlaps add up. The shapes
/// must be constant.
fn col2im(ctx: &mut Ctx, node: &Node) -> Result<(), Error> {
    let x = ctx.input(node, 0)?;
    let out = ctx.out_name(node, 0);
    let shape = ctx.shape(&x)?;
    let read = |ctx: &mut Ctx, i: usize, what: &str| -> Result<Vec<i64>, Error> {
        Ok(ctx
            .const_input(node, i)?
            .ok_or_else(|| ctx.invalid(format!("input '{what}' is missing")))?
            .to_i64_vec())
    };
    let image = read(ctx, 1, "image_shape")?;
    let block = read(ctx, 2, "block_shape")?;
    let spatial = image.len();
    let dilations = ctx
        .attr(node.ints("dilations"))?
        .unwrap_or_else(|| vec![1; spatial]);
    let strides = ctx
        .attr(node.ints("strides"))?
        .unwrap_or_else(|| vec![1; spatial]);
    let pads = ctx
        .attr(node.ints("pads"))?
        .unwrap_or_else(|| vec![0; 2 * spatial]);
    let fits = |v: &[i64], n: usize, min: i64| v.len() == n && v.iter().all(|&d| d >= min);
    if shape.len() != 3
        || !(1..=3).contains(&spatial)
        || !fits(&block, spatial, 1)
        || !fits(&image, spatial, 1)
        || !fits(&dilations, spatial, 1)
        || !fits(&strides, spatial, 1)
        || !fits(&pads, 2 * spatial, 0)
    {
        return Err(ctx.invalid(format!(
            "input shape {shape:?}, image_shape {image:?}, block_shape {block:?} and the window attributes do not fit 1 to 3 spatial dimensions"
        )));
    }
    let block_size: i64 = block.iter().product();
    let mut grid = Vec::with_capacity(spatial);
    for i in 0..spatial {
        let span = image[i] + pads[i] + pads[spatial + i] - dilations[i] * (block[i] - 1) - 1;
        if span < 0 {
            return Err(ctx.invalid(format!("the block does not fit the image on axis {i}")));
        }
        grid.push(span / strides[i] + 1);
    }
    let (n, rows, columns) = (shape[0] as i64, shape[1] as i64, shape[2] as i64);
    if rows % block_size != 0 || grid.iter().product::<i64>() != columns {
        return Err(ctx.invalid(format!(
            "input shape {shape:?} does not hold blocks of {block_size} values at {grid:?} positions"
        )));
    }
    let channels = rows / block_size;
    let mut laid_out = vec![n, rows];
    laid_out.extend(&grid);
    let laid_out = ctx.ints(&format!("{out}_grid_shape"), &laid_out);
    let columns = ctx.op1(
        "reshape",
        &format!("{out}_columns"),
        &[("x", &x), ("shape", &laid_out)],
    )?;
    let k = block_size as usize;
    let mut weight = vec![0.0f32; rows as usize * k];
    for row in 0..rows as usize {
        weight[row * k + row % k] = 1.0;
    }
    let mut weight_shape = vec![rows as usize, 1];
    weight_shape.extend(block.iter().map(|&b| b as usize));
    let weight = ctx.constant(
        &format!("{out}_placement"),
        Tensor::from_f32(&weight_shape, &weight),
    );
    let natural: Vec<i64> = (0..spatial)
        .map(|i| {
            (grid[i] - 1) * strides[i] + dilations[i] * (block[i] - 1) + 1
                - pads[i]
                - pads[spatial + i]
        })
        .collect();
    let mut params = vec![("x", columns), ("weight", weight)];
    params.push((
        "pad",
        ctx.ints(&format!("{out}_pad"), &mil_pad_order(&pads)),
    ));
    if natural != image {
        params.push((
            "output_shape",
            ctx.ints(&format!("{out}_output_shape"), &image),
        ));
    }
    params.push(("pad_type", ctx.string(&format!("{out}_pad_type"), "custom")));
    params.push(("strides", ctx.ints(&format!("{out}_strides"), &strides)));
    params.extend(conv_dilations_groups(ctx, &out, &dilations, channels));
    let refs: Vec<(&str, &str)> = params.iter().map(|(p, v)| (*p, v.as_str())).collect();
    let y = ctx.op1("conv_transpose", &out, &refs)?;
    ctx.set_output(node, 0, y);
    Ok(())
}

/// This family's converters.
pub const CONVERTERS: &[(&str, ConvertFn)] = &[
    ("Col2Im", col2im),
    ("Conv", conv),
    ("ConvTranspose", conv_transpose),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn onnx_pads_become_begin_end_pairs() {
        assert_eq!(mil_pad_order(&[1, 2, 3, 4]), vec![1, 3, 2, 4]);
        assert_eq!(mil_pad_order(&[0, 5]), vec![0, 5]);
    }
}
