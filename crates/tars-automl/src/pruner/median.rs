//! Optuna's `MedianPruner` (a `PercentilePruner` at 50): after `n_startup_trials` complete
//! trials and `n_warmup_steps`, at the first report of each `interval_steps` window, prune
//! a trial whose best intermediate value so far is worse than the median of the complete
//! trials' values at the same step.

use crate::Error;
use crate::study::{Direction, Trial, TrialState};
use serde::{Deserialize, Serialize};

/// Settings of the median pruner (Optuna's defaults).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MedianConfig {
    /// Complete trials needed before anything is pruned.
    pub n_startup_trials: usize,
    /// Steps of each trial never pruned.
    pub n_warmup_steps: u64,
    /// Prune checks happen once per this many steps.
    pub interval_steps: u64,
    /// Complete trials that must have reported the step (Optuna's `n_min_trials`).
    pub n_min_trials: usize,
}

impl Default for MedianConfig {
    fn default() -> Self {
        MedianConfig {
            n_startup_trials: 5,
            n_warmup_steps: 0,
            interval_steps: 1,
            n_min_trials: 1,
        }
    }
}

impl MedianConfig {
    pub fn validate(&self) -> Result<(), Error> {
        if self.interval_steps == 0 {
            return Err(Error::InvalidSetting {
                name: "interval_steps",
                value: "0".to_string(),
                expected: "an integer ≥ 1".to_string(),
            });
        }
        if self.n_min_trials == 0 {
            return Err(Error::InvalidSetting {
                name: "n_min_trials",
                value: "0".to_string(),
                expected: "an integer ≥ 1".to_string(),
            });
        }
        Ok(())
    }

    pub fn should_prune(&self, direction: Direction, trials: &[Trial], idx: usize) -> bool {
        let trial = &trials[idx];
        let complete: Vec<&Trial> = trials
            .iter()
            .filter(|t| t.state == TrialState::Complete)
            .collect();
        if complete.is_empty() || complete.len() < self.n_startup_trials {
            return false;
        }
        let Some(step) = trial.last_step() else {
            return false;
        };
        if step < self.n_warmup_steps {
            return false;
        }
        // Optuna's `_is_first_in_interval_step`.
        let nearest_lower = (step - self.n_warmup_steps) / self.interval_steps
            * self.interval_steps
            + self.n_warmup_steps;
        let second_last = trial
            .intermediate_values
            .keys()
            .copied()
            .filter(|&s| s != step)
            .max();
        if second_last.is_some_and(|s| s >= nearest_lower) {
            return false;
        }
        let values = trial
            .intermediate_values
            .values()
            .copied()
            .filter(|v| !v.is_nan());
        let best = match direction {
            Direction::Minimize => values.fold(f64::NAN, f64::min),
            Direction::Maximize => values.fold(f64::NAN, f64::max),
        };
        if best.is_nan() {
            return true;
        }
        let at_step: Vec<f64> = complete
            .iter()
            .filter_map(|t| t.intermediate_values.get(&step).copied())
            .filter(|v| !v.is_nan())
            .collect();
        if at_step.len() < self.n_min_trials {
            return false;
        }
        let median = percentile(at_step, 50.0);
        match direction {
            Direction::Maximize => best < median,
            Direction::Minimize => best > median,
        }
    }
}

/// numpy's `percentile` with linear interpolation.
pub fn percentile(mut values: Vec<f64>, q: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    let rank = q / 100.0 * (values.len() - 1) as f64;
    let (lo, hi) = (rank.floor() as usize, rank.ceil() as usize);
    values[lo] + (values[hi] - values[lo]) * (rank - lo as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::study::{Outcome, Study, StudyConfig};
    use crate::{Distribution, PrunerConfig, SearchSpace};

    /// A maximising study whose complete trials reported the curves `value(step) = level · step`.
    fn study_with(levels: &[f64], config: MedianConfig) -> Study {
        let space = SearchSpace::new([("x".to_string(), Distribution::float(0.0, 1.0))]).unwrap();
        let mut study = Study::new(StudyConfig {
            direction: Direction::Maximize,
            pruner: PrunerConfig::Median(config),
            ..StudyConfig::new(space, 0)
        })
        .unwrap();
        for &level in levels {
            let trial = study.ask().unwrap();
            for step in 1..=10 {
                study
                    .report(trial.number, step, level * step as f64)
                    .unwrap();
            }
            study
                .tell(trial.number, Outcome::Complete(level * 10.0))
                .unwrap();
        }
        study
    }

    #[test]
    fn a_clearly_worse_curve_is_pruned_and_a_better_one_is_not() {
        let mut study = study_with(&[1.0, 2.0, 3.0, 4.0, 5.0], MedianConfig::default());
        let worse = study.ask().unwrap().number;
        let better = study.ask().unwrap().number;
        let mut pruned_at = None;
        for step in 1..=10 {
            study.report(worse, step, 0.5 * step as f64).unwrap();
            study.report(better, step, 4.5 * step as f64).unwrap();
            assert!(!study.should_prune(better).unwrap(), "step {step}");
            if pruned_at.is_none() && study.should_prune(worse).unwrap() {
                pruned_at = Some(step);
            }
        }
        assert_eq!(pruned_at, Some(1), "median at step 1 is 3; 0.5 is below it");
    }

    #[test]
    fn nothing_is_pruned_before_startup_trials_warmup_or_between_intervals() {
        let mut study = study_with(&[1.0, 2.0, 3.0, 4.0], MedianConfig::default());
        let trial = study.ask().unwrap().number;
        study.report(trial, 1, 0.0).unwrap();
        assert!(!study.should_prune(trial).unwrap(), "4 complete trials < 5");

        let config = MedianConfig {
            n_warmup_steps: 3,
            interval_steps: 2,
            ..MedianConfig::default()
        };
        let mut study = study_with(&[1.0, 2.0, 3.0, 4.0, 5.0], config);
        let trial = study.ask().unwrap().number;
        let mut checks = Vec::new();
        for step in 1..=8 {
            study.report(trial, step, 0.0).unwrap();
            checks.push(study.should_prune(trial).unwrap());
        }
        // Steps 3, 5 and 7 open an interval after the warm-up; the others do not.
        assert_eq!(
            checks,
            [false, false, true, false, true, false, true, false]
        );
    }

    #[test]
    fn percentiles_interpolate_as_numpy() {
        assert_eq!(percentile(vec![1.0, 2.0, 3.0, 4.0], 50.0), 2.5);
        assert_eq!(percentile(vec![5.0], 50.0), 5.0);
        assert_eq!(percentile(vec![3.0, 1.0, 2.0], 25.0), 1.5);
    }
}
