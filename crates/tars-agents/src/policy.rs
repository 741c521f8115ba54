//! What training produces and evaluation consumes: a trained [`Policy`] (network + head +
//! observation normalisation), the [`TrainOutput`] with its curve, and the [`Observer`] that
//! watches training (progress bars, AutoML pruning).

use crate::Algo;
use crate::nn::{
    ActionBounds, Categorical, DeterministicActor, DiagGaussian, Mlp, StateDependentNoise,
};
use serde::{Deserialize, Serialize};
use tars_envs::{Actions, Rng, Space};

/// The acting part of a trained agent.
#[derive(Debug, Clone)]
pub enum PolicyNet {
    /// PPO/A2C on a discrete space: the net outputs logits.
    Categorical { net: Mlp, head: Categorical },
    /// PPO/A2C on a continuous space: the net outputs the mean; actions are clipped to the
    /// bounds, as SB3's `predict` does.
    Gaussian {
        net: Mlp,
        head: DiagGaussian,
        bounds: ActionBounds,
    },
    /// PPO/A2C with gSDE (`use_sde`): the net outputs the mean, and sampled actions add
    /// `latent·W` (row `i` uses exploration matrix `i`, drawn when the batch size changes);
    /// deterministic actions are the mean. Clipped to the bounds like `Gaussian`.
    Gsde {
        net: Mlp,
        head: StateDependentNoise,
        bounds: ActionBounds,
    },
    /// DQN: the net outputs Q-values; acts greedily.
    QValues { net: Mlp },
    /// DDPG: `tanh(net(obs))` rescaled to the bounds.
    Deterministic {
        actor: DeterministicActor,
        bounds: ActionBounds,
    },
}

/// SB3's `VecNormalize` observation statistics (`RunningMeanStd`), applied before the network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObsNormalizer {
    pub mean: Vec<f64>,
    pub var: Vec<f64>,
    pub count: f64,
    /// Normalised observations are clipped to ±`clip_obs` (SB3 default 10).
    pub clip_obs: f64,
    /// Added to the variance (SB3 default 1e-8).
    pub epsilon: f64,
}

impl ObsNormalizer {
    pub fn new(obs_dim: usize) -> ObsNormalizer {
        // RunningMeanStd starts with count = epsilon (1e-4) so the first update dominates.
        ObsNormalizer {
            mean: vec![0.0; obs_dim],
            var: vec![1.0; obs_dim],
            count: 1e-4,
            clip_obs: 10.0,
            epsilon: 1e-8,
        }
    }

    /// Updates the running statistics with a batch `[n, obs_dim]` (parallel-variance formula,
    /// SB3's `RunningMeanStd.update_from_moments`).
    pub fn update(&mut self, batch: &[f32]) {
        let obs_dim = self.mean.len();
        let n = (batch.len() / obs_dim) as f64;
        if n == 0.0 {
            return;
        }
        for d in 0..obs_dim {
            let column = batch.iter().skip(d).step_by(obs_dim).map(|&v| f64::from(v));
            let batch_mean = column.clone().sum::<f64>() / n;
            let batch_var = column.map(|v| (v - batch_mean).powi(2)).sum::<f64>() / n;
            let delta = batch_mean - self.mean[d];
            let total = self.count + n;
            let m2 =
                self.var[d] * self.count + batch_var * n + delta * delta * self.count * n / total;
            self.mean[d] += delta * n / total;
            self.var[d] = m2 / total;
        }
        self.count += n;
    }

    /// Writes `clip((obs - mean) / sqrt(var + eps), ±clip_obs)` for a batch.
    pub fn normalize(&self, obs: &[f32], out: &mut [f32]) {
        let obs_dim = self.mean.len();
        for (idx, (o, &v)) in out.iter_mut().zip(obs).enumerate() {
            let d = idx % obs_dim;
            let z = (f64::from(v) - self.mean[d]) / (self.var[d] + self.epsilon).sqrt();
            *o = z.clamp(-self.clip_obs, self.clip_obs) as f32;
        }
    }
}

/// A trained agent that acts on batches of observations.
#[derive(Debug, Clone)]
pub struct Policy {
    pub algo: Algo,
    pub env_id: String,
    pub net: PolicyNet,
    pub obs_norm: Option<ObsNormalizer>,
    /// Scratch space: normalised observations and continuous actions.
    obs_buf: Vec<f32>,
    action_buf: Vec<f32>,
    discrete_buf: Vec<usize>,
}

impl Policy {
    pub fn new(
        algo: Algo,
        env_id: &str,
        net: PolicyNet,
        obs_norm: Option<ObsNormalizer>,
    ) -> Policy {
        Policy {
            algo,
            env_id: env_id.to_string(),
            net,
            obs_norm,
            obs_buf: Vec::new(),
            action_buf: Vec::new(),
            discrete_buf: Vec::new(),
        }
    }

    /// Actions for a batch of observations `[n, obs_dim]`. `deterministic` takes the mode
    /// (SB3's `predict(deterministic=True)`); otherwise actions are sampled from `rng`
    /// (DQN and DDPG are deterministic either way, as SB3's `predict` is without noise).
    pub fn act(&mut self, obs: &[f32], deterministic: bool, rng: &mut Rng) -> Actions<'_> {
        let input: &[f32] = match &self.obs_norm {
            Some(norm) => {
                self.obs_buf.resize(obs.len(), 0.0);
                norm.normalize(obs, &mut self.obs_buf);
                &self.obs_buf
            }
            None => obs,
        };
        match &mut self.net {
            PolicyNet::Categorical { net, head } => {
                let n_actions = net.out_dim();
                let logits = net.forward(input);
                self.discrete_buf.clear();
                for row in logits.chunks_exact(n_actions) {
                    let a = if deterministic {
                        head.mode(row)
                    } else {
                        head.sample(row, rng)
                    };
                    self.discrete_buf.push(a);
                }
                Actions::Discrete(&self.discrete_buf)
            }
            PolicyNet::QValues { net } => {
                let n_actions = net.out_dim();
                let q = net.forward(input);
                self.discrete_buf.clear();
                self.discrete_buf
                    .extend(q.chunks_exact(n_actions).map(argmax));
                Actions::Discrete(&self.discrete_buf)
            }
            PolicyNet::Gaussian { net, head, bounds } => {
                let mean = net.forward(input);
                self.action_buf.resize(mean.len(), 0.0);
                if deterministic {
                    self.action_buf.copy_from_slice(mean);
                } else {
                    let dim = head.action_dim();
                    for (mean_row, out_row) in mean
                        .chunks_exact(dim)
                        .zip(self.action_buf.chunks_exact_mut(dim))
                    {
                        head.sample(mean_row, rng, out_row);
                    }
                }
                bounds.clip(&mut self.action_buf);
                Actions::Continuous(&self.action_buf)
            }
            PolicyNet::Gsde { net, head, bounds } => {
                net.forward(input);
                let (mean, latent) = (net.output(), net.last_hidden());
                self.action_buf.resize(mean.len(), 0.0);
                if deterministic {
                    self.action_buf.copy_from_slice(mean);
                } else {
                    let (dim, latent_dim) = (head.action_dim(), head.latent_dim());
                    let n_rows = mean.len() / dim;
                    if head.n_matrices() != n_rows {
                        head.sample_weights(n_rows, rng);
                    }
                    let rows = mean
                        .chunks_exact(dim)
                        .zip(latent.chunks_exact(latent_dim))
                        .zip(self.action_buf.chunks_exact_mut(dim));
                    for (row_idx, ((mean_row, features), out_row)) in rows.enumerate() {
                        head.sample(mean_row, features, row_idx, out_row);
                    }
                }
                bounds.clip(&mut self.action_buf);
                Actions::Continuous(&self.action_buf)
            }
            PolicyNet::Deterministic { actor, bounds } => {
                let squashed = actor.forward(input);
                self.action_buf.resize(squashed.len(), 0.0);
                // The actor acts in [-1, 1]; map back to the environment's bounds.
                bounds.unscale(squashed, &mut self.action_buf);
                Actions::Continuous(&self.action_buf)
            }
        }
    }

    /// The networks to store in a checkpoint, with their tensor-name prefixes.
    pub fn networks(&self) -> Vec<(&'static str, &Mlp)> {
        match &self.net {
            PolicyNet::Categorical { net, .. }
            | PolicyNet::Gaussian { net, .. }
            | PolicyNet::Gsde { net, .. } => vec![("pi", net)],
            PolicyNet::QValues { net } => vec![("q_net", net)],
            PolicyNet::Deterministic { actor, .. } => vec![("actor", &actor.net)],
        }
    }

    /// A hash of every parameter bit (networks and `log_std`), to check determinism.
    pub fn weights_hash(&self) -> u64 {
        use std::hash::{DefaultHasher, Hash, Hasher};
        let mut hasher = DefaultHasher::new();
        for (_, net) in self.networks() {
            net.params
                .value
                .iter()
                .for_each(|v| v.to_bits().hash(&mut hasher));
        }
        let log_std = match &self.net {
            PolicyNet::Gaussian { head, .. } => &head.log_std.value[..],
            PolicyNet::Gsde { head, .. } => &head.log_std.value[..],
            _ => &[],
        };
        log_std.iter().for_each(|v| v.to_bits().hash(&mut hasher));
        hasher.finish()
    }

    /// Checks that the policy fits an action space (used when loading checkpoints).
    pub fn fits(&self, space: &Space) -> bool {
        match (&self.net, space) {
            (
                PolicyNet::Categorical { net, .. } | PolicyNet::QValues { net },
                Space::Discrete { n },
            ) => net.out_dim() == *n,
            (
                PolicyNet::Gaussian { bounds, .. }
                | PolicyNet::Gsde { bounds, .. }
                | PolicyNet::Deterministic { bounds, .. },
                Space::Box { low, .. },
            ) => bounds.action_dim() == low.len(),
            _ => false,
        }
    }
}

fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (idx, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = idx;
        }
    }
    best
}

/// One logged training value, CleanRL-style key (`charts/episodic_return`,
/// `losses/value_loss`, …) at a timestep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CurvePoint {
    pub timestep: u64,
    pub key: String,
    pub value: f64,
}

/// What a training run produces.
#[derive(Debug, Clone)]
pub struct TrainOutput {
    pub policy: Policy,
    /// The resolved hyperparameters actually used (SB3 names), for the checkpoint metadata.
    pub hyperparams: serde_json::Value,
    /// Environment steps taken.
    pub timesteps: u64,
    pub curve: Vec<CurvePoint>,
}

/// Progress reported to an [`Observer`] during training.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    pub timesteps: u64,
    pub total_timesteps: u64,
    /// Mean return of the last (up to) 100 finished training episodes.
    pub recent_mean_return: Option<f64>,
    pub episodes: u64,
}

/// Whether training should go on (an observer may stop it early, e.g. an AutoML pruner).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    Continue,
    Stop,
}

/// Watches training; called at least every few thousand steps and once at the end.
pub trait Observer {
    fn on_progress(&mut self, progress: &Progress) -> Control;

    /// Whether this report should come with a copy of the policy trained so far (e.g. an
    /// evaluation is due). Training then calls [`Observer::on_policy`] before `on_progress`.
    fn wants_policy(&mut self, _progress: &Progress) -> bool {
        false
    }

    /// A copy of the policy trained so far, when [`Observer::wants_policy`] asked for it.
    /// Nothing done with it changes the training run.
    fn on_policy(&mut self, _progress: &Progress, _policy: Policy) -> Control {
        Control::Continue
    }
}

/// Reports `progress` to `observer`, first with a copy of the policy (`snapshot`) if it
/// asks for one. Every algorithm reports through here.
pub(crate) fn report(
    observer: &mut dyn Observer,
    progress: &Progress,
    snapshot: impl FnOnce() -> Policy,
) -> Control {
    if observer.wants_policy(progress) && observer.on_policy(progress, snapshot()) == Control::Stop
    {
        return Control::Stop;
    }
    observer.on_progress(progress)
}

/// An observer that ignores everything.
pub struct Silent;

impl Observer for Silent {
    fn on_progress(&mut self, _: &Progress) -> Control {
        Control::Continue
    }
}

/// Mean of the last 100 episode returns, as SB3's `ep_info_buffer`.
#[derive(Debug, Clone, Default)]
pub struct RecentReturns {
    returns: std::collections::VecDeque<f64>,
    pub episodes: u64,
}

impl RecentReturns {
    pub fn push(&mut self, episode_return: f64) {
        if self.returns.len() == 100 {
            self.returns.pop_front();
        }
        self.returns.push_back(episode_return);
        self.episodes += 1;
    }

    pub fn mean(&self) -> Option<f64> {
        (!self.returns.is_empty())
            .then(|| self.returns.iter().sum::<f64>() / self.returns.len() as f64)
    }
}
