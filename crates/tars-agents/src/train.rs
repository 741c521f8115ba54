//! One entry point for every algorithm: `train(algo, env_id, overrides, seed, …)`,
//! [`train_with_evaluations`], which adds SB3's `EvalCallback`, and [`plan`], which checks a
//! configuration and states its budget without training.

use crate::budget::{Cost, clamp, mlp_params, network_bytes, replay_bytes, rollout_bytes};
use crate::eval_callback::{BestPolicy, EvalCallback, EvalConfig, PeriodicEval};
use crate::hyperparams::{NetArch, resolve_with_budget};
use crate::policy::{Observer, TrainOutput};
use crate::{Algo, Error};
use serde_json::{Map, Value};
use tars_envs::Space;

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
        Algo::Td3 => crate::td3::train(env_id, overrides, seed, n_timesteps, observer),
    }
}

/// A training run with its evaluations during training.
#[derive(Debug, Clone)]
pub struct EvaluatedRun {
    pub output: TrainOutput,
    /// Every periodic evaluation, in order (none without an [`EvalConfig`]).
    pub evaluations: Vec<PeriodicEval>,
    /// The best evaluated policy, if any evaluation was due.
    pub best: Option<BestPolicy>,
}

/// [`train`] that, given `eval`, also evaluates the policy every `eval.eval_freq` steps and
/// keeps the best one ([`EvalCallback`] around `observer`); without `eval`, plain [`train`].
pub fn train_with_evaluations(
    algo: Algo,
    env_id: &str,
    overrides: &Map<String, Value>,
    seed: u64,
    n_timesteps: Option<u64>,
    observer: &mut dyn Observer,
    eval: Option<EvalConfig>,
) -> Result<EvaluatedRun, Error> {
    let Some(config) = eval else {
        let output = train(algo, env_id, overrides, seed, n_timesteps, observer)?;
        return Ok(EvaluatedRun {
            output,
            evaluations: Vec::new(),
            best: None,
        });
    };
    let mut callback = EvalCallback::new(observer, config);
    let output = train(algo, env_id, overrides, seed, n_timesteps, &mut callback)?;
    Ok(EvaluatedRun {
        output,
        evaluations: callback.evaluations().to_vec(),
        best: callback.into_best(),
    })
}

/// A configuration that [`train`] would accept, resolved but not trained.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Environment steps the run would take.
    pub total_timesteps: u64,
    /// Every hyperparameter with its SB3 name, tuned defaults and overrides merged.
    pub hyperparams: Value,
    /// The run's memory and environment steps, estimated before anything is allocated.
    pub cost: Cost,
}

/// Resolves and validates what [`train`] would run, with the same errors, in microseconds:
/// callers check a whole request (and its [`Cost`] against a budget) before spending minutes
/// on its first environment.
pub fn plan(
    algo: Algo,
    env_id: &str,
    overrides: &Map<String, Value>,
    n_timesteps: Option<u64>,
) -> Result<Plan, Error> {
    let spec = tars_envs::spec(env_id)?;
    let id = spec.id;
    let obs = spec.observation_space.dim();
    // Discrete actions: one logit or Q-value per action, stored as one index.
    let (act_out, act_stored) = match spec.action_space {
        Space::Discrete { n } => (n, 1),
        Space::Box { .. } => (spec.action_space.dim(), spec.action_space.dim()),
    };
    let (total_timesteps, hyperparams, memory) = match algo {
        Algo::Dqn => {
            let hp: crate::dqn::DqnHyperparams =
                resolve_with_budget(algo, id, overrides, n_timesteps)?;
            let json = serde_json::to_value(&hp).expect("hyperparameters serialize");
            let valid = hp.validate(spec)?;
            let hp = &valid.hyperparams;
            let transitions = transitions(hp.buffer_size, valid.total_timesteps, hp.n_envs);
            // Q-network, target, gradient and Adam's two moments; online and target forward
            // passes of a minibatch; the buffer and its per-slot index.
            let widths = (obs + hp.net_arch.iter().sum::<usize>() + act_out) as u128;
            let memory = network_bytes(
                mlp_params(obs, &hp.net_arch, act_out),
                5,
                2 * hp.batch_size,
                widths,
            ) + replay_bytes(transitions, obs, 1)
                + 4 * hp.buffer_size as u128;
            (valid.total_timesteps, json, memory)
        }
        Algo::A2c => {
            let hp: crate::a2c::A2cHyperparams =
                resolve_with_budget(algo, id, overrides, n_timesteps)?;
            let json = serde_json::to_value(&hp).expect("hyperparameters serialize");
            let (arch, rows) = (hp.net_arch.clone(), hp.n_steps.saturating_mul(hp.n_envs));
            let total = hp.validate(spec)?.total_timesteps;
            // A2C's update runs the whole rollout through both networks.
            (
                total,
                json,
                actor_critic_bytes(obs, act_out, &arch, rows)
                    + rollout_bytes(rows as u128, obs, act_stored),
            )
        }
        Algo::Ppo => {
            let hp: crate::ppo::PpoHyperparams =
                resolve_with_budget(algo, id, overrides, n_timesteps)?;
            let json = serde_json::to_value(&hp).expect("hyperparameters serialize");
            let (arch, rows) = (hp.net_arch.clone(), hp.n_steps.saturating_mul(hp.n_envs));
            // Values of the whole rollout are computed once; minibatches train.
            let batch = hp.batch_size.max(hp.n_envs);
            let total = hp.validate(spec)?.total_timesteps;
            (
                total,
                json,
                actor_critic_bytes(obs, act_out, &arch, batch)
                    + rollout_bytes(rows as u128, obs, act_stored),
            )
        }
        Algo::Ddpg => {
            let hp: crate::ddpg::DdpgHyperparams =
                resolve_with_budget(algo, id, overrides, n_timesteps)?;
            let json = serde_json::to_value(&hp).expect("hyperparameters serialize");
            let valid = hp.validate(spec)?;
            let memory = off_policy_actor_critic_bytes(&valid, act_stored, 1);
            (valid.total_timesteps, json, memory)
        }
        Algo::Td3 => {
            let hp: crate::td3::Td3Hyperparams =
                resolve_with_budget(algo, id, overrides, n_timesteps)?;
            let json = serde_json::to_value(&hp).expect("hyperparameters serialize");
            let (valid, _) = hp.validate(spec)?;
            let memory = off_policy_actor_critic_bytes(&valid, act_stored, 2);
            (valid.total_timesteps, json, memory)
        }
    };
    Ok(Plan {
        total_timesteps,
        hyperparams,
        cost: Cost {
            memory_bytes: clamp(memory),
            env_steps: total_timesteps,
        },
    })
}

/// Transitions a replay buffer will really hold: its capacity, or all the run's steps.
fn transitions(buffer_size: usize, total_timesteps: u64, n_envs: usize) -> u128 {
    (buffer_size as u128).min(total_timesteps as u128 + n_envs as u128)
}

/// PPO's and A2C's policy and value networks: weights, gradients and Adam's (or RMSprop's,
/// counted as Adam's) moments, and `batch` rows through both.
fn actor_critic_bytes(obs: usize, act_out: usize, arch: &NetArch, batch: usize) -> u128 {
    let params = mlp_params(obs, &arch.pi, act_out) + mlp_params(obs, &arch.vf, 1);
    let widths =
        (2 * obs + arch.pi.iter().sum::<usize>() + arch.vf.iter().sum::<usize>() + act_out + 1)
            as u128;
    network_bytes(params, 4, batch, widths)
}

/// DDPG's and TD3's actor and `critics` Q-networks with their targets, gradients and Adam's
/// moments, a minibatch through all of them, and the replay buffer.
fn off_policy_actor_critic_bytes(
    valid: &crate::ddpg::ValidDdpg,
    act: usize,
    critics: u128,
) -> u128 {
    let (hp, obs) = (&valid.hyperparams, valid.obs_dim);
    let arch = &hp.net_arch;
    let params = mlp_params(obs, &arch.pi, act) + critics * mlp_params(obs + act, &arch.vf, 1);
    let widths = (obs + arch.pi.iter().sum::<usize>() + act) as u128
        + critics * (obs + act + arch.vf.iter().sum::<usize>() + 1) as u128;
    let transitions = transitions(hp.buffer_size, valid.total_timesteps, hp.n_envs);
    network_bytes(params, 5, 2 * hp.batch_size, widths) + replay_bytes(transitions, obs, act)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn plan_estimates_the_memory_and_steps_of_a_run() {
        let none = Map::new();
        let zoo = plan(Algo::Dqn, "CartPole-v1", &none, None).unwrap();
        assert_eq!(zoo.cost.env_steps, 50_000);
        // Zoo DQN on CartPole: a 100,000-transition buffer (50,000 + 1 used) of 4+4+1+2 floats,
        // its index, and 4 → 256 → 256 → 2 networks: a few MB, not GB.
        assert!(
            (2_000_000..20_000_000).contains(&zoo.cost.memory_bytes),
            "{}",
            zoo.cost.memory_bytes
        );
        let mut huge = Map::new();
        huge.insert("buffer_size".into(), json!(1_000_000_000_000u64));
        huge.insert("n_timesteps".into(), json!(1e12));
        let cost = plan(Algo::Dqn, "CartPole-v1", &huge, None).unwrap().cost;
        assert!(cost.memory_bytes > 4_000_000_000_000, "{cost:?}");
        assert_eq!(cost.env_steps, 1_000_000_000_000);

        let mut deep = Map::new();
        deep.insert("net_arch".into(), json!(vec![4096; 64]));
        let cost = plan(Algo::Ppo, "CartPole-v1", &deep, None).unwrap().cost;
        // 63 hidden 4096×4096 layers in each of two networks, four copies of each weight.
        assert!(cost.memory_bytes > 2 * 63 * 4096 * 4096 * 4 * 4, "{cost:?}");
    }

    #[test]
    fn every_zoo_default_fits_the_default_job_budget() {
        let budget = crate::Budget::DEFAULT;
        let none = Map::new();
        for algo in [Algo::Dqn, Algo::A2c, Algo::Ppo, Algo::Ddpg, Algo::Td3] {
            for env in tars_envs::specs().map(|spec| spec.id) {
                let Ok(plan) = plan(algo, env, &none, None) else {
                    continue; // an action space the algorithm cannot use
                };
                budget.check(env, plan.cost).unwrap();
                assert!(
                    plan.cost.memory_bytes < 1 << 30,
                    "{algo:?} {env}: {:?}",
                    plan.cost
                );
            }
        }
    }

    #[test]
    fn plan_states_the_budget_and_rejects_what_train_rejects() {
        let none = Map::new();
        let zoo = plan(Algo::Dqn, "CartPole-v1", &none, None).unwrap();
        assert_eq!(zoo.total_timesteps, 50_000, "RL Zoo budget");
        assert_eq!(zoo.hyperparams["learning_rate"], json!(2.3e-3));
        let short = plan(Algo::Ppo, "CartPole-v1", &none, Some(2048)).unwrap();
        assert_eq!(short.total_timesteps, 2048);

        let mut bad = Map::new();
        bad.insert("gamma".into(), json!(1.5));
        let err = plan(Algo::Dqn, "CartPole-v1", &bad, None).unwrap_err();
        assert!(err.to_string().contains("gamma"), "{err}");
        let err = plan(Algo::Ddpg, "CartPole-v1", &none, None).unwrap_err();
        assert!(
            err.to_string().contains("DDPG cannot train on CartPole-v1"),
            "{err}"
        );
    }
}
