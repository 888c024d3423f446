//! `LSTM`, `GRU` and `RNN`.
//!
//! With constant weights, full sequences (no `sequence_lens`, or every length the sequence
//! length), no `clip` and activations among Sigmoid/Tanh/Relu (the same for both directions of
//! a bidirectional LSTM), `LSTM` becomes MIL's `lstm`, `GRU` with `linear_before_reset = 0`
//! MIL's `gru` and `RNN` MIL's `rnn` (one op per direction for GRU and RNN, which MIL runs in
//! one direction only). Everything else is unrolled over the static sequence length into
//! `matmul` and elementwise ops: weights computed at run time, `GRU` with
//! `linear_before_reset = 1` (what torch exports: MIL's `gru` applies the reset gate before
//! the recurrent product), `clip`, the other ONNX activations (with their `activation_alpha` /
//! `activation_beta`), and `sequence_lens` (steps past a batch entry's length keep its state
//! and output zeros). `LSTM` with `input_forget = 1` is refused.

use super::{ConvertFn, Ctx, Emit, Node};
use crate::ir::{DType, Tensor};
use crate::Error;

/// Which recurrent cell a node runs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Cell {
    Lstm,
    Gru,
    Rnn,
}

impl Cell {
    /// Gates per direction (rows of `W` per hidden unit).
    fn gates(self) -> usize {
        match self {
            Cell::Lstm => 4,
            Cell::Gru => 3,
            Cell::Rnn => 1,
        }
    }

    /// The ONNX default activations of one direction.
    fn default_activations(self) -> &'static [&'static str] {
        match self {
            Cell::Lstm => &["Sigmoid", "Tanh", "Tanh"],
            Cell::Gru => &["Sigmoid", "Tanh"],
            Cell::Rnn => &["Tanh"],
        }
    }
}

/// An ONNX recurrent activation with its parameters.
#[derive(Clone, Debug, PartialEq)]
struct Act {
    name: String,
    alpha: f32,
    beta: f32,
}

impl Act {
    /// The MIL recurrent-op spelling, when the native ops can apply it.
    fn native(&self) -> Option<&'static str> {
        match self.name.as_str() {
            "Sigmoid" => Some("sigmoid"),
            "Tanh" => Some("tanh"),
            "Relu" => Some("relu"),
            _ => None,
        }
    }
}

/// Parses `activations` / `activation_alpha` / `activation_beta` as onnxruntime does: each
/// activation taking an alpha (beta) consumes the next value of the list, or its default.
fn activations(ctx: &Ctx, node: &Node, cell: Cell, dirs: usize) -> Result<Vec<Act>, Error> {
    let names: Vec<String> = match node.attr("activations") {
        Some(a) => a
            .strings
            .iter()
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect(),
        None => (0..dirs)
            .flat_map(|_| cell.default_activations().iter().map(|s| s.to_string()))
            .collect(),
    };
    let per_dir = cell.default_activations().len();
    if names.len() != per_dir * dirs {
        return Err(ctx.invalid(format!(
            "{} activations given, expected {}",
            names.len(),
            per_dir * dirs
        )));
    }
    let alphas = ctx
        .attr(node.floats("activation_alpha"))?
        .unwrap_or_default();
    let betas = ctx
        .attr(node.floats("activation_beta"))?
        .unwrap_or_default();
    let (mut alphas, mut betas) = (alphas.into_iter(), betas.into_iter());
    names
        .into_iter()
        .map(|name| {
            // (default alpha, default beta) of the activations taking them.
            let (alpha, beta) = match name.as_str() {
                "Sigmoid" | "Tanh" | "Relu" | "Softsign" | "Softplus" => (None, None),
                "Affine" => (Some(1.0), Some(0.0)),
                "LeakyRelu" => (Some(0.01), None),
                "ThresholdedRelu" | "Elu" => (Some(1.0), None),
                "ScaledTanh" => (Some(1.0), Some(1.0)),
                "HardSigmoid" => (Some(0.2), Some(0.5)),
                other => {
                    return Err(ctx.unsupported(format!("activation '{other}' is not supported")))
                }
            };
            let alpha = alpha.map(|d| alphas.next().unwrap_or(d)).unwrap_or(0.0);
            let beta = beta.map(|d| betas.next().unwrap_or(d)).unwrap_or(0.0);
            Ok(Act { name, alpha, beta })
        })
        .collect()
}

/// What one node computes, read from its attributes and input shapes.
struct Spec {
    cell: Cell,
    /// Per direction, whether it runs backward.
    backward: Vec<bool>,
    seq: usize,
    batch: usize,
    hidden: usize,
    layout: i64,
    acts: Vec<Act>,
    clip: Option<f32>,
    linear_before_reset: bool,
}

/// The hint for a variable of this node.
fn hint(base: &str, what: &str) -> String {
    format!("{base}_{what}")
}

/// `x` sliced to `[begin, begin + size)` on every axis.
fn slice(ctx: &mut Ctx, x: &str, begin: &[i64], size: &[i64], name: &str) -> Result<String, Error> {
    let b = ctx.ints(&hint(name, "begin"), begin);
    let s = ctx.ints(&hint(name, "size"), size);
    ctx.op1(
        "slice_by_size",
        name,
        &[("x", x), ("begin", &b), ("size", &s)],
    )
}

/// Entry `index` of `x` along axis 0 (the axis removed).
fn take(ctx: &mut Ctx, x: &str, index: usize, name: &str) -> Result<String, Error> {
    let i = ctx.int(&hint(name, "index"), index as i64);
    let axis = ctx.int(&hint(name, "axis"), 0);
    ctx.op1(
        "gather",
        name,
        &[("x", x), ("indices", &i), ("axis", &axis)],
    )
}

/// Gate `g` (of width `h`) of `[b, G·h]` matrix `x`.
fn gate(
    ctx: &mut Ctx,
    x: &str,
    g: usize,
    h: usize,
    batch: usize,
    name: &str,
) -> Result<String, Error> {
    slice(
        ctx,
        x,
        &[0, (g * h) as i64],
        &[batch as i64, h as i64],
        name,
    )
}

fn binary(ctx: &mut Ctx, op: &str, x: &str, y: &str, name: &str) -> Result<String, Error> {
    ctx.op1(op, name, &[("x", x), ("y", y)])
}

fn reshape(ctx: &mut Ctx, x: &str, shape: &[usize], name: &str) -> Result<String, Error> {
    let s: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
    let s = ctx.ints(&hint(name, "shape"), &s);
    ctx.op1("reshape", name, &[("x", x), ("shape", &s)])
}

fn transpose(ctx: &mut Ctx, x: &str, perm: &[i64], name: &str) -> Result<String, Error> {
    let p = ctx.ints(&hint(name, "perm"), perm);
    ctx.op1("transpose", name, &[("x", x), ("perm", &p)])
}

fn concat(ctx: &mut Ctx, values: &[String], axis: i64, name: &str) -> Result<String, Error> {
    if let [one] = values {
        return Ok(one.clone());
    }
    let a = ctx.int(&hint(name, "axis"), axis);
    let refs: Vec<&str> = values.iter().map(String::as_str).collect();
    let mut out = ctx.op_lists("concat", name, &[("values", refs), ("axis", vec![&a])])?;
    Ok(out.remove(0))
}

/// Applies ONNX activation `act` to `x`.
fn activate(ctx: &mut Ctx, act: &Act, x: &str, name: &str) -> Result<String, Error> {
    let (op, alpha, beta) = match act.name.as_str() {
        "Sigmoid" => ("sigmoid", false, false),
        "Tanh" => ("tanh", false, false),
        "Relu" => ("relu", false, false),
        "Softsign" => ("softsign", false, false),
        "Softplus" => ("softplus", false, false),
        "Affine" => ("linear_activation", true, true),
        "LeakyRelu" => ("leaky_relu", true, false),
        "ThresholdedRelu" => ("thresholded_relu", true, false),
        "Elu" => ("elu", true, false),
        "ScaledTanh" => ("scaled_tanh", true, true),
        "HardSigmoid" => ("sigmoid_hard", true, true),
        other => return Err(ctx.unsupported(format!("activation '{other}' is not supported"))),
    };
    let mut args = vec![("x", x.to_string())];
    if alpha {
        args.push(("alpha", ctx.float(&hint(name, "alpha"), act.alpha)));
    }
    if beta {
        args.push(("beta", ctx.float(&hint(name, "beta"), act.beta)));
    }
    let refs: Vec<(&str, &str)> = args.iter().map(|(p, v)| (*p, v.as_str())).collect();
    ctx.op1(op, name, &refs)
}

/// `clip` bounds applied to a gate's pre-activation, as onnxruntime does.
fn clipped(ctx: &mut Ctx, spec: &Spec, x: String, name: &str) -> Result<String, Error> {
    let Some(c) = spec.clip else { return Ok(x) };
    let lo = ctx.float(&hint(name, "lo"), -c);
    let hi = ctx.float(&hint(name, "hi"), c);
    ctx.op1("clip", name, &[("x", &x), ("alpha", &lo), ("beta", &hi)])
}

/// The node's ONNX inputs, as variables.
struct Inputs {
    /// `[s, b, I]` (layout 0).
    x: String,
    w: String,
    r: String,
    b: Option<String>,
    seq_lens: Option<String>,
    h0: Option<String>,
    c0: Option<String>,
    p: Option<String>,
}

/// The outputs of the recurrence before ONNX's layout: the sequence `[s, b, D·H]` aligned
/// with the input steps, the final hidden states `[b, D·H]` and (LSTM) cell states.
struct Outputs {
    y: String,
    h: String,
    c: Option<String>,
}

/// Zeros `[b, H]`, or direction `d` of ONNX state `[D, b, H]`.
fn initial_state(
    ctx: &mut Ctx,
    state: &Option<String>,
    d: usize,
    spec: &Spec,
    name: &str,
) -> Result<String, Error> {
    match state {
        Some(s) => take(ctx, s, d, name),
        None => Ok(ctx.constant(
            name,
            Tensor::from_f32(
                &[spec.batch, spec.hidden],
                &vec![0.0; spec.batch * spec.hidden],
            ),
        )),
    }
}

/// The unrolled recurrence: per direction and step, matmuls and elementwise ops.
fn unrolled(ctx: &mut Ctx, spec: &Spec, inp: &Inputs, base: &str) -> Result<Outputs, Error> {
    let (s, b, h) = (spec.seq, spec.batch, spec.hidden);
    let gates = spec.cell.gates();
    let per_dir = spec.cell.default_activations().len();
    // Step masks [s, b, 1]: 1 while the step is within the batch entry's sequence.
    let mask = match &inp.seq_lens {
        None => None,
        Some(lens) => {
            let lens = ctx.coerce(lens, DType::I32, &hint(base, "lens_i32"))?;
            let lens = reshape(ctx, &lens, &[1, b], &hint(base, "lens_row"))?;
            let steps: Vec<i32> = (0..s as i32).collect();
            let steps = ctx.constant(&hint(base, "steps"), Tensor::from_i32(&[s, 1], &steps));
            let within = binary(ctx, "less", &steps, &lens, &hint(base, "within"))?;
            let within = ctx.cast(&within, DType::F32, &hint(base, "within_f"))?;
            Some(reshape(ctx, &within, &[s, b, 1], &hint(base, "mask"))?)
        }
    };
    let mut seq_per_dir = Vec::new();
    let (mut finals_h, mut finals_c) = (Vec::new(), Vec::new());
    for (d, &backward) in spec.backward.iter().enumerate() {
        let n = |what: &str| format!("{base}_d{d}_{what}");
        let acts = &spec.acts[d * per_dir..(d + 1) * per_dir];
        let w = take(ctx, &inp.w, d, &n("w"))?;
        let r = take(ctx, &inp.r, d, &n("r"))?;
        let t_true = ctx.boolean(&n("true"), true);
        let t_false = ctx.boolean(&n("false"), false);
        let mut xw = ctx.op1(
            "matmul",
            &n("xw"),
            &[
                ("x", &inp.x),
                ("y", &w),
                ("transpose_x", &t_false),
                ("transpose_y", &t_true),
            ],
        )?;
        // Input bias (and, except for GRU's linear_before_reset, the recurrent bias).
        let mut rb = None;
        if let Some(bias) = &inp.b {
            let bd = take(ctx, bias, d, &n("b"))?;
            let wb = slice(ctx, &bd, &[0], &[(gates * h) as i64], &n("wb"))?;
            let rbd = slice(
                ctx,
                &bd,
                &[(gates * h) as i64],
                &[(gates * h) as i64],
                &n("rb"),
            )?;
            if spec.cell == Cell::Gru && spec.linear_before_reset {
                xw = binary(ctx, "add", &xw, &wb, &n("xwb"))?;
                rb = Some(rbd);
            } else {
                let sum = binary(ctx, "add", &wb, &rbd, &n("bsum"))?;
                xw = binary(ctx, "add", &xw, &sum, &n("xwb"))?;
            }
        }
        let peep = match &inp.p {
            Some(p) => {
                let pd = take(ctx, p, d, &n("p"))?;
                let parts = (0..3)
                    .map(|i| {
                        slice(
                            ctx,
                            &pd,
                            &[(i * h) as i64],
                            &[h as i64],
                            &n(&format!("p{i}")),
                        )
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Some(parts)
            }
            None => None,
        };
        // GRU: the recurrent weights of (z, r) and of the candidate, separately.
        let r_h = if spec.cell == Cell::Gru && !spec.linear_before_reset {
            Some(slice(
                ctx,
                &r,
                &[(2 * h) as i64, 0],
                &[h as i64, h as i64],
                &n("r_h"),
            )?)
        } else {
            None
        };
        let mut hs = initial_state(ctx, &inp.h0, d, spec, &n("h0"))?;
        let mut cs = if spec.cell == Cell::Lstm {
            Some(initial_state(ctx, &inp.c0, d, spec, &n("c0"))?)
        } else {
            None
        };
        let mut outs = vec![String::new(); s];
        let order: Vec<usize> = if backward {
            (0..s).rev().collect()
        } else {
            (0..s).collect()
        };
        for t in order {
            let m = |what: &str| format!("{base}_d{d}_t{t}_{what}");
            let xt = take(ctx, &xw, t, &m("x"))?;
            let hr = ctx.op1(
                "matmul",
                &m("hr"),
                &[
                    ("x", &hs),
                    ("y", &r),
                    ("transpose_x", &t_false),
                    ("transpose_y", &t_true),
                ],
            )?;
            let (h_new, c_new) = match spec.cell {
                Cell::Rnn => {
                    let pre = binary(ctx, "add", &xt, &hr, &m("pre"))?;
                    let pre = clipped(ctx, spec, pre, &m("clip"))?;
                    (activate(ctx, &acts[0], &pre, &m("h"))?, None)
                }
                Cell::Lstm => {
                    let c_prev = cs.clone().expect("an LSTM has a cell state");
                    let pre = binary(ctx, "add", &xt, &hr, &m("pre"))?;
                    // ONNX order i, o, f, c.
                    let mut g: Vec<String> = (0..4)
                        .map(|i| gate(ctx, &pre, i, h, b, &m(&format!("g{i}"))))
                        .collect::<Result<_, _>>()?;
                    if let Some(p) = &peep {
                        for (gi, pi) in [(0, 0), (2, 2)] {
                            let pc = binary(ctx, "mul", &p[pi], &c_prev, &m(&format!("pc{gi}")))?;
                            g[gi] = binary(ctx, "add", &g[gi], &pc, &m(&format!("gp{gi}")))?;
                        }
                    }
                    let gi = clipped(ctx, spec, g[0].clone(), &m("ci"))?;
                    let gf = clipped(ctx, spec, g[2].clone(), &m("cf"))?;
                    let gc = clipped(ctx, spec, g[3].clone(), &m("cc"))?;
                    let i = activate(ctx, &acts[0], &gi, &m("i"))?;
                    let f = activate(ctx, &acts[0], &gf, &m("f"))?;
                    let z = activate(ctx, &acts[1], &gc, &m("z"))?;
                    let fc = binary(ctx, "mul", &f, &c_prev, &m("fc"))?;
                    let iz = binary(ctx, "mul", &i, &z, &m("iz"))?;
                    let c = binary(ctx, "add", &fc, &iz, &m("c"))?;
                    let mut go = g[1].clone();
                    if let Some(p) = &peep {
                        let pc = binary(ctx, "mul", &p[1], &c, &m("pco"))?;
                        go = binary(ctx, "add", &go, &pc, &m("gpo"))?;
                    }
                    let go = clipped(ctx, spec, go, &m("co"))?;
                    let o = activate(ctx, &acts[0], &go, &m("o"))?;
                    let hc = activate(ctx, &acts[2], &c, &m("hc"))?;
                    (binary(ctx, "mul", &o, &hc, &m("h"))?, Some(c))
                }
                Cell::Gru => {
                    // ONNX order z, r, h.
                    let x_g: Vec<String> = (0..3)
                        .map(|i| gate(ctx, &xt, i, h, b, &m(&format!("x{i}"))))
                        .collect::<Result<_, _>>()?;
                    let hr = match &rb {
                        Some(rb) => binary(ctx, "add", &hr, rb, &m("hrb"))?,
                        None => hr,
                    };
                    let h_g: Vec<String> = (0..2)
                        .map(|i| gate(ctx, &hr, i, h, b, &m(&format!("h{i}"))))
                        .collect::<Result<_, _>>()?;
                    let zp = binary(ctx, "add", &x_g[0], &h_g[0], &m("zp"))?;
                    let rp = binary(ctx, "add", &x_g[1], &h_g[1], &m("rp"))?;
                    let zp = clipped(ctx, spec, zp, &m("cz"))?;
                    let rp = clipped(ctx, spec, rp, &m("cr"))?;
                    let z = activate(ctx, &acts[0], &zp, &m("z"))?;
                    let rg = activate(ctx, &acts[0], &rp, &m("r"))?;
                    let rec = match &r_h {
                        // (r ⊙ h)·R_hᵀ
                        Some(r_h) => {
                            let rh = binary(ctx, "mul", &rg, &hs, &m("rh"))?;
                            ctx.op1(
                                "matmul",
                                &m("rhr"),
                                &[
                                    ("x", &rh),
                                    ("y", r_h),
                                    ("transpose_x", &t_false),
                                    ("transpose_y", &t_true),
                                ],
                            )?
                        }
                        // r ⊙ (h·R_hᵀ + Rb_h)
                        None => {
                            let hh = gate(ctx, &hr, 2, h, b, &m("h2"))?;
                            binary(ctx, "mul", &rg, &hh, &m("rhr"))?
                        }
                    };
                    let np = binary(ctx, "add", &x_g[2], &rec, &m("np"))?;
                    let np = clipped(ctx, spec, np, &m("cn"))?;
                    let cand = activate(ctx, &acts[1], &np, &m("n"))?;
                    // h = (1 − z) ⊙ n + z ⊙ h = n + z ⊙ (h − n)
                    let diff = binary(ctx, "sub", &hs, &cand, &m("hd"))?;
                    let zd = binary(ctx, "mul", &z, &diff, &m("zd"))?;
                    (binary(ctx, "add", &cand, &zd, &m("h"))?, None)
                }
            };
            match &mask {
                None => {
                    outs[t] = h_new.clone();
                    hs = h_new;
                    cs = c_new;
                }
                Some(mask) => {
                    // Past its length an entry keeps its state and outputs zeros.
                    let mt = take(ctx, mask, t, &m("mask"))?;
                    outs[t] = binary(ctx, "mul", &h_new, &mt, &m("y"))?;
                    let keep = |ctx: &mut Ctx,
                                new: &str,
                                old: &str,
                                what: &str|
                     -> Result<String, Error> {
                        let diff = binary(ctx, "sub", new, old, &m(&format!("{what}_d")))?;
                        let step = binary(ctx, "mul", &diff, &mt, &m(&format!("{what}_m")))?;
                        binary(ctx, "add", old, &step, &m(&format!("{what}_k")))
                    };
                    hs = keep(ctx, &h_new, &hs, "hk")?;
                    if let (Some(c_new), Some(c_old)) = (c_new, cs.clone()) {
                        cs = Some(keep(ctx, &c_new, &c_old, "ck")?);
                    }
                }
            }
        }
        seq_per_dir.push(outs);
        finals_h.push(hs);
        if let Some(c) = cs {
            finals_c.push(c);
        }
    }
    let steps = (0..s)
        .map(|t| {
            let parts: Vec<String> = seq_per_dir.iter().map(|o| o[t].clone()).collect();
            concat(ctx, &parts, 1, &format!("{base}_t{t}_y"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let axis = ctx.int(&hint(base, "stack_axis"), 0);
    let refs: Vec<&str> = steps.iter().map(String::as_str).collect();
    let y = ctx
        .op_lists(
            "stack",
            &hint(base, "y_seq"),
            &[("values", refs), ("axis", vec![&axis])],
        )?
        .remove(0);
    let h = concat(ctx, &finals_h, 1, &hint(base, "h_final"))?;
    let c = if finals_c.is_empty() {
        None
    } else {
        Some(concat(ctx, &finals_c, 1, &hint(base, "c_final"))?)
    };
    Ok(Outputs { y, h, c })
}

/// Direction `d` of constant `t` (`[D, rows…]`) with its blocks of `block` values (one per gate)
/// reordered by `order`.
fn reorder(t: &Tensor, d: usize, order: &[usize]) -> Vec<f32> {
    let v = t.to_f32_vec();
    let per_dir = v.len() / t.shape()[0].max(1);
    let dir = &v[d * per_dir..(d + 1) * per_dir];
    let block = per_dir / order.len();
    order
        .iter()
        .flat_map(|&g| dir[g * block..(g + 1) * block].iter().copied())
        .collect()
}

/// The constant weights of the native path.
struct Consts {
    w: Tensor,
    r: Tensor,
    b: Option<Tensor>,
    p: Option<Tensor>,
}

/// Direction `d`'s MIL weights `(weight_ih, weight_hh, bias, peephole)` as constants, gates in
/// MIL's order (ONNX `iofc` → MIL `ifoz` for LSTM, `zrh` → `roz` for GRU).
fn native_weights(
    ctx: &mut Ctx,
    spec: &Spec,
    k: &Consts,
    d: usize,
    input: usize,
    name: &str,
) -> (String, String, Option<String>, Option<String>) {
    let h = spec.hidden;
    let order: &[usize] = match spec.cell {
        Cell::Lstm => &[0, 2, 1, 3],
        Cell::Gru => &[1, 2, 0],
        Cell::Rnn => &[0],
    };
    let g = spec.cell.gates();
    let w = ctx.constant(
        &hint(name, "weight_ih"),
        Tensor::from_f32(&[g * h, input], &reorder(&k.w, d, order)),
    );
    let r = ctx.constant(
        &hint(name, "weight_hh"),
        Tensor::from_f32(&[g * h, h], &reorder(&k.r, d, order)),
    );
    let b = k.b.as_ref().map(|b| {
        // [Wb | Rb] of this direction, summed, then reordered.
        let v = b.to_f32_vec();
        let dir = &v[d * 2 * g * h..(d + 1) * 2 * g * h];
        let sum: Vec<f32> = (0..g * h).map(|i| dir[i] + dir[g * h + i]).collect();
        let sum = Tensor::from_f32(&[1, g * h], &sum);
        ctx.constant(
            &hint(name, "bias"),
            Tensor::from_f32(&[g * h], &reorder(&sum, 0, order)),
        )
    });
    // ONNX orders the peepholes i, o, f; MIL i, f, o.
    let p = k.p.as_ref().map(|p| {
        ctx.constant(
            &hint(name, "peephole"),
            Tensor::from_f32(&[3 * h], &reorder(p, d, &[0, 2, 1])),
        )
    });
    (w, r, b, p)
}

/// ONNX state `[D, b, H]` as MIL's `[b, D·H]` (zeros when absent).
fn native_state(
    ctx: &mut Ctx,
    spec: &Spec,
    state: &Option<String>,
    d: Option<usize>,
    name: &str,
) -> Result<String, Error> {
    let (b, h) = (spec.batch, spec.hidden);
    let dirs = if d.is_some() { 1 } else { spec.backward.len() };
    match state {
        None => Ok(ctx.constant(
            name,
            Tensor::from_f32(&[b, dirs * h], &vec![0.0; b * dirs * h]),
        )),
        Some(s) => match d {
            Some(d) => take(ctx, s, d, name),
            None => {
                let t = transpose(ctx, s, &[1, 0, 2], &hint(name, "t"))?;
                reshape(ctx, &t, &[b, dirs * h], name)
            }
        },
    }
}

/// The recurrence as MIL `lstm` (one op) or `gru`/`rnn` (one op per direction).
fn native(
    ctx: &mut Ctx,
    spec: &Spec,
    inp: &Inputs,
    k: &Consts,
    input: usize,
    base: &str,
) -> Result<Outputs, Error> {
    let per_dir = spec.cell.default_activations().len();
    let act = |i: usize| spec.acts[i].native().expect("checked native activations");
    let t_true = ctx.boolean(&hint(base, "output_sequence"), true);
    let reverse_steps = |ctx: &mut Ctx, y: String, name: &str| -> Result<String, Error> {
        // MIL outputs a reverse run in processing order.
        let axes = ctx.ints(&hint(name, "axes"), &[0]);
        ctx.op1("reverse", name, &[("x", &y), ("axes", &axes)])
    };
    if spec.cell == Cell::Lstm {
        let (w, r, b, p) = native_weights(ctx, spec, k, 0, input, &hint(base, "fw"));
        let h0 = native_state(ctx, spec, &inp.h0, None, &hint(base, "h0"))?;
        let c0 = native_state(ctx, spec, &inp.c0, None, &hint(base, "c0"))?;
        let direction = match spec.backward.as_slice() {
            [false] => "forward",
            [true] => "reverse",
            _ => "bidirectional",
        };
        let dir = ctx.string(&hint(base, "direction"), direction);
        let (ra, ca, oa) = (
            ctx.string(&hint(base, "recurrent_activation"), act(0)),
            ctx.string(&hint(base, "cell_activation"), act(1)),
            ctx.string(&hint(base, "activation"), act(2)),
        );
        let mut args: Vec<(&str, String)> = vec![
            ("x", inp.x.clone()),
            ("initial_h", h0),
            ("initial_c", c0),
            ("weight_ih", w),
            ("weight_hh", r),
            ("direction", dir),
            ("output_sequence", t_true),
            ("recurrent_activation", ra),
            ("cell_activation", ca),
            ("activation", oa),
        ];
        args.extend(b.map(|b| ("bias", b)));
        args.extend(p.map(|p| ("peephole", p)));
        if direction == "bidirectional" {
            let (w, r, b, p) = native_weights(ctx, spec, k, 1, input, &hint(base, "bw"));
            args.push(("weight_ih_back", w));
            args.push(("weight_hh_back", r));
            args.extend(b.map(|b| ("bias_back", b)));
            args.extend(p.map(|p| ("peephole_back", p)));
        }
        let refs: Vec<(&str, &str)> = args.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let mut outs = ctx.op("lstm", &hint(base, "lstm"), &refs)?;
        let (c, h, mut y) = (outs.pop(), outs.pop().unwrap_or_default(), outs.remove(0));
        if direction == "reverse" {
            y = reverse_steps(ctx, y, &hint(base, "y_time"))?;
        }
        return Ok(Outputs { y, h, c });
    }
    let (mut ys, mut hs) = (Vec::new(), Vec::new());
    for (d, &backward) in spec.backward.iter().enumerate() {
        let name = format!("{base}_d{d}");
        let (w, r, b, _) = native_weights(ctx, spec, k, d, input, &name);
        let h0 = native_state(ctx, spec, &inp.h0, Some(d), &hint(&name, "h0"))?;
        let dir = ctx.string(
            &hint(&name, "direction"),
            if backward { "reverse" } else { "forward" },
        );
        let mut args: Vec<(&str, String)> = vec![
            ("x", inp.x.clone()),
            ("initial_h", h0),
            ("weight_ih", w),
            ("weight_hh", r),
            ("direction", dir),
            ("output_sequence", t_true.clone()),
        ];
        args.extend(b.map(|b| ("bias", b)));
        let op = if spec.cell == Cell::Gru {
            args.push((
                "recurrent_activation",
                ctx.string(&hint(&name, "recurrent_activation"), act(d * per_dir)),
            ));
            args.push((
                "activation",
                ctx.string(&hint(&name, "activation"), act(d * per_dir + 1)),
            ));
            "gru"
        } else {
            args.push(("activation", ctx.string(&hint(&name, "activation"), act(d))));
            "rnn"
        };
        let refs: Vec<(&str, &str)> = args.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let mut outs = ctx.op(op, &hint(&name, op), &refs)?;
        let (h, mut y) = (outs.pop().unwrap_or_default(), outs.remove(0));
        if backward {
            y = reverse_steps(ctx, y, &hint(&name, "y_time"))?;
        }
        ys.push(y);
        hs.push(h);
    }
    Ok(Outputs {
        y: concat(ctx, &ys, 2, &hint(base, "y_seq"))?,
        h: concat(ctx, &hs, 1, &hint(base, "h_final"))?,
        c: None,
    })
}

/// Whether MIL's op computes exactly what the node does: MIL's ops take constant weights and
/// full sequences; MIL's `lstm` clips the cell state where ONNX clips the gate inputs; MIL's
/// `gru` resets before the recurrent product (`linear_before_reset = 0`); its activations take
/// no parameters; a bidirectional `lstm` applies the same activations both ways.
fn fits_native(spec: &Spec, consts: &Option<Consts>, masked: bool) -> bool {
    let per_dir = spec.cell.default_activations().len();
    consts.is_some()
        && !masked
        && spec.clip.is_none()
        && !(spec.cell == Cell::Gru && spec.linear_before_reset)
        && spec.acts.iter().all(|a| a.native().is_some())
        && !(spec.cell == Cell::Lstm
            && spec.backward.len() == 2
            && spec.acts[..per_dir] != spec.acts[per_dir..])
}

/// Converts one `LSTM`, `GRU` or `RNN` node.
fn recurrent(ctx: &mut Ctx, node: &Node, cell: Cell) -> Result<(), Error> {
    let base = ctx.out_name(node, 0);
    let layout = ctx.attr(node.int_or("layout", 0))?;
    if !(0..=1).contains(&layout) {
        return Err(ctx.invalid(format!("layout {layout} must be 0 or 1")));
    }
    let direction = ctx
        .attr(node.string("direction"))?
        .unwrap_or_else(|| "forward".into());
    let backward = match direction.as_str() {
        "forward" => vec![false],
        "reverse" => vec![true],
        "bidirectional" => vec![false, true],
        other => return Err(ctx.invalid(format!("unknown direction '{other}'"))),
    };
    if cell == Cell::Lstm && ctx.attr(node.int_or("input_forget", 0))? != 0 {
        return Err(
            ctx.unsupported("input_forget = 1 (coupled input and forget gates) is not supported")
        );
    }
    let x = ctx.input(node, 0)?;
    let x_ty = ctx.ty(&x)?;
    if x_ty.dtype != DType::F32 {
        return Err(ctx.unsupported(format!("input X has type {x_ty}; only fp32 is supported")));
    }
    let x = if layout == 1 {
        transpose(ctx, &x, &[1, 0, 2], &hint(&base, "x_seq_first"))?
    } else {
        x
    };
    let shape = ctx.shape(&x)?;
    let [seq, batch, input] = shape[..] else {
        return Err(ctx.invalid(format!("X must have rank 3, has shape {shape:?}")));
    };
    let w = ctx.input(node, 1)?;
    let r = ctx.input(node, 2)?;
    let r_shape = ctx.shape(&r)?;
    let gates = cell.gates();
    let hidden = match r_shape[..] {
        [d, rows, h] if d == backward.len() && rows == gates * h => h,
        _ => {
            return Err(ctx.invalid(format!(
                "R has shape {r_shape:?}, expected [{}, {gates}·H, H]",
                backward.len()
            )))
        }
    };
    if let Some(hs) = ctx.attr(node.int("hidden_size"))? {
        if hs != hidden as i64 {
            return Err(ctx.invalid(format!(
                "hidden_size {hs} differs from R's hidden size {hidden}"
            )));
        }
    }
    let acts = activations(ctx, node, cell, backward.len())?;
    let spec = Spec {
        cell,
        backward,
        seq,
        batch,
        hidden,
        layout,
        acts,
        clip: ctx.attr(node.float("clip"))?,
        linear_before_reset: cell == Cell::Gru
            && ctx.attr(node.int_or("linear_before_reset", 0))? != 0,
    };
    // States arrive as [D, b, H] in layout 0 and [b, D, H] in layout 1.
    let state = |ctx: &mut Ctx, i: usize, what: &str| -> Result<Option<String>, Error> {
        match ctx.opt_input(node, i)? {
            Some(s) if layout == 1 => Ok(Some(transpose(ctx, &s, &[1, 0, 2], &hint(&base, what))?)),
            other => Ok(other),
        }
    };
    let seq_lens = match ctx.try_const_input(node, 4)? {
        Some(t) if t.to_i64_vec().iter().all(|&l| l == seq as i64) => None,
        Some(t) if t.to_i64_vec().iter().any(|&l| l < 0 || l > seq as i64) => {
            return Err(ctx.invalid(format!(
                "sequence_lens {:?} outside [0, {seq}]",
                t.to_i64_vec()
            )))
        }
        _ => ctx.opt_input(node, 4)?,
    };
    let lstm = cell == Cell::Lstm;
    let inputs = Inputs {
        x,
        w,
        r,
        b: ctx.opt_input(node, 3)?,
        seq_lens,
        h0: state(ctx, 5, "h0_dir_first")?,
        c0: if lstm {
            state(ctx, 6, "c0_dir_first")?
        } else {
            None
        },
        p: if lstm { ctx.opt_input(node, 7)? } else { None },
    };
    let consts = match (ctx.try_const_input(node, 1)?, ctx.try_const_input(node, 2)?) {
        (Some(w), Some(r)) => {
            let b = ctx.try_const_input(node, 3)?;
            let p = if lstm {
                ctx.try_const_input(node, 7)?
            } else {
                None
            };
            let complete =
                (b.is_some() || inputs.b.is_none()) && (p.is_some() || inputs.p.is_none());
            complete.then_some(Consts { w, r, b, p })
        }
        _ => None,
    };
    let out = match &consts {
        Some(k) if fits_native(&spec, &consts, inputs.seq_lens.is_some()) => {
            native(ctx, &spec, &inputs, k, input, &base)?
        }
        _ => unrolled(ctx, &spec, &inputs, &base)?,
    };
    // To ONNX's layouts: Y [s, D, b, H] / [b, s, D, H], states [D, b, H] / [b, D, H].
    let dirs = spec.backward.len();
    let y = reshape(
        ctx,
        &out.y,
        &[seq, batch, dirs, hidden],
        &hint(&base, "y_split"),
    )?;
    let perm: &[i64] = if spec.layout == 0 {
        &[0, 2, 1, 3]
    } else {
        &[1, 0, 2, 3]
    };
    let y = transpose(ctx, &y, perm, &ctx.out_name(node, 0))?;
    ctx.set_output(node, 0, y);
    let finals = [Some(out.h), out.c];
    for (i, f) in finals.into_iter().enumerate() {
        let Some(f) = f else { continue };
        let name = ctx.out_name(node, i + 1);
        let split = reshape(ctx, &f, &[batch, dirs, hidden], &hint(&name, "split"))?;
        let v = if spec.layout == 0 {
            transpose(ctx, &split, &[1, 0, 2], &name)?
        } else {
            split
        };
        ctx.set_output(node, i + 1, v);
    }
    Ok(())
}

fn lstm(ctx: &mut Ctx, node: &Node) -> Result<(), Error> {
    recurrent(ctx, node, Cell::Lstm)
}

fn gru(ctx: &mut Ctx, node: &Node) -> Result<(), Error> {
    recurrent(ctx, node, Cell::Gru)
}

fn rnn(ctx: &mut Ctx, node: &Node) -> Result<(), Error> {
    recurrent(ctx, node, Cell::Rnn)
}

/// This family's converters.
pub const CONVERTERS: &[(&str, ConvertFn)] = &[("LSTM", lstm), ("GRU", gru), ("RNN", rnn)];
