"""Reference log densities of Optuna 5.0.0's TPE Parzen estimator for
crates/tars-automl/src/sampler/tpe/parzen.rs (test `log_densities_match_optuna_5`).

Run with `pip install optuna==5.0.0`; prints the three log densities and each numerical
dimension's kernel means and bandwidths.
"""
import numpy as np
from optuna.distributions import FloatDistribution, IntDistribution, CategoricalDistribution
from optuna.samplers._tpe.parzen_estimator import _ParzenEstimator, _ParzenEstimatorParameters
from optuna.samplers._tpe.sampler import default_weights
space = {
    "x": FloatDistribution(-1.0, 3.0),
    "n": IntDistribution(1, 6),
    "c": CategoricalDistribution(["a", "b", "z"]),
    "l": FloatDistribution(1e-4, 1.0, log=True),
    "s": FloatDistribution(0.0, 1.0, step=0.25),
    "k": IntDistribution(8, 2048, log=True),
}
obs = {
    "x": np.array([0.1, 0.15, 2.9, -0.8]),
    "n": np.array([2.0, 5.0, 5.0, 1.0]),
    "c": np.array([2.0, 2.0, 0.0, 1.0]),
    "l": np.array([1e-3, 0.5, 2e-2, 1e-4]),
    "s": np.array([0.25, 0.0, 1.0, 0.5]),
    "k": np.array([16.0, 512.0, 8.0, 100.0]),
}
params = _ParzenEstimatorParameters(prior_weight=1.0, consider_magic_clip=True, consider_endpoints=False, weights=default_weights, multivariate=True)
pe = _ParzenEstimator(obs, space, params)
pts = {
    "x": np.array([0.0, 2.5, -1.0]),
    "n": np.array([3.0, 6.0, 1.0]),
    "c": np.array([0.0, 2.0, 1.0]),
    "l": np.array([1e-2, 0.9, 1e-4]),
    "s": np.array([0.5, 0.75, 0.0]),
    "k": np.array([64.0, 2048.0, 9.0]),
}
print(repr(pe.log_pdf(pts).tolist()))
for d in pe._mixture_distribution.distributions:
    if hasattr(d, "sigma"): print(type(d).__name__, d.mu.tolist(), d.sigma.tolist())
