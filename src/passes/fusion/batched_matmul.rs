//! Batched matmul through flattened batch dims: `reshape(matmul(reshape(a), reshape(b)))`
//! where the inner reshapes fold the same leading dims of `a` and `b` into one (`[B, H, S, E]`
//! → `[B·H, S, E]`) and the outer reshape unfolds them again → `matmul(a, b)`.
//!
//! torch's core-ATen decomposition writes every batched matmul this way (`bmm` is rank 3).
//! `matmul` broadcasts over any number of batch dims, so the flattening is pure bookkeeping,
//! and without it the attention blocks it hides are recognisable again.
//!
//! Each reshape is checked against the operand types: the leading dims must be known, the last
//! two dims kept (a `-1` stands for a kept dim when the other one is checked), and the outer
//! reshape must restore the leading dims with the product's last two. One operand may be a
//! rank-3 value already in the folded layout (a reshape pair around it was removed as a no-op):
//! it gets a reshape unfolding its first dim.

use super::graph::{arg, new_const, new_op, replace, Graph};
use crate::ir::{Argument, Dim, Function, NameTable, Operation, Target, Tensor, TensorType, Var};

/// The leading dims that `reshape(var, shape)` folds into one, when it only does that: by its
/// constant shape, or by its result type (the same matrix dims, sizes or symbols).
fn folded_leading_dims(g: &Graph, reshape: &Operation) -> Option<Vec<usize>> {
    let ty = g.var_type(arg(reshape, "x")?)?;
    let rank = ty.rank();
    let folded = &reshape.outputs[0].ty;
    if rank < 4 || folded.rank() != 3 {
        return None;
    }
    let leading: Vec<usize> = ty.shape[..rank - 2]
        .iter()
        .map(Dim::fixed)
        .collect::<Option<_>>()?;
    let batch: usize = leading.iter().product();
    let kept = match g.const_value(arg(reshape, "shape")?) {
        Some(shape) => {
            let shape = shape.to_i64_vec();
            i64::try_from(batch).ok() == Some(shape[0])
                && keeps_last_two(&ty.shape[rank - 2..], &shape[1..])
        }
        None => folded.shape[0].fixed() == Some(batch) && folded.shape[1..] == ty.shape[rank - 2..],
    };
    kept.then_some(leading)
}

/// True when the requested `sizes` (two entries, `-1` allowed once) leave `dims` as they are.
fn keeps_last_two(dims: &[Dim], sizes: &[i64]) -> bool {
    let same = |d: &Dim, s: i64| d.fixed().and_then(|n| i64::try_from(n).ok()) == Some(s);
    match (sizes[0], sizes[1]) {
        (-1, s) => same(&dims[1], s),
        (s, -1) => same(&dims[0], s),
        (s, t) => same(&dims[0], s) && same(&dims[1], t),
    }
}

/// True when `unfolded` is `leading` followed by the last two dims of `product`: both equal
/// (the same size or the same symbol), or one of them known equal (the element count fixes
/// the other).
fn unfolds(unfolded: &TensorType, leading: &[usize], product: &TensorType) -> bool {
    let n = leading.len();
    if unfolded.rank() != n + 2 || product.rank() != 3 {
        return false;
    }
    let leading_kept = unfolded.shape[..n]
        .iter()
        .zip(leading)
        .all(|(d, &l)| d.fixed() == Some(l));
    let known_equal = |a: &Dim, b: &Dim| a.fixed().is_some() && a == b;
    let (rows, cols) = (&unfolded.shape[n], &unfolded.shape[n + 1]);
    let (m, n) = (&product.shape[1], &product.shape[2]);
    let both_equal = rows == m && cols == n;
    leading_kept && (both_equal || known_equal(rows, m) || known_equal(cols, n))
}

/// A matmul operand with the batch dims unfolded.
enum Operand {
    /// The input of the reshape that folded it.
    Unfolded(String),
    /// A rank-3 value whose first dim is the folded batch: it is reshaped to the leading dims
    /// (the shape given, one unknown matrix dim as -1) with this type.
    Reshaped(String, Vec<i32>, TensorType),
}

/// The rewrite of one match: the matmul, the outer reshape and the unfolded operands.
struct Match {
    matmul: usize,
    outer: usize,
    x: Operand,
    y: Operand,
}

/// `var` with its batch dims unfolded to `leading`: the input of a folding reshape, or a
/// rank-3 value with a first dim of their product.
fn unfold(g: &Graph, var: &str, leading: &[usize]) -> Option<Operand> {
    if let Some(r) = g.producer(var, "reshape") {
        let reshape = g.op(r);
        if folded_leading_dims(g, reshape).as_deref() == Some(leading) {
            return Some(Operand::Unfolded(arg(reshape, "x")?.to_string()));
        }
    }
    let ty = g.var_type(var)?;
    if ty.rank() != 3 || ty.shape[0].fixed()? != leading.iter().product::<usize>() {
        return None;
    }
    let matrix = [&ty.shape[1], &ty.shape[2]];
    if matrix.iter().all(|d| d.fixed().is_none()) {
        return None;
    }
    let mut sizes: Vec<i32> = leading
        .iter()
        .map(|&d| i32::try_from(d).ok())
        .collect::<Option<_>>()?;
    for d in matrix {
        sizes.push(d.fixed().map_or(Some(-1), |n| i32::try_from(n).ok())?);
    }
    let mut shape: Vec<Dim> = leading.iter().map(|&d| Dim::Fixed(d)).collect();
    shape.extend(matrix.into_iter().cloned());
    let unfolded = TensorType {
        dtype: ty.dtype,
        shape,
    };
    Some(Operand::Reshaped(var.to_string(), sizes, unfolded))
}

fn find(g: &Graph, m: usize) -> Option<Match> {
    let matmul = g.op(m);
    if matmul.op_type != "matmul" {
        return None;
    }
    let (x, y) = (arg(matmul, "x")?, arg(matmul, "y")?);
    let folded = |var: &str| {
        g.producer(var, "reshape")
            .and_then(|r| folded_leading_dims(g, g.op(r)))
    };
    let leading = folded(x).or_else(|| folded(y))?;
    let outer = g.sole_reader_of(m, "reshape")?;
    let product = &matmul.outputs[0].ty;
    if !unfolds(&g.op(outer).outputs[0].ty, &leading, product) {
        return None;
    }
    Some(Match {
        matmul: m,
        outer,
        x: unfold(g, x, &leading)?,
        y: unfold(g, y, &leading)?,
    })
}

/// The ops `operand` needs before the matmul, and the variable the matmul reads.
fn emit(
    operand: Operand,
    names: &mut NameTable,
    origin: &Option<String>,
    ops: &mut Vec<Operation>,
) -> String {
    match operand {
        Operand::Unfolded(var) => var,
        Operand::Reshaped(var, sizes, ty) => {
            let hint = format!("{var}_unfolded");
            let (shape_op, shape) = new_const(
                names,
                &format!("{hint}_shape"),
                Tensor::vec_i32(&sizes),
                origin.clone(),
            );
            let name = names.fresh(&hint);
            let reshape = new_op(
                "reshape",
                &name,
                &[("x", &var), ("shape", &shape)],
                vec![Var::new(&name, ty)],
                origin.clone(),
            );
            ops.extend([shape_op, reshape]);
            name
        }
    }
}

/// Rewrites the first flattened batched matmul as one matmul over the original operands.
pub fn fuse_one(function: &mut Function, _target: Target) -> bool {
    let g = Graph::new(function);
    let Some(found) = g.first(find) else {
        return false;
    };
    let outer = g.op(found.outer);
    let mut matmul = g.op(found.matmul).clone();
    let mut names = NameTable::of_function(function);
    let mut ops = Vec::new();
    let x = emit(found.x, &mut names, &outer.origin, &mut ops);
    let y = emit(found.y, &mut names, &outer.origin, &mut ops);
    for (param, args) in &mut matmul.inputs {
        match param.as_str() {
            "x" => *args = vec![Argument::Var(x.clone())],
            "y" => *args = vec![Argument::Var(y.clone())],
            _ => {}
        }
    }
    matmul.name = outer.name.clone();
    matmul.outputs = outer.outputs.clone();
    ops.push(matmul);
    replace(function, found.outer, ops);
    true
}

#[cfg(test)]
mod tests {
    use super::super::testing::{fuse_checked, op_types};
    use crate::ir::{Builder, DType, Target, Tensor, TensorType, Var};

    /// `reshape(matmul(reshape(q), reshape(k)))` over `[2, 3, 4, 5]` × `[2, 3, 5, 6]`, with
    /// the given inner and outer shapes.
    fn flattened(x_shape: &[i32], y_shape: &[i32], out_shape: &[i32]) -> crate::ir::Function {
        let mut b = Builder::new(
            "main",
            vec![
                Var::new("q", TensorType::fixed(DType::F32, &[2, 3, 4, 5])),
                Var::new("k", TensorType::fixed(DType::F32, &[2, 3, 5, 6])),
            ],
        );
        let sx = b.constant("sx", Tensor::vec_i32(x_shape));
        let sy = b.constant("sy", Tensor::vec_i32(y_shape));
        let so = b.constant("so", Tensor::vec_i32(out_shape));
        let x = b
            .op1("reshape", "x", &[("x", &["q"]), ("shape", &[&sx])])
            .unwrap();
        let y = b
            .op1("reshape", "y", &[("x", &["k"]), ("shape", &[&sy])])
            .unwrap();
        let p = b.op1("matmul", "p", &[("x", &[&x]), ("y", &[&y])]).unwrap();
        let o = b
            .op1("reshape", "o", &[("x", &[&p]), ("shape", &[&so])])
            .unwrap();
        b.finish(vec![o])
    }

    #[test]
    fn unflattens_a_batched_matmul() {
        let f = flattened(&[6, 4, 5], &[6, -1, 6], &[2, 3, 4, -1]);
        let p = fuse_checked(f, Target::IOS17, &[("batched_matmul", 1)]);
        assert_eq!(op_types(&p), ["matmul"]);
        let op = &p.main().block.operations[0];
        assert_eq!(op.input_vars().collect::<Vec<_>>(), ["q", "k"]);
        assert_eq!(op.outputs[0].name, "o");
    }

    #[test]
    fn leaves_reshapes_that_mix_the_matrix_dims() {
        // The outer reshape regroups the product ([6, 4, 6] → [2, 3, 6, 4]).
        let f = flattened(&[6, 4, 5], &[6, 5, 6], &[2, 3, 6, 4]);
        let p = fuse_checked(f, Target::IOS17, &[]);
        assert_eq!(op_types(&p), ["reshape", "reshape", "matmul", "reshape"]);
        // The inner reshapes regroup the matrices ([6, 20, 1] × [6, 1, 30]).
        let f = flattened(&[6, 20, 1], &[6, 1, 30], &[2, 3, 20, 30]);
        let p = fuse_checked(f, Target::IOS17, &[]);
        assert_eq!(op_types(&p), ["reshape", "reshape", "matmul", "reshape"]);
    }

    #[test]
    fn unfolds_an_operand_already_in_the_folded_layout() {
        let mut b = Builder::new(
            "main",
            vec![
                Var::new("q", TensorType::fixed(DType::F32, &[2, 3, 4, 5])),
                Var::new("v", TensorType::fixed(DType::F32, &[6, 5, 7])),
            ],
        );
        let sx = b.constant("sx", Tensor::vec_i32(&[6, 4, 5]));
        let so = b.constant("so", Tensor::vec_i32(&[2, 3, 4, 7]));
        let x = b
            .op1("reshape", "x", &[("x", &["q"]), ("shape", &[&sx])])
            .unwrap();
        let p = b
            .op1("matmul", "p", &[("x", &[&x]), ("y", &["v"])])
            .unwrap();
        let o = b
            .op1("reshape", "o", &[("x", &[&p]), ("shape", &[&so])])
            .unwrap();
        let p = fuse_checked(b.finish(vec![o]), Target::IOS17, &[("batched_matmul", 1)]);
        assert_eq!(op_types(&p), ["reshape", "matmul"]);
    }
}
