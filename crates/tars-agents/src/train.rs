//! One entry point for every algorithm: `train(algo, env_id, overrides, seed, …)`.

use crate::policy::{Observer, TrainOutput};
use crate::{Algo, Error};
use serde_json::{Map, Value};

/// Trains `algo` on `env_id` with the RL Zoo's tuned hyperparameters (SB3's defaults where the
/// Zoo has none) overridden by `overrides` (SB3 names or the seeds' aliases). `n_timesteps`
/// replaces the Zoo's budget.
pub fn train(
    algo: Algo,
    env_id: &str,
    overrides: &Map<String, Value>,
    seed: u64,
    n_timesteps: Option<u64>,
    observer: &mut dyn Observer,
) -> Result<TrainOutput, Error> {
    let env_id = tars_envs::spec(env_id)?.id;
    match algo {
        Algo::Ppo => crate::ppo::train(env_id, overrides, seed, n_timesteps, observer),
        Algo::A2c => crate::a2c::train(env_id, overrides, seed, n_timesteps, observer),
        Algo::Dqn => crate::dqn::train(env_id, overrides, seed, n_timesteps, observer),
        Algo::Ddpg => crate::ddpg::train(env_id, overrides, seed, n_timesteps, observer),
    }
}
