#!/usr/bin/env bash
# The generated Python client: openapi-python-client generates `tars_client` from
# docs/api/openapi.json (any warning fails, so a construct it cannot express, and an endpoint it
# would drop, fail here), the package installs into a venv, every operation of the document must
# have its functions in it, and against a fresh embedded `tars serve` scripts/pyclient_smoke.py
# uses only that client to log in, evaluate, poll the job and list baselines. Then
# examples/python/client.py runs twice against the same server (a re-run is a new submission).
#
#   scripts/check_python_client.sh                                   # builds the debug `tars`
#   TARS_BIN=path/to/tars scripts/check_python_client.sh             # uses that binary
#
# It needs python3; the generator and the client's dependencies (scripts/requirements-pyclient.txt
# and examples/python/requirements.txt) go into a venv under target/.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

venv=${PYCLIENT_VENV:-target/pyclient-venv}
requirements=(scripts/requirements-pyclient.txt examples/python/requirements.txt)
# (Re)installed when the pinned requirements change.
if ! cat "${requirements[@]}" | cmp -s - "$venv/requirements.txt"; then
    python3 -m venv --clear "$venv"
    "$venv/bin/pip" install -q "${requirements[@]/#/-r}"
    cat "${requirements[@]}" >"$venv/requirements.txt"
fi
venv=$(cd "$venv" && pwd)
py="$venv/bin/python"

[ -n "${TARS_BIN:-}" ] || cargo build -q -p tars-cli
tars=${TARS_BIN:-target/debug/tars}

dir=$(mktemp -d)
pid=
trap '[ -z "$pid" ] || { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }; rm -rf "$dir"' EXIT

# Generate. The generator runs ruff on its output, so the venv's bin goes first on PATH.
cat >"$dir/config.yaml" <<'EOF'
project_name_override: tars-client
package_name_override: tars_client
EOF
echo "check_python_client: generating tars_client from docs/api/openapi.json"
status=0
(cd "$dir" && PATH="$venv/bin:$PATH" "$venv/bin/openapi-python-client" generate \
    --path "$root/docs/api/openapi.json" --config config.yaml --output-path "$dir/tars-client" \
    --fail-on-warning) >"$dir/generate.log" 2>&1 || status=$?
cat "$dir/generate.log"
# Anything but the "Generating …" line is a warning or an error.
if [ "$status" -ne 0 ] || grep -qv '^Generating ' "$dir/generate.log"; then
    echo "check_python_client: openapi-python-client did not generate the client cleanly" >&2
    exit 1
fi
"$venv/bin/pip" install -q --no-deps --no-build-isolation --force-reinstall "$dir/tars-client"
"$venv/bin/pip" check >"$dir/pip-check.log" || { cat "$dir/pip-check.log"; exit 1; }
"$py" scripts/pyclient_smoke.py operations docs/api/openapi.json

password='pyclient-admin-password'
TARS_DATA_DIR="$dir/data" TARS_ADMIN_PASSWORD="$password" "$tars" serve --port 0 \
    --rate-limit-rps 0 >"$dir/log" 2>&1 &
pid=$!

base=
for _ in $(seq 600); do
    base=$(sed -n 's/^T\.A\.R\.S\. listening on \(http[^ ]*\).*/\1/p' "$dir/log" | head -1)
    [ -n "$base" ] && break
    kill -0 "$pid" 2>/dev/null || { cat "$dir/log"; echo "check_python_client: tars serve exited" >&2; exit 1; }
    sleep 0.1
done
[ -n "$base" ] || { cat "$dir/log"; echo "check_python_client: tars serve did not start" >&2; exit 1; }

export TARS_ADMIN_PASSWORD="$password"
"$py" scripts/pyclient_smoke.py smoke "$base"
echo "check_python_client: the generated client passed (${SECONDS} s so far)"
for run in 1 2; do
    echo "check_python_client: examples/python/client.py, run $run"
    "$py" examples/python/client.py "$base" >"$dir/example-$run.log" 2>&1 || {
        cat "$dir/example-$run.log"
        echo "check_python_client: examples/python/client.py failed on run $run" >&2
        exit 1
    }
    tail -3 "$dir/example-$run.log"
    echo "check_python_client: run $run passed (${SECONDS} s so far)"
done
kill -0 "$pid" 2>/dev/null || { cat "$dir/log"; echo "check_python_client: tars serve died" >&2; exit 1; }
echo "check_python_client: the generated client and the example passed against a fresh server"
