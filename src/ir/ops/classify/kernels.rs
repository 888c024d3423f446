//! The `classify` kernel.

use crate::interp::{KernelArgs, Value};
use ndarray::{ArrayD, IxDyn};

/// `classify`: the class of the highest probability (the first on a tie; NaNs never win) and
/// the probabilities as a vector in class order.
pub fn classify(a: &KernelArgs) -> Result<Vec<Value>, String> {
    let probabilities: Vec<f32> = a.get("probabilities")?.floats()?.iter().copied().collect();
    let classes = a.get("classes")?;
    if classes.shape() != [probabilities.len()] {
        return Err(format!(
            "classes of shape {:?} for {} probabilities",
            classes.shape(),
            probabilities.len()
        ));
    }
    let mut best: Option<usize> = None;
    for (i, &p) in probabilities.iter().enumerate() {
        if !p.is_nan() && best.is_none_or(|b| p > probabilities[b]) {
            best = Some(i);
        }
    }
    let best = best.ok_or("no class has a probability that is a number")?;
    let scalar = IxDyn(&[]);
    let label = match classes {
        Value::Str(c) => Value::Str(ArrayD::from_elem(scalar, c[[best]].clone())),
        Value::Int(c) => Value::Int(ArrayD::from_elem(scalar, c[[best]])),
        other => {
            return Err(format!(
                "classes are {}; expected strings or integers",
                other.kind()
            ))
        }
    };
    let n = probabilities.len();
    let vector = ArrayD::from_shape_vec(IxDyn(&[n]), probabilities).map_err(|e| e.to_string())?;
    Ok(vec![label, Value::Float(vector)])
}

#[cfg(test)]
mod tests {
    use crate::ir::ops::testing::{floats, infer, run};
    use crate::ir::{DType, Tensor, TensorType};

    fn inputs(p: &[f32]) -> Vec<(&'static str, Tensor)> {
        vec![
            ("probabilities", Tensor::from_f32(&[1, p.len()], p)),
            (
                "classes",
                Tensor::from_strings(&[3], vec!["cat".into(), "dog".into(), "fox".into()]),
            ),
        ]
    }

    #[test]
    fn picks_the_most_probable_class() {
        let args = inputs(&[0.2, 0.5, 0.5]);
        let types = infer("classify", &args).unwrap();
        assert_eq!(
            types,
            [
                TensorType::scalar(DType::String),
                TensorType::fixed(DType::F64, &[3])
            ]
        );
        let out = run("classify", &args, &types);
        assert_eq!(out[0].as_str().unwrap(), "dog");
        assert_eq!(floats(&out[1]), [0.2, 0.5, 0.5]);
        let out = run("classify", &inputs(&[f32::NAN, 0.1, 0.0]), &types);
        assert_eq!(out[0].as_str().unwrap(), "dog");
    }

    #[test]
    fn refuses_counts_that_differ_and_fp16_probabilities() {
        let err = infer("classify", &inputs(&[0.5, 0.5])).unwrap_err();
        assert!(
            err.contains("3 classes for probabilities of shape [1, 2]"),
            "{err}"
        );
        let mut args = inputs(&[0.2, 0.5, 0.3]);
        args[0].1 = args[0].1.cast(DType::F16);
        let err = infer("classify", &args).unwrap_err();
        assert!(err.contains("fp32 probabilities"), "{err}");
    }
}
