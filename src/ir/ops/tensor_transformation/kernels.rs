//! Kernels of tensor transformations.

use crate::interp::per_kind;
use crate::interp::{KernelArgs, Value};
use crate::ir::ops::axis::norm_axes;
use crate::ir::ops::scatter_gather::kernels::take;
use crate::ir::ops::tensor_transformation::{expand_positions, permutation, SliceSpec};
use crate::ir::ops::OpArgs;
use ndarray::{ArrayD, IxDyn};

/// `x` with its elements laid out again in row-major order under `shape`.
pub(crate) fn reshaped<T: Clone>(a: &ArrayD<T>, shape: &[usize]) -> Result<ArrayD<T>, String> {
    a.as_standard_layout()
        .into_owned()
        .into_shape_with_order(IxDyn(shape))
        .map_err(|_| format!("cannot reshape {:?} to {shape:?}", a.shape()))
}

/// Resolves a reshape target (0 copies, -1 infers) against a concrete input shape.
fn concrete_target(from: &[usize], to: &[i64]) -> Result<Vec<usize>, String> {
    if to.contains(&0) && to.len() != from.len() {
        return Err(format!(
            "shape {to:?} contains 0 but the input has rank {}",
            from.len()
        ));
    }
    let mut out: Vec<Option<usize>> = Vec::with_capacity(to.len());
    for (i, &d) in to.iter().enumerate() {
        out.push(match d {
            0 => Some(from[i]),
            -1 => None,
            d if d > 0 => Some(d as usize),
            d => return Err(format!("shape {to:?} has invalid size {d}")),
        });
    }
    let volume: usize = from.iter().product();
    let known: usize = out.iter().flatten().product();
    match out.iter().filter(|d| d.is_none()).count() {
        0 => {}
        1 if known > 0 && volume % known == 0 => {
            let pos = out.iter().position(Option::is_none).unwrap_or(0);
            out[pos] = Some(volume / known);
        }
        _ => return Err(format!("cannot reshape {from:?} to {to:?}")),
    }
    Ok(out.into_iter().flatten().collect())
}

/// `reshape`.
pub fn reshape(args: &KernelArgs) -> Result<Vec<Value>, String> {
    let x = args.get("x")?;
    let target = concrete_target(x.shape(), &args.ints("shape")?)?;
    Ok(vec![per_kind!(x, a => reshaped(a, &target)?)])
}

/// `transpose`: output dim `i` is input dim `perm[i]`.
pub fn transpose(args: &KernelArgs) -> Result<Vec<Value>, String> {
    let x = args.get("x")?;
    let perm = permutation(&args.ints("perm")?, x.shape().len())?;
    Ok(vec![
        per_kind!(x, a => a.view().permuted_axes(IxDyn(&perm)).as_standard_layout().into_owned()),
    ])
}

/// `squeeze`: removes the listed size-1 axes, or every size-1 axis.
pub fn squeeze(args: &KernelArgs) -> Result<Vec<Value>, String> {
    let x = args.get("x")?;
    let shape = x.shape();
    let axes = match args.opt_ints("axes")? {
        Some(axes) => norm_axes(&axes, shape.len())?,
        None => (0..shape.len()).filter(|&i| shape[i] == 1).collect(),
    };
    if let Some(&bad) = axes.iter().find(|&&i| shape[i] != 1) {
        return Err(format!("cannot squeeze axis {bad} of size {}", shape[bad]));
    }
    let out: Vec<usize> = (0..shape.len())
        .filter(|i| !axes.contains(i))
        .map(|i| shape[i])
        .collect();
    Ok(vec![per_kind!(x, a => reshaped(a, &out)?)])
}

/// `expand_dims`.
pub fn expand_dims(args: &KernelArgs) -> Result<Vec<Value>, String> {
    let x = args.get("x")?;
    let mut shape = x.shape().to_vec();
    for p in expand_positions(&args.ints("axes")?, shape.len())? {
        shape.insert(p, 1);
    }
    Ok(vec![per_kind!(x, a => reshaped(a, &shape)?)])
}

/// `slice_by_index`: NumPy `x[begin:end:stride, …]` with masks.
pub fn slice_by_index(args: &KernelArgs) -> Result<Vec<Value>, String> {
    let x = args.get("x")?;
    let shape = x.shape().to_vec();
    let [begin_mask, end_mask, squeeze_mask] =
        ["begin_mask", "end_mask", "squeeze_mask"].map(|m| args.opt_ints(m));
    let masks = [begin_mask?, end_mask?, squeeze_mask?];
    let spec = SliceSpec::new(
        shape.len(),
        args.ints("begin")?,
        args.ints("end")?,
        args.opt_ints("stride")?,
        masks,
    )?;
    let mut picks = Vec::with_capacity(shape.len());
    let mut out_shape = Vec::new();
    for (i, &n) in shape.iter().enumerate() {
        let d = spec.dim(i, n)?;
        picks.push(
            (0..d.len as i64)
                .map(|k| (d.start + k * d.stride) as usize)
                .collect::<Vec<_>>(),
        );
        if !spec.squeeze_mask[i] {
            out_shape.push(d.len);
        }
    }
    Ok(vec![
        per_kind!(x, a => reshaped(&take(a, &picks), &out_shape)?),
    ])
}

/// `slice_by_size`: `size[i]` elements from `begin[i]` (-1 takes the rest).
pub fn slice_by_size(args: &KernelArgs) -> Result<Vec<Value>, String> {
    let x = args.get("x")?;
    let (begin, size) = (args.ints("begin")?, args.ints("size")?);
    let shape = x.shape();
    if begin.len() != shape.len() || size.len() != shape.len() {
        return Err(format!(
            "begin {begin:?} and size {size:?} must have rank(x) = {} entries",
            shape.len()
        ));
    }
    let mut picks = Vec::with_capacity(shape.len());
    for (i, &n) in shape.iter().enumerate() {
        let b = if begin[i] < 0 {
            begin[i] + n as i64
        } else {
            begin[i]
        };
        let len = if size[i] == -1 { n as i64 - b } else { size[i] };
        if b < 0 || len < 0 || b + len > n as i64 {
            return Err(format!(
                "slice of {len} from {} is outside dimension {i} of size {n}",
                begin[i]
            ));
        }
        picks.push((b as usize..(b + len) as usize).collect::<Vec<_>>());
    }
    Ok(vec![per_kind!(x, a => take(a, &picks))])
}

/// `reverse` along the listed axes (all by default).
pub fn reverse(args: &KernelArgs) -> Result<Vec<Value>, String> {
    let x = args.get("x")?;
    let rank = x.shape().len();
    let axes = match args.opt_ints("axes")? {
        Some(axes) => norm_axes(&axes, rank)?,
        None => (0..rank).collect(),
    };
    let picks: Vec<Vec<usize>> = x
        .shape()
        .iter()
        .enumerate()
        .map(|(i, &n)| {
            if axes.contains(&i) {
                (0..n).rev().collect()
            } else {
                (0..n).collect()
            }
        })
        .collect();
    Ok(vec![per_kind!(x, a => take(a, &picks))])
}

/// Rearranges a rank-4 float tensor: `out[n, c, h, w] = x[n, src(c, h, w)]` where `src` maps
/// output coordinates to input (channel, row, column).
fn rearrange(
    x: &ArrayD<f32>,
    out_shape: [usize; 4],
    src: impl Fn(usize, usize, usize) -> (usize, usize, usize),
) -> Result<ArrayD<f32>, String> {
    let x = x
        .view()
        .into_dimensionality::<ndarray::Ix4>()
        .map_err(|_| "x must have rank 4".to_string())?;
    Ok(ArrayD::from_shape_fn(IxDyn(&out_shape), |ix| {
        let (c, h, w) = src(ix[1], ix[2], ix[3]);
        x[[ix[0], c, h, w]]
    }))
}

fn block_arg(
    args: &KernelArgs,
    name: &str,
    x: &ArrayD<f32>,
) -> Result<(usize, [usize; 4]), String> {
    let b = args.int(name)?;
    if b < 1 || x.ndim() != 4 {
        return Err(format!(
            "{name} must be positive and x of rank 4, got {b} and {:?}",
            x.shape()
        ));
    }
    let s = x.shape();
    Ok((b as usize, [s[0], s[1], s[2], s[3]]))
}

/// `depth_to_space` (DCR order): `out[n, c, h*b+i, w*b+j] = x[n, (i*b+j)*C' + c, h, w]`.
pub fn depth_to_space(args: &KernelArgs) -> Result<Vec<Value>, String> {
    let x = args.get("x")?.float()?;
    let (b, [n, c, h, w]) = block_arg(args, "block_size", x)?;
    if c % (b * b) != 0 {
        return Err(format!(
            "channels {c} are not divisible by block_size² = {}",
            b * b
        ));
    }
    let co = c / (b * b);
    let out = rearrange(x, [n, co, h * b, w * b], |oc, oh, ow| {
        (((oh % b) * b + ow % b) * co + oc, oh / b, ow / b)
    })?;
    Ok(vec![Value::Float(out)])
}

/// `space_to_depth`: the inverse of `depth_to_space`.
pub fn space_to_depth(args: &KernelArgs) -> Result<Vec<Value>, String> {
    let x = args.get("x")?.float()?;
    let (b, [n, c, h, w]) = block_arg(args, "block_size", x)?;
    if h % b != 0 || w % b != 0 {
        return Err(format!(
            "spatial dims {h}×{w} are not divisible by block_size {b}"
        ));
    }
    let out = rearrange(x, [n, c * b * b, h / b, w / b], |oc, oh, ow| {
        let (block, ic) = (oc / c, oc % c);
        (ic, oh * b + block / b, ow * b + block % b)
    })?;
    Ok(vec![Value::Float(out)])
}

/// `pixel_shuffle` (CRD order): `out[n, c, h*r+i, w*r+j] = x[n, c*r*r + i*r + j, h, w]`.
pub fn pixel_shuffle(args: &KernelArgs) -> Result<Vec<Value>, String> {
    let x = args.get("x")?.float()?;
    let (r, [n, c, h, w]) = block_arg(args, "upscale_factor", x)?;
    if c % (r * r) != 0 {
        return Err(format!(
            "channels {c} are not divisible by upscale_factor² = {}",
            r * r
        ));
    }
    let out = rearrange(x, [n, c / (r * r), h * r, w * r], |oc, oh, ow| {
        (oc * r * r + (oh % r) * r + ow % r, oh / r, ow / r)
    })?;
    Ok(vec![Value::Float(out)])
}

#[cfg(test)]
mod tests {
    use crate::ir::ops::testing::{check, floats, infer, iota, run};
    use crate::ir::{DType, Dim, Tensor, TensorType};

    #[test]
    fn reshape_infers_minus_one_and_copies_zero() {
        let x = iota(&[2, 3, 4]);
        let ty = infer(
            "reshape",
            &[("x", x.clone()), ("shape", Tensor::vec_i32(&[0, -1]))],
        );
        assert!(ty.is_err(), "0 needs len(shape) == rank(x)");
        let inputs = [("x", x.clone()), ("shape", Tensor::vec_i32(&[0, -1, 2]))];
        let ty = infer("reshape", &inputs).unwrap();
        assert_eq!(ty[0], TensorType::fixed(DType::F32, &[2, 6, 2]));
        assert_eq!(
            floats(&run("reshape", &inputs, &ty)[0]),
            (0..24).map(|v| v as f32).collect::<Vec<_>>()
        );
        assert!(infer("reshape", &[("x", x), ("shape", Tensor::vec_i32(&[5, -1]))]).is_err());
    }

    #[test]
    fn reshape_of_symbolic_batch_keeps_unknowns_symbolic() {
        let ty = TensorType {
            dtype: DType::F32,
            shape: vec![Dim::Symbol("n".into()), Dim::Fixed(3), Dim::Fixed(4)],
        };
        let x = crate::ir::Var::new("x", ty);
        let mut b = crate::ir::Builder::new("main", vec![x]);
        let shape = b.constant("shape", Tensor::vec_i32(&[0, -1]));
        let err = b.op1("reshape", "r", &[("x", &["x"]), ("shape", &[&shape])]);
        assert!(err.is_err());
        // 0 copies the batch symbol, so -1 is known: 3 * 4 / 2.
        let shape = b.constant("shape", Tensor::vec_i32(&[0, 2, -1]));
        let out = b
            .op1("reshape", "r", &[("x", &["x"]), ("shape", &[&shape])])
            .unwrap();
        assert_eq!(b.ty(&out).unwrap().shape[2], Dim::Fixed(6));
        assert_eq!(b.ty(&out).unwrap().shape[0], Dim::Symbol("n".into()));
        let shape = b.constant("shape", Tensor::vec_i32(&[-1, 12]));
        let out = b
            .op1("reshape", "r", &[("x", &["x"]), ("shape", &[&shape])])
            .unwrap();
        let t = b.ty(&out).unwrap();
        assert!(matches!(t.shape[0], Dim::Symbol(_)));
        assert_eq!(t.shape[1], Dim::Fixed(12));
    }

    #[test]
    fn transpose_swaps_axes() {
        check(
            "transpose",
            &[("x", iota(&[2, 3])), ("perm", Tensor::vec_i32(&[1, 0]))],
            &[3, 2],
            &[0.0, 3.0, 1.0, 4.0, 2.0, 5.0],
        );
    }

    #[test]
    fn slice_by_index_with_masks_and_negative_stride() {
        let x = iota(&[3, 4]);
        let b = |v: &[bool]| Tensor::from_bool(&[v.len()], v);
        // x[1:, ::-2] → rows 1..3, cols 3, 1.
        let inputs = [
            ("x", x.clone()),
            ("begin", Tensor::vec_i32(&[1, 0])),
            ("end", Tensor::vec_i32(&[0, 0])),
            ("stride", Tensor::vec_i32(&[1, -2])),
            ("begin_mask", b(&[false, true])),
            ("end_mask", b(&[true, true])),
        ];
        check("slice_by_index", &inputs, &[2, 2], &[7.0, 5.0, 11.0, 9.0]);
        // x[-1, 1:-1] with squeeze on axis 0.
        let inputs = [
            ("x", x.clone()),
            ("begin", Tensor::vec_i32(&[-1, 1])),
            ("end", Tensor::vec_i32(&[0, -1])),
            ("squeeze_mask", b(&[true, false])),
        ];
        check("slice_by_index", &inputs, &[2], &[9.0, 10.0]);
        // Out-of-range bounds clamp: x[0:100, -100:2].
        let inputs = [
            ("x", x),
            ("begin", Tensor::vec_i32(&[0, -100])),
            ("end", Tensor::vec_i32(&[100, 2])),
        ];
        check(
            "slice_by_index",
            &inputs,
            &[3, 2],
            &[0.0, 1.0, 4.0, 5.0, 8.0, 9.0],
        );
    }

    #[test]
    fn squeeze_expand_reverse() {
        let x = iota(&[1, 2, 1]);
        check("squeeze", &[("x", x.clone())], &[2], &[0.0, 1.0]);
        check(
            "squeeze",
            &[("x", x.clone()), ("axes", Tensor::vec_i32(&[-1]))],
            &[1, 2],
            &[0.0, 1.0],
        );
        check(
            "expand_dims",
            &[("x", x.clone()), ("axes", Tensor::vec_i32(&[0, -1]))],
            &[1, 1, 2, 1, 1],
            &[0.0, 1.0],
        );
        check(
            "reverse",
            &[("x", iota(&[2, 2])), ("axes", Tensor::vec_i32(&[1]))],
            &[2, 2],
            &[1.0, 0.0, 3.0, 2.0],
        );
    }

    #[test]
    fn depth_space_round_trip() {
        // ONNX DepthToSpace (DCR) example: x [1, 8, 1, 1] = 0..8, block 2 → [1, 2, 2, 2].
        let x = iota(&[1, 8, 1, 1]);
        let b = Tensor::scalar_i32(2);
        check(
            "depth_to_space",
            &[("x", x.clone()), ("block_size", b.clone())],
            &[1, 2, 2, 2],
            &[0.0, 2.0, 4.0, 6.0, 1.0, 3.0, 5.0, 7.0],
        );
        check(
            "pixel_shuffle",
            &[("x", x), ("upscale_factor", b.clone())],
            &[1, 2, 2, 2],
            &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0],
        );
        let y = Tensor::from_f32(&[1, 2, 2, 2], &[0.0, 2.0, 4.0, 6.0, 1.0, 3.0, 5.0, 7.0]);
        check(
            "space_to_depth",
            &[("x", y), ("block_size", b)],
            &[1, 8, 1, 1],
            &(0..8).map(|v| v as f32).collect::<Vec<_>>(),
        );
    }
}
