//! What PPO and A2C share, as SB3 shares it between them:
//!
//! - [`ActorCritic`]: `common/policies.py: ActorCriticPolicy` with separate `pi` and `vf`
//!   networks (`net_arch=dict(pi=[64, 64], vf=[64, 64])`, tanh, orthogonal init) and a
//!   [`Categorical`], state-independent [`DiagGaussian`] or gSDE ([`StateDependentNoise`])
//!   head.
//! - [`RolloutBuffer`]: `common/buffers.py: RolloutBuffer`, with GAE exactly as
//!   `compute_returns_and_advantage`.
//! - [`Collector`]: the environments, optional [`VecNormalize`], and
//!   `common/on_policy_algorithm.py: OnPolicyAlgorithm.collect_rollouts`, including the
//!   time-limit bootstrap `reward += gamma * V(final_obs)` for truncated episodes and gSDE's
//!   `reset_noise` every `sde_sample_freq` steps.

use crate::budget::try_vec;
use crate::hyperparams::{self, NetArch, Schedule};
use crate::nn::{
    ActionBounds, Activation, Categorical, DiagGaussian, Init, Mlp, Params, StateDependentNoise,
};
use crate::normalize::{StepOut, StepView, VecNormalize};
use crate::policy::RecentReturns;
use crate::{Algo, CurvePoint, Error, Policy, PolicyNet, Progress, TrainOutput};
use serde::Serialize;
use tars_envs::{Actions, EnvSpec, Rng, Space, VecEnv};

/// The action distribution on top of the policy network.
#[derive(Debug, Clone)]
pub(crate) enum Head {
    Categorical(Categorical),
    Gaussian {
        dist: DiagGaussian,
        bounds: ActionBounds,
    },
    /// gSDE (`use_sde=True`): noise `latent·W` from the policy network's last hidden layer.
    Gsde {
        dist: StateDependentNoise,
        bounds: ActionBounds,
    },
}

/// SB3's `policy_kwargs` for `ActorCriticPolicy`, and `use_sde`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PolicyConfig<'a> {
    pub net_arch: &'a NetArch,
    /// `activation_fn`, after every hidden layer of both networks.
    pub activation: Activation,
    /// Orthogonal initialisation (gains √2, 0.01, 1) instead of PyTorch's default.
    pub ortho_init: bool,
    /// Initial `log_std` of the Gaussian or gSDE head.
    pub log_std_init: f64,
    /// gSDE instead of the state-independent Gaussian on continuous actions.
    pub use_sde: bool,
}

/// SB3's `ActorCriticPolicy` with separate policy and value networks.
#[derive(Debug, Clone)]
pub(crate) struct ActorCritic {
    /// `obs → pi hidden… → logits or mean` (`mlp_extractor.policy_net` + `action_net`).
    pub pi: Mlp,
    /// `obs → vf hidden… → value` (`mlp_extractor.value_net` + `value_net`).
    pub vf: Mlp,
    pub head: Head,
    /// Per-row log-probability and entropy from the last [`ActorCritic::evaluate_actions`].
    pub log_prob: Vec<f32>,
    pub entropy: Vec<f32>,
    /// Discrete actions, or continuous actions clipped to the bounds, for the environments.
    env_discrete: Vec<usize>,
    env_continuous: Vec<f32>,
    grad_pi: Vec<f32>,
}

impl ActorCritic {
    /// The policy for `spec`'s spaces; `config.use_sde` must only be set for continuous actions.
    pub fn new(spec: &EnvSpec, config: PolicyConfig<'_>, rng: &mut Rng) -> ActorCritic {
        let (pi_init, vf_init) = if config.ortho_init {
            (Init::ORTHO_POLICY, Init::ORTHO_VALUE)
        } else {
            (Init::TorchDefault, Init::TorchDefault)
        };
        let obs_dim = spec.observation_space.dim();
        let (net_arch, log_std_init) = (config.net_arch, config.log_std_init as f32);
        let (head, out_dim) = match spec.action_space {
            Space::Discrete { n } => (Head::Categorical(Categorical::new(n)), n),
            Space::Box { low, high } => {
                let bounds = ActionBounds::new(low.to_vec(), high.to_vec());
                let head = if config.use_sde {
                    // SB3's `latent_sde` is `latent_pi`: the last hidden layer of `pi`.
                    let latent_dim = net_arch.pi.last().copied().unwrap_or(obs_dim);
                    let dist = StateDependentNoise::new(latent_dim, low.len(), log_std_init);
                    Head::Gsde { dist, bounds }
                } else {
                    let dist = DiagGaussian::new(low.len(), log_std_init);
                    Head::Gaussian { dist, bounds }
                };
                (head, low.len())
            }
        };
        let activation = config.activation;
        ActorCritic {
            pi: Mlp::new(obs_dim, &net_arch.pi, out_dim, activation, pi_init, rng),
            vf: Mlp::new(obs_dim, &net_arch.vf, 1, activation, vf_init, rng),
            head,
            log_prob: Vec::new(),
            entropy: Vec::new(),
            env_discrete: Vec::new(),
            env_continuous: Vec::new(),
            grad_pi: Vec::new(),
        }
    }

    /// Floats per stored action: 1 (an index) for discrete spaces, the dimension otherwise.
    pub fn action_width(&self) -> usize {
        match &self.head {
            Head::Categorical(_) => 1,
            Head::Gaussian { dist, .. } => dist.action_dim(),
            Head::Gsde { dist, .. } => dist.action_dim(),
        }
    }

    /// Every trained parameter set, in a fixed order for the optimiser and gradient clipping.
    pub fn params(&mut self) -> Vec<&mut Params> {
        let mut params = vec![&mut self.pi.params, &mut self.vf.params];
        match &mut self.head {
            Head::Categorical(_) => {}
            Head::Gaussian { dist, .. } => params.push(&mut dist.log_std),
            Head::Gsde { dist, .. } => params.push(&mut dist.log_std),
        }
        params
    }

    /// SB3's `policy.reset_noise(n_envs)`: new gSDE exploration matrices, one per
    /// environment; other heads draw nothing.
    pub fn reset_noise(&mut self, n_envs: usize, rng: &mut Rng) {
        if let Head::Gsde { dist, .. } = &mut self.head {
            dist.sample_weights(n_envs, rng);
        }
    }

    /// `policy.forward(obs)` during a rollout: samples `actions` (unclipped, as stored in the
    /// buffer) and writes their log-probabilities and the values.
    fn act(
        &mut self,
        obs: &[f32],
        rng: &mut Rng,
        actions: &mut [f32],
        log_prob: &mut [f32],
        values: &mut [f32],
    ) {
        self.pi.forward(obs);
        let output = self.pi.output();
        match &mut self.head {
            Head::Categorical(dist) => {
                self.env_discrete.clear();
                for (row, action) in output.chunks_exact(dist.n_actions).zip(actions.iter_mut()) {
                    let sampled = dist.sample(row, rng);
                    self.env_discrete.push(sampled);
                    *action = sampled as f32;
                }
                self.entropy.resize(log_prob.len(), 0.0);
                dist.log_prob_entropy(output, &self.env_discrete, log_prob, &mut self.entropy);
            }
            Head::Gaussian { dist, bounds } => {
                let dim = dist.action_dim();
                for (mean, action) in output.chunks_exact(dim).zip(actions.chunks_exact_mut(dim)) {
                    dist.sample(mean, rng, action);
                }
                dist.log_prob(output, actions, log_prob);
                // SB3 clips what the environment receives, not what the buffer stores.
                self.env_continuous.clear();
                self.env_continuous.extend_from_slice(actions);
                bounds.clip(&mut self.env_continuous);
            }
            Head::Gsde { dist, bounds } => {
                // Environment `i` explores with exploration matrix `i`.
                let (dim, latent) = (dist.action_dim(), self.pi.last_hidden());
                let rows = output
                    .chunks_exact(dim)
                    .zip(latent.chunks_exact(dist.latent_dim()))
                    .zip(actions.chunks_exact_mut(dim));
                for (env_idx, ((mean, features), action)) in rows.enumerate() {
                    dist.sample(mean, features, env_idx, action);
                }
                self.entropy.resize(log_prob.len(), 0.0);
                dist.log_prob_entropy(output, latent, actions, log_prob, &mut self.entropy);
                self.env_continuous.clear();
                self.env_continuous.extend_from_slice(actions);
                bounds.clip(&mut self.env_continuous);
            }
        }
        values.copy_from_slice(self.vf.forward(obs));
    }

    /// The actions of the last [`ActorCritic::act`], as the environments take them.
    fn env_actions(&self) -> Actions<'_> {
        match self.head {
            Head::Categorical(_) => Actions::Discrete(&self.env_discrete),
            Head::Gaussian { .. } | Head::Gsde { .. } => Actions::Continuous(&self.env_continuous),
        }
    }

    /// `policy.evaluate_actions(obs, actions)`: fills [`ActorCritic::log_prob`] and
    /// [`ActorCritic::entropy`]; the values are then `self.vf.output()`.
    pub fn evaluate_actions(&mut self, obs: &[f32], actions: &[f32]) {
        let batch = obs.len() / self.pi.in_dim();
        self.log_prob.resize(batch, 0.0);
        self.entropy.resize(batch, 0.0);
        self.pi.forward(obs);
        let output = self.pi.output();
        match &mut self.head {
            Head::Categorical(dist) => {
                self.env_discrete.clear();
                self.env_discrete
                    .extend(actions.iter().map(|&a| a as usize));
                let (log_prob, entropy) = (&mut self.log_prob, &mut self.entropy);
                dist.log_prob_entropy(output, &self.env_discrete, log_prob, entropy);
            }
            Head::Gaussian { dist, .. } => {
                dist.log_prob(output, actions, &mut self.log_prob);
                self.entropy.fill(dist.entropy());
            }
            Head::Gsde { dist, .. } => {
                let latent = self.pi.last_hidden();
                let (log_prob, entropy) = (&mut self.log_prob, &mut self.entropy);
                dist.log_prob_entropy(output, latent, actions, log_prob, entropy);
            }
        }
        self.vf.forward(obs);
    }

    /// `optimizer.zero_grad()`.
    pub fn zero_grad(&mut self) {
        self.params().into_iter().for_each(|p| p.zero_grad());
    }

    /// Backpropagates a loss through the last [`ActorCritic::evaluate_actions`], given its
    /// gradient with respect to each row's log-probability and value and to every row's
    /// entropy. Gradients accumulate, so zero them first.
    pub fn backward(
        &mut self,
        actions: &[f32],
        d_log_prob: &[f32],
        d_entropy: f32,
        d_values: &[f32],
    ) {
        let output = self.pi.output();
        self.grad_pi.resize(output.len(), 0.0);
        match &mut self.head {
            Head::Categorical(dist) => dist.backward(
                output,
                &self.env_discrete,
                d_log_prob,
                d_entropy,
                &mut self.grad_pi,
            ),
            Head::Gaussian { dist, .. } => {
                dist.backward(output, actions, d_log_prob, d_entropy, &mut self.grad_pi)
            }
            Head::Gsde { dist, .. } => {
                let latent = self.pi.last_hidden();
                let grad_mean = &mut self.grad_pi;
                dist.backward(output, latent, actions, d_log_prob, d_entropy, grad_mean)
            }
        }
        self.pi.backward(&self.grad_pi);
        self.vf.backward(d_values);
    }

    /// The acting part (policy network and head) with the observation statistics it was
    /// trained on, as a [`Policy`].
    pub fn to_policy(
        &self,
        algo: Algo,
        env_id: &str,
        obs_norm: Option<crate::ObsNormalizer>,
    ) -> Policy {
        let net = self.pi.clone();
        let net = match self.head.clone() {
            Head::Categorical(head) => PolicyNet::Categorical { net, head },
            Head::Gaussian { dist, bounds } => PolicyNet::Gaussian {
                net,
                head: dist,
                bounds,
            },
            Head::Gsde { dist, bounds } => PolicyNet::Gsde {
                net,
                head: dist,
                bounds,
            },
        };
        Policy::new(algo, env_id, net, obs_norm)
    }
}

/// `n_steps × n_envs` transitions, stored step-major (`[step * n_envs + env]`) in f32 as SB3.
#[derive(Debug, Clone)]
pub(crate) struct RolloutBuffer {
    pub n_steps: usize,
    pub n_envs: usize,
    obs_dim: usize,
    action_width: usize,
    pub obs: Vec<f32>,
    pub actions: Vec<f32>,
    pub rewards: Vec<f32>,
    /// Whether the observation at this step starts an episode.
    pub episode_starts: Vec<f32>,
    pub values: Vec<f32>,
    pub log_probs: Vec<f32>,
    pub advantages: Vec<f32>,
    pub returns: Vec<f32>,
}

/// Rows of a [`RolloutBuffer`] gathered for one gradient step.
#[derive(Debug, Clone, Default)]
pub(crate) struct Minibatch {
    pub obs: Vec<f32>,
    pub actions: Vec<f32>,
    pub old_values: Vec<f32>,
    pub old_log_prob: Vec<f32>,
    pub advantages: Vec<f32>,
    pub returns: Vec<f32>,
}

impl RolloutBuffer {
    /// A zeroed rollout of `n_steps × n_envs` rows, reserved fallibly.
    pub fn new(
        n_steps: usize,
        n_envs: usize,
        obs_dim: usize,
        action_width: usize,
    ) -> Result<Self, Error> {
        let size = n_steps.saturating_mul(n_envs);
        let floats = |width: usize| try_vec(size.saturating_mul(width), 0.0, "the rollout buffer");
        Ok(RolloutBuffer {
            n_steps,
            n_envs,
            obs_dim,
            action_width,
            obs: floats(obs_dim)?,
            actions: floats(action_width)?,
            rewards: floats(1)?,
            episode_starts: floats(1)?,
            values: floats(1)?,
            log_probs: floats(1)?,
            advantages: floats(1)?,
            returns: floats(1)?,
        })
    }

    /// GAE(λ) as SB3's `compute_returns_and_advantage`: `last_values` are the values of the
    /// observations after the last step and `dones` whether that step ended each episode.
    pub fn compute_returns_and_advantage(
        &mut self,
        last_values: &[f32],
        dones: &[bool],
        gamma: f32,
        gae_lambda: f32,
    ) {
        let n_envs = self.n_envs;
        for env_idx in 0..n_envs {
            let mut last_gae_lam = 0.0f32;
            for step in (0..self.n_steps).rev() {
                let idx = step * n_envs + env_idx;
                let (next_non_terminal, next_values) = if step + 1 == self.n_steps {
                    (
                        1.0 - f32::from(u8::from(dones[env_idx])),
                        last_values[env_idx],
                    )
                } else {
                    (
                        1.0 - self.episode_starts[idx + n_envs],
                        self.values[idx + n_envs],
                    )
                };
                let delta =
                    self.rewards[idx] + gamma * next_values * next_non_terminal - self.values[idx];
                last_gae_lam = delta + gamma * gae_lambda * next_non_terminal * last_gae_lam;
                self.advantages[idx] = last_gae_lam;
            }
        }
        for ((ret, adv), value) in self
            .returns
            .iter_mut()
            .zip(&self.advantages)
            .zip(&self.values)
        {
            *ret = adv + value;
        }
    }

    /// Copies the rows `indices` into `minibatch`.
    pub fn gather(&self, indices: &[usize], minibatch: &mut Minibatch) {
        let (obs_dim, width) = (self.obs_dim, self.action_width);
        minibatch.obs.clear();
        minibatch.actions.clear();
        for &idx in indices {
            minibatch
                .obs
                .extend_from_slice(&self.obs[idx * obs_dim..(idx + 1) * obs_dim]);
            minibatch
                .actions
                .extend_from_slice(&self.actions[idx * width..(idx + 1) * width]);
        }
        let rows = |column: &[f32], out: &mut Vec<f32>| {
            out.clear();
            out.extend(indices.iter().map(|&idx| column[idx]));
        };
        rows(&self.values, &mut minibatch.old_values);
        rows(&self.log_probs, &mut minibatch.old_log_prob);
        rows(&self.advantages, &mut minibatch.advantages);
        rows(&self.returns, &mut minibatch.returns);
    }
}

/// The training environments and everything `collect_rollouts` keeps between rollouts.
pub(crate) struct Collector {
    vec_env: VecEnv,
    normalizer: Option<VecNormalize>,
    /// Observations the policy sees next (normalised if `normalize`).
    last_obs: Vec<f32>,
    last_episode_starts: Vec<bool>,
    dones: Vec<bool>,
    rewards: Vec<f32>,
    final_obs: Vec<f32>,
    gamma: f32,
    action_rng: Rng,
    pub timesteps: u64,
    pub total_timesteps: u64,
    pub recent: RecentReturns,
    pub curve: Vec<CurvePoint>,
}

impl Collector {
    /// `n_envs` environments seeded from `rng`, wrapped in `VecNormalize` when `normalize`.
    pub fn new(
        env_id: &str,
        n_envs: usize,
        normalize: bool,
        gamma: f64,
        total_timesteps: u64,
        rng: &mut Rng,
    ) -> Result<Collector, Error> {
        let vec_env = VecEnv::make(env_id, n_envs, rng.next_u64())?;
        let mut last_obs = vec_env.obs.clone();
        let normalizer = normalize.then(|| {
            let mut norm = VecNormalize::new(vec_env.obs_dim(), n_envs, gamma);
            norm.reset(&vec_env.obs, &mut last_obs);
            norm
        });
        Ok(Collector {
            final_obs: vec![0.0; vec_env.final_obs.len()],
            vec_env,
            normalizer,
            last_obs,
            last_episode_starts: vec![true; n_envs],
            dones: vec![false; n_envs],
            rewards: vec![0.0; n_envs],
            gamma: gamma as f32,
            action_rng: rng.fork(),
            timesteps: 0,
            total_timesteps,
            recent: RecentReturns::default(),
            curve: Vec::new(),
        })
    }

    /// `collect_rollouts`: fills `buffer` with `n_steps` steps of every environment, then
    /// computes returns and advantages. A gSDE agent draws new exploration matrices at the
    /// start and, when `sde_sample_freq > 0`, every `sde_sample_freq` steps.
    pub fn collect(
        &mut self,
        agent: &mut ActorCritic,
        buffer: &mut RolloutBuffer,
        gae_lambda: f32,
        sde_sample_freq: i64,
    ) {
        let (n_envs, obs_dim, width) =
            (buffer.n_envs, self.vec_env.obs_dim(), agent.action_width());
        agent.reset_noise(n_envs, &mut self.action_rng);
        for step in 0..buffer.n_steps {
            if step > 0 && sde_sample_freq > 0 && step as i64 % sde_sample_freq == 0 {
                agent.reset_noise(n_envs, &mut self.action_rng);
            }
            let rows = step * n_envs..(step + 1) * n_envs;
            // Act: sample from the current policy and remember what the buffer needs.
            buffer.obs[rows.start * obs_dim..rows.end * obs_dim].copy_from_slice(&self.last_obs);
            agent.act(
                &self.last_obs,
                &mut self.action_rng,
                &mut buffer.actions[rows.start * width..rows.end * width],
                &mut buffer.log_probs[rows.clone()],
                &mut buffer.values[rows.clone()],
            );
            self.vec_env.step(agent.env_actions());
            self.timesteps += n_envs as u64;
            let vec_env = &self.vec_env;
            for (env_idx, done) in self.dones.iter_mut().enumerate() {
                *done = vec_env.done(env_idx);
                if *done {
                    let episode_return = vec_env.episode_returns[env_idx];
                    self.recent.push(episode_return);
                    self.curve.push(CurvePoint {
                        timestep: self.timesteps,
                        key: "charts/episodic_return".into(),
                        value: episode_return,
                    });
                }
            }
            // Observe: normalise (VecNormalize) or convert the step's results.
            match &mut self.normalizer {
                Some(norm) => norm.step(
                    StepView {
                        obs: &vec_env.obs,
                        final_obs: &vec_env.final_obs,
                        rewards: &vec_env.rewards,
                        dones: &self.dones,
                    },
                    StepOut {
                        obs: &mut self.last_obs,
                        final_obs: &mut self.final_obs,
                        rewards: &mut self.rewards,
                    },
                ),
                None => {
                    self.last_obs.copy_from_slice(&vec_env.obs);
                    self.final_obs.copy_from_slice(&vec_env.final_obs);
                    self.rewards
                        .iter_mut()
                        .zip(&vec_env.rewards)
                        .for_each(|(r, &v)| *r = v as f32);
                }
            }
            // Bootstrap truncated episodes from their final observation, as SB3 does for
            // `TimeLimit.truncated` (truncated and not terminated).
            for env_idx in 0..n_envs {
                if vec_env.truncated[env_idx] && !vec_env.terminated[env_idx] {
                    let final_obs = &self.final_obs[env_idx * obs_dim..(env_idx + 1) * obs_dim];
                    let terminal_value = agent.vf.forward(final_obs)[0];
                    self.rewards[env_idx] += self.gamma * terminal_value;
                }
            }
            buffer.rewards[rows.clone()].copy_from_slice(&self.rewards);
            for (start, &was_start) in buffer.episode_starts[rows]
                .iter_mut()
                .zip(&self.last_episode_starts)
            {
                *start = f32::from(u8::from(was_start));
            }
            self.last_episode_starts.copy_from_slice(&self.dones);
        }
        let last_values = agent.vf.forward(&self.last_obs);
        buffer.compute_returns_and_advantage(last_values, &self.dones, self.gamma, gae_lambda);
    }

    /// SB3's `_current_progress_remaining` after the steps taken so far, floored at 0 (SB3
    /// lets it go slightly negative on the last rollout, which would flip the schedules' sign).
    pub fn progress_remaining(&self) -> f64 {
        (1.0 - self.timesteps as f64 / self.total_timesteps as f64).max(0.0)
    }

    pub fn progress(&self) -> Progress {
        Progress {
            timesteps: self.timesteps,
            total_timesteps: self.total_timesteps,
            recent_mean_return: self.recent.mean(),
            episodes: self.recent.episodes,
        }
    }

    /// Records a training value on the curve at the current timestep.
    pub fn log(&mut self, key: &str, value: f64) {
        let timestep = self.timesteps;
        self.curve.push(CurvePoint {
            timestep,
            key: key.to_string(),
            value,
        });
    }

    /// The agent's policy as trained so far, with the current observation statistics.
    pub fn policy(&self, agent: &ActorCritic, algo: Algo, env_id: &str) -> Policy {
        let obs_norm = self.normalizer.as_ref().map(|norm| norm.obs_norm.clone());
        agent.to_policy(algo, env_id, obs_norm)
    }

    /// Packs the trained agent, its observation statistics and the run into a [`TrainOutput`].
    pub fn finish(
        self,
        agent: ActorCritic,
        algo: Algo,
        env_id: &str,
        hyperparams: serde_json::Value,
    ) -> TrainOutput {
        TrainOutput {
            policy: self.policy(&agent, algo, env_id),
            hyperparams,
            timesteps: self.timesteps,
            curve: self.curve,
        }
    }
}

/// `Err(InvalidHyperparameter)` naming `name = value` unless `ok`; `what` says what is valid.
pub(crate) fn ensure(
    ok: bool,
    algo: Algo,
    name: &str,
    value: impl Serialize,
    what: &str,
) -> Result<(), Error> {
    let value = || serde_json::to_value(value).expect("hyperparameters serialise");
    ok.then_some(())
        .ok_or_else(|| hyperparams::invalid(algo, name, &value(), what))
}

/// Schedules must start positive and finite; SB3's only decay towards 0.
pub(crate) fn ensure_schedule(algo: Algo, name: &str, schedule: Schedule) -> Result<(), Error> {
    let start = schedule.initial();
    let ok = start > 0.0 && start.is_finite();
    ensure(
        ok,
        algo,
        name,
        schedule,
        "a positive number or \"lin_<x>\" with x > 0",
    )
}

/// `sde_sample_freq` is -1 or positive, and gSDE needs continuous actions.
pub(crate) fn ensure_sde(
    algo: Algo,
    env: &EnvSpec,
    use_sde: bool,
    sde_sample_freq: i64,
) -> Result<(), Error> {
    let freq_ok = sde_sample_freq == -1 || sde_sample_freq >= 1;
    let what = "-1 (new gSDE noise only at the start of each rollout) or an integer ≥ 1";
    ensure(freq_ok, algo, "sde_sample_freq", sde_sample_freq, what)?;
    let continuous = matches!(env.action_space, Space::Box { .. });
    let what = format!(
        "false on {}: gSDE needs continuous actions and its action space is {}",
        env.id,
        env.action_space.describe()
    );
    ensure(!use_sde || continuous, algo, "use_sde", use_sde, &what)
}

/// The budget as a whole number of steps (the Zoo writes it as a float, `1e5`).
pub(crate) fn ensure_timesteps(algo: Algo, n_timesteps: f64) -> Result<u64, Error> {
    let ok = (1.0..=1e12).contains(&n_timesteps) && n_timesteps.fract() == 0.0;
    let what = "a whole number of steps in [1, 1e12]";
    hyperparams::check(algo, "n_timesteps", n_timesteps, ok, what)?;
    Ok(n_timesteps as u64)
}

/// Actor-critic heads need finite continuous-action bounds with `low < high`.
pub(crate) fn ensure_action_space(algo: Algo, env: &EnvSpec) -> Result<(), Error> {
    let bounded = |(low, high): (&f32, &f32)| low.is_finite() && high.is_finite() && low < high;
    match env.action_space {
        Space::Box { low, high } if !low.iter().zip(high).all(bounded) => {
            Err(Error::UnsupportedEnv {
                algo: algo.name(),
                env: env.id.to_string(),
                why: "continuous actions need finite bounds with low < high".to_string(),
            })
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
pub(crate) mod testutil {
    use crate::{Error, Observer, Policy, PolicyNet, Silent, TrainOutput};
    use serde_json::{Map, Value};
    use tars_envs::{Rng, Space, VecEnv};

    /// `ppo::train` or `a2c::train`.
    pub type Train = fn(
        &str,
        &Map<String, Value>,
        u64,
        Option<u64>,
        &mut dyn Observer,
    ) -> Result<TrainOutput, Error>;

    pub fn train_silently(train: Train, env_id: &str, seed: u64, n_timesteps: u64) -> TrainOutput {
        train(env_id, &Map::new(), seed, Some(n_timesteps), &mut Silent).unwrap()
    }

    /// Mean return of `n_episodes` deterministic episodes (SB3's `evaluate_policy`).
    pub fn mean_deterministic_return(policy: &mut Policy, n_episodes: usize, seed: u64) -> f64 {
        crate::evaluate(policy, n_episodes, seed, true)
            .unwrap()
            .mean_reward()
    }

    /// The same seed gives bit-identical parameters; another seed does not.
    pub fn check_deterministic(train: Train, env_id: &str, n_timesteps: u64) {
        let hash = |seed| {
            let output = train_silently(train, env_id, seed, n_timesteps);
            output.policy.weights_hash()
        };
        assert_eq!(hash(7), hash(7));
        assert_ne!(hash(7), hash(8));
    }

    /// Each `(overrides, message)` case fails with exactly that message.
    pub fn check_invalid(train: Train, env_id: &str, cases: &[(Value, &str)]) {
        for (overrides, expected) in cases {
            let overrides = overrides.as_object().unwrap();
            let err = train(env_id, overrides, 0, Some(64), &mut Silent).unwrap_err();
            assert_eq!(err.to_string(), *expected);
        }
    }

    /// A short run on a continuous task gives a Gaussian policy whose sampled and
    /// deterministic actions stay within the bounds.
    pub fn check_continuous_smoke(train: Train, env_id: &str, n_timesteps: u64) -> Policy {
        let output = train_silently(train, env_id, 3, n_timesteps);
        assert!(output.timesteps >= n_timesteps);
        let mut policy = output.policy;
        assert!(matches!(
            policy.net,
            PolicyNet::Gaussian { .. } | PolicyNet::Gsde { .. }
        ));
        let Space::Box { low, high } = tars_envs::spec(env_id).unwrap().action_space else {
            unreachable!("{env_id} is continuous")
        };
        // FIXME: one environment, because `Policy::act` samples only one Gaussian row.
        let mut vec_env = VecEnv::make(env_id, 1, 5).unwrap();
        let mut rng = Rng::new(0);
        for step in 0..400 {
            let obs = vec_env.obs.clone();
            let actions = policy.act(&obs, step % 2 == 0, &mut rng);
            let tars_envs::Actions::Continuous(values) = actions else {
                unreachable!("Gaussian policies act continuously")
            };
            for (idx, &a) in values.iter().enumerate() {
                let d = idx % low.len();
                assert!(
                    a.is_finite() && low[d] <= a && a <= high[d],
                    "{a} at step {step}"
                );
            }
            vec_env.step(actions);
        }
        policy
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gae_matches_a_hand_computation_with_episode_starts_and_last_done() {
        // One env, three steps; the episode ends after step 1 (episode start at step 2).
        let mut buffer = RolloutBuffer::new(3, 1, 1, 1).unwrap();
        buffer.rewards = vec![1.0, 2.0, 3.0];
        buffer.values = vec![0.5, 1.0, 1.5];
        buffer.episode_starts = vec![1.0, 0.0, 1.0];
        let (gamma, lambda) = (0.9f32, 0.8f32);
        buffer.compute_returns_and_advantage(&[2.0], &[false], gamma, lambda);
        let delta2 = 3.0 + gamma * 2.0 - 1.5;
        let delta1 = 2.0 - 1.0; // next step starts a new episode: no bootstrap
        let delta0 = 1.0 + gamma * 1.0 - 0.5;
        let adv0 = delta0 + gamma * lambda * delta1;
        let expected = [adv0, delta1, delta2];
        for (a, e) in buffer.advantages.iter().zip(expected) {
            assert!(
                (a - e).abs() < 1e-6,
                "{:?} vs {expected:?}",
                buffer.advantages
            );
        }
        assert!((buffer.returns[0] - (adv0 + 0.5)).abs() < 1e-6);
        // A done last step does not bootstrap from `last_values`.
        buffer.compute_returns_and_advantage(&[100.0], &[true], gamma, lambda);
        assert!((buffer.advantages[2] - (3.0 - 1.5)).abs() < 1e-6);
    }

    #[test]
    fn gsde_noise_is_the_latent_times_one_matrix_until_the_next_resampling() {
        // One environment, 12 steps: with sde_sample_freq = -1 every step's noise a - μ(s) is
        // latent(s)·W for the rollout's single matrix W; with 4, only the last 4 steps use the
        // matrix the head holds at the end.
        let spec = tars_envs::spec("Pendulum-v1").unwrap();
        let mut rng = Rng::new(3);
        let mut collector = Collector::new("Pendulum-v1", 1, false, 0.9, 1000, &mut rng).unwrap();
        let config = PolicyConfig {
            net_arch: &NetArch::shared(&[8]),
            activation: Activation::Tanh,
            ortho_init: true,
            log_std_init: 0.0,
            use_sde: true,
        };
        let mut agent = ActorCritic::new(spec, config, &mut rng);
        let mut buffer = RolloutBuffer::new(12, 1, 3, 1).unwrap();
        let mut steps_using_last_matrix = |agent: &mut ActorCritic, sde_sample_freq| {
            collector.collect(agent, &mut buffer, 0.95, sde_sample_freq);
            let means = agent.pi.forward(&buffer.obs).to_vec();
            let latent = agent.pi.last_hidden().to_vec();
            let Head::Gsde { dist, .. } = &agent.head else {
                unreachable!("use_sde")
            };
            assert_eq!(dist.n_matrices(), 1);
            (0..12)
                .filter(|&step| {
                    let mut noise = [0.0];
                    dist.sample(&[0.0], &latent[step * 8..][..8], 0, &mut noise);
                    (buffer.actions[step] - means[step] - noise[0]).abs() < 1e-4
                })
                .collect::<Vec<usize>>()
        };
        let all: Vec<usize> = (0..12).collect();
        assert_eq!(steps_using_last_matrix(&mut agent, -1), all);
        assert_eq!(steps_using_last_matrix(&mut agent, 4), [8, 9, 10, 11]);
    }

    #[test]
    fn truncated_episodes_bootstrap_from_their_final_observation() {
        // Pendulum never terminates and truncates after 200 steps: the last stored reward is
        // the environment's plus gamma * V(final_obs), and GAE stops there.
        let spec = tars_envs::spec("Pendulum-v1").unwrap();
        let mut rng = Rng::new(0);
        let mut collector = Collector::new("Pendulum-v1", 1, false, 0.9, 200, &mut rng).unwrap();
        let config = PolicyConfig {
            net_arch: &NetArch::shared(&[8]),
            activation: Activation::Tanh,
            ortho_init: true,
            log_std_init: 0.0,
            use_sde: false,
        };
        let mut agent = ActorCritic::new(spec, config, &mut rng);
        let mut buffer = RolloutBuffer::new(200, 1, 3, 1).unwrap();
        collector.collect(&mut agent, &mut buffer, 0.95, -1);
        let vec_env = &collector.vec_env;
        assert!(vec_env.truncated[0] && !vec_env.terminated[0]);
        let terminal_value = agent.vf.forward(&vec_env.final_obs)[0];
        let expected = vec_env.rewards[0] as f32 + 0.9 * terminal_value;
        assert_eq!(buffer.rewards[199], expected);
        assert_eq!(buffer.advantages[199], expected - buffer.values[199]);
        assert!(buffer.rewards[..199].iter().all(|&r| r <= 0.0));
        assert_eq!(buffer.episode_starts[0], 1.0);
        assert_eq!(collector.timesteps, 200);
        assert_eq!(collector.recent.episodes, 1);
    }
}
