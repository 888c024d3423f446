//! Kernel of `scaled_dot_product_attention`.

use crate::interp::{KernelArgs, Value};
use ndarray::{Array2, Array3, ArrayD, ArrayView2, Axis, CowArray, Ix3, IxDyn};
use rayon::prelude::*;

/// Views `a` ([batch…, rows, cols]) as `[count, rows, cols]` (copied only when its layout is
/// not the standard one).
fn batched<'a>(a: &'a ArrayD<f32>, name: &str) -> Result<CowArray<'a, f32, Ix3>, String> {
    let shape = a.shape().to_vec();
    let (rows, cols) = (shape[shape.len() - 2], shape[shape.len() - 1]);
    let count = shape[..shape.len() - 2].iter().product::<usize>();
    a.as_standard_layout()
        .into_shape_with_order((count, rows, cols))
        .map_err(|e| format!("{name}: {e}"))
}

/// The additive mask broadcast to the scores' shape: float masks as they are, bool masks as
/// 0 where true (attend) and -inf where false.
fn additive_mask(mask: &Value, full: &[usize]) -> Result<ArrayD<f32>, String> {
    let m = match mask {
        Value::Bool(b) => b.mapv(|keep| if keep { 0.0 } else { f32::NEG_INFINITY }),
        other => other.to_f32_array()?,
    };
    let view = m.broadcast(IxDyn(full)).ok_or_else(|| {
        format!(
            "attn_mask {:?} does not broadcast to scores {full:?}",
            m.shape()
        )
    })?;
    Ok(view.to_owned())
}

/// One head: `softmax(q·kᵀ·scale + mask)·v`, the softmax shifted by each row's maximum.
fn attend(
    q: ArrayView2<f32>,
    k: ArrayView2<f32>,
    v: ArrayView2<f32>,
    mask: Option<ArrayView2<f32>>,
    scale: f32,
) -> Array2<f32> {
    let mut scores = q.dot(&k.t());
    scores.mapv_inplace(|s| s * scale);
    if let Some(m) = mask {
        scores += &m;
    }
    for mut row in scores.rows_mut() {
        let max = row.fold(f32::NEG_INFINITY, |m, &s| m.max(s));
        row.mapv_inplace(|s| (s - max).exp());
        let sum = row.sum();
        row.mapv_inplace(|s| s / sum);
    }
    scores.dot(&v)
}

/// `scaled_dot_product_attention`: `softmax(query · keyᵀ / √E + mask) · value`, in fp32,
/// each batch×head slice in parallel.
pub fn scaled_dot_product_attention(args: &KernelArgs) -> Result<Vec<Value>, String> {
    let q = args.get("query")?.floats()?;
    let k = args.get("key")?.floats()?;
    let v = args.get("value")?.floats()?;
    let r = q.ndim();
    if r < 3 || k.ndim() != r || v.ndim() != r {
        return Err("query, key and value must have the same rank ≥ 3".into());
    }
    let (batch, l, e) = (&q.shape()[..r - 2], q.shape()[r - 2], q.shape()[r - 1]);
    let (s, ev) = (k.shape()[r - 2], v.shape()[r - 1]);
    if k.shape()[..r - 2] != *batch || v.shape()[..r - 2] != *batch {
        return Err(format!(
            "query {:?}, key {:?} and value {:?} must have the same batch dims",
            q.shape(),
            k.shape(),
            v.shape()
        ));
    }
    if k.shape()[r - 1] != e || v.shape()[r - 2] != s {
        return Err(format!(
            "key {:?} must be [.., S, {e}] and value {:?} [.., S, EV]",
            k.shape(),
            v.shape()
        ));
    }
    let mut out_shape = batch.to_vec();
    let mut scores_shape = batch.to_vec();
    scores_shape.extend([l, s]);
    out_shape.extend([l, ev]);
    let mask = args
        .opt("attn_mask")
        .map(|m| additive_mask(m, &scores_shape))
        .transpose()?;
    let mask = mask.as_ref().map(|m| batched(m, "attn_mask")).transpose()?;
    let (q, k, v) = (
        batched(&q, "query")?,
        batched(&k, "key")?,
        batched(&v, "value")?,
    );
    let scale = 1.0 / (e as f32).sqrt();
    let mut out = Array3::<f32>::zeros((q.len_of(Axis(0)), l, ev));
    out.outer_iter_mut()
        .into_par_iter()
        .enumerate()
        .for_each(|(i, mut o)| {
            let m = mask.as_ref().map(|m| m.index_axis(Axis(0), i));
            o.assign(&attend(
                q.index_axis(Axis(0), i),
                k.index_axis(Axis(0), i),
                v.index_axis(Axis(0), i),
                m,
                scale,
            ));
        });
    Ok(vec![Value::Float(
        out.into_shape_with_order(IxDyn(&out_shape))
            .map_err(|e| e.to_string())?,
    )])
}

#[cfg(test)]
mod tests {
    use crate::ir::ops::testing::{assert_close, floats, infer, run};
    use crate::ir::{DType, Tensor, TensorType};

    const OP: &str = "scaled_dot_product_attention";

    /// Deterministic values in [-1, 1).
    fn values(n: usize, seed: u32) -> Vec<f32> {
        (0..n as u32)
            .map(|i| {
                let h = (i.wrapping_mul(2_654_435_761) ^ seed.wrapping_mul(40_503)) % 2000;
                h as f32 / 1000.0 - 1.0
            })
            .collect()
    }

    /// Attention computed in the most direct way, in f64, element by element.
    #[allow(clippy::too_many_arguments)]
    fn naive(
        q: &[f32],
        k: &[f32],
        v: &[f32],
        mask: Option<&dyn Fn(usize, usize, usize) -> f64>,
        count: usize,
        (l, s, e, ev): (usize, usize, usize, usize),
    ) -> Vec<f32> {
        let mut out = Vec::new();
        for b in 0..count {
            for i in 0..l {
                let mut w: Vec<f64> = (0..s)
                    .map(|j| {
                        let dot: f64 = (0..e)
                            .map(|t| q[(b * l + i) * e + t] as f64 * k[(b * s + j) * e + t] as f64)
                            .sum();
                        dot / (e as f64).sqrt() + mask.map_or(0.0, |m| m(b, i, j))
                    })
                    .collect();
                let max = w.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                w.iter_mut().for_each(|x| *x = (*x - max).exp());
                let sum: f64 = w.iter().sum();
                for c in 0..ev {
                    let acc: f64 = (0..s)
                        .map(|j| w[j] / sum * v[(b * s + j) * ev + c] as f64)
                        .sum();
                    out.push(acc as f32);
                }
            }
        }
        out
    }

    /// With identical keys every score ties, so each output row is the mean of the values.
    #[test]
    fn equal_keys_average_the_values() {
        let q = Tensor::from_f32(&[1, 2, 2], &[1.0, 2.0, -3.0, 0.5]);
        let k = Tensor::from_f32(&[1, 3, 2], &[1.0, 1.0, 1.0, 1.0, 1.0, 1.0]);
        let v = Tensor::from_f32(&[1, 3, 1], &[1.0, 2.0, 6.0]);
        let out = run(
            OP,
            &[("query", q), ("key", k), ("value", v)],
            &[TensorType::fixed(DType::F32, &[1, 2, 1])],
        );
        assert_close(&floats(&out[0]), &[3.0, 3.0], 1e-6);
    }

    /// E = 4 so the scale is 1/2: scores [2, 0] → weights e²/(e²+1), 1/(e²+1).
    #[test]
    fn hand_checked_scores_and_bool_mask() {
        let q = Tensor::from_f32(&[1, 1, 4], &[2.0, 0.0, 0.0, 0.0]);
        let k = Tensor::from_f32(&[1, 2, 4], &[2.0, 0.0, 0.0, 0.0, 0.0, 5.0, 0.0, 0.0]);
        let v = Tensor::from_f32(&[1, 2, 1], &[1.0, 0.0]);
        let e2 = std::f32::consts::E.powi(2);
        let out = run(
            OP,
            &[
                ("query", q.clone()),
                ("key", k.clone()),
                ("value", v.clone()),
            ],
            &[TensorType::fixed(DType::F32, &[1, 1, 1])],
        );
        assert_close(&floats(&out[0]), &[e2 / (e2 + 1.0)], 1e-6);
        // Masking out the first key leaves all weight on the second (value 0).
        let masked = run(
            OP,
            &[
                ("query", q),
                ("key", k),
                ("value", v),
                ("attn_mask", Tensor::from_bool(&[1, 2], &[false, true])),
            ],
            &[TensorType::fixed(DType::F32, &[1, 1, 1])],
        );
        assert_close(&floats(&masked[0]), &[0.0], 0.0);
    }

    #[test]
    fn matches_a_naive_reference_with_a_broadcast_float_mask() {
        let (b, h, l, s, e, ev) = (2, 3, 4, 5, 6, 7);
        let q = values(b * h * l * e, 1);
        let k = values(b * h * s * e, 2);
        let v = values(b * h * s * ev, 3);
        // One mask row per batch and query position, shared by the heads: [b, 1, l, s].
        let m = values(b * l * s, 4);
        let want = naive(
            &q,
            &k,
            &v,
            Some(&|bh: usize, i: usize, j: usize| m[((bh / h) * l + i) * s + j] as f64),
            b * h,
            (l, s, e, ev),
        );
        let out = run(
            OP,
            &[
                ("query", Tensor::from_f32(&[b, h, l, e], &q)),
                ("key", Tensor::from_f32(&[b, h, s, e], &k)),
                ("value", Tensor::from_f32(&[b, h, s, ev], &v)),
                ("attn_mask", Tensor::from_f32(&[b, 1, l, s], &m)),
            ],
            &[TensorType::fixed(DType::F32, &[b, h, l, ev])],
        );
        assert_close(&floats(&out[0]), &want, 1e-5);
        let plain = run(
            OP,
            &[
                ("query", Tensor::from_f32(&[b * h, l, e], &q)),
                ("key", Tensor::from_f32(&[b * h, s, e], &k)),
                ("value", Tensor::from_f32(&[b * h, s, ev], &v)),
            ],
            &[TensorType::fixed(DType::F32, &[b * h, l, ev])],
        );
        let want = naive(&q, &k, &v, None, b * h, (l, s, e, ev));
        assert_close(&floats(&plain[0]), &want, 1e-5);
    }

    #[test]
    fn type_rule_rejects_mismatched_operands() {
        let t = |shape: &[usize]| Tensor::from_f32(shape, &vec![0.0; shape.iter().product()]);
        let ok = infer(
            OP,
            &[
                ("query", t(&[2, 4, 8])),
                ("key", t(&[2, 5, 8])),
                ("value", t(&[2, 5, 3])),
            ],
        )
        .unwrap();
        assert_eq!(ok, vec![TensorType::fixed(DType::F32, &[2, 4, 3])]);
        for (q, k, v, mask) in [
            (&[2, 4, 8][..], &[1, 5, 8][..], &[2, 5, 3][..], None),
            (&[2, 4, 8], &[2, 5, 7], &[2, 5, 3], None),
            (&[2, 4, 8], &[2, 5, 8], &[2, 6, 3], None),
            (&[4, 8], &[5, 8], &[5, 3], None),
            (&[2, 4, 8], &[2, 5, 8], &[2, 5, 3], Some(&[4, 4][..])),
            (&[2, 4, 8], &[2, 5, 8], &[2, 5, 3], Some(&[3, 4, 5][..])),
        ] {
            let mut inputs = vec![("query", t(q)), ("key", t(k)), ("value", t(v))];
            if let Some(m) = mask {
                inputs.push(("attn_mask", t(m)));
            }
            assert!(infer(OP, &inputs).is_err(), "{q:?} {k:?} {v:?} {mask:?}");
        }
    }
}
