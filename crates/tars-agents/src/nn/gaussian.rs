//! The diagonal Gaussian action distribution with a state-independent `log_std`, for
//! continuous action spaces: SB3's `DiagGaussianDistribution`
//! (`stable_baselines3/common/distributions.py`), whose `log_std` is an `nn.Parameter`
//! initialised to `log_std_init = 0.0` and trained with the policy.
//!
//! The mean comes from the policy network. Log-probabilities and entropies are summed over
//! action dimensions (`sum_independent_dims`), one value per row.

use tars_envs::Rng;

use super::params::Params;

/// `ln(√(2π))`, the Gaussian's log normaliser per dimension.
const LOG_SQRT_2PI: f32 = 0.918_938_5;

/// A batch of diagonal Gaussians: means per row, one shared `log_std` vector.
#[derive(Debug, Clone, PartialEq)]
pub struct DiagGaussian {
    /// The log standard deviation per action dimension, with its gradient; step it with the
    /// policy's optimiser.
    pub log_std: Params,
}

impl DiagGaussian {
    /// `action_dim` dimensions with `log_std` initialised to `log_std_init` (SB3: 0.0).
    pub fn new(action_dim: usize, log_std_init: f32) -> DiagGaussian {
        DiagGaussian {
            log_std: Params::from_value(vec![log_std_init; action_dim]),
        }
    }

    pub fn action_dim(&self) -> usize {
        self.log_std.len()
    }

    /// Writes `log_prob[i] = Σ_d log N(actions[i, d]; mean[i, d], exp(log_std[d])²)`.
    pub fn log_prob(&self, mean: &[f32], actions: &[f32], log_prob: &mut [f32]) {
        let dim = self.action_dim();
        assert!(
            mean.len() == actions.len() && mean.len() == log_prob.len() * dim,
            "log_prob: shape mismatch"
        );
        let rows = mean.chunks_exact(dim).zip(actions.chunks_exact(dim));
        for ((mu, a), lp) in rows.zip(log_prob.iter_mut()) {
            *lp = (0..dim)
                .map(|d| {
                    let log_std = self.log_std.value[d];
                    let z = (a[d] - mu[d]) / log_std.exp();
                    -0.5 * z * z - log_std - LOG_SQRT_2PI
                })
                .sum();
        }
    }

    /// The entropy of every row's distribution, `Σ_d (½ + ln √(2π) + log_std[d])`; it does
    /// not depend on the mean.
    pub fn entropy(&self) -> f32 {
        self.log_std
            .value
            .iter()
            .map(|&log_std| 0.5 + LOG_SQRT_2PI + log_std)
            .sum()
    }

    /// Writes ∂loss/∂mean into `grad_mean` (overwritten) and *adds* ∂loss/∂log_std to
    /// `log_std.grad`, for a loss whose gradient is `d_log_prob[i]` with respect to row `i`'s
    /// log-probability of `actions[i]` and `d_entropy` with respect to every row's entropy.
    ///
    /// Uses `∂log p/∂μ = (a - μ)/σ²`, `∂log p/∂log σ = z² - 1` and `∂H/∂log σ = 1`.
    pub fn backward(
        &mut self,
        mean: &[f32],
        actions: &[f32],
        d_log_prob: &[f32],
        d_entropy: f32,
        grad_mean: &mut [f32],
    ) {
        let dim = self.action_dim();
        let batch = d_log_prob.len();
        assert!(
            mean.len() == batch * dim
                && actions.len() == mean.len()
                && grad_mean.len() == mean.len(),
            "backward: shape mismatch"
        );
        for (row_idx, &d_lp) in d_log_prob.iter().enumerate() {
            for d in 0..dim {
                let idx = row_idx * dim + d;
                let inv_std = (-self.log_std.value[d]).exp();
                let z = (actions[idx] - mean[idx]) * inv_std;
                grad_mean[idx] = d_lp * z * inv_std;
                self.log_std.grad[d] += d_lp * (z * z - 1.0);
            }
        }
        self.log_std
            .grad
            .iter_mut()
            .for_each(|g| *g += d_entropy * batch as f32);
    }

    /// Draws one action `mean + exp(log_std) · ε`, `ε ~ N(0, I)`, into `out`.
    pub fn sample(&self, mean: &[f32], rng: &mut Rng, out: &mut [f32]) {
        assert!(
            mean.len() == self.action_dim() && out.len() == mean.len(),
            "sample: shape mismatch"
        );
        for ((o, &mu), &log_std) in out.iter_mut().zip(mean).zip(&self.log_std.value) {
            *o = mu + log_std.exp() * rng.normal() as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::testutil::{assert_gradients_close, finite_differences, normals};

    #[test]
    fn log_prob_and_entropy_match_the_standard_normal() {
        let dist = DiagGaussian::new(2, 0.0);
        let mut log_prob = [0.0];
        dist.log_prob(&[0.0, 1.0], &[1.0, 1.0], &mut log_prob);
        let expected = -0.5 - 2.0 * (2.0 * std::f32::consts::PI).sqrt().ln();
        assert!((log_prob[0] - expected).abs() < 1e-6);
        // 2 · ½(1 + ln 2π) = 2.8379
        assert!((dist.entropy() - 2.837_877).abs() < 1e-5);
    }

    #[test]
    fn backward_matches_finite_differences_for_mean_and_log_std() {
        let mut rng = Rng::new(13);
        let (dim, batch) = (3, 5);
        let mut dist = DiagGaussian::new(dim, 0.0);
        dist.log_std.value = vec![-0.3, 0.2, 0.5];
        let mean = normals(batch * dim, &mut rng);
        let actions = normals(batch * dim, &mut rng);
        let d_log_prob = normals(batch, &mut rng);
        let d_entropy = 0.4;
        let loss = |dist: &DiagGaussian, mean: &[f32]| {
            let mut lp = vec![0.0; batch];
            dist.log_prob(mean, &actions, &mut lp);
            let weighted: f64 = lp
                .iter()
                .zip(&d_log_prob)
                .map(|(&l, &d)| f64::from(l) * f64::from(d))
                .sum();
            weighted + f64::from(d_entropy) * batch as f64 * f64::from(dist.entropy())
        };
        let mut grad_mean = vec![f32::NAN; mean.len()];
        dist.backward(&mean, &actions, &d_log_prob, d_entropy, &mut grad_mean);

        let mut shifted = mean.clone();
        let numeric = finite_differences(mean.len(), 1e-3, |i, delta| {
            shifted[i] = mean[i] + delta;
            let value = loss(&dist, &shifted);
            shifted[i] = mean[i];
            value
        });
        assert_gradients_close("mean", &grad_mean, &numeric, 1e-3);

        let mut probe = dist.clone();
        let numeric = finite_differences(dim, 1e-3, |d, delta| {
            probe.log_std.value[d] = dist.log_std.value[d] + delta;
            let value = loss(&probe, &mean);
            probe.log_std.value[d] = dist.log_std.value[d];
            value
        });
        assert_gradients_close("log_std", &dist.log_std.grad, &numeric, 1e-3);
    }

    #[test]
    fn samples_have_the_requested_mean_and_std() {
        let mut dist = DiagGaussian::new(1, 0.0);
        dist.log_std.value[0] = 0.5f32.ln();
        let mut rng = Rng::new(17);
        let draws: Vec<f32> = (0..50_000)
            .map(|_| {
                let mut out = [0.0];
                dist.sample(&[2.0], &mut rng, &mut out);
                out[0]
            })
            .collect();
        let mean = draws.iter().sum::<f32>() / draws.len() as f32;
        let std =
            (draws.iter().map(|x| (x - mean).powi(2)).sum::<f32>() / draws.len() as f32).sqrt();
        assert!(
            (mean - 2.0).abs() < 0.01 && (std - 0.5).abs() < 0.01,
            "{mean} {std}"
        );
    }
}
