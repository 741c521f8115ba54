//! Reinforcement-learning environments with gymnasium 1.x semantics, stepped in Rust.
//!
//! Every environment reproduces gymnasium's physics, reward, termination, spaces and
//! `max_episode_steps`, so a return computed here means what it means in Python; the
//! golden-transition tests in `tests/` prove it against fixtures generated with gymnasium.
//!
//! Entry points: [`make`] builds one environment by its gymnasium id, [`VecEnv`] steps many
//! at once over contiguous buffers, [`specs`] lists what exists.
//!
//! Architecture invariant: this crate does no I/O, reads no clock and has no global RNG;
//! every random draw comes from an environment's own seeded [`Rng`].

mod classic;
mod error;
mod lunar_lander;
mod registry;
mod rng;
mod space;
mod vec_env;

pub use classic::{Acrobot, CartPole, MountainCar, MountainCarContinuous, Pendulum};
pub use error::{Error, did_you_mean};
pub use lunar_lander::{
    EpisodeDraws, HeuristicAction, LUNAR_LANDER_CONTINUOUS_SPEC, LUNAR_LANDER_SPEC, LunarLander,
    LunarLanderOptions, heuristic, heuristic_continuous, heuristic_discrete,
};
pub use registry::{make, spec, specs};
pub use rng::Rng;
pub use space::Space;
pub use vec_env::{Actions, PARALLEL_MIN_ENVS, RandomActions, VecEnv};

/// Static description of an environment: its id, spaces and episode rules.
#[derive(Debug)]
pub struct EnvSpec {
    /// The gymnasium id, e.g. `"CartPole-v1"`.
    pub id: &'static str,
    /// Older ids accepted for this environment (e.g. `LunarLander-v2`).
    pub aliases: &'static [&'static str],
    pub observation_space: Space,
    pub action_space: Space,
    /// Episodes are truncated after this many steps (gymnasium's `TimeLimit`).
    pub max_episode_steps: u32,
    /// The return at which gymnasium considers the task solved, if it defines one.
    pub reward_threshold: Option<f64>,
    /// Names of the entries of [`Env::state`], in gymnasium's `env.unwrapped.state` order.
    pub state_layout: &'static [&'static str],
    /// [`VecEnv::step`] splits batches of at least this many environments across rayon's
    /// pool: [`PARALLEL_MIN_ENVS`] where a step costs well under a microsecond, fewer where a
    /// step is dear enough to repay the hand-over.
    pub parallel_min_envs: usize,
}

/// One action for one environment.
#[derive(Debug, Clone, Copy)]
pub enum Action<'a> {
    Discrete(usize),
    Continuous(&'a [f32]),
}

/// What one physics step produced (truncation is decided by the caller's step count).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Transition {
    pub reward: f64,
    pub terminated: bool,
}

/// A single environment: physics and reward only; time limits are applied by [`VecEnv`].
///
/// `step` takes actions that already satisfy the action space (check them with
/// [`Space::check_action`] at the boundary); it cannot fail.
pub trait Env: Send {
    fn spec(&self) -> &'static EnvSpec;

    /// Starts a new episode. `Some(seed)` reseeds the environment's generator first, like
    /// gymnasium's `reset(seed=...)`; `None` continues the current random stream.
    fn reset(&mut self, seed: Option<u64>);

    /// Advances the physics by one step.
    fn step(&mut self, action: Action<'_>) -> Transition;

    /// Writes the current observation (`observation_space.dim()` floats).
    fn observe(&self, obs: &mut [f32]);

    /// The internal state in gymnasium's `env.unwrapped.state` layout.
    fn state(&self) -> Vec<f64>;

    /// Replaces the internal state, as assigning `env.unwrapped.state` does in gymnasium.
    fn set_state(&mut self, state: &[f64]) -> Result<(), Error>;
}

impl<E: Env + ?Sized> Env for Box<E> {
    fn spec(&self) -> &'static EnvSpec {
        (**self).spec()
    }
    fn reset(&mut self, seed: Option<u64>) {
        (**self).reset(seed)
    }
    fn step(&mut self, action: Action<'_>) -> Transition {
        (**self).step(action)
    }
    fn observe(&self, obs: &mut [f32]) {
        (**self).observe(obs)
    }
    fn state(&self) -> Vec<f64> {
        (**self).state()
    }
    fn set_state(&mut self, state: &[f64]) -> Result<(), Error> {
        (**self).set_state(state)
    }
}

/// Checks a state vector's length and finiteness against a spec; shared by `set_state` impls.
pub(crate) fn check_state(spec: &EnvSpec, state: &[f64]) -> Result<(), Error> {
    if state.len() != spec.state_layout.len() {
        return Err(Error::StateLength {
            env: spec.id,
            expected: spec.state_layout.len(),
            found: state.len(),
            layout: spec.state_layout.join(", "),
        });
    }
    if let Some(index) = state.iter().position(|v| !v.is_finite()) {
        return Err(Error::NonFiniteState {
            env: spec.id,
            index,
            value: state[index],
        });
    }
    Ok(())
}
