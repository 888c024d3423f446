//! LayerNorm decomposed as exporters write it, over the trailing axes:
//! `d = x − reduce_mean(x)`, `v = reduce_mean(d²)` (`pow(d, 2)` or `d·d`), then
//! `d / sqrt(v + ε)` or `d · rsqrt(v + ε)`, optionally followed by `· γ` and `+ β` → one
//! `layer_norm`. γ and β are taken only over a single (last) axis and must be constants with
//! one value per channel (`[C]` or `[1, …, 1, C]`), as MIL wants them rank 1; otherwise they
//! stay separate ops after the fused norm. RMSNorm (no mean subtraction) is left decomposed.

use super::graph::{
    arg, new_const, new_op, operands, other_operand, out, split_scalar, Graph, Rewrite,
};
use crate::ir::{Argument, Dim, NameTable, Operation, Tensor};

/// A matched LayerNorm.
struct Match<'a> {
    x: &'a str,
    axes: Vec<i32>,
    epsilon: f64,
    gamma: Option<&'a Tensor>,
    beta: Option<&'a Tensor>,
    mean: usize,
    root: usize,
}

/// The decomposed LayerNorm ending at op `i`, fused into one `layer_norm` op, when its
/// intermediate values nothing else reads.
pub fn plan(g: &Graph, i: usize, names: &mut NameTable) -> Option<Rewrite> {
    let m = match_at(g, i)?;
    let root = g.op(m.root);
    let dtype = root.outputs[0].ty.dtype;
    let origin = g.op(m.mean).origin.clone();
    let mut consts: Vec<Operation> = Vec::new();
    let mut constant = |param: &str, value: Tensor| {
        let (op, name) = new_const(
            names,
            &format!("{}_{param}", root.name),
            value,
            origin.clone(),
        );
        consts.push(op);
        (param.to_string(), name)
    };
    let mut params = vec![constant("axes", Tensor::vec_i32(&m.axes))];
    for (param, t) in [("gamma", m.gamma), ("beta", m.beta)] {
        if let Some(t) = t {
            params.push(constant(param, t.reshaped(&[t.len()]).cast(dtype)));
        }
    }
    params.push(constant(
        "epsilon",
        Tensor::scalar_f32(m.epsilon as f32).cast(dtype),
    ));
    let mut inputs: Vec<(&str, &str)> = vec![("x", m.x)];
    inputs.extend(params.iter().map(|(p, v)| (p.as_str(), v.as_str())));
    let norm = new_op(
        "layer_norm",
        &root.name,
        &inputs,
        root.outputs.clone(),
        origin,
    );
    consts.push(norm);
    Some(Rewrite {
        root: m.root,
        ops: consts,
    })
}

/// The axes of a `reduce_mean` with `keep_dims` true, normalized to `0..rank`.
fn mean_axes(g: &Graph, op: &Operation, rank: usize) -> Option<Vec<i32>> {
    if op.op_type != "reduce_mean" {
        return None;
    }
    let keep = g.const_value(arg(op, "keep_dims")?)?;
    if keep.to_i64_vec() != [1] {
        return None;
    }
    let mut axes: Vec<i32> = match op.input("axes") {
        None => (0..rank as i32).collect(),
        Some([Argument::Var(a)]) => g
            .const_value(a)?
            .to_i64_vec()
            .iter()
            .map(|&a| if a < 0 { a + rank as i64 } else { a } as i32)
            .collect(),
        _ => return None,
    };
    axes.sort_unstable();
    axes.dedup();
    Some(axes)
}

fn match_at<'a>(g: &Graph<'a>, i: usize) -> Option<Match<'a>> {
    let mean = g.op(i);
    let x = arg(mean, "x")?;
    let x_ty = g.var_type(x)?;
    let rank = x_ty.rank();
    let axes = mean_axes(g, mean, rank)?;
    let trailing = !axes.is_empty()
        && axes
            .iter()
            .enumerate()
            .all(|(k, &a)| a as usize == rank - axes.len() + k);
    if !trailing {
        return None;
    }
    let sub = g.sole_reader_of(i, "sub")?;
    let d = out(g.op(sub));
    if operands(g.op(sub))? != (x, out(mean)) || g.is_output(d) {
        return None;
    }
    let mut readers = g.readers(d).to_vec();
    readers.dedup();
    let [square, divide] = readers[..] else {
        return None;
    };
    let squared = match g.op(square).op_type.as_str() {
        "pow" => operands(g.op(square)).is_some_and(|(b, e)| b == d && g.scalar(e) == Some(2.0)),
        "mul" => operands(g.op(square)) == Some((d, d)),
        _ => false,
    };
    let var = g.sole_reader(out(g.op(square)))?;
    if !squared || mean_axes(g, g.op(var), rank)? != axes {
        return None;
    }
    let add = g.sole_reader_of(var, "add")?;
    let (v, epsilon) = split_scalar(g, g.op(add))?;
    if v != out(g.op(var)) || !(0.0..1.0).contains(&epsilon) {
        return None;
    }
    let root_op = g.sole_reader(out(g.op(add)))?;
    let ok = match g.op(root_op).op_type.as_str() {
        "sqrt" => {
            g.sole_reader_of(root_op, "real_div") == Some(divide)
                && operands(g.op(divide)) == Some((d, out(g.op(root_op))))
        }
        "rsqrt" => {
            g.sole_reader_of(root_op, "mul") == Some(divide)
                && other_operand(g.op(divide), out(g.op(root_op))) == Some(d)
        }
        _ => false,
    };
    if !ok {
        return None;
    }
    let channels = match (&x_ty.shape[..], axes.len()) {
        ([.., Dim::Fixed(c)], 1) => Some(*c),
        _ => None,
    };
    let mut root = divide;
    let mut affine = |op_type: &str| -> Option<&'a Tensor> {
        let next = g.sole_reader_of(root, op_type)?;
        let other = other_operand(g.op(next), out(g.op(root)))?;
        let t = g.const_value(other)?;
        let per_channel = t.len() == channels?
            && t.shape().len() <= rank
            && t.shape().iter().rev().skip(1).all(|&s| s == 1);
        per_channel.then(|| {
            root = next;
            t
        })
    };
    let gamma = affine("mul");
    let beta = affine("add");
    (g.op(root).outputs[0].ty == *x_ty).then_some(Match {
        x,
        axes: axes.iter().map(|&a| a - rank as i32).collect(),
        epsilon,
        gamma,
        beta,
        mean: i,
        root,
    })
}

#[cfg(test)]
mod tests {
    use super::super::testing::{fuse_checked, op_types};
    use crate::ir::{Builder, DType, Function, Target, Tensor, TensorType, Var};

    /// LayerNorm over the last `k` axes of a [2, 3, 4] input, as torch exports it (`rsqrt`
    /// picks the `d · rsqrt(v + ε)` spelling, `affine` adds γ and β).
    fn layer_norm(k: usize, rsqrt: bool, affine: bool) -> Function {
        let mut b = Builder::new(
            "main",
            vec![Var::new("x", TensorType::fixed(DType::F32, &[2, 3, 4]))],
        );
        let axes: Vec<i32> = (0..k as i32).map(|i| -1 - i).collect();
        let axes = b.constant("axes", Tensor::vec_i32(&axes));
        let keep = b.constant("keep", Tensor::scalar_bool(true));
        let two = b.constant("two", Tensor::scalar_f32(2.0));
        let eps = b.constant("eps", Tensor::scalar_f32(1e-5));
        let reduce = |b: &mut Builder, x: &str| {
            b.op1(
                "reduce_mean",
                "mean",
                &[("x", &[x]), ("axes", &[&axes]), ("keep_dims", &[&keep])],
            )
            .unwrap()
        };
        let bin = |b: &mut Builder, op: &str, x: &str, y: &str| {
            b.op1(op, op, &[("x", &[x]), ("y", &[y])]).unwrap()
        };
        let mean = reduce(&mut b, "x");
        let d = bin(&mut b, "sub", "x", &mean);
        let sq = if rsqrt {
            bin(&mut b, "mul", &d, &d)
        } else {
            bin(&mut b, "pow", &d, &two)
        };
        let var = reduce(&mut b, &sq);
        let ve = bin(&mut b, "add", &var, &eps);
        let mut y = if rsqrt {
            let r = b.op1("rsqrt", "r", &[("x", &[&ve])]).unwrap();
            bin(&mut b, "mul", &r, &d)
        } else {
            let s = b.op1("sqrt", "s", &[("x", &[&ve])]).unwrap();
            bin(&mut b, "real_div", &d, &s)
        };
        if affine {
            let gamma = b.constant("gamma", Tensor::from_f32(&[4], &[0.5, 1.0, 1.5, -2.0]));
            let beta = b.constant("beta", Tensor::from_f32(&[1, 1, 4], &[0.1, 0.2, 0.3, 0.4]));
            y = bin(&mut b, "mul", &y, &gamma);
            y = bin(&mut b, "add", &beta, &y);
        }
        b.finish(vec![y])
    }

    #[test]
    fn fuses_both_spellings_with_gamma_and_beta() {
        for rsqrt in [false, true] {
            let p = fuse_checked(
                layer_norm(1, rsqrt, true),
                Target::IOS15,
                &[("layer_norm", 1)],
            );
            assert_eq!(op_types(&p), ["layer_norm"]);
            let norm = p.main().block.operations.last().unwrap();
            assert_eq!(norm.input("gamma").map(<[_]>::len), Some(1));
            assert_eq!(norm.input("beta").map(<[_]>::len), Some(1));
        }
    }

    #[test]
    fn fuses_trailing_axes_without_taking_their_affine_ops() {
        let p = fuse_checked(
            layer_norm(2, false, false),
            Target::IOS15,
            &[("layer_norm", 1)],
        );
        assert_eq!(op_types(&p), ["layer_norm"]);
        let p = fuse_checked(
            layer_norm(2, false, true),
            Target::IOS15,
            &[("layer_norm", 1)],
        );
        assert_eq!(op_types(&p), ["layer_norm", "mul", "add"]);
    }

    #[test]
    fn leaves_a_norm_whose_centred_value_is_read_elsewhere() {
        let mut f = layer_norm(1, false, false);
        let d = f
            .block
            .operations
            .iter()
            .find(|op| op.op_type == "sub")
            .unwrap()
            .outputs[0]
            .name
            .clone();
        f.block.outputs.push(d);
        fuse_checked(f, Target::IOS15, &[]);
    }
}
