//! The evaluation engine's statistics: per-environment metrics of a set of episodes (SB3's
//! mean/std, rliable's IQM and bootstrap confidence intervals, success rate, loss trend) and
//! the regression detector that compares a candidate with a ranked baseline.
//!
//! Architecture invariant: no I/O, no clock, no global RNG; the same episodes and seed give
//! bit-identical metrics. The orchestration (training, caching, parallel environments) is
//! built on top of this in a later step.

pub mod metrics;
pub mod normalize;
pub mod regression;

pub use metrics::{BootstrapConfig, Metrics, compute_metrics, iqm};
pub use normalize::{Normalization, normalization};
pub use regression::{Baseline, Check, Regression, Severity, Thresholds, detect};
