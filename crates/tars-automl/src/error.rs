//! The one error type of `tars-automl`: what a caller can get wrong, with what is valid.

/// Errors a caller of this crate can cause.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `low > high`, or `low == high` (a range with one point searches nothing).
    #[error(
        "{name}: range [{low}, {high}] is {what}; give low < high (fix a value with a one-choice categorical)"
    )]
    EmptyRange {
        name: String,
        low: String,
        high: String,
        what: &'static str,
    },
    /// A log-scale range must be positive.
    #[error("{name}: log scale needs low > 0, got low = {low}")]
    LogNonPositive { name: String, low: String },
    /// Log scale and a step cannot be combined for floats (as in Optuna).
    #[error("{name}: a float cannot have both log = true and a step; drop one")]
    LogWithStep { name: String },
    /// The step must be positive.
    #[error("{name}: step must be > 0, got {step}")]
    StepNotPositive { name: String, step: String },
    /// `high - low` must be a multiple of the step.
    #[error(
        "{name}: step {step} does not divide the range [{low}, {high}]; use a high of the form low + k * step"
    )]
    StepNotDividing {
        name: String,
        low: String,
        high: String,
        step: String,
    },
    /// A bound that is NaN or infinite.
    #[error("{name}: bounds and step must be finite numbers")]
    NotFinite { name: String },
    /// A categorical distribution with no choices, or with a choice listed twice.
    #[error("{name}: categorical choices {what}")]
    BadChoices { name: String, what: String },
    /// A search space that is not a JSON object of distributions.
    #[error("search space: {what}")]
    BadSearchSpace { what: String },
    /// The search space has no parameters.
    #[error("search space is empty; give at least one parameter")]
    EmptySearchSpace,
    /// A value that is not in a parameter's distribution.
    #[error("{name} = {value} is not in its distribution {distribution}")]
    NotInDistribution {
        name: String,
        value: String,
        distribution: String,
    },
    /// The grid sampler needs a finite lattice: categorical, int, or float with a step.
    #[error("{name}: the grid sampler needs a step for float parameters (or use a categorical)")]
    GridNeedsStep { name: String },
    /// The grid is larger than the grid sampler enumerates.
    #[error("the grid has {n_points} points, more than the {max} the grid sampler enumerates")]
    GridTooLarge { n_points: u128, max: u64 },
    /// Every grid point has been asked for already.
    #[error("the grid is exhausted: all {n_points} points have been tried")]
    GridExhausted { n_points: u64 },
    /// A trial number this study does not have.
    #[error("trial {number} does not exist; this study has {n_trials} trials")]
    UnknownTrial { number: u64, n_trials: u64 },
    /// `tell` or `report` on a trial that has already finished.
    #[error("trial {number} is already {state}; only running trials can be told or reported")]
    TrialFinished { number: u64, state: String },
    /// A setting outside its domain (sampler, pruner, study size).
    #[error("{name} = {value} is invalid: expected {expected}")]
    InvalidSetting {
        name: &'static str,
        value: String,
        expected: String,
    },
    /// A hyperparameter the algorithm does not accept (from `tars_agents::train::plan`).
    #[error(transparent)]
    Agent(#[from] AgentError),
}

/// A `tars_agents::Error` as text, so [`Error`] stays `Clone` and comparable.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct AgentError(pub String);

impl From<tars_agents::Error> for Error {
    fn from(err: tars_agents::Error) -> Error {
        Error::Agent(AgentError(err.to_string()))
    }
}
