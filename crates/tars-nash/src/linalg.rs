//! Small dense linear algebra for the solvers: an LU solve for square systems and a
//! minimum-norm correction for consistent rectangular ones.
//!
//! The systems are tiny (a support pair of a game, at most a few dozen unknowns), so plain
//! Gaussian elimination with partial pivoting and modified Gram-Schmidt are accurate enough
//! and far cheaper than anything general.

/// Pivots smaller than this (relative to the largest entry of the matrix) count as zero.
const SINGULAR_TOL: f64 = 1e-12;

/// Rows whose component orthogonal to the earlier rows is smaller than this fraction of their
/// norm are treated as linearly dependent.
const DEPENDENT_TOL: f64 = 1e-9;

/// Solves the `n x n` system `mat * x = rhs` in place (`rhs` becomes `x`), by Gaussian
/// elimination with partial pivoting. `mat` is row-major and is destroyed.
///
/// Returns `false`, leaving `rhs` unspecified, when the matrix is singular to working
/// precision.
pub(crate) fn solve_in_place(mat: &mut [f64], rhs: &mut [f64], n: usize) -> bool {
    debug_assert_eq!(mat.len(), n * n);
    debug_assert_eq!(rhs.len(), n);
    let scale = mat.iter().fold(0.0_f64, |acc, v| acc.max(v.abs()));
    if scale == 0.0 {
        return false;
    }
    let tol = SINGULAR_TOL * scale;
    for col in 0..n {
        let mut pivot_row = col;
        let mut pivot_abs = mat[col * n + col].abs();
        for row in col + 1..n {
            let candidate = mat[row * n + col].abs();
            if candidate > pivot_abs {
                pivot_row = row;
                pivot_abs = candidate;
            }
        }
        if pivot_abs <= tol {
            return false;
        }
        if pivot_row != col {
            for k in 0..n {
                mat.swap(col * n + k, pivot_row * n + k);
            }
            rhs.swap(col, pivot_row);
        }
        let pivot = mat[col * n + col];
        for row in col + 1..n {
            let factor = mat[row * n + col] / pivot;
            if factor != 0.0 {
                for k in col + 1..n {
                    mat[row * n + k] -= factor * mat[col * n + k];
                }
                rhs[row] -= factor * rhs[col];
            }
        }
    }
    for row in (0..n).rev() {
        let mut acc = rhs[row];
        for k in row + 1..n {
            acc -= mat[row * n + k] * rhs[k];
        }
        rhs[row] = acc / mat[row * n + row];
    }
    true
}

/// The smallest `delta` (in Euclidean norm) with `rows * delta = rhs`, for a consistent system
/// of any shape. Rows that depend linearly on earlier ones are skipped (consistency makes them
/// redundant), so the system may be over- or under-determined.
///
/// Modified Gram-Schmidt writes the kept rows as `L Q` with orthonormal `Q`; then
/// `delta = Q^T L^{-1} rhs`.
pub(crate) fn min_norm_solve(rows: &[Vec<f64>], rhs: &[f64]) -> Vec<f64> {
    debug_assert_eq!(rows.len(), rhs.len());
    let n_unknowns = rows.first().map_or(0, Vec::len);
    let mut basis: Vec<Vec<f64>> = Vec::new();
    // Forward substitution happens as we go: `coeffs[k]` is the component of `delta` along
    // basis vector `k`.
    let mut coeffs: Vec<f64> = Vec::new();
    for (row, &target) in rows.iter().zip(rhs) {
        let norm = row.iter().map(|v| v * v).sum::<f64>().sqrt();
        if norm == 0.0 {
            continue;
        }
        let mut residual = row.clone();
        let mut target_left = target;
        // Two passes of Gram-Schmidt keep the basis orthonormal to working precision.
        for _ in 0..2 {
            for (q, &c) in basis.iter().zip(&coeffs) {
                let projection: f64 = residual.iter().zip(q).map(|(r, q)| r * q).sum();
                for (r, q) in residual.iter_mut().zip(q) {
                    *r -= projection * q;
                }
                target_left -= projection * c;
            }
        }
        let residual_norm = residual.iter().map(|v| v * v).sum::<f64>().sqrt();
        if residual_norm <= DEPENDENT_TOL * norm {
            continue;
        }
        residual.iter_mut().for_each(|r| *r /= residual_norm);
        basis.push(residual);
        coeffs.push(target_left / residual_norm);
    }
    let mut delta = vec![0.0; n_unknowns];
    for (q, c) in basis.iter().zip(&coeffs) {
        for (d, q) in delta.iter_mut().zip(q) {
            *d += c * q;
        }
    }
    delta
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lu_solves_and_detects_singular_systems() {
        let mut mat = vec![0.0, 2.0, 1.0, 1.0];
        let mut rhs = vec![4.0, 3.0];
        assert!(solve_in_place(&mut mat, &mut rhs, 2));
        assert!(
            (rhs[0] - 1.0).abs() < 1e-15 && (rhs[1] - 2.0).abs() < 1e-15,
            "{rhs:?}"
        );
        let mut singular = vec![1.0, 2.0, 2.0, 4.0];
        assert!(!solve_in_place(&mut singular, &mut [1.0, 2.0], 2));
    }

    #[test]
    fn min_norm_solve_handles_every_shape() {
        // Under-determined: x + y = 2 has minimum-norm solution (1, 1).
        let delta = min_norm_solve(&[vec![1.0, 1.0]], &[2.0]);
        assert!((delta[0] - 1.0).abs() < 1e-15 && (delta[1] - 1.0).abs() < 1e-15);
        // Over-determined but consistent, with a redundant row.
        let rows = vec![vec![1.0, 0.0], vec![0.0, 1.0], vec![1.0, 1.0]];
        let delta = min_norm_solve(&rows, &[3.0, -1.0, 2.0]);
        assert!(
            (delta[0] - 3.0).abs() < 1e-14 && (delta[1] + 1.0).abs() < 1e-14,
            "{delta:?}"
        );
    }
}
