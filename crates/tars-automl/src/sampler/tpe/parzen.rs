//! Optuna's `_ParzenEstimator`: a mixture with one product kernel per observation plus a prior
//! kernel, over the transformed space (log of log-scale parameters). Numerical dimensions use
//! truncated normals on `[low, high]` (discretised over `step` for lattices); categorical
//! dimensions put `1 + prior_weight / n_kernels` on the observed choice and
//! `prior_weight / n_kernels` on every choice, renormalised (the prior kernel is uniform).
//! Bandwidths follow `parzen_estimator.py`: neighbour gaps (univariate) or Scott-like
//! `0.2 · n^(-1/(d+4)) · range` (multivariate), clipped to `[range / min(100, n + 2), range]`.

use super::truncnorm;
use crate::Distribution;
use tars_envs::Rng;

/// Settings shared by every estimator of a sampler (Optuna's `_ParzenEstimatorParameters`).
#[derive(Debug, Clone, Copy)]
pub struct ParzenParams {
    pub prior_weight: f64,
    pub consider_magic_clip: bool,
    pub consider_endpoints: bool,
    pub multivariate: bool,
}

/// One dimension of the transformed space.
#[derive(Debug, Clone, Copy)]
pub enum Dim {
    /// `[low, high]` in transformed units; `step` for lattices (never with log).
    Numerical {
        low: f64,
        high: f64,
        step: Option<f64>,
        log: bool,
        /// Int distributions round samples to their lattice after untransforming.
        int_step: Option<(f64, f64, f64)>,
    },
    Categorical {
        n_choices: usize,
    },
}

impl Dim {
    /// The transformed dimension of a distribution (Optuna's log/step handling, including its
    /// log-int hack: a log int is continuous on `[ln(low − ½), ln(high + ½)]`).
    pub fn of(distribution: &Distribution) -> Dim {
        match *distribution {
            Distribution::Categorical { ref choices } => Dim::Categorical {
                n_choices: choices.len(),
            },
            Distribution::Float {
                low,
                high,
                log,
                step,
            } => Dim::Numerical {
                low: if log { low.ln() } else { low },
                high: if log { high.ln() } else { high },
                step: if log { None } else { step },
                log,
                int_step: None,
            },
            Distribution::Int {
                low,
                high,
                log,
                step,
            } => {
                let (low, high, step) = (low as f64, high as f64, step as f64);
                let int_step = Some((low, high, step));
                if log {
                    Dim::Numerical {
                        low: (low - step / 2.0).ln(),
                        high: (high + step / 2.0).ln(),
                        step: None,
                        log,
                        int_step,
                    }
                } else {
                    Dim::Numerical {
                        low,
                        high,
                        step: Some(step),
                        log,
                        int_step,
                    }
                }
            }
        }
    }

    /// Internal value → transformed value.
    pub fn transform(&self, internal: f64) -> f64 {
        match *self {
            Dim::Numerical { log: true, .. } => internal.ln(),
            _ => internal,
        }
    }

    /// Transformed sample → internal value (ints rounded to their lattice, as Optuna's
    /// `_untransform`).
    pub fn untransform(&self, transformed: f64) -> f64 {
        match *self {
            Dim::Categorical { .. } => transformed,
            Dim::Numerical { log, int_step, .. } => {
                let value = if log { transformed.exp() } else { transformed };
                match int_step {
                    Some((low, high, step)) => {
                        (low + ((value - low) / step).round() * step).clamp(low, high)
                    }
                    None => value,
                }
            }
        }
    }
}

/// Kernels of one dimension, one per mixture component.
#[derive(Debug, Clone)]
enum Kernels {
    TruncNorm {
        mus: Vec<f64>,
        sigmas: Vec<f64>,
        low: f64,
        high: f64,
        /// `−ln σ − ln√(2π) − ln(mass of [low, high])` per component.
        log_norm: Vec<f64>,
    },
    DiscreteTruncNorm {
        mus: Vec<f64>,
        sigmas: Vec<f64>,
        low: f64,
        high: f64,
        step: f64,
        /// ln(mass of [low − step/2, high + step/2]) per component.
        log_p_accept: Vec<f64>,
    },
    Categorical {
        /// `[component][choice]`.
        log_probs: Vec<Vec<f64>>,
        probs: Vec<Vec<f64>>,
    },
}

/// A mixture of product kernels.
#[derive(Debug, Clone)]
pub struct Parzen {
    weights: Vec<f64>,
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

impl Parzen {
    /// The estimator of `observations` (`[observation][dim]`, transformed values, oldest
    /// first) over `dims`.
    pub fn new(observations: &[Vec<f64>], dims: &[Dim], params: &ParzenParams) -> Parzen {
        let n = observations.len();
        let mut weights = if n == 0 {
            vec![1.0]
        } else {
            let mut w = default_weights(n);
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
                let column: Vec<f64> = observations.iter().map(|o| o[dim_idx]).collect();
                match *dim {
                    Dim::Categorical { n_choices } => categorical(&column, n_choices, params),
                    Dim::Numerical {
                        low, high, step, ..
                    } => numerical(&column, low, high, step, dims.len(), params),
                }
            })
            .collect();
        Parzen {
            weights,
            log_weights,
            dims: kernels,
        }
    }

    /// One draw (transformed values, lattices already rounded), as `_MixtureOfProductDistribution.sample`.
    pub fn sample(&self, rng: &mut Rng, out: &mut Vec<f64>) {
        out.clear();
        let u = rng.uniform01();
        let mut acc = 0.0;
        let mut component = self.weights.len() - 1;
        for (idx, w) in self.weights.iter().enumerate() {
            acc += w;
            if u < acc {
                component = idx;
                break;
            }
        }
        for kernels in &self.dims {
            let value = match kernels {
                Kernels::Categorical { probs, .. } => {
                    let row = &probs[component];
                    let u = rng.uniform01();
                    let mut acc = 0.0;
                    let mut choice = row.len() - 1;
                    for (idx, p) in row.iter().enumerate() {
                        acc += p;
                        if u < acc {
                            choice = idx;
                            break;
                        }
                    }
                    choice as f64
                }
                Kernels::TruncNorm {
                    mus,
                    sigmas,
                    low,
                    high,
                    ..
                } => {
                    let (mu, sigma) = (mus[component], sigmas[component]);
                    let z =
                        truncnorm::ppf(rng.uniform01(), (low - mu) / sigma, (high - mu) / sigma);
                    (mu + sigma * z).clamp(*low, *high)
                }
                Kernels::DiscreteTruncNorm {
                    mus,
                    sigmas,
                    low,
                    high,
                    step,
                    ..
                } => {
                    let (mu, sigma) = (mus[component], sigmas[component]);
                    let z = truncnorm::ppf(
                        rng.uniform01(),
                        (low - step / 2.0 - mu) / sigma,
                        (high + step / 2.0 - mu) / sigma,
                    );
                    let x = mu + sigma * z;
                    (low + ((x - low) / step).round() * step).clamp(*low, *high)
                }
            };
            out.push(value);
        }
    }

    /// Log density of a transformed point.
    pub fn log_pdf(&self, x: &[f64]) -> f64 {
        let mut per_component = self.log_weights.clone();
        for (kernels, &xd) in self.dims.iter().zip(x) {
            match kernels {
                Kernels::Categorical { log_probs, .. } => {
                    let choice = xd as usize;
                    for (acc, row) in per_component.iter_mut().zip(log_probs) {
                        *acc += row[choice];
                    }
                }
                Kernels::TruncNorm {
                    mus,
                    sigmas,
                    log_norm,
                    ..
                } => {
                    for ((acc, (&mu, &sigma)), &norm) in per_component
                        .iter_mut()
                        .zip(mus.iter().zip(sigmas))
                        .zip(log_norm)
                    {
                        let z = (xd - mu) / sigma;
                        *acc += norm - 0.5 * z * z;
                    }
                }
                Kernels::DiscreteTruncNorm {
                    mus,
                    sigmas,
                    low,
                    high,
                    step,
                    log_p_accept,
                } => {
                    let x_lower = (xd - step / 2.0).max(low - step / 2.0);
                    let x_upper = (xd + step / 2.0).min(high + step / 2.0);
                    for ((acc, (&mu, &sigma)), &accept) in per_component
                        .iter_mut()
                        .zip(mus.iter().zip(sigmas))
                        .zip(log_p_accept)
                    {
                        *acc += truncnorm::log_gauss_mass(
                            (x_lower - mu) / sigma,
                            (x_upper - mu) / sigma,
                        ) - accept;
                    }
                }
            }
        }
        log_sum_exp(&per_component)
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
    let n_kernels = observations.len() + 1;
    let fill = params.prior_weight / n_kernels as f64;
    let mut probs = vec![vec![fill; n_choices]; n_kernels];
    for (row, &choice) in probs.iter_mut().zip(observations) {
        row[choice as usize] += 1.0;
    }
    for row in &mut probs {
        let total: f64 = row.iter().sum();
        row.iter_mut().for_each(|p| *p /= total);
    }
    let log_probs = probs
        .iter()
        .map(|row| row.iter().map(|p| p.ln()).collect())
        .collect();
    Kernels::Categorical { log_probs, probs }
}

fn numerical(
    observations: &[f64],
    low: f64,
    high: f64,
    step: Option<f64>,
    n_dims: usize,
    params: &ParzenParams,
) -> Kernels {
    let n = observations.len();
    let step_or_0 = step.unwrap_or(0.0);
    let range = high - low + step_or_0;
    let prior_mu = 0.5 * (low + high);
    let mut sigmas: Vec<f64> = if params.multivariate {
        let sigma = 0.2 * (n.max(1) as f64).powf(-1.0 / (n_dims as f64 + 4.0)) * range;
        vec![sigma; n]
    } else {
        // Distance to the farther neighbour among the sorted observations, the prior's mean
        // and the (step-widened) endpoints.
        let mut with_prior: Vec<f64> = observations.to_vec();
        with_prior.push(prior_mu);
        let mut order: Vec<usize> = (0..with_prior.len()).collect();
        order.sort_by(|&i, &j| with_prior[i].total_cmp(&with_prior[j]));
        let mut sorted = Vec::with_capacity(order.len() + 2);
        sorted.push(low - step_or_0 / 2.0);
        sorted.extend(order.iter().map(|&i| with_prior[i]));
        sorted.push(high + step_or_0 / 2.0);
        let m = order.len();
        let mut sorted_sigmas: Vec<f64> = (1..=m)
            .map(|i| (sorted[i] - sorted[i - 1]).max(sorted[i + 1] - sorted[i]))
            .collect();
        if !params.consider_endpoints && sorted.len() >= 4 {
            sorted_sigmas[0] = sorted[2] - sorted[1];
            sorted_sigmas[m - 1] = sorted[m] - sorted[m - 1];
        }
        let mut sigmas = vec![0.0; m];
        for (rank, &idx) in order.iter().enumerate() {
            sigmas[idx] = sorted_sigmas[rank];
        }
        sigmas.truncate(n);
        sigmas
    };
    let max_sigma = range;
    let min_sigma = if params.consider_magic_clip {
        range / f64::min(100.0, 1.0 + n as f64 + 1.0)
    } else {
        1e-12
    };
    sigmas
        .iter_mut()
        .for_each(|s| *s = s.clamp(min_sigma, max_sigma));
    let mut mus = observations.to_vec();
    mus.push(prior_mu);
    sigmas.push(range);
    match step {
        None => {
            let log_norm = mus
                .iter()
                .zip(&sigmas)
                .map(|(&mu, &sigma)| {
                    -sigma.ln()
                        - truncnorm::HALF_LN_2PI
                        - truncnorm::log_gauss_mass((low - mu) / sigma, (high - mu) / sigma)
                })
                .collect();
            Kernels::TruncNorm {
                mus,
                sigmas,
                low,
                high,
                log_norm,
            }
        }
        Some(step) => {
            let log_p_accept = mus
                .iter()
                .zip(&sigmas)
                .map(|(&mu, &sigma)| {
                    truncnorm::log_gauss_mass(
                        (low - step / 2.0 - mu) / sigma,
                        (high + step / 2.0 - mu) / sigma,
                    )
                })
                .collect();
            Kernels::DiscreteTruncNorm {
                mus,
                sigmas,
                low,
                high,
                step,
                log_p_accept,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UNIVARIATE: ParzenParams = ParzenParams {
        prior_weight: 1.0,
        consider_magic_clip: true,
        consider_endpoints: false,
        multivariate: false,
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

    #[test]
    fn bandwidths_are_neighbour_gaps_clipped_as_in_optuna() {
        // Observations 0.2, 0.3 on [0, 1], prior mean 0.5: sorted with endpoints
        // [0, 0.2, 0.3, 0.5, 1]; gaps give σ = (0.2, 0.2, 0.5); without endpoints the first
        // becomes 0.3 − 0.2 = 0.1 and the last 0.5 − 0.3; clip to [1/4, 1]. Prior σ = 1.
        let dims = [Dim::of(&Distribution::float(0.0, 1.0))];
        let parzen = Parzen::new(&[vec![0.2], vec![0.3]], &dims, &UNIVARIATE);
        let Kernels::TruncNorm { mus, sigmas, .. } = &parzen.dims[0] else {
            panic!("a truncated normal")
        };
        assert_eq!(mus, &[0.2, 0.3, 0.5]);
        assert_eq!(sigmas, &[0.25, 0.25, 1.0]);
        assert_eq!(parzen.weights, vec![1.0 / 3.0; 3]);
    }

    #[test]
    fn densities_integrate_to_one_and_samples_stay_in_range() {
        let dims = [Dim::of(&Distribution::float(-1.0, 3.0))];
        let observations: Vec<Vec<f64>> = [0.1, 0.15, 2.9, -0.8].iter().map(|&x| vec![x]).collect();
        let parzen = Parzen::new(&observations, &dims, &UNIVARIATE);
        let n = 40_000;
        let h = 4.0 / n as f64;
        let integral: f64 = (0..n)
            .map(|i| parzen.log_pdf(&[-1.0 + (i as f64 + 0.5) * h]).exp() * h)
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
        let parzen = Parzen::new(&[vec![2.0], vec![5.0]], &[Dim::of(&int)], &UNIVARIATE);
        let total: f64 = (1..=6).map(|k| parzen.log_pdf(&[k as f64]).exp()).sum();
        assert!((total - 1.0).abs() < 1e-12, "{total}");
        let cat = Dim::Categorical { n_choices: 3 };
        let parzen = Parzen::new(&[vec![2.0], vec![2.0]], &[cat], &UNIVARIATE);
        let probs: Vec<f64> = (0..3).map(|k| parzen.log_pdf(&[k as f64]).exp()).collect();
        assert!((probs.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        // Rows [1/6, 1/6, 2/3] twice and the uniform prior, weighted 1/3 each.
        assert!((probs[2] - 5.0 / 9.0).abs() < 1e-12, "{probs:?}");
    }
}
