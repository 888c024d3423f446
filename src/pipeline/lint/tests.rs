//! A synthetic program per rule: each check finds what it is for and nothing in a program
//! without it.

use super::*;
use crate::ir::{Builder, DType, Dim, Function, ShapeSet, Tensor, TensorType, Var};

fn program(target: Target, function: Function) -> Program {
    Program {
        target,
        functions: vec![function],
        metadata: Default::default(),
        description: Default::default(),
    }
}

/// A program returning its inputs unchanged (through `identity` ops).
fn passthrough(target: Target, inputs: Vec<Var>) -> Program {
    let names: Vec<String> = inputs.iter().map(|v| v.name.clone()).collect();
    let mut b = Builder::new("main", inputs);
    let outs = names
        .iter()
        .map(|n| {
            b.op1("identity", &format!("{n}_out"), &[("x", &[n])])
                .unwrap()
        })
        .collect();
    program(target, b.finish(outs))
}

fn subject(program: &Program) -> Subject<'_> {
    Subject {
        program,
        weight_bytes: 0,
        peaks: None,
    }
}

/// (rule, location) of every finding.
fn found(subject: &Subject) -> Vec<(&'static str, String)> {
    lint_subject(subject)
        .into_iter()
        .map(|f| (f.rule, f.location))
        .collect()
}

fn input(name: &str, dtype: DType, shape: &[usize]) -> Var {
    Var::new(name, TensorType::fixed(dtype, shape))
}

#[test]
fn every_rule_has_a_source_a_hint_and_a_unique_id() {
    let mut ids: Vec<&str> = RULES.iter().map(|r| r.id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), RULES.len());
    for r in RULES {
        assert!(!r.hint.is_empty() && !r.title.is_empty(), "{}", r.id);
        assert!(!r.sources.is_empty(), "{}", r.id);
        assert!(
            r.sources.iter().all(|s| s.starts_with("https://")),
            "{}",
            r.id
        );
    }
}

#[test]
fn a_clean_fp16_program_has_no_finding() {
    let p = passthrough(Target::IOS17, vec![input("x", DType::F16, &[1, 64, 8, 64])]);
    assert_eq!(found(&subject(&p)), []);
}

#[test]
fn fp32_ops_are_found_and_fp16_ones_are_not() {
    let p = passthrough(Target::IOS17, vec![input("x", DType::F32, &[1, 64])]);
    assert_eq!(found(&subject(&p)), [("fp32-compute", "x_out".to_string())]);
}

#[test]
fn ranks_above_4_and_5() {
    let p = passthrough(
        Target::IOS17,
        vec![
            input("r5", DType::F16, &[1, 2, 2, 2, 64]),
            input("r6", DType::F16, &[1, 2, 2, 2, 2, 64]),
        ],
    );
    let f = found(&subject(&p));
    assert!(f.contains(&("rank-above-4", "r5".into())), "{f:?}");
    assert!(f.contains(&("rank-above-4", "r5_out".into())), "{f:?}");
    assert!(f.contains(&("rank-above-5", "r6".into())), "{f:?}");
    assert!(!f.contains(&("rank-above-4", "r6".into())), "{f:?}");
    assert!(!f.contains(&("rank-above-5", "r5".into())), "{f:?}");
}

#[test]
fn dimensions_and_channels_above_the_limits() {
    let p = passthrough(
        Target::IOS17,
        vec![
            input("wide", DType::F16, &[1, 20_000]),
            input("channels_ok", DType::F16, &[1, 60_000, 1, 64]),
            input("channels", DType::F16, &[1, 70_000, 1, 64]),
        ],
    );
    let f: Vec<String> = found(&subject(&p))
        .into_iter()
        .filter(|(r, _)| *r == "dim-above-limit")
        .map(|(_, l)| l)
        .collect();
    assert_eq!(f, ["wide", "channels", "wide_out", "channels_out"]);
}

#[test]
fn a_long_tensor_with_a_last_axis_of_one_is_padded() {
    // 524288 rows of 2 bytes padded to 64 bytes: 32 MiB instead of 1 MiB.
    let p = passthrough(
        Target::IOS17,
        vec![
            input("column", DType::F16, &[1, 64, 8192, 1]),
            input("rows", DType::F16, &[1, 64, 8192, 32]),
            input("small", DType::F16, &[1, 64, 1]),
        ],
    );
    let f = found(&subject(&p));
    assert_eq!(
        f,
        [
            ("tiny-last-axis", "column".to_string()),
            ("tiny-last-axis", "column_out".to_string())
        ]
    );
    let message = &lint_subject(&subject(&p))[0].message;
    assert!(message.contains("32.0 MiB instead of 1.0 MiB"), "{message}");
}

#[test]
fn range_flexible_inputs_but_not_enumerated_ones() {
    let symbolic = |name: &str| {
        Var::new(
            name,
            TensorType {
                dtype: DType::F16,
                shape: vec![Dim::Fixed(1), Dim::Symbol("seq".into())],
            },
        )
    };
    let mut p = passthrough(
        Target::IOS17,
        vec![
            symbolic("ranged"),
            symbolic("unbounded"),
            symbolic("listed"),
        ],
    );
    let shapes = &mut p.main_mut().input_shapes;
    shapes.insert(
        "ranged".into(),
        ShapeSet::Ranges(vec![(1, Some(1)), (1, Some(64))]),
    );
    shapes.insert(
        "unbounded".into(),
        ShapeSet::Ranges(vec![(1, Some(1)), (1, None)]),
    );
    shapes.insert(
        "listed".into(),
        ShapeSet::Enumerated(vec![vec![1, 8], vec![1, 64]]),
    );
    let findings = lint_subject(&subject(&p));
    let flexible: Vec<(&str, &str)> = findings
        .iter()
        .filter(|f| f.rule == "flexible-input")
        .map(|f| (f.location.as_str(), f.message.as_str()))
        .collect();
    assert_eq!(
        flexible,
        [
            ("ranged", "input accepts a range of shapes (axis 1: 1..64)"),
            (
                "unbounded",
                "input accepts a range of shapes (axis 1: 1.. (unbounded))"
            )
        ]
    );
}

/// `y = gather(table, ids)` with a `rows × 256` fp32 table.
fn gather_program(target: Target, rows: usize, batch_dims: bool) -> Program {
    let mut b = Builder::new("main", vec![input("ids", DType::I32, &[1, 4])]);
    let table = b.constant(
        "table",
        Tensor::from_f32(&[rows, 256], &vec![0.5; rows * 256]),
    );
    let axis = b.constant("axis", Tensor::scalar_i32(0));
    let batch = b.constant("batch", Tensor::scalar_i32(0));
    let (table, axis, batch) = ([table.as_str()], [axis.as_str()], [batch.as_str()]);
    let mut args: Vec<(&str, &[&str])> =
        vec![("x", &table), ("indices", &["ids"]), ("axis", &axis)];
    if batch_dims {
        args.push(("batch_dims", &batch));
    }
    let y = b.op1("gather", "y", &args).unwrap();
    program(target, b.finish(vec![y]))
}

#[test]
fn gathers_from_large_tables() {
    // 1024 × 256 × 4 bytes = 1 MiB: reported; 1023 rows: not.
    let large = gather_program(Target::IOS17, 1024, false);
    let small = gather_program(Target::IOS17, 1023, false);
    let rule = |p: &Program| -> Vec<String> {
        lint_subject(&subject(p))
            .into_iter()
            .filter(|f| f.rule == "large-gather-table")
            .map(|f| f.location)
            .collect()
    };
    assert_eq!(rule(&large), ["y"]);
    assert_eq!(rule(&small), Vec::<String>::new());
}

#[test]
fn parameters_ops_and_io_types_newer_than_the_target() {
    // gather's batch_dims came with iOS16; fp16 inputs and outputs too.
    let p = gather_program(Target::IOS15, 4, true);
    let f = found(&subject(&p));
    assert!(f.contains(&("target-unsupported", "y".into())), "{f:?}");
    assert!(found(&subject(&gather_program(Target::IOS16, 4, true)))
        .iter()
        .all(|(r, _)| *r != "target-unsupported"));
    let fp16 = passthrough(Target::IOS15, vec![input("x", DType::F16, &[1, 64])]);
    let f = found(&subject(&fp16));
    assert!(f.contains(&("target-unsupported", "x".into())), "{f:?}");
    assert!(f.contains(&("target-unsupported", "x_out".into())), "{f:?}");
}

#[test]
fn weight_files_above_1_and_2_gb() {
    let p = passthrough(Target::IOS17, vec![input("x", DType::F16, &[1, 64])]);
    let rules_at = |bytes: u64| -> Vec<&'static str> {
        let s = Subject {
            weight_bytes: bytes,
            ..subject(&p)
        };
        found(&s).into_iter().map(|(r, _)| r).collect()
    };
    assert_eq!(rules_at(1_000_000_000), Vec::<&str>::new());
    assert_eq!(rules_at(1_000_000_001), ["weights-over-1gb"]);
    assert_eq!(rules_at(2_000_000_000), ["weights-over-1gb"]);
    assert_eq!(rules_at(2_000_000_001), ["weights-over-2gb"]);
}

#[test]
fn activations_beyond_and_near_fp16_max_on_given_inputs() {
    // a = x·x reaches 300² = 90000 (beyond 65504); b = a·0.4 reaches 36000 (above 32752).
    let mut b = Builder::new("main", vec![input("x", DType::F32, &[3])]);
    let a = b.op1("mul", "a", &[("x", &["x"]), ("y", &["x"])]).unwrap();
    let k = b.constant("k", Tensor::from_f32(&[1], &[0.4]));
    let c = b.op1("mul", "b", &[("x", &[&a]), ("y", &[&k])]).unwrap();
    let p = program(Target::IOS17, b.finish(vec![c]));
    let x = ndarray::ArrayD::from_shape_vec(vec![3], vec![-300.0f32, 1.0, 2.0]).unwrap();
    let sample = Sample::from([("x".to_string(), Value::Float(x))]);
    let peaks = peaks_on(&p, &sample).unwrap();
    assert_eq!(peaks["a"], 90000.0);
    let s = Subject {
        peaks: Some(peaks),
        ..subject(&p)
    };
    let f: Vec<(&str, String)> = found(&s)
        .into_iter()
        .filter(|(r, _)| r.starts_with("fp16"))
        .collect();
    assert_eq!(
        f,
        [
            ("fp16-overflow", "a".to_string()),
            ("fp16-near-overflow", "b".to_string())
        ]
    );
}
