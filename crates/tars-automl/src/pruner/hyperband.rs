//! Optuna's `HyperbandPruner` (Li et al. 2018): several successive-halving brackets side by
//! side. With `n_brackets = ⌊log_η(max_resource / min_resource)⌋ + 1`, bracket `b` is a
//! successive halving with `min_early_stopping_rate = b` (its first rung at
//! `min_resource · η^b`: bracket 0 prunes hardest, the last one barely). A trial belongs to one
//! bracket, chosen by hashing: `crc32("{key}_{number}") mod Σ budgets`, walked through the
//! brackets' budgets `⌈n_brackets · η^s / (s + 1)⌉` (`s = n_brackets − 1 − b`), so aggressive
//! brackets get more trials. A trial competes only with its own bracket, and the TPE sampler
//! learns only from its bracket (Optuna's `_BracketStudy`).
//!
//! Departures from Optuna, both for studies that must resume from stored trials: the hash key
//! is the study's seed (Optuna hashes the study's name), and "auto" `max_resource` is the
//! largest last step of the complete trials + 1, recomputed from the trials (Optuna fixes it
//! at the first complete trial; the two agree when trials report the same steps, as the RL
//! objective's do). `min_resource` may also be "auto": `max_resource / 100` (as successive
//! halving's), which gives 5 brackets at η = 3; Optuna's default is 1, which for training
//! timesteps gives a dozen brackets of one or two trials each.

use super::halving::HalvingConfig;
use crate::Error;
use crate::study::{Direction, Trial, TrialState};
use serde::{Deserialize, Serialize};

/// Settings of Hyperband.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HyperbandConfig {
    /// r: steps before a bracket-0 trial's first rung; `None`: `max_resource / 100` (≥ 1).
    pub min_resource: Option<u64>,
    /// R: the most steps a trial reports; `None`: the largest last step of the complete
    /// trials + 1 (nothing is pruned before a trial completes).
    pub max_resource: Option<u64>,
    /// η: each rung keeps the top 1/η.
    pub reduction_factor: u64,
    /// Competitors a rung needs before anyone is promoted (needs a fixed `max_resource`).
    pub bootstrap_count: usize,
}

impl Default for HyperbandConfig {
    fn default() -> Self {
        HyperbandConfig {
            min_resource: None,
            max_resource: None,
            reduction_factor: 3,
            bootstrap_count: 0,
        }
    }
}

/// The brackets of a study once its resources are known.
#[derive(Debug, Clone, PartialEq)]
pub struct Brackets {
    pub min_resource: u64,
    pub max_resource: u64,
    /// Trials allotted per bracket, in bracket order.
    pub budgets: Vec<u64>,
}

impl Brackets {
    pub fn n_brackets(&self) -> usize {
        self.budgets.len()
    }

    /// The bracket of trial `number` in a study seeded `seed`.
    pub fn bracket_of(&self, seed: u64, number: u64) -> usize {
        let total: u64 = self.budgets.iter().sum();
        let mut n = u64::from(crc32(format!("{seed}_{number}").as_bytes())) % total;
        for (bracket, &budget) in self.budgets.iter().enumerate() {
            if n < budget {
                return bracket;
            }
            n -= budget;
        }
        unreachable!("n < the sum of the budgets")
    }
}

impl HyperbandConfig {
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
        if let (Some(min), Some(max)) = (self.min_resource, self.max_resource)
            && max < min
        {
            return Err(Error::InvalidSetting {
                name: "max_resource",
                value: max.to_string(),
                expected: format!("an integer ≥ min_resource ({min})"),
            });
        }
        if self.bootstrap_count > 0 && self.max_resource.is_none() {
            return Err(Error::InvalidSetting {
                name: "bootstrap_count",
                value: self.bootstrap_count.to_string(),
                expected: "0 when max_resource is auto (as Optuna)".to_string(),
            });
        }
        Ok(())
    }

    /// The brackets, or `None` while `max_resource` is auto and no trial has completed.
    pub fn brackets(&self, trials: &[Trial]) -> Option<Brackets> {
        let max_resource = match self.max_resource {
            Some(max) => max,
            None => {
                trials
                    .iter()
                    .filter(|t| t.state == TrialState::Complete)
                    .filter_map(Trial::last_step)
                    .max()?
                    + 1
            }
        };
        let min_resource = self
            .min_resource
            .unwrap_or((max_resource / 100).max(1))
            .min(max_resource);
        let eta = self.reduction_factor;
        // ⌊log_η(R / r)⌋ + 1 in integers: the number of rungs r·η^k ≤ R.
        let mut n_brackets = 0u32;
        let mut rung = min_resource;
        while rung <= max_resource {
            n_brackets += 1;
            rung = rung.saturating_mul(eta);
            if rung == u64::MAX {
                break;
            }
        }
        let n = u64::from(n_brackets);
        let budgets = (0..n)
            .map(|bracket| {
                let s = n - 1 - bracket;
                (n.saturating_mul(eta.saturating_pow(s as u32))).div_ceil(s + 1)
            })
            .collect();
        Some(Brackets {
            min_resource,
            max_resource,
            budgets,
        })
    }

    /// Whether `trials[idx]` (running) stops: successive halving within its bracket.
    pub fn should_prune(
        &self,
        direction: Direction,
        seed: u64,
        trials: &mut [Trial],
        idx: usize,
    ) -> bool {
        let Some(brackets) = self.brackets(trials) else {
            return false;
        };
        let bracket = brackets.bracket_of(seed, trials[idx].number);
        let halving = HalvingConfig {
            min_resource: Some(brackets.min_resource),
            reduction_factor: self.reduction_factor,
            min_early_stopping_rate: bracket as u32,
            bootstrap_count: self.bootstrap_count,
        };
        let numbers: Vec<u64> = trials.iter().map(|t| t.number).collect();
        halving.should_prune_among(direction, trials, idx, brackets.min_resource, &|other| {
            brackets.bracket_of(seed, numbers[other]) == bracket
        })
    }
}

/// CRC-32 (IEEE 802.3, as zlib's and Python's `binascii.crc32`).
pub fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xEDB8_8320 & mask);
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::study::{Outcome, Study, StudyConfig};
    use crate::{Distribution, PrunerConfig, SearchSpace};

    fn config(min: u64, max: u64, eta: u64) -> HyperbandConfig {
        HyperbandConfig {
            min_resource: Some(min),
            max_resource: Some(max),
            reduction_factor: eta,
            bootstrap_count: 0,
        }
    }

    #[test]
    fn crc32_is_zlibs() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
        // Python: binascii.crc32(b"0_7")
        assert_eq!(crc32(b"0_7"), 0x5EB4_D816);
    }

    #[test]
    fn brackets_and_budgets_are_optunas() {
        // Optuna, min_resource=1, max_resource=81, η=3: 5 brackets, budgets
        // ⌈5·3^s/(s+1)⌉ for s = 4..0 = 81, 34, 15, 8, 5.
        let brackets = config(1, 81, 3).brackets(&[]).unwrap();
        assert_eq!(brackets.budgets, [81, 34, 15, 8, 5]);
        // R/r = 80 < 81: one bracket fewer (⌊log_3 80⌋ + 1 = 4).
        assert_eq!(config(1, 80, 3).brackets(&[]).unwrap().n_brackets(), 4);
        assert_eq!(config(10, 100, 2).brackets(&[]).unwrap().n_brackets(), 4);
        assert_eq!(config(5, 5, 3).brackets(&[]).unwrap().budgets, [1]);
        // Auto: no brackets before a trial completes.
        assert_eq!(HyperbandConfig::default().brackets(&[]), None);
    }

    #[test]
    fn trials_are_spread_over_brackets_in_proportion_to_their_budgets() {
        let brackets = config(1, 81, 3).brackets(&[]).unwrap();
        let mut counts = [0usize; 5];
        let n = 14_300u64;
        for number in 0..n {
            let bracket = brackets.bracket_of(7, number);
            assert_eq!(bracket, brackets.bracket_of(7, number), "deterministic");
            counts[bracket] += 1;
        }
        for (count, budget) in counts.iter().zip(&brackets.budgets) {
            let expected = n as f64 * *budget as f64 / 143.0;
            assert!(
                (*count as f64 - expected).abs() < 5.0 * expected.sqrt(),
                "{counts:?}"
            );
        }
        // Another seed assigns trial numbers differently.
        let same = (0..100)
            .filter(|&t| brackets.bracket_of(7, t) == brackets.bracket_of(8, t))
            .count();
        assert!(same < 90, "{same}");
    }

    /// A minimising study with Hyperband (r = 1, R = 9, η = 3: brackets 0, 1, 2 with first
    /// rungs at steps 1, 3, 9).
    fn study() -> Study {
        let space = SearchSpace::new([("x".to_string(), Distribution::float(0.0, 1.0))]).unwrap();
        Study::new(StudyConfig {
            pruner: PrunerConfig::Hyperband(config(1, 9, 3)),
            ..StudyConfig::new(space, 11)
        })
        .unwrap()
    }

    #[test]
    fn a_trial_competes_only_within_its_bracket() {
        let mut study = study();
        let brackets = config(1, 9, 3).brackets(&[]).unwrap();
        assert_eq!(brackets.budgets, [9, 5, 3]);
        // Good trials (value 0.0) at every step first, then a bad one per bracket.
        let mut good_by_bracket = [0usize; 3];
        let mut numbers = Vec::new();
        for _ in 0..30 {
            let number = study.ask().unwrap().number;
            let bracket = brackets.bracket_of(11, number);
            numbers.push((number, bracket));
            study.report(number, 9, 0.0).unwrap();
            assert!(!study.should_prune(number).unwrap(), "ties are promoted");
            study.tell(number, Outcome::Complete(0.0)).unwrap();
            good_by_bracket[bracket] += 1;
        }
        assert!(
            good_by_bracket.iter().all(|&n| n >= 3),
            "{good_by_bracket:?}"
        );
        // A bad trial: pruned at its bracket's first rung, which is step 1, 3 or 9.
        for bracket in 0..3 {
            let number = loop {
                let number = study.ask().unwrap().number;
                if brackets.bracket_of(11, number) == bracket {
                    break number;
                }
                study
                    .tell(number, Outcome::Failed("not this bracket".into()))
                    .unwrap();
            };
            let first_rung = [1, 3, 9][bracket];
            if first_rung > 1 {
                study.report(number, first_rung - 1, 5.0).unwrap();
                assert!(
                    !study.should_prune(number).unwrap(),
                    "before its first rung"
                );
            }
            study.report(number, first_rung, 5.0).unwrap();
            assert!(study.should_prune(number).unwrap(), "bracket {bracket}");
            assert_eq!(study.trial(number).unwrap().rung_values, [5.0]);
            study.tell(number, Outcome::Pruned).unwrap();
        }
    }

    #[test]
    fn rung_competitors_come_from_the_same_bracket_only() {
        // Bracket 0's rung 0 holds only a bad value; a bracket-0 newcomer that is better
        // than it is promoted even though other brackets hold far better values.
        let hyperband = config(1, 9, 3);
        let brackets = hyperband.brackets(&[]).unwrap();
        let mut study = study();
        let mut bracket_0 = Vec::new();
        let mut others = Vec::new();
        while bracket_0.len() < 3 || others.len() < 6 {
            let number = study.ask().unwrap().number;
            if brackets.bracket_of(11, number) == 0 {
                bracket_0.push(number);
            } else {
                others.push(number);
            }
        }
        // Other brackets: excellent values at every rung they reach.
        for &number in &others {
            study.report(number, 9, -100.0).unwrap();
            study.should_prune(number).unwrap();
        }
        // Bracket 0: 10.0 then 9.0 at step 1 (3 competitors needed before the top third
        // is more than the best one).
        study.report(bracket_0[0], 1, 10.0).unwrap();
        assert!(!study.should_prune(bracket_0[0]).unwrap());
        study.report(bracket_0[1], 1, 9.0).unwrap();
        assert!(
            !study.should_prune(bracket_0[1]).unwrap(),
            "best of bracket 0"
        );
        study.report(bracket_0[2], 1, 9.5).unwrap();
        assert!(
            study.should_prune(bracket_0[2]).unwrap(),
            "9.5 is not the best of 3"
        );
    }

    #[test]
    fn bad_settings_are_refused() {
        let bad = |c: HyperbandConfig| c.validate().unwrap_err().to_string();
        assert!(bad(config(1, 9, 1)).contains("reduction_factor"));
        assert!(bad(config(0, 9, 3)).contains("min_resource"));
        assert!(bad(config(10, 9, 3)).contains("max_resource"));
        let bootstrap = HyperbandConfig {
            bootstrap_count: 2,
            ..HyperbandConfig::default()
        };
        assert!(bad(bootstrap).contains("bootstrap_count"));
        assert!(HyperbandConfig::default().validate().is_ok());
    }
}
