//! Shapes for model inputs with dynamic dimensions: `--dim NAME=…` (by ONNX `dim_param` or
//! torch.export symbol) and
//! `--input-shape NAME=…` (by input), fixed, ranged or enumerated, and how they turn an ONNX
//! input declaration into a typed function input with its accepted shapes.

use crate::ir::{Dim, ShapeSet};
use std::fmt;
use std::str::FromStr;

/// The size(s) one dimension may take.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DimSize {
    /// Exactly this size.
    Fixed(usize),
    /// Any size from `lo` to `hi` inclusive (`None`: unbounded).
    Range(usize, Option<usize>),
    /// One of these sizes.
    Enumerated(Vec<usize>),
}

/// `--dim NAME=N | LO..HI | LO.. | A|B|C`: every input dimension whose `dim_param` is `name`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamedDim {
    /// The ONNX `dim_param`.
    pub name: String,
    /// What it may be.
    pub size: DimSize,
}

/// `--input-shape NAME=D0,D1,…` (each `N`, `LO..HI` or `LO..`) or `NAME=S0|S1|…` (enumerated
/// fixed shapes `D0,D1,…`): the whole shape of one input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InputShape {
    /// The input's ONNX name or its sanitised form.
    pub name: String,
    /// The shape.
    pub shape: ShapeSpec,
}

/// The shape part of an [`InputShape`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ShapeSpec {
    /// One size per dimension, each fixed or a range (never enumerated).
    Dims(Vec<DimSize>),
    /// A list of fixed shapes.
    Enumerated(Vec<Vec<usize>>),
}

impl InputShape {
    /// A fully fixed shape.
    pub fn fixed(name: &str, shape: &[usize]) -> InputShape {
        InputShape {
            name: name.to_string(),
            shape: ShapeSpec::Dims(shape.iter().map(|&n| DimSize::Fixed(n)).collect()),
        }
    }
}

/// A positive size.
fn size(s: &str, whole: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!(
            "'{s}' in '{whole}' is not a dimension size (a positive integer)"
        )),
    }
}

/// `N`, `LO..HI` or `LO..` (enumerations are parsed by the caller).
fn fixed_or_range(s: &str, whole: &str) -> Result<DimSize, String> {
    match s.split_once("..") {
        None => size(s, whole).map(DimSize::Fixed),
        Some((lo, "")) => Ok(DimSize::Range(size(lo, whole)?, None)),
        Some((lo, hi)) => {
            let (lo, hi) = (size(lo, whole)?, size(hi, whole)?);
            if lo > hi {
                return Err(format!("range {lo}..{hi} in '{whole}' is empty"));
            }
            Ok(DimSize::Range(lo, Some(hi)))
        }
    }
}

/// Splits `NAME=VALUE`.
fn assignment(s: &str) -> Result<(String, &str), String> {
    match s.split_once('=') {
        Some((name, value)) if !name.is_empty() && !value.trim().is_empty() => {
            Ok((name.to_string(), value.trim()))
        }
        _ => Err(format!("expected NAME=VALUE, got '{s}'")),
    }
}

impl FromStr for NamedDim {
    type Err = String;

    fn from_str(s: &str) -> Result<NamedDim, String> {
        let (name, value) = assignment(s)?;
        let size = if value.contains('|') {
            let sizes = value
                .split('|')
                .map(|v| size(v, s))
                .collect::<Result<Vec<_>, _>>()?;
            DimSize::Enumerated(sizes)
        } else {
            fixed_or_range(value, s)?
        };
        Ok(NamedDim { name, size })
    }
}

impl FromStr for InputShape {
    type Err = String;

    fn from_str(s: &str) -> Result<InputShape, String> {
        let (name, value) = assignment(s)?;
        let shape = if value.contains('|') {
            let shapes = value
                .split('|')
                .map(|shape| {
                    shape
                        .split(',')
                        .map(|d| size(d, s))
                        .collect::<Result<Vec<_>, _>>()
                })
                .collect::<Result<Vec<_>, _>>()?;
            if shapes.iter().any(|sh| sh.len() != shapes[0].len()) {
                return Err(format!("the shapes in '{s}' differ in rank"));
            }
            ShapeSpec::Enumerated(shapes)
        } else {
            ShapeSpec::Dims(
                value
                    .split(',')
                    .map(|d| fixed_or_range(d, s))
                    .collect::<Result<Vec<_>, _>>()?,
            )
        };
        Ok(InputShape { name, shape })
    }
}

impl fmt::Display for DimSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DimSize::Fixed(n) => write!(f, "{n}"),
            DimSize::Range(lo, Some(hi)) => write!(f, "{lo}..{hi}"),
            DimSize::Range(lo, None) => write!(f, "{lo}.."),
            DimSize::Enumerated(v) => {
                let v: Vec<String> = v.iter().map(usize::to_string).collect();
                f.write_str(&v.join("|"))
            }
        }
    }
}

/// Most shapes an input may enumerate (the product of its enumerated dimensions).
const MAX_ENUMERATED: usize = 128;

/// One declared dimension of an ONNX input: its size, or its `dim_param` (None when unnamed).
pub type Declared = Result<usize, Option<String>>;

/// An input's dims (symbols where flexible) and, when any dim is symbolic, its accepted shapes.
pub type Resolved = (Vec<Dim>, Option<ShapeSet>);

/// The resolved shape of one input: its dims (symbols where flexible) and, when any dim is
/// symbolic, the accepted shapes. `Err` is a usage message; `Ok(None)` means a dimension is
/// still dynamic (the caller reports it).
pub fn resolve(
    input: &str,
    declared: &[Declared],
    shape: Option<&ShapeSpec>,
    dims: &[NamedDim],
) -> Result<Option<Resolved>, String> {
    let symbol = |i: usize| match &declared.get(i) {
        Some(Err(Some(label))) => label.clone(),
        _ => format!("{input}_d{i}"),
    };
    let sizes: Vec<DimSize> = match shape {
        Some(ShapeSpec::Enumerated(shapes)) => {
            if !declared.is_empty() && shapes[0].len() != declared.len() {
                return Err(format!(
                    "--input-shape gives input '{input}' rank {}, but the model declares rank {}",
                    shapes[0].len(),
                    declared.len()
                ));
            }
            let dims: Vec<Dim> = (0..shapes[0].len())
                .map(|i| {
                    if shapes.iter().all(|s| s[i] == shapes[0][i]) {
                        Dim::Fixed(shapes[0][i])
                    } else {
                        Dim::Symbol(symbol(i))
                    }
                })
                .collect();
            let flexible = dims.iter().any(|d| d.fixed().is_none());
            let set = flexible.then(|| ShapeSet::Enumerated(shapes.clone()));
            return Ok(Some((dims, set)));
        }
        Some(ShapeSpec::Dims(sizes)) => {
            if !declared.is_empty() && sizes.len() != declared.len() {
                return Err(format!(
                    "--input-shape gives input '{input}' rank {}, but the model declares rank {}",
                    sizes.len(),
                    declared.len()
                ));
            }
            sizes.clone()
        }
        None => {
            let mut sizes = Vec::with_capacity(declared.len());
            for d in declared {
                match d {
                    Ok(n) => sizes.push(DimSize::Fixed(*n)),
                    Err(Some(label)) => match dims.iter().find(|d| d.name == *label) {
                        Some(d) => sizes.push(d.size.clone()),
                        None => return Ok(None),
                    },
                    Err(None) => return Ok(None),
                }
            }
            sizes
        }
    };
    let enumerated = sizes.iter().any(|s| matches!(s, DimSize::Enumerated(_)));
    let ranged = sizes.iter().any(|s| matches!(s, DimSize::Range(..)));
    if enumerated && ranged {
        return Err(format!(
            "input '{input}' would mix enumerated and ranged dimensions ({}); Core ML accepts one kind per input",
            sizes.iter().map(DimSize::to_string).collect::<Vec<_>>().join(",")
        ));
    }
    let dims: Vec<Dim> = sizes
        .iter()
        .enumerate()
        .map(|(i, s)| match s {
            DimSize::Fixed(n) => Dim::Fixed(*n),
            _ => Dim::Symbol(symbol(i)),
        })
        .collect();
    let set = if enumerated {
        let mut shapes: Vec<Vec<usize>> = vec![Vec::new()];
        for s in &sizes {
            let options = match s {
                DimSize::Fixed(n) => vec![*n],
                DimSize::Enumerated(v) => v.clone(),
                DimSize::Range(..) => unreachable!("checked above"),
            };
            shapes = shapes
                .iter()
                .flat_map(|prefix| {
                    options.iter().map(move |&n| {
                        let mut s = prefix.clone();
                        s.push(n);
                        s
                    })
                })
                .collect();
            if shapes.len() > MAX_ENUMERATED {
                return Err(format!(
                    "input '{input}' would enumerate more than {MAX_ENUMERATED} shapes"
                ));
            }
        }
        Some(ShapeSet::Enumerated(shapes))
    } else if ranged {
        Some(ShapeSet::Ranges(
            sizes
                .iter()
                .map(|s| match s {
                    DimSize::Fixed(n) => (*n, Some(*n)),
                    DimSize::Range(lo, hi) => (*lo, *hi),
                    DimSize::Enumerated(_) => unreachable!("checked above"),
                })
                .collect(),
        ))
    } else {
        None
    };
    Ok(Some((dims, set)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_dim_flags() {
        let d = |s: &str| s.parse::<NamedDim>().map(|d| (d.name, d.size));
        assert_eq!(d("seq=128"), Ok(("seq".into(), DimSize::Fixed(128))));
        assert_eq!(
            d("seq=1..512"),
            Ok(("seq".into(), DimSize::Range(1, Some(512))))
        );
        assert_eq!(d("seq=8.."), Ok(("seq".into(), DimSize::Range(8, None))));
        assert_eq!(
            d("seq=16|64|128"),
            Ok(("seq".into(), DimSize::Enumerated(vec![16, 64, 128])))
        );
        assert!(d("seq=0").unwrap_err().contains("'0'"));
        assert!(d("seq=9..3").unwrap_err().contains("empty"));
        assert!(d("seq").is_err() && d("=3").is_err() && d("seq=a..").is_err());
    }

    #[test]
    fn parses_input_shape_flags() {
        let s = |s: &str| s.parse::<InputShape>().map(|i| (i.name, i.shape));
        assert_eq!(
            s("x=1,3,224,224"),
            Ok(("x".into(), InputShape::fixed("x", &[1, 3, 224, 224]).shape))
        );
        assert_eq!(
            s("ids=1,1..512"),
            Ok((
                "ids".into(),
                ShapeSpec::Dims(vec![DimSize::Fixed(1), DimSize::Range(1, Some(512))])
            ))
        );
        assert_eq!(
            s("ids=1,64|1,128"),
            Ok((
                "ids".into(),
                ShapeSpec::Enumerated(vec![vec![1, 64], vec![1, 128]])
            ))
        );
        assert!(s("ids=1,64|128").unwrap_err().contains("rank"));
        assert!(s("ids=1,0").is_err());
    }

    #[test]
    fn resolves_declared_dims_with_dim_flags() {
        let declared: Vec<Declared> = vec![Ok(1), Err(Some("seq".into()))];
        let dim = |s: &str| vec![s.parse::<NamedDim>().unwrap()];
        assert_eq!(resolve("ids", &declared, None, &[]), Ok(None));
        let (dims, set) = resolve("ids", &declared, None, &dim("seq=1..512"))
            .unwrap()
            .unwrap();
        assert_eq!(dims, [Dim::Fixed(1), Dim::Symbol("seq".into())]);
        assert_eq!(
            set,
            Some(ShapeSet::Ranges(vec![(1, Some(1)), (1, Some(512))]))
        );
        let (dims, set) = resolve("ids", &declared, None, &dim("seq=64"))
            .unwrap()
            .unwrap();
        assert_eq!((dims, set), (vec![Dim::Fixed(1), Dim::Fixed(64)], None));
        let (_, set) = resolve("ids", &declared, None, &dim("seq=16|64"))
            .unwrap()
            .unwrap();
        assert_eq!(
            set,
            Some(ShapeSet::Enumerated(vec![vec![1, 16], vec![1, 64]]))
        );
    }

    #[test]
    fn resolves_input_shapes_and_rejects_what_core_ml_cannot_express() {
        let declared: Vec<Declared> = vec![Err(Some("b".into())), Err(None)];
        let spec = |s: &str| s.parse::<InputShape>().unwrap().shape;
        let (dims, set) = resolve("x", &declared, Some(&spec("x=1,64|2,64")), &[])
            .unwrap()
            .unwrap();
        assert_eq!(dims, [Dim::Symbol("b".into()), Dim::Fixed(64)]);
        assert_eq!(
            set,
            Some(ShapeSet::Enumerated(vec![vec![1, 64], vec![2, 64]]))
        );
        let (dims, _) = resolve("x", &declared, Some(&spec("x=1,2..")), &[])
            .unwrap()
            .unwrap();
        assert_eq!(dims[1], Dim::Symbol("x_d1".into()));
        assert!(resolve("x", &declared, Some(&spec("x=1")), &[])
            .unwrap_err()
            .contains("rank 1"));
        let declared: Vec<Declared> = vec![Err(Some("a".into())), Err(Some("b".into()))];
        let dims = ["a=1|2".parse().unwrap(), "b=1..4".parse().unwrap()];
        assert!(resolve("x", &declared, None, &dims)
            .unwrap_err()
            .contains("mix"));
    }
}
