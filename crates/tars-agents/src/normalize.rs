//! SB3's `VecNormalize` (`stable_baselines3/common/vec_env/vec_normalize.py`) for the
//! on-policy algorithms: running observation statistics ([`ObsNormalizer`]) and reward scaling
//! by the running standard deviation of the discounted return.
//!
//! Only the training side lives here. At evaluation the observation statistics are frozen
//! inside the trained [`crate::Policy`] and rewards are left alone, as the RL Zoo evaluates
//! with `training=False, norm_reward=False`.

use crate::ObsNormalizer;

/// SB3's default `clip_reward`.
const CLIP_REWARD: f64 = 10.0;
/// SB3's default `epsilon`, added to variances before the square root.
const EPSILON: f64 = 1e-8;

/// `VecNormalize(norm_obs=True, norm_reward=True, clip_obs=10, clip_reward=10, gamma)` in
/// training mode, over `n_envs` environments.
#[derive(Debug, Clone)]
pub(crate) struct VecNormalize {
    pub obs_norm: ObsNormalizer,
    /// `ret_rms`: a scalar `RunningMeanStd` over the discounted returns.
    return_mean: f64,
    return_var: f64,
    return_count: f64,
    /// The discounted return of each environment's current episode.
    returns: Vec<f64>,
    gamma: f64,
}

impl VecNormalize {
    pub fn new(obs_dim: usize, n_envs: usize, gamma: f64) -> VecNormalize {
        VecNormalize {
            obs_norm: ObsNormalizer::new(obs_dim),
            return_mean: 0.0,
            return_var: 1.0,
            return_count: 1e-4,
            returns: vec![0.0; n_envs],
            gamma,
        }
    }

    /// `VecNormalize.reset`: updates the observation statistics with the first observations
    /// and writes them normalised to `out`.
    pub fn reset(&mut self, obs: &[f32], out: &mut [f32]) {
        self.returns.fill(0.0);
        self.obs_norm.update(obs);
        self.obs_norm.normalize(obs, out);
    }

    /// `VecNormalize.step_wait`: updates both statistics with the step's observations and
    /// rewards, then writes the normalised observations, rewards and (for finished episodes)
    /// final observations. `dones[i]` says whether environment `i`'s episode ended.
    pub fn step(&mut self, step: StepView<'_>, out: StepOut<'_>) {
        let obs_dim = self.obs_norm.mean.len();
        self.obs_norm.update(step.obs);
        self.obs_norm.normalize(step.obs, out.obs);
        // `_update_reward`: the discounted return, then `ret_rms.update` over the batch.
        for (ret, &reward) in self.returns.iter_mut().zip(step.rewards) {
            *ret = *ret * self.gamma + reward;
        }
        self.update_return_stats();
        let scale = (self.return_var + EPSILON).sqrt();
        for (out, &reward) in out.rewards.iter_mut().zip(step.rewards) {
            *out = (reward / scale).clamp(-CLIP_REWARD, CLIP_REWARD) as f32;
        }
        for (env_idx, &done) in step.dones.iter().enumerate() {
            if done {
                let range = env_idx * obs_dim..(env_idx + 1) * obs_dim;
                self.obs_norm
                    .normalize(&step.final_obs[range.clone()], &mut out.final_obs[range]);
                self.returns[env_idx] = 0.0;
            }
        }
    }

    /// `RunningMeanStd.update` with the batch of current returns (population variance).
    fn update_return_stats(&mut self) {
        let n = self.returns.len() as f64;
        let batch_mean = self.returns.iter().sum::<f64>() / n;
        let batch_var = self
            .returns
            .iter()
            .map(|r| (r - batch_mean).powi(2))
            .sum::<f64>()
            / n;
        let delta = batch_mean - self.return_mean;
        let total = self.return_count + n;
        let m2 = self.return_var * self.return_count
            + batch_var * n
            + delta * delta * self.return_count * n / total;
        self.return_mean += delta * n / total;
        self.return_var = m2 / total;
        self.return_count = total;
    }
}

/// The raw results of one vectorised step that [`VecNormalize::step`] reads.
pub(crate) struct StepView<'a> {
    pub obs: &'a [f32],
    pub final_obs: &'a [f32],
    pub rewards: &'a [f64],
    pub dones: &'a [bool],
}

/// Where [`VecNormalize::step`] writes.
pub(crate) struct StepOut<'a> {
    pub obs: &'a mut [f32],
    pub final_obs: &'a mut [f32],
    pub rewards: &'a mut [f32],
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewards_are_scaled_by_the_discounted_return_std_and_reset_on_done() {
        let mut norm = VecNormalize::new(1, 2, 0.5);
        let mut obs = [0.0; 2];
        norm.reset(&[1.0, 3.0], &mut obs);
        // Mean 2, variance 1 after one batch (the 1e-4 prior count barely matters).
        assert!(
            (obs[0] + 1.0).abs() < 1e-3 && (obs[1] - 1.0).abs() < 1e-3,
            "{obs:?}"
        );
        let (mut final_obs, mut rewards) = ([0.0; 2], [0.0; 2]);
        for dones in [[false, false], [true, false]] {
            norm.step(
                StepView {
                    obs: &[1.0, 3.0],
                    final_obs: &[2.0, 2.0],
                    rewards: &[1.0, 3.0],
                    dones: &dones,
                },
                StepOut {
                    obs: &mut obs,
                    final_obs: &mut final_obs,
                    rewards: &mut rewards,
                },
            );
        }
        // Returns were (1, 3), then (1.5, 4.5): the running variance is a mix of both batches.
        let var = norm.return_var;
        assert!(var > 1.0 && var < 2.0, "{var}");
        let expected = 3.0 / (var + EPSILON).sqrt();
        assert!((f64::from(rewards[1]) - expected).abs() < 1e-5);
        assert_eq!(norm.returns, vec![0.0, 4.5]);
        assert!(
            final_obs[0].abs() < 1e-3,
            "the mean observation normalises to 0"
        );
        assert_eq!(final_obs[1], 0.0, "untouched where the episode goes on");
    }
}
