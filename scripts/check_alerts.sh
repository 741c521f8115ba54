#!/usr/bin/env bash
# Checks the operations files: the Prometheus rules and scrape config (promtool check), the
# rules' unit tests (promtool test rules), the Alertmanager config and its routing by severity
# (amtool), and that every alert has a severity, a summary, a description, a runbook_url whose
# section exists in docs/runbooks/, a firing and a not-firing test, a line in the on-call
# playbook's index, and (for T.A.R.S.'s own rules) metrics that the server's source records.
# Needs promtool and amtool (Debian: prometheus, prometheus-alertmanager) and python3.
set -euo pipefail
cd "$(dirname "$0")/.."

for tool in promtool amtool python3; do
    command -v "$tool" >/dev/null || { echo "check_alerts: $tool is missing" >&2; exit 1; }
done

echo "== promtool check rules"
promtool check rules deploy/prometheus/alerts*.yml
echo "== promtool check config"
promtool check config --syntax-only deploy/prometheus/prometheus.yml
echo "== promtool test rules"
promtool test rules deploy/prometheus/tests/*.yml
echo "== amtool check-config"
amtool check-config deploy/alertmanager/alertmanager.yml
echo "== amtool config routes test"
for pair in P0:page-p0 P1:page-p1 P2:chat-p2 P3:ticket-p3; do
    severity=${pair%%:*} receiver=${pair#*:}
    amtool config routes test --config.file=deploy/alertmanager/alertmanager.yml \
        --verify.receivers="$receiver" severity="$severity" alertname=Any service=tars >/dev/null 2>&1 \
        || { echo "check_alerts: severity $severity is not routed to $receiver" >&2; exit 1; }
    echo "severity=$severity -> $receiver"
done

echo "== alert metadata, runbooks, tests and metrics"
python3 - <<'PY'
import glob, re, sys

problems = []
rule_files = sorted(glob.glob("deploy/prometheus/alerts*.yml"))

def anchor(heading):
    """GitHub's anchor of a Markdown heading."""
    text = heading.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")

anchors = {}
for path in glob.glob("docs/runbooks/*.md"):
    anchors[path] = {anchor(m.group(1)) for m in re.finditer(r"^#+ (.+)$", open(path).read(), re.M)}

# Metric names the server's source records (summaries also give _sum and _count).
recorded = set()
for path in glob.glob("crates/*/src/**/*.rs", recursive=True):
    for kind, name in re.findall(r'metrics::(counter|gauge|histogram)!\(\s*"(\w+)"', open(path).read()):
        recorded.add(name)
        if kind == "histogram":
            recorded |= {name + "_sum", name + "_count"}
# The process metrics come from the metrics-process crate, read at each scrape.
if "metrics-process" in open("crates/tars-server/Cargo.toml").read():
    recorded |= {"process_cpu_seconds_total", "process_open_fds", "process_max_fds",
                 "process_virtual_memory_bytes", "process_virtual_memory_max_bytes",
                 "process_resident_memory_bytes", "process_start_time_seconds", "process_threads"}
# Histograms given buckets (crates/tars-server/src/metrics_catalog.rs) also export _bucket.
for path in glob.glob("crates/*/src/**/*.rs", recursive=True):
    for name in re.findall(r'set_buckets_for_metric\(\s*Matcher::Full\(\s*"(\w+)"', open(path).read()):
        recorded.add(name + "_bucket")
PROMQL = {"abs", "absent", "and", "avg", "bool", "count", "increase", "max", "max_over_time",
          "min", "offset", "or", "rate", "resets", "sum", "unless", "avg_over_time",
          "histogram_quantile", "time", "clamp_min", "changes", "deriv"}
LABEL_LISTS = {"by", "without", "on", "ignoring", "group_left", "group_right"}

def metrics_of(expr):
    plain, depth = "", 0
    for c in expr:
        if c in "{[": depth += 1
        elif c in "}]": depth -= 1
        elif depth == 0: plain += c
    plain = re.sub(r"\b(?:%s)\s*\([^)]*\)" % "|".join(LABEL_LISTS), " ", plain)
    tokens = re.findall(r"[\w:]+", plain)
    return {t for t in tokens if re.match(r"[A-Za-z_]", t) and t not in PROMQL}

alerts = {}
for path in rule_files:
    text = open(path).read()
    if re.search(r"^\s*expr:\s*[|>]", text, re.M):
        problems.append(f"{path}: an expr spans several lines (the metric checks read one line)")
    for block in re.split(r"\n\s*- alert: ", text)[1:]:
        name = block.split("\n", 1)[0].strip()
        if name in alerts:
            problems.append(f"{name}: defined in {alerts[name]} and {path}")
        alerts[name] = path
        field = lambda key: (re.search(rf"^\s*{key}:\s*(.+)$", block, re.M) or [None, None])[1]
        severity = field("severity")
        if severity not in {"P0", "P1", "P2", "P3"}:
            problems.append(f"{name}: severity {severity!r} is not P0-P3")
        if field("service") != "tars":
            problems.append(f"{name}: label service: tars is missing")
        for key in ("summary", "description"):
            if not field(key):
                problems.append(f"{name}: annotation {key} is missing")
        url = (field("runbook_url") or "").strip('"\'')
        m = re.fullmatch(r"(docs/runbooks/[\w.-]+\.md)#([\w-]+)", url)
        if not m:
            problems.append(f"{name}: runbook_url {url!r} is not docs/runbooks/<file>.md#<anchor>")
        elif m.group(2) != name.lower():
            problems.append(f"{name}: runbook_url anchor {m.group(2)!r} is not {name.lower()!r}")
        elif m.group(2) not in anchors.get(m.group(1), set()):
            problems.append(f"{name}: {url} has no such section")
        if "exporters" not in path:
            expr = field("expr") or ""
            for metric in sorted(metrics_of(expr) - recorded):
                problems.append(f"{name}: {metric} is not a metric the server records")

# Every alert has a not-firing (exp_alerts: []) and a firing (exp_labels) case.
cases, n_cases = {}, 0
for path in glob.glob("deploy/prometheus/tests/*.yml"):
    current = None
    for line in open(path):
        m = re.match(r"\s*alertname:\s*(\w+)", line)
        if m:
            current = m.group(1)
            n_cases += 1
            continue
        if current and re.match(r"\s*exp_alerts:\s*\[\]", line):
            cases.setdefault(current, set()).add("silent")
        elif current and re.match(r"\s*- exp_labels:", line):
            cases.setdefault(current, set()).add("firing")
for name in sorted(alerts):
    for kind in ("firing", "silent"):
        if kind not in cases.get(name, set()):
            problems.append(f"{name}: no {kind} test case in deploy/prometheus/tests/")

playbook = open("docs/runbooks/oncall-playbook.md").read()
for name in sorted(alerts):
    if not re.search(rf"^\| {name} \|", playbook, re.M):
        problems.append(f"{name}: missing from the alert index of docs/runbooks/oncall-playbook.md")

for problem in problems:
    print("check_alerts:", problem, file=sys.stderr)
if problems:
    sys.exit(1)
print(f"{len(alerts)} alerts in {len(rule_files)} rule files, {n_cases} promtool test cases: "
      "severity, summary, description, runbook section, firing and silent tests, playbook "
      "index and metrics all present")
PY
echo "check_alerts: all checks passed"
