//! NashConv (the sum over players of what a best response would gain) of a mixed-strategy
//! profile of a two-player game, and the validation of strategies passed in by callers.
//!
//! NashConv is zero exactly at a Nash equilibrium; OpenSpiel's `exploitability` is NashConv
//! divided by the number of players. The N-player version lives on
//! [`NormalFormGame`](crate::NormalFormGame).

use crate::game::dot;
use crate::{Bimatrix, Error};

/// How far from 1 the sum of a caller's strategy may be.
const SUM_TOL: f64 = 1e-9;

/// What each player would gain by deviating to a best response: `[row gain, column gain]`.
///
/// Both are non-negative up to round-off; their sum is [`nash_conv`].
pub fn best_response_gains(game: &Bimatrix, row: &[f64], col: &[f64]) -> Result<[f64; 2], Error> {
    validate_strategy(0, row, game.n_rows())?;
    validate_strategy(1, col, game.n_cols())?;
    Ok(gains_unchecked(game, row, col))
}

/// NashConv of the profile `(row, col)`: 0 at an equilibrium, positive elsewhere.
pub fn nash_conv(game: &Bimatrix, row: &[f64], col: &[f64]) -> Result<f64, Error> {
    best_response_gains(game, row, col).map(|[row_gain, col_gain]| row_gain + col_gain)
}

/// [`best_response_gains`] for strategies already known to be valid.
pub(crate) fn gains_unchecked(game: &Bimatrix, row: &[f64], col: &[f64]) -> [f64; 2] {
    let row_values = game.a().mul_vec(col);
    let col_values = game.b().vec_mul(row);
    let row_gain = max(&row_values) - dot(row, &row_values);
    let col_gain = max(&col_values) - dot(col, &col_values);
    [row_gain.max(0.0), col_gain.max(0.0)]
}

/// Checks that `strategy` is a probability distribution over `n_actions` actions.
pub(crate) fn validate_strategy(
    player_idx: usize,
    strategy: &[f64],
    n_actions: usize,
) -> Result<(), Error> {
    let invalid = |reason: String| Err(Error::InvalidStrategy { player_idx, reason });
    if strategy.len() != n_actions {
        return invalid(format!(
            "it has {} probabilities but the player has {n_actions} actions; give one per action",
            strategy.len()
        ));
    }
    if let Some(action_idx) = strategy.iter().position(|p| !p.is_finite() || *p < 0.0) {
        return invalid(format!(
            "probability {action_idx} is {}; probabilities must be finite and non-negative",
            strategy[action_idx]
        ));
    }
    let sum: f64 = strategy.iter().sum();
    if (sum - 1.0).abs() > SUM_TOL {
        return invalid(format!("probabilities sum to {sum}; they must sum to 1"));
    }
    Ok(())
}

/// The largest element of a non-empty slice.
pub(crate) fn max(values: &[f64]) -> f64 {
    values.iter().copied().fold(f64::NEG_INFINITY, f64::max)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prisoners_dilemma() -> Bimatrix {
        Bimatrix::from_rows(
            vec![vec![3.0, 0.0], vec![5.0, 1.0]],
            vec![vec![3.0, 5.0], vec![0.0, 1.0]],
        )
        .unwrap()
    }

    #[test]
    fn nash_conv_is_zero_only_at_the_equilibrium() {
        let game = prisoners_dilemma();
        assert_eq!(nash_conv(&game, &[0.0, 1.0], &[0.0, 1.0]).unwrap(), 0.0);
        // Mutual cooperation: each player gains 2 by defecting.
        assert_eq!(
            best_response_gains(&game, &[1.0, 0.0], &[1.0, 0.0]).unwrap(),
            [2.0, 2.0]
        );
        // Half-defecting row vs a cooperator: the row gains 5 - 4, the column 3 - 1.5.
        assert_eq!(
            nash_conv(&game, &[0.5, 0.5], &[1.0, 0.0]).unwrap(),
            1.0 + 1.5
        );
    }

    #[test]
    fn invalid_strategies_are_rejected_with_the_reason() {
        let game = prisoners_dilemma();
        let short = nash_conv(&game, &[1.0], &[0.0, 1.0]).unwrap_err();
        assert_eq!(
            short.to_string(),
            "strategy of player 0 is invalid: it has 1 probabilities but the player has 2 actions; give one per action"
        );
        let negative = nash_conv(&game, &[1.0, 0.0], &[1.5, -0.5]).unwrap_err();
        assert!(
            negative.to_string().contains("probability 1 is -0.5"),
            "{negative}"
        );
        let sum = nash_conv(&game, &[0.5, 0.4], &[0.0, 1.0]).unwrap_err();
        assert!(
            sum.to_string()
                .ends_with("probabilities sum to 0.9; they must sum to 1"),
            "{sum}"
        );
    }
}
