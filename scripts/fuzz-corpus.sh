#!/usr/bin/env bash
# Fills fuzz/corpus/<target>/seed-* (the committed seeds of the cargo-fuzz targets and of
# tests/fuzz_smoke.rs) from small fixtures. Run from anywhere after a build (it converts two
# fixtures with target/debug/mlpack for the mlpackage seeds); see docs/fuzzing.md.
set -euo pipefail
cd "$(dirname "$0")/.."
mlpack=${MLPACK:-target/debug/mlpack}
corpus=fuzz/corpus
rm -f "$corpus"/*/seed-*
mkdir -p "$corpus"/{onnx,mlpackage,npy,npz,plan,recipe,pt2}

for m in mlp_op17 small_cnn_op17 small_cnn_dynamic; do
  cp "fixtures/models/$m/model.onnx" "$corpus/onnx/seed-$m.onnx"
done
for op in add_broadcast cast_int64_to_float gather_axis1_negative_indices conv_groups_dilations_strides \
    shape_gather_unsqueeze_concat_reshape slice_negative_steps sdpa_masked_dynamo_op18 \
    reduce_mean_op18_axes_input maxpool_ceil mha_torchscript_op14 where_softmax_nan_guard; do
  cp "fixtures/ops/$op/model.onnx" "$corpus/onnx/seed-op-$op.onnx"
done
for bad in huge_pads_conv overflow_input zero_size_initializer; do
  cp "fixtures/bad/$bad/model.onnx" "$corpus/onnx/seed-bad-$bad.onnx"
done

for m in buffer/model.pt2 buffer/model_torch27_aten.pt2 inf_mask/model.pt2; do
  cp "fixtures/pt2/$m" "$corpus/pt2/seed-$(echo "$m" | tr / -)"
done

for m in mlp_op17 small_cnn_op17; do
  cp "fixtures/models/$m/input_0.npy" "$corpus/npy/seed-$m-input.npy"
  cp "fixtures/models/$m/output_0.npy" "$corpus/npy/seed-$m-output.npy"
done
cp fixtures/ops/add_broadcast/input_1.npy "$corpus/npy/seed-add-input1.npy"
# An .npz of two members, one stored and one deflated (np.savez / np.savez_compressed).
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp fixtures/ops/add_broadcast/input_0.npy "$tmp/a.npy"
cp fixtures/ops/add_broadcast/input_1.npy "$tmp/b.npy"
(cd "$tmp" && zip -q -0 stored.npz a.npy b.npy && zip -q -9 deflated.npz a.npy b.npy)
cp "$tmp/stored.npz" "$corpus/npz/seed-stored.npz"
cp "$tmp/deflated.npz" "$corpus/npz/seed-deflated.npz"

cp fixtures/batch/plan.json "$corpus/plan/seed-plan.json"
cp fixtures/batch/unknown_key.json "$corpus/plan/seed-unknown-key.json"
cp fixtures/batch/recipe.json "$corpus/recipe/seed-recipe.json"
cat >"$corpus/recipe/seed-overrides.json" <<'JSON'
{
  "weight_threshold": 16,
  "global": {"palettize": {"nbits": 4}},
  "op_types": {"linear": {"quantize": {"dtype": "int8"}}},
  "op_names": {"*fc*": null, "*1*": {"prune": {"n_m": "2:4"}, "palettize": {"nbits": 4}}},
  "fp32": {"ops": ["relu"], "nodes": ["*norm*"], "patterns": ["layer-norm"]}
}
JSON

# An mlpackage input is Manifest.json, model.mlmodel and weight.bin joined by the separator
# in fuzz/src/lib.rs (PART_SEPARATOR).
sep=$'\n--mlpack-fuzz-part--\n'
for m in mlp_op17 small_cnn_op17; do
  "$mlpack" convert "fixtures/models/$m/model.onnx" -o "$tmp/$m.mlpackage" --no-verify -q
  d="$tmp/$m.mlpackage/Data/com.apple.CoreML"
  { cat "$tmp/$m.mlpackage/Manifest.json"; printf '%s' "$sep"; cat "$d/model.mlmodel"
    printf '%s' "$sep"; cat "$d/weights/weight.bin"; } >"$corpus/mlpackage/seed-$m"
done
du -sh "$corpus"
