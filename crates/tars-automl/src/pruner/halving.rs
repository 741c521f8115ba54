//! Optuna's `SuccessiveHalvingPruner` (asynchronous successive halving, Li et al. 2018): rung
//! `r` is reached at step `min_resource · reduction_factor^(min_early_stopping_rate + r)`;
//! there the trial's value joins the rung's competitors and the trial goes on only if it is
//! in the top `1 / reduction_factor` of them (the best one while there are fewer than
//! `reduction_factor`). Rung values are kept in `Trial::rung_values`.

use crate::Error;
use crate::study::{Direction, Trial, TrialState};
use serde::{Deserialize, Serialize};

/// Settings of successive halving (Optuna's defaults).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HalvingConfig {
    /// Steps before the first rung; `None` is Optuna's "auto": the longest complete trial's
    /// last step / 100 (at least 1), estimated once a trial has completed.
    pub min_resource: Option<u64>,
    /// η: a rung keeps the top 1/η.
    pub reduction_factor: u64,
    /// s: the first rung is at `min_resource · η^s`.
    pub min_early_stopping_rate: u32,
    /// Competitors a rung needs before anyone is promoted.
    pub bootstrap_count: usize,
}

impl Default for HalvingConfig {
    fn default() -> Self {
        HalvingConfig {
            min_resource: None,
            reduction_factor: 4,
            min_early_stopping_rate: 0,
            bootstrap_count: 0,
        }
    }
}

impl HalvingConfig {
    pub fn validate(&self) -> Result<(), Error> {
        if self.reduction_factor < 2 {
            return Err(Error::InvalidSetting {
                name: "reduction_factor",
                value: self.reduction_factor.to_string(),
                expected: "an integer ≥ 2".to_string(),
            });
        }
        if self.min_resource == Some(0) {
            return Err(Error::InvalidSetting {
                name: "min_resource",
                value: "0".to_string(),
                expected: "an integer ≥ 1, or absent for auto".to_string(),
            });
        }
        Ok(())
    }

    /// The step at which rung `rung` is reached, given the minimum resource.
    pub fn rung_step(&self, min_resource: u64, rung: u32) -> u64 {
        min_resource.saturating_mul(
            self.reduction_factor
                .saturating_pow(self.min_early_stopping_rate + rung),
        )
    }

    fn min_resource(&self, trials: &[Trial]) -> Option<u64> {
        self.min_resource.or_else(|| {
            trials
                .iter()
                .filter(|t| t.state == TrialState::Complete)
                .filter_map(Trial::last_step)
                .max()
                .map(|last| (last / 100).max(1))
        })
    }

    pub fn should_prune(&self, direction: Direction, trials: &mut [Trial], idx: usize) -> bool {
        let Some(min_resource) = self.min_resource(trials) else {
            return false;
        };
        self.should_prune_among(direction, trials, idx, min_resource, &|_| true)
    }

    /// The decision against the competitors `trials[j]` with `among(j)` (Hyperband's
    /// bracket), given the minimum resource.
    pub(crate) fn should_prune_among(
        &self,
        direction: Direction,
        trials: &mut [Trial],
        idx: usize,
        min_resource: u64,
        among: &dyn Fn(usize) -> bool,
    ) -> bool {
        let Some(step) = trials[idx].last_step() else {
            return false;
        };
        let value = trials[idx].intermediate_values[&step];
        loop {
            let rung = trials[idx].rung_values.len();
            if step < self.rung_step(min_resource, rung as u32) {
                return false;
            }
            if value.is_nan() {
                return true;
            }
            let mut competing: Vec<f64> = trials
                .iter()
                .enumerate()
                .filter(|&(other, _)| other != idx && among(other))
                .filter_map(|(_, t)| t.rung_values.get(rung).copied())
                .collect();
            competing.push(value);
            trials[idx].rung_values.push(value);
            if competing.len() <= self.bootstrap_count {
                return true;
            }
            if !promotable(value, competing, self.reduction_factor, direction) {
                return true;
            }
        }
    }
}

/// Optuna's `_is_trial_promotable_to_next_rung`.
fn promotable(
    value: f64,
    mut competing: Vec<f64>,
    reduction_factor: u64,
    direction: Direction,
) -> bool {
    // With fewer than η competitors only the best is promoted (trials cannot be paused).
    let idx = (competing.len() / reduction_factor as usize).saturating_sub(1);
    competing.sort_by(f64::total_cmp);
    match direction {
        Direction::Maximize => value >= competing[competing.len() - 1 - idx],
        Direction::Minimize => value <= competing[idx],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::study::{Study, StudyConfig};
    use crate::{Distribution, PrunerConfig, SearchSpace};

    fn study(config: HalvingConfig) -> Study {
        let space = SearchSpace::new([("x".to_string(), Distribution::float(0.0, 1.0))]).unwrap();
        Study::new(StudyConfig {
            pruner: PrunerConfig::SuccessiveHalving(config),
            ..StudyConfig::new(space, 0)
        })
        .unwrap()
    }

    const ETA_2: HalvingConfig = HalvingConfig {
        min_resource: Some(1),
        reduction_factor: 2,
        min_early_stopping_rate: 0,
        bootstrap_count: 0,
    };

    /// Reports `value` at `step` for a new trial and returns (pruned, rungs reached).
    fn run(study: &mut Study, value: f64, step: u64) -> (bool, usize) {
        let number = study.ask().unwrap().number;
        study.report(number, step, value).unwrap();
        let pruned = study.should_prune(number).unwrap();
        (pruned, study.trial(number).unwrap().rung_values.len())
    }

    #[test]
    fn rungs_are_reached_at_min_resource_times_eta_powers() {
        assert_eq!(
            (0..4).map(|r| ETA_2.rung_step(1, r)).collect::<Vec<_>>(),
            [1, 2, 4, 8]
        );
        let optuna = HalvingConfig::default();
        assert_eq!(
            (0..3).map(|r| optuna.rung_step(250, r)).collect::<Vec<_>>(),
            [250, 1000, 4000]
        );
        // The first trial always leads its rungs; at step 7 it has passed rungs 0, 1 and 2.
        let mut study = study(ETA_2);
        assert_eq!(run(&mut study, 1.0, 7), (false, 3));
    }

    #[test]
    fn a_rung_keeps_the_top_half_as_optuna_rung_check() {
        // Seven trials report 0.1 … 0.7 at step 7 (minimising), then three newcomers.
        let mut study = study(ETA_2);
        for i in 0..7 {
            run(&mut study, 0.1 * (i + 1) as f64, 7);
        }
        // 0.75 is the worst of 8 at rung 0: stops there.
        assert_eq!(run(&mut study, 0.75, 7), (true, 1));
        // 0.25 is in the top half of rung 0 but not better than 0.1 at rung 1.
        assert_eq!(run(&mut study, 0.25, 7), (true, 2));
        // 0.05 leads every rung up to step 7.
        assert_eq!(run(&mut study, 0.05, 7), (false, 3));
    }

    #[test]
    fn auto_min_resource_waits_for_a_complete_trial() {
        let mut study = study(HalvingConfig::default());
        let first = study.ask().unwrap().number;
        for step in [1000, 20_000] {
            study.report(first, step, 1.0).unwrap();
            assert!(!study.should_prune(first).unwrap(), "no complete trial yet");
        }
        study.tell(first, crate::Outcome::Complete(1.0)).unwrap();
        // min_resource = 20,000 / 100 = 200: rungs at 200, 800, 3200, 12,800.
        let second = study.ask().unwrap().number;
        study.report(second, 199, 5.0).unwrap();
        assert!(!study.should_prune(second).unwrap());
        assert!(study.trial(second).unwrap().rung_values.is_empty());
        study.report(second, 200, 5.0).unwrap();
        assert!(
            !study.should_prune(second).unwrap(),
            "alone at rung 0: promoted"
        );
        assert_eq!(study.trial(second).unwrap().rung_values, [5.0]);
    }
}
