//! The one error type of `tars-agents`: what a caller can get wrong, with what is valid.

/// Errors a caller of this crate can cause.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The algorithm name is not one of ours.
    #[error("unknown algorithm '{name}'{hint}; valid algorithms: dqn, a2c, ppo, ddpg, td3")]
    UnknownAlgo {
        name: String,
        /// ` (did you mean 'ppo'?)` for a near miss, else empty.
        hint: String,
    },
    /// A hyperparameter name the algorithm does not have.
    #[error("unknown {algo} hyperparameter '{name}'{hint}; valid names: {valid}")]
    UnknownHyperparameter {
        algo: &'static str,
        name: String,
        hint: String,
        valid: String,
    },
    /// A hyperparameter value of the wrong type or outside its domain.
    #[error("invalid {algo} hyperparameter {name} = {value}: expected {expected}")]
    InvalidHyperparameter {
        algo: &'static str,
        name: String,
        value: String,
        expected: String,
    },
    /// The algorithm cannot act in this environment's action space.
    #[error("{algo} cannot train on {env}: {why}")]
    UnsupportedEnv {
        algo: &'static str,
        env: String,
        why: String,
    },
    /// An environment error (unknown id, bad state).
    #[error(transparent)]
    Env(#[from] tars_envs::Error),
    /// A checkpoint that cannot be loaded.
    #[error("checkpoint {what}")]
    Checkpoint { what: String },
    /// A buffer the allocator could not provide (the run's budget was set above the machine).
    #[error(
        "could not allocate {} for {what}; lower the run's size or its memory budget (max_job_memory_bytes)",
        crate::budget::human_bytes(*bytes)
    )]
    OutOfMemory { what: String, bytes: u64 },
}
