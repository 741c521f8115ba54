//! A study and its trials, with Optuna's ask/tell interface: `ask` samples a new trial's
//! parameters, the caller evaluates them (reporting intermediate values and asking whether to
//! prune), and `tell` records the outcome. A study is plain data (its config and its trials):
//! serialised, stored and deserialised, it resumes where it stopped, because every trial's
//! random draws are seeded by (study seed, trial number), not by a stream that would need saving.

use crate::pruner::{self, PrunerConfig};
use crate::sampler::{self, SamplerConfig};
use crate::{Error, SearchSpace};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::time::Instant;

/// Whether lower or higher objective values are better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    #[default]
    Minimize,
    Maximize,
}

impl Direction {
    /// Whether `a` is strictly better than `b`.
    pub fn better(self, a: f64, b: f64) -> bool {
        match self {
            Direction::Minimize => a < b,
            Direction::Maximize => a > b,
        }
    }

    /// The value as a loss (lower is better).
    pub fn loss(self, value: f64) -> f64 {
        match self {
            Direction::Minimize => value,
            Direction::Maximize => -value,
        }
    }
}

/// Everything that defines a study besides its trials.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StudyConfig {
    pub direction: Direction,
    pub search_space: SearchSpace,
    pub sampler: SamplerConfig,
    pub pruner: PrunerConfig,
    pub seed: u64,
}

impl StudyConfig {
    /// A minimising study with the TPE sampler and no pruner.
    pub fn new(search_space: SearchSpace, seed: u64) -> StudyConfig {
        StudyConfig {
            direction: Direction::Minimize,
            search_space,
            sampler: SamplerConfig::default(),
            pruner: PrunerConfig::None,
            seed,
        }
    }

    /// Checks the space, the sampler's and the pruner's settings.
    pub fn validate(&self) -> Result<(), Error> {
        self.search_space.validate()?;
        self.sampler.validate(&self.search_space)?;
        self.pruner.validate()
    }
}

/// Where a trial is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TrialState {
    Running,
    Complete,
    Pruned,
    Failed,
}

impl fmt::Display for TrialState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TrialState::Running => "running",
            TrialState::Complete => "complete",
            TrialState::Pruned => "pruned",
            TrialState::Failed => "failed",
        })
    }
}

/// One evaluation of one set of parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trial {
    /// 0, 1, 2, … in the order trials were asked for.
    pub number: u64,
    /// External values, by parameter name.
    pub params: BTreeMap<String, Value>,
    pub state: TrialState,
    /// The objective value (complete trials), or the last intermediate value (pruned trials,
    /// as Optuna records them).
    pub value: Option<f64>,
    /// Intermediate values by step (e.g. recent mean return by training timestep). JSON
    /// has no NaN: a NaN report is stored as `null` and read back as NaN.
    #[serde(default, with = "nan_as_null")]
    pub intermediate_values: BTreeMap<u64, f64>,
    /// Why a failed trial failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Wall time from ask to tell (absent while running or for trials resumed mid-flight).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_seconds: Option<f64>,
    /// The value this trial had at each successive-halving rung it reached (Optuna's
    /// `completed_rung_<i>` system attributes).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rung_values: Vec<f64>,
}

impl Trial {
    /// The last step with a reported value.
    pub fn last_step(&self) -> Option<u64> {
        self.intermediate_values.keys().next_back().copied()
    }

    pub fn is_finished(&self) -> bool {
        self.state != TrialState::Running
    }
}

/// What the caller of [`Study::ask`] gets: the trial's number and parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrialHandle {
    pub number: u64,
    pub params: BTreeMap<String, Value>,
}

/// How an evaluation ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Finished with this objective value.
    Complete(f64),
    /// Stopped early because the pruner said so.
    Pruned,
    /// Could not be evaluated; the text says why.
    Failed(String),
}

/// A study: its configuration and its trials.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Study {
    config: StudyConfig,
    trials: Vec<Trial>,
    /// Parameters to evaluate before sampling (Optuna's `enqueue_trial`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    queue: Vec<BTreeMap<String, Value>>,
    /// When each running trial was asked for (not persisted: durations of trials that span a
    /// restart are unknown).
    #[serde(skip)]
    started: HashMap<u64, Instant>,
}

impl Study {
    /// A new, empty study.
    pub fn new(config: StudyConfig) -> Result<Study, Error> {
        Study::from_trials(config, Vec::new())
    }

    /// A study rebuilt from its configuration and stored trials (in any order; numbers must
    /// be 0..n). Trials still marked running stay running until told.
    pub fn from_trials(config: StudyConfig, mut trials: Vec<Trial>) -> Result<Study, Error> {
        config.validate()?;
        trials.sort_by_key(|t| t.number);
        for (idx, trial) in trials.iter().enumerate() {
            if trial.number != idx as u64 {
                return Err(Error::InvalidSetting {
                    name: "trials",
                    value: format!("trial number {}", trial.number),
                    expected: format!("trial numbers 0..{} with none missing", trials.len()),
                });
            }
        }
        Ok(Study {
            config,
            trials,
            queue: Vec::new(),
            started: HashMap::new(),
        })
    }

    pub fn config(&self) -> &StudyConfig {
        &self.config
    }

    pub fn direction(&self) -> Direction {
        self.config.direction
    }

    pub fn trials(&self) -> &[Trial] {
        &self.trials
    }

    pub fn trial(&self, number: u64) -> Result<&Trial, Error> {
        self.trials.get(number as usize).ok_or(Error::UnknownTrial {
            number,
            n_trials: self.trials.len() as u64,
        })
    }

    /// The complete trial with the best value (the earliest among ties).
    pub fn best_trial(&self) -> Option<&Trial> {
        let direction = self.direction();
        self.trials
            .iter()
            .filter(|t| t.state == TrialState::Complete)
            .fold(None, |best: Option<&Trial>, trial| match best {
                Some(b) if !direction.better(trial.value.unwrap(), b.value.unwrap()) => Some(b),
                _ => Some(trial),
            })
    }

    /// Number of trials in `state`.
    pub fn count(&self, state: TrialState) -> usize {
        self.trials.iter().filter(|t| t.state == state).count()
    }

    /// Evaluates `params` before anything is sampled (e.g. a known-good configuration).
    /// Missing parameters are sampled; values must lie in their distributions.
    pub fn enqueue(&mut self, params: BTreeMap<String, Value>) -> Result<(), Error> {
        for (name, value) in &params {
            let distribution =
                self.config
                    .search_space
                    .get(name)
                    .ok_or_else(|| Error::BadSearchSpace {
                        what: format!("enqueued parameter {name} is not in the search space"),
                    })?;
            if distribution.to_internal(value).is_none() {
                return Err(Error::NotInDistribution {
                    name: name.clone(),
                    value: value.to_string(),
                    distribution: distribution.to_string(),
                });
            }
        }
        self.queue.push(params);
        Ok(())
    }

    /// Starts a new trial: its parameters come from the queue or the sampler.
    pub fn ask(&mut self) -> Result<TrialHandle, Error> {
        let number = self.trials.len() as u64;
        let mut rng = trial_rng(self.config.seed, number);
        let fixed = if self.queue.is_empty() {
            BTreeMap::new()
        } else {
            self.queue.remove(0)
        };
        let params = sampler::sample(&self.config, &self.trials, &fixed, &mut rng)?;
        self.trials.push(Trial {
            number,
            params: params.clone(),
            state: TrialState::Running,
            value: None,
            intermediate_values: BTreeMap::new(),
            error: None,
            duration_seconds: None,
            rung_values: Vec::new(),
        });
        self.started.insert(number, Instant::now());
        Ok(TrialHandle { number, params })
    }

    /// Records an intermediate value of a running trial. A step already reported keeps its
    /// first value (as Optuna).
    pub fn report(&mut self, number: u64, step: u64, value: f64) -> Result<(), Error> {
        let trial = self.running_mut(number)?;
        trial.intermediate_values.entry(step).or_insert(value);
        Ok(())
    }

    /// Whether the pruner stops this running trial now, judged on its last reported step.
    pub fn should_prune(&mut self, number: u64) -> Result<bool, Error> {
        self.running_mut(number)?;
        Ok(pruner::should_prune(
            &self.config.pruner,
            self.config.direction,
            self.config.seed,
            &mut self.trials,
            number as usize,
        ))
    }

    /// Finishes a running trial. A complete trial whose value is not finite is recorded as
    /// failed; a pruned trial takes its last intermediate value, as in Optuna.
    pub fn tell(&mut self, number: u64, outcome: Outcome) -> Result<&Trial, Error> {
        let duration = self
            .started
            .remove(&number)
            .map(|t| t.elapsed().as_secs_f64());
        let trial = self.running_mut(number)?;
        match outcome {
            Outcome::Complete(value) if value.is_finite() => {
                trial.state = TrialState::Complete;
                trial.value = Some(value);
            }
            Outcome::Complete(value) => {
                trial.state = TrialState::Failed;
                trial.error = Some(format!("the objective returned {value}"));
            }
            Outcome::Pruned => {
                trial.state = TrialState::Pruned;
                trial.value = trial.intermediate_values.values().next_back().copied();
            }
            Outcome::Failed(error) => {
                trial.state = TrialState::Failed;
                trial.error = Some(error);
            }
        }
        trial.duration_seconds = duration;
        Ok(trial)
    }

    fn running_mut(&mut self, number: u64) -> Result<&mut Trial, Error> {
        let n_trials = self.trials.len() as u64;
        let trial = self
            .trials
            .get_mut(number as usize)
            .ok_or(Error::UnknownTrial { number, n_trials })?;
        if trial.is_finished() {
            return Err(Error::TrialFinished {
                number,
                state: trial.state.to_string(),
            });
        }
        Ok(trial)
    }
}

/// Serde for step → value maps whose values may be NaN (written as `null`).
mod nan_as_null {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use std::collections::BTreeMap;

    pub fn serialize<S: Serializer>(
        map: &BTreeMap<u64, f64>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        let optional: BTreeMap<u64, Option<f64>> = map
            .iter()
            .map(|(&k, &v)| (k, (!v.is_nan()).then_some(v)))
            .collect();
        optional.serialize(serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<BTreeMap<u64, f64>, D::Error> {
        let optional = BTreeMap::<u64, Option<f64>>::deserialize(deserializer)?;
        Ok(optional
            .into_iter()
            .map(|(k, v)| (k, v.unwrap_or(f64::NAN)))
            .collect())
    }
}

/// The generator of trial `number`'s draws: independent streams per (seed, number).
fn trial_rng(seed: u64, number: u64) -> tars_envs::Rng {
    let mixed = tars_envs::Rng::new(seed).next_u64();
    tars_envs::Rng::new(mixed ^ number.wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Distribution;
    use serde_json::json;

    fn study(sampler: SamplerConfig) -> Study {
        let space = SearchSpace::new([
            ("x".to_string(), Distribution::float(-5.0, 5.0)),
            ("n".to_string(), Distribution::int(1, 4)),
        ])
        .unwrap();
        Study::new(StudyConfig {
            sampler,
            ..StudyConfig::new(space, 3)
        })
        .unwrap()
    }

    #[test]
    fn ask_tell_records_states_values_and_the_best_trial() {
        let mut study = study(SamplerConfig::Random);
        let t0 = study.ask().unwrap();
        let t1 = study.ask().unwrap();
        let t2 = study.ask().unwrap();
        let t3 = study.ask().unwrap();
        study.report(t1.number, 10, 4.0).unwrap();
        study.report(t1.number, 10, 9.0).unwrap();
        study.tell(t0.number, Outcome::Complete(2.0)).unwrap();
        study.tell(t1.number, Outcome::Pruned).unwrap();
        study
            .tell(t2.number, Outcome::Failed("boom".into()))
            .unwrap();
        study.tell(t3.number, Outcome::Complete(f64::NAN)).unwrap();
        let trials = study.trials();
        assert_eq!(trials[0].state, TrialState::Complete);
        assert_eq!(trials[1].state, TrialState::Pruned);
        assert_eq!(
            trials[1].value,
            Some(4.0),
            "first report kept, value = last report"
        );
        assert_eq!(trials[2].error.as_deref(), Some("boom"));
        assert_eq!(trials[3].state, TrialState::Failed);
        assert!(trials[0].duration_seconds.is_some());
        assert_eq!(study.best_trial().unwrap().number, 0);
        assert_eq!(
            study
                .tell(0, Outcome::Complete(1.0))
                .unwrap_err()
                .to_string(),
            "trial 0 is already complete; only running trials can be told or reported"
        );
        assert!(matches!(
            study.report(9, 1, 1.0),
            Err(Error::UnknownTrial { number: 9, .. })
        ));
    }

    #[test]
    fn a_study_resumes_from_its_config_and_trials_as_if_never_stopped() {
        let run = |stop_at: usize| {
            let mut study = study(SamplerConfig::default());
            for i in 0..30 {
                if i == stop_at {
                    let json = serde_json::to_string(&study).unwrap();
                    let stored: Study = serde_json::from_str(&json).unwrap();
                    study = Study::from_trials(stored.config().clone(), stored.trials().to_vec())
                        .unwrap();
                }
                let trial = study.ask().unwrap();
                let x = trial.params["x"].as_f64().unwrap();
                study.tell(trial.number, Outcome::Complete(x * x)).unwrap();
            }
            study
                .trials()
                .iter()
                .map(|t| t.params.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(run(usize::MAX), run(17));
        assert_eq!(run(usize::MAX), run(usize::MAX), "same seed, same study");
    }

    #[test]
    fn intermediate_values_round_trip_through_json_even_when_nan() {
        let mut study = study(SamplerConfig::Random);
        let number = study.ask().unwrap().number;
        study.report(number, 100, 1.5).unwrap();
        study.report(number, 200, f64::NAN).unwrap();
        let json = serde_json::to_value(&study).unwrap();
        assert_eq!(
            json["trials"][0]["intermediate_values"],
            json!({"100": 1.5, "200": null})
        );
        let back: Study = serde_json::from_value(json).unwrap();
        let values = &back.trials()[0].intermediate_values;
        assert_eq!(values[&100], 1.5);
        assert!(values[&200].is_nan());
    }

    #[test]
    fn enqueued_parameters_come_first_and_are_checked() {
        let mut study = study(SamplerConfig::default());
        let fixed: BTreeMap<String, Value> = [("x".to_string(), json!(1.5))].into();
        study.enqueue(fixed).unwrap();
        let trial = study.ask().unwrap();
        assert_eq!(trial.params["x"], json!(1.5));
        assert!(trial.params.contains_key("n"));
        let bad: BTreeMap<String, Value> = [("n".to_string(), json!(9))].into();
        assert!(study.enqueue(bad).is_err());
    }
}
