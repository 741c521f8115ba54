//! Advantage Actor-Critic, the synchronous variant of A3C (Mnih et al. 2016, "Asynchronous
//! Methods for Deep Reinforcement Learning", arXiv:1602.01783), with Stable-Baselines3's
//! semantics: `stable_baselines3/a2c/a2c.py` (`A2C.train`) on top of
//! `common/on_policy_algorithm.py` (`collect_rollouts`, `learn`), whose shared pieces live in
//! [`crate::rollout`].
//!
//! One iteration: collect `n_steps` steps in each of `n_envs` environments, compute GAE(λ)
//! advantages (λ = 1 by default: n-step returns), then take one gradient step on the whole
//! rollout, minimising `-A·log π(a|s) + vf_coef·MSE(V, R) - ent_coef·H` with RMSprop.
//! Discrete and continuous action spaces differ only in the policy head (Categorical,
//! diagonal Gaussian, or gSDE with `use_sde`).

use crate::hyperparams::{
    self, ActivationFn, Algo, NetArch, Schedule, check, deserialize_net_arch,
};
use crate::nn::{Adam, AdamConfig, Params, RmsProp, RmsPropConfig, clip_grad_norm};
use crate::policy::report;
use crate::rollout::{
    ActorCritic, Collector, PolicyConfig, RolloutBuffer, ensure, ensure_action_space,
    ensure_schedule, ensure_sde, ensure_timesteps,
};
use crate::{Control, Error, Observer, TrainOutput};
use serde::{Deserialize, Serialize};
use tars_envs::{EnvSpec, Rng};

/// SB3's A2C logs (and we record losses) every this many iterations (`log_interval=100`).
const LOG_INTERVAL: u64 = 100;

/// A2C's hyperparameters with SB3's names; `Default` is SB3's defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct A2cHyperparams {
    /// The optimiser's step size, constant or `"lin_<x>"` (decays linearly to 0 over training).
    pub learning_rate: Schedule,
    /// Steps collected per environment per rollout (one gradient step each).
    pub n_steps: usize,
    /// Discount factor per step.
    pub gamma: f64,
    /// GAE's λ: 1 (the default) gives plain n-step returns.
    pub gae_lambda: f64,
    /// Weight of the entropy bonus in the loss.
    pub ent_coef: f64,
    /// Weight of the value loss in the loss.
    pub vf_coef: f64,
    /// Global L2 norm the gradients are clipped to before each step.
    pub max_grad_norm: f64,
    /// RMSprop's ε, added to the root-mean-square (SB3 uses 1e-5, PyTorch 1e-8).
    pub rms_prop_eps: f64,
    /// RMSprop (α = 0.99) as in the A3C paper; `false` uses Adam (ε = 1e-5).
    pub use_rms_prop: bool,
    /// Normalise advantages over each rollout (mean 0, std 1).
    pub normalize_advantage: bool,
    /// Environments stepped in parallel (one batch).
    pub n_envs: usize,
    /// Training budget in environment steps (summed over environments).
    pub n_timesteps: f64,
    /// Wrap the environments in `VecNormalize` (observations and rewards).
    pub normalize: bool,
    /// Hidden layer sizes of the separate policy (`pi`) and value (`vf`) networks.
    #[serde(deserialize_with = "deserialize_net_arch")]
    pub net_arch: NetArch,
    /// Initial log standard deviation of the Gaussian or gSDE head (continuous actions only).
    pub log_std_init: f64,
    /// Orthogonal initialisation (gains √2, 0.01, 1) instead of PyTorch's default.
    pub ortho_init: bool,
    /// Activation after every hidden layer of both networks: `"tanh"` or `"relu"` (the Zoo's
    /// `nn.Tanh` and `nn.ReLU` are accepted).
    pub activation_fn: ActivationFn,
    /// Generalized State-Dependent Exploration (gSDE) instead of independent Gaussian noise
    /// per step; continuous actions only.
    pub use_sde: bool,
    /// With gSDE, new exploration matrices every this many steps; -1 draws them only at the
    /// start of each rollout.
    pub sde_sample_freq: i64,
}

impl Default for A2cHyperparams {
    fn default() -> Self {
        A2cHyperparams {
            learning_rate: Schedule::Constant(7e-4),
            n_steps: 5,
            gamma: 0.99,
            gae_lambda: 1.0,
            ent_coef: 0.0,
            vf_coef: 0.5,
            max_grad_norm: 0.5,
            rms_prop_eps: 1e-5,
            use_rms_prop: true,
            normalize_advantage: false,
            n_envs: 1,
            n_timesteps: 1e6,
            normalize: false,
            net_arch: NetArch::shared(&[64, 64]),
            log_std_init: 0.0,
            ortho_init: true,
            activation_fn: ActivationFn::Tanh,
            use_sde: false,
            sde_sample_freq: -1,
        }
    }
}

/// Hyperparameters that passed [`A2cHyperparams::validate`].
#[derive(Debug, Clone)]
pub struct ValidA2c {
    pub hyperparams: A2cHyperparams,
    /// `n_steps * n_envs`: transitions per rollout, all in one gradient step.
    pub rollout_size: usize,
    pub total_timesteps: u64,
}

impl A2cHyperparams {
    /// Checks every range and relation, naming the field, its value and what is valid.
    pub fn validate(self, env: &EnvSpec) -> Result<ValidA2c, Error> {
        let (algo, h) = (Algo::A2c, &self);
        ensure_schedule(algo, "learning_rate", h.learning_rate)?;
        let n_envs_ok = (1..=1024).contains(&h.n_envs);
        ensure(
            n_envs_ok,
            algo,
            "n_envs",
            h.n_envs,
            "an integer in [1, 1024]",
        )?;
        let n_steps_ok = (1..=1 << 20).contains(&h.n_steps);
        ensure(
            n_steps_ok,
            algo,
            "n_steps",
            h.n_steps,
            "an integer in [1, 1048576]",
        )?;
        let rollout_size = h.n_steps * h.n_envs;
        let what = "n_steps * n_envs ≥ 2 when normalize_advantage is true";
        let size_ok = rollout_size >= 2 || !h.normalize_advantage;
        ensure(size_ok, algo, "n_steps", h.n_steps, what)?;
        let gamma_ok = h.gamma > 0.0 && h.gamma <= 1.0;
        check(algo, "gamma", h.gamma, gamma_ok, "a number in (0, 1]")?;
        let lambda_ok = (0.0..=1.0).contains(&h.gae_lambda);
        check(
            algo,
            "gae_lambda",
            h.gae_lambda,
            lambda_ok,
            "a number in [0, 1]",
        )?;
        check(
            algo,
            "ent_coef",
            h.ent_coef,
            h.ent_coef >= 0.0,
            "a number ≥ 0",
        )?;
        check(algo, "vf_coef", h.vf_coef, h.vf_coef >= 0.0, "a number ≥ 0")?;
        let norm_ok = h.max_grad_norm > 0.0;
        check(
            algo,
            "max_grad_norm",
            h.max_grad_norm,
            norm_ok,
            "a number > 0",
        )?;
        let eps_ok = h.rms_prop_eps > 0.0 && h.rms_prop_eps < 1.0;
        check(
            algo,
            "rms_prop_eps",
            h.rms_prop_eps,
            eps_ok,
            "a number in (0, 1)",
        )?;
        check(
            algo,
            "log_std_init",
            h.log_std_init,
            true,
            "a finite number",
        )?;
        let total_timesteps = ensure_timesteps(algo, h.n_timesteps)?;
        ensure_action_space(algo, env)?;
        ensure_sde(algo, env, h.use_sde, h.sde_sample_freq)?;
        Ok(ValidA2c {
            rollout_size,
            total_timesteps,
            hyperparams: self,
        })
    }
}

/// RMSprop or Adam, as `use_rms_prop` chooses.
enum Optimizer {
    RmsProp(RmsProp),
    Adam(Adam),
}

impl Optimizer {
    fn set_lr(&mut self, lr: f32) {
        match self {
            Optimizer::RmsProp(optimizer) => optimizer.set_lr(lr),
            Optimizer::Adam(optimizer) => optimizer.set_lr(lr),
        }
    }

    fn step(&mut self, params: &mut [&mut Params]) {
        match self {
            Optimizer::RmsProp(optimizer) => optimizer.step(params),
            Optimizer::Adam(optimizer) => optimizer.step(params),
        }
    }
}

/// Trains A2C on `env_id` with the RL Zoo's tuned hyperparameters for it, `overrides` on top,
/// and `n_timesteps` (if given) as the budget. Reports to `observer` after every rollout and
/// stops early when it answers [`Control::Stop`].
pub fn train(
    env_id: &str,
    overrides: &serde_json::Map<String, serde_json::Value>,
    seed: u64,
    n_timesteps: Option<u64>,
    observer: &mut dyn Observer,
) -> Result<TrainOutput, Error> {
    // Hyperparameters: the Zoo's values, the caller's overrides, then validation.
    let hyperparams: A2cHyperparams =
        hyperparams::resolve_with_budget(Algo::A2c, env_id, overrides, n_timesteps)?;
    let spec = tars_envs::spec(env_id)?;
    let valid = hyperparams.validate(spec)?;
    let h = &valid.hyperparams;
    let record = serde_json::to_value(h).expect("hyperparameters serialise");

    // Seeding: one generator, forked for environments, actions and initialisation.
    let mut rng = Rng::new(seed);
    let mut collector = Collector::new(
        env_id,
        h.n_envs,
        h.normalize,
        h.gamma,
        valid.total_timesteps,
        &mut rng,
    )?;
    let mut init_rng = rng.fork();

    // Networks and optimizer: separate pi and vf MLPs, one optimizer over both and log_std.
    let config = PolicyConfig {
        net_arch: &h.net_arch,
        activation: h.activation_fn.activation(),
        ortho_init: h.ortho_init,
        log_std_init: h.log_std_init,
        use_sde: h.use_sde,
    };
    let mut agent = ActorCritic::new(spec, config, &mut init_rng);
    let lr = h.learning_rate.initial() as f32;
    let mut optimizer = if h.use_rms_prop {
        let config = RmsPropConfig {
            eps: h.rms_prop_eps as f32,
            ..RmsPropConfig::sb3_a2c(lr)
        };
        Optimizer::RmsProp(RmsProp::new(config))
    } else {
        Optimizer::Adam(Adam::new(AdamConfig::sb3_actor_critic(lr)))
    };

    // Storage: the rollout (trained on whole, in order) and the loss gradients.
    let mut buffer = RolloutBuffer::new(
        h.n_steps,
        h.n_envs,
        spec.observation_space.dim(),
        agent.action_width(),
    )?;
    let batch = valid.rollout_size;
    let scale = 1.0 / batch as f32;
    let (mut d_log_prob, mut d_values) = (vec![0.0f32; batch], vec![0.0f32; batch]);
    let (ent_coef, vf_coef) = (h.ent_coef as f32, h.vf_coef as f32);

    let mut iteration = 0u64;
    while collector.timesteps < valid.total_timesteps {
        // Rollout: n_steps in every environment with the current policy, then GAE(λ).
        collector.collect(
            &mut agent,
            &mut buffer,
            h.gae_lambda as f32,
            h.sde_sample_freq,
        );
        iteration += 1;

        // Schedule: SB3 evaluates it at the progress remaining after the rollout.
        optimizer.set_lr(h.learning_rate.value(collector.progress_remaining()) as f32);

        // Losses: the whole rollout as one batch.
        agent.evaluate_actions(&buffer.obs, &buffer.actions);
        let advantages = &mut buffer.advantages;
        if h.normalize_advantage {
            let mean = advantages.iter().sum::<f32>() * scale;
            let var =
                advantages.iter().map(|a| (a - mean).powi(2)).sum::<f32>() / (batch - 1) as f32;
            let std = var.sqrt();
            advantages
                .iter_mut()
                .for_each(|a| *a = (*a - mean) / (std + 1e-8));
        }
        // Policy gradient loss -mean(A · log π(a|s)) and value loss MSE(V, R).
        let (mut policy_loss, mut value_loss) = (0.0f32, 0.0f32);
        for (row, value) in agent.vf.output().iter().enumerate() {
            policy_loss -= advantages[row] * agent.log_prob[row] * scale;
            d_log_prob[row] = -advantages[row] * scale;
            let error = value - buffer.returns[row];
            value_loss += error * error * scale;
            d_values[row] = vf_coef * 2.0 * error * scale;
        }
        let entropy = agent.entropy.iter().sum::<f32>() * scale;

        // Step: gradients of policy_loss + ent_coef·(-entropy) + vf_coef·value_loss.
        agent.zero_grad();
        agent.backward(&buffer.actions, &d_log_prob, -ent_coef * scale, &d_values);
        let mut params = agent.params();
        clip_grad_norm(&mut params, h.max_grad_norm as f32);
        optimizer.step(&mut params);

        // Report: losses every LOG_INTERVAL iterations as SB3 logs them, progress always.
        if iteration.is_multiple_of(LOG_INTERVAL) {
            collector.log("losses/policy_loss", f64::from(policy_loss));
            collector.log("losses/value_loss", f64::from(value_loss));
            collector.log("losses/entropy", f64::from(entropy));
        }
        let snapshot = || collector.policy(&agent, Algo::A2c, env_id);
        if report(observer, &collector.progress(), snapshot) == Control::Stop {
            break;
        }
    }
    Ok(collector.finish(agent, Algo::A2c, env_id, record))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollout::testutil::{
        Train, check_continuous_smoke, check_deterministic, check_invalid,
        mean_deterministic_return, train_silently,
    };
    use serde_json::json;

    const TRAIN: Train = train;

    #[test]
    fn learns_cartpole_with_a_small_budget() {
        // Random play scores about 22; the Zoo's budget is 5e5 steps.
        let output = train_silently(TRAIN, "CartPole-v1", 0, 200_000);
        let mut policy = output.policy;
        let mean_return = mean_deterministic_return(&mut policy, 20, 99);
        assert!(mean_return > 300.0, "mean return {mean_return}");
        let logged = |key| output.curve.iter().filter(|point| point.key == key).count();
        assert_eq!(
            logged("losses/value_loss"),
            200_000 / 40 / 100,
            "every 100 iterations"
        );
        assert!(logged("charts/episodic_return") > 100);
    }

    #[test]
    fn same_seed_gives_the_same_weights() {
        check_deterministic(TRAIN, "CartPole-v1", 2000);
        // The Zoo's Pendulum entry uses gSDE.
        check_deterministic(TRAIN, "Pendulum-v1", 2048);
    }

    #[test]
    fn continuous_actions_use_a_gaussian_within_bounds_and_keep_obs_statistics() {
        // The Zoo's Pendulum entry normalises observations and rewards.
        let policy = check_continuous_smoke(TRAIN, "Pendulum-v1", 2000);
        let obs_norm = policy.obs_norm.expect("VecNormalize statistics");
        assert!(obs_norm.count > 2000.0 && obs_norm.var.iter().all(|&v| v > 0.0));
    }

    #[test]
    fn invalid_hyperparameters_name_the_field_value_and_valid_range() {
        let unknown = "unknown A2C hyperparameter 'clip_range'; valid names: activation_fn, \
            ent_coef, gae_lambda, gamma, learning_rate, log_std_init, max_grad_norm, n_envs, \
            n_steps, n_timesteps, net_arch, normalize, normalize_advantage, ortho_init, \
            rms_prop_eps, sde_sample_freq, use_rms_prop, use_sde, vf_coef";
        check_invalid(
            TRAIN,
            "CartPole-v1",
            &[
                (json!({"clip_range": 0.2}), unknown),
                (
                    json!({"gamma": 1.5}),
                    "invalid A2C hyperparameter gamma = 1.5: expected a number in (0, 1]",
                ),
                (
                    json!({"lr": -0.001}),
                    "invalid A2C hyperparameter learning_rate = -0.001: expected a positive \
                     number or \"lin_<x>\" with x > 0",
                ),
                (
                    json!({"rms_prop_eps": 0.0}),
                    "invalid A2C hyperparameter rms_prop_eps = 0.0: expected a number in (0, 1)",
                ),
                (
                    json!({"use_sde": true}),
                    "invalid A2C hyperparameter use_sde = true: expected false on CartPole-v1: \
                     gSDE needs continuous actions and its action space is Discrete(2)",
                ),
                (
                    json!({"sde_sample_freq": -2}),
                    "invalid A2C hyperparameter sde_sample_freq = -2: expected -1 (new gSDE noise \
                     only at the start of each rollout) or an integer ≥ 1",
                ),
                (
                    json!({"n_steps": 1, "n_envs": 1, "normalize_advantage": true}),
                    "invalid A2C hyperparameter n_steps = 1: expected n_steps * n_envs ≥ 2 when \
                     normalize_advantage is true",
                ),
            ],
        );
    }
}
