//! The evaluation engine: evaluation requests ([`request`]), the engine that trains or loads
//! policies and runs episodes across environments in parallel ([`engine`]), per-environment
//! metrics (`metrics.rs`: SB3 mean/std, rliable IQM and seeded bootstrap CIs, success rate,
//! loss trend), normalised score scales ([`normalize`]) and the regression detector that
//! compares a candidate with a ranked baseline ([`regression`]).
//!
//! Architecture invariant: no I/O and no global RNG; the same request and seed give
//! bit-identical metrics. The clock is read only to report wall time. Storage (baselines,
//! checkpoints, results) is the caller's: it passes what it loaded in [`engine::Inputs`].

pub mod engine;
pub mod metrics;
pub mod normalize;
pub mod regression;
pub mod request;

pub use engine::{Engine, EngineConfig, EvalResponse, Inputs, LoadedCheckpoint, Reporter};
pub use metrics::{BootstrapConfig, Metrics, compute_metrics, iqm};
pub use normalize::{Normalization, normalization};
pub use regression::{Baseline, Check, Regression, Severity, Thresholds, detect};
pub use request::{EvalError, EvalRequest, Plan, RequestError};
