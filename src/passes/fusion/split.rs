//! Q/K/V split: a fan of `gather` ops (one scalar index each) or `slice_by_index` ops (a
//! range of one axis each, every other axis whole) over the same input whose pieces partition
//! that axis → one `split`, followed by `squeeze` where a gather (or a squeeze mask) dropped
//! the axis. TorchScript exports of `nn.MultiheadAttention` select Q, K and V this way.

use super::graph::{arg, new_const, new_op, Graph};
use crate::ir::ops::axis::norm_axis;
use crate::ir::{Argument, Dim, Function, NameTable, Operation, Target, Tensor, Var};
use std::collections::BTreeMap;

/// One member of a fan: the op, the range `[begin, end)` it takes along the axis, and whether
/// it drops the axis.
#[derive(Clone, Copy, Debug)]
struct Piece {
    op: usize,
    begin: usize,
    end: usize,
    /// The size of the axis.
    size: usize,
    squeeze: bool,
}

/// Fuses the first fan of gathers/slices partitioning one axis of one input.
pub fn fuse_one(function: &mut Function, _target: Target) -> bool {
    let g = Graph::new(function);
    let mut fans: BTreeMap<(&str, usize), Vec<Piece>> = BTreeMap::new();
    for i in 0..function.block.operations.len() {
        if let Some((x, axis, piece)) = piece(&g, i) {
            fans.entry((x, axis)).or_default().push(piece);
        }
    }
    let Some(((x, axis), pieces)) = fans
        .into_iter()
        .find_map(|(key, pieces)| partition(pieces).map(|p| (key, p)))
    else {
        return false;
    };
    let mut names = NameTable::of_function(function);
    let first = pieces.iter().map(|p| p.op).min().expect("a fan has pieces");
    let origin = g.op(first).origin.clone();
    let x_ty = function.var_type(x).expect("a typed input").clone();
    let sizes: Vec<i32> = pieces.iter().map(|p| (p.end - p.begin) as i32).collect();
    let split_name = names.fresh(&format!("{x}_split"));
    let mut ops: Vec<Operation> = Vec::new();
    let mut constant = |hint: &str, value: Tensor, ops: &mut Vec<Operation>| {
        let (op, name) = new_const(
            &mut names,
            &format!("{split_name}_{hint}"),
            value,
            origin.clone(),
        );
        ops.push(op);
        name
    };
    let sizes_var = constant("sizes", Tensor::vec_i32(&sizes), &mut ops);
    let axis_var = constant("axis", Tensor::scalar_i32(axis as i32), &mut ops);
    let axes_var = constant("axes", Tensor::vec_i32(&[axis as i32]), &mut ops);
    let mut outputs = Vec::new();
    let mut squeezes = Vec::new();
    for p in &pieces {
        let member = g.op(p.op);
        let mut ty = x_ty.clone();
        ty.shape[axis] = Dim::Fixed(p.end - p.begin);
        if p.squeeze {
            let piece = names.fresh(&format!("{}_piece", member.name));
            outputs.push(Var::new(piece.clone(), ty));
            squeezes.push(new_op(
                "squeeze",
                &member.name,
                &[("x", &piece), ("axes", &axes_var)],
                member.outputs.clone(),
                member.origin.clone(),
            ));
        } else {
            outputs.push(member.outputs[0].clone());
        }
    }
    ops.push(new_op(
        "split",
        &split_name,
        &[("x", x), ("split_sizes", &sizes_var), ("axis", &axis_var)],
        outputs,
        origin,
    ));
    ops.extend(squeezes);
    let mut members: Vec<usize> = pieces.iter().map(|p| p.op).collect();
    members.sort_unstable();
    let block = &mut function.block.operations;
    for &i in members.iter().rev().filter(|&&i| i != first) {
        block.remove(i);
    }
    block.splice(first..=first, ops);
    true
}

/// The pieces sorted by range when two or more cover the whole axis exactly; else `None`.
fn partition(mut pieces: Vec<Piece>) -> Option<Vec<Piece>> {
    pieces.sort_by_key(|p| p.begin);
    let contiguous = pieces.windows(2).all(|w| w[0].end == w[1].begin);
    let (first, last) = (pieces.first()?, pieces.last()?);
    (pieces.len() >= 2 && first.begin == 0 && last.end == last.size && contiguous).then_some(pieces)
}

/// The constant integers bound to `param` of `op`.
fn ints(g: &Graph, op: &Operation, param: &str) -> Option<Vec<i64>> {
    Some(g.const_value(arg(op, param)?)?.to_i64_vec())
}

/// What op `i` takes of its (non-constant) input, when it is a gather or slice of one axis:
/// (input, axis, piece).
fn piece<'a>(g: &Graph<'a>, i: usize) -> Option<(&'a str, usize, Piece)> {
    let op = g.op(i);
    let x = arg(op, "x")?;
    if g.const_value(x).is_some() {
        return None;
    }
    let (axis, begin, end, squeeze) = match op.op_type.as_str() {
        "gather" => gather_piece(g, op)?,
        "slice_by_index" => slice_piece(g, op)?,
        _ => return None,
    };
    let size = g.var_type(x)?.shape[axis].fixed()?;
    Some((
        x,
        axis,
        Piece {
            op: i,
            begin,
            end,
            size,
            squeeze,
        },
    ))
}

/// The shape of the input of `op`.
fn input_dims(g: &Graph, op: &Operation) -> Option<Vec<Dim>> {
    g.var_type(arg(op, "x")?).map(|t| t.shape.clone())
}

fn gather_piece(g: &Graph, op: &Operation) -> Option<(usize, usize, usize, bool)> {
    let dims = input_dims(g, op)?;
    let index = g.const_value(arg(op, "indices")?)?;
    let batch_dims = match op.input("batch_dims") {
        Some(_) => ints(g, op, "batch_dims")?,
        None => vec![0],
    };
    let axis = match op.input("axis") {
        Some(_) => ints(g, op, "axis")?.first().copied()?,
        None => 0,
    };
    let axis = norm_axis(axis, dims.len()).ok()?;
    let n = dims[axis].fixed()? as i64;
    if !index.shape().is_empty() || batch_dims != [0] {
        return None;
    }
    let k = index.to_i64_vec()[0];
    let k = if k < 0 { k + n } else { k };
    (0..n)
        .contains(&k)
        .then_some((axis, k as usize, k as usize + 1, true))
}

fn slice_piece(g: &Graph, op: &Operation) -> Option<(usize, usize, usize, bool)> {
    let dims = input_dims(g, op)?;
    let rank = dims.len();
    let flags = |param: &str| -> Option<Vec<bool>> {
        match op.input(param) {
            Some(_) => Some(ints(g, op, param)?.iter().map(|&v| v != 0).collect()),
            None => Some(vec![false; rank]),
        }
    };
    let (begin, end) = (ints(g, op, "begin")?, ints(g, op, "end")?);
    let (begin_mask, end_mask, squeeze) = (
        flags("begin_mask")?,
        flags("end_mask")?,
        flags("squeeze_mask")?,
    );
    if let Some(Argument::Var(s)) = op.input("stride").and_then(|a| a.first()) {
        if g.const_value(s)?.to_i64_vec().iter().any(|&v| v != 1) {
            return None;
        }
    }
    if [
        begin.len(),
        end.len(),
        begin_mask.len(),
        end_mask.len(),
        squeeze.len(),
    ] != [rank; 5]
    {
        return None;
    }
    let mut taken = None;
    for j in 0..rank {
        let n = dims[j].fixed();
        let b = if begin_mask[j] {
            Some(0)
        } else {
            n.and_then(|n| clamp(begin[j], n))
        };
        let e = if end_mask[j] {
            n
        } else {
            n.and_then(|n| clamp(end[j], n))
        };
        let whole = (begin_mask[j] || begin[j] == 0) && (end_mask[j] || e.is_some() && e == n);
        if whole && !squeeze[j] {
            continue;
        }
        let (b, e) = (b?, e?);
        if taken.is_some() || b >= e || (squeeze[j] && e - b != 1) {
            return None;
        }
        taken = Some((j, b, e, squeeze[j]));
    }
    let (axis, b, e, sq) = taken?;
    (e <= dims[axis].fixed()?).then_some((axis, b, e, sq))
}

/// A slice bound in `0..=n` (negative counts from the end; past the end clamps).
fn clamp(v: i64, n: usize) -> Option<usize> {
    let n = n as i64;
    let v = if v < 0 { v + n } else { v };
    Some(v.clamp(0, n) as usize)
}

#[cfg(test)]
mod tests {
    use super::super::testing::{fuse_checked, op_types};
    use crate::ir::{Builder, DType, Function, Target, Tensor, TensorType, Var};

    fn input() -> Builder {
        Builder::new(
            "main",
            vec![Var::new("x", TensorType::fixed(DType::F32, &[3, 2, 4]))],
        )
    }

    /// Q, K, V as `gather(x, k, axis 0)` for the given indices, each read by a `relu`.
    fn gathers(indices: &[i32]) -> Function {
        let mut b = input();
        let axis = b.constant("axis", Tensor::scalar_i32(0));
        let outs: Vec<String> = indices
            .iter()
            .map(|&k| {
                let i = b.constant("i", Tensor::scalar_i32(k));
                let g = b
                    .op1(
                        "gather",
                        "g",
                        &[("x", &["x"]), ("indices", &[&i]), ("axis", &[&axis])],
                    )
                    .unwrap();
                b.op1("relu", "r", &[("x", &[&g])]).unwrap()
            })
            .collect();
        b.finish(outs)
    }

    #[test]
    fn a_fan_of_gathers_becomes_split_and_squeezes() {
        let p = fuse_checked(gathers(&[0, 2, -2]), Target::IOS15, &[("split", 1)]);
        assert_eq!(
            op_types(&p),
            ["split", "squeeze", "squeeze", "squeeze", "relu", "relu", "relu"]
        );
        fuse_checked(gathers(&[0, 1]), Target::IOS15, &[]);
        fuse_checked(gathers(&[0, 1, 1]), Target::IOS15, &[]);
    }

    #[test]
    fn slices_partitioning_the_last_axis_become_a_split() {
        let mut b = input();
        let mask = |b: &mut Builder, v: [bool; 3]| b.constant("m", Tensor::from_bool(&[3], &v));
        let mut outs = Vec::new();
        for (lo, hi, squeeze) in [(0, 1, true), (1, 3, false), (3, i32::MAX, false)] {
            let begin = b.constant("b", Tensor::vec_i32(&[0, 0, lo]));
            let end = b.constant("e", Tensor::vec_i32(&[0, 0, hi]));
            let bm = mask(&mut b, [true, true, false]);
            let em = mask(&mut b, [true, true, false]);
            let sm = mask(&mut b, [false, false, squeeze]);
            outs.push(
                b.op1(
                    "slice_by_index",
                    "s",
                    &[
                        ("x", &["x"]),
                        ("begin", &[&begin]),
                        ("end", &[&end]),
                        ("begin_mask", &[&bm]),
                        ("end_mask", &[&em]),
                        ("squeeze_mask", &[&sm]),
                    ],
                )
                .unwrap(),
            );
        }
        let p = fuse_checked(b.finish(outs), Target::IOS15, &[("split", 1)]);
        assert_eq!(op_types(&p), ["split", "squeeze"]);
    }
}
