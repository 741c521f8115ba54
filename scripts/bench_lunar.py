"""Measure gymnasium's LunarLander-v3 single-env steps/s, the baseline for T.A.R.S.'s port.

Random actions, resets included, one environment, no rendering: the same workload as
`crates/tars-envs/benches/lunar.rs` (criterion) and `tars bench envs`.

Usage (from the repository root):

    python3 -m venv scripts/.venv
    scripts/.venv/bin/pip install -r scripts/requirements-lunar.txt
    scripts/.venv/bin/python scripts/bench_lunar.py [--steps 200000] [--continuous]
"""

import argparse
import time

import gymnasium as gym
import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200_000, help="steps to time")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--continuous", action="store_true", help="LunarLanderContinuous-v3")
    parser.add_argument("--repeats", type=int, default=3, help="best of this many runs")
    args = parser.parse_args()

    env_id = "LunarLanderContinuous-v3" if args.continuous else "LunarLander-v3"
    env = gym.make(env_id)
    env.action_space.seed(args.seed)
    # Draw the actions up front so the timing is the environment's, not the sampler's.
    actions = [env.action_space.sample() for _ in range(args.steps)]

    best = 0.0
    for repeat in range(args.repeats):
        env.reset(seed=args.seed + repeat)
        n_episodes = 0
        start = time.perf_counter()
        for action in actions:
            _, _, terminated, truncated, _ = env.step(action)
            if terminated or truncated:
                env.reset()
                n_episodes += 1
        elapsed = time.perf_counter() - start
        steps_per_second = args.steps / elapsed
        best = max(best, steps_per_second)
        print(f"run {repeat}: {steps_per_second:,.0f} steps/s ({n_episodes} episodes)")
    print(
        f"{env_id} gymnasium {gym.__version__} numpy {np.__version__}: "
        f"best {best:,.0f} steps/s single-env"
    )


if __name__ == "__main__":
    main()
