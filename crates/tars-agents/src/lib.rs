//! Reinforcement-learning agents with Stable-Baselines3 semantics: DQN, A2C, PPO, DDPG and TD3.
//!
//! Each algorithm reads top to bottom in its own file ([`dqn`], [`a2c`], [`ppo`], [`ddpg`];
//! [`td3`] is DDPG's loop with TD3's three changes, as in SB3)
//! and reproduces SB3's defaults, losses and update order; [`train`] is the one entry point.
//! They all train [`nn`], the small MLP engine: dense layers with explicit backward passes,
//! the policy and value heads, SB3's initialisations and PyTorch's optimisers. Around them:
//! [`evaluate()`] (SB3's `evaluate_policy`), [`EvalCallback`] (periodic evaluation keeping the
//! best policy) and [`checkpoint`] (safetensors + JSON metadata).
//!
//! Architecture invariant: no I/O, no clock, no global RNG. Every random draw comes from a
//! [`tars_envs::Rng`] passed in by the caller, so the same seed gives the same weights.

pub mod a2c;
pub mod budget;
pub mod checkpoint;
pub mod ddpg;
pub mod dqn;
mod error;
pub mod eval_callback;
pub mod evaluate;
pub mod hyperparams;
pub mod nn;
mod noise;
mod normalize;
pub mod policy;
pub mod ppo;
mod replay;
mod rollout;
pub mod td3;
pub mod train;

pub use budget::{Budget, Cost, OverBudget};
pub use error::Error;
pub use eval_callback::{BestPolicy, EvalCallback, EvalConfig, PeriodicEval};
pub use evaluate::{Evaluation, evaluate};
pub use hyperparams::{Algo, NetArch, Schedule};
pub use policy::{
    Control, CurvePoint, ObsNormalizer, Observer, Policy, PolicyNet, Progress, Silent, TrainOutput,
};
