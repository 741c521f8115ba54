//! Deep Q-Network: Q-learning with a replay buffer, a target network and ε-greedy
//! exploration (Mnih et al., "Human-level control through deep reinforcement learning",
//! Nature 2015). Mirrors `stable_baselines3/dqn/dqn.py` and the loop it inherits from
//! `stable_baselines3/common/off_policy_algorithm.py`, in SB3's order:
//!
//! 1. Collect `train_freq` steps per environment: uniformly random actions while
//!    `num_timesteps < learning_starts`, then ε-greedy with one draw for the whole batch of
//!    environments (`DQN.predict`). Store each transition, bootstrapping truncated episodes
//!    from their final observation (`handle_timeout_termination=True`). After each step
//!    (`DQN._on_step`) update the target network every `target_update_interval` steps with
//!    Polyak coefficient `tau` and move ε along its linear schedule.
//! 2. Once `num_timesteps > learning_starts`, take `gradient_steps` steps (`-1`: as many as
//!    environment steps just collected) of Adam on the Huber (smooth L1) TD loss towards
//!    `r + γ (1 - terminated) max_a' Q_target(s', a')`, clipping the gradient norm to
//!    `max_grad_norm` (`DQN.train`). The target network is fixed during this phase, so its
//!    values are computed once per distinct sampled transition before the first step.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};
use tars_envs::{Actions, EnvSpec, Rng, Space, VecEnv};

use crate::budget::try_vec;
use crate::hyperparams::{deserialize_net_arch, invalid, resolve_with_budget};
use crate::nn::pair::on_two_cores;
use crate::nn::{
    Activation, Adam, AdamConfig, Init, Mlp, TdLoss, argmax_rows, clip_grad_norm, max_rows,
    td_loss_backward,
};
use crate::policy::{
    Control, CurvePoint, Observer, Policy, PolicyNet, Progress, RecentReturns, TrainOutput, report,
};
use crate::replay::{Batch, ReplayBuffer};
use crate::{Algo, Error, Schedule};

/// Rows per forward pass of the target network when it evaluates a training phase's
/// distinct next observations.
const TARGET_BATCH: usize = 256;

/// DQN's hyperparameters with SB3's names; `Default` is SB3's `DQN(...)` defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DqnHyperparams {
    /// Environment steps to train for, summed over environments: the RL Zoo's budget, or
    /// 1e5 where the Zoo has none (SB3 has no default; `learn` requires it).
    pub n_timesteps: f64,
    /// Environments stepped together.
    pub n_envs: usize,
    /// Adam's step size: a constant or a linear schedule `"lin_<x>"`.
    pub learning_rate: Schedule,
    /// Transitions the replay buffer holds before overwriting the oldest.
    pub buffer_size: usize,
    /// Environment steps of uniformly random actions before the first gradient step.
    pub learning_starts: usize,
    /// Transitions per gradient step.
    pub batch_size: usize,
    /// Target network update coefficient: 1 copies the Q-network (a hard update).
    pub tau: f64,
    /// Discount factor.
    pub gamma: f64,
    /// Steps per environment collected between training phases.
    pub train_freq: usize,
    /// Gradient steps per training phase; -1 takes as many as environment steps collected.
    pub gradient_steps: i64,
    /// Environment steps between target network updates.
    pub target_update_interval: usize,
    /// Fraction of the budget over which ε decays linearly from its initial to its final value.
    pub exploration_fraction: f64,
    /// ε, the probability of a uniformly random action, at the start of training.
    pub exploration_initial_eps: f64,
    /// ε after `exploration_fraction` of the budget (the seeds' `epsilon`).
    pub exploration_final_eps: f64,
    /// Largest global L2 norm of the gradient; larger gradients are scaled down.
    pub max_grad_norm: f64,
    /// Hidden layer sizes of the Q-network (ReLU).
    #[serde(deserialize_with = "deserialize_layers")]
    pub net_arch: Vec<usize>,
}

impl Default for DqnHyperparams {
    fn default() -> DqnHyperparams {
        DqnHyperparams {
            n_timesteps: 1e5,
            n_envs: 1,
            learning_rate: Schedule::Constant(1e-4),
            buffer_size: 1_000_000,
            learning_starts: 100,
            batch_size: 32,
            tau: 1.0,
            gamma: 0.99,
            train_freq: 4,
            gradient_steps: 1,
            target_update_interval: 10_000,
            exploration_fraction: 0.1,
            exploration_initial_eps: 1.0,
            exploration_final_eps: 0.05,
            max_grad_norm: 10.0,
            net_arch: vec![64, 64],
        }
    }
}

/// A Q-network takes one list of layer sizes; `{"pi", "vf"}` is for actor-critic methods.
fn deserialize_layers<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<usize>, D::Error> {
    let arch = deserialize_net_arch(deserializer)?;
    if arch.pi != arch.vf {
        return Err(serde::de::Error::custom(
            "a list of layer sizes like [64, 64]",
        ));
    }
    Ok(arch.pi)
}

/// Hyperparameters that passed [`DqnHyperparams::validate`], with what the loop derives.
#[derive(Debug, Clone)]
pub struct ValidDqn {
    pub hyperparams: DqnHyperparams,
    /// `n_timesteps` as a step count.
    pub total_timesteps: u64,
    pub obs_dim: usize,
    pub n_actions: usize,
    /// `_on_step` calls between target updates: `max(target_update_interval / n_envs, 1)`.
    pub target_update_calls: u64,
}

impl DqnHyperparams {
    /// Checks every range and the action space; errors name the field and what is valid.
    pub fn validate(self, env: &EnvSpec) -> Result<ValidDqn, Error> {
        let Space::Discrete { n: n_actions } = env.action_space else {
            return Err(Error::UnsupportedEnv {
                algo: Algo::Dqn.name(),
                env: env.id.to_string(),
                why: format!(
                    "it needs a Discrete action space, found {}; use DDPG, PPO or A2C",
                    env.action_space.describe()
                ),
            });
        };
        let (lr, eps) = (self.learning_rate.initial(), "a probability in [0, 1]");
        let fraction = |x: f64| (0.0..=1.0).contains(&x);
        let at_least_batch = format!("at least batch_size ({})", self.batch_size);
        #[rustfmt::skip]
        let ranges: [(&str, Value, bool, &str); 14] = [
            ("n_timesteps", self.n_timesteps.into(), self.n_timesteps >= 1.0 && self.n_timesteps.is_finite(), "a step count ≥ 1"),
            ("n_envs", self.n_envs.into(), self.n_envs >= 1, "at least 1"),
            ("learning_rate", lr.into(), lr > 0.0 && lr.is_finite(), "a step size > 0"),
            ("batch_size", self.batch_size.into(), self.batch_size >= 1, "at least 1"),
            ("buffer_size", self.buffer_size.into(), self.buffer_size >= self.batch_size, &at_least_batch),
            ("tau", self.tau.into(), self.tau > 0.0 && self.tau <= 1.0, "a coefficient in (0, 1]"),
            ("gamma", self.gamma.into(), self.gamma > 0.0 && self.gamma <= 1.0, "a discount factor in (0, 1]"),
            ("train_freq", self.train_freq.into(), self.train_freq >= 1, "at least 1 step"),
            ("gradient_steps", self.gradient_steps.into(), self.gradient_steps >= 1 || self.gradient_steps == -1, "at least 1, or -1 for as many as environment steps"),
            ("target_update_interval", self.target_update_interval.into(), self.target_update_interval >= 1, "at least 1 step"),
            ("exploration_fraction", self.exploration_fraction.into(), fraction(self.exploration_fraction), "a fraction of the budget in [0, 1]"),
            ("exploration_initial_eps", self.exploration_initial_eps.into(), fraction(self.exploration_initial_eps), eps),
            ("exploration_final_eps", self.exploration_final_eps.into(), fraction(self.exploration_final_eps), eps),
            ("max_grad_norm", self.max_grad_norm.into(), self.max_grad_norm > 0.0, "a norm > 0"),
        ];
        if let Some((name, value, _, expected)) = ranges.into_iter().find(|range| !range.2) {
            return Err(invalid(Algo::Dqn, name, &value, expected));
        }
        Ok(ValidDqn {
            total_timesteps: self.n_timesteps.round() as u64,
            obs_dim: env.observation_space.dim(),
            n_actions,
            target_update_calls: (self.target_update_interval / self.n_envs).max(1) as u64,
            hyperparams: self,
        })
    }

    /// SB3's `get_linear_fn(initial, final, fraction)` at `progress_remaining`.
    fn exploration_rate(&self, progress_remaining: f64) -> f64 {
        let done = 1.0 - progress_remaining;
        if done > self.exploration_fraction || self.exploration_fraction == 0.0 {
            self.exploration_final_eps
        } else {
            let span = self.exploration_final_eps - self.exploration_initial_eps;
            self.exploration_initial_eps + done * span / self.exploration_fraction
        }
    }
}

/// Trains DQN on `env_id` with the RL Zoo's tuned hyperparameters (SB3's defaults where the
/// Zoo has none) overridden by `overrides`; `n_timesteps` replaces the budget.
pub fn train(
    env_id: &str,
    overrides: &Map<String, Value>,
    seed: u64,
    n_timesteps: Option<u64>,
    observer: &mut dyn Observer,
) -> Result<TrainOutput, Error> {
    let spec = tars_envs::spec(env_id)?;
    let hyperparams: DqnHyperparams =
        resolve_with_budget(Algo::Dqn, spec.id, overrides, n_timesteps)?;
    let resolved = serde_json::to_value(&hyperparams).expect("hyperparameters serialize");
    let valid = hyperparams.validate(spec)?;
    let (hp, total_timesteps) = (&valid.hyperparams, valid.total_timesteps);
    let (obs_dim, n_actions) = (valid.obs_dim, valid.n_actions);
    let (n_envs, batch_size) = (hp.n_envs, hp.batch_size);
    let gamma = hp.gamma as f32;

    // Seeding: environment `i` resets from `seed + i`; the agent draws from a fork of the
    // same seed, so its stream is not the first environment's.
    let mut rng = Rng::new(seed).fork();
    let mut vec_env = VecEnv::make(spec.id, n_envs, seed)?;

    // Networks: the Q-network with PyTorch's default init, and a target that starts as a copy.
    let (relu, init) = (Activation::Relu, Init::TorchDefault);
    let mut q_net = Mlp::new(obs_dim, &hp.net_arch, n_actions, relu, init, &mut rng);
    let mut q_net_target = q_net.clone();
    let mut optimizer = Adam::new(AdamConfig::default());
    optimizer.set_lr(hp.learning_rate.initial() as f32);

    // Storage: the replay buffer and the reused per-phase and per-step buffers.
    let expected =
        usize::try_from(total_timesteps).map_or(usize::MAX, |t| t.saturating_add(n_envs));
    let mut replay = ReplayBuffer::new(hp.buffer_size, expected, obs_dim, 1)?;
    let mut batch = Batch::default();
    // A training phase's sampled indices, its distinct ones, where each distinct index's
    // target value sits (`u32::MAX`: not sampled in this phase), and those values.
    let (mut sampled, mut distinct) = (Vec::new(), Vec::new());
    let mut slot_of = try_vec(hp.buffer_size, u32::MAX, "the replay buffer's index")?;
    let (mut next_obs, mut next_q) = (Vec::new(), Vec::new());
    let mut targets = vec![0.0f32; batch_size];
    let (mut batch_actions, mut grad_q) = (
        vec![0usize; batch_size],
        vec![0.0f32; batch_size * n_actions],
    );
    let mut last_obs = vec_env.obs.clone();
    let (mut actions, mut buffer_actions) = (vec![0usize; n_envs], vec![0.0f32; n_envs]);

    let mut returns = RecentReturns::default();
    let mut curve = Vec::new();
    let (mut num_timesteps, mut n_calls, mut next_report) = (0u64, 0u64, 1_000u64);
    // SB3 starts with `exploration_rate = 0` and sets it after the first step.
    let (mut exploration_rate, mut progress_remaining) = (0.0, 1.0);
    let (mut loss_sum, mut n_losses) = (0.0f64, 0u32);
    let mut stopped = false;
    while num_timesteps < total_timesteps && !stopped {
        // Rollout: `train_freq` steps of every environment (`collect_rollouts`).
        let mut n_collected = 0;
        while n_collected < hp.train_freq && !stopped {
            let random =
                num_timesteps < hp.learning_starts as u64 || rng.uniform01() < exploration_rate;
            if random {
                actions
                    .iter_mut()
                    .for_each(|a| *a = rng.below(n_actions as u64) as usize);
            } else {
                argmax_rows(q_net.forward(&last_obs), n_actions, &mut actions);
            }
            vec_env.step(Actions::Discrete(&actions));
            num_timesteps += n_envs as u64;
            n_collected += 1;
            buffer_actions
                .iter_mut()
                .zip(&actions)
                .for_each(|(b, &a)| *b = a as f32);
            replay.add_step(&last_obs, &buffer_actions, &vec_env);
            for env_idx in (0..n_envs).filter(|&env_idx| vec_env.done(env_idx)) {
                let episode_return = vec_env.episode_returns[env_idx];
                returns.push(episode_return);
                curve.push(point(
                    num_timesteps,
                    "charts/episodic_return",
                    episode_return,
                ));
            }
            last_obs.copy_from_slice(&vec_env.obs);
            progress_remaining = 1.0 - num_timesteps as f64 / total_timesteps as f64;

            // `_on_step`: the target update and the exploration schedule.
            n_calls += 1;
            if n_calls % valid.target_update_calls == 0 {
                q_net_target
                    .params
                    .polyak_update(&q_net.params, hp.tau as f32);
            }
            exploration_rate = hp.exploration_rate(progress_remaining);

            // Every 1,000 steps, and once at the end of the last rollout.
            let last = num_timesteps >= total_timesteps && n_collected == hp.train_freq;
            if num_timesteps >= next_report || last {
                next_report = (num_timesteps / 1_000 + 1) * 1_000;
                curve.push(point(num_timesteps, "charts/epsilon", exploration_rate));
                if n_losses > 0 {
                    curve.push(point(
                        num_timesteps,
                        "losses/td_loss",
                        loss_sum / f64::from(n_losses),
                    ));
                    (loss_sum, n_losses) = (0.0, 0);
                }
                let progress = Progress {
                    timesteps: num_timesteps,
                    total_timesteps,
                    recent_mean_return: returns.mean(),
                    episodes: returns.episodes,
                };
                let snapshot = || q_policy(spec.id, &q_net);
                stopped = report(observer, &progress, snapshot) == Control::Stop;
            }
        }
        if stopped || num_timesteps <= hp.learning_starts as u64 {
            continue;
        }

        // Training: `gradient_steps` Adam steps on the Huber TD loss (`DQN.train`).
        let gradient_steps = match hp.gradient_steps {
            -1 => n_collected * n_envs,
            steps => steps as usize,
        };
        optimizer.set_lr(hp.learning_rate.value(progress_remaining) as f32);
        // Targets: r + γ (1 - terminated) max_a' Q_target(s', a'), without gradient. Only
        // `_on_step` updates the target network, so it is fixed for the whole phase: draw
        // every minibatch first (the same draws, in the same order, as sampling before each
        // step) and evaluate Q_target once per distinct transition, in large batches. With
        // the Zoo's CartPole settings a phase samples 8,192 transitions from as few as 1,024.
        replay.sample_indices(gradient_steps * batch_size, &mut rng, &mut sampled);
        distinct.clear();
        for &idx in &sampled {
            if slot_of[idx] == u32::MAX {
                slot_of[idx] = distinct.len() as u32;
                distinct.push(idx);
            }
        }
        // The phase runs on two cores when this process has enabled them (`nn::pair`); the
        // weights are the same either way.
        on_two_cores(|| {
            next_q.resize(distinct.len(), 0.0);
            for (indices, next_q) in distinct
                .chunks(TARGET_BATCH)
                .zip(next_q.chunks_mut(TARGET_BATCH))
            {
                replay.gather_next_observations(indices, &mut next_obs);
                max_rows(q_net_target.forward(&next_obs), n_actions, next_q);
            }
            for indices in sampled.chunks_exact(batch_size) {
                replay.gather(indices, &mut batch);
                for (row, &idx) in indices.iter().enumerate() {
                    let next_q = next_q[slot_of[idx] as usize];
                    targets[row] = batch.rewards[row] + (1.0 - batch.dones[row]) * gamma * next_q;
                    batch_actions[row] = batch.actions[row] as usize;
                }
                let q_values = q_net.forward(&batch.observations);
                let loss = td_loss_backward(
                    q_values,
                    n_actions,
                    &batch_actions,
                    &targets,
                    TdLoss::Huber,
                    &mut grad_q,
                );
                q_net.params.zero_grad();
                q_net.backward(&grad_q);
                clip_grad_norm(&mut [&mut q_net.params], hp.max_grad_norm as f32);
                optimizer.step(&mut [&mut q_net.params]);
                loss_sum += f64::from(loss);
                n_losses += 1;
            }
        });
        distinct.iter().for_each(|&idx| slot_of[idx] = u32::MAX);
    }

    Ok(TrainOutput {
        policy: q_policy(spec.id, &q_net),
        hyperparams: resolved,
        timesteps: num_timesteps,
        curve,
    })
}

/// The greedy policy of a Q-network.
fn q_policy(env_id: &str, q_net: &Mlp) -> Policy {
    let net = PolicyNet::QValues { net: q_net.clone() };
    Policy::new(Algo::Dqn, env_id, net, None)
}

fn point(timestep: u64, key: &str, value: f64) -> CurvePoint {
    let key = key.to_string();
    CurvePoint {
        timestep,
        key,
        value,
    }
}

#[cfg(test)]
mod tests {

    use serde_json::json;

    use super::*;
    use crate::policy::Silent;

    fn overrides(value: Value) -> Map<String, Value> {
        value.as_object().expect("a JSON object").clone()
    }

    fn weights_hash(output: &TrainOutput) -> u64 {
        output.policy.weights_hash()
    }

    #[test]
    fn learns_cartpole_with_a_small_budget() {
        // The Zoo's CartPole settings with a 64-64 network and 15k of its 50k steps.
        let config = overrides(json!({"net_arch": [64, 64]}));
        let mut output = train("CartPole-v1", &config, 0, Some(15_000), &mut Silent).unwrap();
        // SB3 collects whole rollouts of `train_freq` steps: 59 × 256.
        assert_eq!(output.timesteps, 15_104);
        let evaluation = crate::evaluate(&mut output.policy, 20, 100, true).unwrap();
        assert!(
            evaluation.mean_reward() > 60.0,
            "random play scores ~22: {evaluation:?}"
        );
        for key in ["charts/episodic_return", "losses/td_loss", "charts/epsilon"] {
            assert!(
                output.curve.iter().any(|p| p.key == key),
                "no {key} in the curve"
            );
        }
        assert_eq!(
            output.hyperparams["learning_rate"],
            json!(2.3e-3),
            "the Zoo's value"
        );
    }

    #[test]
    fn same_seed_gives_the_same_weights() {
        let config = overrides(json!({"net_arch": [32, 32], "learning_starts": 200}));
        let run = |seed| {
            let output = train("CartPole-v1", &config, seed, Some(2_000), &mut Silent).unwrap();
            weights_hash(&output)
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
    }

    #[test]
    fn invalid_hyperparameters_name_the_field_the_value_and_what_is_valid() {
        let cases = [
            (
                json!({"gamma": 0}),
                "gamma = 0.0: expected a discount factor in (0, 1]",
            ),
            (
                json!({"lr": -1e-3}),
                "learning_rate = -0.001: expected a step size > 0",
            ),
            (
                json!({"exploration_final_eps": 1.5}),
                "exploration_final_eps = 1.5: expected a probability in [0, 1]",
            ),
            (
                json!({"buffer_size": 10}),
                "buffer_size = 10: expected at least batch_size (64)",
            ),
            (
                json!({"gradient_steps": 0}),
                "gradient_steps = 0: expected at least 1, or -1 for as many as environment steps",
            ),
        ];
        for (config, message) in cases {
            let err = train("CartPole-v1", &overrides(config), 0, None, &mut Silent).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("invalid DQN hyperparameter {message}")
            );
        }
        let err = train("Pendulum-v1", &Map::new(), 0, None, &mut Silent).unwrap_err();
        assert_eq!(
            err.to_string(),
            "DQN cannot train on Pendulum-v1: it needs a Discrete action space, found \
             Box(-2.0, 2.0, (1,)); use DDPG, PPO or A2C"
        );
    }

    #[test]
    fn the_seeds_bad_config_trains_without_error() {
        let config = overrides(json!({"learning_rate": 0.5, "gamma": 0.5, "epsilon": 0.9}));
        let output = train("CartPole-v1", &config, 0, Some(3_000), &mut Silent).unwrap();
        assert_eq!(output.hyperparams["exploration_final_eps"], json!(0.9));
        let (_, q_net) = output.policy.networks()[0];
        assert!(q_net.params.value.iter().all(|v| v.is_finite()));
    }

    #[test]
    fn an_observer_sees_progress_every_1000_steps_and_can_stop_training() {
        struct StopAt(u64, Vec<u64>);
        impl Observer for StopAt {
            fn on_progress(&mut self, progress: &Progress) -> Control {
                self.1.push(progress.timesteps);
                match progress.timesteps >= self.0 {
                    true => Control::Stop,
                    false => Control::Continue,
                }
            }
        }
        let mut observer = StopAt(3_000, Vec::new());
        let config = overrides(json!({"net_arch": [16]}));
        let output = train("CartPole-v1", &config, 0, Some(50_000), &mut observer).unwrap();
        assert_eq!(
            (output.timesteps, observer.1),
            (3_000, vec![1_000, 2_000, 3_000])
        );

        // The last rollout runs past the budget (2,000 → 8 × 256) and reports once, at its end.
        let mut observer = StopAt(u64::MAX, Vec::new());
        let output = train("CartPole-v1", &config, 0, Some(2_000), &mut observer).unwrap();
        assert_eq!(
            (output.timesteps, observer.1),
            (2_048, vec![1_000, 2_000, 2_048])
        );
    }

    #[test]
    fn exploration_decays_linearly_like_sb3s_get_linear_fn() {
        let hp = DqnHyperparams {
            exploration_fraction: 0.16,
            exploration_final_eps: 0.04,
            ..Default::default()
        };
        assert_eq!(hp.exploration_rate(1.0), 1.0);
        assert!((hp.exploration_rate(0.92) - 0.52).abs() < 1e-12);
        assert_eq!(hp.exploration_rate(0.5), 0.04);
    }
}
