//! Exploration noise for deterministic policies, as SB3's `stable_baselines3/common/noise.py`:
//! `NormalActionNoise` (independent Gaussian draws) and `OrnsteinUhlenbeckActionNoise`
//! (temporally correlated, theta 0.15, dt 1e-2, restarting from zero at each episode), one
//! process per environment like `VectorizedActionNoise`.
//!
//! Noise is added to the policy's *scaled* action in [-1, 1], which is then clipped
//! (`OffPolicyAlgorithm._sample_action`), so `action_noise_std` is relative to half the
//! action range.

use serde::{Deserialize, Serialize};
use tars_envs::Rng;

/// Which noise process to add to actions (the RL Zoo's `noise_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum NoiseType {
    /// `NormalActionNoise(mean=0, sigma=action_noise_std)`.
    #[serde(rename = "normal")]
    Normal,
    /// `OrnsteinUhlenbeckActionNoise(mean=0, sigma=action_noise_std)`.
    #[serde(rename = "ornstein-uhlenbeck")]
    OrnsteinUhlenbeck,
}

/// SB3's `OrnsteinUhlenbeckActionNoise` defaults.
const OU_THETA: f64 = 0.15;
const OU_DT: f64 = 1e-2;

/// One noise process per environment, each `action_dim` wide.
#[derive(Debug, Clone)]
pub(crate) struct ActionNoise {
    noise_type: NoiseType,
    sigma: f64,
    action_dim: usize,
    /// The Ornstein-Uhlenbeck state (`noise_prev`), `[n_envs, action_dim]`, kept in f64 as
    /// numpy does.
    noise_prev: Vec<f64>,
}

impl ActionNoise {
    pub fn new(noise_type: NoiseType, sigma: f64, n_envs: usize, action_dim: usize) -> Self {
        ActionNoise {
            noise_type,
            sigma,
            action_dim,
            noise_prev: vec![0.0; n_envs * action_dim],
        }
    }

    /// Draws the next noise for every environment into `out` (`[n_envs, action_dim]`).
    pub fn sample(&mut self, rng: &mut Rng, out: &mut [f32]) {
        debug_assert_eq!(out.len(), self.noise_prev.len());
        match self.noise_type {
            NoiseType::Normal => out
                .iter_mut()
                .for_each(|o| *o = (self.sigma * rng.normal()) as f32),
            NoiseType::OrnsteinUhlenbeck => {
                for (o, prev) in out.iter_mut().zip(&mut self.noise_prev) {
                    // noise_prev + theta (mu - noise_prev) dt + sigma sqrt(dt) N(0, 1), mu = 0.
                    *prev +=
                        OU_THETA * (0.0 - *prev) * OU_DT + self.sigma * OU_DT.sqrt() * rng.normal();
                    *o = *prev as f32;
                }
            }
        }
    }

    /// Restarts environment `env_idx`'s process (called when its episode ends).
    pub fn reset(&mut self, env_idx: usize) {
        let dim = self.action_dim;
        self.noise_prev[env_idx * dim..(env_idx + 1) * dim].fill(0.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn moments(values: &[f32]) -> (f64, f64) {
        let n = values.len() as f64;
        let mean = values.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
        let var = values
            .iter()
            .map(|&v| (f64::from(v) - mean).powi(2))
            .sum::<f64>()
            / n;
        (mean, var.sqrt())
    }

    #[test]
    fn normal_noise_has_the_requested_std() {
        let mut noise = ActionNoise::new(NoiseType::Normal, 0.1, 2, 1);
        let mut rng = Rng::new(0);
        let mut draws = Vec::new();
        let mut out = [0.0; 2];
        for _ in 0..20_000 {
            noise.sample(&mut rng, &mut out);
            draws.extend_from_slice(&out);
        }
        let (mean, std) = moments(&draws);
        assert!(
            mean.abs() < 3e-3 && (std - 0.1).abs() < 3e-3,
            "{mean} {std}"
        );
    }

    #[test]
    fn ornstein_uhlenbeck_is_correlated_and_resets_to_zero() {
        let mut noise = ActionNoise::new(NoiseType::OrnsteinUhlenbeck, 0.5, 1, 1);
        let mut rng = Rng::new(1);
        let mut out = [0.0];
        let mut path = Vec::new();
        for _ in 0..50_000 {
            noise.sample(&mut rng, &mut out);
            path.push(out[0]);
        }
        // Stationary std: sigma sqrt(dt) / sqrt(1 - (1 - theta dt)²) ≈ 0.5 · 0.1 / 0.0548.
        let stationary = 0.5 * OU_DT.sqrt() / (1.0 - (1.0 - OU_THETA * OU_DT).powi(2)).sqrt();
        let (_, std) = moments(&path);
        assert!(
            (std - stationary).abs() < 0.25 * stationary,
            "{std} vs {stationary}"
        );
        let lag1: f64 = path.windows(2).map(|w| f64::from(w[0] * w[1])).sum::<f64>()
            / (path.len() as f64 * std * std);
        assert!(
            lag1 > 0.99,
            "consecutive draws are strongly correlated: {lag1}"
        );
        noise.reset(0);
        noise.sample(&mut rng, &mut out);
        assert!(
            out[0].abs() < 0.25,
            "after a reset the process restarts near 0"
        );
    }
}
