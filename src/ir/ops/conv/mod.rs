//! Convolutions: `conv` and `conv_transpose` over 1-D, 2-D or 3-D spatial dims.

pub mod kernels;

use self::kernels as k;
use super::window::{axes, output_dims, Axis1, PadType};
use super::{op, ChannelAxes, InferArgs, OpArgs, OpDef, Param, ParamType};
use crate::ir::{Dim, TensorType};

/// An optional constant integer (list) parameter.
const fn int_list(name: &'static str) -> Param {
    Param::new(name, ParamType::Int).optional().constant()
}

const PAD_TYPE: Param = Param::new("pad_type", ParamType::Str)
    .constant()
    .default_str("valid");
const GROUPS: Param = Param::new("groups", ParamType::Int)
    .constant()
    .default_int(1);
const CONV: &[Param] = &[
    Param::new("x", ParamType::T),
    Param::new("weight", ParamType::T),
    Param::new("bias", ParamType::T).optional(),
    int_list("strides"),
    PAD_TYPE,
    int_list("pad"),
    int_list("dilations"),
    GROUPS,
];
const CONV_TRANSPOSE: &[Param] = &[
    Param::new("x", ParamType::T),
    Param::new("weight", ParamType::T),
    Param::new("bias", ParamType::T).optional(),
    int_list("pad"),
    int_list("output_shape"),
    PAD_TYPE,
    int_list("strides"),
    int_list("dilations"),
    GROUPS,
];

/// The resolved attributes of a convolution with `n` spatial dims.
#[derive(Clone, Debug)]
pub struct ConvAttrs {
    /// Window geometry per spatial dim (kernel sizes from the weight).
    pub axes: Vec<Axis1>,
    /// Padding scheme.
    pub pad_type: PadType,
    /// Number of groups.
    pub groups: usize,
}

/// Reads the attributes of a conv whose weight has spatial `kernel` sizes (the type rule and
/// the kernel both call this). Strides and dilations default to 1 and pad to 0 per spatial
/// dim; pad_type and groups default on their parameter specs.
pub fn conv_attrs<'a>(a: &impl OpArgs<'a>, kernel: &[usize]) -> Result<ConvAttrs, String> {
    let n = kernel.len();
    let (strides, dilations, pad) = (
        a.opt_ints("strides")?,
        a.opt_ints("dilations")?,
        a.opt_ints("pad")?,
    );
    let groups = a.int("groups")?;
    let pad_type = PadType::parse(a.str("pad_type")?)?;
    let kernel: Vec<i64> = kernel.iter().map(|&k| k as i64).collect();
    let pad = match pad_type {
        PadType::Custom => pad.unwrap_or_else(|| vec![0; 2 * n]),
        _ => vec![0; 2 * n],
    };
    let axes = axes(
        n,
        &kernel,
        &strides.unwrap_or_else(|| vec![1; n]),
        &dilations.unwrap_or_else(|| vec![1; n]),
        &pad,
    )?;
    if groups < 1 {
        return Err(format!("groups must be positive, got {groups}"));
    }
    Ok(ConvAttrs {
        axes,
        pad_type,
        groups: groups as usize,
    })
}

/// Reads and checks the common conv inputs: (x, weight) with 1–3 spatial dims.
fn conv_operands<'a>(
    a: &InferArgs<'a>,
) -> Result<(&'a TensorType, &'a TensorType, Vec<usize>), String> {
    let (x, w) = (a.ty("x")?, a.ty("weight")?);
    if !(3..=5).contains(&x.rank()) || w.rank() != x.rank() {
        return Err(format!(
            "x {x} must have rank 3 to 5 and weight {w} the same rank"
        ));
    }
    let kernel = w.shape[2..]
        .iter()
        .map(|d| {
            d.fixed()
                .ok_or_else(|| format!("weight {w} must have known kernel sizes"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((x, w, kernel))
}

fn check_bias(a: &InferArgs, out_channels: &Dim) -> Result<(), String> {
    if let Some(b) = a.opt_ty("bias") {
        let ok = b.rank() == 1
            && b.shape[0]
                .fixed()
                .zip(out_channels.fixed())
                .is_none_or(|(p, q)| p == q);
        if !ok {
            return Err(format!("bias {b} must have shape [{out_channels}]"));
        }
    }
    Ok(())
}

fn infer_conv(a: &InferArgs) -> Result<Vec<TensorType>, String> {
    let (x, w, kernel) = conv_operands(a)?;
    let attrs = conv_attrs(a, &kernel)?;
    let g = attrs.groups;
    if let (Some(c), Some(wc)) = (x.shape[1].fixed(), w.shape[1].fixed()) {
        if c != wc * g {
            return Err(format!(
                "x has {c} channels but weight {w} with groups={g} expects {}",
                wc * g
            ));
        }
    }
    if let Some(co) = w.shape[0].fixed() {
        if co % g != 0 {
            return Err(format!(
                "weight has {co} output channels, not divisible by groups={g}"
            ));
        }
    }
    check_bias(a, &w.shape[0])?;
    let mut shape = vec![x.shape[0].clone(), w.shape[0].clone()];
    shape.extend(output_dims(
        &x.shape[2..],
        &attrs.axes,
        attrs.pad_type,
        false,
        2,
        |i| a.symbol(i),
    )?);
    Ok(vec![TensorType {
        dtype: x.dtype,
        shape,
    }])
}

/// The unpadded output extent of a transposed convolution: `(in - 1) * stride + (k - 1) *
/// dilation + 1`.
pub fn transposed_extent(input: usize, axis: Axis1) -> Result<usize, String> {
    (input.max(1) - 1)
        .checked_mul(axis.stride)
        .zip((axis.kernel.max(1) - 1).checked_mul(axis.dilation))
        .and_then(|(p, q)| p.checked_add(q)?.checked_add(1))
        .ok_or_else(|| format!("transposed convolution of size {input} with {axis:?} is too large"))
}

/// Output size of a transposed convolution along one dim (`same` gives `in * stride`).
pub fn conv_transpose_size(input: usize, axis: Axis1, pad_type: PadType) -> Result<usize, String> {
    let full = transposed_extent(input, axis)?;
    match pad_type {
        PadType::Same | PadType::SameLower => input
            .checked_mul(axis.stride)
            .ok_or_else(|| format!("output of {input} × stride {} is too large", axis.stride)),
        PadType::Valid => Ok(full),
        PadType::Custom => full
            .checked_sub(axis.custom_pad.0 + axis.custom_pad.1)
            .filter(|&n| n > 0)
            .ok_or_else(|| {
                format!(
                    "padding {:?} removes the whole output of size {full}",
                    axis.custom_pad
                )
            }),
    }
}

fn infer_conv_transpose(a: &InferArgs) -> Result<Vec<TensorType>, String> {
    let (x, w, kernel) = conv_operands(a)?;
    let attrs = conv_attrs(a, &kernel)?;
    let g = attrs.groups;
    if let (Some(c), Some(wc)) = (x.shape[1].fixed(), w.shape[0].fixed()) {
        if c != wc {
            return Err(format!("x has {c} channels but weight {w} expects {wc}"));
        }
    }
    let out_channels = match w.shape[1].fixed() {
        Some(n) => Dim::Fixed(n * g),
        None => a.symbol(1),
    };
    check_bias(a, &out_channels)?;
    let mut shape = vec![x.shape[0].clone(), out_channels];
    if let Some(out) = a.opt_ints("output_shape")? {
        let n = kernel.len();
        let spatial = if out.len() == n + 2 {
            &out[2..]
        } else {
            &out[..]
        };
        if spatial.len() != n || spatial.iter().any(|&d| d <= 0) {
            return Err(format!(
                "output_shape {out:?} must give {n} positive spatial sizes"
            ));
        }
        shape.extend(spatial.iter().map(|&d| Dim::Fixed(d as usize)));
    } else {
        for (i, (d, &ax)) in x.shape[2..].iter().zip(&attrs.axes).enumerate() {
            shape.push(match d.fixed() {
                Some(n) => Dim::Fixed(conv_transpose_size(n, ax, attrs.pad_type)?),
                None => a.symbol(2 + i),
            });
        }
    }
    Ok(vec![TensorType {
        dtype: x.dtype,
        shape,
    }])
}

/// A `conv_transpose` weight is `[C_in, C_out / groups, kernel…]`: input channels on axis 0,
/// output channels on axis 1.
fn input_then_output(_param: &str, _rank: usize, _flag: &dyn Fn(&str) -> bool) -> ChannelAxes {
    ChannelAxes {
        output: 1,
        input: 0,
    }
}

/// The definitions of this family.
pub const DEFS: &[OpDef] = &[
    op("conv", CONV, infer_conv, k::conv),
    op(
        "conv_transpose",
        CONV_TRANSPOSE,
        infer_conv_transpose,
        k::conv_transpose,
    )
    .weight_axes(input_then_output),
];
