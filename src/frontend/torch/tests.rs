//! Tests of the torch.export frontend on small hand-written programs.

use super::schema::quote_non_finite;
use super::{convert_program, supported_targets, TorchOptions};
use crate::error::ExitCode;
use crate::ir::{Dim, Program, ShapeSet, Tensor};
use crate::Error;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::Path;

/// A float32 tensor meta of `sizes` (ints, or symbol names).
fn meta(sizes: &[Value]) -> Value {
    let sizes: Vec<Value> = sizes
        .iter()
        .map(|s| match s {
            Value::String(sym) => json!({"as_expr": {"expr_str": sym}}),
            n => json!({"as_int": n}),
        })
        .collect();
    json!({"dtype": 7, "sizes": sizes, "requires_grad": false, "device": {"type": "cpu"},
           "strides": [], "storage_offset": {"as_int": 0}, "layout": 7})
}

/// A program with user input `x`, parameters `params` (placeholder, state name), `nodes`,
/// one user output `out`, and the given tensor metas.
fn program(
    params: &[(&str, &str)],
    nodes: Value,
    out: &str,
    metas: Value,
    range_constraints: Value,
) -> Value {
    let mut specs: Vec<Value> = params
        .iter()
        .map(|(p, n)| json!({"parameter": {"arg": {"name": p}, "parameter_name": n}}))
        .collect();
    specs.push(json!({"user_input": {"arg": {"as_tensor": {"name": "x"}}}}));
    let mut inputs: Vec<Value> = params
        .iter()
        .map(|(p, _)| json!({"as_tensor": {"name": p}}))
        .collect();
    inputs.push(json!({"as_tensor": {"name": "x"}}));
    json!({
        "graph_module": {
            "graph": {
                "inputs": inputs,
                "outputs": [{"as_tensor": {"name": out}}],
                "nodes": nodes,
                "tensor_values": metas,
                "sym_int_values": {},
            },
            "signature": {
                "input_specs": specs,
                "output_specs": [{"user_output": {"arg": {"as_tensor": {"name": out}}}}],
            },
            "module_call_graph": [],
        },
        "opset_version": {"aten": 10},
        "range_constraints": range_constraints,
        "schema_version": {"major": 8, "minor": 20},
        "verifiers": ["TRAINING"],
        "torch_version": "2.15.0",
    })
}

fn node(target: &str, inputs: Value, out: &str) -> Value {
    json!({"target": target, "inputs": inputs, "outputs": [{"as_tensor": {"name": out}}],
           "metadata": {}, "name": out})
}

/// A node calling `target` on tensor `input` (its `self` argument), with output `out`.
fn unary(target: &str, input: &str, out: &str) -> Value {
    node(
        target,
        json!([{"name": "self", "arg": {"as_tensor": {"name": input}}}]),
        out,
    )
}

/// A node calling `target` on tensors `input` and `other`, with output `out`.
fn binary(target: &str, input: &str, other: &str, out: &str) -> Value {
    node(
        target,
        json!([{"name": "self", "arg": {"as_tensor": {"name": input}}},
               {"name": "other", "arg": {"as_tensor": {"name": other}}}]),
        out,
    )
}

/// A program with no nodes returning its input `x` (shape `[2]`) as it is.
fn identity_program() -> Value {
    program(
        &[],
        json!([]),
        "x",
        json!({"x": meta(&[json!(2)])}),
        json!({}),
    )
}

fn convert(text: &str, tensors: &HashMap<String, Tensor>) -> Result<Program, Error> {
    convert_program(text, tensors, Path::new("m.pt2"), &TorchOptions::default())
}

/// The constant bound to parameter `param` of the only op of type `op_type`.
fn param(p: &Program, op_type: &str, param: &str) -> Tensor {
    let f = p.main();
    let op = f
        .block
        .operations
        .iter()
        .find(|o| o.op_type == op_type)
        .unwrap_or_else(|| panic!("no {op_type} op"));
    let var = op.input(param).unwrap()[0].var().unwrap().to_string();
    f.block
        .operations
        .iter()
        .find(|o| o.outputs.iter().any(|v| v.name == var))
        .and_then(|o| o.const_value().cloned())
        .unwrap_or_else(|| panic!("{op_type}.{param} is not a constant"))
}

#[test]
fn omitted_arguments_take_the_schema_defaults() {
    // conv2d with only input and weight: stride 1, padding 0, dilation 1, groups 1, no bias.
    let text = program(
        &[("p_w", "conv.weight")],
        json!([node(
            "torch.ops.aten.conv2d.default",
            json!([{"name": "input", "arg": {"as_tensor": {"name": "x"}}},
                   {"name": "weight", "arg": {"as_tensor": {"name": "p_w"}}}]),
            "conv2d",
        )]),
        "conv2d",
        json!({"x": meta(&[json!(1), json!(2), json!(5), json!(5)]),
               "p_w": meta(&[json!(4), json!(2), json!(3), json!(3)]),
               "conv2d": meta(&[json!(1), json!(4), json!(3), json!(3)])}),
        json!({}),
    )
    .to_string();
    let weights = HashMap::from([(
        "conv.weight".to_string(),
        Tensor::from_f32(&[4, 2, 3, 3], &[0.5; 72]),
    )]);
    let p = convert(&text, &weights).unwrap();
    assert_eq!(param(&p, "conv", "strides").to_i64_vec(), [1, 1]);
    assert_eq!(param(&p, "conv", "dilations").to_i64_vec(), [1, 1]);
    assert_eq!(param(&p, "conv", "pad").to_i64_vec(), [0, 0, 0, 0]);
    assert_eq!(param(&p, "conv", "groups").to_i64_vec(), [1]);
    let conv = p
        .main()
        .block
        .operations
        .iter()
        .find(|o| o.op_type == "conv")
        .unwrap();
    assert!(conv.input("bias").is_none());
    assert_eq!(p.main().outputs()[0].ty.shape, [1, 4, 3, 3].map(Dim::Fixed));
}

#[test]
fn non_finite_floats_are_accepted_as_tokens_and_strings() {
    let quoted =
        quote_non_finite(r#"{"a": -Infinity, "b": [NaN, Infinity], "c": "NaN -Infinity"}"#);
    assert_eq!(
        quoted,
        r#"{"a": "-Infinity", "b": ["NaN", "Infinity"], "c": "NaN -Infinity"}"#
    );
    for fill in ["-Infinity", "\"-Infinity\""] {
        let full = node(
            "torch.ops.aten.full.default",
            json!([{"name": "size", "arg": {"as_ints": [1, 3]}},
                   {"name": "fill_value", "arg": {"as_float": "FILL"}}]),
            "full",
        );
        let add = binary("torch.ops.aten.add.Tensor", "x", "full", "add");
        let text = program(
            &[],
            json!([full, add]),
            "add",
            json!({"x": meta(&[json!(1), json!(3)]), "full": meta(&[json!(1), json!(3)]),
                   "add": meta(&[json!(1), json!(3)])}),
            json!({}),
        )
        .to_string()
        .replace("\"FILL\"", fill);
        let p = convert(&text, &HashMap::new()).unwrap();
        let filled = p
            .main()
            .block
            .operations
            .iter()
            .filter_map(|o| o.const_value())
            .find(|t| t.shape() == [1, 3])
            .expect("the full constant");
        assert!(filled.to_f32_vec().iter().all(|&v| v == f32::NEG_INFINITY));
    }
}

#[test]
fn unsupported_targets_are_listed_at_once_before_any_work() {
    let nodes = json!([
        unary("torch.ops.aten.foo.default", "x", "a"),
        unary("torch.ops.aten.relu.default", "a", "b"),
        unary("torch.ops.aten.foo.default", "b", "c"),
        unary("torch.ops.aten.bar.Tensor", "c", "d"),
    ]);
    // The weight is missing too: the listing comes first.
    let text = program(
        &[("p_w", "w")],
        nodes,
        "d",
        json!({"x": meta(&[json!(2)])}),
        json!({}),
    )
    .to_string();
    let e = convert(&text, &HashMap::new()).unwrap_err();
    assert_eq!(e.exit_code(), ExitCode::Unsupported);
    assert_eq!(
        e.to_string(),
        "m.pt2: unsupported operators: aten.foo.default ×2 (a, c), aten.bar.Tensor ×1 (d)"
    );
}

#[test]
fn a_schema_from_the_future_is_invalid_input() {
    let mut p = identity_program();
    p["schema_version"] = json!({"major": 10, "minor": 0});
    let e = convert(&p.to_string(), &HashMap::new()).unwrap_err();
    assert_eq!(e.exit_code(), ExitCode::InvalidInput);
    assert!(
        e.to_string().contains("m.pt2") && e.to_string().contains("10.0"),
        "{e}"
    );
    p["schema_version"] = json!({"major": 7, "minor": 3});
    assert!(convert(&p.to_string(), &HashMap::new()).is_ok());
}

#[test]
fn a_missing_weight_is_invalid_input_naming_it() {
    let relu = binary("torch.ops.aten.add.Tensor", "x", "p_b", "add");
    let text = program(
        &[("p_b", "layer.bias")],
        json!([relu]),
        "add",
        json!({"x": meta(&[json!(2)]), "p_b": meta(&[json!(2)]), "add": meta(&[json!(2)])}),
        json!({}),
    )
    .to_string();
    let e = convert(&text, &HashMap::new()).unwrap_err();
    assert_eq!(e.exit_code(), ExitCode::InvalidInput);
    assert!(e.to_string().contains("'layer.bias'"), "{e}");
}

/// `relu(x)` with `x` of shape `[1, s0]`.
fn symbolic_program(range: Value) -> String {
    let relu = unary("torch.ops.aten.relu.default", "x", "relu");
    program(
        &[],
        json!([relu]),
        "relu",
        json!({"x": meta(&[json!(1), json!("s0")]), "relu": meta(&[json!(1), json!("s0")])}),
        range,
    )
    .to_string()
}

#[test]
fn symbolic_sizes_become_flexible_dims_from_the_range_constraints() {
    let text = symbolic_program(json!({"s0": {"min_val": 2, "max_val": 64}}));
    let p = convert(&text, &HashMap::new()).unwrap();
    let f = p.main();
    assert_eq!(
        f.inputs[0].ty.shape,
        [Dim::Fixed(1), Dim::Symbol("s0".into())]
    );
    assert_eq!(
        f.input_shapes["x"],
        ShapeSet::Ranges(vec![(1, Some(1)), (2, Some(64))])
    );
    // Unbounded in torch (null or beyond 32 bits): open-ended.
    let text = symbolic_program(json!({"s0": {"min_val": 0, "max_val": 9223372036854775806i64}}));
    let p = convert(&text, &HashMap::new()).unwrap();
    assert_eq!(
        p.main().input_shapes["x"],
        ShapeSet::Ranges(vec![(1, Some(1)), (1, None)])
    );
    // --dim overrides the constraint.
    let options = TorchOptions {
        dims: vec!["s0=16".parse().unwrap()],
        ..TorchOptions::default()
    };
    let text = symbolic_program(json!({"s0": {"min_val": 2, "max_val": 64}}));
    let p = convert_program(&text, &HashMap::new(), Path::new("m.pt2"), &options).unwrap();
    assert_eq!(p.main().inputs[0].ty.shape, [Dim::Fixed(1), Dim::Fixed(16)]);
    assert!(p.main().input_shapes.is_empty());
    // No range and no --dim: an error saying how to size it.
    let e = convert(&symbolic_program(json!({})), &HashMap::new()).unwrap_err();
    assert_eq!(e.exit_code(), ExitCode::Unsupported);
    assert!(e.to_string().contains("--dim s0="), "{e}");
    // A --dim naming no symbol is a usage error.
    let options = TorchOptions {
        dims: vec!["seq=16".parse().unwrap()],
        ..TorchOptions::default()
    };
    let e = convert_program(
        &symbolic_program(json!({})),
        &HashMap::new(),
        Path::new("m.pt2"),
        &options,
    )
    .unwrap_err();
    assert_eq!(e.exit_code(), ExitCode::Usage);
}

#[test]
fn user_input_mutation_is_refused() {
    let mut p = identity_program();
    p["graph_module"]["signature"]["output_specs"] = json!([{"user_input_mutation": {
        "arg": {"name": "x"}, "user_input_name": "x"}}]);
    let e = convert(&p.to_string(), &HashMap::new()).unwrap_err();
    assert_eq!(e.exit_code(), ExitCode::Unsupported);
    assert!(e.to_string().contains("mutates user input 'x'"), "{e}");
}

#[test]
fn supported_targets_cover_both_ir_levels() {
    let targets = supported_targets();
    for t in [
        "aten.conv2d.default",
        "aten.convolution.default",
        "aten.linear.default",
        "aten.addmm.default",
        "aten.scaled_dot_product_attention.default",
        "aten._native_batch_norm_legit_no_training.default",
        "aten.native_layer_norm.default",
        "aten.sym_size.int",
        "_operator.add",
    ] {
        assert!(targets.contains(&t), "{t} is not supported");
    }
}
