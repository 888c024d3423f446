//! Where the reference interpreter spends its time on one model: load time, weight preparation
//! and, per op type, the time of one run on random inputs (as `verify` draws them).
//!
//! `cargo run --release --example interp_profile -- MODEL [NAME=D,D,…]…` with MODEL an `.onnx`
//! file (dynamic input dimensions fixed by the NAME=shape arguments) or an `.mlpackage` (fp16
//! rounding emulated when it holds fp16 values, as `verify` does for a candidate).

use mlpack::backend::read_package;
use mlpack::frontend::onnx::{self, InputShape, OnnxOptions};
use mlpack::interp::{RunOptions, Runner};
use mlpack::verify::{inputs, is_fp16};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::{Duration, Instant};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let path = Path::new(
        args.first()
            .ok_or("usage: interp_profile MODEL [NAME=D,D,…]…")?,
    );
    let mut input_shapes = Vec::new();
    for spec in &args[1..] {
        let (name, dims) = spec.split_once('=').ok_or("shapes are NAME=D,D,…")?;
        let dims = dims
            .split(',')
            .map(str::parse)
            .collect::<Result<Vec<usize>, _>>()?;
        input_shapes.push(InputShape::fixed(name, &dims));
    }
    let start = Instant::now();
    let program = if path.extension().is_some_and(|e| e == "onnx") {
        let options = OnnxOptions {
            input_shapes,
            ..OnnxOptions::default()
        };
        onnx::load(path, &options)?
    } else {
        read_package(path)?
    };
    println!("load: {:.3} s", start.elapsed().as_secs_f64());
    let function = program.main();
    let options = RunOptions {
        emulate_fp16: is_fp16(&program),
    };
    let start = Instant::now();
    let runner = Runner::new(function, options)?;
    println!("weights: {:.3} s", start.elapsed().as_secs_f64());
    let sample = inputs::random_inputs(function, 1, 0, &[])?.remove(0);
    let op_type: HashMap<&str, &str> = function
        .block
        .operations
        .iter()
        .flat_map(|op| {
            op.outputs
                .iter()
                .map(move |o| (o.name.as_str(), op.op_type.as_str()))
        })
        .collect();
    let mut times: BTreeMap<&str, (Duration, usize)> = BTreeMap::new();
    let start = Instant::now();
    let mut last = start;
    runner.run_with_observer(&sample, |name, _| {
        let now = Instant::now();
        let entry = times.entry(op_type[name]).or_default();
        entry.0 += now - last;
        entry.1 += 1;
        last = Instant::now();
    })?;
    println!("run: {:.3} s", start.elapsed().as_secs_f64());
    let mut rows: Vec<_> = times.into_iter().collect();
    rows.sort_by_key(|row| std::cmp::Reverse(row.1 .0));
    for (op, (time, count)) in rows {
        println!("  {op:<40} {:>8.3} s {count:>6}", time.as_secs_f64());
    }
    Ok(())
}
