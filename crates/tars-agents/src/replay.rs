//! The replay buffer DQN and DDPG learn from: SB3's `ReplayBuffer`
//! (`stable_baselines3/common/buffers.py`) with `handle_timeout_termination=True` and
//! `optimize_memory_usage=False`, over contiguous f32 storage.
//!
//! Each transition stores `(obs, next_obs, action, reward, done)`. The caller writes the
//! episode's `final_obs` as `next_obs` when an environment finished (same-step autoreset)
//! and passes `done = terminated`: a truncated episode is not done, so its target still
//! bootstraps, which is what SB3 computes with `dones * (1 - timeouts)`.
//!
//! SB3 keeps `buffer_size // n_envs` rows of `n_envs` transitions and samples a row, then an
//! environment; this buffer keeps `buffer_size` transitions in one ring and samples them
//! uniformly, which is the same distribution once the buffer has filled evenly.

use crate::Error;
use crate::budget::try_reserve;
use tars_envs::{Rng, VecEnv};

/// A ring of at most `capacity` transitions; the oldest are overwritten first.
#[derive(Debug, Clone)]
pub(crate) struct ReplayBuffer {
    capacity: usize,
    obs_dim: usize,
    action_dim: usize,
    observations: Vec<f32>,
    next_observations: Vec<f32>,
    /// Discrete actions are stored as their index (exact in f32 below 2²⁴).
    actions: Vec<f32>,
    rewards: Vec<f32>,
    /// 1 where the episode terminated at this transition, 0 otherwise (truncation included).
    dones: Vec<f32>,
    /// Where the next transition goes once the ring is full.
    pos: usize,
}

/// A sampled minibatch, `[batch, …]` row-major; reused between samples.
#[derive(Debug, Clone, Default)]
pub(crate) struct Batch {
    pub observations: Vec<f32>,
    pub next_observations: Vec<f32>,
    pub actions: Vec<f32>,
    pub rewards: Vec<f32>,
    pub dones: Vec<f32>,
}

impl ReplayBuffer {
    /// An empty buffer of at most `capacity` transitions, with room reserved (fallibly) for
    /// the `expected` transitions a run will add, so it never grows by doubling past them.
    pub fn new(
        capacity: usize,
        expected: usize,
        obs_dim: usize,
        action_dim: usize,
    ) -> Result<ReplayBuffer, Error> {
        assert!(
            capacity > 0,
            "a replay buffer holds at least one transition"
        );
        let rows = capacity.min(expected.max(1));
        let what = "the replay buffer";
        let mut buffer = ReplayBuffer {
            capacity,
            obs_dim,
            action_dim,
            observations: Vec::new(),
            next_observations: Vec::new(),
            actions: Vec::new(),
            rewards: Vec::new(),
            dones: Vec::new(),
            pos: 0,
        };
        try_reserve(&mut buffer.observations, rows.saturating_mul(obs_dim), what)?;
        try_reserve(
            &mut buffer.next_observations,
            rows.saturating_mul(obs_dim),
            what,
        )?;
        try_reserve(&mut buffer.actions, rows.saturating_mul(action_dim), what)?;
        try_reserve(&mut buffer.rewards, rows, what)?;
        try_reserve(&mut buffer.dones, rows, what)?;
        Ok(buffer)
    }

    /// Number of transitions stored.
    pub fn len(&self) -> usize {
        self.rewards.len()
    }

    /// Stores one transition, overwriting the oldest when full.
    pub fn add(&mut self, obs: &[f32], next_obs: &[f32], action: &[f32], reward: f32, done: bool) {
        debug_assert!(obs.len() == self.obs_dim && next_obs.len() == self.obs_dim);
        debug_assert_eq!(action.len(), self.action_dim);
        let done = if done { 1.0 } else { 0.0 };
        if self.len() < self.capacity {
            self.observations.extend_from_slice(obs);
            self.next_observations.extend_from_slice(next_obs);
            self.actions.extend_from_slice(action);
            self.rewards.push(reward);
            self.dones.push(done);
            return;
        }
        let (o, a) = (self.pos * self.obs_dim, self.pos * self.action_dim);
        self.observations[o..o + self.obs_dim].copy_from_slice(obs);
        self.next_observations[o..o + self.obs_dim].copy_from_slice(next_obs);
        self.actions[a..a + self.action_dim].copy_from_slice(action);
        self.rewards[self.pos] = reward;
        self.dones[self.pos] = done;
        self.pos = (self.pos + 1) % self.capacity;
    }

    /// Stores the transition every environment of `vec_env` just made from `last_obs` with
    /// `actions` (`[n_envs, action_dim]`), as SB3's `_store_transition`: an environment that
    /// finished its episode contributes its `final_obs` as next observation, and only
    /// termination counts as done.
    pub fn add_step(&mut self, last_obs: &[f32], actions: &[f32], vec_env: &VecEnv) {
        let (obs_dim, action_dim) = (self.obs_dim, self.action_dim);
        for env_idx in 0..vec_env.n_envs() {
            let rows = env_idx * obs_dim..(env_idx + 1) * obs_dim;
            let next_obs = match vec_env.done(env_idx) {
                true => &vec_env.final_obs[rows.clone()],
                false => &vec_env.obs[rows.clone()],
            };
            let action = &actions[env_idx * action_dim..(env_idx + 1) * action_dim];
            let (reward, terminated) = (vec_env.rewards[env_idx], vec_env.terminated[env_idx]);
            self.add(&last_obs[rows], next_obs, action, reward as f32, terminated);
        }
    }

    /// Fills `batch` with `batch_size` transitions drawn uniformly with replacement
    /// (`np.random.randint(0, upper_bound, size=batch_size)`).
    pub fn sample(&self, batch_size: usize, rng: &mut Rng, batch: &mut Batch) {
        assert!(self.len() > 0, "sampling from an empty replay buffer");
        batch.resize(batch_size, self.obs_dim, self.action_dim);
        for row in 0..batch_size {
            let idx = rng.below(self.len() as u64) as usize;
            self.copy_transition(idx, row, batch);
        }
    }

    /// Writes `n_samples` indices drawn uniformly with replacement into `indices`: the same
    /// draws, in the same order, as `n_samples / batch_size` calls of [`ReplayBuffer::sample`],
    /// for a caller that needs every minibatch of a training phase up front.
    pub fn sample_indices(&self, n_samples: usize, rng: &mut Rng, indices: &mut Vec<usize>) {
        assert!(self.len() > 0, "sampling from an empty replay buffer");
        indices.clear();
        indices.extend((0..n_samples).map(|_| rng.below(self.len() as u64) as usize));
    }

    /// Fills `batch` with the transitions at `indices`, in order.
    pub fn gather(&self, indices: &[usize], batch: &mut Batch) {
        batch.resize(indices.len(), self.obs_dim, self.action_dim);
        for (row, &idx) in indices.iter().enumerate() {
            self.copy_transition(idx, row, batch);
        }
    }

    /// Writes the next observations of the transitions at `indices` into `out`
    /// (`[indices.len(), obs_dim]`), resizing it.
    pub fn gather_next_observations(&self, indices: &[usize], out: &mut Vec<f32>) {
        let obs_dim = self.obs_dim;
        out.clear();
        for &idx in indices {
            out.extend_from_slice(&self.next_observations[idx * obs_dim..(idx + 1) * obs_dim]);
        }
    }

    fn copy_transition(&self, idx: usize, row: usize, batch: &mut Batch) {
        let (obs_dim, action_dim) = (self.obs_dim, self.action_dim);
        let (src, dst) = (idx * obs_dim..(idx + 1) * obs_dim, row * obs_dim);
        batch.observations[dst..dst + obs_dim].copy_from_slice(&self.observations[src.clone()]);
        batch.next_observations[dst..dst + obs_dim].copy_from_slice(&self.next_observations[src]);
        let (src, dst) = (idx * action_dim, row * action_dim);
        batch.actions[dst..dst + action_dim].copy_from_slice(&self.actions[src..src + action_dim]);
        batch.rewards[row] = self.rewards[idx];
        batch.dones[row] = self.dones[idx];
    }
}

impl Batch {
    fn resize(&mut self, batch_size: usize, obs_dim: usize, action_dim: usize) {
        self.observations.resize(batch_size * obs_dim, 0.0);
        self.next_observations.resize(batch_size * obs_dim, 0.0);
        self.actions.resize(batch_size * action_dim, 0.0);
        self.rewards.resize(batch_size, 0.0);
        self.dones.resize(batch_size, 0.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_overwrites_the_oldest_and_samples_only_stored_transitions() {
        let mut buffer = ReplayBuffer::new(3, 10, 2, 1).unwrap();
        for step in 0..5 {
            let s = step as f32;
            buffer.add(&[s, s], &[s + 0.5, s + 0.5], &[s], s * 10.0, step == 4);
        }
        assert_eq!(buffer.len(), 3);
        let mut batch = Batch::default();
        buffer.sample(200, &mut Rng::new(0), &mut batch);
        let mut seen = [false; 5];
        for row in 0..200 {
            let step = batch.actions[row];
            assert!(step >= 2.0, "transition {step} was overwritten");
            assert_eq!(batch.observations[2 * row..2 * row + 2], [step, step]);
            assert_eq!(batch.next_observations[2 * row], step + 0.5);
            assert_eq!(batch.rewards[row], step * 10.0);
            assert_eq!(batch.dones[row], if step == 4.0 { 1.0 } else { 0.0 });
            seen[step as usize] = true;
        }
        assert_eq!(seen, [false, false, true, true, true]);
    }

    #[test]
    fn sampled_indices_are_the_draws_of_successive_samples() {
        let mut buffer = ReplayBuffer::new(50, 1_000, 1, 1).unwrap();
        for step in 0..40 {
            let s = step as f32;
            buffer.add(&[s], &[s + 0.5], &[s], -s, step % 7 == 0);
        }
        let (mut rng_a, mut rng_b) = (Rng::new(5), Rng::new(5));
        let mut indices = Vec::new();
        buffer.sample_indices(3 * 8, &mut rng_a, &mut indices);
        let (mut sampled, mut gathered) = (Batch::default(), Batch::default());
        for chunk in indices.chunks(8) {
            buffer.sample(8, &mut rng_b, &mut sampled);
            buffer.gather(chunk, &mut gathered);
            assert_eq!(sampled.observations, gathered.observations);
            assert_eq!(sampled.next_observations, gathered.next_observations);
            assert_eq!(sampled.rewards, gathered.rewards);
            assert_eq!(sampled.dones, gathered.dones);
            assert_eq!(sampled.actions, gathered.actions);
            let mut next_observations = Vec::new();
            buffer.gather_next_observations(chunk, &mut next_observations);
            assert_eq!(next_observations, gathered.next_observations);
        }
        assert_eq!(
            rng_a.next_u64(),
            rng_b.next_u64(),
            "the same number of draws"
        );
    }
}
