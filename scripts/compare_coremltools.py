#!/usr/bin/env python3
"""Compress the same fixture packages with coremltools 9.0 and with mlpack and compare, weight by
weight, against the original weights.

Usage: .venv/bin/python scripts/compare_coremltools.py --mlpack target/debug/mlpack --out DIR
           [--all | --models resnet18,mobilenet_v3_small --modes MODE,...] [--fixtures DIR]

By default it runs the CI plan (DEFAULT_PLAN: every mode once at iOS18, each on the model
where coremltools is quick enough for CI, and three modes at iOS16; about 90 s of coremltools
time on 2 cores); --all runs every mode on both models (about 190 s of coremltools time);
--models/--modes/--targets pick a cross product (modes that need iOS18 are left out below it).

For each model, `mlpack convert` turns the materialised fixture
(target/fixtures/models/<case>/model.onnx, written by the Rust tests) into an fp16 iOS18 (or iOS16)
package (fp32 for the *-fp32 modes); coremltools (cto.coreml.linear_quantize_weights / palettize_weights / prune_weights
with the Op*Config of the mode) and mlpack (`mlpack quantize|palettize|prune ... --no-verify`,
same settings) compress that same package. Both results are parsed and decompressed by
coremltools (coreml_check.decompressed_consts), and each weight is matched to the original
const it replaces (by the op input it feeds). Checks per mode:
  - linear quantization, uniform and unique palettization, pruning: every parameter of the
    weight's constexpr ops (integers, scales, offsets, LUTs, indices, masks, non-zero values)
    is identical, dtypes included (an absent offset equals an all-zero one);
  - k-means palettization: mlpack's reconstruction SSE <= coremltools' SSE * (1 + 1e-6);
  - both tools compress the same set of weights.
Prints a table (times are informative: mlpack is usually a debug build here) and exits 1 on
any failure, 2 on a usage error.
"""

import argparse
import logging
import os
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass, field

# numpy 2.4's AVX512_ICL float16 sort kernel misorders some arrays on this project's machines
# (np.sort(w) not monotonic, np.unique(w) with duplicates), and coremltools sorts fp16 weights
# (np.unique) for k-means (kmeans1d input) and for `unique` palettization. Compare against
# coremltools as it behaves on a correct machine: keep numpy off that kernel. Set before numpy
# is imported; child processes inherit it.
os.environ.setdefault("NPY_DISABLE_CPU_FEATURES", "AVX512_ICL")

import numpy as np  # noqa: E402

os.environ.setdefault("TQDM_DISABLE", "1")  # coremltools' per-pass progress bars

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import coreml_check  # noqa: E402 -- shares the decompression and chain helpers

FIXTURE_CASES = {"resnet18": "resnet18_op17", "mobilenet_v3_small": "mobilenet_v3_small_op17"}
KMEANS_SSE_SLACK = 1e-6
# Suffixes coremltools appends to a compressed const's name (docs/format.md §4).
COMPRESSED_SUFFIXES = ("_palettized_pcs", "_palettized", "_quantized", "_sparsified")


@dataclass
class Mode:
    """One compression setting, as coremltools' config and as mlpack's command line."""

    name: str
    check: str  # "identical" (all constexpr params) or "kmeans" (SSE)
    ct_function: str  # cto.coreml function name
    ct_config: dict  # keyword arguments of the Op*Config
    mlpack_args: list = field(default_factory=list)
    ios18_only: bool = False  # int4, per-block, grouped or vector LUTs
    precision: str = "fp16"  # of the base package both tools compress


MODES = [
    Mode("int8-per-channel-sym", "identical", "linear_quantize_weights",
         dict(mode="linear_symmetric", dtype="int8", granularity="per_channel"),
         ["quantize", "--dtype", "int8", "--mode", "symmetric", "--granularity", "per-channel"]),
    Mode("uint8-per-tensor-affine", "identical", "linear_quantize_weights",
         dict(mode="linear", dtype="uint8", granularity="per_tensor"),
         ["quantize", "--dtype", "uint8", "--mode", "affine", "--granularity", "per-tensor"]),
    Mode("int4-per-block-32", "identical", "linear_quantize_weights",
         dict(mode="linear_symmetric", dtype="int4", granularity="per_block", block_size=32),
         ["quantize", "--dtype", "int4", "--mode", "symmetric", "--granularity", "per-block",
          "--block-size", "32"], ios18_only=True),
    Mode("kmeans-4bit", "kmeans", "palettize_weights",
         dict(mode="kmeans", nbits=4, granularity="per_tensor"),
         ["palettize", "--nbits", "4", "--mode", "kmeans", "--granularity", "per-tensor"]),
    Mode("kmeans-4bit-group16", "kmeans", "palettize_weights",
         dict(mode="kmeans", nbits=4, granularity="per_grouped_channel", group_size=16),
         ["palettize", "--nbits", "4", "--mode", "kmeans", "--granularity",
          "per-grouped-channel", "--group-size", "16"], ios18_only=True),
    Mode("kmeans-2bit-vector2", "kmeans", "palettize_weights",
         dict(mode="kmeans", nbits=2, cluster_dim=2),
         ["palettize", "--nbits", "2", "--mode", "kmeans", "--cluster-dim", "2"],
         ios18_only=True),
    # fp32 weights: coremltools clusters them with scikit-learn's KMeans (its kmeans1d only
    # takes fp16 weights); mlpack exactly below 2^18 values, from a histogram above.
    Mode("kmeans-4bit-fp32", "kmeans", "palettize_weights",
         dict(mode="kmeans", nbits=4, granularity="per_tensor"),
         ["palettize", "--nbits", "4", "--mode", "kmeans", "--granularity", "per-tensor"],
         precision="fp32"),
    Mode("kmeans-4bit-group16-fp32", "kmeans", "palettize_weights",
         dict(mode="kmeans", nbits=4, granularity="per_grouped_channel", group_size=16),
         ["palettize", "--nbits", "4", "--mode", "kmeans", "--granularity",
          "per-grouped-channel", "--group-size", "16"], ios18_only=True, precision="fp32"),
    Mode("uniform-4bit", "identical", "palettize_weights",
         dict(mode="uniform", nbits=4),
         ["palettize", "--nbits", "4", "--mode", "uniform"]),
    Mode("unique", "identical", "palettize_weights",
         dict(mode="unique"),
         ["palettize", "--mode", "unique"]),
    Mode("prune-50", "identical", "prune_weights",
         dict(target_sparsity=0.5),
         ["prune", "--target-sparsity", "0.5"]),
    Mode("prune-2:4", "identical", "prune_weights",
         dict(n_m_ratio=(2, 4)),
         ["prune", "--n-m", "2:4"]),
]
# Which modes run on which (model, target) by default (CI). coremltools' grouped k-means runs
# scikit-learn on every group smaller than 10 000 weights (~38 s on either model), and `unique`
# is slow on resnet18 (~30 s), so each of those runs on one model only. At iOS16 the same
# settings give the iOS16 op forms (attributes, packed indices and masks). The fp32 k-means mode
# runs on mobilenet_v3_small (scikit-learn on 45 weights; its two largest go through mlpack's
# histogram path, the others through the exact one).
DEFAULT_PLAN = {
    ("resnet18", "iOS18"): ["int8-per-channel-sym", "uint8-per-tensor-affine",
                            "int4-per-block-32", "kmeans-4bit", "kmeans-2bit-vector2",
                            "uniform-4bit", "prune-50", "prune-2:4"],
    ("mobilenet_v3_small", "iOS18"): ["kmeans-4bit-group16", "unique", "kmeans-4bit-fp32"],
    ("resnet18", "iOS16"): ["int8-per-channel-sym", "kmeans-4bit", "prune-50"],
}
TARGETS = ("iOS16", "iOS17", "iOS18")
# `unique` needs weights with at most 256 distinct values: it runs on the base package after a
# uniform 4-bit round trip (see few_valued_package).
NEEDS_FEW_VALUES = {"unique"}


class Failure(Exception):
    """A setup step failed; the message says which."""


# ----------------------------------------------------------------------------------------------
# Programs, chains and weights


def load_program(path):
    """The package at `path` parsed into a pymil Program (weights read from the package)."""
    import coremltools as ct
    from coremltools.converters.mil.frontend.milproto import load as milproto

    model = ct.models.MLModel(path, skip_model_load=True)
    spec = model.get_spec()
    return milproto.load(spec, spec.specificationVersion, file_weights_dir=model.weights_dir)


def decompress_in_place(program):
    """{name: value} of the consts coremltools' WeightDecompressor pass (the pass that
    decompress_weights applies, see coreml_check.decompressed_consts) makes in `program`."""
    from coremltools.optimize.coreml._quantization_passes import WeightDecompressor

    WeightDecompressor(op_selector=lambda op: True).apply(program)
    return {op.outputs[0].name: op.outputs[0].val
            for op in coreml_check.all_operations(program.functions["main"])
            if op.op_type == "const"}


def consumer_key(var):
    """(op name, input name) of the first non-constexpr op that reads `var`, or None."""
    for child in var.child_ops:
        if coreml_check.is_constexpr(child):
            continue
        for param, bound in child.inputs.items():
            values = bound if isinstance(bound, (list, tuple)) else [bound]
            if any(v is var for v in values):
                return (child.name, param)
    return None


def base_weights(function):
    """{const name: value} and {consumer key: const name} of the base package's consts."""
    values, by_consumer = {}, {}
    for op in coreml_check.all_operations(function):
        if op.op_type != "const":
            continue
        var = op.outputs[0]
        values[var.name] = var.val
        key = consumer_key(var)
        if key is not None:
            by_consumer.setdefault(key, var.name)
    return values, by_consumer


def chain_ops(var):
    """The constexpr ops that compute `var`, in dependency order."""
    ops, seen = [], set()

    def visit(v):
        op = v.op
        if op is None or not coreml_check.is_constexpr(op) or id(op) in seen:
            return
        seen.add(id(op))
        for bound in op.inputs.values():
            for u in bound if isinstance(bound, (list, tuple)) else [bound]:
                visit(u)
        ops.append(op)

    visit(var)
    return ops


def dtype_name(var):
    from coremltools.converters.mil.mil import types

    return types.builtin_to_string(var.dtype)


def chain_params(ops):
    """[(op type, {param: (dtype, array)})] of a chain; inputs made by other chain ops left out
    (the op order fixes how they connect)."""
    result = []
    for op in ops:
        params = {}
        for name, var in op.inputs.items():
            if var.op is not None and coreml_check.is_constexpr(var.op):
                continue
            params[name] = (dtype_name(var), np.asarray(var.val))
        result.append((op.op_type, params))
    return result


def original_name(final_var, by_consumer, base_names):
    """The base const a compressed chain replaces: found by the op input the chain feeds, else
    by stripping coremltools' name suffixes."""
    key = consumer_key(final_var)
    if key is not None and key in by_consumer:
        return by_consumer[key]
    name = final_var.name
    stripped = True
    while stripped:
        stripped = False
        for suffix in COMPRESSED_SUFFIXES:
            if name.endswith(suffix):
                name, stripped = name[: -len(suffix)], True
    return name if name in base_names else None


@dataclass
class Compressed:
    """One tool's result: per original weight name, its chain params and decompressed value."""

    params: dict
    values: dict


def read_compressed(path, by_consumer, base_names):
    program = load_program(path)
    function = program.functions["main"]
    finals, _ = coreml_check.constexpr_chain_outputs(function)
    variables = {v.name: v for op in coreml_check.all_operations(function) for v in op.outputs}
    params, origins = {}, {}
    for final in sorted(finals):
        origin = original_name(variables[final], by_consumer, base_names)
        if origin is None:
            raise Failure(f"{path}: cannot tell which weight {final!r} compresses")
        params[origin] = chain_params(chain_ops(variables[final]))
        origins[final] = origin
    consts = decompress_in_place(program)
    values = {origin: np.asarray(consts[final], dtype=np.float64)
              for final, origin in origins.items()}
    return Compressed(params, values)


# ----------------------------------------------------------------------------------------------
# Comparisons


def same_array(a, b):
    return a.shape == b.shape and np.array_equal(a, b, equal_nan=a.dtype.kind == "f")


def params_difference(ours, theirs):
    """None if two chains have identical parameters, else a short description."""
    if [t for t, _ in ours] != [t for t, _ in theirs]:
        return f"ops {[t for t, _ in ours]} vs coremltools {[t for t, _ in theirs]}"
    for (op_type, mine), (_, ref) in zip(ours, theirs):
        for name in sorted(mine.keys() | ref.keys()):
            if name not in mine or name not in ref:
                present = mine.get(name) or ref.get(name)
                if name == "offset" and not np.any(present[1]):
                    continue  # an absent offset is a zero offset
                return f"{op_type}.{name} only in {'mlpack' if name in mine else 'coremltools'}"
            (my_dtype, my_val), (ref_dtype, ref_val) = mine[name], ref[name]
            if my_dtype != ref_dtype:
                return f"{op_type}.{name} dtype {my_dtype} vs coremltools {ref_dtype}"
            if my_val.shape != ref_val.shape:
                return (f"{op_type}.{name} shape {list(my_val.shape)} vs coremltools "
                        f"{list(ref_val.shape)}")
            if not same_array(my_val, ref_val):
                differ = int(np.sum(my_val != ref_val))
                return f"{op_type}.{name}: {differ} of {my_val.size} values differ"
    return None


def sse(value, original):
    return float(np.sum((value - original) ** 2))


def snr_db(values, originals):
    """SNR over the given weights: 10 log10(sum w^2 / sum (w - w')^2)."""
    signal = sum(float(np.sum(originals[n] ** 2)) for n in values)
    noise = sum(sse(values[n], originals[n]) for n in values)
    if noise == 0:
        return float("inf")
    return 10 * np.log10(signal / noise)


@dataclass
class Row:
    model: str
    target: str
    mode: str
    ct_count: int = 0
    mlpack_count: int = 0
    check: str = ""
    ok: bool = False
    ct_seconds: float = 0.0
    mlpack_seconds: float = 0.0
    ct_snr: float = float("nan")
    mlpack_snr: float = float("nan")
    problems: list = field(default_factory=list)


def compare(mode, ct_result, ours, originals, row):
    """Fill `row` with the comparison of mlpack's result with coremltools'."""
    row.ct_count, row.mlpack_count = len(ct_result.params), len(ours.params)
    only_ct = sorted(ct_result.params.keys() - ours.params.keys())
    only_ours = sorted(ours.params.keys() - ct_result.params.keys())
    if only_ct:
        row.problems.append(f"compressed by coremltools only: {only_ct[:4]}"
                            f"{' ...' if len(only_ct) > 4 else ''} ({len(only_ct)})")
    if only_ours:
        row.problems.append(f"compressed by mlpack only: {only_ours[:4]}"
                            f"{' ...' if len(only_ours) > 4 else ''} ({len(only_ours)})")
    common = sorted(ct_result.params.keys() & ours.params.keys())
    good = 0
    for name in common:
        if mode.check == "identical":
            problem = params_difference(ours.params[name], ct_result.params[name])
        else:
            original = np.asarray(originals[name], dtype=np.float64)
            ours_sse = sse(ours.values[name], original)
            ct_sse = sse(ct_result.values[name], original)
            problem = None
            if ours_sse > ct_sse * (1 + KMEANS_SSE_SLACK):
                problem = f"SSE {ours_sse:.6g} > coremltools {ct_sse:.6g}"
        if problem is None:
            good += 1
        else:
            row.problems.append(f"{name}: {problem}")
    label = "params identical" if mode.check == "identical" else "SSE <= coremltools"
    row.check = f"{label} {good}/{len(common)}"
    union = ct_result.params.keys() | ours.params.keys()
    originals64 = {n: np.asarray(originals[n], dtype=np.float64) for n in union}
    row.ct_snr = snr_db({n: ct_result.values.get(n, originals64[n]) for n in union}, originals64)
    row.mlpack_snr = snr_db({n: ours.values.get(n, originals64[n]) for n in union}, originals64)
    row.ok = not row.problems and bool(common)
    if not common:
        row.problems.append("no weight was compressed by both tools")


# ----------------------------------------------------------------------------------------------
# Running the tools


def run(command, what):
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise Failure(f"{what} failed (exit {result.returncode}): {' '.join(command)}\n"
                      f"{result.stderr.strip()[-2000:]}")


def base_package(mlpack, fixtures, model, target, precision, out):
    """Convert the materialised fixture to an fp16 or fp32 package for `target` with mlpack."""
    case = FIXTURE_CASES[model]
    onnx = os.path.join(fixtures, "models", case, "model.onnx")
    if not os.path.isfile(onnx):
        raise Failure(f"{onnx} is missing: the Rust tests materialise it (run cargo test first)")
    name = "base.mlpackage" if precision == "fp16" else f"base-{precision}.mlpackage"
    path = os.path.join(out, name)
    run([mlpack, "convert", onnx, "-o", path, "--target", target, "--precision", precision,
         "--no-verify", "--force", "--quiet"], f"mlpack convert {model} ({precision})")
    return path


def few_valued_package(base, target, out):
    """`base` with every weight coremltools would compress replaced by its uniform 4-bit
    round trip (<= 16 distinct values per weight), written without optimization passes so that
    names and layout stay as they were: the input of the `unique` mode."""
    import coremltools as ct
    import coremltools.optimize.coreml as cto
    from coremltools.converters.mil.mil.passes.graph_pass import PassOption
    from coremltools.converters.mil.mil.passes.pass_registry import PASS_REGISTRY
    from coremltools.models import utils as model_utils
    from coremltools.optimize.coreml._quantization_passes import WeightDecompressor

    model = ct.models.MLModel(base, skip_model_load=True)
    config = cto.OptimizationConfig(global_config=cto.OpPalettizerConfig(mode="uniform", nbits=4))
    palettizer = PASS_REGISTRY["compression::palettize_weights"]
    palettizer.set_options([PassOption("config", config)])
    program = model_utils._apply_graph_pass(
        model, [palettizer, WeightDecompressor(op_selector=lambda op: True)],
        return_pymil_prog=True)
    converted = ct.convert(program, convert_to="mlprogram", skip_model_load=True,
                           minimum_deployment_target=getattr(ct.target, target),
                           pass_pipeline=ct.PassPipeline.EMPTY)
    converted._spec.description.CopyFrom(model.get_spec().description)
    path = os.path.join(out, "few_values.mlpackage")
    converted.save(path)
    return path


def compress_with_coremltools(mode, source, path):
    import coremltools as ct
    import coremltools.optimize.coreml as cto

    config_class = {"linear_quantize_weights": cto.OpLinearQuantizerConfig,
                    "palettize_weights": cto.OpPalettizerConfig,
                    "prune_weights": cto.OpMagnitudePrunerConfig}[mode.ct_function]
    model = ct.models.MLModel(source, skip_model_load=True)
    config = cto.OptimizationConfig(global_config=config_class(**mode.ct_config))
    getattr(cto, mode.ct_function)(model, config).save(path)


def compress_with_mlpack(mlpack, mode, source, target, path):
    command, rest = mode.mlpack_args[0], mode.mlpack_args[1:]
    run([mlpack, command, source, "-o", path, *rest, "--target", target, "--no-verify",
         "--force", "--quiet"],
        f"mlpack {command} ({mode.name})")


def compare_model(mlpack, fixtures, model, target, modes, out):
    rows = []
    inputs = {}
    for mode in modes:
        row = Row(model, target, mode.name)
        rows.append(row)
        try:
            if mode.precision not in inputs:
                inputs[mode.precision] = base_package(mlpack, fixtures, model, target,
                                                      mode.precision, out)
            source = inputs[mode.precision]
            if mode.name in NEEDS_FEW_VALUES:
                if "few" not in inputs:
                    inputs["few"] = few_valued_package(source, target, out)
                source = inputs["few"]
            if source not in inputs:
                inputs[source] = base_weights(load_program(source).functions["main"])
            originals, by_consumer = inputs[source]
            ct_path = os.path.join(out, f"{mode.name}.coremltools.mlpackage")
            our_path = os.path.join(out, f"{mode.name}.mlpack.mlpackage")
            start = time.perf_counter()
            compress_with_coremltools(mode, source, ct_path)
            row.ct_seconds = time.perf_counter() - start
            start = time.perf_counter()
            compress_with_mlpack(mlpack, mode, source, target, our_path)
            row.mlpack_seconds = time.perf_counter() - start
            compare(mode, read_compressed(ct_path, by_consumer, originals),
                    read_compressed(our_path, by_consumer, originals), originals, row)
        except Failure as error:
            row.problems.append(str(error))
        print_row(row, file=sys.stderr)  # progress; the table goes to stdout at the end
    return rows


# ----------------------------------------------------------------------------------------------
# Output

HEADER = ("model", "target", "mode", "ct", "mlpack", "check", "result", "ct s", "mlpack s",
          "ct SNR", "mlpack SNR")
WIDTHS = (18, 6, 24, 4, 6, 28, 6, 6, 8, 7, 10)
LEFT_ALIGNED = (0, 1, 2, 5)


def cells(row):
    return (row.model, row.target, row.mode, str(row.ct_count), str(row.mlpack_count), row.check,
            "ok" if row.ok else "FAIL", f"{row.ct_seconds:.1f}", f"{row.mlpack_seconds:.1f}",
            f"{row.ct_snr:.2f}", f"{row.mlpack_snr:.2f}")


def line(values):
    return "  ".join(v.ljust(w) if i in LEFT_ALIGNED else v.rjust(w)
                     for i, (v, w) in enumerate(zip(values, WIDTHS)))


def print_row(row, file):
    print(line(cells(row)), file=file, flush=True)


def print_table(rows):
    print(line(HEADER))
    for row in rows:
        print_row(row, sys.stdout)
    for row in rows:
        for problem in row.problems[:5]:
            print(f"{row.model} {row.target} {row.mode}: {problem}")
        if len(row.problems) > 5:
            print(f"{row.model} {row.target} {row.mode}: ... {len(row.problems) - 5} more")
    failed = sum(not r.ok for r in rows)
    print(f"compare_coremltools: {len(rows) - failed} passed, {failed} failed")


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mlpack", required=True, help="the mlpack executable")
    parser.add_argument("--out", required=True, help="directory for the packages written")
    parser.add_argument("--all", action="store_true",
                        help="every mode on every model (at --targets, default iOS18)")
    parser.add_argument("--targets", help=f"comma-separated, from {', '.join(TARGETS)}")
    parser.add_argument("--models", help=f"comma-separated, from {', '.join(FIXTURE_CASES)}")
    parser.add_argument("--modes",
                        help=f"comma-separated, from {', '.join(m.name for m in MODES)}")
    parser.add_argument("--fixtures", default=os.path.join(ROOT, "target", "fixtures"),
                        help="materialised fixtures (default target/fixtures)")
    parser.add_argument("--verbose", action="store_true", help="show coremltools' warnings")
    args = parser.parse_args(argv)
    by_name = {m.name: m for m in MODES}
    if args.all or args.models or args.modes or args.targets:
        models = (args.models or ",".join(FIXTURE_CASES)).split(",")
        modes = (args.modes or ",".join(by_name)).split(",")
        targets = (args.targets or "iOS18").split(",")
        plan = {(model, target): modes for model in models for target in targets}
    else:
        plan = DEFAULT_PLAN
    args.plan = {}
    for (model, target), modes in plan.items():
        if model not in FIXTURE_CASES:
            parser.error(f"unknown model {model!r}")
        if target not in TARGETS:
            parser.error(f"unknown target {target!r}")
        for mode in modes:
            if mode not in by_name:
                parser.error(f"unknown mode {mode!r}")
        # Modes the target cannot express are left out (mlpack refuses them; tested in Rust).
        args.plan[(model, target)] = [by_name[m] for m in modes
                                      if target == "iOS18" or not by_name[m].ios18_only]
    return args


def main(argv):
    args = parse_args(argv)
    if not args.verbose:
        # coremltools warns for every weight a config skips (e.g. group size not dividing the
        # channels); the comparison reports any difference in what was compressed.
        logging.getLogger("coremltools").setLevel(logging.ERROR)
        warnings.filterwarnings("ignore")
    os.makedirs(args.out, exist_ok=True)
    rows = []
    for (model, target), modes in args.plan.items():
        out = os.path.join(args.out, f"{model}-{target}")
        os.makedirs(out, exist_ok=True)
        try:
            rows += compare_model(args.mlpack, args.fixtures, model, target, modes, out)
        except Failure as error:
            row = Row(model, target, "(setup)")
            row.problems.append(str(error))
            rows.append(row)
    print_table(rows)
    return 0 if all(r.ok for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
