#!/usr/bin/env python3
"""The helper of scripts/alerts_e2e.sh (python3 standard library only).

    alerts_e2e.py rules SRC_DIR OUT_DIR   # the test copies of SRC_DIR/alerts*.yml, overrides printed
    alerts_e2e.py drive --tars URL --prometheus URL --password PW --pid PID --rules OUT_DIR

`rules` rewrites the shipped rule files mechanically, line by line, and prints every change:
- `for: D` longer than FOR becomes `for: FOR`;
- a range window `[D]` in an `expr:` longer than WINDOW becomes `[WINDOW]` (offsets are kept:
  they say how far back a series must reach, not how much data a rate averages);
- the thresholds of THRESHOLDS: one exact substring of one alert's `expr:`, replaced.
Alert names, labels, annotations and the structure of every expression stay the shipped ones.

`drive` drives each alert's condition through the API of the `tars serve` at URL and polls
Prometheus' /api/v1/alerts until the alert fires, with a deadline; see scripts/alerts_e2e.sh.
"""

import argparse
import glob
import http.client
import json
import os
import re
import signal
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

FOR = "2s"
WINDOW = "30s"
# alert: (shipped substring of its expr, the test copy's, why)
SLOW_SECONDS = 1
THRESHOLDS = {
    "HighEvaluationLatency": (
        ") > 300",
        f") > {SLOW_SECONDS}",
        "p95 over 1 s instead of 300 s: an evaluation that trains for a few seconds is slow; "
        "the buckets start at 0.5 s, so a threshold under 0.5 s would fire for any evaluation",
    ),
}
DEADLINE = 30.0  # seconds an alert has to fire once its condition is driven
UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


def seconds(duration):
    """A Prometheus duration ("1h30m", "10m", "0s") in seconds."""
    parts = re.findall(r"(\d+)(ms|[smhdwy])", duration)
    if not parts or "".join(n + u for n, u in parts) != duration:
        raise ValueError(f"not a Prometheus duration: {duration!r}")
    return sum(int(n) * UNITS[u] for n, u in parts)


def rewrite(text, name_of_file, changes):
    """The test copy of one rule file; appends (file, alert, change) to `changes`."""
    out, alert, seen = [], None, set()
    for line in text.splitlines(keepends=True):
        m = re.match(r"\s*- alert:\s*(\w+)", line)
        if m:
            alert = m.group(1)
        m = re.match(r"(\s*for:\s*)(\S+)(\s*)$", line)
        if m and alert and seconds(m.group(2)) > seconds(FOR):
            changes.append((name_of_file, alert, f"for: {m.group(2)} -> {FOR}"))
            line = f"{m.group(1)}{FOR}{m.group(3)}"
        m = re.match(r"(\s*expr:\s*)(.*?)(\s*)$", line)
        if m and alert:
            expr = m.group(2)
            if re.search(r"\[[^\]]*:[^\]]*\]", expr):
                sys.exit(f"alerts_e2e: {alert}: a subquery; the window rewrite does not handle it")

            def window(w):
                if seconds(w.group(1)) <= seconds(WINDOW):
                    return w.group(0)
                changes.append((name_of_file, alert, f"[{w.group(1)}] -> [{WINDOW}]"))
                return f"[{WINDOW}]"

            expr = re.sub(r"\[(\w+)\]", window, expr)
            if alert in THRESHOLDS:
                old, new, why = THRESHOLDS[alert]
                if expr.count(old) != 1:
                    sys.exit(f"alerts_e2e: {alert}: its expr no longer contains {old!r} once; "
                             "update THRESHOLDS in scripts/alerts_e2e.py")
                expr = expr.replace(old, new)
                changes.append((name_of_file, alert, f"threshold {old.strip(') ')!r} -> "
                                f"{new.strip(') ')!r} ({why})"))
                seen.add(alert)
            line = f"{m.group(1)}{expr}{m.group(3)}"
        out.append(line)
    return "".join(out), seen


def cmd_rules(args):
    os.makedirs(args.out, exist_ok=True)
    changes, overridden, names = [], set(), []
    for path in sorted(glob.glob(os.path.join(args.src, "alerts*.yml"))):
        base = os.path.basename(path)
        text, seen = rewrite(open(path).read(), base, changes)
        overridden |= seen
        with open(os.path.join(args.out, base), "w") as f:
            f.write(text)
        names.append(base)
    missing = set(THRESHOLDS) - overridden
    if missing:
        sys.exit(f"alerts_e2e: no rule named {', '.join(sorted(missing))} to override")
    print(f"alerts_e2e: test copies of {', '.join(names)} with these overrides "
          f"(for: longer than {FOR} -> {FOR}, windows longer than {WINDOW} -> {WINDOW}):")
    grouped = {}
    for base, alert, change in changes:
        counts = grouped.setdefault((base, alert), {})
        counts[change] = counts.get(change, 0) + 1
    for (base, alert), counts in grouped.items():
        shown = "; ".join(c + (f" ({n}x)" if n > 1 else "") for c, n in counts.items())
        print(f"  {base:22} {alert:34} {shown}")


# --- driving -------------------------------------------------------------------------------

class Failed(Exception):
    pass


def log(message):
    print(f"alerts_e2e: {message}", flush=True)


def request(url, method="GET", body=None, token=None, timeout=60):
    """(status, parsed JSON or text) of one HTTP request; HTTP errors are answers too."""
    headers = {"content-type": "application/json"} if body is not None else {}
    if token:
        headers["authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data, headers, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            status, raw = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode(errors="replace")


class Run:
    def __init__(self, args):
        self.tars = args.tars.rstrip("/")
        self.prom = args.prometheus.rstrip("/")
        self.pid = args.pid
        self.exprs = self.load_exprs(args.rules)
        self.times = []
        status, body = request(self.tars + "/auth/login", "POST",
                               {"username": "admin", "password": args.password})
        if status != 200:
            raise Failed(f"login as admin: {status} {body}")
        self.token = body["access_token"]

    @staticmethod
    def load_exprs(rules_dir):
        exprs = {}
        for path in glob.glob(os.path.join(rules_dir, "alerts*.yml")):
            alert = None
            for line in open(path):
                m = re.match(r"\s*- alert:\s*(\w+)", line)
                if m:
                    alert = m.group(1)
                m = re.match(r"\s*expr:\s*(.*?)\s*$", line)
                if m and alert:
                    exprs[alert] = m.group(1)
        return exprs

    def api(self, method, path, body=None, expect=(200,)):
        status, answer = request(self.tars + path, method, body, self.token)
        if status == 429:
            raise Failed(f"{method} {path} was rate limited: the script's own requests must stay "
                         f"under the server's rate limit ({answer})")
        if status not in expect:
            raise Failed(f"{method} {path}: expected {expect}, got {status}: {answer}")
        return status, answer

    def prom_get(self, path, **params):
        url = self.prom + path + ("?" + urllib.parse.urlencode(params) if params else "")
        status, body = request(url, timeout=10)
        if status != 200 or not isinstance(body, dict) or body.get("status") != "success":
            raise Failed(f"Prometheus {path}: {status} {body}")
        return body["data"]

    def alerts(self):
        return self.prom_get("/api/v1/alerts")["alerts"]

    def query(self, expr):
        return self.prom_get("/api/v1/query", query=expr)["result"]

    def dump(self, names):
        """What an operator needs to see why `names` did (not) fire."""
        print("---- Prometheus /api/v1/alerts", file=sys.stderr)
        try:
            print(json.dumps(self.alerts(), indent=2), file=sys.stderr)
        except Exception as e:  # noqa: BLE001 - a dump must not hide the failure
            print(f"(unavailable: {e})", file=sys.stderr)
        metrics = set()
        for name in names:
            expr = self.exprs.get(name, "")
            print(f"---- {name}: expr (test copy) {expr}", file=sys.stderr)
            try:
                print(f"     evaluates to {json.dumps(self.query(expr))}", file=sys.stderr)
            except Exception as e:  # noqa: BLE001
                print(f"     (query failed: {e})", file=sys.stderr)
            plain = re.sub(r"\{[^}]*\}|\[[^\]]*\]|\"[^\"]*\"", " ", expr)
            plain = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)",
                           " ", plain)
            metrics |= {m for m in re.findall(r"\b(?:tars_\w+|agent_\w+|up)\b", plain)}
        stems = {re.sub(r"_(bucket|sum|count)$", "", m) for m in metrics}
        print(f"---- {self.tars}/metrics lines of {', '.join(sorted(stems))}", file=sys.stderr)
        try:
            status, text = request(self.tars + "/metrics", timeout=5)
            for line in str(text).splitlines():
                if not line.startswith("#") and re.sub(r"[{ ].*", "", line) in (
                        metrics | {s + x for s in stems for x in ("_bucket", "_sum", "_count")}):
                    print("  " + line, file=sys.stderr)
        except Exception as e:  # noqa: BLE001
            print(f"  (the server does not answer: {e})", file=sys.stderr)
        if "up" in metrics:
            try:
                print(f"  up (Prometheus): {json.dumps(self.query('up'))}", file=sys.stderr)
            except Exception as e:  # noqa: BLE001
                print(f"  (query failed: {e})", file=sys.stderr)

    @staticmethod
    def matching(alerts, name, labels=None):
        return [a for a in alerts if a["labels"].get("alertname") == name
                and all(a["labels"].get(k) == v for k, v in (labels or {}).items())]

    def wait_firing(self, name, since, labels=None, during=None):
        """Polls until `name` (with `labels`) fires; `during` is called between polls."""
        deadline = since + DEADLINE
        while True:
            firing = [a for a in self.matching(self.alerts(), name, labels)
                      if a["state"] == "firing"]
            if firing:
                took = time.monotonic() - since
                shown = {k: v for k, v in firing[0]["labels"].items()
                         if k not in ("alertname", "severity", "service")}
                self.times.append((name, took))
                log(f"{name} fired after {took:.1f} s {shown} value={firing[0]['value']}")
                return firing
            if time.monotonic() > deadline:
                self.dump([name])
                raise Failed(f"{name} did not fire within {DEADLINE:.0f} s of its condition "
                             f"(labels {labels or {}})")
            if during:
                during()
            else:
                time.sleep(0.25)

    def assert_silent(self, names, hold, why, labels=None):
        """None of `names` is pending or firing at any poll for `hold` seconds."""
        end = time.monotonic() + hold
        while time.monotonic() < end:
            for name in names:
                found = self.matching(self.alerts(), name, labels)
                if found:
                    self.dump([name])
                    raise Failed(f"{name} is {found[0]['state']} ({found[0]['labels']}) "
                                 f"but should be silent: {why}")
            time.sleep(0.25)
        log(f"silent for {hold:g} s as expected ({why}): {', '.join(names)}")

    def wait_scraped(self, expr, why):
        """Until Prometheus' data answers `expr` (the scrapes saw what was driven): its value."""
        deadline = time.monotonic() + DEADLINE
        while True:
            result = self.query(expr)
            if result:
                return result[0]["value"][1]
            if time.monotonic() > deadline:
                raise Failed(f"Prometheus never saw {why}: {expr} stayed empty")
            time.sleep(0.25)

    def evaluate(self, body, expect=(200,)):
        return self.api("POST", "/v1/evaluate", body, expect)

    # The steps, in order.

    def start(self):
        self.wait_scraped('count_over_time(up{job="tars"}[1m]) >= 3', "three scrapes of job tars")
        self.assert_silent(
            ["EvalEngineDown", "EvalServiceDown", "CriticalRegressionDetected",
             "EvaluationFailureRateHigh", "HighEvaluationLatency", "HighRateLimitRejections"],
            3, "the server is up and idle; DQN/CartPole-v1's severity series exist at 0")

    def critical_regression(self):
        self.api("POST", "/v1/baselines", {"agent_type": "PPO", "environment": "CartPole-v1",
                                            "mean_reward": 500, "std_reward": 1,
                                            "success_rate": 1.0}, expect=(201,))
        _, answer = self.evaluate({
            "agent_type": "PPO", "environments": ["CartPole-v1"], "num_episodes": 10,
            "hyperparameters": {"n_timesteps": 256}, "seed": 1, "compare_to_baseline": True,
            "include_episodes": False})
        regression = answer["results"][0]["regression"] or {}
        if regression.get("severity") != "critical" or not regression.get("detected"):
            raise Failed(f"the 256-step PPO was not a critical regression: {regression}")
        log(f"PPO (256 steps) against a 500 baseline on CartPole-v1: {regression['reason']} "
            f"(severity {regression['severity']}, "
            f"{answer['results'][0]['duration_seconds']:.3f} s)")
        since = time.monotonic()
        self.wait_firing("CriticalRegressionDetected", since,
                         {"agent_type": "PPO", "environment": "CartPole-v1"})
        self.assert_silent(["CriticalRegressionDetected"], 0.5,
                           "DQN/CartPole-v1 had no regression", {"agent_type": "DQN"})
        # One evaluation succeeded and none failed: a failure rate of 0, not "no data".
        rate = self.wait_scraped(self.exprs["EvaluationFailureRateHigh"].rsplit(" > ", 1)[0],
                                 "the successful evaluation in the failure rate")
        self.assert_silent(["EvaluationFailureRateHigh"], 3,
                           f"the failure rate is {float(rate):.2f}")

    def failures(self):
        for _ in range(3):
            _, answer = self.evaluate({"agent_type": "PPO", "agent_state": "no-such-checkpoint",
                                       "environments": ["CartPole-v1"], "num_episodes": 5},
                                      expect=(422,))
        log(f"3 evaluations of a missing checkpoint failed: {answer['error']['message'][:60]}…")
        self.wait_firing("EvaluationFailureRateHigh", time.monotonic())

    def slow_evaluation(self):
        # A histogram's series start at the first observation, which rate() cannot see: two
        # fast evaluations first, the second once Prometheus has the first's series, so that
        # the pair's p95 is on data and under the threshold.
        for seed in (1, 2):
            self.evaluate({"agent_type": "PPO", "environments": ["Acrobot-v1"],
                           "num_episodes": 5, "hyperparameters": {"n_timesteps": 256},
                           "seed": seed, "include_episodes": False})
            self.wait_scraped('tars_eval_duration_seconds_count{agent_type="PPO",'
                              f'environment="Acrobot-v1"}} >= {seed}',
                              f"fast evaluation {seed} of PPO on Acrobot-v1")
        p95 = self.wait_scraped(
            'histogram_quantile(0.95, sum by (le) (rate(tars_eval_duration_seconds_bucket'
            '{agent_type="PPO",environment="Acrobot-v1"}[30s]))) >= 0',
            "the fast evaluations in the p95")
        self.assert_silent(["HighEvaluationLatency"], 3,
                           f"PPO/Acrobot-v1's p95 is {float(p95):.3f} s, under {SLOW_SECONDS} s")
        _, answer = self.evaluate({
            "agent_type": "PPO", "environments": ["Acrobot-v1"], "num_episodes": 5,
            "hyperparameters": {"n_timesteps": 200000}, "seed": 1, "include_episodes": False})
        took = answer["results"][0]["duration_seconds"]
        log(f"PPO trained 200,000 steps on Acrobot-v1 and evaluated in {took:.1f} s")
        if took <= SLOW_SECONDS:
            raise Failed(f"the slow evaluation took {took:.2f} s, not over the lowered "
                         f"threshold of {SLOW_SECONDS} s: raise its n_timesteps")
        self.wait_firing("HighEvaluationLatency", time.monotonic(),
                         {"agent_type": "PPO", "environment": "Acrobot-v1"})

    def rate_limited_burst(self):
        url = urllib.parse.urlparse(self.tars)
        counts = {}
        conn = [http.client.HTTPConnection(url.hostname, url.port, timeout=5)]

        def burst():  # ~100 unauthenticated requests/s until the next poll
            for _ in range(25):
                try:
                    conn[0].request("GET", "/v1/engines")
                    response = conn[0].getresponse()
                    response.read()
                    counts[response.status] = counts.get(response.status, 0) + 1
                except (OSError, http.client.HTTPException) as e:
                    counts[type(e).__name__] = counts.get(type(e).__name__, 0) + 1
                    conn[0].close()
                    conn[0] = http.client.HTTPConnection(url.hostname, url.port, timeout=5)
                time.sleep(0.01)

        self.wait_firing("HighRateLimitRejections", time.monotonic(), during=burst)
        conn[0].close()
        log(f"the burst's answers by status: {counts}")
        if not counts.get(429):
            raise Failed("the burst got no 429")

    def kill(self):
        self.assert_silent(["EvalEngineDown"], 1, "the server still runs")
        os.kill(self.pid, signal.SIGKILL)
        since = time.monotonic()
        log(f"killed tars serve (pid {self.pid}) with SIGKILL")
        self.wait_firing("EvalEngineDown", since, {"job": "tars"})


def cmd_drive(args):
    started = time.monotonic()
    try:
        run = Run(args)
        run.start()
        run.critical_regression()
        run.failures()
        run.slow_evaluation()
        run.rate_limited_burst()
        run.kill()
    except Failed as e:
        print(f"alerts_e2e: FAILED: {e}", file=sys.stderr)
        sys.exit(1)
    others = sorted({a["labels"]["alertname"] for a in run.alerts() if a["state"] == "firing"}
                    - {name for name, _ in run.times})
    log("time to fire, from the end of the request that drove the condition "
        "(the burst: from its start; EvalEngineDown: from the SIGKILL):")
    for name, took in run.times:
        print(f"  {name:30} {took:5.1f} s")
    log(f"also firing at the end: {', '.join(others) or 'nothing else'}")
    log(f"all {len(run.times)} alerts fired ({time.monotonic() - started:.0f} s)")


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    rules = sub.add_parser("rules")
    rules.add_argument("src")
    rules.add_argument("out")
    drive = sub.add_parser("drive")
    drive.add_argument("--tars", required=True)
    drive.add_argument("--prometheus", required=True)
    drive.add_argument("--password", required=True)
    drive.add_argument("--pid", type=int, required=True)
    drive.add_argument("--rules", required=True)
    args = parser.parse_args()
    {"rules": cmd_rules, "drive": cmd_drive}[args.command](args)


if __name__ == "__main__":
    main()
