"""SB3's DQN on CartPole-v1 with the RL Zoo's hyperparameters, over several seeds.

The peer figure beside `tars bench train --only dqn:CartPole-v1`: how many seeds SB3 itself
solves with the same configuration (crates/tars-agents/zoo/dqn.toml), budget and evaluation
(50 deterministic episodes, `evaluate_policy`).

    python -m venv /tmp/sb3 && /tmp/sb3/bin/pip install stable-baselines3==2.9.2
    /tmp/sb3/bin/python scripts/sb3_dqn_seeds.py --seeds 0 1 2 3 4

Prints one JSON line per seed: seed, train seconds, mean and std of the evaluation returns.
With `--eval-freq N` training also runs SB3's `EvalCallback` (every N steps, 5 episodes,
best model saved) and the line adds the best model's step and its 50-episode evaluation,
the peer of `tars bench train`'s best-checkpoint column.
"""

import argparse
import json
import tempfile
import time

import gymnasium as gym
import torch
from stable_baselines3 import DQN
from stable_baselines3.common.callbacks import EvalCallback
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.monitor import Monitor

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


def evaluate(model, seed: int, episodes: int) -> tuple[float, float]:
    """`evaluate_policy` on `episodes` deterministic episodes, the env seeded once."""
    eval_env = gym.make("CartPole-v1")
    eval_env.reset(seed=seed + 1_000_000)
    mean, std = evaluate_policy(model, eval_env, n_eval_episodes=episodes, deterministic=True)
    return float(mean), float(std)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--eval-freq", type=int, default=0, help="EvalCallback every N steps")
    args = parser.parse_args()
    torch.set_num_threads(1)
    for seed in args.seeds:
        model = DQN("MlpPolicy", gym.make("CartPole-v1"), seed=seed, device="cpu", **ZOO)
        with tempfile.TemporaryDirectory() as best_dir:
            callback = None
            if args.eval_freq > 0:
                callback_env = Monitor(gym.make("CartPole-v1"))
                callback_env.reset(seed=seed + 2_000_000)
                callback = EvalCallback(
                    callback_env,
                    eval_freq=args.eval_freq,
                    n_eval_episodes=5,
                    best_model_save_path=best_dir,
                    log_path=best_dir,
                    deterministic=True,
                    verbose=0,
                )
            start = time.perf_counter()
            model.learn(total_timesteps=N_TIMESTEPS, callback=callback)
            seconds = time.perf_counter() - start
            mean, std = evaluate(model, seed, args.episodes)
            line = {
                "seed": seed,
                "train_seconds": round(seconds, 1),
                "eval_mean_reward": mean,
                "eval_std_reward": std,
            }
            if callback is not None:
                best = DQN.load(f"{best_dir}/best_model.zip", device="cpu")
                best_mean, best_std = evaluate(best, seed, args.episodes)
                best_step = int(callback.evaluations_timesteps[
                    max(range(len(callback.evaluations_results)),
                        key=lambda i: (sum(callback.evaluations_results[i]), -i))
                ])
                line.update(
                    best_timestep=best_step,
                    best_eval_mean_reward=best_mean,
                    best_eval_std_reward=best_std,
                )
        print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
