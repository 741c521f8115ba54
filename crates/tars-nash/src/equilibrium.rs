//! The verified [`Equilibrium`] every exact solver returns, and the polishing step that turns
//! a floating-point candidate into one accurate to round-off.
//!
//! A candidate from Lemke-Howson, the LP or the dynamics is polished: its supports and the
//! opponent's best responses are read off, and the indifference equations on them are solved
//! again (a minimum-norm correction, so degenerate supports work too). It is returned only if
//! no player gains more than [`VERIFY_TOL`] times the payoff scale by deviating.

use crate::Bimatrix;
use crate::game::Matrix;
use crate::linalg::min_norm_solve;
use crate::nashconv::{gains_unchecked, max};

/// An equilibrium is accepted when NashConv is at most this times `max(1, max |payoff|)`.
pub const VERIFY_TOL: f64 = 1e-9;

/// A mixed-strategy profile of a two-player game, checked to be a Nash equilibrium.
#[derive(Debug, Clone, PartialEq)]
pub struct Equilibrium {
    row: Vec<f64>,
    col: Vec<f64>,
    row_payoff: f64,
    col_payoff: f64,
    nash_conv: f64,
}

impl Equilibrium {
    /// The row player's mixed strategy (non-negative, sums to 1).
    pub fn row(&self) -> &[f64] {
        &self.row
    }

    /// The column player's mixed strategy (non-negative, sums to 1).
    pub fn col(&self) -> &[f64] {
        &self.col
    }

    /// The row player's expected payoff, `x^T A y`.
    pub fn row_payoff(&self) -> f64 {
        self.row_payoff
    }

    /// The column player's expected payoff, `x^T B y`.
    pub fn col_payoff(&self) -> f64 {
        self.col_payoff
    }

    /// NashConv of the profile as verified: at most [`VERIFY_TOL`] times the payoff scale.
    pub fn nash_conv(&self) -> f64 {
        self.nash_conv
    }

    /// Checks `(row, col)` and wraps it if it is an equilibrium. Probabilities within the
    /// tolerance of zero are clamped and both strategies renormalized first.
    pub(crate) fn verify(game: &Bimatrix, row: Vec<f64>, col: Vec<f64>) -> Option<Self> {
        let row = clean_distribution(row)?;
        let col = clean_distribution(col)?;
        let [row_gain, col_gain] = gains_unchecked(game, &row, &col);
        let nash_conv = row_gain + col_gain;
        if nash_conv > VERIFY_TOL * game.payoff_scale() {
            return None;
        }
        let (row_payoff, col_payoff) = game.payoffs(&row, &col);
        Some(Self {
            row,
            col,
            row_payoff,
            col_payoff,
            nash_conv,
        })
    }

    /// Polishes a candidate (see the module docs) and verifies it; falls back to verifying the
    /// candidate as given when polishing does not produce an equilibrium.
    ///
    /// `support_tol` is the probability below which an action counts as unused.
    pub(crate) fn polish(
        game: &Bimatrix,
        row: &[f64],
        col: &[f64],
        support_tol: f64,
    ) -> Option<Self> {
        let normalized_b = game.b().normalized();
        let normalized_a_t = game.a().normalized().transpose();
        let polished_row = polish_mix(row, &normalized_b, support_tol);
        let polished_col = polish_mix(col, &normalized_a_t, support_tol);
        if let (Some(polished_row), Some(polished_col)) = (polished_row, polished_col)
            && let Some(equilibrium) = Self::verify(game, polished_row, polished_col)
        {
            return Some(equilibrium);
        }
        Self::verify(game, row.to_vec(), col.to_vec())
    }
}

/// Clamps entries in `[-VERIFY_TOL, 0)` to zero and rescales to sum 1; `None` if an entry is
/// more negative than that or the sum is not close to 1.
fn clean_distribution(mut mix: Vec<f64>) -> Option<Vec<f64>> {
    if mix.iter().any(|p| !p.is_finite() || *p < -VERIFY_TOL) {
        return None;
    }
    mix.iter_mut().for_each(|p| *p = p.max(0.0));
    let sum: f64 = mix.iter().sum();
    if (sum - 1.0).abs() > 1e-6 {
        return None;
    }
    mix.iter_mut().for_each(|p| *p /= sum);
    Some(mix)
}

/// Re-solves the indifference equations of one player's mix.
///
/// `payoffs` is the opponent's payoff matrix with this player's actions as rows, so column `j`
/// of `mix^T payoffs` is what the opponent gets from action `j`. The unknowns are the mix on its
/// support and the opponent's best value `u`; the equations say every best response of the
/// opponent earns exactly `u` and the mix sums to 1.
fn polish_mix(mix: &[f64], payoffs: &Matrix, support_tol: f64) -> Option<Vec<f64>> {
    let values = payoffs.vec_mul(mix);
    let best = max(&values);
    let support: Vec<usize> = (0..mix.len()).filter(|&i| mix[i] > support_tol).collect();
    let tight: Vec<usize> = (0..values.len())
        .filter(|&j| values[j] >= best - support_tol)
        .collect();
    let n_unknowns = support.len() + 1;
    let mut rows: Vec<Vec<f64>> = tight
        .iter()
        .map(|&j| {
            let mut row: Vec<f64> = support.iter().map(|&i| payoffs.get(i, j)).collect();
            row.push(-1.0);
            row
        })
        .collect();
    let mut sum_row = vec![1.0; n_unknowns];
    sum_row[support.len()] = 0.0;
    rows.push(sum_row);
    let mut rhs = vec![0.0; rows.len()];
    rhs[rows.len() - 1] = 1.0;

    let mut unknowns: Vec<f64> = support.iter().map(|&i| mix[i]).collect();
    unknowns.push(best);
    // Two rounds: the second removes the round-off the first one left.
    for _ in 0..2 {
        let residual: Vec<f64> = rows
            .iter()
            .zip(&rhs)
            .map(|(row, target)| {
                target - row.iter().zip(&unknowns).map(|(r, z)| r * z).sum::<f64>()
            })
            .collect();
        let delta = min_norm_solve(&rows, &residual);
        unknowns.iter_mut().zip(delta).for_each(|(z, d)| *z += d);
    }
    let mut polished = vec![0.0; mix.len()];
    for (&i, &p) in support.iter().zip(&unknowns) {
        if p < -VERIFY_TOL {
            return None;
        }
        polished[i] = p;
    }
    Some(polished)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polishing_recovers_the_exact_mixed_equilibrium() {
        // Battle of the sexes: the mixed equilibrium is (2/3, 1/3), (1/3, 2/3).
        let game = Bimatrix::from_rows(
            vec![vec![2.0, 0.0], vec![0.0, 1.0]],
            vec![vec![1.0, 0.0], vec![0.0, 2.0]],
        )
        .unwrap();
        let rough = Equilibrium::polish(&game, &[0.6667, 0.3333], &[0.3334, 0.6666], 1e-3)
            .expect("polishing makes it an equilibrium");
        assert!(
            (rough.row()[0] - 2.0 / 3.0).abs() < 1e-15,
            "{:?}",
            rough.row()
        );
        assert!(
            (rough.col()[1] - 2.0 / 3.0).abs() < 1e-15,
            "{:?}",
            rough.col()
        );
        assert!((rough.row_payoff() - 2.0 / 3.0).abs() < 1e-14);
        assert!(rough.nash_conv() < 1e-14);
        // An unpolished rough profile is rejected.
        assert!(Equilibrium::verify(&game, vec![0.6667, 0.3333], vec![0.3334, 0.6666]).is_none());
    }

    #[test]
    fn verification_rejects_profitable_deviations_and_bad_sums() {
        let game = Bimatrix::from_rows(vec![vec![1.0, 0.0]], vec![vec![0.0, 1.0]]).unwrap();
        assert!(Equilibrium::verify(&game, vec![1.0], vec![1.0, 0.0]).is_none());
        assert!(Equilibrium::verify(&game, vec![1.0], vec![0.0, 0.5]).is_none());
        let equilibrium = Equilibrium::verify(&game, vec![1.0], vec![-1e-12, 1.0]).unwrap();
        assert_eq!(equilibrium.col(), &[0.0, 1.0]);
        assert_eq!(
            (equilibrium.row_payoff(), equilibrium.col_payoff()),
            (0.0, 1.0)
        );
    }
}
