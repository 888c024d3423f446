//! Axis arguments: a possibly negative axis (counted from the end) made an index. Type rules,
//! kernels, frontends and passes all normalise axes here.

/// Normalises `axis` (negative counts from the end) for a tensor of `rank`; an error when it
/// is out of range.
pub fn norm_axis(axis: i64, rank: usize) -> Result<usize, String> {
    let r = rank as i64;
    if axis < -r || axis >= r {
        return Err(format!("axis {axis} out of range for rank {rank}"));
    }
    Ok(if axis < 0 { axis + r } else { axis } as usize)
}

/// Normalises a list of possibly negative axes, rejecting duplicates.
pub fn norm_axes(axes: &[i64], rank: usize) -> Result<Vec<usize>, String> {
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
