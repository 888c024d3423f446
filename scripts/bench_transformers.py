#!/usr/bin/env python3
"""Benchmark: convert transformers (torchvision vit_b_16, a BERT-base encoder) with mlpack and
with coremltools 9.0, time `mlpack verify` against ONNX Runtime on the same model, and count
the non-const ops of both tools' packages (also for the small fixture models). Not part of CI.

Environment (a separate venv, ignored by git: coremltools' ct.convert needs torch in its own
venv; `scripts/requirements-bench-transformers.txt` is fixtures/requirements.txt (torch,
torchvision, onnx, onnxruntime) plus coremltools 9.0 and its dependencies, with numpy 2.3.5
instead of 2.4.6: coremltools 9.0's torch frontend calls int() on one-element arrays
(`_cast`), which numpy 2.4 rejects ("only 0-dimensional arrays can be converted to Python
scalars"; the GPT-2, Llama and ViT fixtures fail to convert with it):
    python3 -m venv .venv-bench-torch
    .venv-bench-torch/bin/pip install -r scripts/requirements-bench-transformers.txt
    apt-get install time          # GNU time, /usr/bin/time, if missing
    cargo build --release
    .venv-bench-torch/bin/python scripts/bench_transformers.py [--mlpack target/release/mlpack]
        [--models vit_b_16,bert_base,...] [--skip-large] [--target iOS18] [--threads N]
        [--out target/bench] [--json FILE]

Models (generated on demand into target/bench/<model>/, never committed; regenerated when the
recipe in generated.json changes):
  vit_b_16   torchvision vit_b_16(weights=None), torch.manual_seed(SEED), its zero-initialised
             classifier head redrawn from N(0, 0.02) (else every output is 0), input 1x3x224x224;
  bert_base  make_fixtures.py's BERT look-alike (Hugging Face BertModel's forward op for op,
             extended mask (1 - mask) * finfo(fp32).min, sentence-embedding pooling) at
             BERT-base size: 12 layers, d 768, 12 heads, FFN 3072, vocabulary 30522, 512
             positions, random init after torch.manual_seed(SEED); inputs input_ids,
             attention_mask, token_type_ids of 1x128. Not transformers' BertModel: coremltools
             9.0 cannot convert its trace (transformers 5.25's mask code calls `new_ones`, which
             coremltools' torch frontend lacks, with eager and sdpa attention alike). Exported
             with a symbolic `seq` dim (dynamic_axes) and converted with
             `--input-shape NAME=1,128` for each input;
  both exported with the TorchScript exporter (torch.onnx.export(dynamo=False), opset 17).
  Op counts only (convert with --no-verify, no verify/ONNX Runtime timing):
  bert_ts17, gpt2_ts17, llama_ts17, vit_ts17   the committed fixtures/transformers/ ONNX files;
             coremltools converts the same torch module, rebuilt by make_fixtures.py's
             transformer_modules() with the fixture's seed and traced on its inputs;
  resnet18, mobilenet_v3_small, efficientnet_b0   torchvision (weights=None, 1x3x112x112, the
             fixtures' architectures with fixed seeds and make_fixtures.py's BatchNorm
             statistics; the committed fixtures' weights are synthetic and not materialised
             here), exported here with make_fixtures.py's export_torch (TorchScript, opset 17).

Per model, each tool runs in a child process; GNU time (/usr/bin/time, Debian package `time`)
gives its peak RSS and CPU seconds (user + sys, all threads); wall seconds are measured by this
script from spawn to exit:
  - `mlpack convert model.onnx -o PKG --target T` (default fp16 with its built-in verification:
    3 random input sets), and the same with --no-verify. BERT gets --input-range
    input_ids=0,VOCAB-1 attention_mask=0,1 token_type_ids=0,1 (a mask outside {0, 1} makes
    BERT's (1 - mask) * finfo.min overflow to NaN);
  - coremltools: this script with --coremltools-worker rebuilds the same torch module (same
    seed), then times torch.jit.trace (with gradients on and check_trace=False, so that
    nn.MultiheadAttention is traced op by op, not as its fused fast path, which coremltools
    cannot convert) + ct.convert(convert_to="mlprogram",
    compute_precision=FLOAT16, minimum_deployment_target=T) + save inside the worker (wall, and
    CPU from time.process_time()): torch and coremltools import and model construction are
    excluded, which only favours coremltools. Its peak RSS is the whole worker's (torch, the
    module and the converter);
  - `mlpack verify model.onnx PKG --random 3` (same input ranges as convert), whole process;
    it runs the source ONNX in fp32 and the package with fp16 emulated in mlpack's reference
    interpreter, so it computes the model twice per input set;
  - ONNX Runtime (CPU provider, intra_op_num_threads = --threads, inter_op 1, default graph
    optimisations): this script with --ort-worker, whole process (Python and onnxruntime import,
    session creation and 3 runs on seeded random inputs of the same shapes, dtypes and ranges as
    mlpack's; the values differ, the work does not). `ort run s` is the 3 runs alone.
  --threads defaults to what mlpack uses: RAYON_NUM_THREADS if set, else the number of CPUs
  (mlpack runs on rayon's global pool).
Op counts (same rule for both tools): load PKG/Data/com.apple.CoreML/model.mlmodel as a
protobuf with coremltools.proto, take function `main`'s block for its opset, and count every
operation, recursing into nested blocks (cond/while bodies), whose type is neither `const` nor
`constexpr_*`. Ratios: `ct/mp` = coremltools seconds / mlpack --no-verify seconds; `vfy/ort` =
mlpack verify wall / ONNX Runtime wall.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TQDM_DISABLE", "1")

import numpy as np  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "fixtures"))

TIME = "/usr/bin/time"
SEED = 20241207
OPSET = 17
LARGE = ["vit_b_16", "bert_base"]
FIXTURE_TRANSFORMERS = ["bert_ts17", "gpt2_ts17", "llama_ts17", "vit_ts17"]
FIXTURE_CNNS = ["resnet18", "mobilenet_v3_small", "efficientnet_b0"]
MODELS = LARGE + FIXTURE_TRANSFORMERS + FIXTURE_CNNS
BERT_SEQ = 128
BERT_VOCAB = 30522
VERIFY_SETS = 3


class Failure(Exception):
    """A tool failed on a model; the message is its error output."""


# ----------------------------------------------------------------------------------------------
# Models: the torch module and its example inputs, rebuilt identically in every process


def bert_base():
    """make_fixtures.py's BERT look-alike at BERT-base size (vocabulary 30522, 512 positions)."""
    import torch

    import make_fixtures

    make_fixtures.VOCAB, make_fixtures.BERT_MAX_POSITIONS = BERT_VOCAB, 512
    bert = make_fixtures.transformer_modules()[0]
    torch.manual_seed(SEED)
    return bert(d=768, heads=12, ffn=3072, layers=12).eval()


def bert_feeds(vocab):
    """input_ids, attention_mask (last quarter padding) and token_type_ids of 1 x BERT_SEQ."""
    rng = np.random.default_rng(SEED)
    mask = np.ones((1, BERT_SEQ), np.int64)
    mask[:, BERT_SEQ - BERT_SEQ // 4:] = 0
    types = np.zeros((1, BERT_SEQ), np.int64)
    types[:, BERT_SEQ // 2:] = 1
    return {"input_ids": rng.integers(0, vocab, (1, BERT_SEQ)).astype(np.int64),
            "attention_mask": mask, "token_type_ids": types}


def fixture_meta(case):
    with open(os.path.join(ROOT, "fixtures", "transformers", case, "meta.json")) as f:
        return json.load(f)


def build(name):
    """The torch module of `name`, its example inputs {name: array} and a description."""
    import torch

    import make_fixtures

    torch.set_num_threads(1)  # deterministic module construction and calibration
    if name == "vit_b_16":
        import torchvision

        torch.manual_seed(SEED)
        model = torchvision.models.vit_b_16(weights=None).eval()
        # torchvision initialises the classifier head to zeros, which would make every output
        # 0 and the verification compare nothing.
        with torch.no_grad():
            model.heads.head.weight.normal_(0.0, 0.02)
        x = np.random.default_rng(SEED).standard_normal((1, 3, 224, 224)).astype(np.float32)
        return model, {"x": x}, "torchvision vit_b_16(weights=None)"
    if name == "bert_base":
        return (bert_base(), bert_feeds(BERT_VOCAB),
                "make_fixtures.py Bert(d=768, heads=12, ffn=3072, layers=12)")
    if name in FIXTURE_TRANSFORMERS:
        arch = name.split("_")[0]
        factory = dict(zip(("bert", "gpt2", "llama", "vit"),
                           make_fixtures.transformer_modules()))[arch]
        torch.manual_seed(make_fixtures.case_seed("transformers", arch))
        case_dir = os.path.join(ROOT, "fixtures", "transformers", name)
        feeds = {i["name"]: np.load(os.path.join(case_dir, i["file"]))
                 for i in fixture_meta(name)["inputs"]}
        return factory().eval(), feeds, f"fixtures/transformers/{name}"
    import torchvision

    torch.manual_seed(make_fixtures.case_seed("models", f"{name}_op{OPSET}"))
    generator = torch.Generator().manual_seed(make_fixtures.case_seed("models", name))
    model = getattr(torchvision.models, name)(weights=None).eval()
    make_fixtures.prepare_batchnorm(model, (1, 3, 112, 112), generator)
    x = np.random.default_rng(SEED).standard_normal((1, 3, 112, 112)).astype(np.float32)
    return model, {"x": x}, f"torchvision {name}(weights=None)"


def source_onnx(name, out):
    """The ONNX file mlpack converts (written on demand) and the model's input facts."""
    if name in FIXTURE_TRANSFORMERS:
        meta = fixture_meta(name)
        return (os.path.join(ROOT, "fixtures", "transformers", name, "model.onnx"),
                {"shape_flags": meta.get("input_shape_flags", []), "ranges": []})
    directory = os.path.join(out, name)
    path = os.path.join(directory, "model.onnx")
    stamp = os.path.join(directory, "generated.json")
    want = {"seed": SEED, "opset": OPSET, "bert_seq": BERT_SEQ, "version": 3}
    if os.path.isfile(path) and os.path.isfile(stamp):
        with open(stamp) as f:
            facts = json.load(f)
        if facts.get("recipe") == want:
            return path, facts
    print(f"exporting {name} ...", file=sys.stderr, flush=True)
    import onnx
    import torch

    import make_fixtures

    model, feeds, text = build(name)
    if name == "bert_base":
        dynamic = {n: {1: "seq"} for n in feeds}
        dynamic["last_hidden_state"] = {1: "seq"}
        exported = make_fixtures.export_transformer(
            model, feeds, ("last_hidden_state", "sentence_embedding"), OPSET, False, dynamic)
        facts = {"shape_flags": [f"{n}=1,{BERT_SEQ}" for n in feeds],
                 "ranges": [f"input_ids=0,{BERT_VOCAB - 1}", "attention_mask=0,1",
                            "token_type_ids=0,1"]}
    else:
        exported = make_fixtures.export_torch(model, torch.from_numpy(feeds["x"]), OPSET, False)
        facts = {"shape_flags": [], "ranges": []}
    os.makedirs(directory, exist_ok=True)
    onnx.save(exported, path)
    facts.update({"recipe": want, "source": text})
    with open(stamp, "w") as f:
        json.dump(facts, f)
    return path, facts


# ----------------------------------------------------------------------------------------------
# Child processes


def measure(command, accept=(0,)):
    """Run `command`; return {wall, cpu, rss, stdout, exit}. CPU is user + sys and peak RSS is
    the maximum resident set size, both from GNU time; wall is from spawn to exit. An exit code
    not in `accept` raises Failure."""
    with tempfile.TemporaryFile() as stdout, tempfile.TemporaryFile() as stderr, \
            tempfile.NamedTemporaryFile("r") as rusage:
        start = time.perf_counter()
        result = subprocess.run([TIME, "-f", "%U %S %M", "-o", rusage.name, *command],
                                stdout=stdout, stderr=stderr, check=False)
        wall = time.perf_counter() - start
        stdout.seek(0)
        stderr.seek(0)
        out, err = stdout.read().decode(errors="replace"), stderr.read().decode(errors="replace")
        report = rusage.read().strip().splitlines()
    if result.returncode not in accept:
        lines = [line for line in err.strip().splitlines() if line.strip()]
        # A Python traceback's exception line, else the last line (mlpack's one-line error).
        errors = [line for line in lines if re.match(r"[\w.]+(Error|Exception): ", line)]
        last = (errors or lines or ["(no output)"])[-1]
        raise Failure(f"exit {result.returncode}: {last}")
    user, system, rss = report[-1].split()
    return {"wall": wall, "cpu": float(user) + float(system), "rss": int(rss) * 1024,
            "stdout": out, "exit": result.returncode}


def coremltools_worker(name, package, target):
    """Child process body: trace and convert the module with coremltools, save it, and print
    {"wall", "cpu"} of trace + convert + save."""
    import logging

    import coremltools as ct
    import torch

    logging.getLogger("coremltools").setLevel(logging.ERROR)
    model, feeds, _ = build(name)
    torch.set_num_threads(os.cpu_count())
    inputs = [ct.TensorType(name=n, shape=a.shape,
                            dtype=np.int32 if a.dtype.kind in "iu" else np.float32)
              for n, a in feeds.items()]
    example = tuple(torch.from_numpy(a) for a in feeds.values())
    wall, cpu = time.perf_counter(), time.process_time()
    # Not under torch.no_grad(), and without the trace check (which re-runs the module under
    # no_grad): nn.MultiheadAttention would take its fused fast path
    # (aten::_native_multi_head_attention), which coremltools cannot convert.
    traced = torch.jit.trace(model, example, strict=False, check_trace=False)
    converted = ct.convert(traced, inputs=inputs, convert_to="mlprogram",
                           compute_precision=ct.precision.FLOAT16,
                           minimum_deployment_target=getattr(ct.target, target))
    converted.save(package)
    print(json.dumps({"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu}))


def ort_worker(onnx_path, threads, sets, ranges_json, shapes_json):
    """Child process body: run the model with ONNX Runtime on `sets` seeded random input sets;
    print {"run": seconds of the runs}."""
    import onnxruntime as ort

    ranges = dict(r.split("=", 1) for r in json.loads(ranges_json))
    options = ort.SessionOptions()
    options.intra_op_num_threads = int(threads)
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    session = ort.InferenceSession(onnx_path, options, providers=["CPUExecutionProvider"])
    shapes = {n: [int(d) for d in s.split(",")]
              for n, s in (f.split("=", 1) for f in json.loads(shapes_json))}
    rng = np.random.default_rng(SEED)
    feeds = []
    for _ in range(int(sets)):
        feed = {}
        for i in session.get_inputs():
            shape = shapes.get(i.name) or i.shape
            lo, hi = (float(v) for v in ranges.get(i.name, "nan,nan").split(","))
            if "int" in i.type:
                lo, hi = (0, 9) if np.isnan(lo) else (int(lo), int(hi))
                feed[i.name] = rng.integers(lo, hi, shape, endpoint=True).astype(np.int64)
            else:
                lo, hi = (-1.0, 1.0) if np.isnan(lo) else (lo, hi)
                feed[i.name] = rng.uniform(lo, hi, shape).astype(np.float32)
        feeds.append(feed)
    start = time.perf_counter()
    for feed in feeds:
        session.run(None, feed)
    print(json.dumps({"run": time.perf_counter() - start}))


# ----------------------------------------------------------------------------------------------
# Op counts


def count_ops(package):
    """Non-const ops of the package's main function (the rule in the module docstring)."""
    from coremltools.proto import Model_pb2

    spec = Model_pb2.Model()
    with open(os.path.join(package, "Data", "com.apple.CoreML", "model.mlmodel"), "rb") as f:
        spec.ParseFromString(f.read())
    function = spec.mlProgram.functions["main"]

    def count(block):
        total = 0
        for op in block.operations:
            if op.type != "const" and not op.type.startswith("constexpr_"):
                total += 1
            for inner in op.blocks:
                total += count(inner)
        return total

    return count(function.block_specializations[function.opset])


# ----------------------------------------------------------------------------------------------
# Benchmark


def remove(path):
    if os.path.isdir(path):
        shutil.rmtree(path)


def bench_model(args, name):
    full = name in LARGE
    row = {"model": name, "errors": []}
    try:
        onnx_path, facts = source_onnx(name, args.out)
    except Exception as error:  # noqa: BLE001 -- report the export failure and go on
        row["errors"].append(f"export: {error}")
        return row
    row["source"] = facts.get("source", os.path.relpath(onnx_path, ROOT))
    directory = os.path.join(args.out, name)
    os.makedirs(directory, exist_ok=True)
    package = os.path.join(directory, "mlpack.mlpackage")
    shape_flags = [a for f in facts["shape_flags"] for a in ("--input-shape", f)]
    range_flags = [a for r in facts["ranges"] for a in ("--input-range", r)]
    convert = [args.mlpack, "convert", onnx_path, "-o", package, "--target", args.target,
               "--quiet", *shape_flags]
    runs = [("mp", convert + ["--no-verify"])]
    if full:
        runs.insert(0, ("mpv", convert + range_flags))
    for key, command in runs:
        remove(package)
        try:
            result = measure(command)
            row.update({f"{key}_wall": result["wall"], f"{key}_cpu": result["cpu"],
                        f"{key}_rss": result["rss"]})
        except Failure as error:
            row["errors"].append(f"mlpack convert{' --no-verify' if key == 'mp' else ''}: "
                                 f"{error}")
    if os.path.isdir(package):
        row["mp_ops"] = count_ops(package)
    ct_package = os.path.join(directory, "coremltools.mlpackage")
    remove(ct_package)
    try:
        result = measure([sys.executable, os.path.abspath(__file__), "--coremltools-worker",
                          name, ct_package, args.target])
        inner = json.loads(result["stdout"].strip().splitlines()[-1])
        row.update({"ct_wall": inner["wall"], "ct_cpu": inner["cpu"], "ct_rss": result["rss"],
                    "ct_ops": count_ops(ct_package)})
    except Failure as error:
        row["errors"].append(f"coremltools: {error}")
    if full and os.path.isdir(package):
        try:
            result = measure([args.mlpack, "verify", onnx_path, package, "--random",
                              str(VERIFY_SETS), "--quiet", *range_flags], accept=(0, 6))
            row.update({"vfy_wall": result["wall"], "vfy_cpu": result["cpu"],
                        "vfy_rss": result["rss"]})
            if result["exit"] == 6:
                row["errors"].append("mlpack verify: exit 6 (an output broke a threshold; "
                                     "its time is still shown)")
        except Failure as error:
            row["errors"].append(f"mlpack verify: {error}")
    if full:
        try:
            result = measure([sys.executable, os.path.abspath(__file__), "--ort-worker",
                              onnx_path, str(args.threads), str(VERIFY_SETS),
                              json.dumps(facts["ranges"]), json.dumps(facts["shape_flags"])])
            inner = json.loads(result["stdout"].strip().splitlines()[-1])
            row.update({"ort_wall": result["wall"], "ort_cpu": result["cpu"],
                        "ort_rss": result["rss"], "ort_run": inner["run"]})
        except Failure as error:
            row["errors"].append(f"onnxruntime: {error}")
    print(format_row(row), file=sys.stderr, flush=True)
    return row


# ----------------------------------------------------------------------------------------------
# Output

COLUMNS = [("model", 18), ("convert s", 9), ("cpu s", 7), ("RSS", 9), ("no-vfy s", 8),
           ("cpu s", 7), ("RSS", 9), ("ct s", 7), ("cpu s", 7), ("ct RSS", 9), ("ct/mp", 6),
           ("ops mp", 6), ("ops ct", 6), ("verify s", 8), ("cpu s", 7), ("ort s", 6),
           ("cpu s", 7), ("ort run s", 9), ("vfy/ort", 7)]


def format_row(row):
    def get(key, form):
        return form(row[key]) if key in row else "-"

    def ratio(a, b):
        return f"{row[a] / row[b]:.1f}x" if a in row and b in row and row[b] else "-"

    def secs(v):
        return f"{v:.2f}"

    def mib(v):
        return f"{v / 2**20:.0f} MiB"

    values = [row["model"],
              get("mpv_wall", secs), get("mpv_cpu", secs), get("mpv_rss", mib),
              get("mp_wall", secs), get("mp_cpu", secs), get("mp_rss", mib),
              get("ct_wall", secs), get("ct_cpu", secs), get("ct_rss", mib),
              ratio("ct_wall", "mp_wall"), get("mp_ops", str), get("ct_ops", str),
              get("vfy_wall", secs), get("vfy_cpu", secs), get("ort_wall", secs),
              get("ort_cpu", secs), get("ort_run", secs), ratio("vfy_wall", "ort_wall")]
    return "  ".join(v.ljust(w) if i == 0 else v.rjust(w)
                     for i, (v, (_, w)) in enumerate(zip(values, COLUMNS)))


def print_table(rows, args):
    print("  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(COLUMNS)))
    for row in rows:
        print(format_row(row))
    for row in rows:
        for error in row["errors"]:
            print(f"{row['model']}: {error}")
    print(f"target {args.target}; convert = mlpack convert (fp16, built-in verification), "
          f"no-vfy = with --no-verify; ct = coremltools trace + convert + save; ct/mp = ct s / "
          f"no-vfy s; ops = non-const ops (mp = mlpack, ct = coremltools); verify = mlpack "
          f"verify --random {VERIFY_SETS}; ort = ONNX Runtime process ({args.threads} intra-op "
          f"threads, {VERIFY_SETS} runs), ort run = the runs alone; vfy/ort = verify s / ort s")


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mlpack", default=os.path.join(ROOT, "target", "release", "mlpack"))
    parser.add_argument("--models", default=",".join(MODELS),
                        help=f"comma-separated, from {', '.join(MODELS)}")
    parser.add_argument("--skip-large", action="store_true",
                        help=f"leave out {', '.join(LARGE)}")
    parser.add_argument("--target", default="iOS18", help="deployment target of both tools")
    parser.add_argument("--threads", type=int,
                        default=int(os.environ.get("RAYON_NUM_THREADS") or os.cpu_count()),
                        help="ONNX Runtime intra-op threads (default: as many as mlpack uses)")
    parser.add_argument("--out", default=os.path.join(ROOT, "target", "bench"))
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args(argv)
    args.models = [m for m in args.models.split(",") if m]
    if args.skip_large:
        args.models = [m for m in args.models if m not in LARGE]
    for model in args.models:
        if model not in MODELS:
            parser.error(f"unknown model {model!r}")
    if not os.access(TIME, os.X_OK):
        parser.error(f"{TIME} is missing (apt-get install time)")
    if not os.access(args.mlpack, os.X_OK):
        parser.error(f"{args.mlpack} is not executable (cargo build --release?)")
    return args


def main(argv):
    if argv[:1] == ["--coremltools-worker"]:
        coremltools_worker(*argv[1:])
        return 0
    if argv[:1] == ["--ort-worker"]:
        ort_worker(*argv[1:6])
        return 0
    args = parse_args(argv)
    rows = [bench_model(args, name) for name in args.models]
    print_table(rows, args)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 1 if any(r["errors"] for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
