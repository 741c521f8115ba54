//! SB3's `EvalCallback`: evaluates the policy every `eval_freq` steps of training, on
//! environments of its own, and keeps the best one, as RL Zoo's training keeps
//! `best_model.zip` beside the final model.
//!
//! Value-based agents oscillate: DQN on CartPole moves between a 500-step policy and a
//! 100-step one every few thousand steps, so the last policy is a lottery ticket and the best
//! evaluated one is what RL practitioners ship. The callback only reads copies of the policy:
//! a run with it gives the same weights as a run without it.

use crate::evaluate::evaluate;
use crate::policy::{Control, Observer, Policy, Progress};

/// When and how to evaluate during training.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EvalConfig {
    /// Environment steps (all environments together) between evaluations. An evaluation
    /// runs at the first progress report at or after each multiple: DQN and DDPG report every
    /// 1,000 steps, PPO and A2C after each update.
    pub eval_freq: u64,
    /// Deterministic episodes per evaluation.
    pub n_eval_episodes: usize,
    /// Evaluation `k` (from 0) seeds its environments from `seed + 1000·k`, so every
    /// evaluation plays new episodes, as SB3's never-reset evaluation environment does.
    pub seed: u64,
}

impl EvalConfig {
    /// SB3's `EvalCallback` defaults: every 10,000 steps, 5 episodes.
    pub fn sb3_defaults(seed: u64) -> EvalConfig {
        EvalConfig {
            eval_freq: 10_000,
            n_eval_episodes: 5,
            seed,
        }
    }
}

/// One periodic evaluation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PeriodicEval {
    pub timestep: u64,
    pub mean_reward: f64,
    pub std_reward: f64,
}

/// The best policy seen by the periodic evaluations.
#[derive(Debug, Clone)]
pub struct BestPolicy {
    pub policy: Policy,
    /// Training steps taken when it was evaluated.
    pub timestep: u64,
    /// Its mean return in that evaluation (`n_eval_episodes` episodes).
    pub mean_reward: f64,
}

/// An [`Observer`] that evaluates the policy every `eval_freq` steps, keeps the best one and
/// forwards everything to `inner` (a progress bar, a pruner).
pub struct EvalCallback<'a> {
    inner: &'a mut dyn Observer,
    config: EvalConfig,
    next_eval: u64,
    inner_wants_policy: bool,
    evaluations: Vec<PeriodicEval>,
    best: Option<BestPolicy>,
}

impl<'a> EvalCallback<'a> {
    /// `config.eval_freq` and `config.n_eval_episodes` must be at least 1.
    pub fn new(inner: &'a mut dyn Observer, config: EvalConfig) -> EvalCallback<'a> {
        assert!(
            config.eval_freq >= 1 && config.n_eval_episodes >= 1,
            "eval_freq and n_eval_episodes must be at least 1: {config:?}"
        );
        EvalCallback {
            inner,
            next_eval: config.eval_freq,
            config,
            inner_wants_policy: false,
            evaluations: Vec::new(),
            best: None,
        }
    }

    /// Every evaluation so far, in order.
    pub fn evaluations(&self) -> &[PeriodicEval] {
        &self.evaluations
    }

    /// The best evaluated policy: the first to reach the highest mean return (SB3 replaces
    /// its best model only on a strictly higher mean). None when no evaluation was due.
    pub fn into_best(self) -> Option<BestPolicy> {
        self.best
    }

    fn evaluate(&mut self, timestep: u64, policy: &mut Policy) {
        let k = self.evaluations.len() as u64;
        let seed = self.config.seed.wrapping_add(1000 * k);
        let evaluation = evaluate(policy, self.config.n_eval_episodes, seed, true)
            .expect("the environment training runs on can be made again");
        let (mean_reward, std_reward) = (evaluation.mean_reward(), evaluation.std_reward());
        self.evaluations.push(PeriodicEval {
            timestep,
            mean_reward,
            std_reward,
        });
        if self
            .best
            .as_ref()
            .is_none_or(|b| mean_reward > b.mean_reward)
        {
            self.best = Some(BestPolicy {
                policy: policy.clone(),
                timestep,
                mean_reward,
            });
        }
    }
}

impl Observer for EvalCallback<'_> {
    fn on_progress(&mut self, progress: &Progress) -> Control {
        self.inner.on_progress(progress)
    }

    fn wants_policy(&mut self, progress: &Progress) -> bool {
        self.inner_wants_policy = self.inner.wants_policy(progress);
        self.inner_wants_policy || progress.timesteps >= self.next_eval
    }

    fn on_policy(&mut self, progress: &Progress, mut policy: Policy) -> Control {
        if progress.timesteps >= self.next_eval {
            self.evaluate(progress.timesteps, &mut policy);
            let freq = self.config.eval_freq;
            self.next_eval = (progress.timesteps / freq + 1) * freq;
        }
        if self.inner_wants_policy {
            return self.inner.on_policy(progress, policy);
        }
        Control::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Algo, Silent};
    use serde_json::json;

    fn train(observer: &mut dyn Observer) -> crate::TrainOutput {
        let config = json!({"net_arch": [64, 64]});
        let overrides = config.as_object().unwrap();
        crate::train::train(
            Algo::Dqn,
            "CartPole-v1",
            overrides,
            3,
            Some(12_000),
            observer,
        )
        .unwrap()
    }

    #[test]
    fn evaluates_on_schedule_keeps_the_best_and_leaves_training_alone() {
        let plain = train(&mut Silent);
        let mut inner = Silent;
        let config = EvalConfig {
            eval_freq: 2_000,
            n_eval_episodes: 3,
            seed: 77,
        };
        let mut callback = EvalCallback::new(&mut inner, config);
        let watched = train(&mut callback);
        assert_eq!(
            plain.policy.weights_hash(),
            watched.policy.weights_hash(),
            "evaluating copies must not change the run"
        );

        let evaluations = callback.evaluations().to_vec();
        let timesteps: Vec<u64> = evaluations.iter().map(|e| e.timestep).collect();
        assert_eq!(timesteps, [2_000, 4_000, 6_000, 8_000, 10_000, 12_000]);
        let best = callback.into_best().expect("six evaluations ran");
        let top = evaluations
            .iter()
            .map(|e| e.mean_reward)
            .fold(f64::MIN, f64::max);
        assert_eq!(best.mean_reward, top);
        let first_top = evaluations.iter().find(|e| e.mean_reward == top).unwrap();
        assert_eq!(best.timestep, first_top.timestep, "ties keep the earlier");

        // The kept policy is the one evaluated then: replaying that evaluation gives its mean.
        let k = evaluations.iter().position(|e| e.timestep == best.timestep);
        let seed = 77 + 1000 * k.unwrap() as u64;
        let mut policy = best.policy;
        let replay = evaluate(&mut policy, 3, seed, true).unwrap();
        assert_eq!(replay.mean_reward(), best.mean_reward);
    }

    #[test]
    fn every_algorithm_hands_over_its_policy() {
        let cases = [
            (Algo::Ppo, "CartPole-v1", 4_096, json!({})),
            (Algo::A2c, "CartPole-v1", 2_000, json!({})),
            (
                Algo::Ppo,
                "Pendulum-v1",
                4_096,
                json!({"normalize": true, "n_envs": 2}),
            ),
            (
                Algo::Ddpg,
                "Pendulum-v1",
                1_200,
                json!({"learning_starts": 200, "net_arch": [32, 32]}),
            ),
        ];
        for (algo, env_id, budget, config) in cases {
            let overrides = config.as_object().unwrap();
            let run = |observer: &mut dyn Observer| {
                crate::train::train(algo, env_id, overrides, 5, Some(budget), observer).unwrap()
            };
            let plain = run(&mut Silent);
            let mut inner = Silent;
            let config = EvalConfig {
                eval_freq: 1_000,
                n_eval_episodes: 2,
                seed: 0,
            };
            let mut callback = EvalCallback::new(&mut inner, config);
            let watched = run(&mut callback);
            let case = format!("{algo} on {env_id}");
            assert_eq!(
                plain.policy.weights_hash(),
                watched.policy.weights_hash(),
                "{case}"
            );
            assert!(!callback.evaluations().is_empty(), "{case}");
            let best = callback.into_best().unwrap();
            assert_eq!(
                (best.policy.algo, best.policy.env_id.as_str()),
                (algo, env_id)
            );
            assert_eq!(
                best.policy.obs_norm.is_some(),
                plain.policy.obs_norm.is_some(),
                "{case}: the snapshot carries the observation statistics"
            );
        }
    }

    #[test]
    fn forwards_progress_and_policies_to_the_inner_observer() {
        struct Counting {
            reports: u32,
            policies: u32,
        }
        impl Observer for Counting {
            fn on_progress(&mut self, _: &Progress) -> Control {
                self.reports += 1;
                Control::Continue
            }
            fn wants_policy(&mut self, progress: &Progress) -> bool {
                progress.timesteps.is_multiple_of(3_000)
            }
            fn on_policy(&mut self, _: &Progress, _: Policy) -> Control {
                self.policies += 1;
                Control::Continue
            }
        }
        let mut inner = Counting {
            reports: 0,
            policies: 0,
        };
        let config = EvalConfig {
            eval_freq: 5_000,
            n_eval_episodes: 1,
            seed: 0,
        };
        let mut callback = EvalCallback::new(&mut inner, config);
        train(&mut callback);
        assert_eq!(callback.evaluations().len(), 2, "at 5,000 and 10,000");
        assert!(inner.reports >= 12, "DQN reports every 1,000 steps");
        assert_eq!(inner.policies, 4, "at 3,000, 6,000, 9,000 and 12,000");
    }
}
