"""SB3's TD3 on Pendulum-v1 with the RL Zoo's hyperparameters, over several seeds.

The peer figure beside `tars bench train --only td3:Pendulum-v1`: SB3's time and score with
the same configuration (crates/tars-agents/zoo/td3.toml), budget and evaluation (50
deterministic episodes, `evaluate_policy`, seeds S + 1,000,000).

    python -m venv /tmp/sb3 && /tmp/sb3/bin/pip install stable-baselines3==2.9.2
    /tmp/sb3/bin/python scripts/sb3_td3_seeds.py --seeds 0 1

Prints one JSON line per seed: seed, train seconds, mean and std of the evaluation returns.
"""

import argparse
import json
import time

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3 import TD3
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.noise import NormalActionNoise

N_TIMESTEPS = 20_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--episodes", type=int, default=50)
    args = parser.parse_args()
    torch.set_num_threads(1)
    for seed in args.seeds:
        env = gym.make("Pendulum-v1")
        # rl-baselines3-zoo, hyperparams/td3.yml, Pendulum-v1.
        model = TD3(
            "MlpPolicy",
            env,
            gamma=0.98,
            buffer_size=200_000,
            learning_starts=10_000,
            action_noise=NormalActionNoise(np.zeros(1), 0.1 * np.ones(1)),
            gradient_steps=1,
            train_freq=1,
            learning_rate=1e-3,
            policy_kwargs=dict(net_arch=[400, 300]),
            seed=seed,
            device="cpu",
        )
        start = time.perf_counter()
        model.learn(total_timesteps=N_TIMESTEPS)
        seconds = time.perf_counter() - start
        eval_env = gym.make("Pendulum-v1")
        eval_env.reset(seed=seed + 1_000_000)
        mean, std = evaluate_policy(
            model, eval_env, n_eval_episodes=args.episodes, deterministic=True
        )
        line = {
            "seed": seed,
            "train_seconds": round(seconds, 1),
            "eval_mean_reward": float(mean),
            "eval_std_reward": float(std),
        }
        print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
