//! One entry point for every algorithm: `train(algo, env_id, overrides, seed, …)`,
//! [`train_with_evaluations`], which adds SB3's `EvalCallback`, and [`plan`], which checks a
//! configuration and states its budget without training.

use crate::eval_callback::{BestPolicy, EvalCallback, EvalConfig, PeriodicEval};
use crate::hyperparams::resolve_with_budget;
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
}

/// Resolves and validates what [`train`] would run, with the same errors, in microseconds:
/// callers check a whole request before spending minutes on its first environment.
pub fn plan(
    algo: Algo,
    env_id: &str,
    overrides: &Map<String, Value>,
    n_timesteps: Option<u64>,
) -> Result<Plan, Error> {
    let spec = tars_envs::spec(env_id)?;
    let id = spec.id;
    let (total_timesteps, hyperparams) = match algo {
        Algo::Dqn => {
            let hp: crate::dqn::DqnHyperparams =
                resolve_with_budget(algo, id, overrides, n_timesteps)?;
            let json = serde_json::to_value(&hp).expect("hyperparameters serialize");
            (hp.validate(spec)?.total_timesteps, json)
        }
        Algo::A2c => {
            let hp: crate::a2c::A2cHyperparams =
                resolve_with_budget(algo, id, overrides, n_timesteps)?;
            let json = serde_json::to_value(&hp).expect("hyperparameters serialize");
            (hp.validate(spec)?.total_timesteps, json)
        }
        Algo::Ppo => {
            let hp: crate::ppo::PpoHyperparams =
                resolve_with_budget(algo, id, overrides, n_timesteps)?;
            let json = serde_json::to_value(&hp).expect("hyperparameters serialize");
            (hp.validate(spec)?.total_timesteps, json)
        }
        Algo::Ddpg => {
            let hp: crate::ddpg::DdpgHyperparams =
                resolve_with_budget(algo, id, overrides, n_timesteps)?;
            let json = serde_json::to_value(&hp).expect("hyperparameters serialize");
            (hp.validate(spec)?.total_timesteps, json)
        }
        Algo::Td3 => {
            let hp: crate::td3::Td3Hyperparams =
                resolve_with_budget(algo, id, overrides, n_timesteps)?;
            let json = serde_json::to_value(&hp).expect("hyperparameters serialize");
            (hp.validate(spec)?.0.total_timesteps, json)
        }
    };
    Ok(Plan {
        total_timesteps,
        hyperparams,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
