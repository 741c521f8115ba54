"""SB3's DQN on CartPole-v1 with the RL Zoo's hyperparameters, over several seeds.

The peer figure beside `tars bench train --only dqn:CartPole-v1`: how many seeds SB3 itself
solves with the same configuration (crates/tars-agents/zoo/dqn.toml), budget and evaluation
(50 deterministic episodes, `evaluate_policy`).

    python -m venv /tmp/sb3 && /tmp/sb3/bin/pip install stable-baselines3==2.9.2
    /tmp/sb3/bin/python scripts/sb3_dqn_seeds.py --seeds 0 1 2 3 4

Prints one JSON line per seed: seed, train seconds, mean and std of the evaluation returns.
"""

import argparse
import json
import time

import gymnasium as gym
import torch
from stable_baselines3 import DQN
from stable_baselines3.common.evaluation import evaluate_policy

# rl-baselines3-zoo, hyperparams/dqn.yml, CartPole-v1.
ZOO = dict(
    learning_rate=2.3e-3,
    batch_size=64,
    buffer_size=100_000,
    learning_starts=1_000,
    gamma=0.99,
    target_update_interval=10,
    train_freq=256,
    gradient_steps=128,
    exploration_fraction=0.16,
    exploration_final_eps=0.04,
    policy_kwargs=dict(net_arch=[256, 256]),
)
N_TIMESTEPS = 50_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--episodes", type=int, default=50)
    args = parser.parse_args()
    torch.set_num_threads(1)
    for seed in args.seeds:
        model = DQN("MlpPolicy", gym.make("CartPole-v1"), seed=seed, device="cpu", **ZOO)
        start = time.perf_counter()
        model.learn(total_timesteps=N_TIMESTEPS)
        seconds = time.perf_counter() - start
        eval_env = gym.make("CartPole-v1")
        eval_env.reset(seed=seed + 1_000_000)
        mean, std = evaluate_policy(
            model, eval_env, n_eval_episodes=args.episodes, deterministic=True
        )
        print(
            json.dumps(
                {
                    "seed": seed,
                    "train_seconds": round(seconds, 1),
                    "eval_mean_reward": float(mean),
                    "eval_std_reward": float(std),
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
