#!/usr/bin/env python3
"""Self-test for coreml_check.py: packages written by coremltools itself must pass, broken
copies of them must fail.

Usage: .venv/bin/python scripts/coreml_check_selftest.py
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
MODEL_FILE = os.path.join("Data", "com.apple.CoreML", "model.mlmodel")
WEIGHT_FILE = os.path.join("Data", "com.apple.CoreML", "weights", "weight.bin")


def build_packages(work):
    """A static fp32 package and one with a flexible batch dim, both written by coremltools."""
    import coremltools as ct
    from coremltools.converters.mil import Builder as mb
    from coremltools.converters.mil.mil import get_new_symbol

    weight = np.random.default_rng(0).standard_normal((8, 16)).astype(np.float32)

    @mb.program(input_specs=[mb.TensorSpec(shape=(2, 16))], opset_version=ct.target.iOS15)
    def static(x):
        return mb.relu(x=mb.linear(x=x, weight=weight), name="out")

    batch = get_new_symbol()

    @mb.program(input_specs=[mb.TensorSpec(shape=(batch, 16))], opset_version=ct.target.iOS16)
    def flexible(x):
        return mb.relu(x=mb.linear(x=x, weight=weight), name="out")

    paths = {}
    for name, program, target in [("static", static, ct.target.iOS15),
                                  ("flexible", flexible, ct.target.iOS16)]:
        model = ct.convert(program, convert_to="mlprogram", skip_model_load=True,
                           minimum_deployment_target=target)
        paths[name] = os.path.join(work, f"{name}.mlpackage")
        model.save(paths[name])
    return paths


def broken_copies(work, good):
    """Copies of `good` with one defect each."""
    from coremltools.proto import FeatureTypes_pb2, Model_pb2

    def copy(name):
        path = os.path.join(work, f"{name}.mlpackage")
        shutil.copytree(good, path)
        return path

    def edit_spec(path, change):
        spec_path = os.path.join(path, MODEL_FILE)
        spec = Model_pb2.Model()
        with open(spec_path, "rb") as f:
            spec.ParseFromString(f.read())
        change(spec)
        with open(spec_path, "wb") as f:
            f.write(spec.SerializeToString())

    broken = {}
    path = broken["truncated_weights"] = copy("truncated_weights")
    os.truncate(os.path.join(path, WEIGHT_FILE), 100)
    path = broken["missing_weights"] = copy("missing_weights")
    os.remove(os.path.join(path, WEIGHT_FILE))
    path = broken["wrong_output_shape"] = copy("wrong_output_shape")
    edit_spec(path, lambda s: s.description.output[0].type.multiArrayType.shape.__setitem__(1, 9))
    path = broken["wrong_output_dtype"] = copy("wrong_output_dtype")
    edit_spec(path, lambda s: setattr(s.description.output[0].type.multiArrayType, "dataType",
                                      FeatureTypes_pb2.ArrayFeatureType.FLOAT16))
    path = broken["renamed_input"] = copy("renamed_input")
    edit_spec(path, lambda s: setattr(s.description.input[0], "name", "other"))
    broken["not_a_package"] = os.path.join(work, "absent.mlpackage")
    return broken


def run_check(paths):
    result = subprocess.run([sys.executable, os.path.join(HERE, "coreml_check.py"), *paths],
                            capture_output=True, text=True, check=False)
    return result.returncode, [json.loads(line) for line in result.stdout.splitlines()]


def main():
    with tempfile.TemporaryDirectory() as work:
        good = build_packages(work)
        broken = broken_copies(work, good["static"])
        failures = []
        code, lines = run_check(list(good.values()))
        if code != 0 or not all(line["ok"] for line in lines):
            failures.append(f"good packages rejected: {lines}")
        for name, path in broken.items():
            code, lines = run_check([path])
            if code != 1 or len(lines) != 1 or lines[0]["ok"]:
                failures.append(f"{name}: not rejected ({code}, {lines})")
            else:
                print(f"{name}: rejected: {lines[0]['error']}")
    if failures:
        print("\n".join(failures), file=sys.stderr)
        return 1
    print("coreml_check self-test passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
