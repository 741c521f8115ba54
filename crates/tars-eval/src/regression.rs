//! The regression detector: is a candidate configuration worse than the ranked baseline?
//!
//! Checks, each against a configurable threshold (defaults are the seeds'):
//! - `reward_drop`: the drop of the mean reward on the environment's normalised scale
//!   ([`crate::normalize`]), `(n_base − n_cand) / max(n_base, 1)`, must not exceed
//!   `reward_drop_pct` (0.10). Below a solving baseline this is the drop in units of the
//!   random-to-solved range; from a solving baseline it is relative.
//! - `failure_rate`: `1 − success_rate` must not exceed `failure_rate` (0.15) when the
//!   baseline's was within it.
//! - `variance`: std must not exceed `variance_multiplier` (2.5) × the baseline's (floored at
//!   1% of the normalised range, so a zero-variance baseline does not flag every wobble).
//! - `loss_trend`: the training loss must not be rising over the last `loss_trend_window`
//!   (10) points: the check fails when the least-squares slope is positive at 5%
//!   significance, so noise in a flat curve does not flag half of all runs.
//!
//! Significance: a one-sided Welch t-test of candidate against baseline returns when the
//! baseline has them, else a one-sample t-test of the candidate's returns against the
//! baseline mean (baselines may be stored as summary statistics only). `confidence = 1 − p`.
//! A reward drop counts only when significant at 5%.

use crate::metrics::Metrics;
use crate::normalize::Normalization;
use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, StudentsT};

/// Detector thresholds (`tars.toml` `[thresholds]`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    pub reward_drop_pct: f64,
    pub failure_rate: f64,
    pub variance_multiplier: f64,
    pub loss_trend_window: usize,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            reward_drop_pct: 0.10,
            failure_rate: 0.15,
            variance_multiplier: 2.5,
            loss_trend_window: 10,
        }
    }
}

/// What the detector knows about the baseline (the seed's `eval_baselines` row, and its
/// per-episode returns when the baseline was measured by T.A.R.S.).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Baseline {
    pub mean_reward: f64,
    pub std_reward: f64,
    pub success_rate: f64,
    /// Not part of the API's baseline object: responses carry `n_returns` instead.
    #[serde(skip)]
    pub returns: Option<Vec<f64>>,
    pub rank: i32,
    pub version: i64,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub const ALL: [Severity; 4] = [
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

/// One check's outcome.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Check {
    pub name: String,
    pub passed: bool,
    /// The measured quantity (e.g. the normalised drop) and its threshold.
    pub value: Option<f64>,
    pub threshold: f64,
    pub detail: String,
}

/// The detector's verdict (field names are the API's).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Regression {
    pub detected: bool,
    pub severity: Severity,
    pub confidence: f64,
    pub should_rollback: bool,
    pub reason: String,
    pub checks: Vec<Check>,
}

/// One-sided p-value for "the candidate's mean is below the baseline's".
fn p_value(candidate: &[f64], baseline: &Baseline) -> f64 {
    let n = candidate.len() as f64;
    let mean = candidate.iter().sum::<f64>() / n;
    let var = |xs: &[f64], m: f64| {
        xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (xs.len() as f64 - 1.0).max(1.0)
    };
    let (t, df) = match &baseline.returns {
        Some(base) if base.len() >= 2 && candidate.len() >= 2 => {
            let (nb, mb) = (base.len() as f64, baseline.mean_reward);
            let (va, vb) = (var(candidate, mean) / n, var(base, mb) / nb);
            let se = (va + vb).sqrt();
            let df = (va + vb).powi(2) / (va.powi(2) / (n - 1.0) + vb.powi(2) / (nb - 1.0));
            ((mean - mb) / se, df)
        }
        _ => (
            (mean - baseline.mean_reward) / (var(candidate, mean) / n).sqrt(),
            (n - 1.0).max(1.0),
        ),
    };
    if !t.is_finite() {
        // Zero variance: the difference is certain in whichever direction it goes.
        return if mean < baseline.mean_reward {
            0.0
        } else {
            1.0
        };
    }
    StudentsT::new(0.0, 1.0, df).map_or(1.0, |dist| dist.cdf(t))
}

fn format_p(p: f64) -> String {
    if p < 0.001 {
        "p < 0.001".to_string()
    } else {
        format!("p = {p:.3}")
    }
}

/// Compares a candidate's metrics and returns with the baseline on `env_id`.
pub fn detect(
    env_id: &str,
    scale: Normalization,
    candidate: &Metrics,
    candidate_returns: &[f64],
    baseline: &Baseline,
    thresholds: &Thresholds,
) -> Regression {
    let (n_base, n_cand) = (
        scale.normalize(baseline.mean_reward),
        scale.normalize(candidate.mean_reward),
    );
    let drop = (n_base - n_cand) / n_base.max(1.0);
    let p = p_value(candidate_returns, baseline);
    let confidence = 1.0 - p;
    let drop_failed = drop > thresholds.reward_drop_pct && p < 0.05;
    let failure = 1.0 - candidate.success_rate;
    let failure_failed =
        failure > thresholds.failure_rate && 1.0 - baseline.success_rate <= thresholds.failure_rate;
    let std_floor = 0.01 * (scale.success_threshold - scale.random_return).abs();
    let allowed_std = thresholds.variance_multiplier * baseline.std_reward.max(std_floor);
    let loss_trend = candidate.loss_trend;
    let loss_rising = loss_trend.is_some_and(|slope| slope > 0.0)
        && candidate.loss_trend_p.is_some_and(|p| p < 0.05);
    let checks = vec![
        Check {
            name: "reward_drop".to_string(),
            passed: !drop_failed,
            value: Some(drop),
            threshold: thresholds.reward_drop_pct,
            detail: format!(
                "normalised drop {drop:.3} ({}) vs allowed {}",
                format_p(p),
                thresholds.reward_drop_pct
            ),
        },
        Check {
            name: "failure_rate".to_string(),
            passed: !failure_failed,
            value: Some(failure),
            threshold: thresholds.failure_rate,
            detail: format!(
                "failure rate {failure:.3} (baseline {:.3})",
                1.0 - baseline.success_rate
            ),
        },
        Check {
            name: "variance".to_string(),
            passed: candidate.std_reward <= allowed_std,
            value: Some(candidate.std_reward),
            threshold: allowed_std,
            detail: format!(
                "std {:.3} vs allowed {allowed_std:.3}",
                candidate.std_reward
            ),
        },
        Check {
            name: "loss_trend".to_string(),
            passed: !loss_rising,
            value: loss_trend,
            threshold: 0.0,
            detail: match loss_trend {
                Some(slope) => format!(
                    "training-loss slope {slope:.4} over the last {} points ({})",
                    thresholds.loss_trend_window,
                    candidate.loss_trend_p.map_or("p n/a".to_string(), format_p)
                ),
                None => "no training-loss curve".to_string(),
            },
        },
    ];
    let detected = checks.iter().any(|c| !c.passed);
    let severity = if drop_failed && drop > 0.5 {
        Severity::Critical
    } else if (drop_failed && drop > 0.25) || (failure_failed && failure > 0.5) {
        Severity::High
    } else if drop_failed || failure_failed {
        Severity::Medium
    } else {
        Severity::Low
    };
    let should_rollback =
        severity >= Severity::High || (severity == Severity::Medium && confidence >= 0.95);
    let where_ = format!(
        "(rank {}, v{}) on {env_id}",
        baseline.rank, baseline.version
    );
    let reason = if drop_failed {
        format!(
            "mean reward {:.1} is {:.0}% below baseline {:.1} {where_}; {}",
            candidate.mean_reward,
            drop * 100.0,
            baseline.mean_reward,
            format_p(p)
        )
    } else if failure_failed {
        format!(
            "failure rate {:.0}% exceeds {:.0}% (baseline {:.0}%) {where_}",
            failure * 100.0,
            thresholds.failure_rate * 100.0,
            (1.0 - baseline.success_rate) * 100.0
        )
    } else if detected {
        let failed: Vec<String> = checks
            .iter()
            .filter(|c| !c.passed)
            .map(|c| format!("{}: {}", c.name, c.detail))
            .collect();
        format!(
            "no reward drop against baseline {:.1} {where_}, but {}",
            baseline.mean_reward,
            failed.join("; ")
        )
    } else {
        format!(
            "no regression: mean reward {:.1} against baseline {:.1} {where_}",
            candidate.mean_reward, baseline.mean_reward
        )
    };
    Regression {
        detected,
        severity,
        confidence,
        should_rollback,
        reason,
        checks,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{BootstrapConfig, compute_metrics};
    use crate::normalize::normalization;

    fn verdict(returns: &[f64], baseline: &Baseline) -> Regression {
        let scale = normalization("CartPole-v1").unwrap();
        let metrics = compute_metrics(
            returns,
            &vec![1; returns.len()],
            475.0,
            &[],
            10,
            BootstrapConfig { reps: 100, seed: 0 },
        );
        detect(
            "CartPole-v1",
            scale,
            &metrics,
            returns,
            baseline,
            &Thresholds::default(),
        )
    }

    /// The seed's §3.2 baseline row: DQN CartPole-v1 450.0 ± 25.0, success 0.95, v12, rank 1.
    fn seed_baseline() -> Baseline {
        Baseline {
            mean_reward: 450.0,
            std_reward: 25.0,
            success_rate: 0.95,
            returns: None,
            rank: 1,
            version: 12,
        }
    }

    #[test]
    fn a_collapsed_policy_against_summary_statistics_is_a_critical_regression() {
        let returns: Vec<f64> = (0..50).map(|i| 20.0 + f64::from(i % 7)).collect();
        let r = verdict(&returns, &seed_baseline());
        assert!(r.detected && r.should_rollback);
        assert_eq!(r.severity, Severity::Critical);
        assert!(r.confidence > 0.999);
        assert_eq!(
            r.reason,
            "mean reward 22.9 is 94% below baseline 450.0 (rank 1, v12) on CartPole-v1; p < 0.001"
        );
    }

    #[test]
    fn an_equal_or_better_candidate_is_not_a_regression() {
        let returns: Vec<f64> = (0..50).map(|i| 480.0 + f64::from(i % 5) * 5.0).collect();
        let r = verdict(&returns, &seed_baseline());
        assert!(!r.detected && !r.should_rollback, "{r:?}");
        assert_eq!(r.severity, Severity::Low);
        assert!(
            r.reason
                .starts_with("no regression: mean reward 490.0 against baseline 450.0"),
            "{}",
            r.reason
        );
    }

    #[test]
    fn a_small_insignificant_dip_is_not_a_reward_drop() {
        let returns: Vec<f64> = (0..5)
            .map(|i| [300.0, 500.0, 480.0, 350.0, 420.0][i])
            .collect();
        let r = verdict(&returns, &seed_baseline());
        let drop = &r.checks[0];
        assert!(
            drop.passed,
            "a 5-episode dip is not significant: {}",
            drop.detail
        );
    }

    #[test]
    fn welch_test_is_used_when_baseline_returns_exist() {
        let mut baseline = seed_baseline();
        baseline.returns = Some((0..50).map(|i| 450.0 + f64::from(i % 3)).collect());
        let returns: Vec<f64> = (0..50).map(|i| 300.0 + f64::from(i % 3)).collect();
        let r = verdict(&returns, &baseline);
        assert!(r.detected && r.should_rollback);
        assert!(r.confidence > 0.999);
    }

    #[test]
    fn high_variance_alone_is_a_low_severity_detection() {
        // Every episode succeeds and the mean is above the baseline, but the spread is large.
        let returns: Vec<f64> = (0..100)
            .map(|i| if i % 2 == 0 { 500.0 } else { 476.0 })
            .collect();
        let baseline = Baseline {
            std_reward: 1.0,
            ..seed_baseline()
        };
        let r = verdict(&returns, &baseline);
        assert!(r.detected && !r.should_rollback);
        assert_eq!(r.severity, Severity::Low);
        assert!(
            r.reason.contains("variance: std 12.000 vs allowed 11.319"),
            "{}",
            r.reason
        );
    }
}
