//! All equilibria of a two-player game by vertex enumeration, with a report on degeneracy.
//!
//! Both best-response polytopes are enumerated ([`crate::polytope`]) on normalized payoffs,
//! and every pair of vertices whose labels cover all `m + n` actions is an extreme equilibrium
//! (von Stengel 2007, Theorem 3.4). For a non-degenerate game these are all the equilibria,
//! and there is an odd number of them. For a degenerate game they are the extreme points of
//! the equilibrium set: when one vertex pairs with several others, every convex combination
//! along those pairs is an equilibrium too (Avis, Rosenberg, Savani, von Stengel 2010), so the
//! set is infinite and [`AllEquilibria::is_finite`] says so.

use crate::polytope::vertices;
use crate::{Bimatrix, Equilibrium, Error};

/// The most linear systems ([`enumeration_cost`]) [`all_equilibria`] will solve, well under a
/// second of work. A 10x10 game needs 369,512; 11x11 (1,410,864) is refused.
pub const ENUMERATION_LIMIT: u128 = 1_000_000;

/// The outcome of exhaustive enumeration.
#[derive(Debug, Clone, PartialEq)]
pub struct AllEquilibria {
    equilibria: Vec<Equilibrium>,
    degenerate: bool,
    finite: bool,
    n_rejected: usize,
}

/// Every extreme equilibrium of `game`, each verified.
///
/// Fails only when the game is too large ([`ENUMERATION_LIMIT`], or more than 128 actions in
/// all): then use
/// [`lemke_howson`](crate::lemke_howson) for one equilibrium.
pub fn all_equilibria(game: &Bimatrix) -> Result<AllEquilibria, Error> {
    let (n_rows, n_cols) = (game.n_rows(), game.n_cols());
    let n_bases = enumeration_cost(n_rows, n_cols);
    if n_rows + n_cols > 128 {
        return Err(Error::TooManyActions { n_rows, n_cols });
    }
    if n_bases > ENUMERATION_LIMIT {
        return Err(Error::TooLargeForEnumeration {
            n_rows,
            n_cols,
            n_bases,
            limit: ENUMERATION_LIMIT,
        });
    }
    // P = {x >= 0 : B^T x <= 1}: constraint j is column j of B, labelled m + j.
    let (row_vertices, row_degenerate) = vertices(&game.b().normalized().transpose(), 0, n_rows);
    // Q = {y >= 0 : A y <= 1}: constraint i is row i of A, labelled i.
    let (col_vertices, col_degenerate) = vertices(&game.a().normalized(), n_rows, 0);

    let all_labels: u128 = if n_rows + n_cols == 128 {
        u128::MAX
    } else {
        (1 << (n_rows + n_cols)) - 1
    };
    let mut n_partners_of_col = vec![0_usize; col_vertices.len()];
    let mut finite = true;
    let mut equilibria = Vec::new();
    let mut n_rejected = 0;
    for row_vertex in &row_vertices {
        let mut n_partners = 0;
        for (col_idx, col_vertex) in col_vertices.iter().enumerate() {
            if row_vertex.labels | col_vertex.labels != all_labels {
                continue;
            }
            n_partners += 1;
            n_partners_of_col[col_idx] += 1;
            match Equilibrium::verify(
                game,
                to_distribution(&row_vertex.coords),
                to_distribution(&col_vertex.coords),
            ) {
                Some(equilibrium) => equilibria.push(equilibrium),
                None => n_rejected += 1,
            }
        }
        finite &= n_partners <= 1;
    }
    finite &= n_partners_of_col.iter().all(|&n| n <= 1);
    Ok(AllEquilibria {
        equilibria,
        degenerate: row_degenerate || col_degenerate,
        finite,
        n_rejected,
    })
}

/// Linear systems [`all_equilibria`] solves for an `n_rows x n_cols` game: `C(m + n, m)` per
/// player (saturating at `u128::MAX`).
pub fn enumeration_cost(n_rows: usize, n_cols: usize) -> u128 {
    let (small, total) = (n_rows.min(n_cols) as u128, (n_rows + n_cols) as u128);
    let mut binomial: u128 = 1;
    for k in 0..small {
        // C(total, k + 1) = C(total, k) * (total - k) / (k + 1), exact at every step.
        binomial = match binomial.checked_mul(total - k) {
            Some(product) => product / (k + 1),
            None => return u128::MAX,
        };
    }
    binomial.saturating_mul(2)
}

impl AllEquilibria {
    /// The extreme equilibria, pure ones first.
    pub fn equilibria(&self) -> &[Equilibrium] {
        &self.equilibria
    }

    /// Consumes the result, returning the equilibria.
    pub fn into_equilibria(self) -> Vec<Equilibrium> {
        self.equilibria
    }

    /// Whether some mixed strategy has more pure best responses than its support size.
    /// A degenerate game can have infinitely many equilibria.
    pub fn is_degenerate(&self) -> bool {
        self.degenerate
    }

    /// Whether the equilibrium set is exactly [`Self::equilibria`]. `false` means some returned
    /// equilibria are joined by segments of equilibria (so the set is infinite).
    pub fn is_finite(&self) -> bool {
        self.finite
    }

    /// Completely labelled vertex pairs that failed verification. Always 0 except for games
    /// within round-off of degeneracy; they are left out of [`Self::equilibria`].
    pub fn n_rejected(&self) -> usize {
        self.n_rejected
    }
}

/// Scales a non-zero polytope vertex to a probability distribution.
fn to_distribution(coords: &[f64]) -> Vec<f64> {
    let sum: f64 = coords.iter().sum();
    coords.iter().map(|z| z / sum).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn solve(a: Vec<Vec<f64>>, b: Vec<Vec<f64>>) -> AllEquilibria {
        all_equilibria(&Bimatrix::from_rows(a, b).unwrap()).unwrap()
    }

    #[test]
    fn battle_of_the_sexes_has_two_pure_and_one_mixed_equilibrium() {
        let result = solve(
            vec![vec![3.0, 0.0], vec![0.0, 2.0]],
            vec![vec![2.0, 0.0], vec![0.0, 3.0]],
        );
        assert!(!result.is_degenerate() && result.is_finite());
        let profiles: Vec<(Vec<f64>, Vec<f64>)> = result
            .equilibria()
            .iter()
            .map(|e| (e.row().to_vec(), e.col().to_vec()))
            .collect();
        assert_eq!(profiles.len(), 3, "{profiles:?}");
        assert!(profiles.contains(&(vec![1.0, 0.0], vec![1.0, 0.0])));
        assert!(profiles.contains(&(vec![0.0, 1.0], vec![0.0, 1.0])));
        let mixed = &result.equilibria()[2];
        assert!((mixed.row()[0] - 0.6).abs() < 1e-15 && (mixed.col()[0] - 0.4).abs() < 1e-15);
        assert!((mixed.row_payoff() - 1.2).abs() < 1e-14);
    }

    #[test]
    fn degenerate_game_reports_its_continuum() {
        // Column 1 is a best response to both rows for the column player, who is indifferent
        // after row 0: the equilibria (row 0, any mix of columns with y0 >= 1/2) form a segment.
        let result = solve(
            vec![vec![1.0, 0.0], vec![0.0, 1.0]],
            vec![vec![1.0, 1.0], vec![0.0, 1.0]],
        );
        assert!(result.is_degenerate());
        assert!(!result.is_finite());
        assert_eq!(result.n_rejected(), 0);
        let cols: Vec<&[f64]> = result.equilibria().iter().map(Equilibrium::col).collect();
        assert_eq!(cols.len(), 3, "{cols:?}");
        let close = |target: [f64; 2]| {
            cols.iter()
                .any(|col| col.iter().zip(target).all(|(p, t)| (p - t).abs() < 1e-15))
        };
        assert!(
            close([1.0, 0.0]) && close([0.5, 0.5]) && close([0.0, 1.0]),
            "{cols:?}"
        );
    }

    #[test]
    fn too_large_games_are_refused_with_the_cost() {
        assert_eq!(enumeration_cost(2, 2), 12);
        assert_eq!(enumeration_cost(8, 8), 2 * 12_870);
        assert_eq!(enumeration_cost(200, 200), u128::MAX);
        let wide = Bimatrix::from_rows(vec![vec![0.0; 128]], vec![vec![0.0; 128]]).unwrap();
        assert_eq!(
            all_equilibria(&wide).unwrap_err(),
            Error::TooManyActions {
                n_rows: 1,
                n_cols: 128
            }
        );
        let game = Bimatrix::from_rows(vec![vec![0.0; 12]; 12], vec![vec![0.0; 12]; 12]).unwrap();
        let err = all_equilibria(&game).unwrap_err();
        assert_eq!(
            err.to_string(),
            "a 12x12 game is too large for exhaustive enumeration: it needs 5408312 basis solves, more than the limit of 1000000; find one equilibrium with Lemke-Howson instead"
        );
    }
}
