//! Shapes: ranks, dimension limits and short last axes.

use super::super::{Hit, Subject};
use super::values;
use crate::ir::TensorType;

/// Largest dimension the Neural Engine is reported to handle (spatial and sequence axes).
const DIM_LIMIT: usize = 16_384;
/// Largest channel dimension (axis 1 of a rank-4 tensor) it is reported to handle.
const CHANNEL_LIMIT: usize = 65_536;
/// The Neural Engine pads the last axis of a tensor to this many bytes.
const LAST_AXIS_ALIGNMENT: usize = 64;
/// Bytes per element on the Neural Engine (fp16).
const ANE_ELEMENT_BYTES: usize = 2;
/// A padded last axis is reported when it multiplies the memory by at least this ...
const PADDING_FACTOR: usize = 4;
/// ... and the padded tensor takes at least this many bytes.
const PADDED_BYTES_FLOOR: usize = 1 << 20;

/// `rank-above-4`: rank-5 values.
pub fn rank_5(subject: &Subject) -> Vec<Hit> {
    ranks(subject, |r| r == 5)
}

/// `rank-above-5`: values of rank 6 or more.
pub fn rank_above_5(subject: &Subject) -> Vec<Hit> {
    ranks(subject, |r| r > 5)
}

fn ranks(subject: &Subject, flagged: impl Fn(usize) -> bool) -> Vec<Hit> {
    values(subject)
        .filter(|(_, _, ty)| flagged(ty.rank()))
        .map(|(place, what, ty)| {
            Hit::new(place, format!("{what} value {ty} has rank {}", ty.rank()))
        })
        .collect()
}

/// `dim-above-limit`: fixed dimensions above [`DIM_LIMIT`], or above [`CHANNEL_LIMIT`] on
/// the channel axis of a rank-4 value.
pub fn dims_above_limit(subject: &Subject) -> Vec<Hit> {
    let mut hits = Vec::new();
    for (place, what, ty) in values(subject) {
        for (axis, dim) in ty.shape.iter().enumerate() {
            let Some(size) = dim.fixed() else { continue };
            let (limit, kind) = match (ty.rank(), axis) {
                (4, 1) => (CHANNEL_LIMIT, "channel"),
                _ => (DIM_LIMIT, "dimension"),
            };
            if size > limit {
                hits.push(Hit::new(
                    place.clone(),
                    format!("{what} value {ty}: {kind} axis {axis} of {size} is above {limit}"),
                ));
            }
        }
    }
    hits
}

/// `tiny-last-axis`: float values whose last axis, padded to [`LAST_AXIS_ALIGNMENT`] bytes at
/// fp16, takes at least [`PADDING_FACTOR`] times its size and [`PADDED_BYTES_FLOOR`] bytes.
pub fn tiny_last_axis(subject: &Subject) -> Vec<Hit> {
    values(subject)
        .filter_map(|(place, what, ty)| {
            let (padded, actual) = padded_bytes(ty)?;
            (padded >= PADDING_FACTOR * actual && padded >= PADDED_BYTES_FLOOR).then(|| {
                Hit::new(
                    place,
                    format!(
                        "{what} value {ty}: its last axis is padded to {LAST_AXIS_ALIGNMENT} bytes, \
                         {:.1} MiB instead of {:.1} MiB",
                        padded as f64 / (1 << 20) as f64,
                        actual as f64 / (1 << 20) as f64
                    ),
                )
            })
        })
        .collect()
}

/// A float value of static shape and rank 2 or more: its bytes at fp16 with the last axis
/// padded, and without.
fn padded_bytes(ty: &TensorType) -> Option<(usize, usize)> {
    if !ty.dtype.is_float() || ty.rank() < 2 {
        return None;
    }
    let shape = ty.static_shape()?;
    let last = *shape.last()?;
    let rows: usize = shape[..shape.len() - 1].iter().product();
    let row_bytes = last * ANE_ELEMENT_BYTES;
    let padded_row = row_bytes.div_ceil(LAST_AXIS_ALIGNMENT).max(1) * LAST_AXIS_ALIGNMENT;
    Some((rows * padded_row, rows * row_bytes))
}
