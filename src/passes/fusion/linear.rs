//! Linear layers: `matmul(x, W)` with a constant 2-D `W` → `linear` (weight stored `[out, in]`,
//! transposed here at conversion time), and a `linear` or such a `matmul` followed by `add` of
//! a constant bias with one value per output feature → `linear` with that bias (added to the
//! bias it already had). MIL `linear` takes inputs of rank 1 to 3, so a `matmul` on a
//! higher-rank input stays.

use super::graph::{arg, new_const, new_op, other_operand, out, Graph, Rewrite};
use crate::ir::{NameTable, Operation, Tensor};

/// Largest input rank MIL `linear` accepts.
const MAX_RANK: usize = 3;

/// A matched layer: the input, weight `[out, in]` (transposed when `transpose`), the bias
/// parts to sum, the op carrying the origin, and the last op.
struct Match<'a> {
    x: &'a str,
    weight: &'a Tensor,
    transpose: bool,
    /// The existing `linear`'s weight variable, reused when nothing is transposed.
    weight_var: Option<&'a str>,
    biases: Vec<&'a Tensor>,
    anchor: usize,
    root: usize,
}

/// The `matmul` with a constant matrix at op `i`, or the `linear` there followed by a constant
/// bias `add`, fused into one `linear` op.
pub fn plan(g: &Graph, i: usize, names: &mut NameTable) -> Option<Rewrite> {
    let m = match_at(g, i)?;
    let root = g.op(m.root);
    let anchor = g.op(m.anchor);
    let origin = anchor.origin.clone();
    let dtype = root.outputs[0].ty.dtype;
    let mut ops: Vec<Operation> = Vec::new();
    let weight = match m.weight_var {
        Some(w) => w.to_string(),
        None => {
            let value = if m.transpose {
                m.weight.transposed_matrix()
            } else {
                m.weight.clone()
            };
            let (op, name) = new_const(
                names,
                &format!("{}_weight", anchor.name),
                value,
                origin.clone(),
            );
            ops.push(op);
            name
        }
    };
    let mut inputs = vec![("x", m.x.to_string()), ("weight", weight)];
    if !m.biases.is_empty() {
        let n = m.biases[0].len();
        let mut sum = vec![0f32; n];
        for b in &m.biases {
            for (s, v) in sum.iter_mut().zip(b.to_f32_vec()) {
                *s += v;
            }
        }
        let value = Tensor::from_f32(&[n], &sum).cast(dtype);
        let (op, name) = new_const(
            names,
            &format!("{}_bias", anchor.name),
            value,
            origin.clone(),
        );
        ops.push(op);
        inputs.push(("bias", name));
    }
    let inputs: Vec<(&str, &str)> = inputs.iter().map(|(p, v)| (*p, v.as_str())).collect();
    ops.push(new_op(
        "linear",
        &root.name,
        &inputs,
        root.outputs.clone(),
        origin,
    ));
    Some(Rewrite { root: m.root, ops })
}

/// The value of constant boolean parameter `param` (false when absent).
fn flag(g: &Graph, op: &Operation, param: &str) -> Option<bool> {
    match op.input(param) {
        None => Some(false),
        Some(_) => Some(g.const_value(arg(op, param)?)?.to_i64_vec() == [1]),
    }
}

fn match_at<'a>(g: &Graph<'a>, i: usize) -> Option<Match<'a>> {
    let op = g.op(i);
    let x = arg(op, "x")?;
    let x_rank = op.outputs.first()?.ty.rank();
    let mut m = match op.op_type.as_str() {
        "matmul" => {
            let w = g.const_value(arg(op, "y")?)?;
            let fits = w.shape().len() == 2
                && w.dtype().is_float()
                && !flag(g, op, "transpose_x")?
                && (1..=MAX_RANK).contains(&x_rank);
            if !fits || !op.outputs[0].ty.dtype.is_float() {
                return None;
            }
            Match {
                x,
                weight: w,
                transpose: !flag(g, op, "transpose_y")?,
                weight_var: None,
                biases: Vec::new(),
                anchor: i,
                root: i,
            }
        }
        "linear" => {
            let w = arg(op, "weight")?;
            let bias = match op.input("bias") {
                None => None,
                Some(_) => Some(g.const_value(arg(op, "bias")?)?),
            };
            Match {
                x,
                weight: g.const_value(w)?,
                transpose: false,
                weight_var: Some(w),
                biases: bias.into_iter().collect(),
                anchor: i,
                root: i,
            }
        }
        _ => return None,
    };
    if let Some(add) = g.sole_reader_of(i, "add") {
        let bias = g.const_value(other_operand(g.op(add), out(op))?);
        let rank = op.outputs[0].ty.rank();
        let features = if m.transpose {
            m.weight.shape()[1]
        } else {
            m.weight.shape()[0]
        };
        let per_feature = bias.filter(|b| {
            b.len() == features
                && b.dtype().is_float()
                && b.shape().len() <= rank
                && b.shape().iter().rev().skip(1).all(|&s| s == 1)
                && g.op(add).outputs[0].ty == op.outputs[0].ty
        });
        if let Some(b) = per_feature {
            m.biases.push(b);
            m.root = add;
        }
    }
    (op.op_type == "matmul" || m.root != i).then_some(m)
}

#[cfg(test)]
mod tests {
    use super::super::testing::{fuse_checked, op_types};
    use super::*;
    use crate::ir::{Builder, DType, Target, TensorType, Var};

    fn weights(shape: &[usize]) -> Tensor {
        let n: usize = shape.iter().product();
        let v: Vec<f32> = (0..n).map(|i| ((i * 7) % 11) as f32 * 0.1 - 0.5).collect();
        Tensor::from_f32(shape, &v)
    }

    #[test]
    fn transposes_matmul_weights_and_takes_the_bias_add() {
        let mut b = Builder::new(
            "main",
            vec![Var::new("x", TensorType::fixed(DType::F32, &[2, 3, 4]))],
        );
        let w = b.constant("w", weights(&[4, 5]));
        let mm = b
            .op1("matmul", "mm", &[("x", &["x"]), ("y", &[&w])])
            .unwrap();
        let bias = b.constant("bias", weights(&[1, 1, 5]));
        let y = b
            .op1("add", "y", &[("x", &[&bias]), ("y", &[&mm])])
            .unwrap();
        let w2 = b.constant("w2", weights(&[5, 5]));
        let z = b
            .op1("matmul", "z", &[("x", &[&y]), ("y", &[&w2])])
            .unwrap();
        let p = fuse_checked(b.finish(vec![z]), Target::IOS15, &[("linear", 2)]);
        assert_eq!(op_types(&p), ["linear", "linear"]);
        let first = p
            .main()
            .block
            .operations
            .iter()
            .find(|o| o.op_type == "linear")
            .unwrap();
        assert_eq!(first.name, "y");
        assert!(first.input("bias").is_some());
    }

    #[test]
    fn adds_a_bias_to_an_existing_linear_and_leaves_other_matmuls() {
        let mut b = Builder::new(
            "main",
            vec![Var::new("x", TensorType::fixed(DType::F32, &[1, 2, 3, 4]))],
        );
        let w = b.constant("w", weights(&[4, 4]));
        let mm = b
            .op1("matmul", "mm", &[("x", &["x"]), ("y", &[&w])])
            .unwrap();
        let w2 = b.constant("w2", weights(&[5, 4]));
        let bias = b.constant("bias", weights(&[5]));
        let flat = b.constant("shape", Tensor::vec_i32(&[6, 4]));
        let r = b
            .op1("reshape", "r", &[("x", &[&mm]), ("shape", &[&flat])])
            .unwrap();
        let l = b
            .op1(
                "linear",
                "l",
                &[("x", &[&r]), ("weight", &[&w2]), ("bias", &[&bias])],
            )
            .unwrap();
        let y = b.op1("add", "y", &[("x", &[&l]), ("y", &[&bias])]).unwrap();
        let full = b.constant("full", weights(&[6, 5]));
        let z = b.op1("add", "z", &[("x", &[&y]), ("y", &[&full])]).unwrap();
        let p = fuse_checked(b.finish(vec![z]), Target::IOS15, &[("linear", 1)]);
        assert_eq!(op_types(&p), ["matmul", "reshape", "linear", "add"]);
    }
}
