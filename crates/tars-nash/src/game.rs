//! Validated payoff matrices and two-player games.
//!
//! [`Matrix`] checks shape and finiteness once, at construction; [`Bimatrix`] pairs two
//! matrices of one shape. Every solver takes these types, so none of them can meet a ragged,
//! empty or NaN-filled game.

use crate::Error;

/// A dense, non-empty matrix of finite payoffs, stored row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Matrix {
    n_rows: usize,
    n_cols: usize,
    entries: Vec<f64>,
}

/// A two-player general-sum game: the row player gets `A[i][j]`, the column player `B[i][j]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Bimatrix {
    a: Matrix,
    b: Matrix,
}

/// The largest payoff magnitude a game may hold. Beyond it the solvers' pivots (products of
/// payoffs) and payoff sums lose every digit of the 1e-9 tolerance or overflow to infinity;
/// scaling a game by a positive factor leaves its equilibria unchanged, so nothing is lost.
pub const MAX_PAYOFF: f64 = 1e12;

impl Matrix {
    /// Builds a matrix from rows, rejecting empty, ragged, non-finite and oversized input.
    ///
    /// `name` (such as `"A"`) is used only in error messages.
    pub fn new(name: &'static str, rows: Vec<Vec<f64>>) -> Result<Self, Error> {
        let n_rows = rows.len();
        let n_cols = rows.first().map_or(0, Vec::len);
        if n_rows == 0 || n_cols == 0 {
            return Err(Error::EmptyMatrix { name });
        }
        let mut entries = Vec::with_capacity(n_rows * n_cols);
        for (row_idx, row) in rows.into_iter().enumerate() {
            if row.len() != n_cols {
                return Err(Error::RaggedMatrix {
                    name,
                    row_idx,
                    len: row.len(),
                    expected: n_cols,
                });
            }
            if let Some(col_idx) = row
                .iter()
                .position(|value| !value.is_finite() || value.abs() > MAX_PAYOFF)
            {
                return Err(Error::NonFinitePayoff {
                    name,
                    row_idx,
                    col_idx,
                    value: row[col_idx],
                });
            }
            entries.extend(row);
        }
        Ok(Self {
            n_rows,
            n_cols,
            entries,
        })
    }

    /// Number of rows.
    pub fn n_rows(&self) -> usize {
        self.n_rows
    }

    /// Number of columns.
    pub fn n_cols(&self) -> usize {
        self.n_cols
    }

    /// The entry in row `row_idx`, column `col_idx`.
    pub fn get(&self, row_idx: usize, col_idx: usize) -> f64 {
        self.entries[row_idx * self.n_cols + col_idx]
    }

    /// Row `row_idx` as a slice.
    pub fn row(&self, row_idx: usize) -> &[f64] {
        &self.entries[row_idx * self.n_cols..(row_idx + 1) * self.n_cols]
    }

    /// The matrix as rows of owned vectors.
    pub fn to_rows(&self) -> Vec<Vec<f64>> {
        self.entries
            .chunks(self.n_cols)
            .map(<[f64]>::to_vec)
            .collect()
    }

    /// Smallest and largest entry.
    pub fn min_max(&self) -> (f64, f64) {
        self.entries
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
                (lo.min(v), hi.max(v))
            })
    }

    /// `M y`: the payoff of each row against the column mix `y`.
    pub fn mul_vec(&self, y: &[f64]) -> Vec<f64> {
        debug_assert_eq!(y.len(), self.n_cols);
        (0..self.n_rows).map(|i| dot(self.row(i), y)).collect()
    }

    /// `x^T M`: the payoff of each column against the row mix `x`.
    pub fn vec_mul(&self, x: &[f64]) -> Vec<f64> {
        debug_assert_eq!(x.len(), self.n_rows);
        let mut out = vec![0.0; self.n_cols];
        for (i, &weight) in x.iter().enumerate() {
            if weight != 0.0 {
                for (acc, &v) in out.iter_mut().zip(self.row(i)) {
                    *acc += weight * v;
                }
            }
        }
        out
    }

    /// The transpose, `M^T`.
    pub fn transpose(&self) -> Matrix {
        let mut entries = Vec::with_capacity(self.entries.len());
        for j in 0..self.n_cols {
            entries.extend((0..self.n_rows).map(|i| self.get(i, j)));
        }
        Matrix {
            n_rows: self.n_cols,
            n_cols: self.n_rows,
            entries,
        }
    }

    /// `-M`.
    pub fn negated(&self) -> Matrix {
        Matrix {
            entries: self.entries.iter().map(|v| -v).collect(),
            ..*self
        }
    }

    /// The positive affine image `1 + (M - min) / (max - min)`, with entries in `[1, 2]`
    /// (all ones for a constant matrix). Equilibria are invariant under it, and it keeps the
    /// best-response polytopes bounded and well scaled.
    pub(crate) fn normalized(&self) -> Matrix {
        let (lo, hi) = self.min_max();
        let range = hi - lo;
        let entries = if range > 0.0 {
            self.entries
                .iter()
                .map(|v| 1.0 + (v - lo) / range)
                .collect()
        } else {
            vec![1.0; self.entries.len()]
        };
        Matrix { entries, ..*self }
    }
}

impl Bimatrix {
    /// Pairs `A` (row player's payoffs) with `B` (column player's); they must have one shape.
    pub fn new(a: Matrix, b: Matrix) -> Result<Self, Error> {
        if (a.n_rows, a.n_cols) != (b.n_rows, b.n_cols) {
            return Err(Error::ShapeMismatch {
                a_rows: a.n_rows,
                a_cols: a.n_cols,
                b_rows: b.n_rows,
                b_cols: b.n_cols,
            });
        }
        Ok(Self { a, b })
    }

    /// The zero-sum game `(A, -A)`.
    pub fn zero_sum(a: Matrix) -> Self {
        let b = a.negated();
        Self { a, b }
    }

    /// Builds a game from rows of `A` and `B` (convenience for tests and examples).
    pub fn from_rows(a: Vec<Vec<f64>>, b: Vec<Vec<f64>>) -> Result<Self, Error> {
        Self::new(Matrix::new("A", a)?, Matrix::new("B", b)?)
    }

    /// Number of row-player actions.
    pub fn n_rows(&self) -> usize {
        self.a.n_rows
    }

    /// Number of column-player actions.
    pub fn n_cols(&self) -> usize {
        self.a.n_cols
    }

    /// The row player's payoffs.
    pub fn a(&self) -> &Matrix {
        &self.a
    }

    /// The column player's payoffs.
    pub fn b(&self) -> &Matrix {
        &self.b
    }

    /// The first entry where `A + B != 0`, if any: `None` means the game is exactly zero-sum.
    pub fn zero_sum_violation(&self) -> Option<Error> {
        let n_cols = self.n_cols();
        self.a
            .entries
            .iter()
            .zip(&self.b.entries)
            .enumerate()
            .find_map(|(idx, (a, b))| {
                let sum = a + b;
                (sum != 0.0).then_some(Error::NotZeroSum {
                    row_idx: idx / n_cols,
                    col_idx: idx % n_cols,
                    sum,
                })
            })
    }

    /// Expected payoffs `(x^T A y, x^T B y)` of a mixed-strategy profile.
    pub fn payoffs(&self, row: &[f64], col: &[f64]) -> (f64, f64) {
        (
            dot(row, &self.a.mul_vec(col)),
            dot(row, &self.b.mul_vec(col)),
        )
    }

    /// A payoff magnitude used to scale tolerances: `max(1, max |A|, max |B|)`.
    pub(crate) fn payoff_scale(&self) -> f64 {
        let (a_lo, a_hi) = self.a.min_max();
        let (b_lo, b_hi) = self.b.min_max();
        [1.0, a_lo.abs(), a_hi.abs(), b_lo.abs(), b_hi.abs()]
            .into_iter()
            .fold(0.0, f64::max)
    }
}

/// The dot product of two equally long slices.
pub(crate) fn dot(lhs: &[f64], rhs: &[f64]) -> f64 {
    lhs.iter().zip(rhs).map(|(l, r)| l * r).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payoffs_whose_sums_and_products_overflow_are_refused() {
        for value in [1e308, -1e308, 1e13] {
            let err = Matrix::new("row", vec![vec![value, 0.0], vec![0.0, 1.0]]).unwrap_err();
            assert!(
                err.to_string().contains("magnitude at most 1e12"),
                "{value}: {err}"
            );
        }
        assert!(Matrix::new("row", vec![vec![MAX_PAYOFF, -MAX_PAYOFF]]).is_ok());
    }

    #[test]
    fn construction_rejects_bad_shapes_and_values() {
        let empty = Matrix::new("A", vec![]).unwrap_err();
        assert_eq!(
            empty.to_string(),
            "payoff matrix A is empty; give at least one row with at least one entry"
        );
        assert_eq!(
            Matrix::new("A", vec![vec![]]).unwrap_err(),
            Error::EmptyMatrix { name: "A" }
        );
        let ragged = Matrix::new("B", vec![vec![1.0, 2.0], vec![3.0]]).unwrap_err();
        assert_eq!(
            ragged,
            Error::RaggedMatrix {
                name: "B",
                row_idx: 1,
                len: 1,
                expected: 2
            }
        );
        let nan = Matrix::new("A", vec![vec![1.0, f64::NAN]]).unwrap_err();
        assert_eq!(
            nan.to_string(),
            "payoff A[0][1] is NaN; payoffs must be finite numbers of magnitude at most 1e12 (scale the game: its equilibria do not change)"
        );
        let inf = Matrix::new("A", vec![vec![1.0], vec![f64::NEG_INFINITY]]).unwrap_err();
        assert!(inf.to_string().contains("A[1][0] is -inf"), "{inf}");
        let mismatch = Bimatrix::from_rows(vec![vec![1.0, 2.0]], vec![vec![1.0], vec![2.0]]);
        assert_eq!(
            mismatch.unwrap_err().to_string(),
            "payoff matrices disagree in shape: A is 1x2 but B is 2x1; B must have the shape of A"
        );
    }

    #[test]
    fn products_transpose_and_normalization() {
        let m = Matrix::new("A", vec![vec![1.0, 2.0, 3.0], vec![4.0, 5.0, 6.0]]).unwrap();
        assert_eq!(m.mul_vec(&[1.0, 0.0, 1.0]), vec![4.0, 10.0]);
        assert_eq!(m.vec_mul(&[0.5, 0.5]), vec![2.5, 3.5, 4.5]);
        assert_eq!(
            m.transpose().to_rows(),
            vec![vec![1.0, 4.0], vec![2.0, 5.0], vec![3.0, 6.0]]
        );
        assert_eq!(m.normalized().min_max(), (1.0, 2.0));
        let constant = Matrix::new("A", vec![vec![7.0, 7.0]]).unwrap();
        assert_eq!(constant.normalized().to_rows(), vec![vec![1.0, 1.0]]);
    }

    #[test]
    fn zero_sum_detection_names_the_first_violation() {
        let a = Matrix::new("A", vec![vec![1.0, -1.0], vec![-1.0, 1.0]]).unwrap();
        assert_eq!(Bimatrix::zero_sum(a).zero_sum_violation(), None);
        let game = Bimatrix::from_rows(vec![vec![1.0, 0.0]], vec![vec![-1.0, 2.0]]).unwrap();
        assert_eq!(
            game.zero_sum_violation().unwrap(),
            Error::NotZeroSum {
                row_idx: 0,
                col_idx: 1,
                sum: 2.0
            }
        );
    }
}
