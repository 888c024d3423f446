#!/usr/bin/env python3
"""Benchmark: reading a torch.export archive (.pt2) against reading the same model as ONNX.
Not part of CI.

For each model (bench_transformers.py's vit_b_16 and bert_base: same builders, same seeds, same
weights), this script writes, on demand into target/bench/<model>/:
  - model.onnx   bench_transformers.py's ONNX export (TorchScript exporter, opset 17);
  - model.pt2    torch.export.export(module, example inputs) saved with torch.export.save (the
                 default training IR, in the container the installed torch writes; static
                 shapes: BERT's sequence length is fixed at 128, as the ONNX run's
                 --input-shape flags fix it);
then times, each in a child process under GNU time (CPU = user + sys, peak RSS):
  - `mlpack convert model.onnx -o P --no-verify --target T --quiet` (+ BERT's --input-shape);
  - `mlpack convert model.pt2 -o P --no-verify --target T --quiet`;
  - coremltools 9.0 converting the same ExportedProgram in-process (ct.convert(ep,
    minimum_deployment_target=T), timed inside the worker: torch import, module construction
    and export excluded). coremltools 9.0 warns that torch above 2.7 is untested; a failure is
    reported as such.
The two mlpack runs share everything after loading (fusion, fp16, writing), so their difference
is the cost of reading the source; the goal (issue 13) is pt2/onnx <= 1.

Environment: the .venv-bench-torch of bench_transformers.py (torch, torchvision, onnx,
coremltools 9.0) and a release build:
    .venv-bench-torch/bin/python scripts/bench_pt2.py [--models vit_b_16,bert_base]
        [--mlpack target/release/mlpack] [--target iOS18] [--out target/bench]
"""

import argparse
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import bench_transformers as bt  # noqa: E402

MODELS = ["vit_b_16", "bert_base"]


def source_pt2(name, out):
    """The .pt2 file of `name` (written on demand; regenerated with its ONNX twin's recipe)."""
    directory = os.path.join(out, name)
    path = os.path.join(directory, "model.pt2")
    stamp = os.path.join(directory, "generated_pt2.json")
    want = {"seed": bt.SEED, "bert_seq": bt.BERT_SEQ, "version": 1}
    if os.path.isfile(path) and os.path.isfile(stamp):
        with open(stamp) as f:
            if json.load(f) == want:
                return path
    print(f"exporting {name} to .pt2 ...", file=sys.stderr, flush=True)
    import torch

    model, feeds, _ = bt.build(name)
    args = tuple(torch.from_numpy(v) for v in feeds.values())
    with torch.no_grad():
        exported = torch.export.export(model, args)
    os.makedirs(directory, exist_ok=True)
    torch.export.save(exported, path)
    with open(stamp, "w") as f:
        json.dump(want, f)
    return path


def coremltools_worker(name, package, target):
    """Child process: export `name` and time coremltools converting the ExportedProgram."""
    import coremltools as ct
    import torch

    model, feeds, _ = bt.build(name)
    args = tuple(torch.from_numpy(v) for v in feeds.values())
    with torch.no_grad():
        exported = torch.export.export(model, args).run_decompositions({})
    start, cpu = time.perf_counter(), time.process_time()
    converted = ct.convert(exported, convert_to="mlprogram",
                           compute_precision=ct.precision.FLOAT16,
                           minimum_deployment_target=getattr(ct.target, target))
    converted.save(package)
    print(json.dumps({"wall": time.perf_counter() - start, "cpu": time.process_time() - cpu}))


def bench(args, name):
    row = {"model": name, "errors": []}
    onnx_path, facts = bt.source_onnx(name, args.out)
    pt2_path = source_pt2(name, args.out)
    row["onnx_mb"] = os.path.getsize(onnx_path) / 1e6
    row["pt2_mb"] = os.path.getsize(pt2_path) / 1e6
    package = os.path.join(args.out, name, "pt2-bench.mlpackage")
    shapes = [a for f in facts["shape_flags"] for a in ("--input-shape", f)]
    for key, source, extra in (("onnx", onnx_path, shapes), ("pt2", pt2_path, [])):
        bt.remove(package)
        try:
            result = bt.measure([args.mlpack, "convert", source, "-o", package, "--no-verify",
                                 "--target", args.target, "--quiet", *extra])
            row.update({f"{key}_wall": result["wall"], f"{key}_cpu": result["cpu"],
                        f"{key}_rss": result["rss"]})
            row[f"{key}_ops"] = bt.count_ops(package)
        except bt.Failure as error:
            row["errors"].append(f"mlpack convert {key}: {error}")
    bt.remove(package)
    try:
        result = bt.measure([sys.executable, os.path.abspath(__file__), "--coremltools-worker",
                             name, package, args.target])
        inner = json.loads(result["stdout"].strip().splitlines()[-1])
        row.update({"ct_wall": inner["wall"], "ct_cpu": inner["cpu"], "ct_rss": result["rss"]})
    except bt.Failure as error:
        row["errors"].append(f"coremltools (ExportedProgram): {error}")
    bt.remove(package)
    return row


def show(rows):
    def num(row, key, scale=1.0, form="{:.2f}"):
        return form.format(row[key] / scale) if key in row else "-"

    header = (f"{'model':10} {'onnx MB':>8} {'pt2 MB':>7} | {'onnx s':>7} {'cpu':>6} {'RSS MiB':>8}"
              f" | {'pt2 s':>6} {'cpu':>6} {'RSS MiB':>8} | {'pt2/onnx cpu':>12} {'RSS':>5}"
              f" | {'ct s':>6} {'ct cpu':>7} {'ct RSS':>7} {'ct/pt2 cpu':>10}")
    print(header)
    for r in rows:
        ratio = lambda a, b: f"{r[a] / r[b]:.2f}" if a in r and b in r else "-"  # noqa: E731
        print(f"{r['model']:10} {num(r, 'onnx_mb', 1, '{:.0f}'):>8} {num(r, 'pt2_mb', 1, '{:.0f}'):>7}"
              f" | {num(r, 'onnx_wall'):>7} {num(r, 'onnx_cpu'):>6}"
              f" {num(r, 'onnx_rss', 2**20, '{:.0f}'):>8}"
              f" | {num(r, 'pt2_wall'):>6} {num(r, 'pt2_cpu'):>6}"
              f" {num(r, 'pt2_rss', 2**20, '{:.0f}'):>8}"
              f" | {ratio('pt2_cpu', 'onnx_cpu'):>12} {ratio('pt2_rss', 'onnx_rss'):>5}"
              f" | {num(r, 'ct_wall'):>6} {num(r, 'ct_cpu'):>7} {num(r, 'ct_rss', 2**20, '{:.0f}'):>7}"
              f" {ratio('ct_cpu', 'pt2_cpu'):>10}")
        for error in r["errors"]:
            print(f"  {r['model']}: {error}")


def main(argv):
    if argv[:1] == ["--coremltools-worker"]:
        coremltools_worker(*argv[1:4])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mlpack", default=os.path.join(bt.ROOT, "target", "release", "mlpack"))
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--target", default="iOS18")
    parser.add_argument("--out", default=os.path.join(bt.ROOT, "target", "bench"))
    args = parser.parse_args(argv)
    rows = [bench(args, name) for name in args.models.split(",")]
    show(rows)


if __name__ == "__main__":
    main(sys.argv[1:])
