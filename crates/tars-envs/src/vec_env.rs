//! `VecEnv`: N environments stepped as one batch over contiguous buffers.
//!
//! Autoreset is **same-step** (Stable-Baselines3's `VecEnv` convention): when an environment
//! terminates or is truncated, its final observation is written to [`VecEnv::final_obs`], it is
//! reset at once, and [`VecEnv::obs`] already holds the first observation of the next episode.
//! Agents bootstrap truncated episodes from `final_obs`. Stepping allocates nothing; batches of
//! at least the spec's [`EnvSpec::parallel_min_envs`] environments are split across rayon's
//! thread pool, which changes no result (environments are independent and each owns its random
//! stream).

use crate::{Action, Env, EnvSpec, Error, Rng, Space};

/// The split threshold of environments whose step costs tens of nanoseconds (classic
/// control): smaller batches are stepped on the calling thread.
pub const PARALLEL_MIN_ENVS: usize = 256;

/// One action per environment, laid out contiguously.
#[derive(Debug, Clone, Copy)]
pub enum Actions<'a> {
    /// One index per environment.
    Discrete(&'a [usize]),
    /// `n_envs × action_dim` floats, row-major.
    Continuous(&'a [f32]),
}

impl<'a> Actions<'a> {
    fn get(&self, env_idx: usize, dim: usize) -> Action<'a> {
        match *self {
            Actions::Discrete(a) => Action::Discrete(a[env_idx]),
            Actions::Continuous(a) => Action::Continuous(&a[env_idx * dim..(env_idx + 1) * dim]),
        }
    }
}

/// Per-environment bookkeeping beside the environment itself.
#[derive(Debug, Clone)]
struct Slot<E> {
    env: E,
    episode_steps: u32,
    episode_return: f64,
}

/// A batch of environments of one kind with time limits and same-step autoreset.
pub struct VecEnv<E: Env = Box<dyn Env>> {
    slots: Vec<Slot<E>>,
    spec: &'static EnvSpec,
    obs_dim: usize,
    act_dim: usize,
    /// Current observations, `n_envs × obs_dim` (after any autoreset).
    pub obs: Vec<f32>,
    /// Last observation of the episode that ended at this step (valid where `done(i)`).
    pub final_obs: Vec<f32>,
    /// Reward of the last step, per environment.
    pub rewards: Vec<f64>,
    /// Whether the last step ended the episode by reaching a terminal state.
    pub terminated: Vec<bool>,
    /// Whether the last step hit `max_episode_steps` (gymnasium's `TimeLimit`).
    pub truncated: Vec<bool>,
    /// Return and length of the episode that ended at the last step (valid where `done(i)`).
    pub episode_returns: Vec<f64>,
    pub episode_lengths: Vec<u32>,
}

impl VecEnv<Box<dyn Env>> {
    /// `n_envs` environments of `id`; environment `i` is reset with seed `seed + i`.
    pub fn make(id: &str, n_envs: usize, seed: u64) -> Result<Self, Error> {
        let envs = (0..n_envs)
            .map(|_| crate::make(id))
            .collect::<Result<Vec<_>, _>>()?;
        VecEnv::new(envs, seed)
    }
}

impl<E: Env> VecEnv<E> {
    /// Wraps `envs` (at least one, all of one kind), resetting environment `i` with `seed + i`.
    pub fn new(envs: Vec<E>, seed: u64) -> Result<Self, Error> {
        let Some(first) = envs.first() else {
            return Err(Error::NoEnvs(0));
        };
        let spec = first.spec();
        let n_envs = envs.len();
        let obs_dim = spec.observation_space.dim();
        let mut vec_env = VecEnv {
            slots: envs
                .into_iter()
                .map(|env| Slot {
                    env,
                    episode_steps: 0,
                    episode_return: 0.0,
                })
                .collect(),
            spec,
            obs_dim,
            act_dim: spec.action_space.dim(),
            obs: vec![0.0; n_envs * obs_dim],
            final_obs: vec![0.0; n_envs * obs_dim],
            rewards: vec![0.0; n_envs],
            terminated: vec![false; n_envs],
            truncated: vec![false; n_envs],
            episode_returns: vec![0.0; n_envs],
            episode_lengths: vec![0; n_envs],
        };
        vec_env.reset(seed);
        Ok(vec_env)
    }

    pub fn spec(&self) -> &'static EnvSpec {
        self.spec
    }

    pub fn n_envs(&self) -> usize {
        self.slots.len()
    }

    pub fn obs_dim(&self) -> usize {
        self.obs_dim
    }

    /// Whether environment `env_idx`'s episode ended at the last step.
    pub fn done(&self, env_idx: usize) -> bool {
        self.terminated[env_idx] || self.truncated[env_idx]
    }

    /// Resets every environment, environment `i` with seed `seed + i`.
    pub fn reset(&mut self, seed: u64) {
        for (env_idx, slot) in self.slots.iter_mut().enumerate() {
            slot.env.reset(Some(seed.wrapping_add(env_idx as u64)));
            slot.episode_steps = 0;
            slot.episode_return = 0.0;
            slot.env
                .observe(&mut self.obs[env_idx * self.obs_dim..(env_idx + 1) * self.obs_dim]);
        }
        self.terminated.fill(false);
        self.truncated.fill(false);
    }

    /// Steps every environment with its action. Actions must belong to the action space
    /// (check untrusted ones with [`Space::check_action`]).
    pub fn step(&mut self, actions: Actions<'_>) {
        let chunk = Chunk {
            slots: &mut self.slots,
            obs: &mut self.obs,
            final_obs: &mut self.final_obs,
            rewards: &mut self.rewards,
            terminated: &mut self.terminated,
            truncated: &mut self.truncated,
            episode_returns: &mut self.episode_returns,
            episode_lengths: &mut self.episode_lengths,
            offset: 0,
        };
        let dims = (self.obs_dim, self.act_dim, self.spec.max_episode_steps);
        step_split(chunk, actions, dims, self.spec.parallel_min_envs.max(2));
    }

    /// The environments themselves (e.g. to read their internal state).
    pub fn envs(&self) -> impl Iterator<Item = &E> {
        self.slots.iter().map(|slot| &slot.env)
    }
}

/// Mutable views of a contiguous range of environments and their buffers.
struct Chunk<'a, E> {
    slots: &'a mut [Slot<E>],
    obs: &'a mut [f32],
    final_obs: &'a mut [f32],
    rewards: &'a mut [f64],
    terminated: &'a mut [bool],
    truncated: &'a mut [bool],
    episode_returns: &'a mut [f64],
    episode_lengths: &'a mut [u32],
    /// Index of the first environment of this chunk in the whole batch.
    offset: usize,
}

impl<'a, E> Chunk<'a, E> {
    fn split_at(self, mid: usize, obs_dim: usize) -> (Self, Self) {
        let (slots_a, slots_b) = self.slots.split_at_mut(mid);
        let (obs_a, obs_b) = self.obs.split_at_mut(mid * obs_dim);
        let (final_a, final_b) = self.final_obs.split_at_mut(mid * obs_dim);
        let (rew_a, rew_b) = self.rewards.split_at_mut(mid);
        let (term_a, term_b) = self.terminated.split_at_mut(mid);
        let (trunc_a, trunc_b) = self.truncated.split_at_mut(mid);
        let (ret_a, ret_b) = self.episode_returns.split_at_mut(mid);
        let (len_a, len_b) = self.episode_lengths.split_at_mut(mid);
        (
            Chunk {
                slots: slots_a,
                obs: obs_a,
                final_obs: final_a,
                rewards: rew_a,
                terminated: term_a,
                truncated: trunc_a,
                episode_returns: ret_a,
                episode_lengths: len_a,
                offset: self.offset,
            },
            Chunk {
                slots: slots_b,
                obs: obs_b,
                final_obs: final_b,
                rewards: rew_b,
                terminated: term_b,
                truncated: trunc_b,
                episode_returns: ret_b,
                episode_lengths: len_b,
                offset: self.offset + mid,
            },
        )
    }
}

/// Steps `chunk`, halving it across rayon's pool while it holds at least `min_split` (≥ 2)
/// environments.
fn step_split<E: Env>(
    chunk: Chunk<'_, E>,
    actions: Actions<'_>,
    dims: (usize, usize, u32),
    min_split: usize,
) {
    let n = chunk.slots.len();
    if n < min_split {
        step_chunk(chunk, actions, dims);
    } else {
        let (left, right) = chunk.split_at(n / 2, dims.0);
        rayon::join(
            || step_split(left, actions, dims, min_split),
            || step_split(right, actions, dims, min_split),
        );
    }
}

fn step_chunk<E: Env>(chunk: Chunk<'_, E>, actions: Actions<'_>, dims: (usize, usize, u32)) {
    let (obs_dim, act_dim, max_episode_steps) = dims;
    for (local_idx, slot) in chunk.slots.iter_mut().enumerate() {
        let obs = &mut chunk.obs[local_idx * obs_dim..(local_idx + 1) * obs_dim];
        let transition = slot
            .env
            .step(actions.get(chunk.offset + local_idx, act_dim));
        slot.episode_steps += 1;
        slot.episode_return += transition.reward;
        let truncated = slot.episode_steps >= max_episode_steps;
        chunk.rewards[local_idx] = transition.reward;
        chunk.terminated[local_idx] = transition.terminated;
        chunk.truncated[local_idx] = truncated;
        if transition.terminated || truncated {
            slot.env
                .observe(&mut chunk.final_obs[local_idx * obs_dim..(local_idx + 1) * obs_dim]);
            chunk.episode_returns[local_idx] = slot.episode_return;
            chunk.episode_lengths[local_idx] = slot.episode_steps;
            slot.env.reset(None);
            slot.episode_steps = 0;
            slot.episode_return = 0.0;
        }
        slot.env.observe(obs);
    }
}

/// Uniformly random actions for a whole batch, from its own seeded stream.
#[derive(Debug, Clone)]
pub struct RandomActions {
    rng: Rng,
    space: Space,
    discrete: Vec<usize>,
    continuous: Vec<f32>,
}

impl RandomActions {
    pub fn new(space: Space, n_envs: usize, seed: u64) -> Self {
        RandomActions {
            rng: Rng::new(seed),
            space,
            discrete: vec![0; n_envs],
            continuous: vec![0.0; n_envs * space.dim()],
        }
    }

    /// Draws a fresh action for every environment.
    pub fn sample(&mut self) -> Actions<'_> {
        match self.space {
            Space::Discrete { n } => {
                for a in &mut self.discrete {
                    *a = self.rng.below(n as u64) as usize;
                }
                Actions::Discrete(&self.discrete)
            }
            Space::Box { low, high } => {
                for (i, a) in self.continuous.iter_mut().enumerate() {
                    let d = i % low.len();
                    *a = self.rng.uniform(low[d].into(), high[d].into()) as f32;
                }
                Actions::Continuous(&self.continuous)
            }
        }
    }
}
