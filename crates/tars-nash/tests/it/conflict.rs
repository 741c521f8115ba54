//! Conflict resolution on the worked example of docs/nash.md, and its invariants on seeded
//! score tables.

use tars_nash::{Bimatrix, Matrix, all_equilibria, resolve_conflict};

use crate::util::{SplitMix64, assert_distribution};

fn assert_close(actual: f64, expected: f64) {
    assert!((actual - expected).abs() < 1e-12, "{actual} != {expected}");
}

#[test]
fn worked_example_of_the_docs() {
    let scores = Matrix::new(
        "scores",
        vec![
            vec![0.80, 0.70, 0.60, 0.65],
            vec![0.95, 0.40, 0.85, 0.50],
            vec![0.50, 0.90, 0.45, 0.70],
        ],
    )
    .unwrap();
    let report = resolve_conflict(&scores).unwrap();
    for (weight, expected) in report.weights.iter().zip([0.875, 0.125, 0.0]) {
        assert_close(*weight, expected);
    }
    for (weight, expected) in report
        .environment_weights
        .iter()
        .zip([0.0, 0.0, 0.375, 0.625])
    {
        assert_close(*weight, expected);
    }
    assert_close(report.value, 0.63125);
    assert_close(report.stability, (0.63125 - 0.40) / 0.55);
    for (average, expected) in report.nash_averages.iter().zip([0.63125, 0.63125, 0.60625]) {
        assert_close(*average, expected);
    }
    assert!(
        (report.conflict - 0.40619).abs() < 1e-5,
        "{}",
        report.conflict
    );
    assert!(report.max_entropy);
}

#[test]
fn weights_are_worst_case_optimal_on_seeded_score_tables() {
    let mut rng = SplitMix64(3);
    for (n_proposals, n_environments) in [(2, 3), (5, 4), (5, 10), (3, 3)] {
        // Scores rounded to tenths create ties, so optimal mixes are often not unique.
        let rows: Vec<Vec<f64>> = (0..n_proposals)
            .map(|_| {
                (0..n_environments)
                    .map(|_| (rng.next_f64() * 10.0).round() / 10.0)
                    .collect()
            })
            .collect();
        let scores = Matrix::new("scores", rows).unwrap();
        let report = resolve_conflict(&scores).unwrap();
        assert_distribution(&report.weights);
        assert_distribution(&report.environment_weights);
        let guaranteed = scores
            .vec_mul(&report.weights)
            .into_iter()
            .fold(f64::INFINITY, f64::min);
        assert!(
            guaranteed >= report.value - 1e-9,
            "{guaranteed} < {}",
            report.value
        );
        let conceded = scores
            .mul_vec(&report.environment_weights)
            .into_iter()
            .fold(f64::NEG_INFINITY, f64::max);
        assert!(
            conceded <= report.value + 1e-9,
            "{conceded} > {}",
            report.value
        );
        assert!((0.0..=1.0).contains(&report.stability) && (0.0..=1.0).contains(&report.conflict));
    }
}

fn entropy(mix: &[f64]) -> f64 {
    mix.iter().filter(|&&p| p > 0.0).map(|p| -p * p.ln()).sum()
}

#[test]
fn weights_have_more_entropy_than_any_other_optimal_mix() {
    let mut rng = SplitMix64(5);
    let mut n_non_unique = 0;
    for _ in 0..40 {
        // Scores in {0, 1, 2} make optimal mixes non-unique in many tables.
        let rows: Vec<Vec<f64>> = (0..4)
            .map(|_| (0..3).map(|_| (rng.next_u64() % 3) as f64).collect())
            .collect();
        let scores = Matrix::new("scores", rows).unwrap();
        let report = resolve_conflict(&scores).unwrap();
        let all = all_equilibria(&Bimatrix::zero_sum(scores)).unwrap();
        let mut extremes: Vec<Vec<f64>> = Vec::new();
        for equilibrium in all.equilibria() {
            if !extremes.iter().any(|e| e == equilibrium.row()) {
                extremes.push(equilibrium.row().to_vec());
            }
        }
        n_non_unique += usize::from(extremes.len() > 1);
        // Random convex combinations of the extreme optimal mixes are optimal mixes too.
        for _ in 0..50 {
            let coefficients: Vec<f64> = extremes.iter().map(|_| rng.next_f64()).collect();
            let total: f64 = coefficients.iter().sum();
            let mix: Vec<f64> = (0..4)
                .map(|i| {
                    extremes
                        .iter()
                        .zip(&coefficients)
                        .map(|(e, c)| e[i] * c / total)
                        .sum()
                })
                .collect();
            assert!(
                entropy(&report.weights) >= entropy(&mix) - 1e-9,
                "{:?} has less entropy than the optimal {mix:?}",
                report.weights
            );
        }
    }
    assert!(
        n_non_unique >= 5,
        "the seeded tables exercise non-unique optima: {n_non_unique}"
    );
}

#[test]
fn scores_too_large_to_enumerate_fall_back_to_the_lp() {
    let mut rng = SplitMix64(4);
    let rows: Vec<Vec<f64>> = (0..15)
        .map(|_| (0..15).map(|_| rng.next_f64()).collect())
        .collect();
    let report = resolve_conflict(&Matrix::new("scores", rows).unwrap()).unwrap();
    assert!(!report.max_entropy);
    assert_distribution(&report.weights);
}
