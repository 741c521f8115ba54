//! Metrics of a set of evaluation episodes.
//!
//! - mean, std (ddof 0, as SB3's `evaluate_policy`), min, max, median (numpy's: the mean of
//!   the two middle values for even counts);
//! - IQM: scipy's `trim_mean(x, 0.25)` (drop `floor(0.25 n)` episodes at each end), rliable's
//!   headline statistic;
//! - 95% confidence intervals of the mean and the IQM by bootstrap over episodes, percentile
//!   method, as rliable's `get_interval_estimates` (its `StratifiedBootstrap` with one task is
//!   the plain bootstrap); [`BootstrapConfig::reps`] resamples (rliable's default is 50,000;
//!   ours 10,000), drawn from a seeded generator so results are reproducible;
//! - success rate (return ≥ the environment's success threshold), mean episode length,
//!   coefficient of variation (std / |mean|), training-loss trend (least-squares slope over
//!   the last `window` loss values) with the one-sided p-value of "the slope is positive"
//!   (t-test of the least-squares slope, n − 2 degrees of freedom).

use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, StudentsT};
use tars_envs::Rng;

/// How the bootstrap confidence intervals are drawn.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BootstrapConfig {
    pub reps: usize,
    pub seed: u64,
}

impl Default for BootstrapConfig {
    fn default() -> Self {
        BootstrapConfig {
            reps: 10_000,
            seed: 0,
        }
    }
}

/// Metrics of one environment's evaluation episodes (field names are the API's).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    pub n_episodes: usize,
    pub mean_reward: f64,
    pub std_reward: f64,
    pub min_reward: f64,
    pub max_reward: f64,
    pub median_reward: f64,
    pub iqm: f64,
    pub mean_ci95: [f64; 2],
    pub iqm_ci95: [f64; 2],
    pub success_rate: f64,
    pub mean_episode_length: f64,
    /// std / |mean|; `None` when the mean is 0.
    pub cv: Option<f64>,
    /// Slope of the last `window` training-loss values; `None` with fewer than 2.
    pub loss_trend: Option<f64>,
    /// One-sided p-value of "the training loss is rising"; `None` with fewer than 3 points.
    pub loss_trend_p: Option<f64>,
}

fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len() as f64
}

/// scipy's `trim_mean(values, 0.25)`: the mean after cutting `floor(n / 4)` from each end.
pub fn iqm(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    iqm_sorted(&sorted)
}

fn iqm_sorted(sorted: &[f64]) -> f64 {
    let cut = sorted.len() / 4;
    mean(&sorted[cut..sorted.len() - cut])
}

/// numpy's `percentile(sorted, q)` with linear interpolation.
fn percentile(sorted: &[f64], q: f64) -> f64 {
    let position = q / 100.0 * (sorted.len() - 1) as f64;
    let (lower, frac) = (position.floor() as usize, position.fract());
    let upper = (lower + 1).min(sorted.len() - 1);
    sorted[lower] + (sorted[upper] - sorted[lower]) * frac
}

/// Least-squares slope of `values` against their index, and the one-sided p-value of
/// "the slope is positive" (`None` below 3 points).
fn slope(values: &[f64]) -> (Option<f64>, Option<f64>) {
    let n = values.len();
    if n < 2 {
        return (None, None);
    }
    let x_mean = (n - 1) as f64 / 2.0;
    let y_mean = mean(values);
    let (mut num, mut den) = (0.0, 0.0);
    for (idx, y) in values.iter().enumerate() {
        let dx = idx as f64 - x_mean;
        num += dx * (y - y_mean);
        den += dx * dx;
    }
    let slope = num / den;
    if n < 3 {
        return (Some(slope), None);
    }
    let intercept = y_mean - slope * x_mean;
    let residuals: f64 = values
        .iter()
        .enumerate()
        .map(|(idx, y)| (y - intercept - slope * idx as f64).powi(2))
        .sum();
    let se = (residuals / (n - 2) as f64 / den).sqrt();
    let t = slope / se;
    let p = if t.is_finite() {
        StudentsT::new(0.0, 1.0, (n - 2) as f64).map_or(1.0, |dist| 1.0 - dist.cdf(t))
    } else if slope > 0.0 {
        0.0
    } else {
        1.0
    };
    (Some(slope), Some(p))
}

/// Computes every metric. `returns` and `lengths` are per episode (at least one);
/// `losses` is the training-loss curve (may be empty).
pub fn compute_metrics(
    returns: &[f64],
    lengths: &[u32],
    success_threshold: f64,
    losses: &[f64],
    loss_trend_window: usize,
    bootstrap: BootstrapConfig,
) -> Metrics {
    assert!(!returns.is_empty(), "metrics need at least one episode");
    let n = returns.len();
    let mean_reward = mean(returns);
    let std_reward = (returns
        .iter()
        .map(|r| (r - mean_reward).powi(2))
        .sum::<f64>()
        / n as f64)
        .sqrt();
    let mut sorted = returns.to_vec();
    sorted.sort_by(f64::total_cmp);
    let median_reward = percentile(&sorted, 50.0);

    // Bootstrap: resample episodes with replacement, recompute mean and IQM.
    let mut rng = Rng::new(bootstrap.seed);
    let (mut means, mut iqms) = (
        Vec::with_capacity(bootstrap.reps),
        Vec::with_capacity(bootstrap.reps),
    );
    let mut sample = vec![0.0; n];
    for _ in 0..bootstrap.reps {
        for s in sample.iter_mut() {
            *s = returns[rng.below(n as u64) as usize];
        }
        means.push(mean(&sample));
        sample.sort_by(f64::total_cmp);
        iqms.push(iqm_sorted(&sample));
    }
    let ci = |mut stats: Vec<f64>, point: f64| {
        if stats.is_empty() {
            return [point, point];
        }
        stats.sort_by(f64::total_cmp);
        [percentile(&stats, 2.5), percentile(&stats, 97.5)]
    };
    let iqm_value = iqm_sorted(&sorted);
    let window_start = losses.len().saturating_sub(loss_trend_window);
    let (loss_trend, loss_trend_p) = slope(&losses[window_start..]);
    Metrics {
        n_episodes: n,
        mean_reward,
        std_reward,
        min_reward: sorted[0],
        max_reward: sorted[n - 1],
        median_reward,
        iqm: iqm_value,
        mean_ci95: ci(means, mean_reward),
        iqm_ci95: ci(iqms, iqm_value),
        success_rate: returns.iter().filter(|&&r| r >= success_threshold).count() as f64 / n as f64,
        mean_episode_length: lengths.iter().map(|&l| f64::from(l)).sum::<f64>()
            / lengths.len().max(1) as f64,
        cv: (mean_reward != 0.0).then(|| std_reward / mean_reward.abs()),
        loss_trend,
        loss_trend_p,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_statistics_match_numpy_and_scipy() {
        // numpy: mean 4.5, std (ddof 0) 2.8722813232690143, median 4.5;
        // scipy.stats.trim_mean(range(10), 0.25) = 4.5 (cuts 2 at each end).
        let returns: Vec<f64> = (0..10).map(f64::from).collect();
        let m = compute_metrics(
            &returns,
            &[10; 10],
            5.0,
            &[],
            10,
            BootstrapConfig::default(),
        );
        assert_eq!(m.mean_reward, 4.5);
        assert!((m.std_reward - 2.872_281_323_269_014_3).abs() < 1e-15);
        assert_eq!(m.median_reward, 4.5);
        assert_eq!(m.iqm, 4.5);
        assert_eq!(m.success_rate, 0.5);
        assert_eq!(iqm(&[1.0, 100.0, 2.0, 3.0, -50.0, 4.0, 5.0, 6.0]), 3.5);
        assert_eq!(iqm(&[1.0, 2.0, 3.0]), 2.0, "n < 4 trims nothing");
    }

    #[test]
    fn bootstrap_intervals_cover_the_mean_and_are_reproducible() {
        let mut rng = Rng::new(9);
        let returns: Vec<f64> = (0..100).map(|_| 100.0 + 10.0 * rng.normal()).collect();
        let config = BootstrapConfig {
            reps: 5_000,
            seed: 3,
        };
        let a = compute_metrics(&returns, &[1; 100], 0.0, &[], 10, config);
        let b = compute_metrics(&returns, &[1; 100], 0.0, &[], 10, config);
        assert_eq!(a, b, "same seed, same intervals");
        let [lo, hi] = a.mean_ci95;
        assert!(lo < a.mean_reward && a.mean_reward < hi);
        // The percentile bootstrap CI of a mean is close to mean ± 1.96 σ/√n.
        let half = 1.96 * a.std_reward / 10.0;
        assert!(
            ((hi - lo) / 2.0 - half).abs() < 0.1 * half,
            "{lo} {hi} {half}"
        );
        assert!(a.iqm_ci95[0] < a.iqm && a.iqm < a.iqm_ci95[1]);
    }

    #[test]
    fn loss_trend_is_the_slope_of_the_last_window() {
        let losses = [9.0, 1.0, 2.0, 3.0, 4.0];
        let m = compute_metrics(&[1.0], &[1], 0.0, &losses, 4, BootstrapConfig::default());
        assert_eq!(m.loss_trend, Some(1.0));
        assert_eq!(m.loss_trend_p, Some(0.0), "a perfect rise is certain");
        // scipy.stats.linregress(range(6), noisy, alternative='greater'): slope 0.12, p 0.0444316…
        let noisy = [1.0, 1.4, 1.1, 1.6, 1.3, 1.8];
        let m = compute_metrics(&[1.0], &[1], 0.0, &noisy, 6, BootstrapConfig::default());
        assert!((m.loss_trend.unwrap() - 0.12).abs() < 1e-12);
        assert!(
            (m.loss_trend_p.unwrap() - 0.044_431_634_736_383_34).abs() < 1e-9,
            "{:?}",
            m.loss_trend_p
        );
        let m = compute_metrics(&[1.0], &[1], 0.0, &[], 4, BootstrapConfig::default());
        assert_eq!(m.loss_trend, None);
        assert_eq!(m.mean_ci95, [1.0, 1.0]);
    }
}
