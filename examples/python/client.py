"""A T.A.R.S. client: log in, submit an evaluation, poll its job, read the baselines.

    pip install -r examples/python/requirements.txt
    TARS_ADMIN_PASSWORD=... python examples/python/client.py [http://127.0.0.1:8099]

Start the service first (`cargo run --release -- serve`); on a fresh data directory it creates
the `admin` user with TARS_ADMIN_PASSWORD (or prints a generated password once).
"""

import os
import sys
import time
import uuid

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

        # The seeds' AutoML client body.
        request = {
            "agent_type": "DQN",
            "agent_state": {},
            "hyperparameters": {"learning_rate": 0.001, "gamma": 0.99, "epsilon": 0.1},
            "environments": ["CartPole-v1"],
            "num_episodes": 50,
            "quick_mode": True,
            "compare_to_baseline": True,
        }
        # `Prefer: respond-async` asks for the job at once (202). A submission repeated with the
        # same `Idempotency-Key` gets the first one's answer, so a retry of this submission would
        # reuse `key`; each run of the script is a new submission and takes a new key.
        key = str(uuid.uuid4())
        submitted = http.post(
            "/v1/evaluate",
            json=request,
            headers={**headers, "Prefer": "respond-async", "Idempotency-Key": key},
        )
        submitted.raise_for_status()

        if submitted.status_code == 200:
            # Done within the wait (or a replay of a finished submission): the results themselves.
            result = submitted.json()
        else:
            # 202: the job, to poll at its status_url.
            job = submitted.json()
            print("job:", job["job_id"], job["status"])
            while job["status"] in ("queued", "running"):
                time.sleep(0.5)
                polled = http.get(job["status_url"], headers=headers)
                polled.raise_for_status()
                job = polled.json()
                print("  ", job["status"], job.get("progress") or "")
            if job["status"] != "succeeded":
                sys.exit(f"job ended {job['status']}: {job.get('error')}")
            result = job["result"]

        print("mean_reward:", result["results"][0]["metrics"]["mean_reward"])
        print("regression:", result.get("regression"))

        baselines = http.get(
            "/v1/baselines/DQN", params={"environment": "CartPole-v1"}, headers=headers
        )
        baselines.raise_for_status()
        print("baselines:", baselines.json())


if __name__ == "__main__":
    main()
