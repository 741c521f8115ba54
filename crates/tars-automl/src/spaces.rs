//! Default search spaces per algorithm, after the RL Zoo's `hyperparams_opt.py`
//! (`sample_ppo_params`, `sample_a2c_params`, `sample_dqn_params`, `sample_ddpg_params`,
//! `sample_td3_params`), with
//! SB3 names that `tars_agents::train::plan` accepts and values in its forms (`net_arch` as
//! layer lists: the Zoo's "tiny" `[64]`, "small" `[64, 64]`, "medium" `[256, 256]`, "big"
//! `[400, 300]`). Learning rates are log-uniform on [1e-5, 1e-2] (the Zoo searches up to 1,
//! which mostly diverges). A trial's parameters override the Zoo's tuned defaults for the
//! environment ([`to_overrides`]), so what is not searched keeps its tuned value.

use crate::{Distribution, Error, SearchSpace};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use tars_agents::Algo;

const GAMMAS: [f64; 7] = [0.9, 0.95, 0.98, 0.99, 0.995, 0.999, 0.9999];
const GAE_LAMBDAS: [f64; 7] = [0.8, 0.9, 0.92, 0.95, 0.98, 0.99, 1.0];
const MAX_GRAD_NORMS: [f64; 9] = [0.3, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 2.0, 5.0];
const N_STEPS: [u64; 9] = [8, 16, 32, 64, 128, 256, 512, 1024, 2048];

fn choices<T: Into<Value> + Copy>(values: &[T]) -> Distribution {
    Distribution::categorical(values.iter().map(|&v| v.into()))
}

fn space(params: Vec<(&str, Distribution)>) -> SearchSpace {
    SearchSpace::new(params.into_iter().map(|(n, d)| (n.to_string(), d)))
        .expect("default spaces are valid")
}

/// The default search space of `algo`.
pub fn default_space(algo: Algo) -> SearchSpace {
    let learning_rate = Distribution::log_float(1e-5, 1e-2);
    match algo {
        Algo::Ppo => space(vec![
            // The Zoo also tries 8, 16 and 32: a minibatch update costs about the same at any
            // size (Adam over every weight dominates), so these are 2-8x more expensive
            // trials that rarely win (minutes each on the Zoo's budget).
            ("batch_size", choices(&[64u64, 128, 256, 512])),
            ("n_steps", choices(&N_STEPS)),
            ("gamma", choices(&GAMMAS)),
            ("learning_rate", learning_rate),
            ("ent_coef", Distribution::log_float(1e-8, 0.1)),
            ("clip_range", choices(&[0.1, 0.2, 0.3, 0.4])),
            ("n_epochs", choices(&[1u64, 5, 10, 20])),
            ("gae_lambda", choices(&GAE_LAMBDAS)),
            ("max_grad_norm", choices(&MAX_GRAD_NORMS)),
            ("vf_coef", Distribution::float(0.0, 1.0)),
            (
                "net_arch",
                Distribution::categorical([json!([64]), json!([64, 64]), json!([256, 256])]),
            ),
        ]),
        Algo::A2c => space(vec![
            ("gamma", choices(&GAMMAS)),
            ("normalize_advantage", choices(&[false, true])),
            ("max_grad_norm", choices(&MAX_GRAD_NORMS)),
            ("use_rms_prop", choices(&[false, true])),
            ("gae_lambda", choices(&GAE_LAMBDAS)),
            ("n_steps", choices(&N_STEPS)),
            ("learning_rate", learning_rate),
            ("ent_coef", Distribution::log_float(1e-8, 0.1)),
            ("vf_coef", Distribution::float(0.0, 1.0)),
            ("ortho_init", choices(&[false, true])),
            (
                "net_arch",
                Distribution::categorical([json!([64, 64]), json!([256, 256])]),
            ),
        ]),
        Algo::Dqn => space(vec![
            ("gamma", choices(&GAMMAS)),
            ("learning_rate", learning_rate),
            ("batch_size", choices(&[16u64, 32, 64, 100, 128, 256, 512])),
            (
                "buffer_size",
                choices(&[10_000u64, 50_000, 100_000, 1_000_000]),
            ),
            ("exploration_final_eps", Distribution::float(0.0, 0.2)),
            ("exploration_fraction", Distribution::float(0.0, 0.5)),
            (
                "target_update_interval",
                choices(&[1u64, 1000, 5000, 10_000, 15_000, 20_000]),
            ),
            (
                "learning_starts",
                choices(&[0u64, 1000, 5000, 10_000, 20_000]),
            ),
            ("train_freq", choices(&[1u64, 4, 8, 16, 128, 256, 1000])),
            // The Zoo derives gradient_steps from train_freq; -1 is one update per
            // environment step collected, 1 one update per train_freq steps.
            ("gradient_steps", choices(&[-1i64, 1])),
            (
                "net_arch",
                Distribution::categorical([json!([64]), json!([64, 64]), json!([256, 256])]),
            ),
        ]),
        // The Zoo samples TD3 as DDPG (`sample_td3_params`); its own three keep SB3's defaults.
        Algo::Ddpg | Algo::Td3 => space(vec![
            ("gamma", choices(&GAMMAS)),
            ("learning_rate", learning_rate),
            (
                "batch_size",
                choices(&[16u64, 32, 64, 100, 128, 256, 512, 1024, 2048]),
            ),
            ("buffer_size", choices(&[10_000u64, 100_000, 1_000_000])),
            ("tau", choices(&[0.001, 0.005, 0.01, 0.02, 0.05, 0.08])),
            // Not in the Zoo's DDPG sampler (as in its DQN one): the Zoo's 10,000 warm-up
            // steps would leave quick-budget trials (4,000 steps on Pendulum) untrained.
            ("learning_starts", choices(&[0u64, 1000, 5000, 10_000])),
            (
                "train_freq",
                choices(&[1u64, 4, 8, 16, 32, 64, 128, 256, 512]),
            ),
            ("gradient_steps", choices(&[-1i64, 1])),
            (
                "action_noise",
                Distribution::categorical([
                    json!("ornstein-uhlenbeck"),
                    json!("normal"),
                    Value::Null,
                ]),
            ),
            ("action_noise_std", Distribution::float(0.0, 1.0)),
            (
                "net_arch",
                Distribution::categorical([json!([64, 64]), json!([256, 256]), json!([400, 300])]),
            ),
        ]),
    }
}

/// `default` with the user's JSON applied: each `"name": {distribution}` adds or replaces a
/// parameter, `"name": null` removes one. The result is checked against the algorithm with
/// [`validate`].
pub fn with_overrides(
    algo: Algo,
    env_ids: &[String],
    default: SearchSpace,
    overrides: &Value,
) -> Result<SearchSpace, Error> {
    let Value::Object(map) = overrides else {
        return Err(Error::BadSearchSpace {
            what: format!("expected a JSON object of distributions, got {overrides}"),
        });
    };
    let mut space = default;
    let mut added = Map::new();
    for (name, spec) in map {
        if spec.is_null() {
            if !space.remove(name) {
                return Err(Error::BadSearchSpace {
                    what: format!(
                        "{name} is not in the default {} space, so it cannot be removed; its parameters: {}",
                        algo.name(),
                        space.names().collect::<Vec<_>>().join(", ")
                    ),
                });
            }
        } else {
            added.insert(name.clone(), spec.clone());
        }
    }
    if !added.is_empty() {
        space.extend(SearchSpace::from_json(&Value::Object(added))?);
    }
    space.validate()?;
    validate(algo, env_ids, &space)?;
    Ok(space)
}

/// The agent overrides of a trial's parameters on `env_id`. As the RL Zoo, a PPO minibatch
/// larger than the rollout (`n_steps · n_envs`) is cut to the rollout, whether the trial or
/// the tuned defaults set it.
pub fn to_overrides(
    algo: Algo,
    env_id: &str,
    params: &BTreeMap<String, Value>,
) -> Map<String, Value> {
    let mut overrides: Map<String, Value> =
        params.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    if algo == Algo::Ppo {
        let tuned = tars_agents::hyperparams::tuned(algo, env_id);
        // SB3's defaults where neither the trial nor the Zoo sets a value.
        let lookup = |name: &str, default: u64| {
            overrides
                .get(name)
                .or_else(|| tuned.get(name))
                .and_then(Value::as_f64)
                .map_or(default, |v| v as u64)
        };
        let rollout = lookup("n_steps", 2048) * lookup("n_envs", 1);
        if lookup("batch_size", 64) > rollout {
            overrides.insert("batch_size".to_string(), Value::from(rollout));
        }
    }
    overrides
}

/// Checks that every parameter of `space` is a hyperparameter of `algo` with values it
/// accepts on each environment: the space's corners and a fixed set of random draws go
/// through [`to_overrides`] and `tars_agents::train::plan`.
pub fn validate(algo: Algo, env_ids: &[String], space: &SearchSpace) -> Result<(), Error> {
    let candidates = candidates(space);
    for env_id in env_ids {
        for params in &candidates {
            tars_agents::train::plan(algo, env_id, &to_overrides(algo, env_id, params), None)?;
        }
    }
    Ok(())
}

/// The points of `space` that validation and budgets look at: both corners (every parameter
/// at its low end, then every one at its high end) and 32 seeded random samples.
pub fn candidates(space: &SearchSpace) -> Vec<BTreeMap<String, Value>> {
    let mut rng = tars_envs::Rng::new(0x5EA7C4);
    let mut candidates: Vec<BTreeMap<String, Value>> = Vec::new();
    for corner in [0.0, 1.0] {
        candidates.push(
            space
                .iter()
                .map(|(name, d)| {
                    let value = match *d {
                        Distribution::Float { low, high, .. } => {
                            d.to_external(low + corner * (high - low))
                        }
                        Distribution::Int { low, high, .. } => {
                            d.to_external(low as f64 + corner * (high - low) as f64)
                        }
                        Distribution::Categorical { ref choices } => {
                            d.to_external(corner * (choices.len() - 1) as f64)
                        }
                    };
                    (name.to_string(), value)
                })
                .collect(),
        );
    }
    for _ in 0..32 {
        candidates.push(
            space
                .iter()
                .map(|(name, d)| {
                    (
                        name.to_string(),
                        crate::sampler::random::sample_one(d, &mut rng),
                    )
                })
                .collect(),
        );
    }
    candidates
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Environments each algorithm trains on.
    fn envs(algo: Algo) -> Vec<String> {
        let ids: &[&str] = match algo {
            Algo::Ppo | Algo::A2c => {
                &["CartPole-v1", "Pendulum-v1", "Acrobot-v1", "LunarLander-v3"]
            }
            Algo::Dqn => &["CartPole-v1", "MountainCar-v0", "Acrobot-v1"],
            Algo::Ddpg | Algo::Td3 => &["Pendulum-v1", "MountainCarContinuous-v0"],
        };
        ids.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn every_default_space_sample_is_accepted_by_plan() {
        for algo in Algo::ALL {
            let space = default_space(algo);
            let mut rng = tars_envs::Rng::new(algo as u64);
            for env_id in envs(algo) {
                for _ in 0..300 {
                    let params: BTreeMap<String, Value> = space
                        .iter()
                        .map(|(n, d)| {
                            (
                                n.to_string(),
                                crate::sampler::random::sample_one(d, &mut rng),
                            )
                        })
                        .collect();
                    let overrides = to_overrides(algo, &env_id, &params);
                    if let Err(err) = tars_agents::train::plan(algo, &env_id, &overrides, None) {
                        panic!("{algo} on {env_id}: {err} for {params:?}");
                    }
                }
            }
            validate(algo, &envs(algo), &space).unwrap();
        }
    }

    #[test]
    fn ppo_minibatches_are_cut_to_the_rollout_as_the_rl_zoo() {
        let params: BTreeMap<String, Value> = [
            ("batch_size".into(), json!(512)),
            ("n_steps".into(), json!(16)),
        ]
        .into();
        // CartPole's tuned n_envs is 8: the rollout is 128.
        assert_eq!(
            to_overrides(Algo::Ppo, "CartPole-v1", &params)["batch_size"],
            json!(128)
        );
        assert_eq!(
            to_overrides(Algo::Ppo, "Pendulum-v1", &params)["batch_size"],
            json!(64)
        );
    }

    #[test]
    fn user_overrides_extend_replace_remove_and_are_checked_against_the_algorithm() {
        let envs = vec!["CartPole-v1".to_string()];
        let space = with_overrides(
            Algo::Ppo,
            &envs,
            default_space(Algo::Ppo),
            &json!({
                "learning_rate": {"type": "float", "low": 1e-4, "high": 1e-3, "log": true},
                "n_envs": {"type": "int", "low": 1, "high": 8},
                "ent_coef": null,
            }),
        )
        .unwrap();
        assert_eq!(
            space.get("learning_rate"),
            Some(&Distribution::log_float(1e-4, 1e-3))
        );
        assert!(space.get("n_envs").is_some() && space.get("ent_coef").is_none());

        let err = with_overrides(
            Algo::Ppo,
            &envs,
            default_space(Algo::Ppo),
            &json!({"clip_coef": {"type": "float", "low": 0.1, "high": 0.3}}),
        )
        .unwrap_err();
        assert!(
            err.to_string().starts_with(
                "unknown PPO hyperparameter 'clip_coef' (did you mean 'clip_range'?); valid names:"
            ),
            "{err}"
        );
        let err = with_overrides(
            Algo::Dqn,
            &envs,
            default_space(Algo::Dqn),
            &json!({"gamma": {"type": "float", "low": 0.9, "high": 1.5}}),
        )
        .unwrap_err();
        assert!(err.to_string().contains("gamma"), "{err}");
        let err = with_overrides(
            Algo::Ppo,
            &envs,
            default_space(Algo::Ppo),
            &json!({"learning_rate": {"type": "float", "low": 0.0, "high": 1e-2, "log": true}}),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "learning_rate: log scale needs low > 0, got low = 0"
        );
    }
}
