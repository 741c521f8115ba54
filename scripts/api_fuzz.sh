#!/usr/bin/env bash
# The API fuzz campaign: first openapi-spec-validator checks the committed document
# (docs/api/openapi.json, which a test keeps equal to the served one) against OpenAPI 3.1; then
# schemathesis generates requests from /openapi.json of a fresh embedded `tars serve` (with an
# admin token, then without one) and fails on any 5xx, any response that does not match the
# document, or a server that stops answering /health.
#
#   scripts/api_fuzz.sh                      # 100 examples per operation and phase
#   FUZZ_MAX_EXAMPLES=20 scripts/api_fuzz.sh # the bounded run of .ci/run
#
# One worker: CPython 3.11's ast.parse is not thread-safe, and hypothesis parses lambdas with it.
# It needs python3 (schemathesis and openapi-spec-validator, pinned in
# scripts/requirements-fuzz.txt, go into a venv under target/) and builds the debug `tars`. The server keeps its defaults except that the
# campaign must not be refused for load: no rate limit, a queue and CPU slots no burst fills,
# no synchronous wait, and a small step budget so the jobs it starts end quickly.
set -euo pipefail
cd "$(dirname "$0")/.."

max_examples=${FUZZ_MAX_EXAMPLES:-100}
venv=${FUZZ_VENV:-target/fuzz-venv}
# (Re)installed when the pinned requirements change.
if ! cmp -s scripts/requirements-fuzz.txt "$venv/requirements.txt"; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q -r scripts/requirements-fuzz.txt
    cp scripts/requirements-fuzz.txt "$venv/requirements.txt"
fi
"$venv/bin/openapi-spec-validator" docs/api/openapi.json
cargo build -q -p tars-cli
tars=target/debug/tars

dir=$(mktemp -d)
password='fuzz-admin-password'
TARS_DATA_DIR="$dir/data" TARS_ADMIN_PASSWORD="$password" "$tars" serve --port 0 \
    --rate-limit-rps 0 --queue-capacity 100000 --max-queued-per-principal 100000 --cpu-slots 1024 --sync-wait-seconds 0 \
    --max-job-env-steps 300000 --access-token-ttl 86400 >"$dir/log" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$dir"' EXIT

base=
for _ in $(seq 600); do
    base=$(sed -n 's/^T\.A\.R\.S\. listening on \(http[^ ]*\).*/\1/p' "$dir/log" | head -1)
    [ -n "$base" ] && break
    kill -0 "$pid" 2>/dev/null || { cat "$dir/log"; echo "api_fuzz: tars serve exited" >&2; exit 1; }
    sleep 0.1
done
[ -n "$base" ] || { cat "$dir/log"; echo "api_fuzz: tars serve did not start" >&2; exit 1; }

py="$venv/bin/python"
token=$("$py" - "$base" "$password" <<'EOF'
import json, sys, urllib.request
base, password = sys.argv[1], sys.argv[2]
body = json.dumps({"username": "admin", "password": password}).encode()
request = urllib.request.Request(base + "/auth/login", body, {"content-type": "application/json"})
print(json.load(urllib.request.urlopen(request))["access_token"])
EOF
)

healthy() {
    "$py" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1] + "/health", timeout=5)' "$base"
}

fuzz() { # label, extra schemathesis arguments...
    local label=$1; shift
    echo "api_fuzz: $label"
    "$venv/bin/schemathesis" run "$base/openapi.json" \
        --checks not_a_server_error,response_schema_conformance \
        --max-examples "$max_examples" --seed 1 --workers 1 --request-timeout 30 "$@"
    healthy || { echo "api_fuzz: the server stopped answering /health ($label)" >&2; exit 1; }
}

fuzz "authenticated (admin)" --header "Authorization: Bearer $token"
fuzz "unauthenticated"
kill -0 "$pid" 2>/dev/null || { cat "$dir/log"; echo "api_fuzz: tars serve died" >&2; exit 1; }
echo "api_fuzz: no server error, no response outside the document, /health answered throughout"
