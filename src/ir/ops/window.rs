//! Output sizes and paddings of windowed ops (conv, pools), shared by their type rules and
//! kernels so both agree on every rounding rule.

use crate::ir::Dim;

/// How a windowed op pads its input (`pad_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PadType {
    /// No padding.
    Valid,
    /// Output size `ceil(in / stride)`, extra padding at the end.
    Same,
    /// Output size `ceil(in / stride)`, extra padding at the beginning.
    SameLower,
    /// Explicit `pad` = [begin0, end0, begin1, end1, …].
    Custom,
}

impl PadType {
    /// Parses a MIL `pad_type` string.
    pub fn parse(s: &str) -> Result<PadType, String> {
        match s {
            "valid" => Ok(PadType::Valid),
            "same" => Ok(PadType::Same),
            "same_lower" => Ok(PadType::SameLower),
            "custom" => Ok(PadType::Custom),
            other => Err(format!(
                "unknown pad_type '{other}' (expected valid, same, same_lower or custom)"
            )),
        }
    }
}

/// The geometry of a window along one spatial dimension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Axis1 {
    /// Kernel size.
    pub kernel: usize,
    /// Stride.
    pub stride: usize,
    /// Dilation.
    pub dilation: usize,
    /// Padding before and after, from `pad` (only read for `PadType::Custom`).
    pub custom_pad: (usize, usize),
}

/// Output size and the (begin, end) padding actually applied along one dimension of size
/// `input`. With `ceil_mode` the output size rounds up, except that on a padded axis the last
/// window must start inside the input or the begin padding (Core ML's rule, as coremltools'
/// `spatial_dimensions_out_shape` states it, and PyTorch's; ONNX drops such a window on
/// unpadded axes too, which its frontend accounts for).
pub fn output_size(
    input: usize,
    axis: Axis1,
    pad_type: PadType,
    ceil_mode: bool,
) -> Result<(usize, usize, usize), String> {
    let Axis1 {
        kernel,
        stride,
        dilation,
        custom_pad,
    } = axis;
    if kernel == 0 || stride == 0 || dilation == 0 {
        return Err(format!(
            "kernel size {kernel}, stride {stride} and dilation {dilation} must be positive"
        ));
    }
    let too_big = || {
        format!("window of kernel {kernel}, dilation {dilation} and padding {custom_pad:?} is too large")
    };
    let effective = (kernel - 1)
        .checked_mul(dilation)
        .and_then(|e| e.checked_add(1))
        .ok_or_else(too_big)?;
    let (pb, pe) = match pad_type {
        PadType::Valid => (0, 0),
        PadType::Custom => custom_pad,
        PadType::Same | PadType::SameLower => {
            let out = input.div_ceil(stride);
            let total = ((out.max(1) - 1) * stride)
                .checked_add(effective)
                .ok_or_else(too_big)?
                .saturating_sub(input);
            let small = total / 2;
            let (pb, pe) = if pad_type == PadType::Same {
                (small, total - small)
            } else {
                (total - small, small)
            };
            return Ok((out, pb, pe));
        }
    };
    let padded = input
        .checked_add(pb)
        .and_then(|p| p.checked_add(pe))
        .ok_or_else(too_big)?;
    if padded < effective {
        return Err(format!(
            "window of size {effective} does not fit in a padded input of size {padded}"
        ));
    }
    let span = padded - effective;
    let mut out = if ceil_mode {
        span.div_ceil(stride) + 1
    } else {
        span / stride + 1
    };
    if ceil_mode && out > 1 && pb + pe > 0 && (out - 1) * stride >= input + pb {
        out -= 1;
    }
    Ok((out, pb, pe))
}

/// Reads the per-dimension window geometry of an op with `n` spatial dims from its
/// (already defaulted) parameter lists; validates their lengths.
pub fn axes(
    n: usize,
    kernel: &[i64],
    strides: &[i64],
    dilations: &[i64],
    pad: &[i64],
) -> Result<Vec<Axis1>, String> {
    let check = |what: &str, v: &[i64], len: usize| {
        if v.len() != len {
            Err(format!("{what} has {} values, expected {len}", v.len()))
        } else if v.iter().any(|&x| x < 0) {
            Err(format!("{what} {v:?} has negative values"))
        } else {
            Ok(())
        }
    };
    check("kernel size", kernel, n)?;
    check("strides", strides, n)?;
    check("dilations", dilations, n)?;
    check("pad", pad, 2 * n)?;
    Ok((0..n)
        .map(|i| Axis1 {
            kernel: kernel[i] as usize,
            stride: strides[i] as usize,
            dilation: dilations[i] as usize,
            custom_pad: (pad[2 * i] as usize, pad[2 * i + 1] as usize),
        })
        .collect())
}

/// The output dims of a windowed op for possibly symbolic input dims; unknown inputs give
/// symbols made by `symbol(index)`.
pub fn output_dims(
    spatial: &[Dim],
    axes: &[Axis1],
    pad_type: PadType,
    ceil_mode: bool,
    first_index: usize,
    symbol: impl Fn(usize) -> Dim,
) -> Result<Vec<Dim>, String> {
    spatial
        .iter()
        .zip(axes)
        .enumerate()
        .map(|(i, (d, &a))| match d {
            Dim::Fixed(n) => output_size(*n, a, pad_type, ceil_mode).map(|(o, _, _)| Dim::Fixed(o)),
            Dim::Symbol(_) => Ok(symbol(first_index + i)),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ax(kernel: usize, stride: usize, dilation: usize, pad: (usize, usize)) -> Axis1 {
        Axis1 {
            kernel,
            stride,
            dilation,
            custom_pad: pad,
        }
    }

    #[test]
    fn valid_and_custom_floor() {
        assert_eq!(
            output_size(224, ax(7, 2, 1, (3, 3)), PadType::Custom, false).unwrap(),
            (112, 3, 3)
        );
        assert_eq!(
            output_size(5, ax(3, 1, 2, (0, 0)), PadType::Valid, false).unwrap(),
            (1, 0, 0)
        );
        assert!(output_size(2, ax(3, 1, 1, (0, 0)), PadType::Valid, false).is_err());
    }

    #[test]
    fn same_pads_extra_at_end_and_same_lower_at_begin() {
        // in 5, k 4, s 2: out 3, total pad (3-1)*2+4-5 = 3.
        assert_eq!(
            output_size(5, ax(4, 2, 1, (0, 0)), PadType::Same, false).unwrap(),
            (3, 1, 2)
        );
        assert_eq!(
            output_size(5, ax(4, 2, 1, (0, 0)), PadType::SameLower, false).unwrap(),
            (3, 2, 1)
        );
    }

    #[test]
    fn ceil_mode_drops_window_starting_in_end_padding() {
        // PyTorch: in 6, k 3, s 2, ceil → 3 windows (last starts at 4 < 6).
        assert_eq!(
            output_size(6, ax(3, 2, 1, (0, 0)), PadType::Valid, true)
                .unwrap()
                .0,
            3
        );
        // in 5, k 2, s 2, pad (1,1): ceil((7-2)/2)+1 = 4, but window 3 starts at 6 ≥ 5+1 → 3.
        assert_eq!(
            output_size(5, ax(2, 2, 1, (1, 1)), PadType::Custom, true)
                .unwrap()
                .0,
            3
        );
        assert_eq!(
            output_size(5, ax(2, 2, 1, (1, 1)), PadType::Custom, false)
                .unwrap()
                .0,
            3
        );
        // in 112, k 3, s 2, pad (0,0): floor gives 55, ceil gives 56.
        assert_eq!(
            output_size(112, ax(3, 2, 1, (0, 0)), PadType::Valid, false)
                .unwrap()
                .0,
            55
        );
        assert_eq!(
            output_size(112, ax(3, 2, 1, (0, 0)), PadType::Valid, true)
                .unwrap()
                .0,
            56
        );
    }
}
