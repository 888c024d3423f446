#!/bin/sh
# Create .venv at the repository root (if missing) with the pinned coremltools toolchain used
# by scripts/coreml_check.py. Idempotent and quiet: does nothing when the stamp in .venv
# matches scripts/requirements-conformance.txt; prints pip's log only when something fails.
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
venv="$root/.venv"
requirements="$root/scripts/requirements-conformance.txt"
stamp="$venv/.mlpack-requirements.sha256"
python=${PYTHON:-python3}

want=$(sha256sum "$requirements" | cut -d' ' -f1)
if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    exit 0
fi

log=$(mktemp)
trap 'rm -f "$log"' EXIT
fail() {
    echo "setup-python.sh: $1 (log follows)" >&2
    cat "$log" >&2
    exit 1
}

if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv" >"$log" 2>&1 || fail "cannot create $venv with $python"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    --requirement "$requirements" >"$log" 2>&1 || fail "pip install failed"
"$venv/bin/python" -c "import coremltools, coremltools.converters.mil.frontend.milproto.load, sklearn.cluster" \
    >"$log" 2>&1 || fail "coremltools does not import"
echo "$want" >"$stamp"
