//! Twin Delayed DDPG (Fujimoto et al., "Addressing Function Approximation Error in
//! Actor-Critic Methods", ICML 2018). Mirrors `stable_baselines3/td3/td3.py`: DDPG's loop
//! (`ddpg.rs`, which SB3 also runs as TD3) with three changes, each against overestimating Q:
//!
//! 1. Two critics; the target is `r + γ (1 - terminated) min(Q'_1, Q'_2)(s', a')`, and each
//!    critic is fitted to it by MSE.
//! 2. Target policy smoothing: `a' = clip(μ'(s') + clip(ε, ±target_noise_clip), -1, 1)` with
//!    `ε ~ N(0, target_policy_noise²)` per action dimension.
//! 3. Delayed updates: the actor (through the first critic) and all three targets move every
//!    `policy_delay` critic updates.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tars_envs::EnvSpec;

use crate::ddpg::{DdpgHyperparams, Twin, ValidDdpg};
use crate::hyperparams::{invalid, resolve_with_budget};
use crate::policy::{Observer, TrainOutput};
use crate::{Algo, Error};

/// TD3's hyperparameters with SB3's names: DDPG's, and TD3's three; `Default` is SB3's
/// `TD3(...)` defaults. Serialised flat, one name per hyperparameter. Unknown names are
/// refused by `hyperparams::resolve`, which lists the valid ones, before serde sees them
/// (serde cannot deny unknown fields around a flattened struct).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Td3Hyperparams {
    /// The hyperparameters TD3 shares with DDPG; `net_arch` sizes the actor (`pi`) and both
    /// critics (`vf`/`qf`).
    #[serde(flatten)]
    pub ddpg: DdpgHyperparams,
    /// Critic updates per actor and target update.
    pub policy_delay: usize,
    /// Standard deviation of the smoothing noise on the target actions (scaled units).
    pub target_policy_noise: f64,
    /// The smoothing noise is clipped to ±this.
    pub target_noise_clip: f64,
}

impl Default for Td3Hyperparams {
    fn default() -> Td3Hyperparams {
        Td3Hyperparams {
            ddpg: DdpgHyperparams::default(),
            policy_delay: 2,
            target_policy_noise: 0.2,
            target_noise_clip: 0.5,
        }
    }
}

impl Td3Hyperparams {
    /// Checks every range and the action space; errors name the field and what is valid.
    pub fn validate(self, env: &EnvSpec) -> Result<(ValidDdpg, Twin), Error> {
        let noise = self.target_policy_noise;
        let clip = self.target_noise_clip;
        #[rustfmt::skip]
        let ranges: [(&str, Value, bool, &str); 3] = [
            ("policy_delay", self.policy_delay.into(), self.policy_delay >= 1, "at least 1 critic update"),
            ("target_policy_noise", noise.into(), noise >= 0.0 && noise.is_finite(), "a standard deviation ≥ 0"),
            ("target_noise_clip", clip.into(), clip >= 0.0 && clip.is_finite(), "a bound ≥ 0"),
        ];
        if let Some((name, value, _, expected)) = ranges.into_iter().find(|range| !range.2) {
            return Err(invalid(Algo::Td3, name, &value, expected));
        }
        let twin = Twin {
            policy_delay: self.policy_delay,
            target_policy_noise: noise,
            target_noise_clip: clip,
        };
        Ok((self.ddpg.validate_for(Algo::Td3, env)?, twin))
    }
}

/// Trains TD3 on `env_id` with the RL Zoo's tuned hyperparameters (SB3's defaults where the
/// Zoo has none) overridden by `overrides`; `n_timesteps` replaces the budget.
pub fn train(
    env_id: &str,
    overrides: &Map<String, Value>,
    seed: u64,
    n_timesteps: Option<u64>,
    observer: &mut dyn Observer,
) -> Result<TrainOutput, Error> {
    let spec = tars_envs::spec(env_id)?;
    let hyperparams: Td3Hyperparams =
        resolve_with_budget(Algo::Td3, spec.id, overrides, n_timesteps)?;
    let resolved = serde_json::to_value(&hyperparams).expect("hyperparameters serialize");
    let (valid, twin) = hyperparams.validate(spec)?;
    crate::ddpg::run(Algo::Td3, spec, valid, Some(twin), resolved, seed, observer)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::policy::Silent;

    fn overrides(value: Value) -> Map<String, Value> {
        value.as_object().expect("a JSON object").clone()
    }

    #[test]
    fn a_short_pendulum_run_improves_over_random_play() {
        let config = json!({"net_arch": [64, 64], "learning_starts": 1000, "batch_size": 128});
        let output = train(
            "Pendulum-v1",
            &overrides(config),
            0,
            Some(8_000),
            &mut Silent,
        )
        .unwrap();
        let returns: Vec<f64> = (output.curve.iter())
            .filter(|p| p.key == "charts/episodic_return")
            .map(|p| p.value)
            .collect();
        assert_eq!(returns.len(), 40);
        let mean = |r: &[f64]| r.iter().sum::<f64>() / r.len() as f64;
        let (random, trained) = (mean(&returns[..5]), mean(&returns[37..]));
        assert!(random < -900.0 && trained > -700.0, "{random} → {trained}");
        assert_eq!(output.policy.algo, Algo::Td3);
        assert_eq!(output.hyperparams["policy_delay"], json!(2));
        assert_eq!(output.hyperparams["gamma"], json!(0.98), "the Zoo's value");
    }

    #[test]
    fn its_three_changes_change_the_run_and_the_seed_fixes_it() {
        let base = json!({"net_arch": [32, 32], "learning_starts": 200, "batch_size": 64});
        let run = |extra: Value| {
            let mut config = overrides(base.clone());
            config.extend(overrides(extra));
            let output = train("Pendulum-v1", &config, 3, Some(600), &mut Silent).unwrap();
            output.policy.weights_hash()
        };
        let td3 = run(json!({}));
        assert_eq!(td3, run(json!({})), "same seed, same weights");
        for change in [
            json!({"policy_delay": 1}),
            json!({"target_policy_noise": 0.0}),
            json!({"target_noise_clip": 0.1}),
        ] {
            assert_ne!(td3, run(change.clone()), "{change} changes nothing");
        }
        // Both losses are logged, the actor's at every second critic update.
        let output = train(
            "Pendulum-v1",
            &overrides(base.clone()),
            3,
            Some(600),
            &mut Silent,
        )
        .unwrap();
        for key in ["losses/qf_loss", "losses/actor_loss"] {
            assert!(output.curve.iter().any(|p| p.key == key), "no {key}");
        }
        // A TD3 checkpoint loads back as TD3's policy.
        let (weights, metadata) =
            crate::checkpoint::encode(&output.policy, &output.hyperparams, 3, 600, &[]);
        let (loaded, metadata) = crate::checkpoint::decode(&weights, &metadata).unwrap();
        assert_eq!((metadata.algo.as_str(), loaded.algo), ("TD3", Algo::Td3));
        assert_eq!(loaded.weights_hash(), output.policy.weights_hash());
    }

    #[test]
    fn invalid_hyperparameters_name_the_field_and_what_is_valid() {
        let cases = [
            (
                json!({"policy_delay": 0}),
                "TD3 hyperparameter policy_delay = 0",
            ),
            (json!({"target_policy_noise": -0.1}), "target_policy_noise"),
            (json!({"target_noise_clip": -1.0}), "target_noise_clip"),
            (json!({"tau": 2.0}), "invalid TD3 hyperparameter tau = 2.0"),
        ];
        for (config, expected) in cases {
            let err = train("Pendulum-v1", &overrides(config), 0, None, &mut Silent).unwrap_err();
            assert!(err.to_string().contains(expected), "{err}");
        }
        let err = train("CartPole-v1", &Map::new(), 0, None, &mut Silent).unwrap_err();
        assert!(
            err.to_string().contains("TD3 cannot train on CartPole-v1"),
            "{err}"
        );
    }
}
