//! The grid sampler: every point of the product of the parameters' lattices exactly once, in a
//! random order (as Optuna's `GridSampler`), then [`Error::GridExhausted`]. Points already
//! taken are read from the trials (running ones included), so a resumed or parallel study
//! never repeats one.

use crate::study::Trial;
use crate::{Distribution, Error, SearchSpace};
use serde_json::Value;
use std::collections::BTreeMap;
use tars_envs::Rng;

/// Most grid points the sampler enumerates.
pub const MAX_GRID_POINTS: u64 = 10_000_000;

/// The grid of a finite search space, enumerated in mixed radix over the parameters in name
/// order (the last parameter varies fastest).
#[derive(Debug, Clone)]
pub struct Grid<'a> {
    params: Vec<(&'a str, &'a Distribution, u64)>,
    n_points: u64,
}

impl<'a> Grid<'a> {
    /// Fails when a parameter is a continuous float or the grid is too large.
    pub fn new(space: &'a SearchSpace) -> Result<Grid<'a>, Error> {
        let mut params = Vec::new();
        let mut n_points: u128 = 1;
        for (name, distribution) in space.iter() {
            let n = distribution
                .n_points()
                .ok_or_else(|| Error::GridNeedsStep {
                    name: name.to_string(),
                })?;
            n_points *= u128::from(n);
            if n_points > u128::from(MAX_GRID_POINTS) {
                return Err(Error::GridTooLarge {
                    n_points: space
                        .iter()
                        .map(|(_, d)| u128::from(d.n_points().unwrap_or(1)))
                        .fold(1u128, |acc, n| acc.saturating_mul(n)),
                    max: MAX_GRID_POINTS,
                });
            }
            params.push((name, distribution, n));
        }
        Ok(Grid {
            params,
            n_points: n_points as u64,
        })
    }

    pub fn n_points(&self) -> u64 {
        self.n_points
    }

    /// The parameters of grid point `idx`.
    pub fn point(&self, mut idx: u64) -> BTreeMap<String, Value> {
        let mut point = BTreeMap::new();
        for &(name, distribution, n) in self.params.iter().rev() {
            point.insert(name.to_string(), distribution.point(idx % n));
            idx /= n;
        }
        point
    }

    /// The grid index of a trial's parameters, if they are a grid point.
    pub fn index(&self, params: &BTreeMap<String, Value>) -> Option<u64> {
        let mut idx = 0u64;
        for &(name, distribution, n) in &self.params {
            let internal = distribution.to_internal(params.get(name)?)?;
            let digit = match *distribution {
                Distribution::Categorical { .. } => internal as u64,
                Distribution::Int { low, step, .. } => ((internal as i64 - low) / step) as u64,
                Distribution::Float {
                    low,
                    step: Some(step),
                    ..
                } => ((internal - low) / step).round() as u64,
                Distribution::Float { .. } => return None,
            };
            idx = idx * n + digit.min(n - 1);
        }
        Some(idx)
    }

    /// A uniformly random point that no trial has taken yet.
    pub fn sample(
        &self,
        trials: &[Trial],
        rng: &mut Rng,
    ) -> Result<BTreeMap<String, Value>, Error> {
        let mut taken = vec![false; self.n_points as usize];
        for trial in trials {
            if let Some(idx) = self.index(&trial.params) {
                taken[idx as usize] = true;
            }
        }
        let n_free = taken.iter().filter(|t| !**t).count() as u64;
        if n_free == 0 {
            return Err(Error::GridExhausted {
                n_points: self.n_points,
            });
        }
        let pick = rng.below(n_free) as usize;
        let idx = taken
            .iter()
            .enumerate()
            .filter(|(_, t)| !**t)
            .nth(pick)
            .map(|(idx, _)| idx as u64)
            .expect("pick < n_free");
        Ok(self.point(idx))
    }
}

#[cfg(test)]
mod tests {
    use crate::sampler::SamplerConfig;
    use crate::study::{Outcome, Study, StudyConfig};
    use crate::{Distribution, Error, SearchSpace};
    use serde_json::json;
    use std::collections::BTreeSet;

    #[test]
    fn the_grid_is_covered_exactly_once_then_exhausted() {
        let space = SearchSpace::new([
            (
                "a".to_string(),
                Distribution::categorical([json!("x"), json!("y"), json!("z")]),
            ),
            ("b".to_string(), Distribution::int(1, 4)),
            (
                "c".to_string(),
                serde_json::from_value(
                    json!({"type": "float", "low": 0.0, "high": 0.5, "step": 0.25}),
                )
                .unwrap(),
            ),
        ])
        .unwrap();
        let mut study = Study::new(StudyConfig {
            sampler: SamplerConfig::Grid,
            ..StudyConfig::new(space, 5)
        })
        .unwrap();
        let mut seen = BTreeSet::new();
        for i in 0..36 {
            let trial = study.ask().unwrap();
            assert!(seen.insert(serde_json::to_string(&trial.params).unwrap()));
            // Leave some running: they count as taken too.
            if i % 3 != 0 {
                study
                    .tell(trial.number, Outcome::Complete(i as f64))
                    .unwrap();
            }
        }
        assert_eq!(seen.len(), 3 * 4 * 3);
        assert_eq!(
            study.ask().unwrap_err(),
            Error::GridExhausted { n_points: 36 }
        );
        assert_eq!(
            study.ask().unwrap_err().to_string(),
            "the grid is exhausted: all 36 points have been tried"
        );
    }

    #[test]
    fn continuous_floats_and_huge_grids_are_refused() {
        let space =
            SearchSpace::new([("lr".to_string(), Distribution::log_float(1e-5, 1e-2))]).unwrap();
        let err = Study::new(StudyConfig {
            sampler: SamplerConfig::Grid,
            ..StudyConfig::new(space, 0)
        })
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "lr: the grid sampler needs a step for float parameters (or use a categorical)"
        );
        let space =
            SearchSpace::new((0..8).map(|i| (format!("p{i}"), Distribution::int(0, 99)))).unwrap();
        let err = SearchSpace::validate(&space).and_then(|_| SamplerConfig::Grid.validate(&space));
        assert!(matches!(err, Err(Error::GridTooLarge { .. })));
    }
}
