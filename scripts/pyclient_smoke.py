"""The generated Python client (`tars_client`, from docs/api/openapi.json) against the API.

    python scripts/pyclient_smoke.py operations docs/api/openapi.json
    TARS_ADMIN_PASSWORD=... python scripts/pyclient_smoke.py smoke http://127.0.0.1:PORT

`operations` fails unless every operation of the document has its module in `tars_client.api`
(with sync_detailed and asyncio_detailed) taking each of the operation's parameters and, when it
has one, its body. `smoke` uses only the generated client to log in, submit an
evaluation and poll its job, replay the submission, insert a baseline and list the baselines,
and checks the parsed answers. scripts/check_python_client.sh runs both.
"""

import importlib
import inspect
import json
import os
import pkgutil
import re
import sys
import time
import uuid

METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")
# `sync` and `asyncio` (the parsed body alone) exist only for operations with a JSON answer.
FUNCTIONS = ("sync_detailed", "asyncio_detailed")


def fail(message: str) -> None:
    sys.exit(f"pyclient_smoke: {message}")


def check(condition: bool, message: str) -> None:
    if not condition:
        fail(message)


def key(name: str) -> str:
    """A name as the generator spells it, less case and separators (`Idempotency-Key` and
    `idempotency_key`, `type` and `type_` are the same key)."""
    return re.sub(r"[^a-z0-9]", "", name.lower())


def operations(doc_path: str) -> None:
    import tars_client.api

    with open(doc_path, encoding="utf-8") as f:
        doc = json.load(f)
    modules = {}
    for info in pkgutil.walk_packages(tars_client.api.__path__, "tars_client.api."):
        if not info.ispkg:
            modules.setdefault(key(info.name.rsplit(".", 1)[1]), []).append(info.name)

    def resolve(parameter: dict) -> dict:
        ref = parameter.get("$ref")
        if ref is None:
            return parameter
        node = doc
        for part in ref.removeprefix("#/").split("/"):
            node = node[part]
        return node

    problems, count = [], 0
    for path, item in doc["paths"].items():
        shared = item.get("parameters", [])
        for method, operation in item.items():
            if method not in METHODS:
                continue
            count += 1
            op_id = operation.get("operationId")
            where = f"{method.upper()} {path}"
            if not op_id:
                problems.append(f"{where} has no operationId")
                continue
            found = modules.get(key(op_id), [])
            if len(found) != 1:
                problems.append(f"{where} ({op_id}): {len(found)} modules in tars_client.api")
                continue
            module = importlib.import_module(found[0])
            absent = [f for f in FUNCTIONS if not callable(getattr(module, f, None))]
            if absent:
                problems.append(f"{where} ({op_id}): {found[0]} lacks {', '.join(absent)}")
                continue
            accepted = {key(p) for p in inspect.signature(module.sync_detailed).parameters}
            wanted = [resolve(p)["name"] for p in shared + operation.get("parameters", [])]
            if "requestBody" in operation:
                wanted.append("body")
            lost = [w for w in wanted if key(w) not in accepted]
            if lost:
                problems.append(f"{where} ({op_id}): {found[0]} takes no {', '.join(lost)}")
    if problems:
        fail("operations missing from the generated client:\n  " + "\n  ".join(problems))
    print(f"pyclient_smoke: all {count} operations have their functions in tars_client.api")


def smoke(base: str) -> None:
    from tars_client import AuthenticatedClient, Client
    from tars_client.api.auth import login
    from tars_client.api.baselines import get_baselines, post_baseline
    from tars_client.api.evaluations_and_jobs import evaluate, get_job
    from tars_client.api.probes import health
    from tars_client.models import (
        ApiErrorBody,
        BaselineBody,
        BaselineView,
        EvalRequest,
        EvalResponse,
        JobView,
        LoginRequest,
        Tokens,
    )

    password = os.environ["TARS_ADMIN_PASSWORD"]
    anonymous = Client(base_url=base, timeout=60.0, raise_on_unexpected_status=True)

    answer = health.sync_detailed(client=anonymous)
    check(answer.status_code == 200, f"GET /health answered {answer.status_code}")

    # A wrong password: 401 with the error body.
    answer = login.sync_detailed(
        client=anonymous, body=LoginRequest(username="admin", password=password + "-wrong")
    )
    check(answer.status_code == 401, f"a wrong password got {answer.status_code}")
    check(isinstance(answer.parsed, ApiErrorBody), f"401 parsed as {answer.parsed!r}")
    check(bool(answer.parsed.error.code), "the 401's error has no code")

    answer = login.sync_detailed(
        client=anonymous, body=LoginRequest(username="admin", password=password)
    )
    check(answer.status_code == 200, f"POST /auth/login answered {answer.status_code}")
    tokens = answer.parsed
    check(isinstance(tokens, Tokens), f"the login parsed as {tokens!r}")
    check(tokens.token_type.lower() == "bearer", f"token_type {tokens.token_type!r}")
    check(tokens.expires_in > 0 and tokens.access_token and tokens.refresh_token, "empty tokens")
    print(f"pyclient_smoke: logged in (token for {tokens.expires_in} s)")

    client = AuthenticatedClient(
        base_url=base, token=tokens.access_token, timeout=60.0, raise_on_unexpected_status=True
    )

    request = EvalRequest.from_dict(
        {
            "agent_type": "PPO",
            "environments": ["CartPole-v1"],
            "num_episodes": 2,
            "seed": 7,
            "hyperparameters": {"n_timesteps": 256, "n_steps": 32, "n_envs": 2, "batch_size": 32},
        }
    )
    idempotency_key = str(uuid.uuid4())
    answer = evaluate.sync_detailed(
        client=client, body=request, idempotency_key=idempotency_key, prefer="respond-async"
    )
    check(
        answer.status_code == 202,
        f"POST /v1/evaluate (respond-async) answered {answer.status_code}",
    )
    job = answer.parsed
    check(isinstance(job, JobView), f"the 202 parsed as {job!r}")
    check(job.kind == "evaluation", f"job kind {job.kind!r}")
    check(job.status in ("queued", "running"), f"a new job is {job.status!r}")
    check(job.status_url == f"/v1/jobs/{job.job_id}", f"status_url {job.status_url!r}")
    check(answer.headers.get("location") == job.status_url, "no Location of the job")
    print(f"pyclient_smoke: job {job.job_id} {job.status}")

    deadline = time.monotonic() + 600
    while job.status in ("queued", "running"):
        check(time.monotonic() < deadline, f"job {job.job_id} still {job.status} after 600 s")
        time.sleep(0.5)
        answer = get_job.sync_detailed(str(job.job_id), client=client)
        check(answer.status_code == 200, f"GET {job.status_url} answered {answer.status_code}")
        check(isinstance(answer.parsed, JobView), f"the job parsed as {answer.parsed!r}")
        job = answer.parsed
    check(job.status == "succeeded", f"job ended {job.status}: {job.error}")
    check(job.attempts >= 1 and bool(job.finished_at), "a finished job without attempts or end")
    result = EvalResponse.from_dict(job.result.to_dict())
    check(result.agent_type.upper() == "PPO", f"agent_type {result.agent_type!r}")
    check(result.num_episodes == 2 and result.seed == 7, "num_episodes or seed not the request's")
    check([r.environment for r in result.results] == ["CartPole-v1"], "not CartPole-v1's result")
    env = result.results[0]
    metrics = env.metrics
    check(metrics.n_episodes == 2, f"{metrics.n_episodes} episodes")
    check(metrics.min_reward <= metrics.mean_reward <= metrics.max_reward, "mean outside min..max")
    check(len(metrics.mean_ci95) == 2, f"mean_ci95 {metrics.mean_ci95!r}")
    check(0.0 <= metrics.success_rate <= 1.0, f"success_rate {metrics.success_rate}")
    print(f"pyclient_smoke: succeeded, mean_reward {metrics.mean_reward}")

    # The same key again: the finished submission's results, 200.
    answer = evaluate.sync_detailed(
        client=client, body=request, idempotency_key=idempotency_key, prefer="respond-async"
    )
    check(answer.status_code == 200, f"the replayed submission answered {answer.status_code}")
    check(isinstance(answer.parsed, EvalResponse), f"the replay parsed as {answer.parsed!r}")
    check(answer.parsed.evaluation_id == result.evaluation_id, "the replay is another evaluation")

    answer = get_job.sync_detailed(str(uuid.uuid4()), client=client)
    check(answer.status_code == 404, f"an unknown job answered {answer.status_code}")
    check(isinstance(answer.parsed, ApiErrorBody), f"the 404 parsed as {answer.parsed!r}")

    body = BaselineBody(
        agent_type="PPO",
        environment="CartPole-v1",
        mean_reward=metrics.mean_reward,
        std_reward=metrics.std_reward,
        success_rate=metrics.success_rate,
    )
    answer = post_baseline.sync_detailed(client=client, body=body)
    check(answer.status_code == 201, f"POST /v1/baselines answered {answer.status_code}")
    check(isinstance(answer.parsed, BaselineView), f"the 201 parsed as {answer.parsed!r}")
    inserted = answer.parsed

    answer = get_baselines.sync_detailed("PPO", client=client, environment="CartPole-v1")
    check(answer.status_code == 200, f"GET /v1/baselines/PPO answered {answer.status_code}")
    baselines = answer.parsed
    check(isinstance(baselines, list), f"the baselines parsed as {baselines!r}")
    check(all(isinstance(b, BaselineView) for b in baselines), "a baseline is no BaselineView")
    check([b.id for b in baselines] == [inserted.id], f"baselines {baselines!r}")
    listed = baselines[0]
    check(listed.environment == "CartPole-v1" and listed.rank == 1, f"baseline {listed!r}")
    check(listed.mean_reward == metrics.mean_reward, "the listed mean is not the inserted one")
    print(f"pyclient_smoke: baseline {listed.id} listed (rank {listed.rank})")


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("operations", "smoke"):
        fail("usage: pyclient_smoke.py operations OPENAPI_JSON | smoke BASE_URL")
    {"operations": operations, "smoke": smoke}[sys.argv[1]](sys.argv[2])
