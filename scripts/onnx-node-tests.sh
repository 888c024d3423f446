#!/bin/sh
# Fetch the ONNX backend node tests (the suite shipped inside the onnx 1.19.1 wheel; later
# wheels carry none) into <target dir>/onnx-node-tests/node/<case>/{model.onnx,test_data_set_0/}
# for tests/onnx_node_conformance.rs. Needs python3 with pip. Idempotent and quiet: a stamp
# file makes later runs a no-op; pip's log is printed only when something fails.
set -eu

version=1.19.1
expected_cases=1615

root=$(cd "$(dirname "$0")/.." && pwd)
target=${CARGO_TARGET_DIR:-target}
case "$target" in
/*) ;;
*) target="$root/$target" ;;
esac
dest="$target/onnx-node-tests"
stamp="$dest/.fetched-onnx-$version"
python=${PYTHON:-python3}

if [ -f "$stamp" ] && [ -d "$dest/node" ]; then
    exit 0
fi

mkdir -p "$dest/wheel"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
fail() {
    echo "onnx-node-tests.sh: $1 (log follows)" >&2
    cat "$log" >&2
    exit 1
}

"$python" -m pip download --quiet --disable-pip-version-check --no-deps \
    --only-binary :all: "onnx==$version" -d "$dest/wheel" >"$log" 2>&1 \
    || fail "pip download of onnx==$version failed"

# Extract into a fresh directory, then swap it in, so an interrupted run leaves no half suite.
"$python" - "$dest" "$version" "$expected_cases" >"$log" 2>&1 <<'EOF' || fail "extracting the node tests failed"
import glob, os, shutil, sys, zipfile

dest, version, expected = sys.argv[1], sys.argv[2], int(sys.argv[3])
wheels = sorted(glob.glob(os.path.join(dest, "wheel", f"onnx-{version}-*.whl")))
if not wheels:
    sys.exit(f"no onnx-{version} wheel in {dest}/wheel")
prefix = "onnx/backend/test/data/node/"
staging = os.path.join(dest, "node.partial")
shutil.rmtree(staging, ignore_errors=True)
cases = set()
with zipfile.ZipFile(wheels[0]) as wheel:
    for info in wheel.infolist():
        if not info.filename.startswith(prefix) or info.is_dir():
            continue
        relative = info.filename[len(prefix):]
        parts = relative.split("/")
        if any(p in ("", ".", "..") for p in parts):
            sys.exit(f"unexpected path in the wheel: {info.filename}")
        cases.add(parts[0])
        out = os.path.join(staging, *parts)
        os.makedirs(os.path.dirname(out), exist_ok=True)
        with wheel.open(info) as src, open(out, "wb") as dst:
            shutil.copyfileobj(src, dst)
if len(cases) != expected:
    sys.exit(f"expected {expected} node test cases in {wheels[0]}, found {len(cases)}")
final = os.path.join(dest, "node")
shutil.rmtree(final, ignore_errors=True)
os.rename(staging, final)
EOF

echo "onnx $version: $expected_cases node test cases" >"$stamp"
