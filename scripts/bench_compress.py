#!/usr/bin/env python3
"""Benchmark: compress the same packages with coremltools 9.0 and with mlpack; compare wall time,
peak memory and weight error. Not part of CI (the large model takes many minutes).

Environment (a separate venv, ignored by git; the conformance venv plus `onnx` to write the
generated model):
    python3 -m venv .venv-bench
    .venv-bench/bin/pip install -r scripts/requirements-bench.txt
    cargo build --release
    .venv-bench/bin/python scripts/bench_compress.py [--mlpack target/release/mlpack]
        [--models resnet18,mlp300m] [--modes MODE,...] [--skip-large] [--out target/bench]
        [--repeat N] [--json FILE]

Models:
  resnet18   the fixture (target/fixtures/models/resnet18_op17/model.onnx, materialised by the
             Rust tests: run `cargo test` once), 11.7 M parameters;
  mlp300m    generated here: 9 transformer-style MLP blocks (LayerNorm, MatMul 2048x8192, Add,
             Relu, MatMul 8192x2048, Add, residual Add) on a [1, 8, 2048] input, 302 M
             parameters, seeded numpy fp32 weights in ONNX external data (target/bench/mlp300m/);
  mlp-small  the same with d=256, 4 blocks (2.1 M parameters), to try the script quickly.
Each model is converted once with `mlpack convert --precision fp16 --target iOS18 --no-verify`;
both tools then compress that same package.

Per (model, mode), each tool runs in a fresh child process (`--repeat N` times, the run with
the median time reported), after the previous output is deleted and the input package is read
once, so that both tools start with it in the page cache (memory reclaim can otherwise evict it
during the other tool's run or the error analysis, and only the tool that runs next pays):
  - coremltools: this script with --coremltools-worker (MLModel(skip_model_load=True),
    cto.coreml.<function>(model, OptimizationConfig(<Op*Config>)), save). Its time is measured
    inside the worker from the load to the end of the save (Python and coremltools import time
    excluded, which only favours coremltools);
  - mlpack: `mlpack quantize|palettize|prune IN -o OUT ... --no-verify --quiet`, timed
    from spawn to exit.
Peak RSS is the child's maximum resident set size as GNU time (/usr/bin/time) reports it.
Error: both outputs are decompressed by coremltools (the WeightDecompressor pass, as in
compare_coremltools.py) and compared with the original fp16 weights, as SNR in dB over all
weights either tool compressed (a weight a tool left alone counts with zero error for it, so
compare the `weights` column too): 10 log10(sum w^2 / sum (w - w')^2).
"""

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time

# numpy 2.4's AVX512_ICL float16 sort kernel misorders some arrays on this project's machines
# (np.sort(w) not monotonic, np.unique(w) with duplicates), and coremltools sorts fp16 weights
# (np.unique) for k-means (kmeans1d input) and for `unique` palettization. Compare against
# coremltools as it behaves on a correct machine: keep numpy off that kernel. Set before numpy
# is imported; child processes inherit it.
os.environ.setdefault("NPY_DISABLE_CPU_FEATURES", "AVX512_ICL")

import numpy as np  # noqa: E402

os.environ.setdefault("TQDM_DISABLE", "1")

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import compare_coremltools as cmp  # noqa: E402 -- mode table, program helpers
import coreml_check  # noqa: E402

BENCH_MODES = ["kmeans-4bit", "kmeans-4bit-group16", "kmeans-2bit-vector2",
               "int8-per-channel-sym", "int4-per-block-32", "prune-50", "prune-2:4"]
GENERATED = {
    # name: (model width d, hidden width, blocks, tokens)
    "mlp300m": (2048, 8192, 9, 8),
    "mlp-small": (256, 1024, 4, 8),
}
LARGE_MODELS = {"mlp300m"}
TIME = "/usr/bin/time"
MODELS = ["resnet18", "mlp300m", "mlp-small"]
SEED = 20240611


# ----------------------------------------------------------------------------------------------
# The generated model


def write_generated_onnx(name, directory):
    """Write `directory/model.onnx` + `directory/weights.bin` (external data) for `name`."""
    import onnx
    from onnx import TensorProto, helper

    d, hidden, blocks, tokens = GENERATED[name]
    os.makedirs(directory, exist_ok=True)
    model_path = os.path.join(directory, "model.onnx")
    data_name = "weights.bin"
    rng = np.random.default_rng(SEED)
    initializers, nodes = [], []
    offset = 0
    with open(os.path.join(directory, data_name), "wb") as data:

        def add(tensor_name, array):
            nonlocal offset
            raw = np.ascontiguousarray(array, dtype="<f4").tobytes()
            pad = (-offset) % 64
            data.write(b"\0" * pad)
            offset += pad
            data.write(raw)
            tensor = TensorProto(name=tensor_name, data_type=TensorProto.FLOAT,
                                 dims=list(array.shape))
            tensor.data_location = TensorProto.EXTERNAL
            for key, value in (("location", data_name), ("offset", str(offset)),
                               ("length", str(len(raw)))):
                entry = tensor.external_data.add()
                entry.key, entry.value = key, value
            offset += len(raw)
            initializers.append(tensor)

        def normal(shape, fan_in):
            return rng.standard_normal(shape, dtype=np.float32) / np.float32(np.sqrt(fan_in))

        current = "x"
        for b in range(blocks):
            p = f"block{b}"
            add(f"{p}.ln.scale", 1 + 0.1 * rng.standard_normal(d, dtype=np.float32))
            add(f"{p}.ln.bias", 0.1 * rng.standard_normal(d, dtype=np.float32))
            add(f"{p}.up.weight", normal((d, hidden), d))
            add(f"{p}.up.bias", 0.02 * rng.standard_normal(hidden, dtype=np.float32))
            add(f"{p}.down.weight", normal((hidden, d), hidden))
            add(f"{p}.down.bias", 0.02 * rng.standard_normal(d, dtype=np.float32))
            nodes += [
                helper.make_node("LayerNormalization", [current, f"{p}.ln.scale", f"{p}.ln.bias"],
                                 [f"{p}.ln"], axis=-1, epsilon=1e-5),
                helper.make_node("MatMul", [f"{p}.ln", f"{p}.up.weight"], [f"{p}.up.mm"]),
                helper.make_node("Add", [f"{p}.up.mm", f"{p}.up.bias"], [f"{p}.up"]),
                helper.make_node("Relu", [f"{p}.up"], [f"{p}.act"]),
                helper.make_node("MatMul", [f"{p}.act", f"{p}.down.weight"], [f"{p}.down.mm"]),
                helper.make_node("Add", [f"{p}.down.mm", f"{p}.down.bias"], [f"{p}.down"]),
                helper.make_node("Add", [current, f"{p}.down"],
                                 ["y" if b == blocks - 1 else f"{p}.out"]),
            ]
            current = f"{p}.out"
    graph = helper.make_graph(
        nodes, name,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, tokens, d])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, tokens, d])],
        initializer=initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                              producer_name="mlpack bench_compress.py")
    model.ir_version = 8
    onnx.save(model, model_path)
    return model_path


def source_onnx(name, out, fixtures):
    if name in GENERATED:
        directory = os.path.join(out, name)
        path = os.path.join(directory, "model.onnx")
        stamp = os.path.join(directory, "generated.json")
        want = {"shape": list(GENERATED[name]), "seed": SEED}
        if not (os.path.isfile(stamp) and json.load(open(stamp)) == want):
            print(f"writing {name} ...", file=sys.stderr, flush=True)
            write_generated_onnx(name, directory)
            with open(stamp, "w") as f:
                json.dump(want, f)
        return path
    path = os.path.join(fixtures, "models", cmp.FIXTURE_CASES[name], "model.onnx")
    if not os.path.isfile(path):
        sys.exit(f"{path} is missing: the Rust tests materialise it (run cargo test once)")
    return path


def base_package(mlpack, name, out, fixtures):
    onnx_path = source_onnx(name, out, fixtures)
    path = os.path.join(out, name, "base.mlpackage")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if os.path.isdir(path) and os.path.getmtime(path) >= os.path.getmtime(onnx_path):
        return path
    print(f"converting {name} ...", file=sys.stderr, flush=True)
    cmp.run([mlpack, "convert", onnx_path, "-o", path, "--precision", "fp16", "--target",
             "iOS18", "--no-verify", "--force", "--quiet"], f"mlpack convert {name}")
    return path


# ----------------------------------------------------------------------------------------------
# Measuring


def measure(command):
    """Run `command`; return (wall seconds, peak RSS bytes, stdout).

    The peak RSS comes from GNU time (/usr/bin/time, Debian package `time`), not from this
    process's wait4: Linux counts a child's RSS from before its exec too, and a child forked
    from this (large) Python process would report this process's size.
    """
    with tempfile.TemporaryFile() as stdout, tempfile.TemporaryFile() as stderr, \
            tempfile.NamedTemporaryFile("r") as rusage:
        start = time.perf_counter()
        result = subprocess.run([TIME, "-f", "%M", "-o", rusage.name, *command],
                                stdout=stdout, stderr=stderr, check=False)
        seconds = time.perf_counter() - start
        stdout.seek(0)
        stderr.seek(0)
        out, err = stdout.read().decode(errors="replace"), stderr.read().decode(errors="replace")
        report = rusage.read().strip().splitlines()
    if result.returncode != 0:
        raise cmp.Failure(f"{' '.join(command)} failed (exit {result.returncode}):\n"
                          f"{err[-2000:]}")
    return seconds, int(report[-1]) * 1024, out


def coremltools_worker(mode_name, source, output):
    """Child process body: compress `source` with coremltools, print the seconds it took."""
    logging.getLogger("coremltools").setLevel(logging.ERROR)
    import coremltools  # noqa: F401 -- imported before the clock starts

    mode = {m.name: m for m in cmp.MODES}[mode_name]
    start = time.perf_counter()
    cmp.compress_with_coremltools(mode, source, output)
    print(json.dumps({"seconds": time.perf_counter() - start}))


def weight_errors(path, by_consumer, originals):
    """{original weight name: squared error sum} of a compressed package, via coremltools'
    decompression, one weight at a time in float64."""
    program = cmp.load_program(path)
    function = program.functions["main"]
    finals, _ = coreml_check.constexpr_chain_outputs(function)
    variables = {v.name: v for op in coreml_check.all_operations(function) for v in op.outputs}
    origins = {}
    for final in finals:
        origin = cmp.original_name(variables[final], by_consumer, originals)
        if origin is None:
            raise cmp.Failure(f"{path}: cannot tell which weight {final!r} compresses")
        origins[final] = origin
    del function, variables
    consts = cmp.decompress_in_place(program)
    del program
    errors = {}
    for final, origin in origins.items():
        value = np.asarray(consts.pop(final), dtype=np.float64)
        errors[origin] = float(np.sum((value - np.asarray(originals[origin], np.float64)) ** 2))
    return errors


def snr(errors, names, signal):
    noise = sum(errors.get(n, 0.0) for n in names)
    total = sum(signal[n] for n in names)
    return float("inf") if noise == 0 else 10 * np.log10(total / noise)


def remove(path):
    """Delete a previous run's output, so neither tool pays for replacing it."""
    if os.path.isdir(path):
        shutil.rmtree(path)


def warm(package):
    """Read every file of `package` once, bringing it into the page cache."""
    for directory, _, files in os.walk(package):
        for name in files:
            with open(os.path.join(directory, name), "rb") as f:
                while f.read(16 << 20):
                    pass


def median_run(runs):
    """The (seconds, peak RSS) run with the median time."""
    return sorted(runs)[len(runs) // 2]


def bench_model(mlpack, name, modes, out, fixtures, repeat):
    base = base_package(mlpack, name, out, fixtures)
    originals, by_consumer = cmp.base_weights(cmp.load_program(base).functions["main"])
    rows = []
    for mode in modes:
        ct_path = os.path.join(out, name, f"{mode.name}.coremltools.mlpackage")
        our_path = os.path.join(out, name, f"{mode.name}.mlpack.mlpackage")
        row = {"model": name, "mode": mode.name, "errors": []}
        errors = {}
        try:
            runs = []
            for _ in range(repeat):
                remove(ct_path)
                warm(base)
                _, rss, report = measure([sys.executable, os.path.abspath(__file__),
                                          "--coremltools-worker", mode.name, base, ct_path])
                runs.append((json.loads(report.strip().splitlines()[-1])["seconds"], rss))
            row["ct_seconds"], row["ct_rss"] = median_run(runs)
            errors["ct"] = weight_errors(ct_path, by_consumer, originals)
        except cmp.Failure as error:
            row["errors"].append(f"coremltools: {error}")
        try:
            command, rest = mode.mlpack_args[0], mode.mlpack_args[1:]
            runs = []
            for _ in range(repeat):
                remove(our_path)
                warm(base)
                seconds, rss, _ = measure([mlpack, command, base, "-o", our_path, *rest,
                                           "--no-verify", "--quiet"])
                runs.append((seconds, rss))
            row["mlpack_seconds"], row["mlpack_rss"] = median_run(runs)
            errors["mlpack"] = weight_errors(our_path, by_consumer, originals)
        except cmp.Failure as error:
            row["errors"].append(f"mlpack: {error}")
        names = set().union(*(e.keys() for e in errors.values()))
        signal = {n: float(np.sum(np.asarray(originals[n], np.float64) ** 2)) for n in names}
        for tool, tool_errors in errors.items():
            row[f"{tool}_weights"] = len(tool_errors)
            row[f"{tool}_snr"] = snr(tool_errors, names, signal)
        rows.append(row)
        print(format_row(row), file=sys.stderr, flush=True)
    return rows


# ----------------------------------------------------------------------------------------------
# Output

COLUMNS = [("mode", 22), ("model", 10), ("weights", 7), ("ct s", 8), ("mlpack s", 8),
           ("speedup", 8), ("ct RSS", 9), ("mlpack RSS", 10), ("RSS ratio", 9), ("ct SNR", 7),
           ("mlpack SNR", 10), ("ΔSNR", 6)]


def mib(value):
    return f"{value / 2**20:.0f} MiB"


def format_row(row):
    def get(key, form):
        return form(row[key]) if key in row else "-"

    def ratio(a, b, form):
        return form(row[a] / row[b]) if a in row and b in row and row[b] else "-"

    values = [
        row["mode"], row["model"],
        f"{row.get('ct_weights', '-')}/{row.get('mlpack_weights', '-')}",
        get("ct_seconds", "{:.2f}".format),
        get("mlpack_seconds", "{:.2f}".format),
        ratio("ct_seconds", "mlpack_seconds", "{:.1f}x".format),
        get("ct_rss", mib), get("mlpack_rss", mib), ratio("mlpack_rss", "ct_rss", "{:.2f}".format),
        get("ct_snr", "{:.2f}".format), get("mlpack_snr", "{:.2f}".format),
        f"{row['mlpack_snr'] - row['ct_snr']:+.2f}" if "ct_snr" in row and "mlpack_snr" in row
        else "-",
    ]
    return "  ".join(v.ljust(w) if i < 2 else v.rjust(w)
                     for i, (v, (_, w)) in enumerate(zip(values, COLUMNS)))


def print_table(rows):
    print("  ".join(h.ljust(w) if i < 2 else h.rjust(w) for i, (h, w) in enumerate(COLUMNS)))
    for row in rows:
        print(format_row(row))
    for row in rows:
        for error in row["errors"]:
            print(f"{row['model']} {row['mode']}: {error.splitlines()[0]}")
    print("weights = number compressed by coremltools/mlpack; speedup = ct s / mlpack s; "
          "RSS ratio = mlpack / ct peak RSS; ΔSNR = mlpack SNR - ct SNR (dB)")


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mlpack", default=os.path.join(ROOT, "target", "release", "mlpack"))
    parser.add_argument("--models", default="resnet18,mlp300m",
                        help=f"comma-separated, from {', '.join(MODELS)}")
    parser.add_argument("--modes", default=",".join(BENCH_MODES),
                        help=f"comma-separated, from {', '.join(m.name for m in cmp.MODES)}")
    parser.add_argument("--skip-large", action="store_true",
                        help=f"leave out {', '.join(sorted(LARGE_MODELS))}")
    parser.add_argument("--out", default=os.path.join(ROOT, "target", "bench"))
    parser.add_argument("--json", help="also write the rows to this file")
    parser.add_argument("--repeat", type=int, default=1,
                        help="runs per tool and mode; the run with the median time is reported")
    parser.add_argument("--fixtures", default=os.path.join(ROOT, "target", "fixtures"),
                        help="materialised fixtures (default target/fixtures)")
    args = parser.parse_args(argv)
    args.models = [m for m in args.models.split(",") if m]
    if args.skip_large:
        args.models = [m for m in args.models if m not in LARGE_MODELS]
    by_name = {m.name: m for m in cmp.MODES}
    for model in args.models:
        if model not in MODELS:
            parser.error(f"unknown model {model!r}")
    for mode in args.modes.split(","):
        if mode not in by_name:
            parser.error(f"unknown mode {mode!r}")
    args.modes = [by_name[m] for m in args.modes.split(",")]
    if not os.access(TIME, os.X_OK):
        parser.error(f"{TIME} is missing (apt-get install time)")
    if not os.access(args.mlpack, os.X_OK):
        parser.error(f"{args.mlpack} is not executable (cargo build --release?)")
    return args


def main(argv):
    if argv[:1] == ["--coremltools-worker"]:
        coremltools_worker(*argv[1:])
        return 0
    args = parse_args(argv)
    logging.getLogger("coremltools").setLevel(logging.ERROR)
    rows = []
    for name in args.models:
        rows += bench_model(args.mlpack, name, args.modes, args.out, args.fixtures, args.repeat)
    print_table(rows)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 1 if any(r["errors"] for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
