//! Samplers choose a new trial's parameters from the trials so far: [`random`] (independent
//! uniform draws), [`grid`] (each point of a finite grid once) and [`tpe`] (Optuna's
//! Tree-structured Parzen Estimator). A sampler is configuration only; its state is the trial
//! list, so a stored study resumes with the same behaviour.

pub mod grid;
pub mod random;
pub mod tpe;

use crate::PrunerConfig;
use crate::study::{StudyConfig, Trial};
use crate::{Error, SearchSpace};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use tars_envs::Rng;

pub use tpe::TpeConfig;

/// Which sampler a study uses, with its settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum SamplerConfig {
    Random,
    Grid,
    Tpe(TpeConfig),
}

impl Default for SamplerConfig {
    fn default() -> Self {
        SamplerConfig::Tpe(TpeConfig::default())
    }
}

impl SamplerConfig {
    /// Parses a sampler name as the CLI and API give it: `tpe`, `random` or `grid`.
    pub fn from_name(name: &str) -> Result<SamplerConfig, Error> {
        match name.to_ascii_lowercase().as_str() {
            "tpe" => Ok(SamplerConfig::default()),
            "random" => Ok(SamplerConfig::Random),
            "grid" => Ok(SamplerConfig::Grid),
            _ => Err(Error::InvalidSetting {
                name: "sampler",
                value: name.to_string(),
                expected: "tpe, random or grid".to_string(),
            }),
        }
    }

    /// The name `from_name` accepts.
    pub fn name(&self) -> &'static str {
        match self {
            SamplerConfig::Random => "random",
            SamplerConfig::Grid => "grid",
            SamplerConfig::Tpe(_) => "tpe",
        }
    }

    /// Checks the settings against the space (the grid needs finite parameters).
    pub fn validate(&self, space: &SearchSpace) -> Result<(), Error> {
        match self {
            SamplerConfig::Random => Ok(()),
            SamplerConfig::Grid => grid::Grid::new(space).map(|_| ()),
            SamplerConfig::Tpe(config) => config.validate(),
        }
    }
}

/// The parameters of the next trial: `fixed` values as given, the rest from the sampler.
pub fn sample(
    config: &StudyConfig,
    trials: &[Trial],
    fixed: &BTreeMap<String, Value>,
    rng: &mut Rng,
) -> Result<BTreeMap<String, Value>, Error> {
    let space = &config.search_space;
    let mut params = match &config.sampler {
        SamplerConfig::Random => space
            .iter()
            .map(|(name, d)| (name.to_string(), random::sample_one(d, rng)))
            .collect(),
        SamplerConfig::Grid => grid::Grid::new(space)?.sample(trials, rng)?,
        SamplerConfig::Tpe(tpe) => {
            let bracket_trials = same_bracket(config, trials);
            let trials = bracket_trials.as_deref().unwrap_or(trials);
            tpe::sample(tpe, config.direction, space, trials, fixed, rng)
        }
    };
    params.extend(fixed.iter().map(|(k, v)| (k.clone(), v.clone())));
    Ok(params)
}

/// Under Hyperband, the trials in the bracket of the next trial (Optuna's `_filter_study`:
/// the TPE learns from its bracket only); `None` otherwise.
fn same_bracket(config: &StudyConfig, trials: &[Trial]) -> Option<Vec<Trial>> {
    let PrunerConfig::Hyperband(hyperband) = &config.pruner else {
        return None;
    };
    let brackets = hyperband.brackets(trials)?;
    let bracket = brackets.bracket_of(config.seed, trials.len() as u64);
    Some(
        trials
            .iter()
            .filter(|t| brackets.bracket_of(config.seed, t.number) == bracket)
            .cloned()
            .collect(),
    )
}
