//! Hyperparameter studies with Optuna's vocabulary and semantics.
//!
//! A [`Study`] holds a [`StudyConfig`] (direction, [`SearchSpace`] of [`Distribution`]s,
//! sampler, pruner, seed) and its [`Trial`]s. Callers drive it with ask/tell
//! ([`Study::ask`], [`Study::report`], [`Study::should_prune`], [`Study::tell`]) or with
//! [`runner::optimize`], which runs trials on worker threads. Samplers live in [`sampler`]
//! (random, grid, TPE), pruners in [`pruner`] (median, successive halving). [`spaces`] holds
//! the RL Zoo's default search spaces per algorithm, [`rl`] the objective that trains and
//! evaluates an agent, and [`functions`] the standard test functions of the benchmark.
//!
//! Architecture invariant: synchronous, no I/O, no global RNG; every draw of trial `n` comes
//! from a generator seeded by (study seed, `n`), so a study is reproducible for a seed with
//! one worker and resumes from its stored trials. The clock is read only for durations.

pub mod distribution;
mod error;
pub mod functions;
pub mod pruner;
pub mod rl;
pub mod runner;
pub mod sampler;
pub mod space;
pub mod spaces;
pub mod study;

pub use distribution::Distribution;
pub use error::{AgentError, Error};
pub use pruner::PrunerConfig;
pub use sampler::SamplerConfig;
pub use space::SearchSpace;
pub use study::{Direction, Outcome, Study, StudyConfig, Trial, TrialHandle, TrialState};
