"""/health latency while heavy work runs: the bounded-work benchmark.

Starts a fresh embedded `tars serve` (the binary given, default target/release/tars) with
two job workers and `max_nash_actions` 500, queues two trainings, keeps four clients posting
500×500 Nash score tables, and meanwhile probes /health every 20 ms. Prints the probe latency
percentiles and what the Nash clients got (200 solved, 503 refused while every CPU slot was
busy). Standard library only.

    python3 scripts/bench_health.py [--tars target/release/tars] [--seconds 30]
"""

import argparse
import json
import os
import random
import re
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request


def call(url, body=None, token=None, headers=None, timeout=120):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data, {"content-type": "application/json", **(headers or {})})
    if token:
        request.add_header("authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--tars", default="target/release/tars")
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args()
    password = "bench-admin-password"
    data = tempfile.mkdtemp(prefix="tars-bench-health-")
    env = dict(os.environ, TARS_DATA_DIR=data, TARS_ADMIN_PASSWORD=password)
    server = subprocess.Popen(
        [args.tars, "serve", "--port", "0", "--rate-limit-rps", "0", "--job-workers", "2",
         "--max-nash-actions", "500", "--max-body-bytes", "4194304"],
        env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    try:
        base = None
        for line in server.stderr:
            match = re.search(r"listening on (http\S+)", line)
            if match:
                base = match.group(1)
                break
        threading.Thread(target=lambda: [None for _ in server.stderr], daemon=True).start()
        _, body = call(base + "/auth/login", {"username": "admin", "password": password})
        token = json.loads(body)["access_token"]
        for seed in (1, 2):
            status, body = call(base + "/v1/train", {"agent_type": "PPO", "environment": "CartPole-v1",
                                                     "total_timesteps": 2_000_000, "seed": seed},
                                token, {"prefer": "respond-async"})
            assert status == 202, body
        stop = time.monotonic() + args.seconds
        nash = {"200": 0, "503": 0, "other": 0}
        lock = threading.Lock()

        def heavy(seed):
            rng = random.Random(seed)
            scores = [[rng.randint(0, 99) for _ in range(500)] for _ in range(500)]
            while time.monotonic() < stop:
                status, _ = call(base + "/v1/nash/compute", {"agent_type": "PPO", "scores": scores}, token)
                with lock:
                    nash[str(status) if str(status) in nash else "other"] += 1
                if status == 503:
                    time.sleep(1.0)  # as Retry-After says

        clients = [threading.Thread(target=heavy, args=(seed,)) for seed in range(4)]
        for client in clients:
            client.start()
        time.sleep(1.0)
        latencies = []
        while time.monotonic() < stop:
            start = time.perf_counter()
            status, _ = call(base + "/health", timeout=60)
            latencies.append((time.perf_counter() - start) * 1e3)
            assert status == 200, status
            time.sleep(0.02)
        for client in clients:
            client.join()
        latencies.sort()
        pick = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))]
        print(json.dumps({"probes": len(latencies), "p50_ms": round(pick(0.50), 2),
                          "p99_ms": round(pick(0.99), 2), "max_ms": round(latencies[-1], 2),
                          "nash_answers": nash}))
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
