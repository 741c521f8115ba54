//! Optuna 5.0's `_ParzenEstimator` (`samplers/_tpe/parzen_estimator.py` and
//! `probability_distributions.py`): a mixture with one product kernel per observation plus a
//! prior kernel (mean at the middle of the range, σ = the range, weight `prior_weight`).
//! Numerical dimensions are normals truncated to the range, in log space for log-scale
//! parameters; lattices (ints, floats with a step) widen the range by half a step and are
//! discretised (mass of `[x − step/2, x + step/2]`, samples rounded to the lattice).
//! Bandwidths are the larger gap to the sorted neighbours (endpoints = the range's ends; the
//! extreme kernels use their inner gap, `consider_endpoints = false`), clipped to
//! `[range / min(100, n + 2), range]`, in univariate and multivariate mode alike (Optuna 5
//! dropped the multivariate Scott rule). Categorical dimensions put
//! `1 + prior_weight / (n + 1)` on the observed choice and `prior_weight / (n + 1)` on every
//! choice, renormalised; the prior kernel is uniform.

use super::truncnorm;
use crate::Distribution;
use tars_envs::Rng;

/// Settings shared by every estimator of a sampler (Optuna's `_ParzenEstimatorParameters`,
/// plus the bandwidth knobs of Watanabe 2023, "Tree-structured Parzen estimator:
/// understanding its algorithm components and their roles for better empirical performance").
#[derive(Debug, Clone, Copy)]
pub struct ParzenParams {
    pub prior_weight: f64,
    pub consider_magic_clip: bool,
    pub consider_endpoints: bool,
    /// α of the magic clip: bandwidths are at least range · max(Δ, 1 / (n + 2)^α)
    /// (Optuna: α = 1); `None`: range · Δ (α = ∞).
    pub magic_clip_exponent: Option<f64>,
    /// Δ, the smallest bandwidth as a fraction of the range (Optuna: 0.01, its `min(100, …)`).
    pub min_bandwidth_factor: f64,
    pub bandwidth: Bandwidth,
}

/// How the kernels' bandwidths are chosen before the clip.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Bandwidth {
    /// Optuna's and Hyperopt's: the larger gap to the sorted neighbours.
    #[default]
    Neighbours,
    /// Scott's rule per dimension, 1.059 · min(IQR / 1.34, std) · n^(−1/5), over the
    /// observations and the prior's mean (Watanabe 2023's `scott`).
    Scott,
}

/// One dimension, with values in internal representation (numbers, or choice indices).
#[derive(Debug, Clone, Copy)]
pub enum Dim {
    Numerical {
        /// The distribution's range.
        low: f64,
        high: f64,
        /// Lattice step (ints always, floats when given).
        step: Option<f64>,
        log: bool,
        /// The kernels' range: widened by half a step on lattices, then in log space.
        adapted_low: f64,
        adapted_high: f64,
    },
    Categorical {
        n_choices: usize,
    },
}

impl Dim {
    pub fn of(distribution: &Distribution) -> Dim {
        let (low, high, step, log) = match *distribution {
            Distribution::Categorical { ref choices } => {
                return Dim::Categorical {
                    n_choices: choices.len(),
                };
            }
            Distribution::Float {
                low,
                high,
                log,
                step,
            } => (low, high, step, log),
            Distribution::Int {
                low,
                high,
                log,
                step,
            } => (low as f64, high as f64, Some(step as f64), log),
        };
        let half = step.unwrap_or(0.0) / 2.0;
        let (mut adapted_low, mut adapted_high) = (low - half, high + half);
        if log {
            adapted_low = adapted_low.ln();
            adapted_high = adapted_high.ln();
        }
        Dim::Numerical {
            low,
            high,
            step,
            log,
            adapted_low,
            adapted_high,
        }
    }

    /// Internal value → kernel space (log for log-scale parameters).
    fn transform(&self, internal: f64) -> f64 {
        match *self {
            Dim::Numerical { log: true, .. } => internal.ln(),
            _ => internal,
        }
    }
}

/// Kernels of one dimension, one per mixture component.
#[derive(Debug, Clone)]
enum Kernels {
    Numerical {
        dim: Dim,
        mus: Vec<f64>,
        sigmas: Vec<f64>,
        /// Continuous: `−ln σ − ln√(2π) − ln(mass of the adapted range)` per component.
        /// Lattice: `ln(mass of the adapted range)` per component.
        log_norm: Vec<f64>,
    },
    Categorical {
        /// `[component][choice]`.
        log_probs: Vec<Vec<f64>>,
        cum_probs: Vec<Vec<f64>>,
    },
}

/// A mixture of product kernels.
#[derive(Debug, Clone)]
pub struct Parzen {
    cum_weights: Vec<f64>,
    log_weights: Vec<f64>,
    dims: Vec<Kernels>,
}

/// Optuna's `default_weights`: all ones below 25 observations, else a linear ramp from 1/n
/// for the oldest `n − 25` and ones for the newest 25.
pub fn default_weights(n: usize) -> Vec<f64> {
    if n < 25 {
        return vec![1.0; n];
    }
    let n_ramp = n - 25;
    let start = 1.0 / n as f64;
    let mut weights: Vec<f64> = (0..n_ramp)
        .map(|i| {
            if n_ramp == 1 {
                start
            } else {
                start + (1.0 - start) * i as f64 / (n_ramp - 1) as f64
            }
        })
        .collect();
    weights.extend(std::iter::repeat_n(1.0, 25));
    weights
}

fn cumulative(values: &[f64]) -> Vec<f64> {
    let mut acc = 0.0;
    let mut cum: Vec<f64> = values
        .iter()
        .map(|v| {
            acc += v;
            acc
        })
        .collect();
    // Avoid rounding leaving a gap below 1 (as Optuna's `cum_probs[:, -1] = 1`).
    if let Some(last) = cum.last_mut() {
        *last = 1.0;
    }
    cum
}

/// The first index whose cumulative probability exceeds `u`.
fn pick(cum: &[f64], u: f64) -> usize {
    cum.iter().position(|&c| u < c).unwrap_or(cum.len() - 1)
}

impl Parzen {
    /// The estimator of `observations` (`[observation][dim]`, internal values, oldest first)
    /// over `dims`.
    #[cfg(test)]
    pub fn new(observations: &[Vec<f64>], dims: &[Dim], params: &ParzenParams) -> Parzen {
        Parzen::weighted(
            observations,
            &default_weights(observations.len()),
            dims,
            params,
        )
    }

    /// The estimator with the given weight per observation (the prior's is
    /// `params.prior_weight`); weights are normalised.
    pub fn weighted(
        observations: &[Vec<f64>],
        observation_weights: &[f64],
        dims: &[Dim],
        params: &ParzenParams,
    ) -> Parzen {
        debug_assert_eq!(observations.len(), observation_weights.len());
        let n = observations.len();
        let mut weights = if n == 0 {
            vec![1.0]
        } else {
            let mut w = observation_weights.to_vec();
            w.push(params.prior_weight);
            w
        };
        let total: f64 = weights.iter().sum();
        weights.iter_mut().for_each(|w| *w /= total);
        let log_weights = weights.iter().map(|w| w.ln()).collect();
        let kernels = dims
            .iter()
            .enumerate()
            .map(|(dim_idx, dim)| {
                let column: Vec<f64> = observations
                    .iter()
                    .map(|o| dim.transform(o[dim_idx]))
                    .collect();
                match *dim {
                    Dim::Categorical { n_choices } => categorical(&column, n_choices, params),
                    Dim::Numerical { .. } => numerical(&column, *dim, params),
                }
            })
            .collect();
        Parzen {
            cum_weights: cumulative(&weights),
            log_weights,
            dims: kernels,
        }
    }

    /// One draw in internal values (lattices rounded), as `_MixtureOfProductDistribution.sample`.
    pub fn sample(&self, rng: &mut Rng, out: &mut Vec<f64>) {
        out.clear();
        let component = pick(&self.cum_weights, rng.uniform01());
        for kernels in &self.dims {
            let value = match kernels {
                Kernels::Categorical { cum_probs, .. } => {
                    pick(&cum_probs[component], rng.uniform01()) as f64
                }
                Kernels::Numerical {
                    dim, mus, sigmas, ..
                } => {
                    let Dim::Numerical {
                        low,
                        high,
                        step,
                        log,
                        adapted_low,
                        adapted_high,
                    } = *dim
                    else {
                        unreachable!("numerical kernels have numerical dimensions")
                    };
                    let (mu, sigma) = (mus[component], sigmas[component]);
                    let z = truncnorm::ppf(
                        rng.uniform01(),
                        (adapted_low - mu) / sigma,
                        (adapted_high - mu) / sigma,
                    );
                    let mut x = (mu + sigma * z).clamp(adapted_low, adapted_high);
                    if log {
                        x = x.exp();
                    }
                    match step {
                        Some(step) => (low + ((x - low) / step).round() * step).clamp(low, high),
                        None => x.clamp(low, high),
                    }
                }
            };
            out.push(value);
        }
    }

    /// Log density (lattices: log mass) at an internal point.
    pub fn log_pdf(&self, x: &[f64], scratch: &mut Vec<f64>) -> f64 {
        scratch.clear();
        scratch.extend_from_slice(&self.log_weights);
        for (kernels, &xd) in self.dims.iter().zip(x) {
            match kernels {
                Kernels::Categorical { log_probs, .. } => {
                    let choice = xd as usize;
                    for (acc, row) in scratch.iter_mut().zip(log_probs) {
                        *acc += row[choice];
                    }
                }
                Kernels::Numerical {
                    dim,
                    mus,
                    sigmas,
                    log_norm,
                } => {
                    let Dim::Numerical { step, log, .. } = *dim else {
                        unreachable!("numerical kernels have numerical dimensions")
                    };
                    let components = scratch.iter_mut().zip(mus.iter().zip(sigmas)).zip(log_norm);
                    match step {
                        None => {
                            let t = if log { xd.ln() } else { xd };
                            for ((acc, (&mu, &sigma)), &norm) in components {
                                let z = (t - mu) / sigma;
                                *acc += norm - 0.5 * z * z;
                            }
                        }
                        Some(step) => {
                            let (mut left, mut right) = (xd - step / 2.0, xd + step / 2.0);
                            if log {
                                left = left.ln();
                                right = right.ln();
                            }
                            for ((acc, (&mu, &sigma)), &norm) in components {
                                *acc += truncnorm::log_gauss_mass(
                                    (left - mu) / sigma,
                                    (right - mu) / sigma,
                                ) - norm;
                            }
                        }
                    }
                }
            }
        }
        log_sum_exp(scratch)
    }
}

fn log_sum_exp(values: &[f64]) -> f64 {
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if max == f64::NEG_INFINITY {
        return max;
    }
    max + values.iter().map(|v| (v - max).exp()).sum::<f64>().ln()
}

fn categorical(observations: &[f64], n_choices: usize, params: &ParzenParams) -> Kernels {
    let probs = if observations.is_empty() {
        vec![vec![1.0 / n_choices as f64; n_choices]]
    } else {
        let n_kernels = observations.len() + 1;
        let fill = params.prior_weight / n_kernels as f64;
        let mut probs = vec![vec![fill; n_choices]; n_kernels];
        for (row, &choice) in probs.iter_mut().zip(observations) {
            row[choice as usize] += 1.0;
        }
        for row in &mut probs {
            let total: f64 = row.iter().sum();
            if total > 0.0 {
                row.iter_mut().for_each(|p| *p /= total);
            }
        }
        probs
    };
    Kernels::Categorical {
        log_probs: probs
            .iter()
            .map(|row| row.iter().map(|p| p.ln()).collect())
            .collect(),
        cum_probs: probs.iter().map(|row| cumulative(row)).collect(),
    }
}

/// Kernels of a numerical dimension from its observations in kernel space.
fn numerical(observations: &[f64], dim: Dim, params: &ParzenParams) -> Kernels {
    let Dim::Numerical {
        step,
        adapted_low: low,
        adapted_high: high,
        ..
    } = dim
    else {
        unreachable!("numerical dimensions only")
    };
    let n = observations.len();
    let range = high - low;
    let sigmas_before_clip = match params.bandwidth {
        Bandwidth::Neighbours => neighbour_gaps(observations, low, high, params),
        Bandwidth::Scott => vec![scott(observations, 0.5 * (low + high)); n],
    };
    let min_sigma = if params.consider_magic_clip {
        // Optuna's range / min(100, n + 2) when α = 1 and Δ = 0.01.
        range
            / f64::min(
                1.0 / params.min_bandwidth_factor,
                params
                    .magic_clip_exponent
                    .map_or(f64::INFINITY, |alpha| (n as f64 + 2.0).powf(alpha)),
            )
    } else {
        1e-12
    };
    let mut sigmas: Vec<f64> = sigmas_before_clip
        .into_iter()
        .map(|sigma| sigma.clamp(min_sigma, range))
        .collect();
    let mut mus = observations.to_vec();
    mus.push(0.5 * (low + high));
    sigmas.push(range);
    let log_norm = mus
        .iter()
        .zip(&sigmas)
        .map(|(&mu, &sigma)| {
            let log_mass = truncnorm::log_gauss_mass((low - mu) / sigma, (high - mu) / sigma);
            match step {
                None => -sigma.ln() - truncnorm::HALF_LN_2PI - log_mass,
                Some(_) => log_mass,
            }
        })
        .collect();
    Kernels::Numerical {
        dim,
        mus,
        sigmas,
        log_norm,
    }
}

/// Per observation, the larger gap to its sorted neighbours, the range's ends standing in at
/// the extremes (the extreme kernels use their inner gap unless `consider_endpoints`).
fn neighbour_gaps(observations: &[f64], low: f64, high: f64, params: &ParzenParams) -> Vec<f64> {
    let n = observations.len();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&i, &j| observations[i].total_cmp(&observations[j]));
    let mut sorted = Vec::with_capacity(n + 2);
    sorted.push(low);
    sorted.extend(order.iter().map(|&i| observations[i]));
    sorted.push(high);
    let mut sorted_sigmas: Vec<f64> = (1..=n)
        .map(|i| (sorted[i] - sorted[i - 1]).max(sorted[i + 1] - sorted[i]))
        .collect();
    if !params.consider_endpoints && sorted.len() >= 4 {
        sorted_sigmas[0] = sorted[2] - sorted[1];
        sorted_sigmas[n - 1] = sorted[n] - sorted[n - 1];
    }
    let mut sigmas = vec![0.0; n];
    for (rank, &idx) in order.iter().enumerate() {
        sigmas[idx] = sorted_sigmas[rank];
    }
    sigmas
}

/// Scott's rule over the observations and the prior's mean `prior_mu`:
/// 1.059 · min(IQR / 1.34, std) · m^(−1/5), m the number of points (numpy's linear
/// percentiles, sample std).
fn scott(observations: &[f64], prior_mu: f64) -> f64 {
    let mut points: Vec<f64> = observations.to_vec();
    points.push(prior_mu);
    let m = points.len() as f64;
    let mean = points.iter().sum::<f64>() / m;
    let ddof = if points.len() > 1 { 1.0 } else { 0.0 };
    let var = points.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (m - ddof);
    points.sort_by(f64::total_cmp);
    let percentile = |q: f64| {
        let pos = q * (m - 1.0);
        let (lo, frac) = (pos.floor() as usize, pos.fract());
        let hi = (lo + 1).min(points.len() - 1);
        points[lo] + (points[hi] - points[lo]) * frac
    };
    let iqr = percentile(0.75) - percentile(0.25);
    1.059 * f64::min(iqr / 1.34, var.sqrt()) * m.powf(-0.2)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPTUNA: ParzenParams = ParzenParams {
        prior_weight: 1.0,
        consider_magic_clip: true,
        consider_endpoints: false,
        magic_clip_exponent: Some(1.0),
        min_bandwidth_factor: 0.01,
        bandwidth: Bandwidth::Neighbours,
    };

    #[test]
    fn weights_ramp_up_from_25_observations_as_optunas_default_weights() {
        assert_eq!(default_weights(3), vec![1.0; 3]);
        let w = default_weights(30);
        assert_eq!(w.len(), 30);
        assert!((w[0] - 1.0 / 30.0).abs() < 1e-15);
        assert_eq!(w[4], 1.0);
        assert!(w[..5].windows(2).all(|p| p[0] < p[1]));
        assert!(w[5..].iter().all(|&x| x == 1.0));
    }

    /// The same estimator built by Optuna 5.0.0 (`_ParzenEstimator` with these observations,
    /// `log_pdf` at three points), printed by `scripts/optuna_parzen_reference.py`.
    #[test]
    fn log_densities_match_optuna_5() {
        let json = serde_json::json!({
            "c": {"type": "categorical", "choices": ["a", "b", "z"]},
            "k": {"type": "int", "low": 8, "high": 2048, "log": true},
            "l": {"type": "float", "low": 1e-4, "high": 1.0, "log": true},
            "n": {"type": "int", "low": 1, "high": 6},
            "s": {"type": "float", "low": 0.0, "high": 1.0, "step": 0.25},
            "x": {"type": "float", "low": -1.0, "high": 3.0},
        });
        let space = crate::SearchSpace::from_json(&json).unwrap();
        let dims: Vec<Dim> = space.iter().map(|(_, d)| Dim::of(d)).collect();
        // Columns in name order: c, k, l, n, s, x.
        let observations = vec![
            vec![2.0, 16.0, 1e-3, 2.0, 0.25, 0.1],
            vec![2.0, 512.0, 0.5, 5.0, 0.0, 0.15],
            vec![0.0, 8.0, 2e-2, 5.0, 1.0, 2.9],
            vec![1.0, 100.0, 1e-4, 1.0, 0.5, -0.8],
        ];
        let parzen = Parzen::new(&observations, &dims, &OPTUNA);
        let Kernels::Numerical { sigmas, .. } = &parzen.dims[5] else {
            panic!("x is numerical")
        };
        assert_eq!(sigmas, &[0.9, 2.75, 2.75, 0.9, 4.0]);
        let points = [
            [0.0, 64.0, 1e-2, 3.0, 0.5, 0.0],
            [2.0, 2048.0, 0.9, 6.0, 0.75, 2.5],
            [1.0, 9.0, 1e-4, 1.0, 0.0, -1.0],
        ];
        let optuna = [-14.24319204017181, -19.048609025530315, -10.119629183230167];
        let mut scratch = Vec::new();
        for (point, expected) in points.iter().zip(optuna) {
            let got = parzen.log_pdf(point, &mut scratch);
            assert!(
                (got - expected).abs() < 1e-9,
                "{point:?}: {got} vs Optuna {expected}"
            );
        }
    }

    #[test]
    fn the_bandwidth_floor_is_optunas_or_a_fixed_share_of_the_range() {
        let dims = [Dim::of(&Distribution::float(0.0, 10.0))];
        let close: Vec<Vec<f64>> = [1.0, 1.01, 1.02].iter().map(|&x| vec![x]).collect();
        let sigmas = |params: &ParzenParams| {
            let parzen = Parzen::new(&close, &dims, params);
            let Kernels::Numerical { sigmas, .. } = &parzen.dims[0] else {
                panic!("numerical")
            };
            sigmas.clone()
        };
        // Gaps of 0.01; Optuna clips them to range / min(100, n + 2) = 10 / 5.
        assert_eq!(sigmas(&OPTUNA), [2.0, 2.0, 2.0, 10.0]);
        // Watanabe's α = ∞, Δ = 0.03: at least 3% of the range, whatever n.
        let fixed = ParzenParams {
            magic_clip_exponent: None,
            min_bandwidth_factor: 0.03,
            ..OPTUNA
        };
        let got = sigmas(&fixed);
        assert!(got[..3].iter().all(|s| (s - 0.3).abs() < 1e-12), "{got:?}");
        assert_eq!(got[3], 10.0, "the prior keeps the whole range");
        // α = 2: 10 / min(1 / 0.03, 25) = 0.4.
        let alpha_2 = ParzenParams {
            magic_clip_exponent: Some(2.0),
            ..fixed
        };
        assert!(
            sigmas(&alpha_2)[..3]
                .iter()
                .all(|s| (s - 0.4).abs() < 1e-12)
        );
        // Scott's rule: one bandwidth for all kernels, from the spread of the points.
        let scott = ParzenParams {
            bandwidth: Bandwidth::Scott,
            ..fixed
        };
        let got = sigmas(&scott);
        assert!(
            got[0] > 0.3 && got[0] == got[1] && got[1] == got[2],
            "{got:?}"
        );
    }

    #[test]
    fn densities_integrate_to_one_and_samples_stay_in_range() {
        let dims = [Dim::of(&Distribution::float(-1.0, 3.0))];
        let observations: Vec<Vec<f64>> = [0.1, 0.15, 2.9, -0.8].iter().map(|&x| vec![x]).collect();
        let parzen = Parzen::new(&observations, &dims, &OPTUNA);
        let mut scratch = Vec::new();
        let n = 40_000;
        let h = 4.0 / n as f64;
        let integral: f64 = (0..n)
            .map(|i| {
                parzen
                    .log_pdf(&[-1.0 + (i as f64 + 0.5) * h], &mut scratch)
                    .exp()
                    * h
            })
            .sum();
        assert!((integral - 1.0).abs() < 1e-6, "{integral}");
        let mut rng = Rng::new(1);
        let mut x = Vec::new();
        for _ in 0..1000 {
            parzen.sample(&mut rng, &mut x);
            assert!((-1.0..=3.0).contains(&x[0]));
        }
        // Discrete kernels are probability mass functions over the lattice.
        let int = Distribution::Int {
            low: 1,
            high: 6,
            log: false,
            step: 1,
        };
        let parzen = Parzen::new(&[vec![2.0], vec![5.0]], &[Dim::of(&int)], &OPTUNA);
        let total: f64 = (1..=6)
            .map(|k| parzen.log_pdf(&[k as f64], &mut scratch).exp())
            .sum();
        assert!((total - 1.0).abs() < 1e-12, "{total}");
        let cat = Dim::Categorical { n_choices: 3 };
        let parzen = Parzen::new(&[vec![2.0], vec![2.0]], &[cat], &OPTUNA);
        let probs: Vec<f64> = (0..3)
            .map(|k| parzen.log_pdf(&[k as f64], &mut scratch).exp())
            .collect();
        assert!((probs.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        // Rows [1/6, 1/6, 2/3] twice and the uniform prior, weighted 1/3 each.
        assert!((probs[2] - 5.0 / 9.0).abs() < 1e-12, "{probs:?}");
    }
}
