"""Generate gymnasium golden transitions for T.A.R.S.'s classic-control ports.

Writes one JSON-lines file per environment to
`crates/tars-envs/tests/fixtures/golden/<env_id>.jsonl` (plus a README.md there), each line

    {"case": "random" | "heuristic" | "edge:<name>", "state": [...], "action": int | [float],
     "next_state": [...], "obs": [...], "reward": float, "terminated": bool}

Every line is produced the same way: a fresh `gym.make(env_id).unwrapped`, `reset(seed=0)`,
`env.state = np.array(state, dtype)` (float32 for MountainCarContinuous-v0, float64 otherwise),
then one `env.step(action)`. States come from seeded trajectories of the wrapped env (random
and heuristic controllers) and from hand-built edge cases. All floats are written with Python's
repr-based `json`, so they round-trip exactly. Re-running the script regenerates identical files.

Usage (from the repository root):

    python3 -m venv scripts/.venv
    scripts/.venv/bin/pip install -r scripts/requirements.txt
    scripts/.venv/bin/python scripts/gym_golden.py [--out DIR] [--check-only]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np

MASTER_SEED = 20_240_611
PINNED = {"gymnasium": "1.4.0", "numpy": "2.4.6"}  # keep in sync with scripts/requirements.txt

CARTPOLE = "CartPole-v1"
ACROBOT = "Acrobot-v1"
MOUNTAIN_CAR = "MountainCar-v0"
PENDULUM = "Pendulum-v1"
MCC = "MountainCarContinuous-v0"
ENV_IDS = [CARTPOLE, ACROBOT, MOUNTAIN_CAR, PENDULUM, MCC]
DISCRETE = {CARTPOLE, ACROBOT, MOUNTAIN_CAR}
# Pendulum never terminates; every other env must show terminal steps in its fixtures.
MIN_TERMINATED = {CARTPOLE: 5, ACROBOT: 5, MOUNTAIN_CAR: 5, MCC: 5, PENDULUM: 0}

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO_ROOT / "crates" / "tars-envs" / "tests" / "fixtures" / "golden"

PI = math.pi
F32 = np.float32


def state_dtype(env_id: str):
    # gymnasium keeps MountainCarContinuous's state in float32 (after the first step).
    return np.float32 if env_id == MCC else np.float64


def copy_state(env_id: str, state) -> list[float]:
    """The state as exact Python floats, in the dtype it is replayed with."""
    return [float(v) for v in np.array(state, dtype=state_dtype(env_id)).tolist()]


def f32(x: float) -> float:
    return float(F32(x))


def step_action(env_id: str, action):
    if env_id in DISCRETE:
        return int(action)
    return np.array([action[0]], dtype=np.float32)


def record_action(env_id: str, action):
    if env_id in DISCRETE:
        return int(action)
    return [f32(action[0])]


def replay(env_id: str, state: list[float], action) -> dict:
    """One transition on a fresh unwrapped env: the fields after `state` and `action`."""
    env = gym.make(env_id).unwrapped
    env.reset(seed=0)
    env.state = np.array(state, dtype=state_dtype(env_id))
    obs, reward, terminated, _truncated, _info = env.step(step_action(env_id, action))
    out = {
        "next_state": [float(v) for v in env.state],
        "obs": [float(v) for v in np.asarray(obs).tolist()],
        "reward": float(reward),
        "terminated": bool(terminated),
    }
    env.close()
    for v in out["next_state"] + out["obs"] + [out["reward"]]:
        assert math.isfinite(v), (env_id, state, action, out)
    return out


def make_line(env_id: str, case: str, state, action) -> dict:
    state = copy_state(env_id, state)
    action = record_action(env_id, action)
    return {"case": case, "state": state, "action": action, **replay(env_id, state, action)}


# --------------------------------------------------------------------------------------------
# Trajectories (wrapped env) -> (state, action) pairs, checked against a fresh-env replay.


class Trajectories:
    def __init__(self, env_id: str):
        self.env_id = env_id
        self.lines: list[dict] = []
        self.replay_mismatches = 0
        self.reset_steps_skipped = 0

    def run(self, case: str, policy, seed: int, max_steps: int | None = None) -> None:
        """One episode of `gym.make(env_id)` from `reset(seed=seed)`; policy(state, t) -> action."""
        env = gym.make(self.env_id)
        env.reset(seed=seed)
        env.action_space.seed(seed)
        t = 0
        while True:
            raw_state = np.array(env.unwrapped.state)  # as gymnasium holds it
            action = policy(np.array(raw_state, dtype=np.float64), env, t)
            _obs, _r, terminated, truncated, _ = env.step(step_action(self.env_id, action))
            line = make_line(self.env_id, case, raw_state, action)
            actual = {
                "next_state": [float(v) for v in env.unwrapped.state],
                "obs": [float(v) for v in np.asarray(_obs).tolist()],
                "reward": float(_r),
                "terminated": bool(terminated),
            }
            if self.env_id == MCC and raw_state.dtype != np.float32:
                # gymnasium's MCC reset state is float64; the replay uses its float32 copy.
                self.reset_steps_skipped += 1
            elif any(line[k] != actual[k] for k in actual):
                self.replay_mismatches += 1
                print(f"replay mismatch {self.env_id}: {line} vs {actual}", file=sys.stderr)
            self.lines.append(line)
            t += 1
            if terminated or truncated or (max_steps is not None and t >= max_steps):
                break
        env.close()


def uniform_policy(rng: np.random.Generator, bound: float):
    return lambda s, env, t: [float(rng.uniform(-bound, bound))]


def sample_policy(s, env, t):
    return int(env.action_space.sample())


def trajectories(env_id: str, rng: np.random.Generator) -> Trajectories:
    tr = Trajectories(env_id)
    if env_id == CARTPOLE:
        seed = 0
        while len(tr.lines) < 900:  # random episodes all end by termination (~20 steps)
            tr.run("random", sample_policy, seed)
            seed += 1
        balance = lambda s, env, t: 1 if s[2] + 0.5 * s[3] > 0 else 0  # noqa: E731
        drift = lambda s, env, t: 1 if s[2] + 0.5 * s[3] + 0.05 > 0 else 0  # noqa: E731
        for seed in (100, 101):
            tr.run("heuristic", balance, seed, max_steps=200)
        for seed in range(200, 206):  # biased balance: the cart runs off, terminates by x
            tr.run("heuristic", drift, seed)
        for seed in range(300, 315):  # always push left: terminates by angle
            tr.run("heuristic", lambda s, env, t: 0, seed)
        for seed in range(400, 410):  # always push right
            tr.run("heuristic", lambda s, env, t: 1, seed)
    elif env_id == ACROBOT:
        for seed in (0, 1):
            tr.run("random", sample_policy, seed)
        # Energy pumping. Note the sign: `2 if dtheta1 > 0 else 0` never terminates in 500
        # steps; torque against dtheta1, or along dtheta2 / dtheta1 + dtheta2, does in ~60-270.
        pumps = [
            lambda s, env, t: 0 if s[2] > 0 else 2,
            lambda s, env, t: 2 if s[3] > 0 else 0,
            lambda s, env, t: 2 if s[2] + s[3] > 0 else 0,
        ]
        for i, pump in enumerate(pumps):
            for seed in range(100 + 10 * i, 104 + 10 * i):
                tr.run("heuristic", pump, seed)
    elif env_id == MOUNTAIN_CAR:
        for seed in range(4):
            tr.run("random", sample_policy, seed)
        for seed in range(100, 110):
            tr.run("heuristic", lambda s, env, t: 2 if s[1] > 0 else 0, seed)
    elif env_id == MCC:
        for seed in range(3):
            tr.run("random", uniform_policy(rng, 1.5), seed, max_steps=300)
        for seed in range(100, 106):
            tr.run("heuristic", lambda s, env, t: [1.0 if s[1] >= 0 else -1.0], seed)
        for seed in range(200, 205):  # bang-bang with random magnitude: clipped and unclipped
            tr.run(
                "heuristic",
                lambda s, env, t: [math.copysign(float(rng.uniform(0.9, 1.5)), s[1])],
                seed,
            )
    elif env_id == PENDULUM:
        for seed in range(5):
            tr.run("random", uniform_policy(rng, 3.0), seed)
        for seed in range(100, 105):
            tr.run("heuristic", pendulum_swing_up(rng), seed)
    else:
        raise ValueError(env_id)
    return tr


def pendulum_swing_up(rng: np.random.Generator):
    """Energy pumping far from upright, PD near upright; outputs beyond +-2 get clipped."""

    def policy(s, env, t):
        th, thd = float(s[0]), float(s[1])
        a = ((th + PI) % (2 * PI)) - PI
        if abs(a) < 0.7:
            u = -(14.0 * a + 3.0 * thd)
        else:
            energy = 0.5 * thd * thd + 15.0 * math.cos(th)  # 15 = upright at rest
            push = 1.0 if thd >= 0 else -1.0
            u = (2.5 if energy < 15.0 else -1.0) * push
        return [u + float(rng.normal(0.0, 0.1))]

    return policy


# --------------------------------------------------------------------------------------------
# Edge cases.


def nextafter_n(x: float, toward: float, n: int) -> float:
    for _ in range(n):
        x = math.nextafter(x, toward)
    return x


def f32_next(x: float, toward: float, n: int = 1) -> float:
    y = F32(x)
    for _ in range(n):
        y = np.nextafter(y, F32(toward))
    return float(y)


def cartpole_edges() -> list[tuple]:
    thr = 12 * 2 * math.pi / 360  # gymnasium's expression: 0.20943951023931953
    assert thr == 0.20943951023931953
    xt = 2.4
    up, down = math.inf, -math.inf
    states = {
        "x-at-pos-bound": [xt, 0.0, 0.0, 0.0],
        "x-just-outside-pos": [math.nextafter(xt, up), 0.0, 0.0, 0.0],
        "x-just-inside-pos": [math.nextafter(xt, down), 0.0, 0.0, 0.0],
        "x-at-neg-bound": [-xt, 0.0, 0.0, 0.0],
        "x-just-outside-neg": [math.nextafter(-xt, down), 0.0, 0.0, 0.0],
        "x-just-inside-neg": [math.nextafter(-xt, up), 0.0, 0.0, 0.0],
        "x-crossing-pos": [2.39, 0.5, 0.0, 0.0],
        "x-crossing-neg": [-2.39, -0.5, 0.0, 0.0],
        "x-out-moving-back": [2.41, -1.0, 0.0, 0.0],
        "theta-at-pos-bound": [0.0, 0.0, thr, 0.0],
        "theta-just-outside-pos": [0.0, 0.0, math.nextafter(thr, up), 0.0],
        "theta-just-inside-pos": [0.0, 0.0, math.nextafter(thr, down), 0.0],
        "theta-at-neg-bound": [0.0, 0.0, -thr, 0.0],
        "theta-just-outside-neg": [0.0, 0.0, math.nextafter(-thr, down), 0.0],
        "theta-just-inside-neg": [0.0, 0.0, math.nextafter(-thr, up), 0.0],
        "theta-crossing-pos": [0.0, 0.0, 0.2, 0.5],
        "theta-crossing-neg": [0.0, 0.0, -0.2, -0.5],
        "theta-12deg-float32": [0.0, 0.0, f32(thr), 0.0],
        "large-x-dot-pos": [0.0, 50.0, 0.05, 0.0],
        "large-x-dot-neg": [0.0, -50.0, -0.05, 0.0],
        "large-theta-dot-pos": [0.0, 0.0, 0.0, 30.0],
        "large-theta-dot-neg": [0.0, 0.0, 0.0, -30.0],
        "huge-velocities": [1.0, 1e3, -0.1, -1e3],
        "far-outside": [10.0, 3.0, 1.5, 2.0],
        "upside-down": [0.0, 0.0, math.pi, 1.0],
        "zero": [0.0, 0.0, 0.0, 0.0],
    }
    return [(f"edge:{name}", s, a) for name, s in states.items() for a in (0, 1)]


def acrobot_edges() -> list[tuple]:
    v1, v2 = 4 * PI, 9 * PI
    states = {
        "t1-at-pi": [PI, 0.0, 0.0, 0.0],
        "t1-at-neg-pi": [-PI, 0.0, 0.0, 0.0],
        "t2-at-pi": [0.0, PI, 0.0, 0.0],
        "t2-at-neg-pi": [0.0, -PI, 0.0, 0.0],
        "t1-wraps-pos": [math.nextafter(PI, 0.0), 0.1, 1.0, 0.0],
        "t1-wraps-neg": [math.nextafter(-PI, 0.0), -0.1, -1.0, 0.0],
        "t2-wraps-pos": [0.2, 3.1, 0.0, 2.0],
        "t2-wraps-neg": [-0.2, -3.1, 0.0, -2.0],
        "both-wrap": [3.0, 3.0, 2.0, 5.0],
        "large-angles": [7.5, -9.0, 0.0, 0.0],
        "very-large-angles": [20.0, 13.0, 1.0, -1.0],
        "huge-angles": [-50.0, 40.0, 0.5, 0.5],
        "vel-at-bounds-pos": [0.5, 0.5, v1, v2],
        "vel-at-bounds-neg": [0.5, 0.5, -v1, -v2],
        "vel-near-bounds-pos": [0.0, 0.0, v1 - 0.01, v2 - 0.01],
        "vel-near-bounds-neg": [0.0, 0.0, -(v1 - 0.01), -(v2 - 0.01)],
        "vel-beyond-bounds-pos": [0.0, 0.0, v1 + 1.0, v2 + 1.0],
        "vel-beyond-bounds-neg": [0.0, 0.0, -(v1 + 1.0), -(v2 + 1.0)],
        "vel-far-beyond": [1.0, -1.0, 20.0, -40.0],
        "vel1-only-bound": [-1.0, 2.0, -v1, 0.0],
        "vel2-only-bound": [1.0, -2.0, 0.0, v2],
        "upright": [PI, 0.0, 0.0, 0.0],
        "hanging": [0.0, 0.0, 0.0, 0.0],
        "float32-reset-like": [f32(0.0873), f32(-0.0512), f32(0.0311), f32(-0.0994)],
    }
    out = [(f"edge:{name}", s, a) for name, s in states.items() for a in (0, 1, 2)]
    out += acrobot_threshold_edges()
    return out


def acrobot_threshold_edges() -> list[tuple]:
    """Pairs of adjacent float64 states whose next state's height -cos(t1)-cos(t1+t2) is just
    above 1.0 (terminated) and just not."""
    configs = [  # (name, t2, dtheta1, dtheta2, action, sign of t1)
        ("rest", 0.0, 0.0, 0.0, 1, 1.0),
        ("rest-neg", 0.0, 0.0, 0.0, 1, -1.0),
        ("swing", 0.3, 0.5, -0.5, 2, 1.0),
        ("swing-neg", -0.4, -1.0, 1.0, 0, -1.0),
        ("bent", 1.2, 2.0, 1.5, 0, 1.0),
    ]
    out = []
    for name, t2, d1, d2, action, sign in configs:
        term = lambda t1: replay(ACROBOT, [t1, t2, d1, d2], action)["terminated"]  # noqa: E731
        grid = [sign * (0.5 + 0.02 * i) for i in range(131)]  # |t1| in [0.5, 3.1]
        pair = None
        for a, b in zip(grid, grid[1:]):
            if term(a) != term(b):
                pair = (a, b)
                break
        assert pair is not None, name
        lo, hi = pair  # term(lo) != term(hi)
        t_lo = term(lo)
        while math.nextafter(lo, hi) != hi:
            mid = lo + (hi - lo) / 2
            if mid in (lo, hi):
                break
            if term(mid) == t_lo:
                lo = mid
            else:
                hi = mid
        assert term(lo) != term(hi), name
        for t1 in (lo, hi):
            tag = "crossed" if term(t1) else "not-crossed"
            out.append((f"edge:threshold-{name}-{tag}", [t1, t2, d1, d2], action))
    return out


def mountain_car_edges() -> list[tuple]:
    states = {
        "left-wall-hit": ([-1.19, -0.05], (0, 1, 2)),
        "left-wall-at": ([-1.2, -0.01], (0, 1, 2)),
        "left-wall-at-rest": ([-1.2, 0.0], (0, 1, 2)),
        "left-wall-max-speed": ([-1.15, -0.07], (0, 1, 2)),
        "speed-clip-pos": ([-0.5, 0.07], (0, 1, 2)),
        "speed-clip-pos-near": ([-0.3, 0.0699], (2,)),
        "speed-clip-neg": ([-0.5, -0.07], (0, 1, 2)),
        "speed-clip-neg-near": ([-0.7, -0.0699], (0,)),
        "right-wall": ([0.59, 0.07], (0, 1, 2)),
        "at-goal-rest": ([0.5, 0.0], (0, 1, 2)),
        "past-goal-backwards": ([0.55, -0.01], (0, 1, 2)),
        "valley": ([-math.pi / 6, 0.0], (0, 1, 2)),
    }
    out = [(f"edge:{name}", s, a) for name, (s, acts) in states.items() for a in acts]
    # Next position exactly 0.5 (goal, terminated) and one ulp below (not terminated).
    for v0, action in ((0.04, 2), (0.02, 1), (0.06, 0)):
        targets = {"goal-exact": 0.5, "goal-ulp-below": math.nextafter(0.5, 0.0)}
        for tag, target in targets.items():
            s = solve_position(MOUNTAIN_CAR, v0, action, target, math.nextafter)
            out.append((f"edge:{tag}", s, action))
    return out


def solve_position(env_id: str, v0: float, action, target: float, nudge) -> list[float]:
    """A state [p, v0] whose next position is exactly `target` (p found by scanning ulps)."""

    def next_pos(p):
        return replay(env_id, copy_state(env_id, [p, v0]), record_action(env_id, action))[
            "next_state"
        ][0]

    p = target - v0
    for _ in range(12):  # fixed point on the velocity change (contracts ~100x per pass)
        p = p - (next_pos(p) - target)
    if env_id == MCC:
        p = f32(p)
    for _ in range(10_000):
        got = next_pos(p)
        if got == target:
            return [p, v0]
        p = nudge(p, -math.inf if got > target else math.inf)
    raise RuntimeError(f"no state reaches {target!r} exactly ({env_id}, v0={v0})")


def mcc_edges() -> list[tuple]:
    weird = [5.0, -5.0, 1.0000001, -1.0000001, 1.0, -1.0, 0.0, 0.5, -0.5, 1.5, -1.5, 1e-8]
    base_states = {
        "valley": [-0.5, 0.0],
        "moving-right": [-0.2, 0.03],
        "moving-left": [-0.8, -0.03],
    }
    out = [
        (f"edge:action-{a!r}-{name}", s, [a]) for name, s in base_states.items() for a in weird
    ]
    states = {
        "left-wall-hit": ([-1.19, -0.05], (-1.0, 0.0, 1.0, -5.0)),
        "left-wall-at": ([-1.2, -0.01], (-1.0, 0.0, 1.0)),
        "left-wall-at-rest": ([-1.2, 0.0], (-1.0, -1.0000001, 1.0)),
        "left-wall-max-speed": ([-1.15, -0.07], (-1.0, 1.0)),
        "speed-clip-pos": ([-0.5, 0.07], (-1.0, 0.0, 1.0, 5.0)),
        "speed-clip-pos-near": ([-0.3, 0.069], (1.0, 1.0000001)),
        "speed-clip-neg": ([-0.5, -0.07], (-1.0, 0.0, 1.0, -5.0)),
        "speed-clip-neg-near": ([-0.7, -0.069], (-1.0, -1.0000001)),
        "right-wall": ([0.59, 0.07], (-1.0, 0.0, 1.0, 5.0)),
        "goal-at-rest": ([0.45, 0.0], (1.0, 1.0000001, 0.0, -1.0)),
        "goal-f32-at-rest": ([f32(0.45), 0.0], (1.0, 0.0, -1.0)),
        "goal-f32-below-at-rest": ([f32_next(0.45, 0.0), 0.0], (1.0, 0.0)),
        "past-goal-backwards": ([0.5, -0.01], (-1.0, 0.0, 1.0)),
        "past-goal-slow-back": ([0.46, -0.001], (-1.0, 0.0)),
    }
    out += [(f"edge:{name}", s, [a]) for name, (s, acts) in states.items() for a in acts]
    # Next position exactly float32(0.45) (>= 0.45 in float32: terminated although
    # 0.44999998807907104 < 0.45 in float64) and one float32 ulp below it (not terminated).
    for v0, action in ((0.03, 1.0), (0.01, 0.5), (0.05, 1.0000001), (0.02, -0.3)):
        targets = {"goal-f32-exact": f32(0.45), "goal-f32-ulp-below": f32_next(0.45, 0.0)}
        for tag, target in targets.items():
            s = solve_position(MCC, f32(v0), [action], target, lambda p, t: f32_next(p, t))
            out.append((f"edge:{tag}", s, [action]))
    return out


def pendulum_edges() -> list[tuple]:
    thetas = {
        "pi": PI,
        "neg-pi": -PI,
        "3pi": 3 * PI,
        "neg-3pi": -3 * PI,
        "2pi": 2 * PI,
        "zero": 0.0,
        "half-pi": PI / 2,
        "large": 25.0,
        "neg-large": -100.0,
        "near-pi": math.nextafter(PI, 0.0),
    }
    theta_dots = {"0": 0.0, "8": 8.0, "-8": -8.0, "7.99": 7.99, "-7.99": -7.99, "9": 9.0}
    torques = [-10.0, -2.0, 0.0, 2.0, 2.5, 10.0, 1.0000001, 0.1]
    out = []
    for (tn, th), (dn, thd) in ((t, d) for t in thetas.items() for d in theta_dots.items()):
        # all torques at thetadot 0; three per state otherwise, rotating through the list
        if thd == 0.0:
            acts = torques
        else:
            k = (list(thetas).index(tn) * 3 + list(theta_dots).index(dn)) % len(torques)
            acts = [torques[(k + i) % len(torques)] for i in range(3)]
        for u in acts:
            out.append((f"edge:theta-{tn}-thdot-{dn}", [th, thd], [u]))
    return out


EDGES = {
    CARTPOLE: cartpole_edges,
    ACROBOT: acrobot_edges,
    MOUNTAIN_CAR: mountain_car_edges,
    PENDULUM: pendulum_edges,
    MCC: mcc_edges,
}


# --------------------------------------------------------------------------------------------


def generate(env_id: str, env_index: int) -> tuple[list[dict], Trajectories]:
    rng = np.random.default_rng([MASTER_SEED, env_index])
    tr = trajectories(env_id, rng)
    lines = list(tr.lines)
    for case, state, action in EDGES[env_id]():
        lines.append(make_line(env_id, case, state, action))
    return lines, tr


def write_jsonl(path: Path, lines: list[dict]) -> None:
    with path.open("w", encoding="utf-8", newline="\n") as f:
        for line in lines:
            f.write(json.dumps(line, allow_nan=False) + "\n")


def self_check(path: Path, env_id: str, env_index: int, n: int = 50) -> int:
    """Re-load the file and replay n lines: the JSON must reproduce gymnasium bit for bit."""
    lines = [json.loads(text) for text in path.read_text(encoding="utf-8").splitlines()]
    rng = np.random.default_rng([MASTER_SEED, 1000 + env_index])
    # n lines picked uniformly (seeded), compared field by field after the JSON round trip
    picks = sorted(rng.choice(len(lines), size=min(n, len(lines)), replace=False).tolist())
    for i in picks:
        line = lines[i]
        again = replay(env_id, line["state"], line["action"])
        for key, value in again.items():
            assert line[key] == value, f"{path.name} line {i + 1}: {key} {line[key]} != {value}"
        assert copy_state(env_id, line["state"]) == line["state"], f"{path.name} line {i + 1}"
    return len(picks)


def write_readme(out: Path, stats: dict) -> None:
    rows = "\n".join(
        f"| `{env_id}.jsonl` | {s['lines']} | {s['terminated']} | {s['random']} | "
        f"{s['heuristic']} | {s['edge']} |"
        for env_id, s in stats.items()
    )
    text = f"""# Golden transitions from gymnasium

Generated by `scripts/gym_golden.py`; do not edit by hand. Read by
`crates/tars-envs/tests/golden.rs`.

Regenerate (from the repository root):

```sh
python3 -m venv scripts/.venv
scripts/.venv/bin/pip install -r scripts/requirements.txt
scripts/.venv/bin/python scripts/gym_golden.py
```

Versions: Python {sys.version.split()[0]}, gymnasium {gym.__version__}, numpy {np.__version__}
(pinned in `scripts/requirements.txt`); master seed {MASTER_SEED}. Re-running gives identical files.

Each line is one transition replayed on a fresh `gym.make(env_id).unwrapped` after
`reset(seed=0)`: `state` is assigned to `env.state` (float32 for MountainCarContinuous-v0,
float64 otherwise), then `step(action)` once (discrete actions as `int`, continuous as
`np.array([a], dtype=np.float32)`; recorded `a` is that float32 value). `next_state` is
`env.state` afterwards, `obs` the returned float32 observation, `reward` and `terminated` as
returned. Floats are written with Python's repr, so they round-trip exactly (parse them with a
correctly rounding parser, e.g. serde_json's `float_roundtrip` feature, to compare bit for bit).

Cases: `random` (seeded random actions; continuous ones wider than the action bounds),
`heuristic` (controllers that reach terminal and other interesting states), `edge:<name>`
(hand-built states at the bounds, clips, wraps and termination thresholds).

| file | lines | terminated | random | heuristic | edge |
| --- | ---: | ---: | ---: | ---: | ---: |
{rows}
"""
    (out / "README.md").write_text(text, encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output directory")
    parser.add_argument("--check-only", action="store_true", help="only replay existing files")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", module="gymnasium")

    versions = {"gymnasium": gym.__version__, "numpy": np.__version__}
    if versions != PINNED:
        print(f"error: need {PINNED}, have {versions} (pip install -r scripts/requirements.txt)")
        return 1

    args.out.mkdir(parents=True, exist_ok=True)
    stats = {}
    for env_index, env_id in enumerate(ENV_IDS):
        path = args.out / f"{env_id}.jsonl"
        if not args.check_only:
            lines, tr = generate(env_id, env_index)
            if tr.replay_mismatches:
                print(f"error: {env_id}: {tr.replay_mismatches} replays differ from the episode")
                return 1
            n_term = sum(line["terminated"] for line in lines)
            if n_term < MIN_TERMINATED[env_id]:
                print(f"error: {env_id}: only {n_term} terminated transitions")
                return 1
            write_jsonl(path, lines)
            kinds = [line["case"].split(":")[0] for line in lines]
            stats[env_id] = {
                "lines": len(lines),
                "terminated": n_term,
                "random": kinds.count("random"),
                "heuristic": kinds.count("heuristic"),
                "edge": kinds.count("edge"),
            }
            print(
                f"{env_id}: {len(lines)} lines, {n_term} terminated "
                f"(random {stats[env_id]['random']}, heuristic {stats[env_id]['heuristic']}, "
                f"edge {stats[env_id]['edge']}; MCC reset steps not cross-checked: "
                f"{tr.reset_steps_skipped})"
            )
        checked = self_check(path, env_id, env_index)
        print(f"{env_id}: self-check replayed {checked} lines from {path.name}: identical")
    if not args.check_only:
        write_readme(args.out, stats)
    return 0


if __name__ == "__main__":
    sys.exit(main())
