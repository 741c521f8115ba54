//! Policy evaluation with Stable-Baselines3's `evaluate_policy` semantics: N full episodes,
//! deterministic actions by default, per-episode returns and lengths, mean and std (ddof 0).
//!
//! Episodes run on `min(N, 8)` environments stepped as one batch; as in SB3, environment `i`
//! contributes `(N + i) / n_envs` episodes, so the episode set is fixed by N and the seed.

use crate::policy::Policy;
use tars_envs::{Error, Rng, VecEnv};

/// Returns and lengths of evaluation episodes.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    pub episode_returns: Vec<f64>,
    pub episode_lengths: Vec<u32>,
}

impl Evaluation {
    pub fn mean_reward(&self) -> f64 {
        self.episode_returns.iter().sum::<f64>() / self.episode_returns.len() as f64
    }

    /// Population standard deviation (ddof 0), as `np.std` in SB3.
    pub fn std_reward(&self) -> f64 {
        let mean = self.mean_reward();
        let var = self
            .episode_returns
            .iter()
            .map(|r| (r - mean).powi(2))
            .sum::<f64>()
            / self.episode_returns.len() as f64;
        var.sqrt()
    }
}

/// Runs `n_episodes` (≥ 1) episodes of `policy` on its environment, seeded by `seed`.
pub fn evaluate(
    policy: &mut Policy,
    n_episodes: usize,
    seed: u64,
    deterministic: bool,
) -> Result<Evaluation, Error> {
    let n_envs = n_episodes.clamp(1, 8);
    let env_id = policy.env_id.clone();
    let mut vec_env = VecEnv::make(&env_id, n_envs, seed)?;
    let targets: Vec<usize> = (0..n_envs).map(|i| (n_episodes + i) / n_envs).collect();
    let mut counts = vec![0usize; n_envs];
    let mut per_env: Vec<Vec<(f64, u32)>> = vec![Vec::new(); n_envs];
    let mut rng = Rng::new(seed ^ 0xE7A1);
    while counts.iter().zip(&targets).any(|(c, t)| c < t) {
        let obs = vec_env.obs.clone();
        let actions = policy.act(&obs, deterministic, &mut rng);
        vec_env.step(actions);
        for env_idx in 0..n_envs {
            if vec_env.done(env_idx) && counts[env_idx] < targets[env_idx] {
                per_env[env_idx].push((
                    vec_env.episode_returns[env_idx],
                    vec_env.episode_lengths[env_idx],
                ));
                counts[env_idx] += 1;
            }
        }
    }
    let (episode_returns, episode_lengths) = per_env.into_iter().flatten().unzip();
    Ok(Evaluation {
        episode_returns,
        episode_lengths,
    })
}
