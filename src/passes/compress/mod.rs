//! Weight compression: replaces weight constants by the Core ML constexpr ops that rebuild
//! them at load time (palettization, linear quantization, pruning and their joint forms),
//! in the op forms of the program's deployment target.
//!
//! Weights are processed in parallel: each is widened to f32, encoded, measured against its
//! encoded form (without decompressing it) and emitted as ops that take over the encoded
//! buffers, so at most a few full-size copies are in flight at once. Results are independent
//! of the thread count.

mod chains;
mod emit;
mod encode;
mod error;
mod report;
mod sites;
mod spec;

pub use chains::{compressed_weights, constexpr_chains, CompressedWeight};
pub use report::{CompressReport, ErrorSums, WeightReport};
pub use sites::{ChannelAxes, Consumer, WeightSite};
pub use spec::{
    CompressionSpec, NmRatio, PaletteGranularity, PaletteModeArg, PaletteSpec, PruneSpec,
    QuantDtypeArg, QuantGranularity, QuantModeArg, QuantSpec,
};

use crate::compress::Precision;
use crate::interp::{eval_op, Value};
use crate::ir::{DType, NameTable, Operation, Program, Tensor};
use emit::ChainNames;
use encode::Values;
use rayon::prelude::*;
use std::cell::Cell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};

thread_local! {
    /// Each worker thread's f32 copy of the weight it is compressing, kept between weights:
    /// reusing it saves faulting in a fresh weight-sized buffer every time. A job nested on
    /// the same thread (rayon work stealing) finds it taken and widens into a new one.
    static WIDENED: Cell<Vec<f32>> = const { Cell::new(Vec::new()) };
}

/// A weight to compress: where it is, its spec, and the names its op chain may use.
type Job = (WeightSite, CompressionSpec, ChainNames);

/// The constexpr op that rebuilds fp32 weight `name` of `shape` from integers that are already
/// quantized (a pre-quantized model's weights): `constexpr_affine_dequantize` for targets
/// before iOS18 (8-bit, per tensor or per channel only; anything else is an error),
/// `constexpr_blockwise_shift_scale` from iOS18 on.
pub fn prequantized_weight_ops(
    name: &str,
    dtype: crate::compress::quantize::QuantDtype,
    quantized: crate::compress::quantize::Quantized,
    shape: &[usize],
    target: crate::ir::Target,
) -> Result<Vec<Operation>, String> {
    emit::emit_quantized(
        encode::QuantData { dtype, quantized },
        name,
        shape,
        DType::F32,
        target,
    )
}

/// coremltools' default: weights with at most this many elements stay uncompressed.
pub const DEFAULT_WEIGHT_THRESHOLD: usize = 2048;

/// Candidate weights of the program's main function with more than `weight_threshold`
/// elements, in block order.
pub fn candidate_weights(program: &Program, weight_threshold: usize) -> Vec<WeightSite> {
    sites::find_sites(program.main())
        .into_iter()
        .filter(|s| s.len() > weight_threshold)
        .collect()
}

/// Compresses every candidate weight (more than `weight_threshold` elements) for which
/// `choose` returns a spec. Specs are checked against the target first; a weight that cannot
/// be compressed (non-finite values, sizes that do not divide) is left as it was and reported
/// with the reason. `progress(done, total)` is called after each weight, from any thread.
pub fn compress_weights(
    program: &mut Program,
    weight_threshold: usize,
    choose: impl Fn(&WeightSite) -> Option<CompressionSpec>,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<CompressReport, String> {
    let target = program.target;
    let function = program.main_mut();
    let mut jobs: HashMap<usize, (WeightSite, CompressionSpec)> = HashMap::new();
    for site in sites::find_sites(function) {
        if site.len() <= weight_threshold {
            continue;
        }
        if let Some(spec) = choose(&site) {
            spec.check(target)
                .map_err(|e| format!("weight '{}': {e}", site.name))?;
            jobs.insert(site.index, (site, spec));
        }
    }
    let mut names = NameTable::of_function(function);
    let slots: Vec<(Operation, Option<Job>)> = std::mem::take(&mut function.block.operations)
        .into_iter()
        .enumerate()
        .map(|(index, op)| {
            let job = jobs.remove(&index).map(|(site, spec)| {
                let chain = ChainNames::reserve(&site.name, &mut names);
                (site, spec, chain)
            });
            (op, job)
        })
        .collect();
    let total = slots.iter().filter(|(_, job)| job.is_some()).count();
    let done = AtomicUsize::new(0);
    let results: Vec<(Vec<Operation>, Option<WeightReport>)> = slots
        .into_par_iter()
        .map(|(op, job)| match job {
            None => Ok((vec![op], None)),
            Some((site, spec, chain)) => {
                let result = compress_one(op, &site, &spec, target, &chain);
                progress(done.fetch_add(1, Ordering::Relaxed) + 1, total);
                result
            }
        })
        .collect::<Result<_, String>>()?;
    let mut weights = Vec::new();
    for (ops, report) in results {
        function.block.operations.extend(ops);
        weights.extend(report);
    }
    Ok(CompressReport::from_weights(weights))
}

/// Compresses the weight made by `const_op`; on a per-weight failure returns `const_op`
/// unchanged with the reason in the report.
fn compress_one(
    const_op: Operation,
    site: &WeightSite,
    spec: &CompressionSpec,
    target: crate::ir::Target,
    chain: &ChainNames,
) -> Result<(Vec<Operation>, Option<WeightReport>), String> {
    let Some(tensor) = const_op.const_value() else {
        return Err(format!("internal: '{}' is not a constant", site.name));
    };
    let bytes_before = tensor.len() * tensor.dtype().bits() / 8;
    let mut report = WeightReport {
        name: site.name.clone(),
        op: join(site.consumers.iter().map(|c| c.name.as_str())),
        op_type: join(site.consumers.iter().map(|c| c.op_type.as_str())),
        shape: site.shape.clone(),
        dtype: site.dtype.name().to_string(),
        scheme: spec.describe(),
        bits_per_weight: tensor.dtype().bits() as f64,
        bytes_before,
        bytes_after: bytes_before,
        snr_db: None,
        max_abs_error: 0.0,
        skipped: None,
    };
    let precision = if site.dtype == DType::F16 {
        Precision::F16
    } else {
        Precision::F32
    };
    // Pruning alone only ranks values: an fp16 weight is read as stored, not widened.
    let prune_only = spec.palettize.is_none() && spec.quantize.is_none();
    let stored = tensor.as_f16().filter(|_| prune_only);
    let mut widened = Vec::new();
    if stored.is_none() {
        widened = WIDENED.with(Cell::take);
        tensor.to_f32_into(&mut widened);
    }
    let values = match stored {
        Some(halves) => Values::F16(halves),
        None => Values::F32(&widened),
    };
    let measured = encode::encode(values, &site.shape, precision, site, spec).map(|encoded| {
        let error = error::reconstruction_error(values, &site.shape, precision, &encoded);
        (encoded, error)
    });
    if stored.is_none() {
        WIDENED.with(|slot| slot.set(widened));
    }
    // The source weight has been read: a mapped one leaves the resident set.
    tensor.release_pages();
    let (encoded, error) = match measured {
        Ok(pair) => pair,
        Err(e) => {
            report.skipped = Some(e.to_string());
            return Ok((vec![const_op], Some(report)));
        }
    };
    let fail = |e: String| format!("weight '{}': {e}", site.name);
    let error = error.map_err(fail)?;
    let ops = emit::emit(
        encoded,
        tensor,
        &site.name,
        &site.shape,
        site.dtype,
        target,
        chain,
    )
    .map_err(fail)?;
    let bytes_after: usize = ops.iter().map(stored_bytes).sum();
    report.snr_db = error.snr_db();
    report.max_abs_error = error.max_abs();
    report.bytes_after = bytes_after;
    report.bits_per_weight = bytes_after as f64 * 8.0 / tensor.len().max(1) as f64;
    let mut ops = ops;
    if let Some(origin) = &const_op.origin {
        for op in &mut ops {
            op.origin = Some(origin.clone());
        }
    }
    Ok((ops, Some(report)))
}

/// Runs a chain of constexpr ops (in execution order) with the interpreter; returns the last
/// op's first output as f32 values.
pub fn decompress<'a>(ops: impl IntoIterator<Item = &'a Operation>) -> Result<Vec<f32>, String> {
    let mut env: HashMap<String, Value> = HashMap::new();
    let mut last = None;
    for op in ops {
        last = op.outputs.first();
        let declared: Vec<_> = op.outputs.iter().map(|v| v.ty.clone()).collect();
        let outputs = eval_op(op, &|name: &str| env.get(name).cloned(), &declared)?;
        for (var, value) in op.outputs.iter().zip(outputs) {
            env.insert(var.name.clone(), value);
        }
    }
    let last = last.ok_or("empty op chain")?;
    match env.remove(&last.name) {
        Some(Value::Float(a)) => Ok(a.iter().copied().collect()),
        _ => Err(format!("'{}' did not decompress to floats", last.name)),
    }
}

/// Bytes the parameters of a constexpr op take in the package (sub-byte types packed).
pub(crate) fn stored_bytes(op: &Operation) -> usize {
    let size = |t: &Tensor| (t.len() * t.dtype().bits()).div_ceil(8);
    let inline: usize = op
        .inputs
        .iter()
        .flat_map(|(_, args)| args)
        .filter_map(|a| match a {
            crate::ir::Argument::Value(t) => Some(size(t)),
            crate::ir::Argument::Var(_) => None,
        })
        .sum();
    inline + op.attributes.values().map(size).sum::<usize>()
}

fn join<'a>(items: impl Iterator<Item = &'a str>) -> String {
    items.collect::<Vec<_>>().join(",")
}
