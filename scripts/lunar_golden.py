"""Generate the LunarLander parity fixtures in crates/tars-envs/tests/fixtures/lunar/ with gymnasium.

Two kinds of fixture, read by crates/tars-envs/tests/lunar_lander.rs:

* heuristic_<env id>.json: N fixed-seed episodes (seeds 0..N-1) of gymnasium's own
  `heuristic(env, s)` controller through `gym.make` (so with the 1000-step TimeLimit):
  returns, lengths and the first 50 observations of each (the reset observation first).
  T.A.R.S. draws from a different generator, so these are compared statistically.
* flat_<name>.json: one episode from a state both implementations can share: flat terrain
  (every raw height H / 4) and no initial push. gymnasium's `np_random` is wrapped so that
  those two draws are fixed while the engine dispersions (and wind phase) still come from the
  seeded generator and are recorded; T.A.R.S. replays the same draws and the same actions
  (`LunarLander::reset_with`) and must follow the same observations.

Usage (from the repository root):

    python3 -m venv scripts/.venv
    scripts/.venv/bin/pip install -r scripts/requirements-lunar.txt
    scripts/.venv/bin/python scripts/lunar_golden.py
"""

import argparse
import json
import pathlib

import Box2D
import gymnasium as gym
import numpy as np
from gymnasium.envs.box2d import lunar_lander
from gymnasium.envs.box2d.lunar_lander import heuristic

OUT_DIR = pathlib.Path(__file__).resolve().parent.parent / "crates/tars-envs/tests/fixtures/lunar"
N_FIRST_OBS = 50
H = lunar_lander.VIEWPORT_H / lunar_lander.SCALE


def f32_list(values) -> list:
    """Shortest decimal strings that round-trip to the same float32, as JSON numbers."""
    return [float(str(np.float32(v))) for v in values]


def versions() -> dict:
    return {"gymnasium": gym.__version__, "numpy": np.__version__, "Box2D": Box2D.__version__}


def heuristic_episodes(env_id: str, n_episodes: int) -> dict:
    env = gym.make(env_id)
    returns, lengths, first_obs = [], [], []
    for seed in range(n_episodes):
        obs, _ = env.reset(seed=seed)
        observations = [f32_list(obs)]
        total, steps = 0.0, 0
        while True:
            obs, reward, terminated, truncated, _ = env.step(heuristic(env, obs))
            total += float(reward)
            steps += 1
            if len(observations) < N_FIRST_OBS:
                observations.append(f32_list(obs))
            if terminated or truncated:
                break
        returns.append(total)
        lengths.append(steps)
        first_obs.append(observations)
    env.close()
    landed = sum(r >= 200.0 for r in returns)
    print(
        f"{env_id}: {n_episodes} heuristic episodes, mean return {np.mean(returns):.2f}, "
        f"landed (return >= 200) {landed / n_episodes:.1%}, mean length {np.mean(lengths):.1f}"
    )
    return {
        "env_id": env_id,
        "versions": versions(),
        "policy": "gymnasium.envs.box2d.lunar_lander.heuristic",
        "seeds": list(range(n_episodes)),
        "returns": returns,
        "lengths": lengths,
        "first_obs": first_obs,
    }


class ScriptedRandom:
    """Stands in for `env.unwrapped.np_random`: fixed terrain and push, recorded dispersions."""

    def __init__(self, inner: np.random.Generator, terrain_heights: list, initial_force: list):
        self.inner = inner
        self.terrain_heights = terrain_heights
        self.initial_force = list(initial_force)
        self.dispersions = []
        self.wind_indices = []

    def uniform(self, low=0.0, high=1.0, size=None):
        if size is not None:  # the terrain heights, `uniform(0, H / 2, size=(CHUNKS + 1,))`
            return np.array(self.terrain_heights, dtype=np.float64)
        if (low, high) == (-lunar_lander.INITIAL_RANDOM, lunar_lander.INITIAL_RANDOM):
            return self.initial_force.pop(0)
        value = self.inner.uniform(low, high)  # an engine dispersion
        self.dispersions.append(float(value))
        return value

    def integers(self, low, high):  # the wind and turbulence phases
        value = self.inner.integers(low, high)
        self.wind_indices.append(int(value))
        return value


def flat_episode(env_id: str, seed: int, options: dict) -> dict:
    env = gym.make(env_id, **options)
    env.reset(seed=seed)  # seeds np_random; the episode itself starts below
    terrain_heights = [H / 4] * 12  # CHUNKS + 1 raw heights
    scripted = ScriptedRandom(env.unwrapped.np_random, terrain_heights, [0.0, 0.0])
    env.unwrapped.np_random = scripted
    obs, _ = env.reset()
    observations, actions, rewards, terminated_flags = [f32_list(obs)], [], [], []
    while True:
        action = heuristic(env, obs)
        obs, reward, terminated, truncated, _ = env.step(action)
        actions.append(int(action) if np.isscalar(action) else f32_list(action))
        observations.append(f32_list(obs))
        rewards.append(float(reward))
        terminated_flags.append(bool(terminated))
        if terminated or truncated:
            break
    env.close()
    dispersions = scripted.dispersions
    print(f"{env_id} {options}: flat-terrain episode of {len(actions)} steps, return {sum(rewards):.2f}")
    return {
        "env_id": env_id,
        "versions": versions(),
        "options": options,
        "draws": {
            "terrain_heights": terrain_heights,
            "initial_force": [0.0, 0.0],
            "wind_indices": scripted.wind_indices or [0, 0],
            "dispersions": [dispersions[i : i + 2] for i in range(0, len(dispersions), 2)],
        },
        "actions": actions,
        "observations": observations,
        "rewards": rewards,
        "terminated": terminated_flags,
    }


def write(name: str, data: dict) -> None:
    path = OUT_DIR / name
    path.write_text(json.dumps(data, separators=(",", ":")) + "\n")
    print(f"wrote {path.relative_to(OUT_DIR.parent.parent.parent.parent.parent)}")


PINNED = {"gymnasium": "1.4.0", "numpy": "2.4.6", "Box2D": "2.3.10"}


def main() -> None:
    if versions() != PINNED:
        raise SystemExit(
            f"lunar_golden.py needs {PINNED} (scripts/requirements-lunar.txt), found {versions()}"
        )
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=200, help="heuristic episodes per env")
    args = parser.parse_args()
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    for env_id in ["LunarLander-v3", "LunarLanderContinuous-v3"]:
        write(f"heuristic_{env_id}.json", heuristic_episodes(env_id, args.episodes))
    write("flat_discrete.json", flat_episode("LunarLander-v3", 7, {}))
    write("flat_continuous.json", flat_episode("LunarLanderContinuous-v3", 8, {}))
    wind = {"enable_wind": True, "wind_power": 15.0, "turbulence_power": 1.5}
    write("flat_discrete_wind.json", flat_episode("LunarLander-v3", 9, wind))


if __name__ == "__main__":
    main()
