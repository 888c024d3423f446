#!/usr/bin/env python3
"""Check .mlpackage directories with coremltools (no Core ML runtime needed; works on Linux).

Usage: .venv/bin/python scripts/coreml_check.py PKG [PKG ...]

For each package, in a child process (so that a crash in coremltools' native code fails that
package instead of the whole run):
  1. coremltools.models.MLModel(PKG, skip_model_load=True) loads it;
  2. the ML program parses into a pymil Program, with weights read from
     PKG/Data/com.apple.CoreML/weights (the same call coremltools 9.0 makes in
     coremltools/models/utils.py when it rewrites a model);
  3. the inputs and outputs of the main function match spec.description: same names, and each
     dtype and static shape is the declared one; state inputs are listed in description.state
     (not description.input) as fp16 arrays of the state's static shape. A multifunction
     package (iOS18) instead has no top-level inputs, outputs or states, one FunctionDescription
     per program function (same names), and a defaultFunctionName naming one of them; each
     function must load with MLModel(PKG, function_name=NAME) and match its FunctionDescription
     (inputs, outputs and states) as above; image inputs are fp32 [1, C, H, W] tensors of the
     declared size and color space, and classifier outputs (string / int64 label, dictionary
     probabilities) come from the program's classify op;
  4. if a sidecar PKG-without-.mlpackage + ".weights.npz" exists (written by mlpack's tests: our
     interpreter's decompressed weights, one float32 array per constexpr chain, keyed by the
     chain's final output var), coremltools decompresses the package's weights and every
     decompressed const must equal the sidecar array of the same name exactly, and the sidecar
     must name exactly the package's constexpr chain outputs (see check_decompressed_weights).
  5. if a sidecar PKG-without-.mlpackage + ".description.json" exists (written by mlpack's
     tests from the flags they passed), its "description" holds part of the model description
     in protobuf's JSON form (json_format.MessageToDict of spec.description as coremltools
     parses it), and every field it holds must have that value in the package; its
     "class_labels", if present, must be the classes of the program's classify op.
Prints one JSON line per package, {"path", "ok", "error"}, and exits 1 if any failed.
"""

import json
import multiprocessing
import os
import sys
import traceback

import numpy as np

WEIGHTS_SUBDIR = os.path.join("Data", "com.apple.CoreML", "weights")
PACKAGE_SUFFIX = ".mlpackage"
SIDECAR_SUFFIX = ".weights.npz"
DESCRIPTION_SUFFIX = ".description.json"
CHILD_TIMEOUT_SECONDS = 600


class CheckError(Exception):
    """A package does not conform; the message says why."""


def declared_dtype(array_type):
    """The pymil dtype name for a description's ArrayFeatureType."""
    from coremltools.proto import FeatureTypes_pb2 as ft

    names = {
        ft.ArrayFeatureType.FLOAT32: "fp32",
        ft.ArrayFeatureType.FLOAT16: "fp16",
        ft.ArrayFeatureType.INT32: "int32",
        ft.ArrayFeatureType.DOUBLE: "fp64",
    }
    if array_type.dataType not in names:
        raise CheckError(f"unknown multiArray dataType {array_type.dataType}")
    return names[array_type.dataType]


def compare_feature(kind, feature, var):
    """Compare one description feature with the program variable of the same name."""
    from coremltools.converters.mil.mil import types
    from coremltools.converters.mil.mil.types.symbolic import is_symbolic

    which = feature.type.WhichOneof("Type")
    if which == "imageType" and kind == "input":
        compare_image(feature, var)
        return
    if which in ("stringType", "int64Type", "dictionaryType") and kind == "output":
        compare_classifier_output(feature, var)
        return
    if which != "multiArrayType":
        raise CheckError(f"{kind} {feature.name!r}: unsupported feature type {which}")
    array_type = feature.type.multiArrayType
    want_dtype = declared_dtype(array_type)
    dtype = var.dtype
    if types.is_tensor(var.sym_type):
        dtype = var.sym_type.get_primitive()
    got_dtype = types.builtin_to_string(dtype)
    if got_dtype != want_dtype:
        raise CheckError(f"{kind} {feature.name!r}: program dtype {got_dtype}, "
                         f"description says {want_dtype}")
    got_shape = list(var.shape) if var.shape is not None else []
    want_shape = [int(d) for d in array_type.shape]
    flexible = array_type.WhichOneof("ShapeFlexibility") is not None
    if not want_shape:
        return  # no shape declared (coremltools writes none for outputs of flexible models)
    if len(got_shape) != len(want_shape):
        raise CheckError(f"{kind} {feature.name!r}: program rank {len(got_shape)} "
                         f"{got_shape}, description shape {want_shape}")
    for axis, (got, want) in enumerate(zip(got_shape, want_shape)):
        if is_symbolic(got):
            if not flexible:
                raise CheckError(f"{kind} {feature.name!r}: program dim {axis} is symbolic "
                                 f"({got}) but the description declares static {want_shape}")
        elif int(got) != want:
            raise CheckError(f"{kind} {feature.name!r}: program shape {got_shape}, "
                             f"description shape {want_shape} (axis {axis})")


def compare_image(feature, var):
    """An image input is an fp32 [1, C, H, W] tensor in the program (C = 3 for RGB and BGR, 1
    for grayscale), of the declared height and width unless its size is flexible (what
    coremltools' backend writes for ct.ImageType inputs)."""
    from coremltools.converters.mil.mil import types
    from coremltools.converters.mil.mil.types.symbolic import is_symbolic
    from coremltools.proto import FeatureTypes_pb2 as ft

    image = feature.type.imageType
    channels = {ft.ImageFeatureType.RGB: 3, ft.ImageFeatureType.BGR: 3,
                ft.ImageFeatureType.GRAYSCALE: 1}
    if image.colorSpace not in channels:
        raise CheckError(f"image input {feature.name!r}: color space {image.colorSpace}")
    if not types.is_tensor(var.sym_type) or types.builtin_to_string(
            var.sym_type.get_primitive()) != "fp32":
        raise CheckError(f"image input {feature.name!r}: program type {var.sym_type}")
    shape = list(var.shape)
    want = [1, channels[image.colorSpace], image.height, image.width]
    flexible = image.WhichOneof("SizeFlexibility") is not None
    if len(shape) != 4:
        raise CheckError(f"image input {feature.name!r}: program shape {shape}")
    for axis, (got, expected) in enumerate(zip(shape, want)):
        if is_symbolic(got) and flexible and axis >= 2:
            continue
        if is_symbolic(got) or int(got) != expected:
            raise CheckError(f"image input {feature.name!r}: program shape {shape}, "
                             f"description {want}")


def compare_classifier_output(feature, var):
    """A classifier's label output is a str (or int64) scalar, its probabilities a dict keyed
    by the same type, both produced by the program's classify op."""
    from coremltools.converters.mil.mil import types

    which = feature.type.WhichOneof("Type")
    if var.op is None or var.op.op_type != "classify":
        raise CheckError(f"output {feature.name!r} ({which}) is not produced by classify")
    if which == "dictionaryType":
        if not types.is_dict(var.sym_type):
            raise CheckError(f"output {feature.name!r}: program type {var.sym_type}")
        key = feature.type.dictionaryType.WhichOneof("KeyType")
        want_key = types.str if key == "stringKeyType" else types.int64
        if var.sym_type.T[0] != want_key:
            raise CheckError(f"output {feature.name!r}: dictionary keys {var.sym_type.T[0]}, "
                             f"description {key}")
        return
    want = types.str if which == "stringType" else types.int64
    if var.sym_type != want:
        raise CheckError(f"output {feature.name!r}: program type {var.sym_type}, "
                         f"description {which}")


def compare_state(feature, var):
    """Compare a description state (ModelDescription.state, a StateFeatureType wrapping a
    multi-array) with the main function's input of the same name, which must be a state of an
    fp16 tensor of the same static shape (what coremltools' backend requires of states)."""
    from coremltools.converters.mil.mil import types

    which = feature.type.WhichOneof("Type")
    if which != "stateType":
        raise CheckError(f"state {feature.name!r}: description feature type is {which}")
    array_type = feature.type.stateType.arrayType
    if not types.is_state(var.sym_type):
        raise CheckError(f"state {feature.name!r}: the function input is not a state")
    wrapped = var.sym_type.wrapped_type()
    got_dtype = types.builtin_to_string(wrapped.get_primitive())
    if got_dtype != "fp16" or declared_dtype(array_type) != "fp16":
        raise CheckError(f"state {feature.name!r}: program {got_dtype}, description "
                         f"{declared_dtype(array_type)}; states must be fp16")
    got_shape = [int(d) for d in wrapped.get_shape()]
    want_shape = [int(d) for d in array_type.shape]
    if got_shape != want_shape:
        raise CheckError(f"state {feature.name!r}: program shape {got_shape}, description "
                         f"shape {want_shape}")


def sidecar_path(path):
    """`dir/name.weights.npz` for the package `dir/name.mlpackage` (None for other names)."""
    path = path.rstrip(os.sep)
    if not path.endswith(PACKAGE_SUFFIX):
        return None
    return path[: -len(PACKAGE_SUFFIX)] + SIDECAR_SUFFIX


def all_operations(block):
    """Every operation of `block` and of the blocks nested in its ops, in program order."""
    for op in block.operations:
        yield op
        for nested in op.blocks:
            yield from all_operations(nested)


def is_constexpr(op):
    return op.op_type.startswith("constexpr_")


def constexpr_chain_outputs(function):
    """Names of the outputs of constexpr ops that no other constexpr op consumes: the final
    vars of the decompression chains (a chain such as blockwise_shift_scale -> lut_to_dense or
    lut_to_sparse -> sparse_to_dense ends in one var), and the number of constexpr ops."""
    ops = [op for op in all_operations(function) if is_constexpr(op)]
    finals = set()
    for op in ops:
        for var in op.outputs:
            if not any(is_constexpr(child) for child in var.child_ops):
                finals.add(var.name)
    return finals, len(ops)


def decompressed_consts(model):
    """{name: value} of the consts that coremltools' weight decompression makes.

    This is `coremltools.optimize.coreml.decompress_weights(model)` without its last step:
    decompress_weights applies the WeightDecompressor graph pass (each constexpr op becomes a
    `const` named like the op's output var, valued by the op's `materialized_val_inference`)
    and then re-converts the program with coremltools' default optimization pipeline, which
    fuses conv + batch_norm, deduplicates consts and casts fp32 weights to fp16, so most
    decompressed names and values would no longer be comparable. `return_pymil_prog=True`
    stops right after the pass.
    """
    from coremltools.models import utils as model_utils
    from coremltools.optimize.coreml._quantization_passes import WeightDecompressor

    program = model_utils._apply_graph_pass(
        model, WeightDecompressor(op_selector=lambda op: True), return_pymil_prog=True)
    if "main" not in program.functions:
        raise CheckError("decompressed program has no main function")
    consts = {}
    for op in all_operations(program.functions["main"]):
        if is_constexpr(op):
            raise CheckError(f"coremltools left constexpr op {op.name!r} ({op.op_type}) "
                             "undecompressed")
        if op.op_type == "const":
            consts[op.outputs[0].name] = op.outputs[0].val
    return consts


def compare_weight(name, reference, ours):
    """Raise CheckError unless `ours` (float32) equals coremltools' `reference` exactly.

    The comparison is in the reference's dtype, widened: fp16 and fp32 (and integer) values
    convert to float64 exactly, so equality there is equality of the stored values; NaNs
    compare equal to NaNs.
    """
    reference = np.asarray(reference)
    if ours.dtype != np.float32:
        raise CheckError(f"sidecar array {name!r} is {ours.dtype}, expected float32")
    if tuple(reference.shape) != tuple(ours.shape):
        raise CheckError(f"decompressed weight {name!r}: coremltools shape "
                         f"{list(reference.shape)}, ours {list(ours.shape)}")
    want = reference.astype(np.float64)
    got = ours.astype(np.float64)
    equal = (want == got) | (np.isnan(want) & np.isnan(got))
    if equal.all():
        return
    differing = np.argwhere(~equal)
    first = tuple(int(i) for i in differing[0])
    max_abs = float(np.max(np.abs(want - got)[~equal]))  # nan if a NaN meets a number
    raise CheckError(
        f"decompressed weight {name!r} ({reference.dtype}{list(reference.shape)}) differs: "
        f"max abs diff {max_abs:.6g}, {len(differing)} of {want.size} elements differ, first "
        f"at {list(first)}: coremltools {float(want[first])!r}, ours {float(got[first])!r}")


def check_decompressed_weights(model, function, sidecar):
    """Compare coremltools' decompression of the package with mlpack's (the sidecar)."""
    finals, op_count = constexpr_chain_outputs(function)
    with np.load(sidecar, allow_pickle=False) as archive:
        ours = {key: archive[key] for key in archive.files}
    missing = sorted(finals - ours.keys())
    if missing:
        raise CheckError(f"{len(missing)} of {len(finals)} constexpr chain outputs have no "
                         f"array in {os.path.basename(sidecar)}: {missing[:5]}")
    extra = sorted(ours.keys() - finals)
    if extra:
        raise CheckError(f"{os.path.basename(sidecar)} has arrays that name no constexpr chain "
                         f"output of the package ({op_count} constexpr ops): {extra[:5]}")
    consts = decompressed_consts(model)
    for name in sorted(finals):
        if name not in consts:
            raise CheckError(f"coremltools' decompression made no const named {name!r}")
        compare_weight(name, consts[name], ours[name])


def check_package(path):
    """Raise CheckError (or any coremltools exception) if `path` does not conform."""
    import coremltools as ct
    from coremltools.converters.mil.frontend.milproto import load as milproto

    if not os.path.isdir(path):
        raise CheckError("not a directory")
    model = ct.models.MLModel(path, skip_model_load=True)
    spec = model.get_spec()
    if spec.WhichOneof("Type") != "mlProgram":
        raise CheckError(f"model type is {spec.WhichOneof('Type')}, not mlProgram")
    weights_dir = os.path.join(path, WEIGHTS_SUBDIR)
    if model.weights_dir is not None and os.path.realpath(model.weights_dir) != os.path.realpath(
            weights_dir):
        # MLModel copies packages it has to rewrite; it should not have needed to here.
        raise CheckError(f"coremltools resolved the weights to {model.weights_dir}")
    program = milproto.load(spec, spec.specificationVersion, file_weights_dir=weights_dir)
    description = spec.description
    if description.functions:
        check_multifunction(path, description, program)
        return
    if "main" not in program.functions:
        raise CheckError(f"no main function (functions: {sorted(program.functions)})")
    main = program.functions["main"]
    check_features(main, description.input, description.output, description.state)

    sidecar = sidecar_path(path)
    if sidecar is not None and os.path.isfile(sidecar):
        check_decompressed_weights(model, main, sidecar)
    expected = path[: -len(PACKAGE_SUFFIX)] + DESCRIPTION_SUFFIX
    if path.endswith(PACKAGE_SUFFIX) and os.path.isfile(expected):
        check_description(spec, main, expected)


def check_description(spec, main, expected_path):
    """Every field of the sidecar's "description" must hold the same value in the package's
    description, in protobuf's JSON form; its "class_labels" must be the classify op's
    classes."""
    from google.protobuf import json_format

    with open(expected_path) as f:
        want = json.load(f)
    got = json_format.MessageToDict(spec.description)
    mismatch = subset_mismatch(want.get("description", {}), got, "description")
    if mismatch:
        raise CheckError(mismatch)
    if "class_labels" in want:
        ops = [op for op in main.operations if op.op_type == "classify"]
        if len(ops) != 1:
            raise CheckError(f"{len(ops)} classify ops, expected one")
        classes = [c.item() if hasattr(c, "item") else c for c in ops[0].classes.val]
        if classes != want["class_labels"]:
            raise CheckError(f"classify classes {classes}, expected {want['class_labels']}")


def subset_mismatch(want, got, where):
    """Why `got` does not hold `want` (objects: every key of `want`; lists: same length,
    element by element; scalars: equal), or None."""
    if isinstance(want, dict):
        if not isinstance(got, dict):
            return f"{where}: expected an object, got {got!r}"
        for key, value in want.items():
            if key not in got:
                return f"{where}.{key}: missing (has {sorted(got)})"
            mismatch = subset_mismatch(value, got[key], f"{where}.{key}")
            if mismatch:
                return mismatch
        return None
    if isinstance(want, list):
        if not isinstance(got, list) or len(got) != len(want):
            return f"{where}: expected {len(want)} items, got {got!r}"
        for i, (w, g) in enumerate(zip(want, got)):
            mismatch = subset_mismatch(w, g, f"{where}[{i}]")
            if mismatch:
                return mismatch
        return None
    return None if want == got else f"{where}: expected {want!r}, got {got!r}"


def check_multifunction(path, description, program):
    """Check a multifunction package's description against its program, function by function
    (the decompressed-weights sidecar applies to single-function packages only)."""
    import coremltools as ct

    if description.input or description.output or description.state:
        raise CheckError("a multifunction description has top-level inputs, outputs or states")
    names = [f.name for f in description.functions]
    if len(set(names)) != len(names):
        raise CheckError(f"function names repeat in the description: {names}")
    if sorted(names) != sorted(program.functions):
        raise CheckError(f"description functions {sorted(names)} differ from program functions "
                         f"{sorted(program.functions)}")
    if description.defaultFunctionName not in names:
        raise CheckError(f"defaultFunctionName {description.defaultFunctionName!r} is not one "
                         f"of {names}")
    for function in description.functions:
        model = ct.models.MLModel(path, skip_model_load=True, function_name=function.name)
        if model.function_name != function.name:
            raise CheckError(f"coremltools loaded function {model.function_name!r} for "
                             f"{function.name!r}")
        try:
            check_features(program.functions[function.name], function.input, function.output,
                           function.state)
        except CheckError as error:
            raise CheckError(f"function {function.name!r}: {error}") from None


def check_features(function, declared_inputs, declared_outputs, declared_states):
    """The function's inputs and outputs must be the declared features, its state inputs the
    declared states."""
    inputs = function.inputs
    declared_inputs = list(declared_inputs)
    declared_states = list(declared_states)
    declared = [f.name for f in declared_inputs] + [f.name for f in declared_states]
    if sorted(inputs) != sorted(declared):
        raise CheckError(f"inputs {sorted(inputs)} differ from description inputs and states "
                         f"{sorted(declared)}")
    for feature in declared_inputs:
        compare_feature("input", feature, inputs[feature.name])
    for feature in declared_states:
        compare_state(feature, inputs[feature.name])

    outputs = {var.name: var for var in function.outputs}
    declared_outputs = list(declared_outputs)
    if [v.name for v in function.outputs] != [f.name for f in declared_outputs]:
        raise CheckError(f"outputs {[v.name for v in function.outputs]} differ from "
                         f"description outputs {[f.name for f in declared_outputs]}")
    for feature in declared_outputs:
        compare_feature("output", feature, outputs[feature.name])


def child(path, connection):
    """Child process body: send None or an error message back."""
    try:
        check_package(path)
        connection.send(None)
    except CheckError as error:
        connection.send(str(error))
    except Exception as error:  # noqa: BLE001 -- any coremltools failure means "not conformant"
        last = traceback.extract_tb(error.__traceback__)[-1]
        where = f"{os.path.basename(last.filename)}:{last.lineno}"
        connection.send(f"{type(error).__name__}: {error} (at {where})")


def run_isolated(path):
    """Check one package in a child process; return None or an error message."""
    context = multiprocessing.get_context("fork")
    reader, writer = context.Pipe(duplex=False)
    process = context.Process(target=child, args=(path, writer))
    process.start()
    writer.close()
    process.join(CHILD_TIMEOUT_SECONDS)
    if process.is_alive():
        process.kill()
        process.join()
        return f"checker timed out after {CHILD_TIMEOUT_SECONDS} s"
    if reader.poll():
        return reader.recv()
    return f"checker process died (exit code {process.exitcode})"


def main(argv):
    if not argv or any(a in ("-h", "--help") for a in argv):
        print(__doc__.strip())
        return 0 if argv else 2
    import coremltools  # noqa: F401 -- imported once here, inherited by each forked child
    failed = False
    for path in argv:
        error = run_isolated(path)
        failed |= error is not None
        print(json.dumps({"path": path, "ok": error is None, "error": error}), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
