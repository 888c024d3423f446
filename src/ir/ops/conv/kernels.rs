//! Kernels of `conv` (im2col + GEMM) and `conv_transpose` (GEMM + col2im).
//!
//! Work is split into fixed-size tasks (batch × group × a fixed block of output positions),
//! run in parallel with rayon; each output element is computed by exactly one task in the same
//! way whatever the thread count, so results do not depend on it.

use crate::interp::{KernelArgs, Value};
use crate::ir::ops::conv::{conv_attrs, conv_transpose_size, transposed_extent, ConvAttrs};
use crate::ir::ops::window::{output_size, PadType};
use crate::ir::ops::OpArgs;
use ndarray::{ArrayD, ArrayView2, IxDyn};
use rayon::prelude::*;

/// Output positions handled by one conv task.
const BLOCK: usize = 256;

/// The spatial geometry of one windowed op on a concrete input.
#[derive(Clone, Debug)]
pub(crate) struct Geometry {
    /// Input spatial sizes.
    pub input: Vec<usize>,
    /// Output spatial sizes.
    pub output: Vec<usize>,
    /// Kernel sizes.
    pub kernel: Vec<usize>,
    /// Strides.
    pub strides: Vec<usize>,
    /// Dilations.
    pub dilations: Vec<usize>,
    /// Padding before each dim.
    pub pad_begin: Vec<usize>,
    /// Padding after each dim.
    pub pad_end: Vec<usize>,
}

impl Geometry {
    /// Resolves output sizes and paddings of a forward window over `input`.
    pub fn forward(
        input: &[usize],
        axes: &[crate::ir::ops::window::Axis1],
        pad_type: PadType,
        ceil: bool,
    ) -> Result<Geometry, String> {
        let mut g = Geometry {
            input: input.to_vec(),
            output: Vec::new(),
            kernel: axes.iter().map(|a| a.kernel).collect(),
            strides: axes.iter().map(|a| a.stride).collect(),
            dilations: axes.iter().map(|a| a.dilation).collect(),
            pad_begin: Vec::new(),
            pad_end: Vec::new(),
        };
        for (&n, &a) in input.iter().zip(axes) {
            let (o, pb, pe) = output_size(n, a, pad_type, ceil)?;
            g.output.push(o);
            g.pad_begin.push(pb);
            g.pad_end.push(pe);
        }
        Ok(g)
    }

    /// Row-major strides of the input spatial dims.
    pub fn input_strides(&self) -> Vec<usize> {
        let mut s = vec![1; self.input.len()];
        for d in (0..self.input.len().saturating_sub(1)).rev() {
            s[d] = s[d + 1] * self.input[d + 1];
        }
        s
    }

    /// Per kernel position (row-major), the offset along each dim (`k * dilation`).
    pub fn kernel_offsets(&self) -> Vec<Vec<usize>> {
        let count: usize = self.kernel.iter().product();
        (0..count)
            .map(|mut kk| {
                let mut off = vec![0; self.kernel.len()];
                for d in (0..self.kernel.len()).rev() {
                    off[d] = (kk % self.kernel[d]) * self.dilations[d];
                    kk /= self.kernel[d];
                }
                off
            })
            .collect()
    }

    /// The first input coordinate (may be negative) of the window at output position `o`
    /// (row-major flat index).
    pub fn window_start(&self, mut o: usize, start: &mut [i64]) {
        for d in (0..self.output.len()).rev() {
            start[d] = ((o % self.output[d]) * self.strides[d]) as i64 - self.pad_begin[d] as i64;
            o /= self.output[d];
        }
    }

    /// Flat input index of `start + offset`, or None when outside the input.
    pub fn input_index(&self, start: &[i64], offset: &[usize], strides: &[usize]) -> Option<usize> {
        let mut flat = 0;
        for d in 0..start.len() {
            let i = start[d] + offset[d] as i64;
            if i < 0 || i >= self.input[d] as i64 {
                return None;
            }
            flat += i as usize * strides[d];
        }
        Some(flat)
    }
}

fn bias(args: &KernelArgs, channels: usize) -> Result<Vec<f32>, String> {
    match args.opt("bias") {
        None => Ok(vec![0.0; channels]),
        Some(b) => {
            let b: Vec<f32> = b.to_f32_array()?.iter().copied().collect();
            if b.len() != channels {
                return Err(format!("bias has {} values, expected {channels}", b.len()));
            }
            Ok(b)
        }
    }
}

/// The input, the weight (ranks 3 to 5, equal) and the attributes of a `conv` or
/// `conv_transpose`.
fn conv_operands(args: &KernelArgs) -> Result<(ArrayD<f32>, ArrayD<f32>, ConvAttrs), String> {
    let x = args.get("x")?.to_f32_array()?;
    let w = args.get("weight")?.to_f32_array()?;
    let (xs, ws) = (x.shape(), w.shape());
    if !(3..=5).contains(&xs.len()) || ws.len() != xs.len() {
        return Err(format!(
            "x {xs:?} must have rank 3 to 5 and weight {ws:?} the same rank"
        ));
    }
    let a = conv_attrs(args, &ws[2..])?;
    Ok((x, w, a))
}

/// `conv`.
pub fn conv(args: &KernelArgs) -> Result<Vec<Value>, String> {
    let (x, w, a) = conv_operands(args)?;
    let (xs, ws) = (x.shape().to_vec(), w.shape().to_vec());
    let g = a.groups;
    let (n, c, co, cg) = (xs[0], xs[1], ws[0], ws[1]);
    if c != cg * g || co % g != 0 {
        return Err(format!(
            "x has {c} channels and weight {ws:?} has {co} outputs: not valid for groups={g}"
        ));
    }
    let geo = Geometry::forward(&xs[2..], &a.axes, a.pad_type, false)?;
    let bias = bias(args, co)?;
    let x = x.as_standard_layout();
    let w = w.as_standard_layout();
    let out = conv_forward(
        x.as_slice().ok_or("x is not contiguous")?,
        w.as_slice().ok_or("weight is not contiguous")?,
        &bias,
        [n, c, co],
        g,
        &geo,
    )?;
    let mut shape = vec![n, co];
    shape.extend(&geo.output);
    Ok(vec![Value::Float(
        ArrayD::from_shape_vec(IxDyn(&shape), out).map_err(|e| e.to_string())?,
    )])
}

/// Convolution of `x` [n, c, in…] with `w` [co, c/g, k…]: im2col per block of output
/// positions, then one GEMM per block.
fn conv_forward(
    x: &[f32],
    w: &[f32],
    bias: &[f32],
    [n, c, co]: [usize; 3],
    groups: usize,
    geo: &Geometry,
) -> Result<Vec<f32>, String> {
    let (cg, cog) = (c / groups, co / groups);
    let kprod: usize = geo.kernel.iter().product();
    let iprod: usize = geo.input.iter().product();
    let oprod: usize = geo.output.iter().product();
    let rows = cg * kprod;
    let offsets = geo.kernel_offsets();
    let istr = geo.input_strides();
    let tasks: Vec<(usize, usize, usize)> = (0..n)
        .flat_map(|b| {
            (0..groups).flat_map(move |g| (0..oprod).step_by(BLOCK).map(move |o0| (b, g, o0)))
        })
        .collect();
    let results: Vec<Result<ndarray::Array2<f32>, String>> = tasks
        .par_iter()
        .map(|&(b, g, o0)| {
            let cols = BLOCK.min(oprod - o0);
            let mut col = vec![0f32; cols * rows];
            let mut start = vec![0i64; geo.input.len()];
            let plane0 = (b * c + g * cg) * iprod;
            for (j, row) in col.chunks_exact_mut(rows.max(1)).enumerate().take(cols) {
                geo.window_start(o0 + j, &mut start);
                for (kk, off) in offsets.iter().enumerate() {
                    if let Some(flat) = geo.input_index(&start, off, &istr) {
                        for ci in 0..cg {
                            row[ci * kprod + kk] = x[plane0 + ci * iprod + flat];
                        }
                    }
                }
            }
            let colm = ArrayView2::from_shape((cols, rows), &col).map_err(|e| e.to_string())?;
            let wg = ArrayView2::from_shape((cog, rows), &w[g * cog * rows..(g + 1) * cog * rows])
                .map_err(|e| e.to_string())?;
            Ok(wg.dot(&colm.t()))
        })
        .collect();
    let mut out = vec![0f32; n * co * oprod];
    for (&(b, g, o0), res) in tasks.iter().zip(results) {
        let res = res?;
        for (oc, row) in res.outer_iter().enumerate() {
            let ch = g * cog + oc;
            let base = (b * co + ch) * oprod + o0;
            for (dst, &v) in out[base..base + row.len()].iter_mut().zip(row.iter()) {
                *dst = v + bias[ch];
            }
        }
    }
    Ok(out)
}

/// `conv_transpose`: the gradient of `conv` with respect to its input; weight is
/// [c_in, c_out/groups, k…].
pub fn conv_transpose(args: &KernelArgs) -> Result<Vec<Value>, String> {
    let (x, w, a) = conv_operands(args)?;
    let (xs, ws) = (x.shape().to_vec(), w.shape().to_vec());
    let groups = a.groups;
    let (n, c) = (xs[0], xs[1]);
    if ws[0] != c || c % groups != 0 {
        return Err(format!(
            "x has {c} channels but weight {ws:?} expects {} (groups={groups})",
            ws[0]
        ));
    }
    let (cg, cog) = (c / groups, ws[1]);
    let co = cog * groups;
    let spatial = xs.len() - 2;
    let requested = args.opt_ints("output_shape")?.map(|v| {
        if v.len() == spatial + 2 {
            v[2..].to_vec()
        } else {
            v
        }
    });
    let mut output = Vec::with_capacity(spatial);
    let mut pad_begin = Vec::with_capacity(spatial);
    for (d, &ax) in a.axes.iter().enumerate() {
        let full = transposed_extent(xs[2 + d], ax)?;
        let out = match &requested {
            Some(r) => usize::try_from(*r.get(d).ok_or("output_shape is too short")?)
                .map_err(|e| e.to_string())?,
            None => conv_transpose_size(xs[2 + d], ax, a.pad_type)?,
        };
        pad_begin.push(match a.pad_type {
            PadType::Custom => ax.custom_pad.0,
            PadType::Valid => 0,
            PadType::Same => full.saturating_sub(out) / 2,
            PadType::SameLower => full.saturating_sub(out).div_ceil(2),
        });
        output.push(out);
    }
    let bias = bias(args, co)?;
    let geo = Geometry {
        input: xs[2..].to_vec(),
        output: output.clone(),
        kernel: ws[2..].to_vec(),
        strides: a.axes.iter().map(|x| x.stride).collect(),
        dilations: a.axes.iter().map(|x| x.dilation).collect(),
        pad_begin,
        pad_end: vec![0; spatial],
    };
    let kprod: usize = geo.kernel.iter().product();
    let iprod: usize = geo.input.iter().product();
    let oprod: usize = output.iter().product();
    let offsets = geo.kernel_offsets();
    let mut ostr = vec![1usize; spatial];
    for d in (0..spatial.saturating_sub(1)).rev() {
        ostr[d] = ostr[d + 1] * output[d + 1];
    }
    let x = x.as_standard_layout();
    let xf = x.as_slice().ok_or("x is not contiguous")?;
    let w = w.as_standard_layout();
    let wf = w.as_slice().ok_or("weight is not contiguous")?;
    let planes: Vec<(usize, usize)> = (0..n)
        .flat_map(|b| (0..groups).map(move |g| (b, g)))
        .collect();
    let blocks: Vec<Result<Vec<f32>, String>> = planes
        .par_iter()
        .map(|&(b, g)| {
            // cols[(oc, kk), i] = Σ_ci w[g*cg+ci, oc, kk] · x[b, g*cg+ci, i]
            let wg = ArrayView2::from_shape(
                (cg, cog * kprod),
                &wf[g * cg * cog * kprod..(g + 1) * cg * cog * kprod],
            )
            .map_err(|e| e.to_string())?;
            let xg = ArrayView2::from_shape(
                (cg, iprod),
                &xf[(b * c + g * cg) * iprod..(b * c + (g + 1) * cg) * iprod],
            )
            .map_err(|e| e.to_string())?;
            let cols = wg.t().dot(&xg);
            let mut out = vec![0f32; cog * oprod];
            let mut pos = vec![0i64; spatial];
            for i in 0..iprod {
                let mut rest = i;
                for d in (0..spatial).rev() {
                    pos[d] =
                        ((rest % geo.input[d]) * geo.strides[d]) as i64 - geo.pad_begin[d] as i64;
                    rest /= geo.input[d];
                }
                for (kk, off) in offsets.iter().enumerate() {
                    let mut flat = 0;
                    let inside = (0..spatial).all(|d| {
                        let o = pos[d] + off[d] as i64;
                        flat += o.max(0) as usize * ostr[d];
                        o >= 0 && o < output[d] as i64
                    });
                    if inside {
                        for oc in 0..cog {
                            out[oc * oprod + flat] += cols[[oc * kprod + kk, i]];
                        }
                    }
                }
            }
            for (oc, chunk) in out.chunks_exact_mut(oprod.max(1)).enumerate() {
                chunk.iter_mut().for_each(|v| *v += bias[g * cog + oc]);
            }
            Ok(out)
        })
        .collect();
    let mut data = Vec::with_capacity(n * co * oprod);
    for block in blocks {
        data.extend(block?);
    }
    let mut shape = vec![n, co];
    shape.extend(&output);
    Ok(vec![Value::Float(
        ArrayD::from_shape_vec(IxDyn(&shape), data).map_err(|e| e.to_string())?,
    )])
}

#[cfg(test)]
mod tests {
    use crate::ir::ops::testing::{assert_close, floats, infer, run};
    use crate::ir::{DType, Tensor, TensorType};

    fn ints(v: &[i32]) -> Tensor {
        Tensor::vec_i32(v)
    }

    /// x = 1..=16 as a 1×1×4×4 image.
    fn image() -> Tensor {
        Tensor::from_f32(
            &[1, 1, 4, 4],
            &(1..=16).map(|v| v as f32).collect::<Vec<_>>(),
        )
    }

    #[test]
    fn conv_with_padding_and_stride() {
        // 3×3 ones kernel, pad 1, stride 2: window sums at (0,0), (0,2), (2,0), (2,2).
        let w = Tensor::from_f32(&[1, 1, 3, 3], &[1.0; 9]);
        let inputs = [
            ("x", image()),
            ("weight", w),
            ("bias", Tensor::from_f32(&[1], &[0.5])),
            ("strides", ints(&[2, 2])),
            ("pad_type", Tensor::scalar_string("custom")),
            ("pad", ints(&[1, 1, 1, 1])),
        ];
        let ty = infer("conv", &inputs).unwrap();
        assert_eq!(ty[0], TensorType::fixed(DType::F32, &[1, 1, 2, 2]));
        // (0,0): 1+2+5+6 = 14; (0,2): 2+3+4+6+7+8 = 30; (2,0): 5+6+9+10+13+14 = 57;
        // (2,2): 6+7+8+10+11+12+14+15+16 = 99.
        assert_eq!(
            floats(&run("conv", &inputs, &ty)[0]),
            vec![14.5, 30.5, 57.5, 99.5]
        );
    }

    #[test]
    fn conv_with_dilation() {
        // 2×2 kernel [1, 10; 100, 1000] dilated by 2 over the 4×4 image: valid output 2×2.
        let w = Tensor::from_f32(&[1, 1, 2, 2], &[1.0, 10.0, 100.0, 1000.0]);
        let inputs = [("x", image()), ("weight", w), ("dilations", ints(&[2, 2]))];
        let ty = infer("conv", &inputs).unwrap();
        assert_eq!(ty[0], TensorType::fixed(DType::F32, &[1, 1, 2, 2]));
        // (0,0): x00 + 10 x02 + 100 x20 + 1000 x22 = 1 + 30 + 900 + 11000.
        let want = |i: usize, j: usize| {
            let x = |r: usize, c: usize| (r * 4 + c + 1) as f32;
            x(i, j) + 10.0 * x(i, j + 2) + 100.0 * x(i + 2, j) + 1000.0 * x(i + 2, j + 2)
        };
        assert_eq!(
            floats(&run("conv", &inputs, &ty)[0]),
            vec![want(0, 0), want(0, 1), want(1, 0), want(1, 1)]
        );
    }

    #[test]
    fn grouped_conv_and_same_padding() {
        // Two channels, groups 2 (depthwise), 1×3 kernels, same padding on a 1×4 row.
        let x = Tensor::from_f32(&[1, 2, 1, 4], &[1.0, 2.0, 3.0, 4.0, 10.0, 20.0, 30.0, 40.0]);
        let w = Tensor::from_f32(&[2, 1, 1, 3], &[1.0, 1.0, 1.0, 0.0, 1.0, -1.0]);
        let inputs = [
            ("x", x),
            ("weight", w),
            ("pad_type", Tensor::scalar_string("same")),
            ("groups", Tensor::scalar_i32(2)),
        ];
        let ty = infer("conv", &inputs).unwrap();
        assert_eq!(ty[0], TensorType::fixed(DType::F32, &[1, 2, 1, 4]));
        let out = floats(&run("conv", &inputs, &ty)[0]);
        assert_eq!(out, vec![3.0, 6.0, 9.0, 7.0, -10.0, -10.0, -10.0, 40.0]);
        let bad = [
            ("x", image()),
            ("weight", Tensor::from_f32(&[2, 1, 1, 1], &[1.0, 1.0])),
            ("groups", Tensor::scalar_i32(2)),
        ];
        assert!(infer("conv", &bad).unwrap_err().contains("channels"));
    }

    #[test]
    fn conv_1d_and_3d() {
        let x = Tensor::from_f32(&[1, 1, 5], &[1.0, 2.0, 3.0, 4.0, 5.0]);
        let w = Tensor::from_f32(&[1, 1, 2], &[1.0, -1.0]);
        let inputs = [("x", x), ("weight", w)];
        let ty = infer("conv", &inputs).unwrap();
        assert_eq!(floats(&run("conv", &inputs, &ty)[0]), vec![-1.0; 4]);
        let x = Tensor::from_f32(
            &[1, 1, 2, 2, 2],
            &(1..=8).map(|v| v as f32).collect::<Vec<_>>(),
        );
        let w = Tensor::from_f32(&[1, 1, 2, 2, 2], &[1.0; 8]);
        let inputs = [("x", x), ("weight", w)];
        let ty = infer("conv", &inputs).unwrap();
        assert_eq!(floats(&run("conv", &inputs, &ty)[0]), vec![36.0]);
    }

    #[test]
    fn conv_transpose_scatters_windows() {
        // 1-D: x = [1, 2], weight [1, 1, 3] = [1, 10, 100], stride 2 → length (2-1)*2+3 = 5.
        let x = Tensor::from_f32(&[1, 1, 2], &[1.0, 2.0]);
        let w = Tensor::from_f32(&[1, 1, 3], &[1.0, 10.0, 100.0]);
        let inputs = [("x", x), ("weight", w), ("strides", ints(&[2]))];
        let ty = infer("conv_transpose", &inputs).unwrap();
        assert_eq!(ty[0], TensorType::fixed(DType::F32, &[1, 1, 5]));
        assert_close(
            &floats(&run("conv_transpose", &inputs, &ty)[0]),
            &[1.0, 10.0, 102.0, 20.0, 200.0],
            0.0,
        );
    }
}
