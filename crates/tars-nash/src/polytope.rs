//! Vertices of a best-response polytope, found by solving one linear system per basis.
//!
//! For a bimatrix game with positive payoffs (von Stengel 2007, "Equilibrium computation for
//! two-player games in strategic and extensive form", section 3.2) the row player's polytope is
//! `P = {x >= 0 : B^T x <= 1}` and the column player's is `Q = {y >= 0 : A y <= 1}`. Each facet
//! carries a label: `x_i = 0` and "row `i` is a best response" are label `i`; `y_j = 0` and
//! "column `j` is a best response" are label `m + j`.
//!
//! A vertex with support `I` satisfies `|I|` tight constraints `T` with a non-singular
//! `M[T, I]`, so enumerating every pair `(I, T)` of equal size and solving `M[T, I] z = 1` finds
//! every vertex, degenerate ones included (those come out once per basis and are merged by
//! their label set). That is `C(d + c, d) - 1` small solves for a `c x d` constraint matrix.

use std::collections::HashSet;

use crate::game::Matrix;
use crate::linalg::solve_in_place;

/// A coordinate or slack within this of zero is on its facet. Constraint matrices are
/// normalized to entries in `[1, 2]`, so vertex coordinates lie in `[0, 1]`.
pub(crate) const LABEL_TOL: f64 = 1e-9;

/// A vertex of a best-response polytope other than the origin.
#[derive(Debug, Clone)]
pub(crate) struct Vertex {
    /// The vertex itself (not normalized to a probability distribution).
    pub coords: Vec<f64>,
    /// Bit `l` is set when the vertex lies on the facet with label `l`.
    pub labels: u128,
}

/// All non-zero vertices of `{z >= 0 : constraints * z <= 1}`, and whether any of them lies
/// on more facets than the dimension (a degenerate polytope).
///
/// Label of `z_q = 0` is `nonneg_label_base + q`; label of constraint row `t` is
/// `constraint_label_base + t`. `constraints` must have positive entries.
pub(crate) fn vertices(
    constraints: &Matrix,
    nonneg_label_base: usize,
    constraint_label_base: usize,
) -> (Vec<Vertex>, bool) {
    let n_dims = constraints.n_cols();
    let n_constraints = constraints.n_rows();
    let mut found = Vec::new();
    let mut seen_labels = HashSet::new();
    let mut degenerate = false;

    let mut columns = vec![0.0; n_constraints * n_dims];
    let mut system = vec![0.0; n_dims * n_dims];
    let mut solution = vec![0.0; n_dims];
    for size in 1..=n_dims.min(n_constraints) {
        let mut support: Vec<usize> = (0..size).collect();
        loop {
            // `columns[t * size + q]` = constraint `t`'s coefficient of `z[support[q]]`.
            for t in 0..n_constraints {
                let row = constraints.row(t);
                for (q, &i) in support.iter().enumerate() {
                    columns[t * size + q] = row[i];
                }
            }
            let mut tight: Vec<usize> = (0..size).collect();
            loop {
                let system = &mut system[..size * size];
                let solution = &mut solution[..size];
                for (p, &t) in tight.iter().enumerate() {
                    system[p * size..(p + 1) * size]
                        .copy_from_slice(&columns[t * size..(t + 1) * size]);
                }
                solution.fill(1.0);
                if solve_in_place(system, solution, size)
                    && solution.iter().all(|&z| z >= -LABEL_TOL)
                    && let Some(labels) = labels_if_feasible(
                        &columns[..n_constraints * size],
                        solution,
                        &support,
                        n_dims,
                        nonneg_label_base,
                        constraint_label_base,
                    )
                    && seen_labels.insert(labels)
                {
                    degenerate |= labels.count_ones() as usize > n_dims;
                    let mut coords = vec![0.0; n_dims];
                    for (&i, &z) in support.iter().zip(solution.iter()) {
                        coords[i] = z.max(0.0);
                    }
                    found.push(Vertex { coords, labels });
                }
                if !next_combination(&mut tight, n_constraints) {
                    break;
                }
            }
            if !next_combination(&mut support, n_dims) {
                break;
            }
        }
    }
    (found, degenerate)
}

/// The label set of the point with `z[support] = solution` (zero elsewhere), or `None` if it
/// violates a constraint.
fn labels_if_feasible(
    columns: &[f64],
    solution: &[f64],
    support: &[usize],
    n_dims: usize,
    nonneg_label_base: usize,
    constraint_label_base: usize,
) -> Option<u128> {
    let size = support.len();
    let mut labels: u128 = 0;
    for (t, coefficients) in columns.chunks_exact(size).enumerate() {
        let value: f64 = coefficients.iter().zip(solution).map(|(c, z)| c * z).sum();
        if value > 1.0 + LABEL_TOL {
            return None;
        }
        if value >= 1.0 - LABEL_TOL {
            labels |= 1 << (constraint_label_base + t);
        }
    }
    let mut in_support = support.iter().zip(solution).peekable();
    for q in 0..n_dims {
        let on_facet = match in_support.peek() {
            Some(&(&i, &z)) if i == q => {
                in_support.next();
                z <= LABEL_TOL
            }
            _ => true,
        };
        if on_facet {
            labels |= 1 << (nonneg_label_base + q);
        }
    }
    Some(labels)
}

/// Advances `idx` (a strictly increasing k-subset of `0..n`) to the next subset in
/// lexicographic order; `false` after the last one.
pub(crate) fn next_combination(idx: &mut [usize], n: usize) -> bool {
    let k = idx.len();
    for pos in (0..k).rev() {
        if idx[pos] < n - k + pos {
            idx[pos] += 1;
            for later in pos + 1..k {
                idx[later] = idx[later - 1] + 1;
            }
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn combinations_cover_every_subset_once() {
        let mut idx = vec![0, 1];
        let mut all = vec![idx.clone()];
        while next_combination(&mut idx, 4) {
            all.push(idx.clone());
        }
        assert_eq!(all.len(), 6);
        assert_eq!(all.last().unwrap(), &vec![2, 3]);
    }

    #[test]
    fn square_polytope_has_three_nonzero_vertices() {
        // {z >= 0 : 2 z0 + z1 <= 1, z0 + 2 z1 <= 1}: vertices (1/2, 0), (0, 1/2), (1/3, 1/3).
        let constraints = Matrix::new("M", vec![vec![2.0, 1.0], vec![1.0, 2.0]]).unwrap();
        let (found, degenerate) = vertices(&constraints, 0, 2);
        assert!(!degenerate);
        assert_eq!(found.len(), 3);
        let labels: Vec<u128> = found.iter().map(|v| v.labels).collect();
        // (1/2, 0) lies on z1 = 0 (label 1) and constraint 0 (label 2).
        assert!(labels.contains(&0b0110), "{labels:?}");
        let interior = found.iter().find(|v| v.labels == 0b1100).unwrap();
        assert!(
            interior
                .coords
                .iter()
                .all(|z| (z - 1.0 / 3.0).abs() < 1e-15)
        );
    }

    #[test]
    fn a_vertex_on_extra_facets_is_degenerate_and_reported_once() {
        // z0 + z1 <= 1 twice: the vertices (1, 0) and (0, 1) each lie on three facets.
        let constraints = Matrix::new("M", vec![vec![1.0, 1.0], vec![1.0, 1.0]]).unwrap();
        let (found, degenerate) = vertices(&constraints, 0, 2);
        assert!(degenerate);
        assert_eq!(found.len(), 2, "{found:?}");
    }
}
