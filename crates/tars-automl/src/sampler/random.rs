//! Independent uniform draws, as Optuna's `RandomSampler` (through `_SearchSpaceTransform`):
//! uniform on `[low, high]`, log-uniform for log distributions, and for lattices (int, float
//! with a step) uniform on `[low - step/2, high + step/2]` rounded to the lattice, so every
//! lattice point has the same probability.

use crate::Distribution;
use serde_json::Value;
use tars_envs::Rng;

/// One draw from `distribution`.
pub fn sample_one(distribution: &Distribution, rng: &mut Rng) -> Value {
    match *distribution {
        Distribution::Categorical { ref choices } => {
            choices[rng.below(choices.len() as u64) as usize].clone()
        }
        Distribution::Float {
            low,
            high,
            log,
            step,
        } => {
            let internal = match (log, step) {
                (true, _) => rng.uniform(low.ln(), high.ln()).exp(),
                (false, Some(step)) => rng.uniform(low - step / 2.0, high + step / 2.0),
                (false, None) => rng.uniform(low, high),
            };
            distribution.to_external(internal)
        }
        Distribution::Int {
            low,
            high,
            log,
            step,
        } => {
            let (low, high, step) = (low as f64, high as f64, step as f64);
            let internal = if log {
                rng.uniform((low - 0.5).ln(), (high + 0.5).ln()).exp()
            } else {
                rng.uniform(low - step / 2.0, high + step / 2.0)
            };
            distribution.to_external(internal)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn draws(distribution: &Distribution, n: usize) -> Vec<Value> {
        let mut rng = Rng::new(11);
        (0..n).map(|_| sample_one(distribution, &mut rng)).collect()
    }

    /// Largest gap between the empirical CDF of `xs` and the uniform CDF on [0, 1].
    pub(crate) fn ks_uniform(mut xs: Vec<f64>) -> f64 {
        xs.sort_by(f64::total_cmp);
        let n = xs.len() as f64;
        xs.iter()
            .enumerate()
            .map(|(i, &x)| (x - i as f64 / n).abs().max(((i + 1) as f64 / n - x).abs()))
            .fold(0.0, f64::max)
    }

    #[test]
    fn floats_are_uniform_and_log_floats_are_log_uniform() {
        // KS critical value at α = 0.001 for n = 20,000 is 1.95 / sqrt(n) ≈ 0.0138.
        let n = 20_000;
        let uniform: Vec<f64> = draws(&Distribution::float(-2.0, 6.0), n)
            .iter()
            .map(|v| (v.as_f64().unwrap() + 2.0) / 8.0)
            .collect();
        assert!(ks_uniform(uniform) < 0.0138);
        let log: Vec<f64> = draws(&Distribution::log_float(1e-5, 1e-2), n)
            .iter()
            .map(|v| (v.as_f64().unwrap().ln() - 1e-5f64.ln()) / (1e-2f64.ln() - 1e-5f64.ln()))
            .collect();
        assert!(ks_uniform(log.clone()) < 0.0138);
        // The same values are far from uniform on the linear scale.
        let linear: Vec<f64> = draws(&Distribution::log_float(1e-5, 1e-2), n)
            .iter()
            .map(|v| (v.as_f64().unwrap() - 1e-5) / (1e-2 - 1e-5))
            .collect();
        assert!(ks_uniform(linear) > 0.3);
    }

    #[test]
    fn lattice_values_land_on_the_lattice_with_equal_frequency() {
        let int: Distribution =
            serde_json::from_value(json!({"type": "int", "low": 2, "high": 20, "step": 3}))
                .unwrap();
        let float: Distribution =
            serde_json::from_value(json!({"type": "float", "low": 0.1, "high": 0.4, "step": 0.1}))
                .unwrap();
        let n = 21_000;
        for (distribution, n_points) in [
            (int, 7),
            (float, 4),
            (
                Distribution::categorical([json!("a"), json!(1), json!(null)]),
                3,
            ),
        ] {
            let mut counts = vec![0usize; n_points];
            for value in draws(&distribution, n) {
                let idx = distribution.to_internal(&value).expect("on the lattice");
                let idx = match distribution {
                    Distribution::Int { low, step, .. } => ((idx as i64 - low) / step) as usize,
                    Distribution::Float {
                        low,
                        step: Some(step),
                        ..
                    } => ((idx - low) / step).round() as usize,
                    _ => idx as usize,
                };
                counts[idx] += 1;
            }
            let expected = n as f64 / n_points as f64;
            let chi2: f64 = counts
                .iter()
                .map(|&c| (c as f64 - expected).powi(2) / expected)
                .sum();
            // χ² critical value at α = 0.001 with 6 degrees of freedom is 22.5.
            assert!(chi2 < 22.5, "{distribution}: {counts:?}");
        }
        let log_int: Distribution =
            serde_json::from_value(json!({"type": "int", "low": 1, "high": 1000, "log": true}))
                .unwrap();
        let values: Vec<i64> = draws(&log_int, 10_000)
            .iter()
            .map(|v| v.as_i64().unwrap())
            .collect();
        assert!(values.iter().all(|v| (1..=1000).contains(v)));
        // Half the log-uniform mass on [ln 0.5, ln 1000.5] lies below sqrt(0.5 * 1000.5) ≈ 22.4.
        let small = values.iter().filter(|&&v| v <= 22).count() as f64 / 10_000.0;
        assert!((small - 0.5).abs() < 0.03, "log-uniform ints: got {small}");
    }
}
