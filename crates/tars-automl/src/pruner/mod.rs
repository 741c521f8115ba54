//! Pruners stop unpromising trials early from their intermediate values: [`median`] (Optuna's
//! `MedianPruner`), [`halving`] (Optuna's `SuccessiveHalvingPruner`) and [`hyperband`]
//! (Optuna's `HyperbandPruner`). Like samplers they are configuration only; successive
//! halving and Hyperband keep their rung values in the trials.

pub mod halving;
pub mod hyperband;
pub mod median;

use crate::Error;
use crate::study::{Direction, Trial};
use serde::{Deserialize, Serialize};

pub use halving::HalvingConfig;
pub use hyperband::HyperbandConfig;
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
    Hyperband(HyperbandConfig),
}

impl PrunerConfig {
    /// Parses a pruner name as the CLI and API give it: `median`, `sh` (or
    /// `successive_halving`), `hyperband` or `none`, with Optuna's default settings
    /// (Hyperband's `min_resource` is auto, see [`hyperband`]).
    pub fn from_name(name: &str) -> Result<PrunerConfig, Error> {
        match name.to_ascii_lowercase().as_str() {
            "none" => Ok(PrunerConfig::None),
            "median" => Ok(PrunerConfig::Median(MedianConfig::default())),
            "sh" | "successive_halving" | "successivehalving" => {
                Ok(PrunerConfig::SuccessiveHalving(HalvingConfig::default()))
            }
            "hyperband" => Ok(PrunerConfig::Hyperband(HyperbandConfig::default())),
            _ => Err(Error::InvalidSetting {
                name: "pruner",
                value: name.to_string(),
                expected: "median, sh (successive halving), hyperband or none".to_string(),
            }),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            PrunerConfig::None => "none",
            PrunerConfig::Median(_) => "median",
            PrunerConfig::SuccessiveHalving(_) => "sh",
            PrunerConfig::Hyperband(_) => "hyperband",
        }
    }

    pub fn validate(&self) -> Result<(), Error> {
        match self {
            PrunerConfig::None => Ok(()),
            PrunerConfig::Median(config) => config.validate(),
            PrunerConfig::SuccessiveHalving(config) => config.validate(),
            PrunerConfig::Hyperband(config) => config.validate(),
        }
    }
}

/// Whether `trials[idx]` (running) should stop, judged on its last reported step, in a
/// study seeded `seed` (Hyperband's bracket hash).
pub fn should_prune(
    config: &PrunerConfig,
    direction: Direction,
    seed: u64,
    trials: &mut [Trial],
    idx: usize,
) -> bool {
    match config {
        PrunerConfig::None => false,
        PrunerConfig::Median(median) => median.should_prune(direction, trials, idx),
        PrunerConfig::SuccessiveHalving(halving) => halving.should_prune(direction, trials, idx),
        PrunerConfig::Hyperband(hyperband) => hyperband.should_prune(direction, seed, trials, idx),
    }
}
