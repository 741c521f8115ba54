//! Conflict resolution on the worked example of docs/nash.md, and its invariants on seeded
//! score tables.

use tars_nash::{Matrix, resolve_conflict};

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
