//! Inputs for verification: deterministic random inputs (drawn by each input's role, see
//! [`super::roles`]) and NumPy `.npz` archives, checked against a function's input signature.

use super::roles::{input_roles, InputRole, Role};
use crate::interp::Value;
use crate::ir::{DType, Dim, Function};
use crate::util::rng::SplitMix64;
use crate::{npy, Error};
use ndarray::{ArrayD, IxDyn};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

/// One set of input values, by input name.
pub type Sample = BTreeMap<String, Value>;

/// A value range for one input: floats are drawn uniformly from `[lo, hi)`, integers from
/// `[lo, hi]`.
#[derive(Clone, Debug, PartialEq)]
pub struct InputRange {
    /// Input name (the program's, or the source model's before sanitising).
    pub name: String,
    /// Lower bound.
    pub lo: f64,
    /// Upper bound.
    pub hi: f64,
}

/// The function's input signature, e.g. `x: fp32 [1,3,224,224], ids: int32 [1,8]`.
pub fn signature(function: &Function) -> String {
    function
        .inputs
        .iter()
        .map(|v| {
            let dims: Vec<String> = v.ty.shape.iter().map(Dim::to_string).collect();
            format!("{}: {} [{}]", v.name, v.ty.dtype.name(), dims.join(","))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The input named `given` (exactly or after sanitising), if any.
fn find_input<'f>(function: &'f Function, given: &str) -> Option<&'f crate::ir::Var> {
    function
        .inputs
        .iter()
        .find(|v| v.name == given)
        .or_else(|| {
            let s = crate::ir::sanitize_name(given);
            function.inputs.iter().find(|v| v.name == s)
        })
}

/// Largest size random inputs give an unbounded flexible dimension.
pub const UNBOUNDED_CAP: usize = 512;

/// The concrete shapes random inputs of `var` take in turn: the smallest and the largest the
/// function accepts for a flexible input (unbounded dimensions capped at [`UNBOUNDED_CAP`]),
/// else its shape with any remaining symbolic dimension as 1.
pub fn concrete_shapes(function: &Function, var: &crate::ir::Var) -> Vec<Vec<usize>> {
    match function.input_shapes.get(&var.name) {
        Some(set) => {
            let (small, large) = (set.smallest(), set.largest(UNBOUNDED_CAP));
            if small == large {
                vec![small]
            } else {
                vec![small, large]
            }
        }
        None => vec![var
            .ty
            .shape
            .iter()
            .map(|d| d.fixed().unwrap_or(1))
            .collect()],
    }
}

/// The role of every input of `function` (see [`super::roles`]), `ranges` overriding them.
/// Ranges naming no input, or empty ranges, are errors (message for a usage error).
pub fn roles(function: &Function, ranges: &[InputRange]) -> Result<Vec<InputRole>, String> {
    let mut bounds: BTreeMap<&str, (f64, f64)> = BTreeMap::new();
    for r in ranges {
        let var = find_input(function, &r.name).ok_or_else(|| {
            format!(
                "--input-range names '{}', which is not an input ({})",
                r.name,
                signature(function)
            )
        })?;
        let ok = if var.ty.dtype.is_float() {
            r.lo.is_finite() && r.hi.is_finite() && r.lo < r.hi
        } else {
            r.lo.fract() == 0.0
                && r.hi.fract() == 0.0
                && r.lo <= r.hi
                && r.lo >= i32::MIN as f64
                && r.hi <= i32::MAX as f64
        };
        if !ok {
            let want = if var.ty.dtype.is_float() {
                "finite LO < HI"
            } else {
                "integers LO ≤ HI within int32"
            };
            return Err(format!(
                "--input-range {}={},{}: expected {want}",
                r.name, r.lo, r.hi
            ));
        }
        bounds.insert(&var.name, (r.lo, r.hi));
    }
    Ok(input_roles(function, &bounds))
}

/// The most random input sets one verification draws (`--verify-samples`, `--random`,
/// `--calibration-samples`).
pub const MAX_SAMPLES: usize = 10_000;

/// `samples` sets of random inputs for `function` (at least one per accepted size of a
/// flexible input: sample `i` takes each input's `i`-th [`concrete_shapes`], cyclically), each
/// input drawn as its role says (floats uniform in `[lo, hi)`, integers in `[lo, hi]`), from
/// one SplitMix64 stream seeded with `seed`, sample after sample, inputs in declaration order,
/// elements in C order. Range errors as [`roles`].
pub fn random_inputs(
    function: &Function,
    samples: usize,
    seed: u64,
    ranges: &[InputRange],
) -> Result<Vec<Sample>, String> {
    if samples > MAX_SAMPLES {
        return Err(format!(
            "{samples} random input sets: at most {MAX_SAMPLES} are drawn"
        ));
    }
    let roles = roles(function, ranges)?;
    let mut rng = SplitMix64::new(seed);
    let shapes: Vec<Vec<Vec<usize>>> = function
        .inputs
        .iter()
        .map(|v| concrete_shapes(function, v))
        .collect();
    let samples = shapes.iter().map(Vec::len).fold(samples, usize::max);
    let mut out = Vec::with_capacity(samples);
    for i in 0..samples {
        let mut sample = Sample::new();
        for ((var, role), sizes) in function.inputs.iter().zip(&roles).zip(&shapes) {
            let shape = &sizes[i % sizes.len()];
            let value = draw(&var.name, var.ty.dtype, shape, role.role, &mut rng)?;
            sample.insert(var.name.clone(), value);
        }
        out.push(sample);
    }
    Ok(out)
}

/// One random tensor of `shape` for input `name`, within `role`'s bounds.
fn draw(
    name: &str,
    dtype: DType,
    shape: &[usize],
    role: Role,
    rng: &mut SplitMix64,
) -> Result<Value, String> {
    let n = crate::ir::element_count(shape)
        .map_err(|m| format!("input '{name}' of shape {shape:?}: {m}"))?;
    let (lo, hi) = role.bounds();
    let dim = IxDyn(shape);
    Ok(if dtype.is_float() {
        let data = (0..n)
            .map(|_| {
                let v = (lo + (hi - lo) * rng.next_unit()) as f32;
                if (v as f64) < hi {
                    v
                } else {
                    lo as f32
                }
            })
            .collect();
        Value::Float(ArrayD::from_shape_vec(dim, data).map_err(|e| e.to_string())?)
    } else if dtype == DType::Bool {
        let data = (0..n).map(|_| rng.next_u64() >> 63 == 1).collect();
        Value::Bool(ArrayD::from_shape_vec(dim, data).map_err(|e| e.to_string())?)
    } else if dtype.is_int() {
        let span = (hi - lo) as u64 + 1;
        let data = (0..n)
            .map(|_| (lo as i64 + rng.below(span) as i64) as i32)
            .collect();
        Value::Int(ArrayD::from_shape_vec(dim, data).map_err(|e| e.to_string())?)
    } else {
        return Err(format!(
            "input '{name}' is {}: random values of that type are not supported; pass --inputs",
            dtype.name()
        ));
    })
}

/// Reads a NumPy `.npz` archive (`np.savez` or `np.savez_compressed`): member `NAME.npy`
/// becomes input `NAME`.
pub fn read_npz(path: &Path) -> Result<BTreeMap<String, Value>, Error> {
    Ok(read_npz_typed(path)?
        .into_iter()
        .map(|(name, (value, _))| (name, value))
        .collect())
}

/// [`read_npz`] with each member's element type.
fn read_npz_typed(path: &Path) -> Result<BTreeMap<String, (Value, npy::Dtype)>, Error> {
    let file = crate::input_file::open(path).map_err(|e| crate::input_file::error(path, e))?;
    let mut archive = zip::ZipArchive::new(std::io::BufReader::new(file))
        .map_err(|e| Error::invalid(path, format!("not an .npz archive: {e}")))?;
    let mut values = BTreeMap::new();
    for i in 0..archive.len() {
        let mut member = archive
            .by_index(i)
            .map_err(|e| Error::invalid(path, format!("member {i}: {e}")))?;
        if member.is_dir() {
            continue;
        }
        let name = member
            .name()
            .map_err(|e| Error::invalid(path, format!("member {i}: {e}")))?
            .into_owned();
        let input = name.strip_suffix(".npy").unwrap_or(&name).to_string();
        let mut bytes = Vec::new();
        member
            .read_to_end(&mut bytes)
            .map_err(|e| Error::invalid(path, format!("{name}: {e}")))?;
        let value = npy::parse_with_dtype(&bytes)
            .map_err(|e| Error::invalid(path, format!("{name}: {e}")))?;
        values.insert(input, value);
    }
    Ok(values)
}

/// The input set for `function` in the `.npz` archive at `path` (see [`read_npz`] and
/// [`match_inputs`]); a float member must also have the input's own float type (float32 for
/// fp32, float16 for fp16). Errors are invalid input naming the archive.
pub fn read_sample(path: &Path, function: &Function) -> Result<Sample, Error> {
    let mut values = BTreeMap::new();
    for (name, (value, dtype)) in read_npz_typed(path)? {
        if let (Some(var), 'f') = (find_input(function, &name), dtype.kind) {
            let wanted = match var.ty.dtype {
                DType::F16 => 2,
                DType::F32 => 4,
                _ => dtype.size,
            };
            if dtype.size != wanted {
                return Err(Error::invalid(
                    path,
                    format!(
                        "'{name}' holds {dtype} values, input {} is {} (expects {})",
                        var.name,
                        var.ty.dtype.name(),
                        signature(function)
                    ),
                ));
            }
        }
        values.insert(name, value);
    }
    match_inputs(function, values).map_err(|m| Error::invalid(path, m))
}

/// Matches named values to `function`'s inputs (names exact or sanitised): every input must
/// be given once with its element kind and shape, and nothing else. The error lists the
/// expected signature.
pub fn match_inputs(function: &Function, given: BTreeMap<String, Value>) -> Result<Sample, String> {
    let sig = signature(function);
    let mut sample = Sample::new();
    for (name, value) in given {
        let var = find_input(function, &name)
            .ok_or_else(|| format!("'{name}' is not an input (expects {sig})"))?;
        let dtype = var.ty.dtype;
        let kind_ok = match &value {
            Value::Float(_) => dtype.is_float(),
            Value::Int(_) => dtype.is_int(),
            Value::Bool(_) => dtype == DType::Bool,
            Value::Str(_) => dtype == DType::String,
        };
        if !kind_ok {
            return Err(format!(
                "'{name}' holds {} values, input {} is {} (expects {sig})",
                value.kind(),
                var.name,
                dtype.name()
            ));
        }
        if let Some(set) = function.input_shapes.get(&var.name) {
            if !set.admits(value.shape()) {
                return Err(format!(
                    "'{name}' has shape {:?}, input {} accepts {set} (expects {sig})",
                    value.shape(),
                    var.name
                ));
            }
        }
        let shape_ok = value.shape().len() == var.ty.rank()
            && var
                .ty
                .shape
                .iter()
                .zip(value.shape())
                .all(|(d, &n)| d.fixed().is_none_or(|f| f == n));
        if !shape_ok {
            return Err(format!(
                "'{name}' has shape {:?}, input {} needs {} (expects {sig})",
                value.shape(),
                var.name,
                var.ty
            ));
        }
        if sample.insert(var.name.clone(), value).is_some() {
            return Err(format!("input {} is given twice (expects {sig})", var.name));
        }
    }
    if let Some(missing) = function
        .inputs
        .iter()
        .find(|v| !sample.contains_key(&v.name))
    {
        return Err(format!("input {} is missing (expects {sig})", missing.name));
    }
    Ok(sample)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{Block, TensorType, Var};

    fn function() -> Function {
        Function {
            name: "main".into(),
            inputs: vec![
                Var::new("x", TensorType::fixed(DType::F32, &[2, 3])),
                Var::new("ids", TensorType::fixed(DType::I32, &[4])),
            ],
            states: Vec::new(),
            input_shapes: Default::default(),
            block: Block::default(),
        }
    }

    #[test]
    fn splitmix64_matches_the_reference_sequence() {
        // First outputs of SplitMix64 seeded with 0 (Vigna's reference implementation).
        let mut r = SplitMix64::new(0);
        assert_eq!(r.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(r.next_u64(), 0x6E78_9E6A_A1B9_65F4);
    }

    #[test]
    fn random_inputs_are_deterministic_and_in_range() {
        let f = function();
        let ranges = [InputRange {
            name: "ids".into(),
            lo: 3.0,
            hi: 5.0,
        }];
        let a = random_inputs(&f, 2, 7, &ranges).unwrap();
        assert_eq!(a, random_inputs(&f, 2, 7, &ranges).unwrap());
        assert_ne!(a, random_inputs(&f, 2, 8, &ranges).unwrap());
        assert_ne!(a[0], a[1]);
        let x = a[0]["x"].float().unwrap();
        assert_eq!(x.shape(), &[2, 3]);
        assert!(x.iter().all(|&v| (-1.0..1.0).contains(&v)));
        let ids = a[0]["ids"].int().unwrap();
        assert!(ids.iter().all(|&v| (3..=5).contains(&v)));
        let all: Vec<i32> = (0..50)
            .flat_map(|s| {
                random_inputs(&f, 1, s, &ranges).unwrap()[0]["ids"]
                    .int()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        assert!(
            [3, 4, 5].iter().all(|v| all.contains(v)),
            "both ends of an integer range are drawn"
        );
    }

    #[test]
    fn bad_ranges_are_rejected() {
        let f = function();
        let range = |name: &str, lo, hi| {
            [InputRange {
                name: name.into(),
                lo,
                hi,
            }]
        };
        assert!(random_inputs(&f, 1, 0, &range("nope", 0.0, 1.0))
            .unwrap_err()
            .contains("x: fp32 [2,3], ids: int32 [4]"));
        assert!(random_inputs(&f, 1, 0, &range("x", 1.0, 1.0)).is_err());
        assert!(random_inputs(&f, 1, 0, &range("ids", 0.5, 3.0)).is_err());
    }

    #[test]
    fn given_inputs_must_match_the_signature() {
        let f = function();
        let x = Value::Float(ArrayD::zeros(IxDyn(&[2, 3])));
        let ids = Value::Int(ArrayD::zeros(IxDyn(&[4])));
        let ok = BTreeMap::from([
            ("x".to_string(), x.clone()),
            ("ids".to_string(), ids.clone()),
        ]);
        assert_eq!(match_inputs(&f, ok).unwrap().len(), 2);
        let missing = match_inputs(&f, BTreeMap::from([("x".to_string(), x.clone())])).unwrap_err();
        assert!(
            missing.contains("ids is missing") && missing.contains("x: fp32 [2,3]"),
            "{missing}"
        );
        let wrong_kind = BTreeMap::from([
            ("x".to_string(), ids.clone()),
            ("ids".to_string(), ids.clone()),
        ]);
        assert!(match_inputs(&f, wrong_kind)
            .unwrap_err()
            .contains("holds int values"));
        let wrong_shape = BTreeMap::from([
            ("x".to_string(), Value::Float(ArrayD::zeros(IxDyn(&[3, 2])))),
            ("ids".to_string(), ids),
        ]);
        assert!(match_inputs(&f, wrong_shape)
            .unwrap_err()
            .contains("shape [3, 2]"));
    }
}
