//! Pruners stop unpromising trials early from their intermediate values: [`median`] (Optuna's
//! `MedianPruner`) and [`halving`] (Optuna's `SuccessiveHalvingPruner`). Like samplers they
//! are configuration only; successive halving keeps its rung values in the trials.

pub mod halving;
pub mod median;

use crate::Error;
use crate::study::{Direction, Trial};
use serde::{Deserialize, Serialize};

pub use halving::HalvingConfig;
pub use median::MedianConfig;

/// Which pruner a study uses, with its settings.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum PrunerConfig {
    /// Never prune.
    #[default]
    None,
    Median(MedianConfig),
    SuccessiveHalving(HalvingConfig),
}

impl PrunerConfig {
    /// Parses a pruner name as the CLI and API give it: `median`, `sh` (or
    /// `successive_halving`) or `none`, with Optuna's default settings.
    pub fn from_name(name: &str) -> Result<PrunerConfig, Error> {
        match name.to_ascii_lowercase().as_str() {
            "none" => Ok(PrunerConfig::None),
            "median" => Ok(PrunerConfig::Median(MedianConfig::default())),
            "sh" | "successive_halving" | "successivehalving" => {
                Ok(PrunerConfig::SuccessiveHalving(HalvingConfig::default()))
            }
            _ => Err(Error::InvalidSetting {
                name: "pruner",
                value: name.to_string(),
                expected: "median, sh (successive halving) or none".to_string(),
            }),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            PrunerConfig::None => "none",
            PrunerConfig::Median(_) => "median",
            PrunerConfig::SuccessiveHalving(_) => "sh",
        }
    }

    pub fn validate(&self) -> Result<(), Error> {
        match self {
            PrunerConfig::None => Ok(()),
            PrunerConfig::Median(config) => config.validate(),
            PrunerConfig::SuccessiveHalving(config) => config.validate(),
        }
    }
}

/// Whether `trials[idx]` (running) should stop, judged on its last reported step.
pub fn should_prune(
    config: &PrunerConfig,
    direction: Direction,
    trials: &mut [Trial],
    idx: usize,
) -> bool {
    match config {
        PrunerConfig::None => false,
        PrunerConfig::Median(median) => median.should_prune(direction, trials, idx),
        PrunerConfig::SuccessiveHalving(halving) => halving.should_prune(direction, trials, idx),
    }
}
