"""A T.A.R.S. client: log in, submit an evaluation, poll its job, read the baselines.

    pip install httpx
    TARS_ADMIN_PASSWORD=... python examples/python/client.py [http://127.0.0.1:8099]

Start the service first (`cargo run --release -- serve`); on a fresh data directory it creates
the `admin` user with TARS_ADMIN_PASSWORD (or prints a generated password once).
"""

import os
import sys
import time

import httpx

BASE = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8099"


def main() -> None:
    with httpx.Client(base_url=BASE, timeout=60.0) as http:
        print("health:", http.get("/health").json())

        login = http.post(
            "/auth/login",
            json={"username": "admin", "password": os.environ["TARS_ADMIN_PASSWORD"]},
        )
        login.raise_for_status()
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}

        # The seeds' AutoML client body; `Prefer: respond-async` returns a job at once.
        request = {
            "agent_type": "DQN",
            "agent_state": {},
            "hyperparameters": {"learning_rate": 0.001, "gamma": 0.99, "epsilon": 0.1},
            "environments": ["CartPole-v1"],
            "num_episodes": 50,
            "quick_mode": True,
            "compare_to_baseline": True,
        }
        submitted = http.post(
            "/v1/evaluate",
            json=request,
            headers={**headers, "Prefer": "respond-async", "Idempotency-Key": "example-1"},
        )
        submitted.raise_for_status()
        job = submitted.json()
        print("job:", job["job_id"], job["status"])

        while job["status"] in ("queued", "running"):
            time.sleep(0.5)
            job = http.get(job["status_url"], headers=headers).json()
            print("  ", job["status"], job.get("progress") or "")

        if job["status"] != "succeeded":
            sys.exit(f"job ended {job['status']}: {job.get('error')}")
        result = job["result"]
        print("mean_reward:", result["results"][0]["metrics"]["mean_reward"])
        print("regression:", result["regression"])

        baselines = http.get(
            "/v1/baselines/DQN", params={"environment": "CartPole-v1"}, headers=headers
        )
        print("baselines:", baselines.json())


if __name__ == "__main__":
    main()
