#!/usr/bin/env bash
# Runs every test on a fresh machine:
#   0. checks formatting (cargo fmt) and lints (cargo clippy, warnings are errors),
#   1. installs the pinned Python tools (coremltools 9.0) into .venv,
#   2. fetches the ONNX backend node tests (scripts/onnx-node-tests.sh) for
#      tests/onnx_node_conformance.rs,
#   3. runs the Rust tests (unit tests, CLI tests, the fuzz smoke run of tests/fuzz_smoke.rs
#      (docs/fuzzing.md), conversions checked against the ONNX Runtime
#      outputs saved with the fixtures),
#   4. checks every package those tests wrote (under target/test-packages) with coremltools:
#      it must load, its program must parse, and its declared I/O types must match; packages
#      with a NAME.weights.npz sidecar must decompress in coremltools to exactly those weights;
#   5. compresses the fixture models with coremltools and with mlpack and compares the results
#      weight by weight (scripts/compare_coremltools.py, ~2 min).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo fmt --all --check
cargo clippy --locked --all-targets -- -D warnings

bash scripts/setup-python.sh
.venv/bin/python scripts/coreml_check_selftest.py >/dev/null 2>&1 \
  || { echo "coreml_check self-test failed: run .venv/bin/python scripts/coreml_check_selftest.py" >&2; exit 1; }

sh scripts/onnx-node-tests.sh
rm -rf target/test-packages
cargo test --locked

mapfile -t packages < <(find target/test-packages -type d -name '*.mlpackage' -prune | sort)
if [ "${#packages[@]}" -eq 0 ]; then
  echo "no packages were written by the tests" >&2
  exit 1
fi
report=target/coreml-check.jsonl
status=0
.venv/bin/python scripts/coreml_check.py "${packages[@]}" >"$report" 2>/dev/null || status=$?
passed=$(grep -c '"ok": true' "$report" || true)
failed=$(grep -c '"ok": false' "$report" || true)
if [ "$status" -ne 0 ] || [ "$failed" -ne 0 ]; then
  grep '"ok": false' "$report" >&2 || true
fi
echo "conformance: $passed passed, $failed failed"
conformance_ok=0
{ [ "$status" -eq 0 ] && [ "$failed" -eq 0 ]; } || conformance_ok=1

# target/debug/mlpack is the build `cargo test` just left (test profile, opt-level 2); an
# unoptimized `cargo build` binary would take minutes on vector k-means.
compare_ok=0
log=target/compare-coremltools.log
.venv/bin/python scripts/compare_coremltools.py --mlpack target/debug/mlpack \
  --out target/compare-coremltools 2>"$log" || compare_ok=$?
if [ "$compare_ok" -ne 0 ]; then
  echo "compare_coremltools failed; its log follows (full log: $log)" >&2
  grep -v -e '^Failed to load' -e 'scikit-learn version' "$log" | tail -n 40 >&2 || true
fi
[ "$conformance_ok" -eq 0 ] && [ "$compare_ok" -eq 0 ]
