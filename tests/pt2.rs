//! Every `.pt2` fixture (torch 2.15 training IR `model.pt2` and core ATen `model_aten.pt2`)
//! converts to an fp32 program whose outputs, run by the reference interpreter, match the
//! eager-torch outputs saved with the fixture: max |ours − torch| ≤ 1e-4 × scale, scale =
//! max |torch output| (at least 1e-3); both compute in fp32, only summation order differs.
//! Mutated buffers start from the saved initial contents and must end at the saved ones.

mod common;

use common::fixtures::Fixture;
use mlpack::frontend::torch::{load, TorchOptions};
use mlpack::interp::{self, RunOptions, Value};
use mlpack::ir::{sanitize_name, Program};
use std::collections::BTreeMap;
use std::path::Path;

/// The archives of a fixture: torch 2.15 training IR and core ATen, and where present the
/// same programs written by torch 2.7 (legacy zip) and 2.8 (pickled weights).
const FILES: [&str; 6] = [
    "model.pt2",
    "model_aten.pt2",
    "model_torch27.pt2",
    "model_torch27_aten.pt2",
    "model_torch28.pt2",
    "model_torch28_aten.pt2",
];

fn read_npy(path: &Path) -> Value {
    mlpack::npy::parse(&std::fs::read(path).unwrap()).unwrap()
}

/// Max |ours − reference| / scale of one output.
fn relative_error(ours: &Value, reference: &Value) -> f64 {
    assert_eq!(ours.shape(), reference.shape(), "output shapes differ");
    let a = ours.to_f32_array().unwrap();
    let b = reference.to_f32_array().unwrap();
    let (mut max_abs, mut scale) = (0f64, 0f64);
    for (&x, &y) in a.iter().zip(b.iter()) {
        let (x, y) = (x as f64, y as f64);
        assert!(x.is_finite(), "non-finite output value {x}");
        max_abs = max_abs.max((x - y).abs());
        scale = scale.max(y.abs());
    }
    max_abs / scale.max(1e-3)
}

/// `(name, before, after)` of each buffer the fixture mutates.
fn buffers(fx: &Fixture) -> Vec<(String, Value, Value)> {
    let text = std::fs::read_to_string(fx.dir.join("meta.json")).unwrap();
    let meta: serde_json::Value = serde_json::from_str(&text).unwrap();
    meta["mutated_buffers"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|b| {
                    let file = |k: &str| fx.dir.join(b[k].as_str().unwrap());
                    (
                        sanitize_name(b["name"].as_str().unwrap()),
                        read_npy(&file("initial_file")),
                        read_npy(&file("after_file")),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Runs `program` on `inputs` (user inputs in order, then buffers by name) and returns the
/// largest relative error over the outputs and the buffers' final contents.
fn check(
    program: &Program,
    inputs: &[Value],
    outputs: &[Value],
    buffers: &[(String, Value, Value)],
) -> Result<f64, String> {
    let function = program.main();
    let mut feed = BTreeMap::new();
    let mut user = inputs.iter();
    for v in &function.inputs {
        let value = match buffers.iter().find(|(b, _, _)| *b == v.name) {
            Some((_, before, _)) => before.clone(),
            None => user
                .next()
                .ok_or("more function inputs than inputs")?
                .clone(),
        };
        feed.insert(v.name.clone(), value);
    }
    let results = interp::run(function, &feed, RunOptions::default()).map_err(|e| e.to_string())?;
    let mut expected = outputs.iter();
    let mut worst = 0f64;
    for (name, value) in &results {
        let reference = match buffers.iter().find(|(b, _, _)| format!("{b}_out") == *name) {
            Some((_, _, after)) => after,
            None => expected.next().ok_or("more outputs than expected")?,
        };
        worst = worst.max(relative_error(value, reference));
    }
    if expected.next().is_some() {
        return Err("fewer outputs than expected".into());
    }
    Ok(worst)
}

#[test]
fn pt2_fixtures_match_eager_torch() {
    let fixtures = Fixture::all("pt2");
    assert!(fixtures.len() >= 8, "the pt2 fixtures are missing");
    let mut failures = Vec::new();
    for fx in &fixtures {
        let inputs: Vec<Value> = fx.input_files().iter().map(|(_, p)| read_npy(p)).collect();
        let outputs: Vec<Value> = fx.output_files().iter().map(|(_, p)| read_npy(p)).collect();
        let buffers = buffers(fx);
        // Extra input sets (other sequence lengths of a flexible input) run the same program.
        let mut sets = vec![(String::new(), inputs, outputs)];
        for set in &fx.meta.extra_sets {
            let (ins, outs) = fx.extra_set_files(set);
            sets.push((
                format!(" [{}]", set.label),
                ins.iter().map(|(_, p)| read_npy(p)).collect(),
                outs.iter().map(|(_, p)| read_npy(p)).collect(),
            ));
        }
        let present = FILES.iter().filter(|f| fx.dir.join(f).is_file());
        for file in present {
            let path = fx.dir.join(file);
            let program = match load(&path, &TorchOptions::default()) {
                Ok(p) => p,
                Err(e) => {
                    failures.push(format!("{}/{file}: {e}", fx.case));
                    continue;
                }
            };
            for (set, inputs, outputs) in &sets {
                let label = format!("{}/{file}{set}", fx.case);
                match check(&program, inputs, outputs, &buffers) {
                    Ok(err) if err <= 1e-4 => println!("{label}: max relative error {err:.2e}"),
                    Ok(err) => {
                        failures.push(format!("{label}: max relative error {err:.2e} > 1e-4"))
                    }
                    Err(e) => failures.push(format!("{label}: {e}")),
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
