//! The target half of compressing one weight: [`Encoded`] data as the constexpr ops of a
//! deployment target — iOS16 forms (attributes, packed uint8 indices and masks, rank-1 LUTs)
//! for iOS16/17, iOS18 forms (inputs, sub-byte tensors, grouped and vector LUTs, chained ops)
//! from iOS18 on (docs/format.md §3).

use super::encode::{Body, Encoded, PaletteData, QuantData};
use crate::compress::blocks::BlockLayout;
use crate::compress::quantize::QuantDtype;
use crate::ir::bits::{pack_bits, pack_bools};
use crate::ir::{infer_op, Argument, DType, NameTable, Operation, Target, Tensor, TensorType, Var};
use rayon::prelude::*;
use std::collections::BTreeMap;

/// Fresh variable names for the intermediate values of one weight's op chain.
#[derive(Clone, Debug)]
pub struct ChainNames {
    /// The decompressed (quantized or scaled) LUT.
    pub lut: String,
    /// The mask output of a two-output sparse op.
    pub mask: String,
    /// The values output of a two-output sparse op.
    pub nonzero: String,
}

impl ChainNames {
    /// Reserves the three names for weight `name` in `names`.
    pub fn reserve(name: &str, names: &mut NameTable) -> ChainNames {
        ChainNames {
            lut: names.fresh(&format!("{name}_lut")),
            mask: names.fresh(&format!("{name}_mask")),
            nonzero: names.fresh(&format!("{name}_nonzero")),
        }
    }
}

/// Builds the ops that decompress `encoded` into variable `name` (the replaced constant's
/// name, so consumers stay untouched). `dtype` is the weight's float type.
pub fn emit(
    encoded: Encoded,
    source: &Tensor,
    name: &str,
    shape: &[usize],
    dtype: DType,
    target: Target,
    names: &ChainNames,
) -> Result<Vec<Operation>, String> {
    let mut chain = Chain::new(target, names);
    let weight = Weight { name, shape, dtype };
    if chain.ios18 {
        chain.emit_ios18(encoded, source, &weight)?;
    } else {
        chain.emit_ios16(encoded, source, &weight)?;
    }
    Ok(chain.ops)
}

/// The op that rebuilds weight `name` (of `shape`, float type `dtype`) from integers that are
/// already quantized (e.g. read from a pre-quantized ONNX model): `constexpr_affine_dequantize`
/// before iOS18 (8-bit, per tensor or per channel only), `constexpr_blockwise_shift_scale`
/// from iOS18 on.
pub fn emit_quantized(
    q: QuantData,
    name: &str,
    shape: &[usize],
    dtype: DType,
    target: Target,
) -> Result<Vec<Operation>, String> {
    // A plain quantized weight has no intermediate values, so its chain needs no names.
    let names = ChainNames {
        lut: String::new(),
        mask: String::new(),
        nonzero: String::new(),
    };
    let mut chain = Chain::new(target, &names);
    let weight = Weight { name, shape, dtype };
    if chain.ios18 {
        chain.quant_ios18(q, &weight)?;
    } else {
        chain.quant_ios16(q, &weight)?;
    }
    Ok(chain.ops)
}

/// Ops under construction plus the types of the variables they produce.
struct Chain<'a> {
    ops: Vec<Operation>,
    types: BTreeMap<String, TensorType>,
    ios18: bool,
    names: &'a ChainNames,
}

/// The weight being replaced: its variable name, shape and float type.
#[derive(Clone, Copy)]
struct Weight<'w> {
    name: &'w str,
    shape: &'w [usize],
    dtype: DType,
}

/// A parameter value: an inline tensor or a variable produced earlier in the chain.
enum Param {
    Value(Tensor),
    Var(String),
}

impl<'a> Chain<'a> {
    /// An empty chain for `target`, naming intermediate values with `names`.
    fn new(target: Target, names: &'a ChainNames) -> Chain<'a> {
        Chain {
            ops: Vec::new(),
            types: BTreeMap::new(),
            ios18: target >= Target::IOS18,
            names,
        }
    }

    /// Appends op `op_type` with `params`; its outputs are `outputs` (first = op name).
    fn push(
        &mut self,
        op_type: &str,
        outputs: &[&str],
        params: Vec<(&str, Param)>,
    ) -> Result<(), String> {
        let mut op = Operation {
            op_type: op_type.into(),
            name: outputs[0].into(),
            inputs: Vec::new(),
            outputs: Vec::new(),
            attributes: BTreeMap::new(),
            origin: None,
        };
        for (param, value) in params {
            match value {
                Param::Value(t) if !self.ios18 => {
                    op.attributes.insert(param.into(), t);
                }
                Param::Value(t) => op.inputs.push((param.into(), vec![Argument::Value(t)])),
                Param::Var(v) => op.inputs.push((param.into(), vec![Argument::Var(v)])),
            }
        }
        let types = infer_op(&op, &|n| self.types.get(n).map(|t| (t, None)))
            .map_err(|e| format!("{op_type}: {e}"))?;
        for (name, ty) in outputs.iter().zip(types) {
            self.types.insert(name.to_string(), ty.clone());
            op.outputs.push(Var::new(*name, ty));
        }
        self.ops.push(op);
        Ok(())
    }

    fn emit_ios16(&mut self, encoded: Encoded, source: &Tensor, w: &Weight) -> Result<(), String> {
        match (encoded.mask, encoded.body) {
            (Some(mask), Body::Pruned) => self.pruned(source, mask, w.name, w.shape),
            (None, Body::Palette(p)) if p.is_plain_per_tensor() => {
                let packed = pack_bits(&p.indices, p.nbits as usize);
                self.push(
                    "constexpr_lut_to_dense",
                    &[w.name],
                    vec![
                        (
                            "indices",
                            Param::Value(Tensor::from_byte_elements(
                                DType::U8,
                                &[packed.len()],
                                packed,
                            )),
                        ),
                        (
                            "lut",
                            Param::Value(float_tensor(&[p.lut.len()], &p.lut, w.dtype)),
                        ),
                        ("shape", Param::Value(shape_tensor(w.shape))),
                    ],
                )
            }
            (None, Body::Quant(q)) => self.quant_ios16(q, w),
            _ => Err("this compression needs target iOS18 or later".into()),
        }
    }

    fn emit_ios18(&mut self, encoded: Encoded, source: &Tensor, w: &Weight) -> Result<(), String> {
        match (encoded.mask, encoded.body) {
            (Some(mask), Body::Pruned) => self.pruned(source, mask, w.name, w.shape),
            (None, Body::Pruned) => Err("nothing to compress".into()),
            (mask, Body::Palette(p)) => {
                let lut = self.lut_param(&p, w.dtype)?;
                let index_dtype = index_dtype(p.nbits)?;
                let vector_axis = p
                    .vector_axis
                    .map(|a| ("vector_axis", Param::Value(Tensor::scalar_i32(a as i32))));
                match mask {
                    None => {
                        let mut params = vec![
                            (
                                "indices",
                                Param::Value(elements_tensor(
                                    index_dtype,
                                    &p.index_shape,
                                    p.indices,
                                )),
                            ),
                            ("lut", lut),
                        ];
                        params.extend(vector_axis);
                        self.push("constexpr_lut_to_dense", &[w.name], params)
                    }
                    Some(mask) => {
                        let kept = gather(&p.indices, &mask);
                        let mut params = vec![
                            ("indices_mask", Param::Value(uint1_mask(&mask, w.shape))),
                            (
                                "indices_nonzero_data",
                                Param::Value(elements_tensor(index_dtype, &[kept.len()], kept)),
                            ),
                            ("lut", lut),
                        ];
                        params.extend(vector_axis);
                        self.sparse_pair("constexpr_lut_to_sparse", w.name, params)
                    }
                }
            }
            (None, Body::Quant(q)) => self.quant_ios18(q, w),
            (Some(mask), Body::Quant(q)) => {
                let kept = gather(&q.quantized.values, &mask);
                let mut params = q.scale_and_offset(w.dtype);
                params.push((
                    "nonzero_data",
                    Param::Value(int_tensor(q.dtype, &[kept.len()], kept)),
                ));
                params.push(("data_mask", Param::Value(uint1_mask(&mask, w.shape))));
                self.sparse_pair("constexpr_sparse_blockwise_shift_scale", w.name, params)
            }
        }
    }

    /// `constexpr_affine_dequantize` of 8-bit integers, per tensor or per channel.
    fn quant_ios16(&mut self, q: QuantData, w: &Weight) -> Result<(), String> {
        if !q.fits_ios16() {
            return Err("this quantization needs target iOS18 or later".into());
        }
        let (scale_shape, axis) = ios16_param_shape(&q.quantized.param_shape)?;
        let zero_points = q
            .quantized
            .zero_points
            .clone()
            .unwrap_or_else(|| vec![0; q.quantized.scales.len()]);
        self.push(
            "constexpr_affine_dequantize",
            &[w.name],
            vec![
                (
                    "zero_point",
                    Param::Value(int_params(q.dtype, &scale_shape, &zero_points)),
                ),
                (
                    "quantized_data",
                    Param::Value(int_tensor(q.dtype, w.shape, q.quantized.values)),
                ),
                (
                    "scale",
                    Param::Value(float_tensor(&scale_shape, &q.quantized.scales, w.dtype)),
                ),
                ("axis", Param::Value(Tensor::scalar_i32(axis))),
            ],
        )
    }

    /// `constexpr_blockwise_shift_scale` of 4- or 8-bit integers with any block shape.
    fn quant_ios18(&mut self, q: QuantData, w: &Weight) -> Result<(), String> {
        let mut params = q.scale_and_offset(w.dtype);
        params.push((
            "data",
            Param::Value(int_tensor(q.dtype, w.shape, q.quantized.values)),
        ));
        self.push("constexpr_blockwise_shift_scale", &[w.name], params)
    }

    /// `constexpr_sparse_to_dense` of the kept elements of `source` (stored as they are):
    /// a packed uint8 mask plus `shape` in the iOS16 form, a uint1 mask of the weight's shape
    /// in the iOS18 form.
    fn pruned(
        &mut self,
        source: &Tensor,
        mask: Vec<bool>,
        name: &str,
        shape: &[usize],
    ) -> Result<(), String> {
        let width = source.dtype().ir_bytes();
        let kept = gather_elements(source.bytes(), width, &mask);
        let count = kept.len() / width;
        let nonzero = Tensor::from_bytes(source.dtype(), &[count], kept.into())
            .map_err(|e| format!("internal: pruned values: {e}"))?;
        let mut params = vec![("nonzero_data", Param::Value(nonzero))];
        if self.ios18 {
            params.push(("mask", Param::Value(uint1_mask(&mask, shape))));
        } else {
            params.push(("mask", Param::Value(packed_mask(&mask))));
            params.push(("shape", Param::Value(shape_tensor(shape))));
        }
        self.push("constexpr_sparse_to_dense", &[name], params)
    }

    /// A two-output sparse op (mask, values) followed by `constexpr_sparse_to_dense` into `name`.
    fn sparse_pair(
        &mut self,
        op_type: &str,
        name: &str,
        params: Vec<(&str, Param)>,
    ) -> Result<(), String> {
        let mask_var = self.names.mask.clone();
        let values_var = self.names.nonzero.clone();
        self.push(op_type, &[&mask_var, &values_var], params)?;
        self.push(
            "constexpr_sparse_to_dense",
            &[name],
            vec![
                ("nonzero_data", Param::Var(values_var)),
                ("mask", Param::Var(mask_var)),
            ],
        )
    }

    /// The LUT parameter of an iOS18 LUT op: inline, or the output of a
    /// `constexpr_blockwise_shift_scale` that dequantizes it or applies per-channel scales.
    fn lut_param(&mut self, p: &PaletteData, dtype: DType) -> Result<Param, String> {
        if let Some(q) = &p.lut_quant {
            let var = self.names.lut.clone();
            let mut params = q.scale_and_offset(dtype);
            params.push((
                "data",
                Param::Value(int_tensor(
                    q.dtype,
                    &p.lut_shape,
                    q.quantized.values.clone(),
                )),
            ));
            self.push("constexpr_blockwise_shift_scale", &[&var], params)?;
            return Ok(Param::Var(var));
        }
        let Some((scales, scale_shape)) = &p.channel_scale else {
            return Ok(Param::Value(float_tensor(&p.lut_shape, &p.lut, dtype)));
        };
        // LUT expanded so each scale block has its own copy, then scaled (the order Core ML
        // before iOS26 expects, coremltools' canonicalize_quantized_lut_pattern).
        let rank = scale_shape.len();
        let mut expanded_shape: Vec<usize> = (0..rank)
            .map(|d| p.lut_shape[d].max(scale_shape[d]))
            .collect();
        let entries = p.lut_shape[rank] * p.lut_shape[rank + 1];
        expanded_shape.extend_from_slice(&p.lut_shape[rank..]);
        let group_shape = &p.lut_shape[..rank];
        let groups = BlockLayout::new(&expanded_shape[..rank], group_shape)
            .map_err(|e| format!("internal: LUT groups: {e}"))?;
        let blocks: usize = expanded_shape[..rank].iter().product();
        let mut expanded = Vec::with_capacity(blocks * entries);
        for block in 0..blocks {
            let g = groups.param_index(block);
            expanded.extend_from_slice(&p.lut[g * entries..(g + 1) * entries]);
        }
        let mut lut_scale_shape = scale_shape.clone();
        lut_scale_shape.extend([1, 1]);
        let var = self.names.lut.clone();
        self.push(
            "constexpr_blockwise_shift_scale",
            &[&var],
            vec![
                (
                    "data",
                    Param::Value(float_tensor(&expanded_shape, &expanded, dtype)),
                ),
                (
                    "scale",
                    Param::Value(float_tensor(&lut_scale_shape, scales, dtype)),
                ),
            ],
        )?;
        Ok(Param::Var(var))
    }
}

impl PaletteData {
    /// True when the iOS16 `constexpr_lut_to_dense` can express this palette.
    fn is_plain_per_tensor(&self) -> bool {
        self.lut_shape.iter().rev().skip(2).all(|&g| g == 1)
            && self.lut_shape.last() == Some(&1)
            && self.nbits != 3
            && self.lut_quant.is_none()
            && self.channel_scale.is_none()
    }
}

impl QuantData {
    /// The `scale` parameter (in the weight's float type) and, with a zero point, `offset`.
    fn scale_and_offset(&self, dtype: DType) -> Vec<(&'static str, Param)> {
        let shape = &self.quantized.param_shape;
        let mut params = vec![(
            "scale",
            Param::Value(float_tensor(shape, &self.quantized.scales, dtype)),
        )];
        if let Some(zp) = &self.quantized.zero_points {
            params.push(("offset", Param::Value(int_params(self.dtype, shape, zp))));
        }
        params
    }

    /// True when the iOS16 `constexpr_affine_dequantize` can express this: 8-bit, per tensor
    /// or per channel.
    fn fits_ios16(&self) -> bool {
        matches!(self.dtype, QuantDtype::Int8 | QuantDtype::Uint8)
            && self
                .quantized
                .param_shape
                .iter()
                .filter(|&&d| d > 1)
                .count()
                <= 1
    }
}

/// Scale/zero-point shape and axis of the iOS16 op: rank 0 per tensor, rank 1 per channel.
fn ios16_param_shape(param_shape: &[usize]) -> Result<(Vec<usize>, i32), String> {
    match param_shape.iter().position(|&d| d > 1) {
        None => Ok((Vec::new(), 0)),
        Some(axis) => Ok((vec![param_shape[axis]], axis as i32)),
    }
}

/// The `shape` parameter of the iOS16 ops: the output shape as uint32.
fn shape_tensor(shape: &[usize]) -> Tensor {
    let dims: Vec<u32> = shape.iter().map(|&d| d as u32).collect();
    Tensor::from_u32(&[dims.len()], &dims)
}

/// The unsigned index type of `nbits`-bit LUT indices.
fn index_dtype(nbits: u32) -> Result<DType, String> {
    Ok(match nbits {
        1 => DType::U1,
        2 => DType::U2,
        3 => DType::U3,
        4 => DType::U4,
        6 => DType::U6,
        8 => DType::U8,
        n => return Err(format!("no index type holds {n}-bit indices")),
    })
}

/// The elements of `values` whose mask bit is set, in order.
fn gather(values: &[u8], mask: &[bool]) -> Vec<u8> {
    gather_elements(values, 1, mask)
}

/// The `width`-byte elements of `bytes` whose mask bit is set, in order.
fn gather_elements(bytes: &[u8], width: usize, mask: &[bool]) -> Vec<u8> {
    match width {
        1 => gather_fixed::<1>(bytes, mask),
        2 => gather_fixed::<2>(bytes, mask),
        4 => gather_fixed::<4>(bytes, mask),
        _ => bytes
            .chunks_exact(width)
            .zip(mask)
            .filter(|(_, &keep)| keep)
            .flat_map(|(element, _)| element.iter().copied())
            .collect(),
    }
}

/// [`gather_elements`] for `N`-byte elements, in parallel: each work item counts its kept
/// elements first, so the output is allocated once and every item fills its own part of it.
fn gather_fixed<const N: usize>(bytes: &[u8], mask: &[bool]) -> Vec<u8> {
    let counts: Vec<usize> = mask
        .par_chunks(GATHER_TASK)
        .map(|m| m.iter().filter(|&&keep| keep).count())
        .collect();
    let total: usize = counts.iter().sum();
    let mut kept = Vec::with_capacity(total * N);
    let mut parts = Vec::with_capacity(counts.len());
    let mut rest = &mut kept.spare_capacity_mut()[..total * N];
    for count in counts {
        let (part, tail) = rest.split_at_mut(count * N);
        parts.push(part);
        rest = tail;
    }
    bytes
        .par_chunks(GATHER_TASK * N)
        .zip(mask.par_chunks(GATHER_TASK))
        .zip(parts)
        .for_each(|((bytes, mask), part)| gather_into::<N>(bytes, mask, part));
    // SAFETY: the parts cover the first `total * N` bytes and `gather_into` wrote all of them.
    unsafe { kept.set_len(total * N) };
    kept
}

/// Writes the kept `N`-byte elements of `bytes` into `out`, which holds exactly as many.
/// Branch-free: every element is written to a small staging tile, only kept ones advance it.
fn gather_into<const N: usize>(bytes: &[u8], mask: &[bool], out: &mut [std::mem::MaybeUninit<u8>]) {
    const TILE: usize = 256;
    const { assert!(N <= 8) };
    let mut tile = [0u8; TILE * 8];
    let mut written = 0;
    for (bytes, mask) in bytes.chunks(TILE * N).zip(mask.chunks(TILE)) {
        let mut count = 0;
        for (element, &keep) in bytes.chunks_exact(N).zip(mask) {
            tile[count..count + N].copy_from_slice(element);
            count += N * usize::from(keep);
        }
        for (o, &b) in out[written..written + count].iter_mut().zip(&tile[..count]) {
            o.write(b);
        }
        written += count;
    }
    assert_eq!(written, out.len(), "mask changed while gathering");
}

/// Elements per parallel work item of the gathers.
const GATHER_TASK: usize = 1 << 16;

/// A float tensor of the weight's dtype.
fn float_tensor(shape: &[usize], values: &[f32], dtype: DType) -> Tensor {
    let t = Tensor::from_f32(shape, values);
    if dtype == DType::F32 {
        t
    } else {
        t.cast(dtype)
    }
}

/// Quantized integers (stored bytes, see [`QuantDtype::integer`]) as a tensor of their
/// storage type (one byte per element in the IR).
fn int_tensor(dtype: QuantDtype, shape: &[usize], stored: Vec<u8>) -> Tensor {
    let ir_dtype = match dtype {
        QuantDtype::Int8 => DType::I8,
        QuantDtype::Uint8 => DType::U8,
        QuantDtype::Int4 => DType::I4,
        QuantDtype::Uint4 => DType::U4,
    };
    elements_tensor(ir_dtype, shape, stored)
}

/// One-byte elements as a tensor of `dtype`; sub-byte types are packed, so the program holds
/// them at their stored size.
fn elements_tensor(dtype: DType, shape: &[usize], values: Vec<u8>) -> Tensor {
    if dtype.is_sub_byte() {
        Tensor::from_packed_bits(dtype, shape, pack_bits(&values, dtype.bits()))
    } else {
        Tensor::from_byte_elements(dtype, shape, values)
    }
}

/// Small integer parameters (zero points) as a tensor of the quantized storage type.
fn int_params(dtype: QuantDtype, shape: &[usize], values: &[i32]) -> Tensor {
    int_tensor(dtype, shape, values.iter().map(|&v| v as u8).collect())
}

/// A uint1 mask tensor of the weight's shape (iOS18), held packed.
fn uint1_mask(mask: &[bool], shape: &[usize]) -> Tensor {
    Tensor::from_packed_bits(DType::U1, shape, pack_bools(mask))
}

/// The mask as LSB-first packed bytes (iOS16).
fn packed_mask(mask: &[bool]) -> Tensor {
    let packed = pack_bools(mask);
    Tensor::from_byte_elements(DType::U8, &[packed.len()], packed)
}
