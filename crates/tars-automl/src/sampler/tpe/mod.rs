//! Optuna 5.0's `TPESampler` (`samplers/_tpe/sampler.py`): random for the first
//! `n_startup_trials` finished trials, then split the trials into "below" (the best
//! γ(n) = min(⌈0.1·n⌉, 25)) and "above" (the rest, plus running trials under the constant
//! liar), fit a Parzen estimator to each, draw `n_ei_candidates` from the below estimator and
//! keep the one that maximises ln l(x) − ln g(x). Multivariate mode (Optuna 5's default for
//! one objective) fits one product-kernel mixture over all parameters; univariate mode does
//! this per parameter.

mod parzen;
pub mod truncnorm;

use crate::sampler::random;
use crate::study::{Direction, Trial, TrialState};
use crate::{Error, SearchSpace};
use parzen::{Dim, Parzen, ParzenParams};

pub use parzen::Bandwidth;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use tars_envs::Rng;

pub use parzen::default_weights;

/// Settings of the TPE sampler. [`TpeConfig::optuna`] is Optuna 5.0's `TPESampler()` for
/// one objective (multivariate, constant liar). The default keeps its algorithm
/// (`n_startup_trials` 10, `n_ei_candidates` 24, γ = min(⌈0.1·n⌉, 25), constant liar) and
/// changes two settings of Watanabe 2023's ablation (chosen on seeds 1000–1019 of the three
/// test functions, checked on seeds 0–4 and 100–119: docs/benchmarks.md): bandwidths at
/// least 3% of the range whatever the number of observations (`magic_clip_exponent` null,
/// `min_bandwidth_factor` 0.03; Optuna: range / min(100, n + 2)), and "below" observations
/// weighted by their improvement over the best "above" one (`weights` `ei`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TpeConfig {
    /// Finished trials sampled at random before TPE starts.
    pub n_startup_trials: usize,
    /// Candidates drawn from the "below" estimator per sample.
    pub n_ei_candidates: usize,
    /// One joint estimator over all parameters instead of one per parameter.
    pub multivariate: bool,
    /// Running trials count as "above" (worse than any good trial) when sampling.
    pub constant_liar: bool,
    /// Weight of the prior kernel.
    pub prior_weight: f64,
    /// Bandwidths at least range / min(100, n + 2).
    pub consider_magic_clip: bool,
    /// Bandwidths of the extreme kernels use the distance to the range's ends.
    pub consider_endpoints: bool,
    // The settings below are absent from configs stored before they existed: those read
    // them as Optuna's, so a resumed study samples as it did.
    /// α: with the magic clip, bandwidths are at least range · max(Δ, 1 / (n + 2)^α)
    /// (Optuna: 1); `None`: at least range · Δ whatever n (α = ∞).
    #[serde(default = "optuna_magic_clip_exponent")]
    pub magic_clip_exponent: Option<f64>,
    /// Δ: the smallest bandwidth with the magic clip, as a fraction of the range.
    #[serde(default = "optuna_min_bandwidth_factor")]
    pub min_bandwidth_factor: f64,
    /// The bandwidth rule before the clip.
    #[serde(default)]
    pub bandwidth: Bandwidth,
    /// How the observations of each estimator are weighted.
    #[serde(default)]
    pub weights: Weights,
}

fn optuna_magic_clip_exponent() -> Option<f64> {
    Some(1.0)
}

fn optuna_min_bandwidth_factor() -> f64 {
    0.01
}

/// Weights of the observations in the estimators (Watanabe 2023, §3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Weights {
    /// Optuna's `default_weights`: older observations ramp down beyond the newest 25.
    #[default]
    OldDecay,
    /// All observations count the same.
    Uniform,
    /// "Below" observations weighted by their improvement over the best "above" one
    /// (threshold − loss), the prior by their mean; "above" ones uniform.
    Ei,
}

impl Default for TpeConfig {
    fn default() -> Self {
        TpeConfig {
            magic_clip_exponent: None,
            min_bandwidth_factor: 0.03,
            weights: Weights::Ei,
            ..TpeConfig::optuna()
        }
    }
}

impl TpeConfig {
    /// Optuna 5.0's `TPESampler()` defaults.
    pub fn optuna() -> Self {
        TpeConfig {
            n_startup_trials: 10,
            n_ei_candidates: 24,
            multivariate: true,
            constant_liar: true,
            prior_weight: 1.0,
            consider_magic_clip: true,
            consider_endpoints: false,
            magic_clip_exponent: Some(1.0),
            min_bandwidth_factor: 0.01,
            bandwidth: Bandwidth::Neighbours,
            weights: Weights::OldDecay,
        }
    }

    pub fn validate(&self) -> Result<(), Error> {
        if self.n_ei_candidates == 0 || self.n_ei_candidates > 100_000 {
            return Err(Error::InvalidSetting {
                name: "n_ei_candidates",
                value: self.n_ei_candidates.to_string(),
                expected: "an integer in [1, 100000]".to_string(),
            });
        }
        if !(self.prior_weight > 0.0 && self.prior_weight.is_finite()) {
            return Err(Error::InvalidSetting {
                name: "prior_weight",
                value: self.prior_weight.to_string(),
                expected: "a positive number".to_string(),
            });
        }
        if let Some(alpha) = self.magic_clip_exponent
            && !(alpha > 0.0 && alpha.is_finite())
        {
            return Err(Error::InvalidSetting {
                name: "magic_clip_exponent",
                value: alpha.to_string(),
                expected: "a positive number, or null for no 1/(n+2)^α term".to_string(),
            });
        }
        if !(self.min_bandwidth_factor > 0.0 && self.min_bandwidth_factor <= 1.0) {
            return Err(Error::InvalidSetting {
                name: "min_bandwidth_factor",
                value: self.min_bandwidth_factor.to_string(),
                expected: "a number in (0, 1]".to_string(),
            });
        }
        Ok(())
    }

    fn parzen(&self) -> ParzenParams {
        ParzenParams {
            prior_weight: self.prior_weight,
            consider_magic_clip: self.consider_magic_clip,
            consider_endpoints: self.consider_endpoints,
            magic_clip_exponent: self.magic_clip_exponent,
            min_bandwidth_factor: self.min_bandwidth_factor,
            bandwidth: self.bandwidth,
        }
    }
}

/// Optuna's `default_gamma`: how many of `n` finished trials are "below".
pub fn default_gamma(n: usize) -> usize {
    (n.div_ceil(10)).min(25)
}

/// The next trial's parameters (those in `fixed` are sampled but then overridden).
pub fn sample(
    config: &TpeConfig,
    direction: Direction,
    space: &SearchSpace,
    trials: &[Trial],
    _fixed: &BTreeMap<String, Value>,
    rng: &mut Rng,
) -> BTreeMap<String, Value> {
    let n_finished = trials
        .iter()
        .filter(|t| matches!(t.state, TrialState::Complete | TrialState::Pruned))
        .count();
    if n_finished < config.n_startup_trials {
        return space
            .iter()
            .map(|(name, d)| (name.to_string(), random::sample_one(d, rng)))
            .collect();
    }
    let (below, above) = split_trials(trials, direction, default_gamma(n_finished), config);
    let mut params = BTreeMap::new();
    if config.multivariate {
        // Optuna's relative search space leaves out parameters with a single value.
        let names: Vec<&str> = space
            .iter()
            .filter(|(_, d)| !d.single())
            .map(|(name, _)| name)
            .collect();
        if !names.is_empty() {
            let chosen = sample_group(config, direction, space, &names, &below, &above, rng);
            params.extend(chosen);
        }
        for (name, distribution) in space.iter().filter(|(_, d)| d.single()) {
            params.insert(name.to_string(), distribution.to_external(0.0));
        }
    } else {
        for (name, distribution) in space.iter() {
            if distribution.single() {
                params.insert(name.to_string(), distribution.to_external(0.0));
                continue;
            }
            let chosen = sample_group(config, direction, space, &[name], &below, &above, rng);
            params.extend(chosen);
        }
    }
    params
}

/// Draws candidates for the parameters `names` jointly and returns the best by the
/// acquisition function ln l(x) − ln g(x).
fn sample_group<'a>(
    config: &TpeConfig,
    direction: Direction,
    space: &SearchSpace,
    names: &[&str],
    below: &[&'a Trial],
    above: &[&'a Trial],
    rng: &mut Rng,
) -> Vec<(String, Value)> {
    let distributions: Vec<_> = names
        .iter()
        .map(|name| space.get(name).expect("names come from the space"))
        .collect();
    let dims: Vec<Dim> = distributions.iter().map(|d| Dim::of(d)).collect();
    // Trials that have every parameter of the group (Optuna's `_get_internal_repr`).
    let internal = |trial: &Trial| -> Option<Vec<f64>> {
        names
            .iter()
            .zip(&distributions)
            .map(|(name, distribution)| distribution.to_internal(trial.params.get(*name)?))
            .collect()
    };
    let observations = |trials: &[&'a Trial]| -> (Vec<Vec<f64>>, Vec<&'a Trial>) {
        trials
            .iter()
            .filter_map(|&trial| Some((internal(trial)?, trial)))
            .unzip()
    };
    let (below_obs, below_trials) = observations(below);
    let (above_obs, _) = observations(above);
    let params = config.parzen();
    let mut below_params = params;
    let (below_weights, above_weights) = match config.weights {
        Weights::OldDecay => (
            default_weights(below_obs.len()),
            default_weights(above_obs.len()),
        ),
        Weights::Uniform => (vec![1.0; below_obs.len()], vec![1.0; above_obs.len()]),
        Weights::Ei => {
            let loss = |t: &Trial| t.value.map_or(f64::INFINITY, |v| direction.loss(v));
            let threshold = above.iter().map(|t| loss(t)).fold(f64::INFINITY, f64::min);
            let mut below_weights = vec![1.0; below_obs.len()];
            if threshold.is_finite() && !below_trials.is_empty() {
                for (w, t) in below_weights.iter_mut().zip(&below_trials) {
                    *w = (threshold - loss(t)).max(1e-12);
                }
                below_params.prior_weight =
                    below_weights.iter().sum::<f64>() / below_weights.len() as f64;
            }
            (below_weights, vec![1.0; above_obs.len()])
        }
    };
    let parzen_below = Parzen::weighted(&below_obs, &below_weights, &dims, &below_params);
    let parzen_above = Parzen::weighted(&above_obs, &above_weights, &dims, &params);
    choose(
        config,
        names,
        &distributions,
        &parzen_below,
        &parzen_above,
        rng,
    )
}

/// Draws `n_ei_candidates` from the below estimator and returns the one maximising
/// ln l(x) − ln g(x), as external values.
fn choose(
    config: &TpeConfig,
    names: &[&str],
    distributions: &[&crate::Distribution],
    parzen_below: &Parzen,
    parzen_above: &Parzen,
    rng: &mut Rng,
) -> Vec<(String, Value)> {
    let mut best: Option<(f64, Vec<f64>)> = None;
    let mut candidate = Vec::with_capacity(names.len());
    let mut scratch = Vec::new();
    for _ in 0..config.n_ei_candidates {
        parzen_below.sample(rng, &mut candidate);
        let acquisition = parzen_below.log_pdf(&candidate, &mut scratch)
            - parzen_above.log_pdf(&candidate, &mut scratch);
        if best.as_ref().is_none_or(|(b, _)| acquisition > *b) {
            best = Some((acquisition, candidate.clone()));
        }
    }
    let (_, internal) = best.expect("n_ei_candidates ≥ 1");
    names
        .iter()
        .zip(distributions)
        .zip(internal)
        .map(|((name, distribution), v)| (name.to_string(), distribution.to_external(v)))
        .collect()
}

/// Optuna's `_split_trials`: the `n_below` best complete trials, then (if fewer complete)
/// the pruned trials that got furthest and best; everything else, and running trials under
/// the constant liar, is "above". Both lists are in trial-number order (the weights ramp).
fn split_trials<'a>(
    trials: &'a [Trial],
    direction: Direction,
    n_below: usize,
    config: &TpeConfig,
) -> (Vec<&'a Trial>, Vec<&'a Trial>) {
    let mut complete: Vec<&Trial> = Vec::new();
    let mut pruned: Vec<&Trial> = Vec::new();
    let mut running: Vec<&Trial> = Vec::new();
    for trial in trials {
        match trial.state {
            TrialState::Complete => complete.push(trial),
            TrialState::Pruned => pruned.push(trial),
            TrialState::Running if config.constant_liar => running.push(trial),
            TrialState::Running | TrialState::Failed => {}
        }
    }
    let loss = |t: &Trial| direction.loss(t.value.expect("complete trials have values"));
    complete.sort_by(|a, b| loss(a).total_cmp(&loss(b)));
    let n_below_complete = n_below.min(complete.len());
    let above_complete = complete.split_off(n_below_complete);
    let mut below = complete;
    // Pruned trials: later last step first, then better last value; none reported is worst.
    let score = |t: &Trial| -> (i64, f64) {
        match t.intermediate_values.iter().next_back() {
            Some((&step, &value)) if value.is_nan() => (-(step as i64), f64::INFINITY),
            Some((&step, &value)) => (-(step as i64), direction.loss(value)),
            None => (1, 0.0),
        }
    };
    pruned.sort_by(|a, b| {
        let (sa, sb) = (score(a), score(b));
        sa.0.cmp(&sb.0).then(sa.1.total_cmp(&sb.1))
    });
    let n_below_pruned = (n_below - n_below_complete).min(pruned.len());
    let above_pruned = pruned.split_off(n_below_pruned);
    below.extend(pruned);
    let mut above = above_complete;
    above.extend(above_pruned);
    above.extend(running);
    below.sort_by_key(|t| t.number);
    above.sort_by_key(|t| t.number);
    (below, above)
}

#[cfg(test)]
mod tests;
