#!/usr/bin/env bash
# Runs every test on a fresh machine:
#   1. installs the pinned Python tools (coremltools 9.0) into .venv,
#   2. fetches the ONNX backend node tests (scripts/onnx-node-tests.sh) for
#      tests/onnx_node_conformance.rs,
#   3. runs the Rust tests (unit tests, CLI tests, conversions checked against the ONNX Runtime
#      outputs saved with the fixtures),
#   4. checks every package those tests wrote (under target/test-packages) with coremltools:
#      it must load, its program must parse, and its declared I/O types must match.
set -euo pipefail
cd "$(dirname "$0")/.."

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
[ "$status" -eq 0 ] && [ "$failed" -eq 0 ]
