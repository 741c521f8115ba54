//! Value and optimal strategies of a zero-sum game by linear programming (`microlp`).
//!
//! The row player's LP is `max v s.t. x^T A >= v, sum x = 1, x >= 0`; the column player's is
//! its dual, `min w s.t. A y <= w, sum y = 1, y >= 0` (von Neumann's minimax theorem makes
//! `v = w`). Both are solved on payoffs scaled to `[1, 2]`, then the pair is polished on its
//! supports ([`Equilibrium`]) so the strategies are exact to round-off rather than to the LP's
//! `1e-7` feasibility tolerance, and verified.

use microlp::{ComparisonOp, OptimizationDirection, Problem};

use crate::nashconv::max;
use crate::{Bimatrix, Equilibrium, Error, Matrix};

/// LP strategies below this probability are treated as unused when polishing.
const LP_SUPPORT_TOL: f64 = 1e-7;

/// An optimal strategy pair of a zero-sum game with its value.
#[derive(Debug, Clone, PartialEq)]
pub struct ZeroSumSolution {
    equilibrium: Equilibrium,
    value: f64,
    dual_value: f64,
}

impl ZeroSumSolution {
    /// The verified equilibrium `(x, y)` of `(A, -A)`.
    pub fn equilibrium(&self) -> &Equilibrium {
        &self.equilibrium
    }

    /// What the row player's strategy guarantees: `min_j (x^T A)_j`.
    pub fn value(&self) -> f64 {
        self.value
    }

    /// What the column player's strategy concedes at most (the dual LP's optimum):
    /// `max_i (A y)_i`. Equal to [`Self::value`] within the verification tolerance.
    pub fn dual_value(&self) -> f64 {
        self.dual_value
    }
}

/// Solves the zero-sum game in which the row player receives `A[i][j]` from the column player.
pub fn solve_matrix_game(a: &Matrix) -> Result<ZeroSumSolution, Error> {
    let scaled = a.normalized();
    let row = optimal_mix(&scaled)?;
    // The column player maximizes -A^T, which `optimal_mix` handles after rescaling.
    let col = optimal_mix(&scaled.negated().transpose().normalized())?;
    let game = Bimatrix::zero_sum(a.clone());
    let equilibrium = Equilibrium::polish(&game, &row, &col, LP_SUPPORT_TOL).ok_or_else(|| {
        Error::LinearProgram {
            reason: "the LP optimum failed equilibrium verification".into(),
        }
    })?;
    let value = game
        .a()
        .vec_mul(equilibrium.row())
        .into_iter()
        .fold(f64::INFINITY, f64::min);
    let dual_value = max(&game.a().mul_vec(equilibrium.col()));
    Ok(ZeroSumSolution {
        equilibrium,
        value,
        dual_value,
    })
}

/// [`solve_matrix_game`] on `A` of a game that must satisfy `B = -A` exactly.
pub fn solve_zero_sum(game: &Bimatrix) -> Result<ZeroSumSolution, Error> {
    match game.zero_sum_violation() {
        Some(error) => Err(error),
        None => solve_matrix_game(game.a()),
    }
}

/// The maximin mix of the row player of a matrix with entries in `[1, 2]`.
fn optimal_mix(scaled: &Matrix) -> Result<Vec<f64>, Error> {
    let mut problem = Problem::new(OptimizationDirection::Maximize);
    let mix: Vec<_> = (0..scaled.n_rows())
        .map(|_| problem.add_var(0.0, (0.0, 1.0)))
        .collect();
    let value = problem.add_var(1.0, (0.0, 3.0));
    for j in 0..scaled.n_cols() {
        let mut terms: Vec<_> = mix
            .iter()
            .enumerate()
            .map(|(i, &x)| (x, scaled.get(i, j)))
            .collect();
        terms.push((value, -1.0));
        problem.add_constraint(terms, ComparisonOp::Ge, 0.0);
    }
    problem.add_constraint(
        mix.iter().map(|&x| (x, 1.0)).collect::<Vec<_>>(),
        ComparisonOp::Eq,
        1.0,
    );
    let solution = problem
        .solve()
        .map_err(|error| Error::LinearProgram {
            reason: error.to_string(),
        })?
        .into_solution()
        .map_err(|_| Error::LinearProgram {
            reason: "the solve was interrupted".into(),
        })?;
    let raw: Vec<f64> = mix
        .iter()
        .map(|&x| solution.var_value(x).max(0.0))
        .collect();
    let sum: f64 = raw.iter().sum();
    Ok(raw.iter().map(|p| p / sum).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rock_paper_scissors_is_uniform_with_value_zero() {
        let a = Matrix::new(
            "A",
            vec![
                vec![0.0, -1.0, 1.0],
                vec![1.0, 0.0, -1.0],
                vec![-1.0, 1.0, 0.0],
            ],
        )
        .unwrap();
        let solution = solve_matrix_game(&a).unwrap();
        for p in solution
            .equilibrium()
            .row()
            .iter()
            .chain(solution.equilibrium().col())
        {
            assert!((p - 1.0 / 3.0).abs() < 1e-15, "{p}");
        }
        assert!(solution.value().abs() < 1e-15 && solution.dual_value().abs() < 1e-15);
    }

    #[test]
    fn value_matches_the_closed_form_of_a_2x2_game() {
        // [[3, -1], [-2, 1]] has no saddle point: v = (3*1 - (-1)(-2)) / (3 + 1 + 1 + 2) = 1/7.
        let a = Matrix::new("A", vec![vec![3.0, -1.0], vec![-2.0, 1.0]]).unwrap();
        let solution = solve_matrix_game(&a).unwrap();
        assert!(
            (solution.value() - 1.0 / 7.0).abs() < 1e-14,
            "{}",
            solution.value()
        );
        assert!((solution.dual_value() - 1.0 / 7.0).abs() < 1e-14);
        let (row, col) = (solution.equilibrium().row(), solution.equilibrium().col());
        assert!((row[0] - 3.0 / 7.0).abs() < 1e-14 && (col[0] - 2.0 / 7.0).abs() < 1e-14);
        assert!((solution.equilibrium().row_payoff() - 1.0 / 7.0).abs() < 1e-14);
    }

    #[test]
    fn general_sum_games_are_refused() {
        let game = Bimatrix::from_rows(vec![vec![1.0, 2.0]], vec![vec![-1.0, 0.0]]).unwrap();
        assert_eq!(
            solve_zero_sum(&game).unwrap_err().to_string(),
            "game is not zero-sum: A[0][1] + B[0][1] = 2; the zero-sum solver needs B = -A (or B omitted)"
        );
    }
}
