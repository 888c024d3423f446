#!/usr/bin/env python3
"""Self-test for coreml_check.py: packages written by coremltools itself (a multifunction one
included) must pass, broken copies of them must fail; compressed packages with a sidecar of coremltools' own decompressed
weights must pass, and sidecars with a wrong value, a missing or extra array or a wrong dtype
must fail.

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
    """A static fp32 package, one with a flexible batch dim and a stateful one, all written by
    coremltools."""
    import coremltools as ct
    from coremltools.converters.mil import Builder as mb
    from coremltools.converters.mil.mil import get_new_symbol, types

    weight = np.random.default_rng(0).standard_normal((8, 16)).astype(np.float32)

    @mb.program(input_specs=[mb.TensorSpec(shape=(2, 16))], opset_version=ct.target.iOS15)
    def static(x):
        return mb.relu(x=mb.linear(x=x, weight=weight), name="out")

    batch = get_new_symbol()

    @mb.program(input_specs=[mb.TensorSpec(shape=(batch, 16))], opset_version=ct.target.iOS16)
    def flexible(x):
        return mb.relu(x=mb.linear(x=x, weight=weight), name="out")

    @mb.program(input_specs=[mb.TensorSpec(shape=(3, 16))], opset_version=ct.target.iOS18)
    def ios18_batch3(x):
        return mb.relu(x=mb.linear(x=x, weight=weight), name="out")

    @mb.program(input_specs=[mb.TensorSpec(shape=(5, 16))], opset_version=ct.target.iOS18)
    def ios18_batch5(x):
        return mb.relu(x=mb.linear(x=x, weight=weight), name="out")

    # The accumulator of coremltools' stateful-models guide: an fp16 state read, updated and
    # written back with coreml_update_state.
    @mb.program(input_specs=[mb.TensorSpec(shape=(2, 16), dtype=types.fp16),
                             mb.StateTensorSpec(shape=(2, 16), dtype=types.fp16)],
                opset_version=ct.target.iOS18)
    def stateful(x, accumulator):
        total = mb.add(x=x, y=mb.read_state(input=accumulator), name="out")
        mb.coreml_update_state(state=accumulator, value=total)
        return total

    paths = {}
    for name, program, target in [("static", static, ct.target.iOS15),
                                  ("flexible", flexible, ct.target.iOS16),
                                  ("ios18_batch3", ios18_batch3, ct.target.iOS18),
                                  ("ios18_batch5", ios18_batch5, ct.target.iOS18),
                                  ("stateful", stateful, ct.target.iOS18)]:
        model = ct.convert(program, convert_to="mlprogram", skip_model_load=True,
                           minimum_deployment_target=target)
        paths[name] = os.path.join(work, f"{name}.mlpackage")
        model.save(paths[name])
    return paths


def build_multifunction_package(work, sources, name="multifunction"):
    """A two-function iOS18 package `name` written by coremltools' save_multifunction from two
    single-function packages (functions `first` and `second`, default `second`)."""
    import coremltools as ct

    desc = ct.utils.MultiFunctionDescriptor()
    desc.add_function(sources[0], "main", "first")
    desc.add_function(sources[1], "main", "second")
    desc.default_function_name = "second"
    path = os.path.join(work, f"{name}.mlpackage")
    ct.utils.save_multifunction(desc, path)
    return path


def broken_multifunction_copies(work, good):
    """Copies of the multifunction package `good` with one defect each in its description."""
    from coremltools.proto import Model_pb2

    def edited(name, change):
        path = os.path.join(work, f"{name}.mlpackage")
        shutil.copytree(good, path)
        spec_path = os.path.join(path, MODEL_FILE)
        spec = Model_pb2.Model()
        with open(spec_path, "rb") as f:
            spec.ParseFromString(f.read())
        change(spec)
        with open(spec_path, "wb") as f:
            f.write(spec.SerializeToString())
        return path

    def add_top_level_output(spec):
        spec.description.output.add().CopyFrom(spec.description.functions[0].output[0])

    return {
        "multifunction_unknown_default": edited(
            "multifunction_unknown_default",
            lambda s: setattr(s.description, "defaultFunctionName", "third")),
        "multifunction_renamed_function": edited(
            "multifunction_renamed_function",
            lambda s: setattr(s.description.functions[0], "name", "other")),
        "multifunction_wrong_function_output_shape": edited(
            "multifunction_wrong_function_output_shape",
            lambda s: s.description.functions[1].output[0].type.multiArrayType.shape
            .__setitem__(1, 9)),
        "multifunction_top_level_output": edited(
            "multifunction_top_level_output", add_top_level_output),
    }


def build_compressed_packages(work):
    """Compressed packages written by coremltools, each with a sidecar `<name>.weights.npz` of
    coremltools' decompressed weights (what the checker must accept): iOS16 attribute-form
    affine quantization, and iOS18 chains (prune -> palettize: lut_to_sparse ->
    sparse_to_dense; palettize with per-channel scale: blockwise_shift_scale -> lut_to_dense)."""
    import coremltools as ct
    import coremltools.optimize.coreml as cto
    from coremltools.converters.mil import Builder as mb

    rng = np.random.default_rng(1)
    weights = [rng.standard_normal((64, 64)).astype(np.float32) for _ in range(2)]

    def base(target):
        @mb.program(input_specs=[mb.TensorSpec(shape=(1, 64))], opset_version=target)
        def program(x):
            hidden = mb.relu(x=mb.linear(x=x, weight=weights[0]))
            return mb.linear(x=hidden, weight=weights[1], name="out")

        return ct.convert(program, convert_to="mlprogram", skip_model_load=True,
                          minimum_deployment_target=target)

    def config(op_config):
        return cto.OptimizationConfig(global_config=op_config)

    ios16 = base(ct.target.iOS16)
    ios18 = base(ct.target.iOS18)
    pruned = cto.prune_weights(ios18, config(cto.OpMagnitudePrunerConfig(target_sparsity=0.5)))
    models = {
        "ios16_int8": cto.linear_quantize_weights(ios16, config(cto.OpLinearQuantizerConfig())),
        "ios18_prune_palettize": cto.palettize_weights(
            pruned, config(cto.OpPalettizerConfig(nbits=4)), joint_compression=True),
        "ios18_palettize_scaled": cto.palettize_weights(
            ios18, config(cto.OpPalettizerConfig(mode="uniform", nbits=4,
                                                 enable_per_channel_scale=True))),
    }
    paths = {}
    for name, model in models.items():
        path = paths[name] = os.path.join(work, f"{name}.mlpackage")
        model.save(path)
        write_reference_sidecar(path)
    return paths


def write_reference_sidecar(path):
    """Save coremltools' decompressed weights of `path` as its sidecar (float32 arrays keyed
    by constexpr chain output name), as mlpack's tests save theirs."""
    import coremltools as ct
    from coremltools.converters.mil.frontend.milproto import load as milproto

    sys.path.insert(0, HERE)
    import coreml_check

    model = ct.models.MLModel(path, skip_model_load=True)
    spec = model.get_spec()
    program = milproto.load(spec, spec.specificationVersion, file_weights_dir=model.weights_dir)
    finals, _ = coreml_check.constexpr_chain_outputs(program.functions["main"])
    if not finals:
        raise RuntimeError(f"{path}: coremltools compressed nothing")
    consts = coreml_check.decompressed_consts(model)
    arrays = {name: np.asarray(consts[name]).astype(np.float32) for name in finals}
    np.savez(coreml_check.sidecar_path(path), **arrays)


def broken_sidecars(work, good):
    """Copies of the compressed package `good` whose sidecars have one defect each."""
    sys.path.insert(0, HERE)
    import coreml_check

    with np.load(coreml_check.sidecar_path(good)) as archive:
        arrays = {key: archive[key] for key in archive.files}
    first = sorted(arrays)[0]

    def one_value_off(a):
        a = a.copy()
        flat = a.reshape(-1)
        flat[7] = np.nextafter(np.float16(flat[7]), np.float16(np.inf)).astype(np.float32)
        return a

    variants = {
        "sidecar_value_off_by_one_ulp": {**arrays, first: one_value_off(arrays[first])},
        "sidecar_missing_array": {k: v for k, v in arrays.items() if k != first},
        "sidecar_extra_array": {**arrays, "not_a_weight": np.zeros(3, np.float32)},
        "sidecar_fp16_array": {**arrays, first: arrays[first].astype(np.float16)},
        "sidecar_wrong_shape": {**arrays, first: arrays[first].reshape(-1)},
    }
    broken = {}
    for name, variant in variants.items():
        path = broken[name] = os.path.join(work, f"{name}.mlpackage")
        shutil.copytree(good, path)
        np.savez(coreml_check.sidecar_path(path), **variant)
    return broken


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


def broken_states(work, good, prefix="", states=lambda spec: spec.description.state):
    """Copies of the stateful package `good` whose description misstates the state, the first
    of `states(spec)` (the top-level states, or a function's); names start with `prefix`."""
    from coremltools.proto import FeatureTypes_pb2, Model_pb2

    def edited(name, change):
        path = os.path.join(work, f"{prefix}{name}.mlpackage")
        shutil.copytree(good, path)
        spec_path = os.path.join(path, MODEL_FILE)
        spec = Model_pb2.Model()
        with open(spec_path, "rb") as f:
            spec.ParseFromString(f.read())
        change(spec)
        with open(spec_path, "wb") as f:
            f.write(spec.SerializeToString())
        return path

    def fp32(spec):
        states(spec)[0].type.stateType.arrayType.dataType = \
            FeatureTypes_pb2.ArrayFeatureType.FLOAT32

    return {
        f"{prefix}state_not_listed": edited("state_not_listed", lambda s: states(s).__delitem__(
            slice(None))),
        f"{prefix}state_wrong_shape": edited(
            "state_wrong_shape",
            lambda s: states(s)[0].type.stateType.arrayType.shape.__setitem__(1, 9)),
        f"{prefix}state_fp32": edited("state_fp32", fp32),
    }


def run_check(paths):
    result = subprocess.run([sys.executable, os.path.join(HERE, "coreml_check.py"), *paths],
                            capture_output=True, text=True, check=False)
    return result.returncode, [json.loads(line) for line in result.stdout.splitlines()]


def main():
    with tempfile.TemporaryDirectory() as work:
        good = build_packages(work)
        compressed = build_compressed_packages(work)
        good["multifunction"] = build_multifunction_package(
            work, [good["ios18_batch3"], good["ios18_batch5"]])
        good["multifunction_stateful"] = build_multifunction_package(
            work, [good["stateful"], good["stateful"]], "multifunction_stateful")
        broken = broken_copies(work, good["static"])
        broken.update(broken_multifunction_copies(work, good["multifunction"]))
        broken.update(broken_states(work, good["stateful"]))
        broken.update(broken_states(work, good["multifunction_stateful"], "multifunction_",
                                    lambda spec: spec.description.functions[0].state))
        broken.update(broken_sidecars(work, compressed["ios18_prune_palettize"]))
        good.update(compressed)
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
