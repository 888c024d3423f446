//! Kernels of the `constexpr_*` decompression ops (both the iOS16 and the iOS18 forms).

use crate::interp::{KernelArgs, Value};
use crate::ir::bits::unpack_bits;
use crate::ir::ops::axis::norm_axis;
use crate::ir::ops::OpArgs;
use ndarray::{ArrayD, IxDyn};
use rayon::prelude::*;

/// Flat elements of a numeric value: floats or integers.
enum Elems {
    Float(Vec<f32>),
    Int(Vec<i32>),
}

impl Elems {
    fn of(v: &Value, what: &str) -> Result<Elems, String> {
        match v {
            Value::Float(a) => Ok(Elems::Float(a.iter().copied().collect())),
            Value::Int(a) => Ok(Elems::Int(a.iter().copied().collect())),
            other => Err(format!("{what} must be numeric, got {}", other.kind())),
        }
    }

    fn len(&self) -> usize {
        match self {
            Elems::Float(v) => v.len(),
            Elems::Int(v) => v.len(),
        }
    }

    /// A value of `shape` whose element `i` is element `src(i)` of `self`, or zero for `None`.
    fn build(
        &self,
        shape: &[usize],
        src: impl Fn(usize) -> Option<usize>,
    ) -> Result<Value, String> {
        let n: usize = shape.iter().product();
        let out_of_range = || format!("index out of range of {} values", self.len());
        fn pick<T: Copy + Default>(
            v: &[T],
            n: usize,
            src: &dyn Fn(usize) -> Option<usize>,
        ) -> Option<Vec<T>> {
            (0..n)
                .map(|i| match src(i) {
                    None => Some(T::default()),
                    Some(j) => v.get(j).copied(),
                })
                .collect()
        }
        let shape = IxDyn(shape);
        let built = match self {
            Elems::Float(v) => {
                ArrayD::from_shape_vec(shape, pick(v, n, &src).ok_or_else(out_of_range)?)
                    .map(Value::Float)
            }
            Elems::Int(v) => {
                ArrayD::from_shape_vec(shape, pick(v, n, &src).ok_or_else(out_of_range)?)
                    .map(Value::Int)
            }
        };
        built.map_err(|e| e.to_string())
    }
}

/// Row-major multi-index of flat position `flat` in `shape`.
fn unravel(mut flat: usize, shape: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; shape.len()];
    for d in (0..shape.len()).rev() {
        let n = shape[d].max(1);
        idx[d] = flat % n;
        flat /= n;
    }
    idx
}

/// Row-major flat position of multi-index `idx` in `shape`.
fn ravel(idx: &[usize], shape: &[usize]) -> usize {
    idx.iter().zip(shape).fold(0, |acc, (&i, &n)| acc * n + i)
}

/// Integer elements of a value (floats truncate).
/// Row-major element strides of `shape`.
fn row_major(shape: &[usize]) -> Vec<usize> {
    crate::compress::row_major_strides(shape)
}

fn ints(v: &Value) -> Vec<i64> {
    v.to_i64_vec()
}

/// The iOS16 `shape` parameter as sizes.
fn shape_of(args: &KernelArgs) -> Result<Vec<usize>, String> {
    args.ints("shape")?
        .into_iter()
        .map(|d| usize::try_from(d).map_err(|_| format!("shape has a negative size {d}")))
        .collect()
}

/// Bits of the iOS16 packed stream (one byte value per element of `packed`) as 0/1 values.
fn unpack(packed: &Value, bits: usize, count: usize) -> Result<Vec<u8>, String> {
    let bytes: Vec<u8> = ints(packed).into_iter().map(|b| b as u8).collect();
    unpack_bits(&bytes, bits, count).ok_or_else(|| {
        format!(
            "{} packed bytes hold fewer than {count} values",
            bytes.len()
        )
    })
}

/// `constexpr_affine_dequantize`: `scale[c] · (q − zero_point[c])`, `c` the index on `axis`
/// (rank-0 scale / zero point apply to every element).
pub fn affine_dequantize(args: &KernelArgs) -> Result<Vec<Value>, String> {
    let q = args.get("quantized_data")?;
    let shape = q.shape().to_vec();
    let axis = norm_axis(args.int("axis")?, shape.len())?;
    let scale = args.get("scale")?.to_f32_array()?;
    let zp = args.get("zero_point")?.to_f32_array()?;
    let q = q.to_f32_array()?;
    let per = |a: &ArrayD<f32>, c: usize| -> Result<f32, String> {
        let v = a.as_slice_memory_order().unwrap_or(&[]);
        match a.ndim() {
            0 => a.iter().next().copied(),
            _ => v.get(c).copied(),
        }
        .ok_or_else(|| format!("no scale/zero point for channel {c}"))
    };
    let stride: usize = shape[axis + 1..].iter().product();
    let channels = shape[axis];
    let mut out = Vec::with_capacity(q.len());
    for (i, &v) in q.iter().enumerate() {
        let c = (i / stride) % channels;
        out.push(per(&scale, c)? * (v - per(&zp, c)?));
    }
    let out = ArrayD::from_shape_vec(IxDyn(&shape), out).map_err(|e| e.to_string())?;
    Ok(vec![Value::Float(out)])
}

/// Dense de-palettization (iOS18 layout): `indices` of shape `ishape`, `lut` of shape
/// `[g…, P, V]`; returns the output shape and, per output element, the LUT element index.
fn depalettize(
    indices: &[i64],
    ishape: &[usize],
    lut_shape: &[usize],
    vector_axis: Option<usize>,
) -> Result<(Vec<usize>, Vec<usize>), String> {
    let rank = ishape.len();
    if lut_shape.len() != rank + 2 {
        return Err(format!(
            "lut shape {lut_shape:?} does not fit indices {ishape:?}"
        ));
    }
    let (palettes, vector) = (lut_shape[rank], lut_shape[rank + 1]);
    let mut out_shape = ishape.to_vec();
    let va = match (vector_axis, vector) {
        (Some(a), _) => a,
        (None, 1) => 0,
        (None, _) => return Err("vector LUT without vector_axis".into()),
    };
    if rank > 0 {
        out_shape[va] *= vector;
    }
    let in_strides = row_major(ishape);
    let out_strides = row_major(&out_shape);
    let lut_strides = row_major(lut_shape);
    // Per axis: indices per LUT group (the divisor from an index coordinate to its group).
    let per_group: Vec<usize> = ishape
        .iter()
        .zip(lut_shape)
        .map(|(&n, &g)| (n / g.max(1)).max(1))
        .collect();
    let mut src = vec![0; out_shape.iter().product()];
    for (flat, &index) in indices.iter().enumerate() {
        let index = usize::try_from(index)
            .ok()
            .filter(|&i| i < palettes)
            .ok_or_else(|| format!("index {index} outside a LUT of {palettes} entries"))?;
        let mut lut_base = index * lut_strides[rank];
        let mut out_base = 0;
        for axis in 0..rank {
            let i = (flat / in_strides[axis]) % ishape[axis];
            lut_base += i / per_group[axis] * lut_strides[axis];
            let o = if axis == va { i * vector } else { i };
            out_base += o * out_strides[axis];
        }
        let out_step = if rank > 0 { out_strides[va] } else { 0 };
        for v in 0..vector {
            src[out_base + v * out_step] = lut_base + v * lut_strides[rank + 1];
        }
    }
    Ok((out_shape, src))
}

/// The optional `vector_axis` normalised for `rank`.
fn vector_axis(args: &KernelArgs, rank: usize) -> Result<Option<usize>, String> {
    args.opt("vector_axis")
        .map(|v| {
            let a = ints(v).first().copied().ok_or("vector_axis is empty")?;
            norm_axis(a, rank)
        })
        .transpose()
}

/// `constexpr_lut_to_dense`: iOS16 (packed uint8 `indices`, rank-1 `lut`, `shape`) or iOS18
/// (unpacked indices, grouped/vector `lut`, optional `vector_axis`).
pub fn lut_to_dense(args: &KernelArgs) -> Result<Vec<Value>, String> {
    let lut_value = args.get("lut")?;
    let lut = Elems::of(lut_value, "lut")?;
    if args.opt("shape").is_some() {
        let shape = shape_of(args)?;
        let count = shape.iter().product();
        let bits = lut.len().trailing_zeros() as usize;
        if !lut.len().is_power_of_two() || !(1..=8).contains(&bits) {
            return Err(format!("a LUT of {} entries is not 2^1..2^8", lut.len()));
        }
        let idx = unpack(args.get("indices")?, bits, count)?;
        return Ok(vec![lut.build(&shape, |i| Some(idx[i] as usize))?]);
    }
    let indices = args.get("indices")?;
    let ishape = indices.shape().to_vec();
    let va = vector_axis(args, ishape.len())?;
    let (shape, src) = depalettize(&ints(indices), &ishape, lut_value.shape(), va)?;
    Ok(vec![lut.build(&shape, |i| Some(src[i]))?])
}

/// For each position of a dense tensor with `mask` bits, the index into the non-zero values
/// (None where the mask is 0); fails unless there are exactly `nnz` set bits.
fn scatter_positions(mask: &[u8], nnz: usize) -> Result<Vec<Option<usize>>, String> {
    let mut next = 0;
    let positions = mask
        .iter()
        .map(|&m| {
            (m != 0).then(|| {
                next += 1;
                next - 1
            })
        })
        .collect();
    if next != nnz {
        return Err(format!(
            "mask has {next} set bits, nonzero_data {nnz} values"
        ));
    }
    Ok(positions)
}

/// `constexpr_sparse_to_dense`: zeros except at the mask's set bits, which take the non-zero
/// values in row-major order. iOS16: packed uint8 `mask` + `shape`; iOS18: uint1 `mask`.
pub fn sparse_to_dense(args: &KernelArgs) -> Result<Vec<Value>, String> {
    let values = Elems::of(args.get("nonzero_data")?, "nonzero_data")?;
    let mask = args.get("mask")?;
    let (shape, bits) = if args.opt("shape").is_some() {
        let shape = shape_of(args)?;
        let bits = unpack(mask, 1, shape.iter().product())?;
        (shape, bits)
    } else {
        let bits = ints(mask).into_iter().map(|b| (b != 0) as u8).collect();
        (mask.shape().to_vec(), bits)
    };
    let src = scatter_positions(&bits, values.len())?;
    Ok(vec![values.build(&shape, |i| src[i])?])
}

/// `constexpr_cast`: fp16 to fp32 (values are already held as f32).
pub fn cast(args: &KernelArgs) -> Result<Vec<Value>, String> {
    Ok(vec![Value::Float(args.get("source_val")?.to_f32_array()?)])
}

/// `scale[b] · (x − offset[b])` for a dense position `at` of a tensor of shape `dense`, `b`
/// the block holding it.
struct Blockwise {
    scale: Vec<f32>,
    offset: Option<Vec<f32>>,
    block_shape: Vec<usize>,
    block_strides: Vec<usize>,
    dense: Vec<usize>,
    dense_strides: Vec<usize>,
}

impl Blockwise {
    fn new(args: &KernelArgs, dense: &[usize]) -> Result<Blockwise, String> {
        let scale = args.get("scale")?;
        let block_shape = scale.shape().to_vec();
        if block_shape.len() != dense.len()
            || dense
                .iter()
                .zip(&block_shape)
                .any(|(&n, &s)| s == 0 || n % s != 0)
        {
            return Err(format!(
                "scale {block_shape:?} does not tile shape {dense:?}"
            ));
        }
        let offset = args
            .opt("offset")
            .map(|o| o.to_f32_array().map(|a| a.iter().copied().collect()))
            .transpose()?;
        if offset
            .as_ref()
            .is_some_and(|o: &Vec<f32>| o.len() != block_shape.iter().product::<usize>())
        {
            return Err("offset must have the shape of scale".into());
        }
        Ok(Blockwise {
            scale: scale.to_f32_array()?.iter().copied().collect(),
            offset,
            block_strides: row_major(&block_shape),
            block_shape,
            dense: dense.to_vec(),
            dense_strides: row_major(dense),
        })
    }

    /// The flat block index of dense position `flat`.
    fn block_of(&self, flat: usize) -> usize {
        let mut b = 0;
        for axis in 0..self.dense.len() {
            let i = (flat / self.dense_strides[axis]) % self.dense[axis];
            b += i / (self.dense[axis] / self.block_shape[axis]) * self.block_strides[axis];
        }
        b
    }

    /// `scale[b] · (x − offset[b])`.
    fn shift_scale(&self, b: usize, x: f32) -> f32 {
        let off = self.offset.as_ref().map_or(0.0, |o| o[b]);
        self.scale[b] * (x - off)
    }

    /// The dequantized value of `x` at dense position `flat`.
    fn apply(&self, flat: usize, x: f32) -> f32 {
        self.shift_scale(self.block_of(flat), x)
    }
}

/// `constexpr_blockwise_shift_scale`: `scale[block] · (data − offset[block])`.
pub fn blockwise_shift_scale(args: &KernelArgs) -> Result<Vec<Value>, String> {
    let data = args.get("data")?.to_f32_array()?;
    let shape = data.shape().to_vec();
    let bw = Blockwise::new(args, &shape)?;
    let flat: Vec<f32> = data.iter().copied().collect();
    let row_len = shape.last().copied().unwrap_or(1).max(1);
    let last_block = row_len / bw.block_shape.last().copied().unwrap_or(1).max(1);
    // Rows along the last axis in parallel: one block lookup per row, then a step every
    // `last_block` elements.
    let out: Vec<f32> = flat
        .par_chunks(row_len)
        .enumerate()
        .flat_map_iter(|(row, xs)| {
            let first = bw.block_of(row * row_len);
            let bw = &bw;
            xs.iter()
                .enumerate()
                .map(move |(j, &x)| bw.shift_scale(first + j / last_block, x))
        })
        .collect();
    let out = ArrayD::from_shape_vec(IxDyn(&shape), out).map_err(|e| e.to_string())?;
    Ok(vec![Value::Float(out)])
}

/// The set bits of a uint1 mask value, as 0/1 bytes, and its shape.
fn mask_bits(v: &Value) -> (Vec<u8>, Vec<usize>) {
    let bits = ints(v).into_iter().map(|b| (b != 0) as u8).collect();
    (bits, v.shape().to_vec())
}

/// `constexpr_lut_to_sparse`: outputs (mask repeated along `vector_axis` for vector LUTs,
/// de-palettized values at the mask's set positions).
pub fn lut_to_sparse(args: &KernelArgs) -> Result<Vec<Value>, String> {
    let (bits, mshape) = mask_bits(args.get("indices_mask")?);
    let nonzero = ints(args.get("indices_nonzero_data")?);
    let src = scatter_positions(&bits, nonzero.len())?;
    let dense_idx: Vec<i64> = src.iter().map(|s| s.map_or(0, |j| nonzero[j])).collect();
    let lut_value = args.get("lut")?;
    let lut = Elems::of(lut_value, "lut")?;
    let va = vector_axis(args, mshape.len())?;
    let (shape, lut_src) = depalettize(&dense_idx, &mshape, lut_value.shape(), va)?;
    let vector = lut_value.shape().last().copied().unwrap_or(1);
    // Output mask: each input mask bit repeated `vector` times along the vector axis.
    let out_mask: Vec<i32> = (0..lut_src.len())
        .map(|i| {
            let mut at = unravel(i, &shape);
            if let Some(a) = va {
                at[a] /= vector;
            }
            bits[ravel(&at, &mshape)] as i32
        })
        .collect();
    let kept: Vec<usize> = (0..lut_src.len())
        .filter(|&i| out_mask[i] != 0)
        .map(|i| lut_src[i])
        .collect();
    let mask = ArrayD::from_shape_vec(IxDyn(&shape), out_mask).map_err(|e| e.to_string())?;
    let values = lut.build(&[kept.len()], |i| Some(kept[i]))?;
    Ok(vec![Value::Int(mask), values])
}

/// `constexpr_sparse_blockwise_shift_scale`: outputs (the mask, the non-zero values
/// dequantized with the block of their dense position).
pub fn sparse_blockwise_shift_scale(args: &KernelArgs) -> Result<Vec<Value>, String> {
    let mask_value = args.get("data_mask")?;
    let (bits, shape) = mask_bits(mask_value);
    let data = args.get("nonzero_data")?.to_f32_array()?;
    let data: Vec<f32> = data.iter().copied().collect();
    let src = scatter_positions(&bits, data.len())?;
    let bw = Blockwise::new(args, &shape)?;
    let out: Vec<f32> = src
        .iter()
        .enumerate()
        .filter_map(|(pos, s)| s.map(|j| bw.apply(pos, data[j])))
        .collect();
    let out = ArrayD::from_shape_vec(IxDyn(&[out.len()]), out).map_err(|e| e.to_string())?;
    Ok(vec![mask_value.clone(), Value::Float(out)])
}

#[cfg(test)]
mod tests {
    use crate::ir::ops::testing::{floats, infer, ints, run};
    use crate::ir::{DType, Tensor, TensorType};
    use half::f16;

    fn bytes(dtype: DType, shape: &[usize], v: &[i64]) -> Tensor {
        Tensor::from_i64_as(dtype, shape, v)
    }

    /// Types the op through the registry, runs it and returns its outputs.
    fn eval(op: &str, inputs: &[(&str, Tensor)]) -> (Vec<TensorType>, Vec<crate::interp::Value>) {
        let ty = infer(op, inputs).unwrap();
        let out = run(op, inputs, &ty);
        (ty, out)
    }

    #[test]
    fn affine_dequantize_per_tensor_and_per_channel() {
        let (ty, out) = eval(
            "constexpr_affine_dequantize",
            &[
                ("quantized_data", bytes(DType::U8, &[2, 2], &[1, 2, 3, 4])),
                ("zero_point", bytes(DType::U8, &[], &[2])),
                ("scale", Tensor::scalar_f32(0.5)),
                ("axis", Tensor::scalar_i32(0)),
            ],
        );
        assert_eq!(ty[0], TensorType::fixed(DType::F32, &[2, 2]));
        assert_eq!(floats(&out[0]), [-0.5, 0.0, 0.5, 1.0]);
        let half: Vec<f16> = [1.0, 2.0, 0.5].map(f16::from_f32).to_vec();
        let (ty, out) = eval(
            "constexpr_affine_dequantize",
            &[
                (
                    "quantized_data",
                    bytes(DType::I8, &[2, 3], &[1, 2, 3, -1, -2, -3]),
                ),
                ("zero_point", bytes(DType::I8, &[3], &[0, 1, -1])),
                ("scale", Tensor::from_f16(&[3], &half)),
                ("axis", Tensor::scalar_i32(-1)),
            ],
        );
        assert_eq!(ty[0], TensorType::fixed(DType::F16, &[2, 3]));
        assert_eq!(floats(&out[0]), [1.0, 2.0, 2.0, -1.0, -6.0, -1.0]);
        let wrong = infer(
            "constexpr_affine_dequantize",
            &[
                ("quantized_data", bytes(DType::I8, &[2, 3], &[0; 6])),
                ("zero_point", bytes(DType::I8, &[2], &[0, 0])),
                ("scale", Tensor::scalar_f32(1.0)),
                ("axis", Tensor::scalar_i32(1)),
            ],
        );
        assert!(wrong.unwrap_err().contains("zero_point"));
    }

    #[test]
    fn lut_to_dense_ios16_unpacks_lsb_first() {
        // 2-bit indices 3,0,1,2 | 2,1 → bytes 0b10_01_00_11 = 147, 0b0000_01_10 = 6.
        let inputs = [
            ("indices", bytes(DType::U8, &[2], &[147, 6])),
            ("lut", Tensor::from_f32(&[4], &[10.0, 20.0, 30.0, 40.0])),
            ("shape", Tensor::from_u32(&[2], &[2, 3])),
        ];
        let (ty, out) = eval("constexpr_lut_to_dense", &inputs);
        assert_eq!(ty[0], TensorType::fixed(DType::F32, &[2, 3]));
        assert_eq!(floats(&out[0]), [40.0, 10.0, 20.0, 30.0, 30.0, 20.0]);
        let short = [
            ("indices", bytes(DType::U8, &[1], &[147])),
            inputs[1].clone(),
            inputs[2].clone(),
        ];
        assert!(infer("constexpr_lut_to_dense", &short)
            .unwrap_err()
            .contains("expected [2]"));
    }

    #[test]
    fn lut_to_dense_ios18_grouped_and_vector() {
        // Two groups of rows on axis 0: rows 0-1 use [1, 2], rows 2-3 use [5, 6].
        let (ty, out) = eval(
            "constexpr_lut_to_dense",
            &[
                (
                    "indices",
                    bytes(DType::U1, &[4, 2], &[0, 1, 1, 1, 0, 0, 1, 0]),
                ),
                (
                    "lut",
                    Tensor::from_f32(&[2, 1, 2, 1], &[1.0, 2.0, 5.0, 6.0]),
                ),
            ],
        );
        assert_eq!(ty[0], TensorType::fixed(DType::F32, &[4, 2]));
        assert_eq!(floats(&out[0]), [1.0, 2.0, 2.0, 2.0, 5.0, 5.0, 6.0, 5.0]);
        // Entry k of the LUT is the vector [k, 10k], laid along axis 0.
        let lut = Tensor::from_f32(&[1, 1, 4, 2], &[0., 0., 1., 10., 2., 20., 3., 30.]);
        let (ty, out) = eval(
            "constexpr_lut_to_dense",
            &[
                ("indices", bytes(DType::U2, &[2, 2], &[1, 2, 3, 0])),
                ("lut", lut.clone()),
                ("vector_axis", Tensor::scalar_i32(0)),
            ],
        );
        assert_eq!(ty[0], TensorType::fixed(DType::F32, &[4, 2]));
        assert_eq!(floats(&out[0]), [1., 2., 10., 20., 3., 0., 30., 0.]);
        let (ty, out) = eval(
            "constexpr_lut_to_dense",
            &[
                ("indices", bytes(DType::U2, &[2, 2], &[1, 2, 3, 0])),
                ("lut", lut.clone()),
                ("vector_axis", Tensor::scalar_i32(1)),
            ],
        );
        assert_eq!(ty[0], TensorType::fixed(DType::F32, &[2, 4]));
        assert_eq!(floats(&out[0]), [1., 10., 2., 20., 3., 30., 0., 0.]);
        let no_axis = infer(
            "constexpr_lut_to_dense",
            &[
                ("indices", bytes(DType::U2, &[2, 2], &[0; 4])),
                ("lut", lut),
            ],
        );
        assert!(no_axis.unwrap_err().contains("vector_axis"));
        let wrong_palette = infer(
            "constexpr_lut_to_dense",
            &[
                ("indices", bytes(DType::U4, &[2], &[0; 2])),
                ("lut", Tensor::from_f32(&[1, 4, 1], &[0.0; 4])),
            ],
        );
        assert!(wrong_palette.unwrap_err().contains("need 16"));
    }

    #[test]
    fn lut_to_dense_with_int8_lut_gives_integers() {
        let (ty, out) = eval(
            "constexpr_lut_to_dense",
            &[
                ("indices", bytes(DType::U1, &[3], &[1, 0, 1])),
                ("lut", bytes(DType::I8, &[1, 2, 1], &[-5, 7])),
            ],
        );
        assert_eq!(ty[0], TensorType::fixed(DType::I8, &[3]));
        assert_eq!(ints(&out[0]), [7, -5, 7]);
    }

    #[test]
    fn sparse_to_dense_both_forms_with_pad_bits() {
        // Mask bits 1,0,1,1,0,0,0,1 | 1,1 (six pad bits zero) = bytes 0x8d, 0x03.
        let nonzero = Tensor::from_f32(&[6], &[1., 2., 3., 4., 5., 6.]);
        let want = [1., 0., 2., 3., 0., 0., 0., 4., 5., 6.];
        let (ty, out) = eval(
            "constexpr_sparse_to_dense",
            &[
                ("nonzero_data", nonzero.clone()),
                ("mask", bytes(DType::U8, &[2], &[0x8d, 0x03])),
                ("shape", Tensor::from_u32(&[2], &[2, 5])),
            ],
        );
        assert_eq!(ty[0], TensorType::fixed(DType::F32, &[2, 5]));
        assert_eq!(floats(&out[0]), want);
        let mask = bytes(DType::U1, &[2, 5], &[1, 0, 1, 1, 0, 0, 0, 1, 1, 1]);
        let (ty, out) = eval(
            "constexpr_sparse_to_dense",
            &[("nonzero_data", nonzero.clone()), ("mask", mask)],
        );
        assert_eq!(ty[0], TensorType::fixed(DType::F32, &[2, 5]));
        assert_eq!(floats(&out[0]), want);
        let miscounted = infer(
            "constexpr_sparse_to_dense",
            &[
                ("nonzero_data", nonzero),
                ("mask", bytes(DType::U8, &[2], &[0x8d, 0x01])),
                ("shape", Tensor::from_u32(&[2], &[2, 5])),
            ],
        );
        assert!(miscounted.unwrap_err().contains("5 set bits"));
    }

    #[test]
    fn cast_fp16_to_fp32() {
        let src = Tensor::from_f16(&[2], &[f16::from_f32(1.5), f16::from_f32(-2.0)]);
        let (ty, out) = eval(
            "constexpr_cast",
            &[
                ("source_val", src),
                ("output_dtype", Tensor::scalar_string("fp32")),
            ],
        );
        assert_eq!(ty[0], TensorType::fixed(DType::F32, &[2]));
        assert_eq!(floats(&out[0]), [1.5, -2.0]);
    }

    #[test]
    fn blockwise_shift_scale_per_block_and_per_tensor() {
        // Blocks of [1, 2]: scale [[1, 2], [0.5, 4]], offset [[0, 1], [-1, 2]].
        let (ty, out) = eval(
            "constexpr_blockwise_shift_scale",
            &[
                (
                    "data",
                    bytes(DType::I4, &[2, 4], &[-8, -1, 0, 7, 1, 2, 3, 4]),
                ),
                ("scale", Tensor::from_f32(&[2, 2], &[1.0, 2.0, 0.5, 4.0])),
                ("offset", bytes(DType::I4, &[2, 2], &[0, 1, -1, 2])),
            ],
        );
        assert_eq!(ty[0], TensorType::fixed(DType::F32, &[2, 4]));
        assert_eq!(floats(&out[0]), [-8., -1., -2., 12., 1., 1.5, 4., 8.]);
        let (_, out) = eval(
            "constexpr_blockwise_shift_scale",
            &[
                ("data", bytes(DType::U8, &[3], &[1, 2, 3])),
                ("scale", Tensor::from_f32(&[1], &[0.5])),
            ],
        );
        assert_eq!(floats(&out[0]), [0.5, 1.0, 1.5]);
        let mismatched = infer(
            "constexpr_blockwise_shift_scale",
            &[
                ("data", bytes(DType::U8, &[3], &[1, 2, 3])),
                ("scale", Tensor::from_f32(&[1], &[0.5])),
                ("offset", bytes(DType::I8, &[1], &[0])),
            ],
        );
        assert!(mismatched.unwrap_err().contains("offset is int8"));
    }

    #[test]
    fn lut_to_sparse_scalar_and_vector() {
        let inputs = [
            ("indices_mask", bytes(DType::U1, &[2, 2], &[1, 0, 0, 1])),
            ("indices_nonzero_data", bytes(DType::U1, &[2], &[1, 0])),
            ("lut", Tensor::from_f32(&[1, 1, 2, 1], &[7.0, 9.0])),
        ];
        let (ty, out) = eval("constexpr_lut_to_sparse", &inputs);
        assert_eq!(ty[1], TensorType::fixed(DType::F32, &[2]));
        assert_eq!(ints(&out[0]), [1, 0, 0, 1]);
        assert_eq!(floats(&out[1]), [9.0, 7.0]);
        // Vectors [7, 70] and [9, 90] laid along axis 1: the mask doubles on that axis.
        let (ty, out) = eval(
            "constexpr_lut_to_sparse",
            &[
                inputs[0].clone(),
                inputs[1].clone(),
                ("lut", Tensor::from_f32(&[1, 1, 2, 2], &[7., 70., 9., 90.])),
                ("vector_axis", Tensor::scalar_i32(1)),
            ],
        );
        assert_eq!(ty[0], TensorType::fixed(DType::U1, &[2, 4]));
        assert_eq!(ty[1], TensorType::fixed(DType::F32, &[4]));
        assert_eq!(ints(&out[0]), [1, 1, 0, 0, 0, 0, 1, 1]);
        assert_eq!(floats(&out[1]), [9., 90., 7., 70.]);
    }

    #[test]
    fn sparse_blockwise_shift_scale_uses_dense_positions() {
        let (ty, out) = eval(
            "constexpr_sparse_blockwise_shift_scale",
            &[
                ("data_mask", bytes(DType::U1, &[2, 2], &[0, 1, 1, 1])),
                ("nonzero_data", bytes(DType::I8, &[3], &[4, 5, 6])),
                ("scale", Tensor::from_f32(&[2, 1], &[2.0, 3.0])),
                ("offset", bytes(DType::I8, &[2, 1], &[1, 0])),
            ],
        );
        assert_eq!(ty[0], TensorType::fixed(DType::U1, &[2, 2]));
        assert_eq!(ty[1], TensorType::fixed(DType::F32, &[3]));
        assert_eq!(ints(&out[0]), [0, 1, 1, 1]);
        assert_eq!(floats(&out[1]), [6.0, 15.0, 18.0]);
    }
}
