//! Reshape chains: `reshape(r(x), shape)` where `r` is a `reshape`, `squeeze` or
//! `expand_dims` read only by that reshape → `reshape(x, shape)`. Such ops only relabel the
//! dimensions of a row-major buffer, so the last one alone decides the result. The chains come
//! from exporters (flatten after squeeze) and from the Q/K/V [`split`](super::split), whose
//! squeezes feed the per-head reshapes.

use super::graph::{arg, new_op, replace, Graph};
use crate::ir::{Function, Target};

/// Ops whose result is their input's elements in the same order under another shape.
const SHAPE_ONLY: &[&str] = &["reshape", "squeeze", "expand_dims"];

/// Fuses the first reshape reading a shape-only op that nothing else reads.
pub fn fuse_one(function: &mut Function, _target: Target) -> bool {
    let g = Graph::new(function);
    let found = g.first(|g, i| {
        let inner = g.op(i);
        if !SHAPE_ONLY.contains(&inner.op_type.as_str()) {
            return None;
        }
        let r = g.sole_reader_of(i, "reshape")?;
        let shape = arg(g.op(r), "shape")?;
        // A 0 in MIL's shape copies the input's dim there, which the chain would change.
        let copies_a_dim = g.const_value(shape)?.to_i64_vec().contains(&0);
        (!copies_a_dim).then(|| (i, r, arg(inner, "x").map(str::to_string)))
    });
    let Some((inner, r, Some(x))) = found else {
        return false;
    };
    let root = g.op(r);
    let shape = arg(root, "shape")
        .expect("matched with a shape")
        .to_string();
    let reshape = new_op(
        "reshape",
        &root.name,
        &[("x", &x), ("shape", &shape)],
        root.outputs.clone(),
        g.op(inner).origin.clone().or_else(|| root.origin.clone()),
    );
    replace(function, r, vec![reshape]);
    true
}

#[cfg(test)]
mod tests {
    use super::super::testing::{fuse_checked, op_types};
    use crate::ir::{Builder, DType, Target, Tensor, TensorType, Var};

    /// A builder whose `[3, 1, 4]` input `x` is squeezed (axis 1, the constant `axes`) into `s`.
    fn squeezed_input() -> (Builder, String, String) {
        let x = Var::new("x", TensorType::fixed(DType::F32, &[3, 1, 4]));
        let mut b = Builder::new("main", vec![x]);
        let axes = b.constant("axes", Tensor::vec_i32(&[1]));
        let inputs = [("x", &["x"][..]), ("axes", &[&axes])];
        let s = b.op1("squeeze", "s", &inputs).unwrap();
        (b, axes, s)
    }

    #[test]
    fn squeeze_expand_dims_and_reshape_chains_become_one_reshape() {
        let (mut b, axes, s) = squeezed_input();
        let e = b
            .op1("expand_dims", "e", &[("x", &[&s]), ("axes", &[&axes])])
            .unwrap();
        let shape = b.constant("shape", Tensor::vec_i32(&[2, -1]));
        let r = b
            .op1("reshape", "r", &[("x", &[&e]), ("shape", &[&shape])])
            .unwrap();
        let shape2 = b.constant("shape2", Tensor::vec_i32(&[4, 3]));
        let y = b
            .op1("reshape", "y", &[("x", &[&r]), ("shape", &[&shape2])])
            .unwrap();
        let p = fuse_checked(b.finish(vec![y]), Target::IOS15, &[("reshape", 3)]);
        assert_eq!(op_types(&p), ["reshape"]);
        let op = p.main().block.operations.last().unwrap();
        assert_eq!((op.name.as_str(), op.input_vars().next()), ("y", Some("x")));
    }

    #[test]
    fn leaves_shared_intermediates_and_reshapes_copying_a_dim() {
        let (mut b, axes, s) = squeezed_input();
        let shape = b.constant("shape", Tensor::vec_i32(&[12]));
        let r = b
            .op1("reshape", "r", &[("x", &[&s]), ("shape", &[&shape])])
            .unwrap();
        let t = b.op1("relu", "t", &[("x", &[&s])]).unwrap();
        let e = b
            .op1("expand_dims", "e", &[("x", &[&t]), ("axes", &[&axes])])
            .unwrap();
        let copy = b.constant("copy", Tensor::vec_i32(&[0, 2, 2]));
        let y = b
            .op1("reshape", "y", &[("x", &[&e]), ("shape", &[&copy])])
            .unwrap();
        let p = fuse_checked(b.finish(vec![r, y]), Target::IOS15, &[]);
        assert_eq!(
            op_types(&p),
            ["squeeze", "reshape", "relu", "expand_dims", "reshape"]
        );
    }
}
