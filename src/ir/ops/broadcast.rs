//! NumPy-style broadcasting of shapes, shared by every elementwise type rule.

use crate::ir::Dim;

/// The broadcast of two shapes, or a message naming the clash.
pub fn broadcast_shapes(a: &[Dim], b: &[Dim]) -> Result<Vec<Dim>, String> {
    let rank = a.len().max(b.len());
    let mut out = Vec::with_capacity(rank);
    for i in 0..rank {
        let da = if i + a.len() >= rank {
            Some(&a[i + a.len() - rank])
        } else {
            None
        };
        let db = if i + b.len() >= rank {
            Some(&b[i + b.len() - rank])
        } else {
            None
        };
        let d = match (da, db) {
            (Some(x), None) | (None, Some(x)) => x.clone(),
            (Some(x), Some(y)) => match (x, y) {
                (Dim::Fixed(1), other) | (other, Dim::Fixed(1)) => other.clone(),
                (x, y) if x == y => x.clone(),
                (Dim::Symbol(_), Dim::Fixed(n)) | (Dim::Fixed(n), Dim::Symbol(_)) => Dim::Fixed(*n),
                (Dim::Symbol(s), Dim::Symbol(_)) => Dim::Symbol(s.clone()),
                _ => return Err(format!("shapes {} and {} do not broadcast", fmt(a), fmt(b))),
            },
            (None, None) => unreachable!(),
        };
        out.push(d);
    }
    Ok(out)
}

fn fmt(shape: &[Dim]) -> String {
    format!(
        "[{}]",
        shape
            .iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dims(v: &[usize]) -> Vec<Dim> {
        v.iter().map(|&d| Dim::Fixed(d)).collect()
    }

    #[test]
    fn broadcasts_like_numpy() {
        assert_eq!(
            broadcast_shapes(&dims(&[2, 1, 4]), &dims(&[3, 1])).unwrap(),
            dims(&[2, 3, 4])
        );
        assert_eq!(
            broadcast_shapes(&dims(&[]), &dims(&[5])).unwrap(),
            dims(&[5])
        );
        assert!(broadcast_shapes(&dims(&[2]), &dims(&[3])).is_err());
    }
}
