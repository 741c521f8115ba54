//! Reinforcement-learning agents with Stable-Baselines3 semantics: DQN, A2C, PPO and DDPG.
//!
//! Each algorithm will live in its own file and reproduce SB3's defaults, losses and update
//! order. For now the crate holds [`nn`], the small MLP engine they all train: dense layers
//! with explicit backward passes, the policy and value heads, SB3's initialisations and
//! PyTorch's optimisers.
//!
//! Architecture invariant: no I/O, no clock, no global RNG. Every random draw comes from a
//! [`tars_envs::Rng`] passed in by the caller, so the same seed gives the same weights.

pub mod a2c;
pub mod checkpoint;
pub mod ddpg;
pub mod dqn;
mod error;
pub mod evaluate;
pub mod hyperparams;
pub mod nn;
mod noise;
mod normalize;
pub mod policy;
pub mod ppo;
mod replay;
mod rollout;
pub mod train;

pub use error::Error;
pub use evaluate::{Evaluation, evaluate};
pub use hyperparams::{Algo, NetArch, Schedule};
pub use policy::{
    Control, CurvePoint, ObsNormalizer, Observer, Policy, PolicyNet, Progress, Silent, TrainOutput,
};
