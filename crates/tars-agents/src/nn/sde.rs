//! Generalized State-Dependent Exploration (gSDE; Raffin, Kober and Stulp 2021, "Smooth
//! Exploration for Robotic Reinforcement Learning", arXiv:2005.05719) for continuous action
//! spaces: SB3's `StateDependentNoiseDistribution` (`stable_baselines3/common/distributions.py`)
//! with the defaults its actor-critic policies use: `full_std=True`, `use_expln=False`,
//! `squash_output=False`, `learn_features=False`.
//!
//! Instead of fresh noise every step, the exploration is a linear function of the policy's
//! last hidden layer `z` (SB3's `latent_sde`, here the input of the mean layer): the action is
//! `μ(s) + z(s)·W` with `W ~ N(0, σ²)` element-wise, `σ = exp(log_std)` a trained
//! `[latent_dim, action_dim]` matrix. `W` is held fixed between resamplings (one per
//! environment, every `sde_sample_freq` steps), so exploration is smooth along a trajectory.
//!
//! Given `z`, the action is Gaussian with mean `μ` and per-dimension variance
//! `v[d] = Σ_k z[k]²·σ[k, d]² + ε`; log-probabilities and entropies are those of that diagonal
//! Gaussian, summed over action dimensions. As `learn_features=False` detaches `z` from the
//! variance, [`StateDependentNoise::backward`] gives gradients with respect to the mean and to
//! `log_std` only; the latent's gradient comes through the mean alone.

use tars_envs::Rng;

use super::activation::multiversion;
use super::params::Params;

/// `ln(√(2π))`, the Gaussian's log normaliser per dimension.
const LOG_SQRT_2PI: f32 = 0.918_938_5;

/// SB3's `epsilon`, added to the variance so its square root stays differentiable at 0.
const EPSILON: f32 = 1e-6;

/// The gSDE head: the trained `log_std` matrix and the current exploration matrices.
#[derive(Debug, Clone, PartialEq)]
pub struct StateDependentNoise {
    /// `log σ`, `[latent_dim, action_dim]` row-major (SB3's `log_std` parameter with
    /// `full_std=True`), with its gradient; step it with the policy's optimiser.
    pub log_std: Params,
    latent_dim: usize,
    action_dim: usize,
    /// `n_matrices` exploration matrices `W`, each `[latent_dim, action_dim]` row-major
    /// (SB3's `exploration_matrices`).
    exploration: Vec<f32>,
    /// Workspaces, transposed to `[action_dim, latent_dim]` so the inner loops run over
    /// contiguous features: `exp(log_std)²` (refreshed by every call that needs it) and the
    /// `log_std` gradient of one backward pass. Then one row's squared features
    /// (`[latent_dim]`) and variances (`[action_dim]`).
    sigma_sq_t: Vec<f32>,
    grad_t: Vec<f32>,
    features_sq: Vec<f32>,
    row_variance: Vec<f32>,
}

impl StateDependentNoise {
    /// A head for `latent_dim` features and `action_dim` actions with every `log_std` set to
    /// `log_std_init`, and no exploration matrix yet (call
    /// [`StateDependentNoise::sample_weights`] before [`StateDependentNoise::sample`]).
    pub fn new(latent_dim: usize, action_dim: usize, log_std_init: f32) -> StateDependentNoise {
        StateDependentNoise {
            log_std: Params::from_value(vec![log_std_init; latent_dim * action_dim]),
            latent_dim,
            action_dim,
            exploration: Vec::new(),
            sigma_sq_t: vec![0.0; latent_dim * action_dim],
            grad_t: vec![0.0; latent_dim * action_dim],
            features_sq: vec![0.0; latent_dim],
            row_variance: vec![0.0; action_dim],
        }
    }

    pub fn latent_dim(&self) -> usize {
        self.latent_dim
    }

    pub fn action_dim(&self) -> usize {
        self.action_dim
    }

    /// How many exploration matrices the last [`StateDependentNoise::sample_weights`] drew.
    pub fn n_matrices(&self) -> usize {
        self.exploration.len() / (self.latent_dim * self.action_dim)
    }

    /// SB3's `sample_weights(log_std, batch_size=n)` (`reset_noise(n)`): draws `n` exploration
    /// matrices, element `[k, d]` of each from `N(0, exp(log_std[k, d])²)`.
    pub fn sample_weights(&mut self, n: usize, rng: &mut Rng) {
        self.exploration.clear();
        for _ in 0..n {
            self.exploration.extend(
                self.log_std
                    .value
                    .iter()
                    .map(|&log_std| log_std.exp() * rng.normal() as f32),
            );
        }
    }

    /// Writes `log_prob[i]` (the Gaussian log-density of `actions[i]`, summed over dimensions)
    /// and `entropy[i]` for every row `i` of `mean` (`[batch, action_dim]`) and `latent`
    /// (`[batch, latent_dim]`).
    pub fn log_prob_entropy(
        &mut self,
        mean: &[f32],
        latent: &[f32],
        actions: &[f32],
        log_prob: &mut [f32],
        entropy: &mut [f32],
    ) {
        let (dim, batch) = (self.action_dim, log_prob.len());
        assert!(
            mean.len() == batch * dim
                && actions.len() == mean.len()
                && latent.len() == batch * self.latent_dim
                && entropy.len() == batch,
            "log_prob_entropy: shape mismatch"
        );
        self.refresh_sigma_sq();
        for (row_idx, features) in latent.chunks_exact(self.latent_dim).enumerate() {
            self.row_variances(features);
            let (mut lp, mut ent) = (0.0f32, 0.0f32);
            for (d, &variance) in self.row_variance.iter().enumerate() {
                let idx = row_idx * dim + d;
                let log_std = 0.5 * variance.ln();
                let z = (actions[idx] - mean[idx]) * (-log_std).exp();
                lp += -0.5 * z * z - log_std - LOG_SQRT_2PI;
                ent += 0.5 + LOG_SQRT_2PI + log_std;
            }
            log_prob[row_idx] = lp;
            entropy[row_idx] = ent;
        }
    }

    /// Writes ∂loss/∂mean into `grad_mean` (overwritten) and *adds* ∂loss/∂log_std to
    /// `log_std.grad`, for a loss whose gradient is `d_log_prob[i]` with respect to row `i`'s
    /// log-probability of `actions[i]` and `d_entropy` with respect to every row's entropy.
    ///
    /// With `s = √v` the row's standard deviation and `u = (a - μ)/s`: `∂log p/∂μ = u/s`,
    /// `∂log p/∂log s = u² - 1`, `∂H/∂log s = 1`, and
    /// `∂log s/∂log σ[k, d] = z[k]²·σ[k, d]² / v[d]`. The latent is a constant here
    /// (`learn_features=False`).
    pub fn backward(
        &mut self,
        mean: &[f32],
        latent: &[f32],
        actions: &[f32],
        d_log_prob: &[f32],
        d_entropy: f32,
        grad_mean: &mut [f32],
    ) {
        let (dim, latent_dim, batch) = (self.action_dim, self.latent_dim, d_log_prob.len());
        assert!(
            mean.len() == batch * dim
                && actions.len() == mean.len()
                && grad_mean.len() == mean.len()
                && latent.len() == batch * latent_dim,
            "backward: shape mismatch"
        );
        self.refresh_sigma_sq();
        self.grad_t.fill(0.0);
        let rows = d_log_prob.iter().zip(latent.chunks_exact(latent_dim));
        for (row_idx, (&d_lp, features)) in rows.enumerate() {
            self.row_variances(features);
            let per_action = self
                .grad_t
                .chunks_exact_mut(latent_dim)
                .zip(self.sigma_sq_t.chunks_exact(latent_dim));
            for (d, (grad_t, sigma_sq_t)) in per_action.enumerate() {
                let (idx, variance) = (row_idx * dim + d, self.row_variance[d]);
                let u = (actions[idx] - mean[idx]) / variance.sqrt();
                grad_mean[idx] = d_lp * u / variance.sqrt();
                // ∂loss/∂log s, divided by v for the chain rule through v.
                let d_log_s = (d_lp * (u * u - 1.0) + d_entropy) / variance;
                let terms = grad_t.iter_mut().zip(sigma_sq_t).zip(&self.features_sq);
                for ((grad, &sigma_sq), &feature_sq) in terms {
                    *grad += d_log_s * feature_sq * sigma_sq;
                }
            }
        }
        for (k, grad_row) in self.log_std.grad.chunks_exact_mut(dim).enumerate() {
            for (d, grad) in grad_row.iter_mut().enumerate() {
                *grad += self.grad_t[d * latent_dim + k];
            }
        }
    }

    /// Writes one action `mean + latent·W` into `out`, with `W` the exploration matrix
    /// `matrix_idx` (SB3 gives environment `i` matrix `i`).
    pub fn sample(&self, mean: &[f32], latent: &[f32], matrix_idx: usize, out: &mut [f32]) {
        let (dim, latent_dim) = (self.action_dim, self.latent_dim);
        assert!(
            mean.len() == dim && out.len() == dim && latent.len() == latent_dim,
            "sample: shape mismatch"
        );
        assert!(
            matrix_idx < self.n_matrices(),
            "sample: exploration matrix {matrix_idx} of {} (call sample_weights first)",
            self.n_matrices()
        );
        let matrix = &self.exploration[matrix_idx * latent_dim * dim..][..latent_dim * dim];
        for (d, (o, &mu)) in out.iter_mut().zip(mean).enumerate() {
            let noise: f32 = latent
                .iter()
                .enumerate()
                .map(|(k, &feature)| feature * matrix[k * dim + d])
                .sum();
            *o = mu + noise;
        }
    }

    fn refresh_sigma_sq(&mut self) {
        let (dim, latent_dim) = (self.action_dim, self.latent_dim);
        for (idx, &log_std) in self.log_std.value.iter().enumerate() {
            let (k, d) = (idx / dim, idx % dim);
            self.sigma_sq_t[d * latent_dim + k] = (2.0 * log_std).exp();
        }
    }

    /// One row's variances `v[d] = Σ_k features[k]²·σ²[k, d] + ε` into `row_variance`, and
    /// its squared features into `features_sq`.
    fn row_variances(&mut self, features: &[f32]) {
        for (feature_sq, &feature) in self.features_sq.iter_mut().zip(features) {
            *feature_sq = feature * feature;
        }
        let per_action = self.sigma_sq_t.chunks_exact(self.latent_dim);
        for (variance, sigma_sq_t) in self.row_variance.iter_mut().zip(per_action) {
            *variance = dot(&self.features_sq, sigma_sq_t) + EPSILON;
        }
    }
}

multiversion! {
    /// `Σ a[k]·b[k]` over 8 interleaved partial sums, so the loop vectorises.
    fn dot_into(a: &[f32], b: &[f32], total: &mut f32) {
        let mut lanes = [0.0f32; 8];
        let (a_chunks, b_chunks) = (a.chunks_exact(8), b.chunks_exact(8));
        let tail: f32 = a_chunks.remainder().iter().zip(b_chunks.remainder()).map(|(x, y)| x * y).sum();
        for (a8, b8) in a_chunks.zip(b_chunks) {
            for ((lane, &x), &y) in lanes.iter_mut().zip(a8).zip(b8) {
                *lane += x * y;
            }
        }
        *total = lanes.iter().sum::<f32>() + tail;
    }
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut total = 0.0;
    dot_into(a, b, &mut total);
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::testutil::{assert_gradients_close, finite_differences, normals};

    fn random_head(latent_dim: usize, action_dim: usize, rng: &mut Rng) -> StateDependentNoise {
        let mut head = StateDependentNoise::new(latent_dim, action_dim, -1.0);
        head.log_std.value = normals(latent_dim * action_dim, rng)
            .iter()
            .map(|v| -0.5 + 0.3 * v)
            .collect();
        head
    }

    #[test]
    fn log_prob_and_entropy_are_those_of_the_diagonal_gaussian_with_latent_variance() {
        // latent (3, 4), σ = (1, 0.5): variance 9 + 16/4 + ε = 13 + ε.
        let mut head = StateDependentNoise::new(2, 1, 0.0);
        head.log_std.value[1] = 0.5f32.ln();
        let (mut log_prob, mut entropy) = ([0.0], [0.0]);
        head.log_prob_entropy(&[1.0], &[3.0, 4.0], &[2.0], &mut log_prob, &mut entropy);
        let variance = 13.0f64 + 1e-6;
        let expected_lp =
            -0.5 / variance - 0.5 * variance.ln() - 0.5 * (2.0 * std::f64::consts::PI).ln();
        let expected_h = 0.5 + 0.5 * (2.0 * std::f64::consts::PI).ln() + 0.5 * variance.ln();
        assert!((f64::from(log_prob[0]) - expected_lp).abs() < 1e-5);
        assert!((f64::from(entropy[0]) - expected_h).abs() < 1e-5);
    }

    #[test]
    fn backward_matches_finite_differences_for_mean_and_log_std() {
        let mut rng = Rng::new(21);
        let (latent_dim, dim, batch) = (4, 3, 5);
        let mut head = random_head(latent_dim, dim, &mut rng);
        let mean = normals(batch * dim, &mut rng);
        let latent = normals(batch * latent_dim, &mut rng);
        let actions = normals(batch * dim, &mut rng);
        let d_log_prob = normals(batch, &mut rng);
        let d_entropy = -0.3;
        let loss = |head: &StateDependentNoise, mean: &[f32]| {
            let (mut lp, mut ent) = (vec![0.0; batch], vec![0.0; batch]);
            head.clone()
                .log_prob_entropy(mean, &latent, &actions, &mut lp, &mut ent);
            lp.iter()
                .zip(&ent)
                .zip(&d_log_prob)
                .map(|((&l, &h), &d)| f64::from(l) * f64::from(d) + f64::from(d_entropy * h))
                .sum::<f64>()
        };
        let mut grad_mean = vec![f32::NAN; mean.len()];
        head.backward(
            &mean,
            &latent,
            &actions,
            &d_log_prob,
            d_entropy,
            &mut grad_mean,
        );

        let mut shifted = mean.clone();
        let numeric = finite_differences(mean.len(), 1e-3, |i, delta| {
            shifted[i] = mean[i] + delta;
            let value = loss(&head, &shifted);
            shifted[i] = mean[i];
            value
        });
        assert_gradients_close("mean", &grad_mean, &numeric, 2e-3);

        let mut probe = head.clone();
        let numeric = finite_differences(head.log_std.len(), 1e-3, |i, delta| {
            probe.log_std.value[i] = head.log_std.value[i] + delta;
            let value = loss(&probe, &mean);
            probe.log_std.value[i] = head.log_std.value[i];
            value
        });
        assert_gradients_close("log_std", &head.log_std.grad, &numeric, 2e-3);
    }

    #[test]
    fn the_network_behind_the_head_gets_gradients_through_the_mean_only() {
        // An end-to-end check of `learn_features=False` with a real policy network: the
        // latent is the last hidden layer, the mean the output, and the finite-difference
        // loss holds the variance's latent fixed while the mean moves with the weights.
        use crate::nn::{Activation, Init, Mlp};
        let mut rng = Rng::new(22);
        let (obs_dim, batch) = (3, 6);
        let mut net = Mlp::new(
            obs_dim,
            &[5],
            2,
            Activation::Tanh,
            Init::ORTHO_VALUE,
            &mut rng,
        );
        let mut head = random_head(5, 2, &mut rng);
        let obs = normals(batch * obs_dim, &mut rng);
        let actions = normals(batch * 2, &mut rng);
        let d_log_prob = normals(batch, &mut rng);
        let mean = net.forward(&obs).to_vec();
        let latent = net.last_hidden().to_vec();
        let mut grad_mean = vec![0.0; mean.len()];
        head.backward(&mean, &latent, &actions, &d_log_prob, 0.7, &mut grad_mean);
        net.params.zero_grad();
        net.backward(&grad_mean);

        let mut probe = net.clone();
        let numeric = finite_differences(net.n_params(), 1e-3, |i, delta| {
            let original = probe.params.value[i];
            probe.params.value[i] = original + delta;
            let mean = probe.forward(&obs).to_vec();
            probe.params.value[i] = original;
            let (mut lp, mut ent) = (vec![0.0; batch], vec![0.0; batch]);
            head.clone()
                .log_prob_entropy(&mean, &latent, &actions, &mut lp, &mut ent);
            lp.iter()
                .zip(&ent)
                .zip(&d_log_prob)
                .map(|((&l, &h), &d)| f64::from(l) * f64::from(d) + 0.7 * f64::from(h))
                .sum()
        });
        assert_gradients_close("net", &net.params.grad, &numeric, 2e-3);
    }

    #[test]
    fn samples_are_linear_in_the_latent_with_per_matrix_noise_of_the_right_scale() {
        let mut head = StateDependentNoise::new(2, 1, 0.0);
        head.log_std.value = vec![0.5f32.ln(), 2.0f32.ln()];
        let mut rng = Rng::new(23);
        head.sample_weights(2, &mut rng);
        assert_eq!(head.n_matrices(), 2);
        // Same matrix: the noise is linear in the latent, so it doubles with it.
        let (mut once, mut twice, mut other) = ([0.0], [0.0], [0.0]);
        head.sample(&[1.0], &[0.3, -0.2], 0, &mut once);
        head.sample(&[1.0], &[0.6, -0.4], 0, &mut twice);
        head.sample(&[1.0], &[0.3, -0.2], 1, &mut other);
        assert!((twice[0] - 1.0 - 2.0 * (once[0] - 1.0)).abs() < 1e-6);
        assert_ne!(once, other, "each environment has its own matrix");
        // Over many matrices, the action's std is √(Σ latent²σ²) = √(0.3²·0.25 + 0.2²·4).
        let n = 40_000;
        head.sample_weights(n, &mut rng);
        let draws: Vec<f32> = (0..n)
            .map(|idx| {
                let mut out = [0.0];
                head.sample(&[2.0], &[0.3, -0.2], idx, &mut out);
                out[0]
            })
            .collect();
        let mean = draws.iter().sum::<f32>() / n as f32;
        let std = (draws.iter().map(|x| (x - mean).powi(2)).sum::<f32>() / n as f32).sqrt();
        let expected = (0.09f32 * 0.25 + 0.04 * 4.0).sqrt();
        assert!(
            (mean - 2.0).abs() < 0.01 && (std - expected).abs() < 0.01,
            "{mean} {std} vs {expected}"
        );
    }
}
