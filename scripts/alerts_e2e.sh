#!/usr/bin/env bash
# The alert rules end to end: a fresh embedded `tars serve` and a real Prometheus scraping it
# every second with test copies of deploy/prometheus/alerts*.yml loaded; the conditions are
# driven through the API and each alert must fire on Prometheus' /api/v1/alerts:
#
#   CriticalRegressionDetected  a 256-step PPO compared with a 500 baseline on CartPole-v1
#   EvaluationFailureRateHigh   evaluations of a checkpoint that does not exist
#   HighEvaluationLatency       an evaluation that trains for seconds, against a 1 s threshold
#   HighRateLimitRejections     a burst of requests past --rate-limit-rps/--rate-limit-burst
#   EvalEngineDown              the server killed with SIGKILL
#
# Before each condition the alerts it must not trip are checked silent (an idle server, a
# pair whose severity series are at 0 from start-up, a fast successful evaluation). The copies'
# overrides are mechanical and printed first (scripts/alerts_e2e.py: `for:` and range windows
# shortened, one threshold lowered); names, labels and expressions are the shipped ones.
# Prints how long each alert took to fire; on a miss, exits 1 naming the alert, with
# /api/v1/alerts, the alert's expression and value and the server's metric lines.
#
#   scripts/alerts_e2e.sh                            # builds the debug tars
#   TARS_BIN=target/debug/tars scripts/alerts_e2e.sh # that binary
#
# Needs python3, promtool and prometheus (Debian's prometheus package; PROMETHEUS_BIN and
# PROMTOOL_BIN name others). About 45 s.
set -euo pipefail
cd "$(dirname "$0")/.."

prometheus=${PROMETHEUS_BIN:-prometheus}
promtool=${PROMTOOL_BIN:-promtool}
for tool in "$prometheus" "$promtool" python3; do
    command -v "$tool" >/dev/null || { echo "alerts_e2e: $tool is missing" >&2; exit 1; }
done
if [ -n "${TARS_BIN:-}" ]; then
    tars=$TARS_BIN
else
    cargo build -q -p tars-cli
    tars=target/debug/tars
fi

dir=$(mktemp -d)
tars_pid= tars_job= prom_pid=
cleanup() {
    for pid in $prom_pid $tars_pid; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in $prom_pid $tars_job; do
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$dir"
}
trap cleanup EXIT
logs() {
    echo "---- tars serve log (last 40 lines)" >&2; tail -n 40 "$dir/tars.log" >&2 || true
    echo "---- prometheus log (last 20 lines)" >&2; tail -n 20 "$dir/prometheus.log" >&2 || true
}

# A baseline before start-up: the server starts DQN/CartPole-v1's regression series at 0,
# which CriticalRegressionDetected must not take for a regression.
export TARS_DATA_DIR="$dir/data"
"$tars" baseline insert --agent DQN --env CartPole-v1 --mean 450 --std 25 --success 0.95 >/dev/null

# The rate limit refuses the burst; the script's own requests (about ten) stay under it.
password='alerts-e2e-admin-password'
tars_flags=(--port 0 --rate-limit-rps 2 --rate-limit-burst 10 --access-token-ttl 3600)
echo "alerts_e2e: tars serve ${tars_flags[*]}"
# In a subshell whose stderr is dropped: the shell's "Killed" report when the driver kills it.
(
    NO_COLOR=1 TARS_ADMIN_PASSWORD="$password" "$tars" serve "${tars_flags[@]}" >"$dir/tars.log" 2>&1 &
    echo $! >"$dir/tars.pid"
    wait
) 2>/dev/null &
tars_job=$!
until [ -s "$dir/tars.pid" ]; do sleep 0.05; done
tars_pid=$(cat "$dir/tars.pid")
base=
for _ in $(seq 600); do
    base=$(sed -n 's/^T\.A\.R\.S\. listening on \(http[^ ]*\).*/\1/p' "$dir/tars.log" | head -1)
    [ -n "$base" ] && break
    kill -0 "$tars_pid" 2>/dev/null || { logs; echo "alerts_e2e: tars serve exited" >&2; exit 1; }
    sleep 0.1
done
[ -n "$base" ] || { logs; echo "alerts_e2e: tars serve did not start" >&2; exit 1; }

python3 scripts/alerts_e2e.py rules deploy/prometheus "$dir/rules"
"$promtool" check rules "$dir"/rules/alerts*.yml >/dev/null \
    || { "$promtool" check rules "$dir"/rules/alerts*.yml; echo "alerts_e2e: the test copies do not load" >&2; exit 1; }

# Job "tars" as deploy/prometheus/prometheus.yml names it (the rules select on it).
cat >"$dir/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
  - rules/alerts.yml
  - rules/alerts-fleet.yml
  - rules/alerts-exporters.yml
scrape_configs:
  - job_name: tars
    metrics_path: /metrics
    static_configs:
      - targets: ["${base#http://}"]
EOF
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
prom="http://127.0.0.1:$port"
"$prometheus" --config.file="$dir/prometheus.yml" --storage.tsdb.path="$dir/tsdb" \
    --web.listen-address="127.0.0.1:$port" >"$dir/prometheus.log" 2>&1 &
prom_pid=$!
for _ in $(seq 300); do
    python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1] + "/-/ready", timeout=1)' "$prom" 2>/dev/null && break
    kill -0 "$prom_pid" 2>/dev/null || { logs; echo "alerts_e2e: prometheus exited" >&2; exit 1; }
    sleep 0.1
done
echo "alerts_e2e: tars serve at $base (pid $tars_pid), prometheus at $prom"

python3 scripts/alerts_e2e.py drive --tars "$base" --prometheus "$prom" --password "$password" \
    --pid "$tars_pid" --rules "$dir/rules" || { logs; exit 1; }
