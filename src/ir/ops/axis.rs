//! Axis arguments: a possibly negative axis (counted from the end) made an index.

/// Normalises a possibly negative axis for a tensor of `rank`.
pub(crate) fn norm_axis(axis: i64, rank: usize) -> Result<usize, String> {
    crate::ir::ops::InferArgs::axis(axis, rank)
}

/// Normalises a list of possibly negative axes, rejecting duplicates.
pub(crate) fn norm_axes(axes: &[i64], rank: usize) -> Result<Vec<usize>, String> {
    let mut out = Vec::with_capacity(axes.len());
    for &a in axes {
        let a = norm_axis(a, rank)?;
        if out.contains(&a) {
            return Err(format!("axis {a} is listed twice in {axes:?}"));
        }
        out.push(a);
    }
    Ok(out)
}
