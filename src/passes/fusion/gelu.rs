//! GELU, as exporters spell it:
//! - exact: `0.5 · x · (1 + erf(x / √2))` (`real_div` by √2 or `mul` by 1/√2) → `gelu` EXACT;
//! - tanh: `0.5 · x · (1 + tanh(√(2/π) · (x + 0.044715 · x³)))` (`pow(x, 3)` or `x·x·x`) →
//!   `gelu` TANH_APPROXIMATION.
//!
//! The product with `0.5 · x` may come in any association torch produces: `(x·a)·0.5`,
//! `(a·0.5)·x` or `a·(x·0.5)`, operands in either order. Constants must be within a relative
//! 1e-4 of their exact values.

use super::graph::{
    arg, close, new_const, new_op, operands, other_operand, out, split_scalar, Graph, Rewrite,
};
use crate::ir::{NameTable, Tensor};
use std::f64::consts::{FRAC_1_SQRT_2, PI, SQRT_2};

/// The coefficient of x³ in the tanh approximation.
const CUBIC: f64 = 0.044715;

/// A matched GELU: its input, mode, the `erf`/`tanh` op and the final `mul`.
struct Match<'a> {
    x: &'a str,
    mode: &'static str,
    anchor: usize,
    root: usize,
}

/// The GELU whose final `mul` is op `i`, fused into one `gelu` op, when its intermediate
/// values nothing else reads.
pub fn plan(g: &Graph, i: usize, names: &mut NameTable) -> Option<Rewrite> {
    let m = match_at(g, i)?;
    let root = g.op(m.root);
    let origin = g.op(m.anchor).origin.clone();
    let (mode_op, mode) = new_const(
        names,
        &format!("{}_mode", root.name),
        Tensor::scalar_string(m.mode),
        origin.clone(),
    );
    let gelu = new_op(
        "gelu",
        &root.name,
        &[("x", m.x), ("mode", &mode)],
        root.outputs.clone(),
        origin,
    );
    Some(Rewrite {
        root: m.root,
        ops: vec![mode_op, gelu],
    })
}

fn match_at<'a>(g: &Graph<'a>, i: usize) -> Option<Match<'a>> {
    let op = g.op(i);
    let inner = arg(op, "x")?;
    if g.sole_reader(inner) != Some(i) {
        return None;
    }
    let (x, mode) = match op.op_type.as_str() {
        "erf" => (erf_argument(g, inner)?, "EXACT"),
        "tanh" => (tanh_argument(g, inner)?, "TANH_APPROXIMATION"),
        _ => return None,
    };
    let one_plus = g.sole_reader_of(i, "add")?;
    let (f, one) = split_scalar(g, g.op(one_plus))?;
    if f != out(op) || !close(one, 1.0) {
        return None;
    }
    let root = times_half_x(g, one_plus, x)?;
    (g.op(root).outputs[0].ty.shape == g.op(i).outputs[0].ty.shape).then_some(Match {
        x,
        mode,
        anchor: i,
        root,
    })
}

/// `x` when `v` is `x / √2` or `x · (1/√2)`.
fn erf_argument<'a>(g: &Graph<'a>, v: &str) -> Option<&'a str> {
    if let Some(d) = g.producer(v, "real_div") {
        let (x, y) = operands(g.op(d))?;
        return g.scalar(y).filter(|&c| close(c, SQRT_2)).and(Some(x));
    }
    let (x, c) = split_scalar(g, g.op(g.producer(v, "mul")?))?;
    close(c, FRAC_1_SQRT_2).then_some(x)
}

/// `x` when `v` is `√(2/π) · (x + 0.044715 · x³)`, every intermediate read once.
fn tanh_argument<'a>(g: &Graph<'a>, v: &str) -> Option<&'a str> {
    let (sum, c) = split_scalar(g, g.op(g.producer(v, "mul")?))?;
    if !close(c, (2.0 / PI).sqrt()) || g.sole_reader(sum).is_none() {
        return None;
    }
    let (p, q) = operands(g.op(g.producer(sum, "add")?))?;
    [(p, q), (q, p)].into_iter().find_map(|(x, term)| {
        g.sole_reader(term)?;
        let (cube, c) = split_scalar(g, g.op(g.producer(term, "mul")?))?;
        (close(c, CUBIC) && g.sole_reader(cube).is_some() && is_cube_of(g, cube, x)).then_some(x)
    })
}

/// True when `v` is `pow(x, 3)`, `(x·x)·x` or `x·(x·x)`.
fn is_cube_of(g: &Graph, v: &str, x: &str) -> bool {
    if let Some(p) = g.producer(v, "pow") {
        return operands(g.op(p))
            .is_some_and(|(b, e)| b == x && g.scalar(e).is_some_and(|e| e == 3.0));
    }
    let Some(m) = g.producer(v, "mul") else {
        return false;
    };
    let Some(square) = other_operand(g.op(m), x) else {
        return false;
    };
    g.sole_reader(square).is_some()
        && g.producer(square, "mul")
            .and_then(|s| operands(g.op(s)))
            .is_some_and(|(a, b)| a == x && b == x)
}

/// The `mul` completing `0.5 · x · a` for the op `a` (whose output it multiplies), walking at
/// most two single-reader `mul`s.
fn times_half_x(g: &Graph, a: usize, x: &str) -> Option<usize> {
    let mut cur = a;
    let mut factors: Vec<&str> = Vec::new();
    for _ in 0..2 {
        let m = g.sole_reader_of(cur, "mul")?;
        factors.push(other_operand(g.op(m), out(g.op(cur)))?);
        let half = |v: &str| g.scalar(v).is_some_and(|c| close(c, 0.5));
        let done = match factors.as_slice() {
            [h] => {
                g.sole_reader(h) == Some(m)
                    && g.producer(h, "mul")
                        .and_then(|p| split_scalar(g, g.op(p)))
                        .is_some_and(|(v, c)| v == x && close(c, 0.5))
            }
            [p, q] => (*p == x && half(q)) || (half(p) && *q == x),
            _ => false,
        };
        if done {
            return Some(m);
        }
        cur = m;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::super::testing::{fuse_checked, op_types};
    use crate::ir::{Builder, DType, Target, Tensor, TensorType, Var};

    fn builder() -> Builder {
        Builder::new(
            "main",
            vec![Var::new("x", TensorType::fixed(DType::F32, &[2, 5]))],
        )
    }

    fn bin(b: &mut Builder, op: &str, x: &str, y: &str) -> String {
        b.op1(op, op, &[("x", &[x]), ("y", &[y])]).unwrap()
    }

    /// `1 + f(x)` followed by the product with 0.5·x in the association `order` picks.
    fn finish(mut b: Builder, f: &str, order: usize) -> crate::ir::Function {
        let one = b.constant("one", Tensor::scalar_f32(1.0));
        let half = b.constant("half", Tensor::scalar_f32(0.5));
        let a = bin(&mut b, "add", &one, f);
        let y = match order {
            0 => {
                let xa = bin(&mut b, "mul", "x", &a);
                bin(&mut b, "mul", &xa, &half)
            }
            1 => {
                let ah = bin(&mut b, "mul", &a, &half);
                bin(&mut b, "mul", "x", &ah)
            }
            _ => {
                let hx = bin(&mut b, "mul", &half, "x");
                bin(&mut b, "mul", &a, &hx)
            }
        };
        b.finish(vec![y])
    }

    #[test]
    fn fuses_the_erf_form_in_every_association() {
        for order in 0..3 {
            let mut b = builder();
            let inner = if order == 1 {
                let c = b.constant("c", Tensor::scalar_f32(std::f32::consts::FRAC_1_SQRT_2));
                bin(&mut b, "mul", "x", &c)
            } else {
                let c = b.constant(
                    "c",
                    Tensor::scalar_f32(std::f32::consts::SQRT_2 * (1.0 + 5e-5)),
                );
                bin(&mut b, "real_div", "x", &c)
            };
            let e = b.op1("erf", "erf", &[("x", &[&inner])]).unwrap();
            let p = fuse_checked(finish(b, &e, order), Target::IOS15, &[("gelu", 1)]);
            assert_eq!(op_types(&p), ["gelu"], "order {order}");
        }
    }

    /// GPT-2's spelling (`pow(x, 3)`) and `x·x·x`.
    #[test]
    fn fuses_the_tanh_form_with_either_cube() {
        for use_pow in [true, false] {
            let mut b = builder();
            let cube = if use_pow {
                let three = b.constant("three", Tensor::scalar_f32(3.0));
                bin(&mut b, "pow", "x", &three)
            } else {
                let sq = bin(&mut b, "mul", "x", "x");
                bin(&mut b, "mul", &sq, "x")
            };
            let k = b.constant("k", Tensor::scalar_f32(0.044715));
            let t = bin(&mut b, "mul", &cube, &k);
            let s = bin(&mut b, "add", "x", &t);
            let c = b.constant("c", Tensor::scalar_f32(0.797_884_6));
            let u = bin(&mut b, "mul", &c, &s);
            let th = b.op1("tanh", "tanh", &[("x", &[&u])]).unwrap();
            let p = fuse_checked(finish(b, &th, 0), Target::IOS15, &[("gelu", 1)]);
            assert_eq!(op_types(&p), ["gelu"]);
            let mode = p.main().block.operations[0].const_value().unwrap();
            assert_eq!(mode.as_string(), Some("TANH_APPROXIMATION"));
        }
    }

    #[test]
    fn leaves_wrong_constants_and_shared_intermediates() {
        let mut b = builder();
        let c = b.constant("c", Tensor::scalar_f32(1.5));
        let d = bin(&mut b, "real_div", "x", &c);
        let e = b.op1("erf", "erf", &[("x", &[&d])]).unwrap();
        let f = finish(b, &e, 0);
        fuse_checked(f, Target::IOS15, &[]);

        let mut b = builder();
        let c = b.constant(
            "c",
            Tensor::scalar_f32(std::f32::consts::SQRT_2 * (1.0 + 5e-5)),
        );
        let d = bin(&mut b, "real_div", "x", &c);
        let e = b.op1("erf", "erf", &[("x", &[&d])]).unwrap();
        let mut f = finish(b, &e, 0);
        f.block.outputs.push(e);
        fuse_checked(f, Target::IOS15, &[]);
    }
}
