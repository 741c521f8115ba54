#!/usr/bin/env bash
# Checks the Grafana dashboards of deploy/grafana/: that each has what Grafana needs to load it as
# it is (uid, title, unique panel ids, grid positions that fit and do not overlap, the provisioned
# Prometheus behind a `datasource` variable, refIds), that every query is valid PromQL (each
# target's and each query variable's expression, template variables replaced by sample values,
# goes into a temporary rules file as a recording rule for `promtool check rules`), and that every
# metric a query names is one the server's source records, one that
# deploy/grafana/exporter-metrics.txt lists with its exporter, or one that
# deploy/grafana/pending-metrics.txt lists with the issue item that will export it. A pending
# metric the source records already, and a line of either list that no dashboard uses, fail too.
# Needs promtool (Debian: prometheus) and python3.
set -euo pipefail
cd "$(dirname "$0")/.."

for tool in promtool python3; do
    command -v "$tool" >/dev/null || { echo "check_dashboards: $tool is missing" >&2; exit 1; }
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
status=0

echo "== dashboards, variables, queries and metrics"
python3 - "$work/rules.yml" <<'PY' || status=1
import glob, json, re, sys

rules_path = sys.argv[1]
problems = []
GRAFANA = "deploy/grafana"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
PANEL_TYPES = {"row", "timeseries", "stat", "gauge", "piechart", "state-timeline", "bargauge",
               "table", "heatmap", "text"}

provisioned = open(f"{GRAFANA}/provisioning/datasources/prometheus.yaml").read()
m = re.search(r"^\s*uid:\s*([\w.-]+)\s*$", provisioned, re.M)
datasource_uid = m.group(1) if m else None
if not datasource_uid:
    problems.append("provisioning/datasources/prometheus.yaml names no datasource uid")

# The metrics the server's source records. A histogram is a summary (the name with a `quantile`
# label, _sum, _count) unless the exporter is given buckets for it (_bucket, _sum, _count).
recorded, histograms, sources = set(), set(), {}
for path in sorted(glob.glob("crates/*/src/**/*.rs", recursive=True)):
    text = open(path).read()
    sources[path] = text
    for kind, name in re.findall(r'(?:metrics::)?\b(counter|gauge|histogram)!\(\s*"([A-Za-z_:][\w:]*)"', text):
        (histograms if kind == "histogram" else recorded).add(name)
all_buckets = any(re.search(r"\.set_buckets\(", t) for t in sources.values())
bucket_matchers = []
for path, text in sources.items():
    calls = len(re.findall(r"\.set_buckets_for_metric\(", text))
    literals = re.findall(r'\.set_buckets_for_metric\(\s*Matcher::(Full|Prefix|Suffix)\(\s*"([^"]+)"', text)
    if calls != len(literals):
        problems.append(f"{path}: set_buckets_for_metric with a matcher that is not a string literal; "
                        "teach scripts/check_dashboards.sh which histograms it gives buckets")
    bucket_matchers += literals

def has_buckets(name):
    return all_buckets or any(
        (kind == "Full" and name == arg) or (kind == "Prefix" and name.startswith(arg))
        or (kind == "Suffix" and name.endswith(arg)) for kind, arg in bucket_matchers)

for name in histograms:
    suffixes = ("_bucket", "_sum", "_count") if has_buckets(name) else ("", "_sum", "_count")
    recorded |= {name + s for s in suffixes}

def read_list(path, needs):
    """name -> the rest of its line, for a list of one metric per line (# starts a comment)."""
    entries = {}
    for n, line in enumerate(open(path), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        m = re.match(r"([A-Za-z_:][\w:]*)\s+(.*\S)\s*$", line)
        if not m or not needs(m.group(2)):
            problems.append(f"{path}:{n}: expected a metric name and {needs.__doc__}")
            continue
        if m.group(1) in entries:
            problems.append(f"{path}:{n}: {m.group(1)} is listed twice")
        entries[m.group(1)] = m.group(2)
    return entries

def exporter(rest):
    """the exporter that provides it"""
    return not rest.startswith("#")

def pending_item(rest):
    """a comment naming the issue-25 item that will export it"""
    return re.match(r"#\s*issue 25\b.*\w", rest) is not None

exporters = read_list(f"{GRAFANA}/exporter-metrics.txt", exporter)
pending = read_list(f"{GRAFANA}/pending-metrics.txt", pending_item)

# Grafana's own variables, replaced by values of the kind Grafana puts there.
BUILTIN = {"__rate_interval": "1m", "__interval": "1m", "__interval_ms": "60000", "__range": "1h",
           "__range_s": "3600", "__range_ms": "3600000"}
VARIABLE = re.compile(r"\$\{(\w+)(?::[^}]*)?\}|\$(\w+)|\[\[(\w+)(?::[^\]]*)?\]\]")
MATCHER = re.compile(r'([A-Za-z_]\w*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"')

def substitute(expr, variables, where):
    multi = {n for n, v in variables.items() if v.get("multi") or v.get("includeAll")}
    for label, op, value in MATCHER.findall(expr):
        for groups in VARIABLE.findall(value):
            name = next(g for g in groups if g)
            if name in multi and op in ("=", "!="):
                problems.append(f"{where}: {label}{op}\"{value}\": ${name} takes several values, "
                                "so it needs =~ or !~")

    def value(m):
        name = next(g for g in m.groups() if g)
        if name in BUILTIN:
            return BUILTIN[name]
        variable = variables.get(name)
        if variable is None:
            problems.append(f"{where}: ${name} is not a variable of the dashboard")
            return name
        if variable.get("type") == "datasource":
            problems.append(f"{where}: ${name} (the data source) inside a query")
            return name
        return variable.get("allValue") or "sample_a|sample_b"
    return VARIABLE.sub(value, expr)

FUNCTION_LIKE = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring",
            "group_left", "group_right", "inf", "nan"}

def metrics_of(expr):
    """The metric names of a PromQL expression (not functions, labels, strings or durations)."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', expr)
    plain, depth = "", 0
    for c in expr:
        if c in "{[":
            depth += 1
        elif c in "}]":
            depth -= 1
        elif depth == 0:
            plain += c
    plain = FUNCTION_LIKE.sub(" ", plain)
    names = set()
    for m in re.finditer(r"(?<![\w:.])([A-Za-z_:][\w:]*)(\s*\()?", plain):
        if not m.group(2) and m.group(1).lower() not in KEYWORDS:
            names.add(m.group(1))
    return names

def walk(panels):
    for panel in panels:
        yield panel
        yield from walk(panel.get("panels", []))

groups, used, uids, titles = [], {}, {}, {}
n_panels = n_queries = 0
paths = sorted(glob.glob(f"{GRAFANA}/*.json"))
if not paths:
    problems.append(f"no dashboards in {GRAFANA}/")
for path in paths:
    name = path.rsplit("/", 1)[1]
    stem = re.sub(r"\W", "_", name[:-len(".json")])
    try:
        dashboard = json.load(open(path))
    except ValueError as err:
        problems.append(f"{name}: not JSON: {err}")
        continue
    uid, title = dashboard.get("uid"), dashboard.get("title")
    if not isinstance(uid, str) or not re.fullmatch(r"[\w-]{1,40}", uid):
        problems.append(f"{name}: uid {uid!r} is not 1-40 letters, digits, - or _")
    elif uid in uids:
        problems.append(f"{name}: uid {uid} is also the uid of {uids[uid]}")
    uids[uid] = name
    if not title:
        problems.append(f"{name}: no title")
    elif title in titles:
        problems.append(f"{name}: title {title!r} is also the title of {titles[title]}")
    titles[title] = name
    if not isinstance(dashboard.get("schemaVersion"), int):
        problems.append(f"{name}: no schemaVersion")
    if dashboard.get("id") is not None:
        problems.append(f"{name}: id must be null (Grafana assigns it)")

    variables = {}
    for variable in dashboard.get("templating", {}).get("list", []):
        variables[variable.get("name")] = variable
    source = variables.get("datasource")
    if not source or source.get("type") != "datasource" or source.get("query") != "prometheus":
        problems.append(f"{name}: no variable `datasource` of type datasource for prometheus")
    elif source.get("current", {}).get("value") != datasource_uid:
        problems.append(f"{name}: the datasource variable's default is not the provisioned uid {datasource_uid}")
    rules = []
    for vname, variable in variables.items():
        if variable.get("type") != "query":
            continue
        where = f"{name}: variable {vname}"
        if variable.get("datasource") != DATASOURCE:
            problems.append(f"{where}: datasource is not {DATASOURCE}")
        query = variable.get("query")
        query = query.get("query") if isinstance(query, dict) else query
        m = re.fullmatch(r"\s*label_values\(\s*(?:(.+?)\s*,\s*)?(\w+)\s*\)\s*", query or "")
        if not m:
            problems.append(f"{where}: query {query!r} is not label_values([selector,] label)")
        elif m.group(1):
            expr = substitute(m.group(1), variables, where)
            rules.append((f"{stem}:variable_{vname}", expr, where))

    cells, ids = {}, set()
    for panel in walk(dashboard.get("panels", [])):
        pid, ptype = panel.get("id"), panel.get("type")
        where = f"{name}: panel {pid} {panel.get('title')!r}"
        n_panels += 1
        if not isinstance(pid, int) or pid in ids:
            problems.append(f"{where}: id is not a unique integer")
        ids.add(pid)
        if ptype not in PANEL_TYPES:
            problems.append(f"{where}: unknown panel type {ptype!r}")
        if not panel.get("title"):
            problems.append(f"{where}: no title")
        grid = panel.get("gridPos", {})
        if not all(isinstance(grid.get(k), int) for k in "hwxy") or grid["x"] + grid["w"] > 24 \
                or min(grid["h"], grid["w"]) < 1 or min(grid["x"], grid["y"]) < 0:
            problems.append(f"{where}: gridPos {grid} is not h, w, x, y within 24 columns")
        else:
            for x in range(grid["x"], grid["x"] + grid["w"]):
                for y in range(grid["y"], grid["y"] + grid["h"]):
                    if (x, y) in cells:
                        problems.append(f"{where}: overlaps panel {cells[(x, y)]} at x={x} y={y}")
                        break
                    cells[(x, y)] = pid
                else:
                    continue
                break
        if ptype == "row":
            if panel.get("targets"):
                problems.append(f"{where}: a row has no queries")
            continue
        if panel.get("datasource") != DATASOURCE:
            problems.append(f"{where}: datasource is not {DATASOURCE}")
        targets = panel.get("targets") or []
        if not targets:
            problems.append(f"{where}: no queries")
        refs = set()
        for target in targets:
            ref = target.get("refId")
            twhere = f"{where} query {ref}"
            if not ref or ref in refs:
                problems.append(f"{twhere}: refId is missing or repeated")
            refs.add(ref)
            if target.get("datasource") != DATASOURCE:
                problems.append(f"{twhere}: datasource is not {DATASOURCE}")
            if not (target.get("expr") or "").strip():
                problems.append(f"{twhere}: no expr")
                continue
            n_queries += 1
            expr = substitute(target["expr"], variables, twhere)
            rules.append((f"{stem}:panel_{pid}_{ref}", expr, twhere))

    for record, expr, where in rules:
        if "__name__" in expr:
            problems.append(f"{where}: selects metrics by __name__, which this check cannot follow")
        for metric in metrics_of(expr):
            used.setdefault(metric, []).append(where)
    groups.append((name, rules))

tars = exported = 0
for metric, places in sorted(used.items()):
    sources_of = [s for s, found in (("the server's source", metric in recorded),
                                     ("exporter-metrics.txt", metric in exporters),
                                     ("pending-metrics.txt", metric in pending)) if found]
    if not sources_of:
        hint = ""
        base = re.sub(r"_(bucket|sum|count)$", "", metric)
        if base in histograms:
            hint = (" (the server records it as a histogram " +
                    ("with buckets: _bucket, _sum, _count)" if has_buckets(base)
                     else "without buckets, a summary: the name with quantile, _sum, _count)"))
        problems.append(f"{places[0]}: {metric} is recorded nowhere in crates/, and neither "
                        f"exporter-metrics.txt nor pending-metrics.txt lists it{hint}")
    elif len(sources_of) > 1 and not (metric in pending and metric in recorded):
        problems.append(f"{metric}: in both {' and '.join(sources_of)}; keep it in one")
for metric in sorted(set(pending) & recorded):
    problems.append(f"pending-metrics.txt: {metric} is recorded by the server now; "
                    "remove it from the list")
for listing, entries in (("exporter-metrics.txt", exporters), ("pending-metrics.txt", pending)):
    for metric in sorted(set(entries) - set(used)):
        problems.append(f"{listing}: no dashboard uses {metric}; remove it from the list")

with open(rules_path, "w") as out:
    out.write("# Every dashboard query as a recording rule, written by scripts/check_dashboards.sh.\n")
    out.write("groups:\n")
    for name, rules in groups:
        out.write(f"  - name: {json.dumps(name)}\n    rules:\n")
        for record, expr, where in rules:
            out.write(f"      # {where}\n")
            out.write(f"      - record: {record}\n        expr: {json.dumps(expr, ensure_ascii=False)}\n")

for problem in problems:
    print("check_dashboards:", problem, file=sys.stderr)
n_tars = sum(m in recorded for m in used)
n_exp = sum(m in exporters for m in used)
n_pend = sum(m in pending for m in used)
print(f"{len(groups)} dashboards, {n_panels} panels, {n_queries} queries; {len(used)} metrics: "
      f"{n_tars} recorded by the server, {n_exp} from exporters, {n_pend} pending")
sys.exit(1 if problems else 0)
PY

echo "== promtool check rules (every query as a recording rule)"
if ! promtool check rules "$work/rules.yml"; then
    echo "check_dashboards: a query is not valid PromQL (group: the dashboard file;" \
        "rule <dashboard>:panel_<id>_<refId> or <dashboard>:variable_<name>)" >&2
    status=1
fi

if [ "$status" -ne 0 ]; then
    echo "check_dashboards: FAILED" >&2
    exit 1
fi
echo "check_dashboards: all checks passed"
