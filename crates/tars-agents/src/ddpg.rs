//! Deep Deterministic Policy Gradient: an off-policy actor-critic for continuous actions
//! (Lillicrap et al., "Continuous control with deep reinforcement learning", ICLR 2016).
//! Mirrors `stable_baselines3/ddpg/ddpg.py`, which is SB3's TD3 (`td3/td3.py`) with one
//! critic, `policy_delay=1` and no target policy smoothing, over the loop of
//! `common/off_policy_algorithm.py`:
//!
//! 1. Collect `train_freq` steps per environment: uniformly random actions while
//!    `num_timesteps < learning_starts`, then the actor's `tanh` output. Actions live in the
//!    scaled space [-1, 1]; optional exploration noise is added there and clipped, the
//!    scaled action is what the replay buffer stores, and the environment receives it
//!    rescaled to its bounds (`_sample_action`). Truncated episodes bootstrap from their
//!    final observation; the noise process restarts when an episode ends.
//! 2. Once `num_timesteps > learning_starts`, take `gradient_steps` steps (`-1`: as many as
//!    environment steps just collected). Each fits the critic by MSE to
//!    `r + γ (1 - terminated) Q'(s', μ'(s'))`, then moves the actor along ∇ of
//!    `-Q(s, μ(s)).mean()` with the updated critic, then Polyak-averages both targets with
//!    `tau` (`TD3.train`). Actor and critic have their own Adam; there is no clipping.
//!
//! TD3 (`td3.rs`) runs this same loop with its three changes switched on ([`Twin`]): two
//! critics and the smaller of their targets, clipped noise on the target actions, and the
//! actor and targets updated every `policy_delay` critic updates.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tars_envs::{Actions, EnvSpec, Rng, Space, VecEnv};

use crate::hyperparams::{deserialize_net_arch, invalid, resolve_with_budget};
use crate::nn::pair::on_two_cores;
use crate::nn::{
    ActionBounds, Activation, Adam, AdamConfig, Critic, DeterministicActor, Init, Mlp, TdLoss,
    td_loss_backward,
};
use crate::noise::ActionNoise;
pub use crate::noise::NoiseType;
use crate::policy::{
    Control, CurvePoint, Observer, Policy, PolicyNet, Progress, RecentReturns, TrainOutput, report,
};
use crate::replay::{Batch, ReplayBuffer};
use crate::{Algo, Error, NetArch, Schedule};

/// DDPG's hyperparameters with SB3's names; `Default` is SB3's `DDPG(...)` defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DdpgHyperparams {
    /// Environment steps to train for, summed over environments: the RL Zoo's budget, or
    /// 1e5 where the Zoo has none (SB3 has no default; `learn` requires it).
    pub n_timesteps: f64,
    /// Environments stepped together.
    pub n_envs: usize,
    /// Adam's step size for both actor and critic: a constant or `"lin_<x>"`.
    pub learning_rate: Schedule,
    /// Transitions the replay buffer holds before overwriting the oldest.
    pub buffer_size: usize,
    /// Environment steps of uniformly random actions before the first gradient step.
    pub learning_starts: usize,
    /// Transitions per gradient step.
    pub batch_size: usize,
    /// Polyak coefficient of both target networks' soft updates.
    pub tau: f64,
    /// Discount factor.
    pub gamma: f64,
    /// Steps per environment collected between training phases.
    pub train_freq: usize,
    /// Gradient steps per training phase; -1 takes as many as environment steps collected.
    pub gradient_steps: i64,
    /// Exploration noise added to the scaled actions; none by default.
    pub action_noise: Option<NoiseType>,
    /// Standard deviation (sigma) of `action_noise`, in scaled action units ([-1, 1]).
    pub action_noise_std: f64,
    /// Hidden layer sizes of the actor (`pi`) and critic (`vf`, or `qf` as SB3 names it);
    /// a plain list sets both. ReLU.
    #[serde(deserialize_with = "deserialize_net_arch")]
    pub net_arch: NetArch,
}

impl Default for DdpgHyperparams {
    fn default() -> DdpgHyperparams {
        DdpgHyperparams {
            n_timesteps: 1e5,
            n_envs: 1,
            learning_rate: Schedule::Constant(1e-3),
            buffer_size: 1_000_000,
            learning_starts: 100,
            batch_size: 256,
            tau: 0.005,
            gamma: 0.99,
            train_freq: 1,
            gradient_steps: 1,
            action_noise: None,
            action_noise_std: 0.1,
            net_arch: NetArch::shared(&[400, 300]),
        }
    }
}

/// Hyperparameters that passed [`DdpgHyperparams::validate`], with what the loop derives.
#[derive(Debug, Clone)]
pub struct ValidDdpg {
    pub hyperparams: DdpgHyperparams,
    /// `n_timesteps` as a step count.
    pub total_timesteps: u64,
    pub obs_dim: usize,
    /// The environment's action bounds, for rescaling actions from [-1, 1].
    pub bounds: ActionBounds,
}

impl DdpgHyperparams {
    /// Checks every range and the action space; errors name the field and what is valid.
    pub fn validate(self, env: &EnvSpec) -> Result<ValidDdpg, Error> {
        self.validate_for(Algo::Ddpg, env)
    }

    /// [`DdpgHyperparams::validate`] with `algo`'s name in the errors (TD3 shares these).
    pub(crate) fn validate_for(self, algo: Algo, env: &EnvSpec) -> Result<ValidDdpg, Error> {
        let Space::Box { low, high } = env.action_space else {
            return Err(Error::UnsupportedEnv {
                algo: algo.name(),
                env: env.id.to_string(),
                why: format!(
                    "it needs a continuous (Box) action space, found {}; use DQN, PPO or A2C",
                    env.action_space.describe()
                ),
            });
        };
        let lr = self.learning_rate.initial();
        let at_least_batch = format!("at least batch_size ({})", self.batch_size);
        #[rustfmt::skip]
        let ranges: [(&str, Value, bool, &str); 10] = [
            ("n_timesteps", self.n_timesteps.into(), self.n_timesteps >= 1.0 && self.n_timesteps.is_finite(), "a step count ≥ 1"),
            ("n_envs", self.n_envs.into(), self.n_envs >= 1, "at least 1"),
            ("learning_rate", lr.into(), lr > 0.0 && lr.is_finite(), "a step size > 0"),
            ("batch_size", self.batch_size.into(), self.batch_size >= 1, "at least 1"),
            ("buffer_size", self.buffer_size.into(), self.buffer_size >= self.batch_size, &at_least_batch),
            ("tau", self.tau.into(), self.tau > 0.0 && self.tau <= 1.0, "a coefficient in (0, 1]"),
            ("gamma", self.gamma.into(), self.gamma > 0.0 && self.gamma <= 1.0, "a discount factor in (0, 1]"),
            ("train_freq", self.train_freq.into(), self.train_freq >= 1, "at least 1 step"),
            ("gradient_steps", self.gradient_steps.into(), self.gradient_steps >= 1 || self.gradient_steps == -1, "at least 1, or -1 for as many as environment steps"),
            ("action_noise_std", self.action_noise_std.into(), self.action_noise_std >= 0.0 && self.action_noise_std.is_finite(), "a standard deviation ≥ 0"),
        ];
        if let Some((name, value, _, expected)) = ranges.into_iter().find(|range| !range.2) {
            return Err(invalid(algo, name, &value, expected));
        }
        Ok(ValidDdpg {
            total_timesteps: self.n_timesteps.round() as u64,
            obs_dim: env.observation_space.dim(),
            bounds: ActionBounds::new(low.to_vec(), high.to_vec()),
            hyperparams: self,
        })
    }
}

/// Trains DDPG on `env_id` with the RL Zoo's tuned hyperparameters (SB3's defaults where the
/// Zoo has none) overridden by `overrides`; `n_timesteps` replaces the budget.
pub fn train(
    env_id: &str,
    overrides: &Map<String, Value>,
    seed: u64,
    n_timesteps: Option<u64>,
    observer: &mut dyn Observer,
) -> Result<TrainOutput, Error> {
    let spec = tars_envs::spec(env_id)?;
    let hyperparams: DdpgHyperparams =
        resolve_with_budget(Algo::Ddpg, spec.id, overrides, n_timesteps)?;
    let resolved = serde_json::to_value(&hyperparams).expect("hyperparameters serialize");
    let valid = hyperparams.validate(spec)?;
    run(Algo::Ddpg, spec, valid, None, resolved, seed, observer)
}

/// TD3's changes to the loop (`td3.rs`); DDPG runs without them.
#[derive(Debug, Clone, Copy)]
pub struct Twin {
    /// Critic updates per actor update (and target update).
    pub policy_delay: usize,
    /// Standard deviation of the noise added to the target actions.
    pub target_policy_noise: f64,
    /// That noise is clipped to ±`target_noise_clip`.
    pub target_noise_clip: f64,
}

/// The off-policy loop of `TD3.learn`, for DDPG (`twin: None`) and TD3.
pub(crate) fn run(
    algo: Algo,
    spec: &EnvSpec,
    valid: ValidDdpg,
    twin: Option<Twin>,
    resolved: Value,
    seed: u64,
    observer: &mut dyn Observer,
) -> Result<TrainOutput, Error> {
    let ValidDdpg {
        hyperparams: hp,
        total_timesteps,
        obs_dim,
        bounds,
    } = valid;
    let (n_envs, batch_size, action_dim) = (hp.n_envs, hp.batch_size, bounds.action_dim());
    let (gamma, tau) = (hp.gamma as f32, hp.tau as f32);
    let (n_critics, policy_delay) = match twin {
        Some(twin) => (2, twin.policy_delay),
        None => (1, 1),
    };

    // Seeding: environment `i` resets from `seed + i`; the agent draws from a fork of the
    // same seed, so its stream is not the first environment's.
    let mut rng = Rng::new(seed).fork();
    let mut vec_env = VecEnv::make(spec.id, n_envs, seed)?;

    // Networks: actor μ and the critics Q with PyTorch's default init, targets start as copies.
    let (relu, init) = (Activation::Relu, Init::TorchDefault);
    let actor_net = Mlp::new(obs_dim, &hp.net_arch.pi, action_dim, relu, init, &mut rng);
    let mut actor = DeterministicActor::new(actor_net);
    let mut actor_target = actor.clone();
    let mut critics: Vec<Critic> = (0..n_critics)
        .map(|_| {
            let input = obs_dim + action_dim;
            let net = Mlp::new(input, &hp.net_arch.vf, 1, relu, init, &mut rng);
            Critic::new(obs_dim, net)
        })
        .collect();
    let mut critic_targets = critics.clone();
    let lr = hp.learning_rate.initial() as f32;
    let adam = || {
        Adam::new(AdamConfig {
            lr,
            ..AdamConfig::default()
        })
    };
    let mut actor_optimizer = adam();
    // One Adam per critic: Adam is element-wise, so this is SB3's one Adam over both.
    let mut critic_optimizers: Vec<Adam> = (0..n_critics).map(|_| adam()).collect();
    let sigma = hp.action_noise_std;
    let mut action_noise = hp
        .action_noise
        .map(|kind| ActionNoise::new(kind, sigma, n_envs, action_dim));

    // Storage: the replay buffer and the reused per-step buffers.
    let expected =
        usize::try_from(total_timesteps).map_or(usize::MAX, |t| t.saturating_add(n_envs));
    let mut replay = ReplayBuffer::new(hp.buffer_size, expected, obs_dim, action_dim)?;
    let mut batch = Batch::default();
    let mut targets = vec![0.0f32; batch_size];
    let (mut next_actions, mut next_q) = (Vec::new(), vec![0.0f32; batch_size]);
    let (mut grad_q, critic_rows) = (vec![0.0f32; batch_size], vec![0usize; batch_size]);
    let actor_grad_q = vec![-1.0 / batch_size as f32; batch_size];
    let mut last_obs = vec_env.obs.clone();
    let mut scaled_actions = vec![0.0f32; n_envs * action_dim];
    let mut noise = vec![0.0f32; n_envs * action_dim];
    let mut env_actions = vec![0.0f32; n_envs * action_dim];

    let mut returns = RecentReturns::default();
    let mut curve = Vec::new();
    let (mut num_timesteps, mut next_report, mut progress_remaining) = (0u64, 1_000u64, 1.0);
    let (mut qf_loss_sum, mut n_critic_updates) = (0.0f64, 0u32);
    let (mut actor_loss_sum, mut n_actor_updates) = (0.0f64, 0u32);
    let mut n_updates = 0usize;
    let mut stopped = false;
    while num_timesteps < total_timesteps && !stopped {
        // Rollout: `train_freq` steps of every environment (`collect_rollouts`).
        let mut n_collected = 0;
        while n_collected < hp.train_freq && !stopped {
            if num_timesteps < hp.learning_starts as u64 {
                // `action_space.sample()` then `scale_action`: uniform in [-1, 1].
                scaled_actions
                    .iter_mut()
                    .for_each(|a| *a = rng.uniform(-1.0, 1.0) as f32);
            } else {
                scaled_actions.copy_from_slice(actor.forward(&last_obs));
            }
            if let Some(action_noise) = &mut action_noise {
                action_noise.sample(&mut rng, &mut noise);
                for (a, n) in scaled_actions.iter_mut().zip(&noise) {
                    *a = (*a + n).clamp(-1.0, 1.0);
                }
            }
            bounds.unscale(&scaled_actions, &mut env_actions);
            vec_env.step(Actions::Continuous(&env_actions));
            num_timesteps += n_envs as u64;
            n_collected += 1;
            replay.add_step(&last_obs, &scaled_actions, &vec_env);
            for env_idx in (0..n_envs).filter(|&env_idx| vec_env.done(env_idx)) {
                let episode_return = vec_env.episode_returns[env_idx];
                returns.push(episode_return);
                curve.push(point(
                    num_timesteps,
                    "charts/episodic_return",
                    episode_return,
                ));
                if let Some(action_noise) = &mut action_noise {
                    action_noise.reset(env_idx);
                }
            }
            last_obs.copy_from_slice(&vec_env.obs);
            progress_remaining = 1.0 - num_timesteps as f64 / total_timesteps as f64;

            // Every 1,000 steps, and once at the end of the last rollout.
            let last = num_timesteps >= total_timesteps && n_collected == hp.train_freq;
            if num_timesteps >= next_report || last {
                next_report = (num_timesteps / 1_000 + 1) * 1_000;
                if n_critic_updates > 0 {
                    let qf_loss = qf_loss_sum / f64::from(n_critic_updates);
                    curve.push(point(num_timesteps, "losses/qf_loss", qf_loss));
                    (qf_loss_sum, n_critic_updates) = (0.0, 0);
                }
                if n_actor_updates > 0 {
                    let actor_loss = actor_loss_sum / f64::from(n_actor_updates);
                    curve.push(point(num_timesteps, "losses/actor_loss", actor_loss));
                    (actor_loss_sum, n_actor_updates) = (0.0, 0);
                }
                let progress = Progress {
                    timesteps: num_timesteps,
                    total_timesteps,
                    recent_mean_return: returns.mean(),
                    episodes: returns.episodes,
                };
                let snapshot = || actor_policy(algo, spec.id, &actor, &bounds);
                stopped = report(observer, &progress, snapshot) == Control::Stop;
            }
        }
        if stopped || num_timesteps <= hp.learning_starts as u64 {
            continue;
        }

        // Training: the critics, then (every `policy_delay` updates) the actor and the
        // targets, per gradient step (`TD3.train`).
        let gradient_steps = match hp.gradient_steps {
            -1 => n_collected * n_envs,
            steps => steps as usize,
        };
        let lr = hp.learning_rate.value(progress_remaining) as f32;
        actor_optimizer.set_lr(lr);
        critic_optimizers.iter_mut().for_each(|o| o.set_lr(lr));
        // The phase runs on two cores when this process has enabled them (`nn::pair`); the
        // weights are the same either way.
        on_two_cores(|| {
            for _ in 0..gradient_steps {
                n_updates += 1;
                replay.sample(batch_size, &mut rng, &mut batch);
                // Target actions μ'(s'); TD3 adds clipped Gaussian noise (target smoothing).
                next_actions.clear();
                next_actions.extend_from_slice(actor_target.forward(&batch.next_observations));
                if let Some(twin) = twin {
                    let clip = twin.target_noise_clip;
                    for action in &mut next_actions {
                        let noise = (rng.normal() * twin.target_policy_noise).clamp(-clip, clip);
                        *action = (*action + noise as f32).clamp(-1.0, 1.0);
                    }
                }
                // Critic target: r + γ (1 - terminated) min_k Q'_k(s', a'), without gradient.
                for (k, critic_target) in critic_targets.iter_mut().enumerate() {
                    let q = critic_target.forward(&batch.next_observations, &next_actions);
                    if k == 0 {
                        next_q.copy_from_slice(q);
                    } else {
                        next_q.iter_mut().zip(q).for_each(|(m, &v)| *m = m.min(v));
                    }
                }
                for (idx, target) in targets.iter_mut().enumerate() {
                    *target = batch.rewards[idx] + (1.0 - batch.dones[idx]) * gamma * next_q[idx];
                }
                // Critics: each by MSE between its Q(s, a) and the shared target.
                let mut qf_loss = 0.0f64;
                for (critic, optimizer) in critics.iter_mut().zip(&mut critic_optimizers) {
                    let q_values = critic.forward(&batch.observations, &batch.actions);
                    let loss = td_loss_backward(
                        q_values,
                        1,
                        &critic_rows,
                        &targets,
                        TdLoss::Mse,
                        &mut grad_q,
                    );
                    critic.net.params.zero_grad();
                    critic.backward(&grad_q);
                    optimizer.step(&mut [&mut critic.net.params]);
                    qf_loss += f64::from(loss);
                }
                qf_loss_sum += qf_loss;
                n_critic_updates += 1;
                if !n_updates.is_multiple_of(policy_delay) {
                    continue;
                }
                // Actor: minimise -Q_1(s, μ(s)).mean() through the updated first critic.
                let actions = actor.forward(&batch.observations);
                let q_values = critics[0].forward(&batch.observations, actions);
                let actor_loss =
                    -q_values.iter().map(|&q| f64::from(q)).sum::<f64>() / batch_size as f64;
                actor.net.params.zero_grad();
                actor.backward(critics[0].action_grad(&actor_grad_q));
                actor_optimizer.step(&mut [&mut actor.net.params]);
                // Targets: Polyak averaging with `tau`.
                for (critic_target, critic) in critic_targets.iter_mut().zip(&critics) {
                    critic_target
                        .net
                        .params
                        .polyak_update(&critic.net.params, tau);
                }
                actor_target
                    .net
                    .params
                    .polyak_update(&actor.net.params, tau);
                actor_loss_sum += actor_loss;
                n_actor_updates += 1;
            }
        });
    }

    Ok(TrainOutput {
        policy: actor_policy(algo, spec.id, &actor, &bounds),
        hyperparams: resolved,
        timesteps: num_timesteps,
        curve,
    })
}

/// The deterministic policy of an actor.
fn actor_policy(
    algo: Algo,
    env_id: &str,
    actor: &DeterministicActor,
    bounds: &ActionBounds,
) -> Policy {
    let (actor, bounds) = (actor.clone(), bounds.clone());
    Policy::new(
        algo,
        env_id,
        PolicyNet::Deterministic { actor, bounds },
        None,
    )
}

fn point(timestep: u64, key: &str, value: f64) -> CurvePoint {
    CurvePoint {
        timestep,
        key: key.to_string(),
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

    /// A Pendulum run small enough for a test: 64-64 networks, learning after 1,000 steps.
    fn small() -> Value {
        json!({"net_arch": [64, 64], "learning_starts": 1000, "batch_size": 128})
    }

    fn mean(values: &[f64]) -> f64 {
        values.iter().sum::<f64>() / values.len() as f64
    }

    #[test]
    fn a_short_pendulum_run_improves_over_random_play() {
        let output = train(
            "Pendulum-v1",
            &overrides(small()),
            0,
            Some(4_000),
            &mut Silent,
        )
        .unwrap();
        let returns: Vec<f64> = (output.curve.iter())
            .filter(|p| p.key == "charts/episodic_return")
            .map(|p| p.value)
            .collect();
        // 20 episodes of 200 steps: five of random actions, the last three with the actor.
        assert_eq!(returns.len(), 20);
        let (random, trained) = (mean(&returns[..5]), mean(&returns[17..]));
        assert!(random < -900.0 && trained > -700.0, "{random} → {trained}");
        for key in ["losses/qf_loss", "losses/actor_loss"] {
            assert!(
                output.curve.iter().any(|p| p.key == key),
                "no {key} in the curve"
            );
        }
        assert_eq!(output.hyperparams["gamma"], json!(0.98), "the Zoo's value");
    }

    #[test]
    fn same_seed_gives_the_same_weights() {
        let mut config = overrides(small());
        config.insert("learning_starts".into(), json!(300));
        config.insert("action_noise".into(), json!("ornstein-uhlenbeck"));
        let run = |seed| {
            let output = train("Pendulum-v1", &config, seed, Some(600), &mut Silent).unwrap();
            output.policy.weights_hash()
        };
        assert_eq!(run(3), run(3));
        assert_ne!(run(3), run(4));
    }

    #[test]
    fn invalid_hyperparameters_name_the_field_the_value_and_what_is_valid() {
        let cases = [
            (
                json!({"tau": 0}),
                "tau = 0.0: expected a coefficient in (0, 1]",
            ),
            (
                json!({"learning_rate": -1}),
                "learning_rate = -1.0: expected a step size > 0",
            ),
            (
                json!({"action_noise_std": -0.1}),
                "action_noise_std = -0.1: expected a standard deviation ≥ 0",
            ),
            (
                json!({"action_noise": "gaussian"}),
                "action_noise = \"gaussian\": expected `normal` or `ornstein-uhlenbeck`",
            ),
        ];
        for (config, message) in cases {
            let err = train("Pendulum-v1", &overrides(config), 0, None, &mut Silent).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("invalid DDPG hyperparameter {message}")
            );
        }
        let err = train("CartPole-v1", &Map::new(), 0, None, &mut Silent).unwrap_err();
        assert_eq!(
            err.to_string(),
            "DDPG cannot train on CartPole-v1: it needs a continuous (Box) action space, found \
             Discrete(2); use DQN, PPO or A2C"
        );
    }

    #[test]
    fn an_observer_can_stop_training() {
        struct StopAtFirstReport;
        impl Observer for StopAtFirstReport {
            fn on_progress(&mut self, _: &Progress) -> Control {
                Control::Stop
            }
        }
        let output = train("Pendulum-v1", &Map::new(), 0, None, &mut StopAtFirstReport).unwrap();
        assert_eq!(output.timesteps, 1_000);
    }
}
