//! One equilibrium of a game of any size by the Lemke-Howson algorithm.
//!
//! Follows von Stengel 2007 ("Equilibrium computation for two-player games in strategic and
//! extensive form", section 3.4): complementary pivoting on the tableaux of the best-response
//! polytopes `P = {x >= 0 : B^T x <= 1}` and `Q = {y >= 0 : A y <= 1}` (normalized payoffs),
//! from the artificial equilibrium `(0, 0)` with one label dropped.
//!
//! Termination: the minimum-ratio test is lexicographic (ties broken by the rows of the
//! current basis inverse), which rules out cycling on degenerate games, and each path is also
//! capped at [`LemkeHowsonConfig::max_pivots`]. A path that hits the cap, or ends at a profile
//! that fails verification, is abandoned and the next initial label is tried, so the call
//! makes at most `(m + n) * max_pivots` pivots.

use crate::{Bimatrix, Equilibrium, Error};

/// Tableau entries at most this are not eligible as pivots.
const PIVOT_TOL: f64 = 1e-12;

/// Ratios within this (relative) tie, and the lexicographic rule decides.
const RATIO_TIE_TOL: f64 = 1e-12;

/// Settings of [`lemke_howson_with`].
#[derive(Debug, Clone, PartialEq)]
pub struct LemkeHowsonConfig {
    /// The label dropped first (`0..m` are rows, `m..m + n` columns); the others follow in
    /// order when a path fails.
    pub first_label: usize,
    /// Pivots allowed on one path before it is abandoned.
    pub max_pivots: usize,
}

impl Default for LemkeHowsonConfig {
    fn default() -> Self {
        Self {
            first_label: 0,
            max_pivots: 10_000,
        }
    }
}

/// One verified equilibrium of `game`, by Lemke-Howson with the default settings.
pub fn lemke_howson(game: &Bimatrix) -> Result<Equilibrium, Error> {
    lemke_howson_with(game, &LemkeHowsonConfig::default())
}

/// One verified equilibrium of `game`, dropping `config.first_label` first.
pub fn lemke_howson_with(
    game: &Bimatrix,
    config: &LemkeHowsonConfig,
) -> Result<Equilibrium, Error> {
    let n_labels = game.n_rows() + game.n_cols();
    if config.first_label >= n_labels {
        return Err(Error::OutOfRange {
            name: "first_label",
            value: config.first_label as f64,
            expected: "a label below the number of rows plus columns",
        });
    }
    if config.max_pivots == 0 {
        return Err(Error::OutOfRange {
            name: "max_pivots",
            value: 0.0,
            expected: "at least 1",
        });
    }
    (0..n_labels)
        .map(|offset| (config.first_label + offset) % n_labels)
        .find_map(|label| {
            let (row, col) = follow_path(game, label, config.max_pivots)?;
            Equilibrium::polish(game, &row, &col, 1e-9)
        })
        .ok_or(Error::LemkeHowsonFailed {
            n_labels,
            max_pivots: config.max_pivots,
        })
}

/// A dense simplex tableau whose columns are indexed by label.
struct Tableau {
    n_cols: usize,
    entries: Vec<f64>,
    rhs: Vec<f64>,
    /// The label of the basic variable of each row.
    basis: Vec<usize>,
    /// Labels of the initial (slack) basis, whose columns hold the basis inverse.
    lex_labels: Vec<usize>,
}

impl Tableau {
    /// `constraints * z + slack = 1` with `z`'s labels from `var_label_base` and the slacks'
    /// labels from `slack_label_base`; `n_labels` columns in all.
    fn new(
        constraints: &crate::Matrix,
        var_label_base: usize,
        slack_label_base: usize,
        n_labels: usize,
    ) -> Self {
        let n_rows = constraints.n_rows();
        let mut entries = vec![0.0; n_rows * n_labels];
        for r in 0..n_rows {
            for (q, &v) in constraints.row(r).iter().enumerate() {
                entries[r * n_labels + var_label_base + q] = v;
            }
            entries[r * n_labels + slack_label_base + r] = 1.0;
        }
        let basis: Vec<usize> = (slack_label_base..slack_label_base + n_rows).collect();
        Self {
            n_cols: n_labels,
            entries,
            rhs: vec![1.0; n_rows],
            lex_labels: basis.clone(),
            basis,
        }
    }

    /// Brings label `entering` into the basis by the lexicographic minimum-ratio test and
    /// returns the label that leaves; `None` if no row can pivot (an unbounded ray, impossible
    /// for positive payoffs).
    fn pivot(&mut self, entering: usize) -> Option<usize> {
        let n_cols = self.n_cols;
        let mut best: Option<usize> = None;
        for r in 0..self.rhs.len() {
            let coefficient = self.entries[r * n_cols + entering];
            if coefficient <= PIVOT_TOL {
                continue;
            }
            best = match best {
                Some(b) if !self.lex_less(r, b, entering) => Some(b),
                _ => Some(r),
            };
        }
        let pivot_row = best?;
        let pivot = self.entries[pivot_row * n_cols + entering];
        for k in 0..n_cols {
            self.entries[pivot_row * n_cols + k] /= pivot;
        }
        self.rhs[pivot_row] /= pivot;
        self.entries[pivot_row * n_cols + entering] = 1.0;
        for r in 0..self.rhs.len() {
            let factor = self.entries[r * n_cols + entering];
            if r == pivot_row || factor == 0.0 {
                continue;
            }
            for k in 0..n_cols {
                self.entries[r * n_cols + k] -= factor * self.entries[pivot_row * n_cols + k];
            }
            self.entries[r * n_cols + entering] = 0.0;
            self.rhs[r] -= factor * self.rhs[pivot_row];
        }
        Some(std::mem::replace(&mut self.basis[pivot_row], entering))
    }

    /// Whether row `r`'s ratio vector `(rhs, basis inverse row) / coefficient` is
    /// lexicographically smaller than row `s`'s.
    fn lex_less(&self, r: usize, s: usize, entering: usize) -> bool {
        let n_cols = self.n_cols;
        let r_coefficient = self.entries[r * n_cols + entering];
        let s_coefficient = self.entries[s * n_cols + entering];
        let keys = std::iter::once((self.rhs[r], self.rhs[s])).chain(
            self.lex_labels
                .iter()
                .map(|&l| (self.entries[r * n_cols + l], self.entries[s * n_cols + l])),
        );
        for (r_value, s_value) in keys {
            let (r_ratio, s_ratio) = (r_value / r_coefficient, s_value / s_coefficient);
            let scale = r_ratio.abs().max(s_ratio.abs()).max(1.0);
            if (r_ratio - s_ratio).abs() > RATIO_TIE_TOL * scale {
                return r_ratio < s_ratio;
            }
        }
        false
    }

    /// The value of each variable whose label is in `labels` (zero when non-basic).
    fn values(&self, labels: std::ops::Range<usize>) -> Vec<f64> {
        let mut values = vec![0.0; labels.len()];
        for (r, &label) in self.basis.iter().enumerate() {
            if labels.contains(&label) {
                values[label - labels.start] = self.rhs[r].max(0.0);
            }
        }
        values
    }
}

/// Follows the path that drops `initial_label`; the normalized end point, or `None` if the
/// path exceeds `max_pivots` or breaks down numerically.
fn follow_path(
    game: &Bimatrix,
    initial_label: usize,
    max_pivots: usize,
) -> Option<(Vec<f64>, Vec<f64>)> {
    let (n_rows, n_cols) = (game.n_rows(), game.n_cols());
    let n_labels = n_rows + n_cols;
    // P's tableau: one row per column j of B, variables x (labels 0..m), slacks m..m+n.
    let mut row_tableau = Tableau::new(&game.b().normalized().transpose(), 0, n_rows, n_labels);
    // Q's tableau: one row per row i of A, variables y (labels m..m+n), slacks 0..m.
    let mut col_tableau = Tableau::new(&game.a().normalized(), n_rows, 0, n_labels);
    let mut entering = initial_label;
    let mut in_row_tableau = initial_label < n_rows;
    for _ in 0..max_pivots {
        let tableau = if in_row_tableau {
            &mut row_tableau
        } else {
            &mut col_tableau
        };
        let leaving = tableau.pivot(entering)?;
        if leaving == initial_label {
            let row = row_tableau.values(0..n_rows);
            let col = col_tableau.values(n_rows..n_labels);
            let (row_sum, col_sum): (f64, f64) = (row.iter().sum(), col.iter().sum());
            if row_sum <= 0.0 || col_sum <= 0.0 {
                return None;
            }
            return Some((
                row.iter().map(|v| v / row_sum).collect(),
                col.iter().map(|v| v / col_sum).collect(),
            ));
        }
        entering = leaving;
        in_row_tableau = !in_row_tableau;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_unique_equilibrium_of_matching_pennies() {
        let a = crate::Matrix::new("A", vec![vec![1.0, -1.0], vec![-1.0, 1.0]]).unwrap();
        let game = Bimatrix::zero_sum(a);
        for first_label in 0..4 {
            let config = LemkeHowsonConfig {
                first_label,
                ..LemkeHowsonConfig::default()
            };
            let equilibrium = lemke_howson_with(&game, &config).unwrap();
            for p in equilibrium.row().iter().chain(equilibrium.col()) {
                assert!(
                    (p - 0.5).abs() < 1e-15,
                    "label {first_label}: {equilibrium:?}"
                );
            }
        }
    }

    #[test]
    fn different_labels_reach_different_equilibria_of_battle_of_the_sexes() {
        let game = Bimatrix::from_rows(
            vec![vec![3.0, 0.0], vec![0.0, 2.0]],
            vec![vec![2.0, 0.0], vec![0.0, 3.0]],
        )
        .unwrap();
        let from_row_0 = lemke_howson(&game).unwrap();
        assert_eq!(
            (from_row_0.row(), from_row_0.col()),
            (&[1.0, 0.0][..], &[1.0, 0.0][..])
        );
        let config = LemkeHowsonConfig {
            first_label: 1,
            ..LemkeHowsonConfig::default()
        };
        let from_row_1 = lemke_howson_with(&game, &config).unwrap();
        assert_eq!(
            (from_row_1.row(), from_row_1.col()),
            (&[0.0, 1.0][..], &[0.0, 1.0][..])
        );
    }

    #[test]
    fn bad_settings_are_rejected() {
        let game = Bimatrix::from_rows(vec![vec![1.0]], vec![vec![1.0]]).unwrap();
        let config = LemkeHowsonConfig {
            first_label: 2,
            ..LemkeHowsonConfig::default()
        };
        assert_eq!(
            lemke_howson_with(&game, &config).unwrap_err().to_string(),
            "first_label = 2 is out of range; expected a label below the number of rows plus columns"
        );
        let config = LemkeHowsonConfig {
            max_pivots: 0,
            ..LemkeHowsonConfig::default()
        };
        assert!(lemke_howson_with(&game, &config).is_err());
    }
}
