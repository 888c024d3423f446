//! Matrix products for the kernels: matrixmultiply's GEMM (through ndarray), with the work
//! split across rayon workers by blocks of rows or of columns, whichever repacks less: every
//! GEMM call packs all of its operands, so splitting by rows packs `b` once per block and
//! splitting by columns packs `a` once per block.
//!
//! Each output element is computed by the same GEMM call pattern whatever the split (the split
//! only chooses which block of rows or columns a worker owns), so results do not depend on the
//! thread count.

use ndarray::linalg::general_mat_mul;
use ndarray::{Array2, ArrayView2, ArrayViewMut2, Axis};
use rayon::prelude::*;

/// Products smaller than this many multiply-adds run on the calling thread.
const PARALLEL_WORK: usize = 1 << 18;

/// `a · b` (`a`: m×k, `b`: k×n, any strides).
pub fn gemm(a: ArrayView2<f32>, b: ArrayView2<f32>) -> Array2<f32> {
    let mut c = Array2::zeros((a.nrows(), b.ncols()));
    gemm_into(a, b, c.view_mut());
    c
}

/// `c = a · b`, splitting large products across the rayon pool.
pub fn gemm_into(a: ArrayView2<f32>, b: ArrayView2<f32>, mut c: ArrayViewMut2<f32>) {
    let (m, k) = a.dim();
    let n = b.ncols();
    let workers = rayon::current_num_threads();
    if m * n * k < PARALLEL_WORK || workers == 1 {
        general_mat_mul(1.0, &a, &b, 0.0, &mut c);
        return;
    }
    // Several blocks per worker balance uneven progress; blocks stay large enough for the
    // GEMM's own tiling (matrixmultiply packs panels of 8 rows and 8 columns).
    let blocks = workers * 4;
    // Pack the smaller operand repeatedly (rows when `b`, k×n, is no larger than `a`, m×k),
    // unless there are too few columns to share out.
    if m >= n || n < blocks * 8 {
        let rows = m.div_ceil(blocks).max(8);
        c.axis_chunks_iter_mut(Axis(0), rows)
            .into_par_iter()
            .zip(a.axis_chunks_iter(Axis(0), rows).into_par_iter())
            .for_each(|(mut c, a)| general_mat_mul(1.0, &a, &b, 0.0, &mut c));
    } else {
        let cols = n.div_ceil(blocks).max(8);
        c.axis_chunks_iter_mut(Axis(1), cols)
            .into_par_iter()
            .zip(b.axis_chunks_iter(Axis(1), cols).into_par_iter())
            .for_each(|(mut c, b)| general_mat_mul(1.0, &a, &b, 0.0, &mut c));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: &Array2<f32>, b: &Array2<f32>) -> Array2<f32> {
        Array2::from_shape_fn((a.nrows(), b.ncols()), |(i, j)| {
            (0..a.ncols()).map(|p| a[[i, p]] * b[[p, j]]).sum()
        })
    }

    fn filled(rows: usize, cols: usize, seed: u32) -> Array2<f32> {
        Array2::from_shape_fn((rows, cols), |(i, j)| {
            ((i as u32 * 31 + j as u32 * 17 + seed) % 23) as f32 / 7.0 - 1.5
        })
    }

    #[test]
    fn split_products_match_the_definition() {
        // Tall (row split), wide with few rows (column split), and small (no split).
        for (m, k, n) in [(300, 70, 40), (3, 200, 900), (5, 4, 6)] {
            let (a, b) = (filled(m, k, 1), filled(k, n, 2));
            let c = gemm(a.view(), b.view());
            let want = naive(&a, &b);
            let worst = (&c - &want).iter().fold(0f32, |w, d| w.max(d.abs()));
            assert!(worst < 1e-3, "{m}x{k}x{n}: max error {worst}");
        }
    }

    #[test]
    fn results_do_not_depend_on_the_thread_count() {
        // Split by rows (tall), and by columns (wide with few rows) at 3 threads; one GEMM
        // call at 1 thread.
        for (m, k, n) in [(257, 129, 65), (20, 300, 900)] {
            let (a, b) = (filled(m, k, 3), filled(k, n, 4));
            let on = |threads| {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .unwrap()
                    .install(|| gemm(a.view(), b.view()))
            };
            assert_eq!(on(1), on(3), "{m}x{k}x{n}");
        }
    }
}
