//! The categorical action distribution over logits, for discrete action spaces: SB3's
//! `CategoricalDistribution` (`stable_baselines3/common/distributions.py`), which wraps
//! `torch.distributions.Categorical(logits=...)`.
//!
//! Losses in PPO and A2C depend on the logits only through each row's `log_prob(action)` and
//! `entropy()`, so [`Categorical::backward`] takes ∂loss/∂log_prob per row and ∂loss/∂entropy
//! and returns ∂loss/∂logits, ready for the policy network's backward pass.

use tars_envs::Rng;

use super::q_values::argmax;

/// A batch of categorical distributions, one per row of `[batch, n_actions]` logits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Categorical {
    pub n_actions: usize,
}

impl Categorical {
    pub fn new(n_actions: usize) -> Categorical {
        assert!(
            n_actions > 0,
            "a categorical distribution needs at least one action"
        );
        Categorical { n_actions }
    }

    /// `log_softmax` of one row of logits, written to `out`.
    pub fn log_softmax(&self, logits: &[f32], out: &mut [f32]) {
        let log_normaliser = log_sum_exp(logits);
        out.iter_mut()
            .zip(logits)
            .for_each(|(o, &z)| *o = z - log_normaliser);
    }

    /// For each row `i`: `log_prob[i] = log p_i(actions[i])` and `entropy[i] = -Σ p log p`
    /// (`dist.log_prob(actions)`, `dist.entropy()`).
    pub fn log_prob_entropy(
        &self,
        logits: &[f32],
        actions: &[usize],
        log_prob: &mut [f32],
        entropy: &mut [f32],
    ) {
        let n = self.n_actions;
        assert!(
            logits.len() == actions.len() * n
                && log_prob.len() == actions.len()
                && entropy.len() == actions.len()
        );
        for (row_idx, row) in logits.chunks_exact(n).enumerate() {
            let log_normaliser = log_sum_exp(row);
            debug_assert!(actions[row_idx] < n);
            log_prob[row_idx] = row[actions[row_idx]] - log_normaliser;
            entropy[row_idx] = -row
                .iter()
                .map(|&z| (z - log_normaliser).exp() * (z - log_normaliser))
                .sum::<f32>();
        }
    }

    /// Writes ∂loss/∂logits into `grad_logits` (`[batch, n_actions]`, overwritten), for a
    /// loss whose gradient is `d_log_prob[i]` with respect to row `i`'s log-probability of
    /// `actions[i]` and `d_entropy` with respect to every row's entropy (e.g. `-ent_coef / batch`
    /// for SB3's `entropy_loss = -mean(entropy)` times `ent_coef`).
    ///
    /// Uses `∂log p(a)/∂z_j = 1[j = a] - p_j` and `∂H/∂z_j = -p_j (log p_j + H)`.
    pub fn backward(
        &self,
        logits: &[f32],
        actions: &[usize],
        d_log_prob: &[f32],
        d_entropy: f32,
        grad_logits: &mut [f32],
    ) {
        let n = self.n_actions;
        assert!(
            logits.len() == actions.len() * n
                && d_log_prob.len() == actions.len()
                && grad_logits.len() == logits.len()
        );
        for (row_idx, (row, grad)) in logits
            .chunks_exact(n)
            .zip(grad_logits.chunks_exact_mut(n))
            .enumerate()
        {
            // `grad` first holds log p, then the gradient.
            self.log_softmax(row, grad);
            let entropy = -grad.iter().map(|&l| l.exp() * l).sum::<f32>();
            let d_lp = d_log_prob[row_idx];
            for g in grad.iter_mut() {
                let log_p = *g;
                let p = log_p.exp();
                *g = -d_lp * p - d_entropy * p * (log_p + entropy);
            }
            grad[actions[row_idx]] += d_lp;
        }
    }

    /// Draws an action from one row of logits (inverse CDF on one uniform draw).
    pub fn sample(&self, logits: &[f32], rng: &mut Rng) -> usize {
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let weights_sum: f64 = logits.iter().map(|&z| f64::from((z - max).exp())).sum();
        let threshold = rng.uniform01() * weights_sum;
        let mut cumulative = 0.0;
        for (idx, &z) in logits.iter().enumerate() {
            cumulative += f64::from((z - max).exp());
            if threshold < cumulative {
                return idx;
            }
        }
        // Only reachable through rounding at the very top of the distribution.
        self.n_actions - 1
    }

    /// The most likely action of one row (`dist.mode()`; SB3's `deterministic=True`).
    pub fn mode(&self, logits: &[f32]) -> usize {
        argmax(logits)
    }
}

/// `ln Σ exp(z)`, shifted by the maximum so large logits do not overflow.
fn log_sum_exp(logits: &[f32]) -> f32 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum_exp: f32 = logits.iter().map(|&z| (z - max).exp()).sum();
    max + sum_exp.ln()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::testutil::{assert_gradients_close, finite_differences, normals};

    #[test]
    fn log_prob_and_entropy_have_the_closed_form_values() {
        let dist = Categorical::new(3);
        // Uniform logits: log p = -ln 3, entropy ln 3.
        let (mut log_prob, mut entropy) = ([0.0; 2], [0.0; 2]);
        dist.log_prob_entropy(
            &[5.0, 5.0, 5.0, 0.0, (2.0f32).ln(), 0.0],
            &[1, 1],
            &mut log_prob,
            &mut entropy,
        );
        assert!((log_prob[0] + 3f32.ln()).abs() < 1e-6 && (entropy[0] - 3f32.ln()).abs() < 1e-6);
        // p = (1/4, 1/2, 1/4).
        assert!((log_prob[1] - 0.5f32.ln()).abs() < 1e-6);
        assert!((entropy[1] - 1.5 * 2f32.ln()).abs() < 1e-6);
    }

    #[test]
    fn log_softmax_is_stable_for_huge_logits() {
        let mut out = [0.0; 2];
        Categorical::new(2).log_softmax(&[1000.0, 0.0], &mut out);
        assert_eq!(out[0], 0.0);
        assert_eq!(out[1], -1000.0);
    }

    #[test]
    fn backward_matches_finite_differences() {
        let mut rng = Rng::new(11);
        let (n_actions, batch) = (4, 6);
        let dist = Categorical::new(n_actions);
        let logits = normals(batch * n_actions, &mut rng);
        let actions: Vec<usize> = (0..batch)
            .map(|_| rng.below(n_actions as u64) as usize)
            .collect();
        let d_log_prob = normals(batch, &mut rng);
        let d_entropy = -0.7;
        let loss = |z: &[f32]| {
            let (mut lp, mut h) = (vec![0.0; batch], vec![0.0; batch]);
            dist.log_prob_entropy(z, &actions, &mut lp, &mut h);
            (0..batch)
                .map(|i| {
                    f64::from(d_log_prob[i]) * f64::from(lp[i])
                        + f64::from(d_entropy) * f64::from(h[i])
                })
                .sum::<f64>()
        };
        let mut grad = vec![f32::NAN; logits.len()];
        dist.backward(&logits, &actions, &d_log_prob, d_entropy, &mut grad);
        let mut shifted = logits.clone();
        let numeric = finite_differences(logits.len(), 1e-3, |i, delta| {
            shifted[i] = logits[i] + delta;
            let value = loss(&shifted);
            shifted[i] = logits[i];
            value
        });
        assert_gradients_close("logits", &grad, &numeric, 1e-3);
    }

    #[test]
    fn sample_follows_the_probabilities_and_mode_is_the_argmax() {
        let dist = Categorical::new(3);
        let logits = [0.0, (2.0f32).ln(), (7.0f32).ln()]; // p = (0.1, 0.2, 0.7)
        let mut rng = Rng::new(5);
        let mut counts = [0usize; 3];
        for _ in 0..100_000 {
            counts[dist.sample(&logits, &mut rng)] += 1;
        }
        for (count, p) in counts.iter().zip([0.1, 0.2, 0.7]) {
            assert!((*count as f64 / 100_000.0 - p).abs() < 0.005, "{counts:?}");
        }
        assert_eq!(dist.mode(&logits), 2);
    }
}
