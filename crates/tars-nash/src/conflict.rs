//! Equilibrium-based resolution of conflicting proposals scored on several environments.
//!
//! The model (docs/nash.md has a worked example): `scores[p][e]` is how well proposal `p` does
//! on environment `e`, higher is better. A planner mixes proposals; an adversary picks the
//! environment. That zero-sum game gives
//! - `weights`: the planner's maximum-entropy optimal mix (Nash averaging, Balduzzi et al.
//!   2018), the recommendation;
//! - `environment_weights`: the adversary's maximum-entropy optimal mix, the hardest
//!   environments;
//! - `value`: the score the weights guarantee in every environment, and `stability`, the same
//!   on a `[0, 1]` scale between the lowest and highest score;
//! - `conflict`: the minimax regret on that scale, how much any mix must give up, in some
//!   environment, against picking that environment's best proposal. Zero exactly when one
//!   proposal is best everywhere;
//! - `nash_averages`: each proposal's score against `environment_weights`.

use crate::maxent::max_entropy_strategy;
use crate::{Bimatrix, Equilibrium, Error, Matrix, all_equilibria, solve_matrix_game};

/// The recommendation for a set of competing proposals.
#[derive(Debug, Clone, PartialEq)]
pub struct ConflictReport {
    /// Weight of each proposal (sums to 1): the maximum-entropy worst-case-optimal mix.
    pub weights: Vec<f64>,
    /// Weight of each environment (sums to 1): the maximum-entropy worst case.
    pub environment_weights: Vec<f64>,
    /// The game value: the expected score `weights` guarantee whatever the environment.
    pub value: f64,
    /// `value` rescaled to `[0, 1]` between the lowest and highest score (1 if all are equal).
    pub stability: f64,
    /// Minimax regret rescaled the same way, in `[0, 1]`; 0 when one proposal dominates.
    pub conflict: f64,
    /// Each proposal's expected score against `environment_weights`.
    pub nash_averages: Vec<f64>,
    /// Whether `weights` and `environment_weights` are the maximum-entropy optimal mixes. They
    /// are unless the game is too large for exhaustive enumeration; then they are the LP's
    /// optimal mixes.
    pub max_entropy: bool,
}

/// Weights, stability and conflict of proposals (rows of `scores`) across environments
/// (columns).
pub fn resolve_conflict(scores: &Matrix) -> Result<ConflictReport, Error> {
    let game = Bimatrix::zero_sum(scores.clone());
    let (lo, hi) = scores.min_max();
    let range = hi - lo;
    let (weights, environment_weights, value, max_entropy) = match all_equilibria(&game) {
        Ok(all) => {
            let equilibria = all.into_equilibria();
            let value = equilibria[0].row_payoff();
            let rows = distinct(equilibria.iter().map(Equilibrium::row));
            let cols = distinct(equilibria.iter().map(Equilibrium::col));
            let weights = max_entropy_strategy(scores, value, &rows);
            let environment_weights =
                max_entropy_strategy(&scores.negated().transpose(), -value, &cols);
            (weights, environment_weights, value, true)
        }
        Err(Error::TooLargeForEnumeration { .. } | Error::TooManyActions { .. }) => {
            let solution = solve_matrix_game(scores)?;
            let equilibrium = solution.equilibrium();
            (
                equilibrium.row().to_vec(),
                equilibrium.col().to_vec(),
                solution.value(),
                false,
            )
        }
        Err(other) => return Err(other),
    };
    let conflict = if range > 0.0 {
        minimax_regret(scores)? / range
    } else {
        0.0
    };
    Ok(ConflictReport {
        nash_averages: scores.mul_vec(&environment_weights),
        weights,
        environment_weights,
        value,
        stability: if range > 0.0 {
            ((value - lo) / range).clamp(0.0, 1.0)
        } else {
            1.0
        },
        conflict: conflict.clamp(0.0, 1.0),
        max_entropy,
    })
}

/// `min_x max_e (best_e - (x^T scores)_e)` where `best_e` is environment `e`'s top score.
fn minimax_regret(scores: &Matrix) -> Result<f64, Error> {
    let best: Vec<f64> = scores
        .transpose()
        .to_rows()
        .iter()
        .map(|column| column.iter().copied().fold(f64::NEG_INFINITY, f64::max))
        .collect();
    let negated_regret: Vec<Vec<f64>> = scores
        .to_rows()
        .into_iter()
        .map(|row| row.iter().zip(&best).map(|(s, b)| s - b).collect())
        .collect();
    let solution = solve_matrix_game(&Matrix::new("regret", negated_regret)?)?;
    Ok(-solution.value())
}

/// The distinct strategies among `mixes` (exact equality: they come from one enumeration).
fn distinct<'a>(mixes: impl Iterator<Item = &'a [f64]>) -> Vec<Vec<f64>> {
    let mut unique: Vec<Vec<f64>> = Vec::new();
    for mix in mixes {
        if !unique.iter().any(|u| u == mix) {
            unique.push(mix.to_vec());
        }
    }
    unique
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(rows: Vec<Vec<f64>>) -> ConflictReport {
        resolve_conflict(&Matrix::new("scores", rows).unwrap()).unwrap()
    }

    #[test]
    fn a_dominant_proposal_takes_all_weight_without_conflict() {
        let result = report(vec![vec![0.9, 0.8, 0.7], vec![0.5, 0.6, 0.4]]);
        assert_eq!(result.weights, vec![1.0, 0.0]);
        assert!((result.value - 0.7).abs() < 1e-15);
        assert!(result.conflict.abs() < 1e-12, "{}", result.conflict);
        assert!(
            (result.stability - 0.6).abs() < 1e-12,
            "{}",
            result.stability
        );
        assert!(result.max_entropy);
    }

    #[test]
    fn specialists_split_the_weight_and_conflict() {
        // Each proposal is best on one environment: an even mix guarantees 0.5.
        let result = report(vec![vec![1.0, 0.0], vec![0.0, 1.0]]);
        for w in result.weights.iter().chain(&result.environment_weights) {
            assert!((w - 0.5).abs() < 1e-15, "{result:?}");
        }
        assert!((result.value - 0.5).abs() < 1e-15);
        assert!((result.conflict - 0.5).abs() < 1e-12, "{}", result.conflict);
        assert_eq!(result.nash_averages.len(), 2);
    }

    #[test]
    fn duplicate_proposals_share_weight_equally() {
        // Proposals 0 and 1 are identical; maximum entropy splits their weight evenly.
        let result = report(vec![vec![1.0, 0.0], vec![1.0, 0.0], vec![0.0, 1.0]]);
        assert!(
            (result.weights[0] - 0.25).abs() < 1e-9,
            "{:?}",
            result.weights
        );
        assert!(
            (result.weights[1] - 0.25).abs() < 1e-9,
            "{:?}",
            result.weights
        );
        assert!(
            (result.weights[2] - 0.5).abs() < 1e-9,
            "{:?}",
            result.weights
        );
    }

    #[test]
    fn equal_scores_are_perfectly_stable() {
        let result = report(vec![vec![3.0, 3.0], vec![3.0, 3.0]]);
        assert_eq!((result.stability, result.conflict), (1.0, 0.0));
        assert!(
            (result.weights[0] - 0.5).abs() < 1e-9,
            "{:?}",
            result.weights
        );
    }
}
