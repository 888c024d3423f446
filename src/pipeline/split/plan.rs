//! Cutting a program at op boundaries into consecutive chunk programs whose weight files stay
//! under a size.
//!
//! Constants (`const` and `constexpr_*` ops) are never passed between chunks: a constant read by
//! ops of several chunks is copied into each of them (and counts towards each one's size).
//! Runtime values read after a cut become outputs of the chunk defining them and inputs of the
//! chunks reading them, under the same name. A value whose dtype Core ML cannot take as a model
//! input or output (bool, 8/16-bit integers, fp16 before iOS16) is cast to int32 (fp32 for
//! fp16) at the end of its chunk and cast back where it is read; the carrier is called
//! `<name>_as_<dtype>`.

use crate::backend::mlpackage::blob;
use crate::backend::stored_in_blob;
use crate::ir::{
    Argument, DType, Dim, Function, NameTable, Operation, Program, ShapeSet, Target, Tensor,
    TensorType, Var,
};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Metadata key holding a chunk's position in its chain (`2/4`).
pub const CHUNK_METADATA_KEY: &str = "mlpack.split.chunk";

/// Why a program cannot be cut under the size asked for.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// One constant alone needs more than the size.
    #[error("constant '{name}' needs {bytes} bytes of weight.bin, more than the maximum {max}")]
    ConstantTooLarge {
        /// The constant's variable name.
        name: String,
        /// The weight-file bytes it needs (header included).
        bytes: u64,
        /// The maximum asked for.
        max: u64,
    },
    /// One op's constants together need more than the size.
    #[error("op '{op}' reads constants needing {bytes} bytes of weight.bin together, more than the maximum {max}")]
    OpTooLarge {
        /// The op's name.
        op: String,
        /// The weight-file bytes its constants need (header included).
        bytes: u64,
        /// The maximum asked for.
        max: u64,
    },
    /// A value crossing a cut has a dtype that cannot be carried between packages.
    #[error("value '{name}' ({dtype}) would cross a cut, and Core ML cannot pass a {dtype} between models")]
    Crossing {
        /// The value's name.
        name: String,
        /// Its dtype.
        dtype: DType,
    },
}

/// The chunk programs, in order, and what was copied into several of them.
#[derive(Debug)]
pub struct Plan {
    /// Chunk programs; each reads model inputs and earlier chunks' outputs by name.
    pub chunks: Vec<Program>,
    /// Upper bound of each chunk's weight.bin size in bytes.
    pub weight_bytes: Vec<u64>,
    /// Constants (by variable name) placed in more than one chunk, with their blob bytes.
    pub shared: Vec<(String, u64)>,
}

/// Cuts `program`'s main function so that each chunk's weight.bin takes at most `max_bytes`.
///
/// Cuts go between non-constant ops. Each chunk takes as many ops as fit; among the cut points
/// where the chunk holds at least half of the weight bytes that would fit, the one with the
/// fewest values crossing it is chosen (the latest on ties), which lands cuts between
/// transformer blocks rather than inside them.
pub fn plan(program: &Program, max_bytes: u64) -> Result<Plan, PlanError> {
    let main = program.main();
    let ops = &main.block.operations;
    let producer: HashMap<&str, usize> = ops
        .iter()
        .enumerate()
        .flat_map(|(i, op)| op.outputs.iter().map(move |o| (o.name.as_str(), i)))
        .collect();
    let constant: Vec<bool> = ops.iter().map(is_constant).collect();
    let size: Vec<u64> = ops
        .iter()
        .map(|op| blob_bytes(op, program.target))
        .collect();
    for (i, op) in ops.iter().enumerate() {
        let bytes = blob::HEADER_SIZE + size[i];
        if constant[i] && bytes > max_bytes {
            return Err(PlanError::ConstantTooLarge {
                name: op
                    .outputs
                    .first()
                    .map_or(op.name.clone(), |o| o.name.clone()),
                bytes,
                max: max_bytes,
            });
        }
    }
    let compute: Vec<usize> = (0..ops.len()).filter(|&i| !constant[i]).collect();
    let needs: Vec<BTreeSet<usize>> = compute
        .iter()
        .map(|&i| constants_read(ops, &producer, &constant, i))
        .collect();
    let crossing = crossing_counts(main, &producer, &compute);
    // A program of constants only is one chunk (holding the constants it returns).
    let ranges: Vec<std::ops::Range<usize>> = match compute.is_empty() {
        true => std::iter::once(0..0).collect(),
        false => cut(&compute, &needs, &size, &crossing, ops, max_bytes)?,
    };

    // Model outputs defined by constants belong to the last chunk.
    let mut output_constants = BTreeSet::new();
    for name in &main.block.outputs {
        if let Some(&p) = producer.get(name.as_str()) {
            if constant[p] {
                output_constants.insert(p);
                output_constants.extend(constants_read(ops, &producer, &constant, p));
            }
        }
    }
    let mut op_sets: Vec<Vec<usize>> = Vec::new();
    let mut placed: BTreeMap<usize, usize> = BTreeMap::new();
    let mut weight_bytes = Vec::new();
    for (k, range) in ranges.iter().enumerate() {
        let mut set: BTreeSet<usize> = range.clone().map(|c| compute[c]).collect();
        for c in range.clone() {
            set.extend(&needs[c]);
        }
        if k + 1 == ranges.len() {
            set.extend(&output_constants);
        }
        let mut bytes = blob::HEADER_SIZE;
        for &i in set.iter().filter(|&&i| constant[i]) {
            *placed.entry(i).or_default() += 1;
            bytes += size[i];
        }
        weight_bytes.push(bytes);
        op_sets.push(set.into_iter().collect());
    }
    let shared = placed
        .iter()
        .filter(|&(&i, &n)| n > 1 && size[i] > 0)
        .map(|(&i, _)| (ops[i].outputs[0].name.clone(), size[i]))
        .collect();
    let mut chunks: Vec<Program> = op_sets
        .iter()
        .enumerate()
        .map(|(k, set)| chunk_program(program, set, k, op_sets.len()))
        .collect();
    connect(main, program.target, &mut chunks)?;
    Ok(Plan {
        chunks,
        weight_bytes,
        shared,
    })
}

/// True for ops computed when the model loads: `const` and `constexpr_*`.
fn is_constant(op: &Operation) -> bool {
    op.op_type == "const" || op.op_type.starts_with("constexpr_")
}

/// Bytes `op`'s own values add to weight.bin (as the writer stores them: constants of `const`
/// ops, attributes and literal inputs of `constexpr_*` ops).
fn blob_bytes(op: &Operation, target: Target) -> u64 {
    let literal_inputs = op
        .inputs
        .iter()
        .flat_map(|(_, args)| args)
        .filter_map(|a| match a {
            Argument::Value(t) if op.op_type.starts_with("constexpr_") => Some(t),
            _ => None,
        });
    op.attributes
        .values()
        .chain(literal_inputs)
        .filter(|t: &&Tensor| stored_in_blob(t, target))
        .map(blob::stored_size)
        .sum()
}

/// The constant ops op `i` reads, directly or through other constant ops.
fn constants_read(
    ops: &[Operation],
    producer: &HashMap<&str, usize>,
    constant: &[bool],
    i: usize,
) -> BTreeSet<usize> {
    let mut found = BTreeSet::new();
    let mut stack = vec![i];
    while let Some(j) = stack.pop() {
        for name in ops[j].input_vars() {
            if let Some(&p) = producer.get(name) {
                if constant[p] && found.insert(p) {
                    stack.push(p);
                }
            }
        }
    }
    found
}

/// For each position `c` of the compute ops, how many runtime values (model inputs and
/// non-constant op outputs) a cut after it would carry: defined at or before `c`, read after.
fn crossing_counts(
    main: &Function,
    producer: &HashMap<&str, usize>,
    compute: &[usize],
) -> Vec<usize> {
    let position: HashMap<usize, usize> =
        compute.iter().enumerate().map(|(c, &i)| (i, c)).collect();
    let n = compute.len();
    // Definition position (None: model input) and last reading position of each runtime value.
    let mut last_read: HashMap<&str, usize> = HashMap::new();
    for (c, &i) in compute.iter().enumerate() {
        for name in main.block.operations[i].input_vars() {
            last_read.insert(name, c);
        }
    }
    for name in &main.block.outputs {
        last_read.insert(name, n);
    }
    let mut delta = vec![0isize; n + 1];
    for (name, &last) in &last_read {
        let defined = match producer.get(name) {
            Some(p) => match position.get(p) {
                Some(&c) => c,
                None => continue, // a constant: copied, never carried
            },
            None => 0,
        };
        if last > defined {
            delta[defined] += 1;
            delta[last] -= 1;
        }
    }
    let mut counts = Vec::with_capacity(n);
    let mut running = 0isize;
    for d in &delta[..n] {
        running += d;
        counts.push(running.max(0) as usize);
    }
    counts
}

/// Consecutive ranges of compute positions, one per chunk.
fn cut(
    compute: &[usize],
    needs: &[BTreeSet<usize>],
    size: &[u64],
    crossing: &[usize],
    ops: &[Operation],
    max_bytes: u64,
) -> Result<Vec<std::ops::Range<usize>>, PlanError> {
    let n = compute.len();
    let mut ranges = Vec::new();
    let mut start = 0;
    while start < n {
        let mut held: BTreeSet<usize> = BTreeSet::new();
        let mut bytes = blob::HEADER_SIZE;
        // Weight bytes of the chunk start..=e, for every e that fits.
        let mut fits = Vec::new();
        for need in &needs[start..] {
            let added: u64 = need
                .iter()
                .filter(|k| !held.contains(*k))
                .map(|&k| size[k])
                .sum();
            if bytes + added > max_bytes {
                break;
            }
            held.extend(need);
            bytes += added;
            fits.push(bytes);
        }
        let Some(&full) = fits.last() else {
            return Err(PlanError::OpTooLarge {
                op: ops[compute[start]].name.clone(),
                bytes: blob::HEADER_SIZE + needs[start].iter().map(|&k| size[k]).sum::<u64>(),
                max: max_bytes,
            });
        };
        let end = if start + fits.len() == n {
            n
        } else {
            let floor = blob::HEADER_SIZE + (full - blob::HEADER_SIZE) / 2;
            let best = (0..fits.len())
                .filter(|&k| fits[k] >= floor)
                .min_by_key(|&k| (crossing[start + k], std::cmp::Reverse(k)))
                .unwrap_or(fits.len() - 1);
            start + best + 1
        };
        ranges.push(start..end);
        start = end;
    }
    Ok(ranges)
}

/// The chunk holding ops `set` (indices into main's ops, ascending) of `program`, chunk `k`
/// of `count`; its inputs and outputs are set by [`connect`].
fn chunk_program(program: &Program, set: &[usize], k: usize, count: usize) -> Program {
    let main = program.main();
    let operations = set
        .iter()
        .map(|&i| main.block.operations[i].clone())
        .collect();
    let mut metadata = program.metadata.clone();
    metadata.insert(CHUNK_METADATA_KEY.into(), format!("{}/{count}", k + 1));
    Program {
        target: program.target,
        functions: vec![Function {
            name: main.name.clone(),
            inputs: Vec::new(),
            states: Vec::new(),
            input_shapes: BTreeMap::new(),
            block: crate::ir::Block {
                operations,
                outputs: Vec::new(),
            },
        }],
        metadata,
        description: Default::default(),
    }
}

/// How a value whose dtype cannot cross a cut is carried: cast to `dtype` as `carrier` (with
/// the constant `carrier_dtype`) and cast back as `restored` (with `restored_dtype`).
struct Carrier {
    dtype: DType,
    carrier: String,
    carrier_dtype: String,
    restored: String,
    restored_dtype: String,
}

/// Sets each chunk's inputs (values it reads but does not define) and outputs (values later
/// chunks read, and the model outputs it defines), casting values whose dtype cannot cross.
fn connect(main: &Function, target: Target, chunks: &mut [Program]) -> Result<(), PlanError> {
    let types = main.var_types();
    let mut names = NameTable::of_function(main);
    let last = chunks.len() - 1;
    // The chunk defining each runtime value.
    let mut owner: HashMap<String, usize> = HashMap::new();
    for (k, chunk) in chunks.iter().enumerate() {
        for op in chunk
            .main()
            .block
            .operations
            .iter()
            .filter(|op| !is_constant(op))
        {
            for o in &op.outputs {
                owner.insert(o.name.clone(), k);
            }
        }
    }
    // The values each chunk reads from outside, in first-read order.
    let reads: Vec<Vec<String>> = chunks
        .iter()
        .map(|chunk| {
            let ops = &chunk.main().block.operations;
            let local: BTreeSet<&str> = ops
                .iter()
                .flat_map(|op| op.outputs.iter().map(|o| o.name.as_str()))
                .collect();
            let mut outside: Vec<String> = Vec::new();
            for name in ops.iter().flat_map(|op| op.input_vars()) {
                if !local.contains(name) && !outside.iter().any(|n| n == name) {
                    outside.push(name.to_string());
                }
            }
            outside
        })
        .collect();
    let mut outputs: Vec<Vec<String>> = vec![Vec::new(); chunks.len()];
    for name in &main.block.outputs {
        let k = match owner.get(name) {
            Some(&k) => k,
            None if main.inputs.iter().any(|v| v.name == *name) => continue,
            None => last, // a constant, placed in the last chunk
        };
        if !outputs[k].contains(name) {
            outputs[k].push(name.clone());
        }
    }
    let mut carriers: BTreeMap<String, Carrier> = BTreeMap::new();
    for name in reads.iter().flatten() {
        let Some(&k) = owner.get(name) else {
            continue;
        };
        let dtype = types[name.as_str()].dtype;
        let carried = match carrier_dtype(name, dtype, target)? {
            None => name.clone(),
            Some(carrier) => {
                let c = carriers.entry(name.clone()).or_insert_with(|| {
                    let carrier_name = names.fresh(&format!("{name}_as_{}", carrier.name()));
                    let restored = names.fresh(&format!("{name}_from_{}", carrier.name()));
                    Carrier {
                        dtype: carrier,
                        carrier_dtype: names.fresh(&format!("{carrier_name}_dtype")),
                        restored_dtype: names.fresh(&format!("{restored}_dtype")),
                        carrier: carrier_name,
                        restored,
                    }
                });
                c.carrier.clone()
            }
        };
        if !outputs[k].contains(&carried) {
            outputs[k].push(carried);
        }
    }
    for (k, chunk) in chunks.iter_mut().enumerate() {
        let function = chunk.main_mut();
        // Casts at the end of the chunk for the values it hands on through a carrier.
        for (name, c) in &carriers {
            if owner.get(name) == Some(&k) {
                let shape = &types[name.as_str()].shape;
                let ops = &mut function.block.operations;
                ops.extend(cast(name, &c.carrier, &c.carrier_dtype, c.dtype, shape));
            }
        }
        // Inputs: model inputs and earlier chunks' values (carriers cast back first).
        let mut inputs = Vec::new();
        let mut input_shapes = BTreeMap::new();
        let mut prologue = Vec::new();
        for name in &reads[k] {
            let ty = types[name.as_str()].clone();
            match carriers.get(name) {
                Some(c) => {
                    let carrier_ty = TensorType {
                        dtype: c.dtype,
                        shape: ty.shape.clone(),
                    };
                    add_input(&mut inputs, &mut input_shapes, main, &c.carrier, carrier_ty);
                    prologue.extend(cast(
                        &c.carrier,
                        &c.restored,
                        &c.restored_dtype,
                        ty.dtype,
                        &ty.shape,
                    ));
                    function.block.rename_uses(name, &c.restored);
                }
                None => add_input(&mut inputs, &mut input_shapes, main, name, ty),
            }
        }
        function.inputs = inputs;
        function.input_shapes = input_shapes;
        prologue.append(&mut function.block.operations);
        function.block.operations = prologue;
        function.block.outputs = std::mem::take(&mut outputs[k]);
    }
    Ok(())
}

/// The dtype a value of `dtype` crosses a cut as: `None` when it can cross as it is, int32 for
/// bool and narrow integers, fp32 for fp16 before iOS16.
fn carrier_dtype(name: &str, dtype: DType, target: Target) -> Result<Option<DType>, PlanError> {
    match dtype {
        DType::F32 | DType::I32 => Ok(None),
        DType::F16 if target >= Target::IOS16 => Ok(None),
        DType::F16 => Ok(Some(DType::F32)),
        DType::Bool | DType::I8 | DType::U8 | DType::I16 | DType::U16 => Ok(Some(DType::I32)),
        _ => Err(PlanError::Crossing {
            name: name.to_string(),
            dtype,
        }),
    }
}

/// Adds input `name` of type `ty` to `function`, with the accepted sizes of its symbolic
/// dimensions: a model input's own, or for a value computed from them the range of the model
/// input dimension with the same symbol (unbounded when no input has it).
fn add_input(
    inputs: &mut Vec<Var>,
    input_shapes: &mut BTreeMap<String, ShapeSet>,
    main: &Function,
    name: &str,
    ty: TensorType,
) {
    if let Some(set) = main.input_shapes.get(name) {
        input_shapes.insert(name.to_string(), set.clone());
    } else if ty.static_shape().is_none() {
        let ranges = ty
            .shape
            .iter()
            .map(|d| match d {
                Dim::Fixed(n) => (*n, Some(*n)),
                Dim::Symbol(s) => symbol_range(main, s).unwrap_or((1, None)),
            })
            .collect();
        input_shapes.insert(name.to_string(), ShapeSet::Ranges(ranges));
    }
    inputs.push(Var::new(name, ty));
}

/// The sizes model inputs accept for dimension `symbol` (the span of an enumeration).
fn symbol_range(main: &Function, symbol: &str) -> Option<(usize, Option<usize>)> {
    main.inputs.iter().find_map(|v| {
        let axis =
            v.ty.shape
                .iter()
                .position(|d| matches!(d, Dim::Symbol(s) if s == symbol))?;
        match main.input_shapes.get(&v.name)? {
            ShapeSet::Ranges(r) => r.get(axis).copied(),
            ShapeSet::Enumerated(shapes) => {
                let sizes = shapes.iter().filter_map(|s| s.get(axis).copied());
                let lo = sizes.clone().min()?;
                Some((lo, sizes.max()))
            }
        }
    })
}

/// `to = cast(from, dtype)` with the constant `dtype_const` it reads; `shape` is both sides'.
fn cast(from: &str, to: &str, dtype_const: &str, dtype: DType, shape: &[Dim]) -> [Operation; 2] {
    let constant = Operation::constant(dtype_const, Tensor::scalar_string(dtype.name()));
    let cast = Operation {
        op_type: "cast".into(),
        name: to.to_string(),
        inputs: vec![
            ("x".into(), vec![Argument::Var(from.to_string())]),
            ("dtype".into(), vec![Argument::Var(dtype_const.to_string())]),
        ],
        outputs: vec![Var::new(
            to,
            TensorType {
                dtype,
                shape: shape.to_vec(),
            },
        )],
        attributes: BTreeMap::new(),
        origin: None,
    };
    [constant, cast]
}
