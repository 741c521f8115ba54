//! The objective of a hyperparameter study on agents: train with the trial's parameters
//! (`tars_agents::train::train`, real training on the RL Zoo budget or the evaluation
//! engine's quick budget), report the recent mean training return as intermediate values at
//! fixed fractions of the budget (so every trial reports the same steps and the pruners can
//! compare them), stop when the pruner says so, then evaluate the policy deterministically
//! (`tars_agents::evaluate`). The value is the mean evaluation return; with several
//! environments it is the mean of the normalised scores (`tars_eval::normalize`).
//!
//! The quick budget (`use_real_training: false`) trains a fifth of the Zoo's steps. Off-policy
//! schedules count environment steps, so a quick trial runs the whole schedule compressed by
//! the same factor: DQN's, DDPG's and TD3's `learning_starts` and DQN's
//! `target_update_interval` are multiplied by quick / Zoo budget (rounded; the interval at
//! least 1), and `learning_starts`
//! is then capped at half the quick budget, so every quick trial trains for at least half of
//! its steps. Without this a trial drawing the Zoo's `learning_starts` of 10,000 or 20,000
//! (CartPole's quick budget is 10,000) would evaluate its untrained initial network.

use crate::Error;
use crate::spaces::to_overrides;
use crate::study::Outcome;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use tars_agents::{Algo, Control, Cost, Observer, Progress};
use tars_eval::normalize::normalization;
use tars_eval::request::quick_budget;

/// How many environment steps each trial trains for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Budget {
    /// The RL Zoo's budget for the environment (or `n_timesteps` if the trial sets it).
    Zoo,
    /// The evaluation engine's quick budget: a fifth of the Zoo's, at least 1,000 steps.
    Quick,
    /// Exactly this many steps.
    Timesteps(u64),
}

/// Intermediate reports per environment.
pub const N_REPORTS: u64 = 20;

/// Trains and evaluates one configuration of `algo` on `env_ids`.
#[derive(Debug, Clone)]
pub struct RlObjective {
    pub algo: Algo,
    /// Canonical gymnasium ids.
    pub env_ids: Vec<String>,
    pub budget: Budget,
    /// Deterministic evaluation episodes per environment.
    pub n_eval_episodes: usize,
    /// Seed of every trial's training and evaluation (trials differ only by parameters).
    pub seed: u64,
}

impl RlObjective {
    /// Checks the environments (known, listed once, with a score scale when several).
    pub fn new(
        algo: Algo,
        env_ids: &[String],
        budget: Budget,
        n_eval_episodes: usize,
        seed: u64,
    ) -> Result<RlObjective, Error> {
        if env_ids.is_empty() {
            return Err(Error::InvalidSetting {
                name: "environments",
                value: "[]".to_string(),
                expected: "at least one environment id, e.g. CartPole-v1".to_string(),
            });
        }
        let mut canonical: Vec<String> = Vec::new();
        for env_id in env_ids {
            let id = tars_envs::spec(env_id)
                .map_err(tars_agents::Error::from)?
                .id
                .to_string();
            if canonical.contains(&id) {
                return Err(Error::InvalidSetting {
                    name: "environments",
                    value: id,
                    expected: "each environment listed once".to_string(),
                });
            }
            if env_ids.len() > 1 && normalization(&id).is_none() {
                return Err(Error::InvalidSetting {
                    name: "environments",
                    value: id,
                    expected: "environments with a normalised score scale".to_string(),
                });
            }
            canonical.push(id);
        }
        if !(1..=10_000).contains(&n_eval_episodes) {
            return Err(Error::InvalidSetting {
                name: "n_eval_episodes",
                value: n_eval_episodes.to_string(),
                expected: "an integer in [1, 10000]".to_string(),
            });
        }
        if let Budget::Timesteps(0) = budget {
            return Err(Error::InvalidSetting {
                name: "n_timesteps",
                value: "0".to_string(),
                expected: "at least 1 training step".to_string(),
            });
        }
        Ok(RlObjective {
            algo,
            env_ids: canonical,
            budget,
            n_eval_episodes,
            seed,
        })
    }

    /// The most one trial can cost over `space` (its corners and samples, see
    /// [`crate::spaces::candidates`]): the largest training's memory, and every environment's
    /// training steps plus its evaluation episodes at their step limit.
    pub fn max_trial_cost(&self, space: &crate::SearchSpace) -> Result<Cost, Error> {
        let mut worst = Cost::default();
        for params in crate::spaces::candidates(space) {
            let mut trial = Cost::default();
            for env_id in &self.env_ids {
                let (steps, overrides) = self.training(env_id, &params)?;
                let plan = tars_agents::train::plan(self.algo, env_id, &overrides, Some(steps))?;
                let episode_steps = u64::from(
                    tars_envs::spec(env_id)
                        .map_err(tars_agents::Error::from)?
                        .max_episode_steps,
                );
                let evaluation = Cost {
                    memory_bytes: 0,
                    env_steps: (self.n_eval_episodes as u64).saturating_mul(episode_steps),
                };
                trial = trial.then(plan.cost.then(evaluation));
            }
            worst = Cost {
                memory_bytes: worst.memory_bytes.max(trial.memory_bytes),
                env_steps: worst.env_steps.max(trial.env_steps),
            };
        }
        Ok(worst)
    }

    /// Training steps on `env_id` for these parameters.
    pub fn budget_for(&self, env_id: &str, params: &BTreeMap<String, Value>) -> Result<u64, Error> {
        Ok(self.training(env_id, params)?.0)
    }

    /// Training steps on `env_id` and the hyperparameter overrides the trial trains with
    /// (the quick budget's compressed schedule applied).
    pub fn training(
        &self,
        env_id: &str,
        params: &BTreeMap<String, Value>,
    ) -> Result<(u64, Map<String, Value>), Error> {
        let mut overrides = to_overrides(self.algo, env_id, params);
        let plan = tars_agents::train::plan(self.algo, env_id, &overrides, None)?;
        let zoo = plan.total_timesteps;
        let budget = match self.budget {
            Budget::Zoo => zoo,
            Budget::Quick if params.contains_key("n_timesteps") => zoo,
            Budget::Quick => {
                let quick = quick_budget(zoo);
                compress_schedule(self.algo, &plan.hyperparams, zoo, quick, &mut overrides);
                quick
            }
            Budget::Timesteps(n) => n,
        };
        Ok((budget, overrides))
    }

    /// Trains and evaluates; `report(step, value)` returns true to prune. Steps are training
    /// timesteps counted across the environments in order.
    pub fn evaluate(
        &self,
        params: &BTreeMap<String, Value>,
        report: &mut dyn FnMut(u64, f64) -> bool,
    ) -> Outcome {
        let mut scores = Vec::new();
        let mut offset = 0u64;
        for env_id in &self.env_ids {
            let (budget, overrides) = match self.training(env_id, params) {
                Ok(training) => training,
                Err(err) => return Outcome::Failed(err.to_string()),
            };
            let scale =
                (self.env_ids.len() > 1).then(|| normalization(env_id).expect("checked in new"));
            let mut observer = Reporting {
                report: &mut *report,
                offset,
                interval: budget.div_ceil(N_REPORTS).max(1),
                next: 1,
                scale,
                pruned: false,
            };
            let trained = tars_agents::train::train(
                self.algo,
                env_id,
                &overrides,
                self.seed,
                Some(budget),
                &mut observer,
            );
            if observer.pruned {
                return Outcome::Pruned;
            }
            let mut output = match trained {
                Ok(output) => output,
                Err(err) => return Outcome::Failed(format!("training on {env_id}: {err}")),
            };
            let evaluation = match tars_agents::evaluate(
                &mut output.policy,
                self.n_eval_episodes,
                self.seed.wrapping_add(1_000_000),
                true,
            ) {
                Ok(evaluation) => evaluation,
                Err(err) => return Outcome::Failed(format!("evaluating on {env_id}: {err}")),
            };
            let mean = evaluation.mean_reward();
            scores.push(scale.map_or(mean, |s| s.normalize(mean)));
            offset += budget;
        }
        Outcome::Complete(scores.iter().sum::<f64>() / scores.len() as f64)
    }
}

/// The quick budget's schedule: off-policy step counts scaled by `quick / zoo`, warm-up capped
/// at half the quick budget (see the module doc). `hyperparams` are the resolved ones (SB3
/// names) of the Zoo-budget plan.
fn compress_schedule(
    algo: Algo,
    hyperparams: &Value,
    zoo: u64,
    quick: u64,
    overrides: &mut Map<String, Value>,
) {
    if !matches!(algo, Algo::Dqn | Algo::Ddpg | Algo::Td3) || zoo == 0 || quick >= zoo {
        return;
    }
    let factor = quick as f64 / zoo as f64;
    let scaled = |name: &str| {
        hyperparams
            .get(name)
            .and_then(Value::as_f64)
            .map(|steps| (steps * factor).round() as u64)
    };
    if let Some(learning_starts) = scaled("learning_starts") {
        overrides.insert(
            "learning_starts".to_string(),
            Value::from(learning_starts.min(quick / 2)),
        );
    }
    if algo == Algo::Dqn
        && let Some(interval) = scaled("target_update_interval")
    {
        overrides.insert(
            "target_update_interval".to_string(),
            Value::from(interval.max(1)),
        );
    }
}

/// Reports the recent mean return at every `interval` steps of training.
struct Reporting<'a> {
    report: &'a mut dyn FnMut(u64, f64) -> bool,
    offset: u64,
    interval: u64,
    /// The next report index (1-based).
    next: u64,
    scale: Option<tars_eval::Normalization>,
    pruned: bool,
}

impl Observer for Reporting<'_> {
    fn on_progress(&mut self, progress: &Progress) -> Control {
        let Some(mean) = progress.recent_mean_return else {
            return Control::Continue;
        };
        let reached = progress.timesteps / self.interval;
        if reached < self.next {
            return Control::Continue;
        }
        // Report at the last boundary passed, so every trial reports at the same steps.
        self.next = reached + 1;
        let step = self.offset + reached * self.interval;
        let value = self.scale.map_or(mean, |s| s.normalize(mean));
        if (self.report)(step, value) {
            self.pruned = true;
            return Control::Stop;
        }
        Control::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tiny_real_training_reports_aligned_steps_and_returns_the_evaluation() {
        let objective = RlObjective::new(
            Algo::Ppo,
            &["CartPole-v1".to_string()],
            Budget::Timesteps(2048),
            3,
            1,
        )
        .unwrap();
        let params: BTreeMap<String, Value> = [
            ("n_steps".to_string(), Value::from(32)),
            ("batch_size".to_string(), Value::from(64)),
        ]
        .into();
        let mut steps = Vec::new();
        let outcome = objective.evaluate(&params, &mut |step, _| {
            steps.push(step);
            false
        });
        let Outcome::Complete(value) = outcome else {
            panic!("{outcome:?}")
        };
        assert!((8.0..=500.0).contains(&value), "{value}");
        // Rollouts of 8 × 32 = 256 steps; reports every 2048 / 20 → 103 steps, at multiples.
        assert!(steps.len() >= 5, "{steps:?}");
        assert!(steps.iter().all(|s| s % 103 == 0), "{steps:?}");
        assert!(steps.windows(2).all(|w| w[0] < w[1]));
        // Same seed and parameters: same value.
        assert_eq!(objective.evaluate(&params, &mut |_, _| false), outcome);
        // Pruning stops training at the first report.
        let mut n_reports = 0;
        let pruned = objective.evaluate(&params, &mut |_, _| {
            n_reports += 1;
            true
        });
        assert_eq!((pruned, n_reports), (Outcome::Pruned, 1));
    }

    #[test]
    fn several_environments_average_normalised_scores_and_report_in_sequence() {
        let envs = ["CartPole-v1".to_string(), "Pendulum-v1".to_string()];
        let objective = RlObjective::new(Algo::Ppo, &envs, Budget::Timesteps(1000), 2, 3).unwrap();
        let params: BTreeMap<String, Value> = [("n_steps".to_string(), Value::from(16))].into();
        let mut steps = Vec::new();
        let Outcome::Complete(value) = objective.evaluate(&params, &mut |step, _| {
            steps.push(step);
            false
        }) else {
            panic!("both trainings complete")
        };
        // Each environment alone, as a single-environment objective, then normalised.
        let expected: f64 = envs
            .iter()
            .map(|env| {
                let single = RlObjective::new(
                    Algo::Ppo,
                    std::slice::from_ref(env),
                    Budget::Timesteps(1000),
                    2,
                    3,
                )
                .unwrap();
                let Outcome::Complete(mean) = single.evaluate(&params, &mut |_, _| false) else {
                    panic!("trains")
                };
                normalization(env).unwrap().normalize(mean)
            })
            .sum::<f64>()
            / 2.0;
        assert!((value - expected).abs() < 1e-12, "{value} vs {expected}");
        assert!(
            steps.iter().any(|&s| s <= 1000) && steps.iter().any(|&s| s > 1000),
            "{steps:?}"
        );
    }

    #[test]
    fn a_quick_dqn_trial_trains_even_when_its_warm_up_exceeds_the_quick_budget() {
        let env = ["CartPole-v1".to_string()];
        // The Zoo's CartPole budget is 50,000 steps, the quick one 10,000.
        let params: BTreeMap<String, Value> = [
            ("learning_starts".to_string(), Value::from(20_000)),
            ("target_update_interval".to_string(), Value::from(10_000)),
        ]
        .into();
        let quick = RlObjective::new(Algo::Dqn, &env, Budget::Quick, 10, 0).unwrap();
        let (budget, overrides) = quick.training("CartPole-v1", &params).unwrap();
        assert_eq!(budget, 10_000);
        assert_eq!(
            overrides["learning_starts"], 4_000,
            "20,000 × 10,000 / 50,000"
        );
        assert_eq!(overrides["target_update_interval"], 2_000);
        // A warm-up longer than the quick budget is capped at half of it.
        let late: BTreeMap<String, Value> =
            [("learning_starts".to_string(), Value::from(49_000))].into();
        let (_, overrides) = quick.training("CartPole-v1", &late).unwrap();
        assert_eq!(overrides["learning_starts"], 5_000);
        // The Zoo budget trains the schedule as drawn.
        let zoo = RlObjective::new(Algo::Dqn, &env, Budget::Zoo, 10, 0).unwrap();
        let (budget, overrides) = zoo.training("CartPole-v1", &params).unwrap();
        assert_eq!(
            (budget, &overrides["learning_starts"]),
            (50_000, &Value::from(20_000))
        );

        // The same 10,000 steps without the compressed schedule never leave the warm-up: the
        // initial network's greedy policy. With it, DQN learns: a uniformly random policy
        // averages about 22 on CartPole. How fast a seed learns is chaotic (new sgemm kernels
        // moved seed 0 from above 50 to 21 while seeds 1-5 scored 76-185), so the claim is
        // about the mean of three seeds.
        let trained: Vec<f64> = (0..3)
            .map(|seed| {
                let quick = RlObjective::new(Algo::Dqn, &env, Budget::Quick, 10, seed).unwrap();
                match quick.evaluate(&params, &mut |_, _| false) {
                    Outcome::Complete(value) => value,
                    other => panic!("quick DQN trial completes: {other:?}"),
                }
            })
            .collect();
        let untrained = RlObjective::new(Algo::Dqn, &env, Budget::Timesteps(10_000), 10, 0)
            .unwrap()
            .evaluate(&params, &mut |_, _| false);
        let Outcome::Complete(untrained) = untrained else {
            panic!("{untrained:?}")
        };
        let mean = trained.iter().sum::<f64>() / trained.len() as f64;
        assert!(
            mean > 50.0,
            "quick DQN returns {trained:?} (untrained seed 0: {untrained})"
        );
        assert_ne!(trained[0], untrained);
    }

    #[test]
    fn bad_environments_and_settings_are_refused() {
        let err = RlObjective::new(Algo::Ppo, &["CartPole-v9".to_string()], Budget::Zoo, 10, 0)
            .unwrap_err();
        assert!(err.to_string().contains("CartPole-v9"), "{err}");
        let twice = ["CartPole-v1".to_string(), "CartPole-v1".to_string()];
        assert!(RlObjective::new(Algo::Ppo, &twice, Budget::Zoo, 10, 0).is_err());
        assert!(RlObjective::new(Algo::Ppo, &[], Budget::Zoo, 10, 0).is_err());
    }
}
