//! Kernels of the recurrent ops: the input projection of every step is one GEMM, then each
//! step multiplies the hidden state by the recurrent weights (one GEMM per step).

use super::{Activation, Direction};
use crate::interp::{KernelArgs, Value};
use crate::ir::ops::gemm::gemm;
use crate::ir::ops::{OpArgs, StrEnum};
use ndarray::{concatenate, s, Array2, Array3, Axis, Ix2, Ix3};

/// Parameter `name` as a float array of dimension `D`.
fn array<D: ndarray::Dimension>(
    args: &KernelArgs,
    name: &str,
) -> Result<ndarray::Array<f32, D>, String> {
    args.get(name)?
        .to_f32_array()?
        .into_dimensionality::<D>()
        .map_err(|e| format!("{name}: {e}"))
}

/// Optional vector parameter `name`, or zeros of length `n`.
fn vector(args: &KernelArgs, name: &str, n: usize) -> Result<Vec<f32>, String> {
    match args.opt(name) {
        None => Ok(vec![0.0; n]),
        Some(v) => {
            let v: Vec<f32> = v.to_f32_array()?.iter().copied().collect();
            if v.len() != n {
                return Err(format!("{name} has {} values, expected {n}", v.len()));
            }
            Ok(v)
        }
    }
}

/// Activation parameter `name`.
fn act(args: &KernelArgs, name: &str) -> Result<Activation, String> {
    Activation::parse(args.str(name)?)
}

/// One direction's weights: `w_ih` `[G·H, I]`, `w_hh` `[G·H, H]`, `bias` `[G·H]`.
struct Weights {
    w_ih: Array2<f32>,
    w_hh: Array2<f32>,
    bias: Vec<f32>,
}

impl Weights {
    /// The weights named with `suffix` (`""` or `"_back"`).
    fn read(args: &KernelArgs, suffix: &str) -> Result<Weights, String> {
        let w_ih: Array2<f32> = array::<Ix2>(args, &format!("weight_ih{suffix}"))?;
        let w_hh: Array2<f32> = array::<Ix2>(args, &format!("weight_hh{suffix}"))?;
        let bias = vector(args, &format!("bias{suffix}"), w_hh.nrows())?;
        Ok(Weights { w_ih, w_hh, bias })
    }

    /// `x·W_ihᵀ + bias` for every step: `[s, b, G·H]`.
    fn project(&self, x: &Array3<f32>) -> Result<Array3<f32>, String> {
        let (s, b, i) = x.dim();
        let flat = x
            .view()
            .into_shape_with_order((s * b, i))
            .map_err(|e| e.to_string())?;
        let mut p = gemm(flat, self.w_ih.t());
        p.rows_mut()
            .into_iter()
            .for_each(|mut row| row.iter_mut().zip(&self.bias).for_each(|(v, b)| *v += b));
        p.into_shape_with_order((s, b, self.w_hh.nrows()))
            .map_err(|e| e.to_string())
    }
}

/// The steps of one direction in processing order.
fn steps(seq: usize, backward: bool) -> Vec<usize> {
    if backward {
        (0..seq).rev().collect()
    } else {
        (0..seq).collect()
    }
}

/// The op's outputs: the hidden states of every step (`per_dir[d][k]`, in processing order)
/// laid out as MIL does, then the final states.
fn outputs(
    args: &KernelArgs,
    per_dir: Vec<Vec<Array2<f32>>>,
    finals: Vec<Vec<Array2<f32>>>,
) -> Result<Vec<Value>, String> {
    let seq = per_dir[0].len();
    let sequence = args.bool("output_sequence")?;
    let step = |k: usize| -> Result<Array2<f32>, String> {
        let parts: Vec<_> = per_dir
            .iter()
            .enumerate()
            // The backward half of a bidirectional op is aligned with the input steps.
            .map(|(d, hs)| hs[if d == 1 { seq - 1 - k } else { k }].view())
            .collect();
        concatenate(Axis(1), &parts).map_err(|e| e.to_string())
    };
    let rows: Vec<Array2<f32>> = if sequence {
        (0..seq).map(step).collect::<Result<_, _>>()?
    } else {
        let parts: Vec<_> = finals.iter().map(|f| f[0].view()).collect();
        vec![concatenate(Axis(1), &parts).map_err(|e| e.to_string())?]
    };
    let views: Vec<_> = rows.iter().map(|r| r.view()).collect();
    let y = ndarray::stack(Axis(0), &views).map_err(|e| e.to_string())?;
    let mut out = vec![Value::Float(y.into_dyn())];
    for i in 0..finals[0].len() {
        let parts: Vec<_> = finals.iter().map(|f| f[i].view()).collect();
        let state = concatenate(Axis(1), &parts).map_err(|e| e.to_string())?;
        out.push(Value::Float(state.into_dyn()));
    }
    Ok(out)
}

/// State parameter `name` `[b, D·H]`, split per direction.
fn initial(args: &KernelArgs, name: &str, directions: usize) -> Result<Vec<Array2<f32>>, String> {
    let state: Array2<f32> = array::<Ix2>(args, name)?;
    let h = state.ncols() / directions;
    Ok((0..directions)
        .map(|d| state.slice(s![.., d * h..(d + 1) * h]).to_owned())
        .collect())
}

/// Adds `h·w_hhᵀ` to `gates` `[b, G·H]`.
fn add_recurrent(gates: &mut Array2<f32>, h: &Array2<f32>, w_hh: &Array2<f32>) {
    *gates += &gemm(h.view(), w_hh.t());
}

/// `lstm`: see the family docs for the gate order, clip and peephole semantics.
pub fn lstm(args: &KernelArgs) -> Result<Vec<Value>, String> {
    let x: Array3<f32> = array::<Ix3>(args, "x")?;
    let direction = Direction::parse(args.str("direction")?)?;
    let (ra, ca, oa) = (
        act(args, "recurrent_activation")?,
        act(args, "cell_activation")?,
        act(args, "activation")?,
    );
    let clip = if args.has("clip") {
        Some(args.float("clip")? as f32)
    } else {
        None
    };
    let dirs: &[(&str, bool)] = match direction {
        Direction::Forward => &[("", false)],
        Direction::Reverse => &[("", true)],
        Direction::Bidirectional => &[("", false), ("_back", true)],
    };
    let h0 = initial(args, "initial_h", dirs.len())?;
    let c0 = initial(args, "initial_c", dirs.len())?;
    let (mut per_dir, mut finals) = (Vec::new(), Vec::new());
    for (d, &(suffix, backward)) in dirs.iter().enumerate() {
        let w = Weights::read(args, suffix)?;
        let hidden = w.w_hh.ncols();
        let peep = vector(args, &format!("peephole{suffix}"), 3 * hidden)?;
        let proj = w.project(&x)?;
        let (mut h, mut c) = (h0[d].clone(), c0[d].clone());
        let mut hs = Vec::new();
        for t in steps(x.dim().0, backward) {
            let mut g = proj.index_axis(Axis(0), t).to_owned();
            add_recurrent(&mut g, &h, &w.w_hh);
            for ((gr, mut hr), mut cr) in g.rows().into_iter().zip(h.rows_mut()).zip(c.rows_mut()) {
                for j in 0..hidden {
                    let i = ra.apply(gr[j] + peep[j] * cr[j]);
                    let f = ra.apply(gr[hidden + j] + peep[hidden + j] * cr[j]);
                    let z = ca.apply(gr[3 * hidden + j]);
                    let mut cell = f * cr[j] + i * z;
                    if let Some(clip) = clip {
                        cell = cell.clamp(-clip, clip);
                    }
                    let o = ra.apply(gr[2 * hidden + j] + peep[2 * hidden + j] * cell);
                    cr[j] = cell;
                    hr[j] = o * oa.apply(cell);
                }
            }
            hs.push(h.clone());
        }
        per_dir.push(hs);
        finals.push(vec![h, c]);
    }
    outputs(args, per_dir, finals)
}

/// The single direction of a `gru` or `rnn`: the `_back` weights belong to `lstm` alone.
fn single_direction(args: &KernelArgs) -> Result<bool, String> {
    match Direction::parse(args.str("direction")?)? {
        Direction::Forward => Ok(false),
        Direction::Reverse => Ok(true),
        Direction::Bidirectional => {
            Err(format!("{} has no bidirectional direction", args.def.name))
        }
    }
}

/// `gru`: gates `[r, o, z]`, candidate `activation(W_o·x + R_o·(r ⊙ h) + b_o)`,
/// `h = (1 − z) ⊙ o + z ⊙ h`.
pub fn gru(args: &KernelArgs) -> Result<Vec<Value>, String> {
    let x: Array3<f32> = array::<Ix3>(args, "x")?;
    let backward = single_direction(args)?;
    let (ra, oa) = (act(args, "recurrent_activation")?, act(args, "activation")?);
    let w = Weights::read(args, "")?;
    let hidden = w.w_hh.ncols();
    let w_ho = w.w_hh.slice(s![hidden..2 * hidden, ..]).to_owned();
    let proj = w.project(&x)?;
    let mut h = initial(args, "initial_h", 1)?.remove(0);
    let mut hs = Vec::new();
    for t in steps(x.dim().0, backward) {
        let g = proj.index_axis(Axis(0), t);
        let hr = gemm(h.view(), w.w_hh.t());
        let mut reset_h = h.clone();
        let mut update = Array2::<f32>::zeros(h.dim());
        for (b, row) in g.rows().into_iter().enumerate() {
            for j in 0..hidden {
                let r = ra.apply(row[j] + hr[[b, j]]);
                update[[b, j]] = ra.apply(row[2 * hidden + j] + hr[[b, 2 * hidden + j]]);
                reset_h[[b, j]] *= r;
            }
        }
        let candidate = gemm(reset_h.view(), w_ho.t());
        for b in 0..h.nrows() {
            for j in 0..hidden {
                let o = oa.apply(g[[b, hidden + j]] + candidate[[b, j]]);
                let z = update[[b, j]];
                h[[b, j]] = (1.0 - z) * o + z * h[[b, j]];
            }
        }
        hs.push(h.clone());
    }
    outputs(args, vec![hs], vec![vec![h]])
}

/// `rnn`: `h = activation(W_ih·x + W_hh·h + b)`.
pub fn rnn(args: &KernelArgs) -> Result<Vec<Value>, String> {
    let x: Array3<f32> = array::<Ix3>(args, "x")?;
    let backward = single_direction(args)?;
    let a = act(args, "activation")?;
    let w = Weights::read(args, "")?;
    let proj = w.project(&x)?;
    let mut h = initial(args, "initial_h", 1)?.remove(0);
    let mut hs = Vec::new();
    for t in steps(x.dim().0, backward) {
        let mut g = proj.index_axis(Axis(0), t).to_owned();
        add_recurrent(&mut g, &h, &w.w_hh);
        h = g.mapv(|v| a.apply(v));
        hs.push(h.clone());
    }
    outputs(args, vec![hs], vec![vec![h]])
}

#[cfg(test)]
mod tests {
    use crate::ir::ops::testing::{assert_close, floats, infer, run};
    use crate::ir::Tensor;

    fn s(v: &str) -> Tensor {
        Tensor::scalar_string(v)
    }

    #[test]
    fn rnn_forward_and_reverse_step_by_step() {
        // h' = 2x + h/2 + 1 with a linear activation.
        let inputs = |direction: &str| {
            vec![
                ("x", Tensor::from_f32(&[3, 1, 1], &[1.0, 2.0, 3.0])),
                ("initial_h", Tensor::from_f32(&[1, 1], &[0.0])),
                ("weight_ih", Tensor::from_f32(&[1, 1], &[2.0])),
                ("weight_hh", Tensor::from_f32(&[1, 1], &[0.5])),
                ("bias", Tensor::from_f32(&[1], &[1.0])),
                ("direction", s(direction)),
                ("output_sequence", Tensor::scalar_bool(true)),
                ("activation", s("linear")),
            ]
        };
        let forward = inputs("forward");
        let ty = infer("rnn", &forward).unwrap();
        let out = run("rnn", &forward, &ty);
        assert_close(&floats(&out[0]), &[3.0, 6.5, 10.25], 1e-6);
        assert_close(&floats(&out[1]), &[10.25], 1e-6);
        // Reverse reads 3, 2, 1 and outputs in that (processing) order.
        let reverse = inputs("reverse");
        let out = run("rnn", &reverse, &ty);
        assert_close(&floats(&out[0]), &[7.0, 8.5, 7.25], 1e-6);
        assert_close(&floats(&out[1]), &[7.25], 1e-6);
    }

    #[test]
    fn gru_resets_the_state_before_the_recurrent_product() {
        // Gates [r, o, z]: r = sigmoid([0, ln 3]) = [1/2, 3/4], z = 1/2, the candidate
        // x + b_o + R_o·(r ⊙ h) (r ⊙ (R_o·h) would give 4.5 for the first unit, not 5).
        let inputs = [
            ("x", Tensor::from_f32(&[1, 1, 1], &[1.0])),
            ("initial_h", Tensor::from_f32(&[1, 2], &[4.0, 2.0])),
            (
                "weight_ih",
                Tensor::from_f32(&[6, 1], &[0.0, 0.0, 1.0, 1.0, 0.0, 0.0]),
            ),
            (
                "weight_hh",
                Tensor::from_f32(
                    &[6, 2],
                    &[0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0],
                ),
            ),
            (
                "bias",
                Tensor::from_f32(&[6], &[0.0, 3f32.ln(), 0.5, 0.0, 0.0, 0.0]),
            ),
            ("activation", s("linear")),
        ];
        let ty = infer("gru", &inputs).unwrap();
        let out = run("gru", &inputs, &ty);
        // r ⊙ h = [2, 1.5]; o = [1 + 0.5 + 2 + 1.5, 1 + 1.5] = [5, 2.5]; h' = (o + h) / 2.
        assert_close(&floats(&out[0]), &[4.5, 2.25], 1e-6);
        assert_close(&floats(&out[1]), &[4.5, 2.25], 1e-6);
    }

    #[test]
    fn lstm_cell_clip_and_peephole() {
        // Zero weights: i = f = sigmoid(0) = 1/2, z = 2 (bias, linear); c = c0/2 + 1.
        let mut inputs = vec![
            ("x", Tensor::from_f32(&[1, 1, 1], &[5.0])),
            ("initial_h", Tensor::from_f32(&[1, 1], &[0.0])),
            ("initial_c", Tensor::from_f32(&[1, 1], &[1.0])),
            ("weight_ih", Tensor::from_f32(&[4, 1], &[0.0; 4])),
            ("weight_hh", Tensor::from_f32(&[4, 1], &[0.0; 4])),
            ("bias", Tensor::from_f32(&[4], &[0.0, 0.0, 0.0, 2.0])),
            ("cell_activation", s("linear")),
        ];
        let ty = infer("lstm", &inputs).unwrap();
        let out = run("lstm", &inputs, &ty);
        assert_close(&floats(&out[2]), &[1.5], 1e-6);
        assert_close(&floats(&out[1]), &[0.5 * 1.5f32.tanh()], 1e-6);
        // The clip bounds the new cell state; the output peephole reads it.
        inputs.push(("clip", Tensor::scalar_f32(1.0)));
        inputs.push(("peephole", Tensor::from_f32(&[3], &[0.0, 0.0, 2.0])));
        let out = run("lstm", &inputs, &ty);
        let o = 1.0 / (1.0 + (-2.0f32).exp());
        assert_close(&floats(&out[2]), &[1.0], 1e-6);
        assert_close(&floats(&out[0]), &[o * 1.0f32.tanh()], 1e-6);
    }

    #[test]
    fn bidirectional_lstm_aligns_the_backward_half_with_the_input() {
        // x passes straight into the cell (z = x, linear; i = 1/2, f = o = 1/2): the forward
        // direction accumulates from the start, the backward one from the end.
        let w = Tensor::from_f32(&[4, 1], &[0.0, 0.0, 0.0, 1.0]);
        let inputs = [
            ("x", Tensor::from_f32(&[2, 1, 1], &[1.0, 3.0])),
            ("initial_h", Tensor::from_f32(&[1, 2], &[0.0, 0.0])),
            ("initial_c", Tensor::from_f32(&[1, 2], &[0.0, 0.0])),
            ("weight_ih", w.clone()),
            ("weight_hh", Tensor::from_f32(&[4, 1], &[0.0; 4])),
            ("weight_ih_back", w),
            ("weight_hh_back", Tensor::from_f32(&[4, 1], &[0.0; 4])),
            ("direction", s("bidirectional")),
            ("output_sequence", Tensor::scalar_bool(true)),
            ("cell_activation", s("linear")),
            ("activation", s("linear")),
        ];
        let ty = infer("lstm", &inputs).unwrap();
        let out = run("lstm", &inputs, &ty);
        // Forward c: 0.5, 0.25 + 1.5 = 1.75; backward c: at step 1: 1.5, at step 0: 0.75 + 0.5.
        // h = c / 2.
        assert_close(&floats(&out[0]), &[0.25, 0.625, 0.875, 0.75], 1e-6);
        assert_close(&floats(&out[1]), &[0.875, 0.625], 1e-6);
    }
}
