"""Optuna 5.0.0's TPESampler (its defaults) on the functions of `tars bench tune`: Branin 2-D,
Hartmann 6-D, Rosenbrock 10-D in [-5, 10]^10, 200 trials per seed. Prints one JSON line per
(function, seed) with best@50/100/200, then the medians over the seeds, so the T.A.R.S. TPE
can be compared with Optuna on any set of seeds (`tars bench tune --first-seed S --seeds N`).

    scripts/.venv/bin/pip install optuna==5.0.0
    scripts/.venv/bin/python scripts/optuna_bench_tune.py --first-seed 100 --seeds 20
"""
import argparse
import json
import math
import statistics

import optuna


def branin(x):
    x1, x2 = x
    b = 5.1 / (4 * math.pi**2)
    c = 5 / math.pi
    t = 1 / (8 * math.pi)
    return (x2 - b * x1**2 + c * x1 - 6) ** 2 + 10 * (1 - t) * math.cos(x1) + 10


ALPHA = [1.0, 1.2, 3.0, 3.2]
A = [
    [10, 3, 17, 3.5, 1.7, 8],
    [0.05, 10, 17, 0.1, 8, 14],
    [3, 3.5, 1.7, 10, 17, 8],
    [17, 8, 0.05, 10, 0.1, 14],
]
P = [
    [0.1312, 0.1696, 0.5569, 0.0124, 0.8283, 0.5886],
    [0.2329, 0.4135, 0.8307, 0.3736, 0.1004, 0.9991],
    [0.2348, 0.1451, 0.3522, 0.2883, 0.3047, 0.6650],
    [0.4047, 0.8828, 0.8732, 0.5743, 0.1091, 0.0381],
]


def hartmann6(x):
    return -sum(
        ALPHA[i] * math.exp(-sum(A[i][j] * (x[j] - P[i][j]) ** 2 for j in range(6)))
        for i in range(4)
    )


def rosenbrock(x):
    return sum(100 * (x[i + 1] - x[i] ** 2) ** 2 + (1 - x[i]) ** 2 for i in range(len(x) - 1))


FUNCTIONS = {
    "branin-2d": (branin, [(-5.0, 10.0), (0.0, 15.0)]),
    "hartmann-6d": (hartmann6, [(0.0, 1.0)] * 6),
    "rosenbrock-10d": (rosenbrock, [(-5.0, 10.0)] * 10),
}


def run(function, bounds, seed, n_trials):
    def objective(trial):
        x = [trial.suggest_float(f"x{i}", lo, hi) for i, (lo, hi) in enumerate(bounds)]
        return function(x)

    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=seed))
    study.optimize(objective, n_trials=n_trials)
    best, best_so_far = math.inf, []
    for t in study.trials:
        best = min(best, t.value)
        best_so_far.append(best)
    return best_so_far


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--trials", type=int, default=200)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    assert optuna.__version__ == "5.0.0", optuna.__version__
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    for name, (function, bounds) in FUNCTIONS.items():
        finals = {k: [] for k in (50, 100, 200) if k <= args.trials}
        for seed in seeds:
            best = run(function, bounds, seed, args.trials)
            row = {"function": name, "seed": seed}
            for k in finals:
                finals[k].append(best[k - 1])
                row[f"best_at_{k}"] = best[k - 1]
            print(json.dumps(row), flush=True)
        summary = {"function": name, "seeds": f"{seeds.start}..{seeds.stop - 1}"}
        for k, values in finals.items():
            summary[f"median_best_at_{k}"] = statistics.median(values)
        print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
