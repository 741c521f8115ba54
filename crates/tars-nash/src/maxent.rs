//! The maximum-entropy optimal strategy of a zero-sum game, given the extreme optimal ones.
//!
//! Nash averaging (Balduzzi, Tuyls, Perolat, Graepel 2018, "Re-evaluating evaluation",
//! section 4) picks, among a player's optimal strategies, the one with maximum entropy: it is
//! unique, treats redundant copies of an action alike, and spreads weight over every action
//! that some optimal strategy uses.
//!
//! The optimal set is the face `F = {x in simplex : (x^T M)_j >= v}` of the polytope. From its
//! extreme points we read the largest support `S` and the constraints `E` tight on all of `F`,
//! which become equalities; the rest are strict at the centroid of the extreme points. A
//! log-barrier Newton method then maximizes entropy on `F` from the centroid, with the barrier
//! weight driven to [`FINAL_MU`]. The result is feasible by construction (Newton steps stay in
//! the affine hull, the line search keeps every slack positive).

use crate::Matrix;
use crate::linalg::solve_in_place;

/// Probabilities and slacks within this (payoffs normalized to `[0, 1]`) count as zero.
const FACE_TOL: f64 = 1e-9;

/// The last barrier weight; the entropy is then within about `FINAL_MU * n` of its maximum.
const FINAL_MU: f64 = 1e-12;

/// The maximum-entropy point of the optimal face described by `extreme_points` (optimal mixes
/// over the rows of `payoffs`, which the player maximizes, with game value `value`).
pub(crate) fn max_entropy_strategy(
    payoffs: &Matrix,
    value: f64,
    extreme_points: &[Vec<f64>],
) -> Vec<f64> {
    let n_actions = payoffs.n_rows();
    let centroid: Vec<f64> = (0..n_actions)
        .map(|i| extreme_points.iter().map(|x| x[i]).sum::<f64>() / extreme_points.len() as f64)
        .collect();
    if extreme_points.len() == 1 {
        return centroid;
    }
    let (lo, hi) = payoffs.min_max();
    let range = if hi > lo { hi - lo } else { 1.0 };
    let support: Vec<usize> = (0..n_actions).filter(|&i| centroid[i] > FACE_TOL).collect();
    // Column j of `payoffs` restricted to the support, as slack coefficients on [0, 1] payoffs.
    let column = |j: usize| -> Vec<f64> {
        support
            .iter()
            .map(|&i| (payoffs.get(i, j) - lo) / range)
            .collect()
    };
    let scaled_value = (value - lo) / range;
    let slack = |coefficients: &[f64], x: &[f64]| -> f64 {
        coefficients.iter().zip(x).map(|(c, p)| c * p).sum::<f64>() - scaled_value
    };
    let mut equalities: Vec<Vec<f64>> = vec![vec![1.0; support.len()]];
    let mut inequalities: Vec<Vec<f64>> = Vec::new();
    for j in 0..payoffs.n_cols() {
        let coefficients = column(j);
        let always_tight = extreme_points.iter().all(|point| {
            let on_support: Vec<f64> = support.iter().map(|&i| point[i]).collect();
            slack(&coefficients, &on_support) <= FACE_TOL
        });
        if always_tight {
            equalities.push(coefficients);
        } else {
            inequalities.push(coefficients);
        }
    }
    let null_space = null_space_basis(&equalities, support.len());
    let mut x: Vec<f64> = support.iter().map(|&i| centroid[i]).collect();
    if !null_space.is_empty() {
        let mut mu = 1e-2;
        while mu >= FINAL_MU {
            for _ in 0..50 {
                if !newton_step(&mut x, &inequalities, &null_space, &slack, mu) {
                    break;
                }
            }
            mu *= 0.1;
        }
    }
    let mut strategy = vec![0.0; n_actions];
    let sum: f64 = x.iter().sum();
    for (&i, p) in support.iter().zip(&x) {
        strategy[i] = p / sum;
    }
    strategy
}

/// One damped Newton step on `sum x ln x - mu * sum ln slack` within the affine hull; `false`
/// once the Newton decrement is negligible.
fn newton_step(
    x: &mut [f64],
    inequalities: &[Vec<f64>],
    null_space: &[Vec<f64>],
    slack: &impl Fn(&[f64], &[f64]) -> f64,
    mu: f64,
) -> bool {
    let n = x.len();
    let objective = |x: &[f64]| -> Option<f64> {
        let mut total: f64 = x
            .iter()
            .map(|&p| if p > 0.0 { p * p.ln() } else { 0.0 })
            .sum();
        for coefficients in inequalities {
            let s = slack(coefficients, x);
            if s <= 0.0 {
                return None;
            }
            total -= mu * s.ln();
        }
        x.iter().all(|&p| p > 0.0).then_some(total)
    };
    let mut gradient: Vec<f64> = x.iter().map(|p| p.ln() + 1.0).collect();
    let mut hessian = vec![0.0; n * n];
    for i in 0..n {
        hessian[i * n + i] = 1.0 / x[i];
    }
    for coefficients in inequalities {
        let s = slack(coefficients, x);
        for i in 0..n {
            gradient[i] -= mu * coefficients[i] / s;
            for k in 0..n {
                hessian[i * n + k] += mu * coefficients[i] * coefficients[k] / (s * s);
            }
        }
    }
    // Reduced Newton system (N^T H N) dz = -N^T g, step N dz.
    let r = null_space.len();
    let mut reduced = vec![0.0; r * r];
    let mut rhs = vec![0.0; r];
    for a in 0..r {
        rhs[a] = -null_space[a]
            .iter()
            .zip(&gradient)
            .map(|(v, g)| v * g)
            .sum::<f64>();
        for b in 0..r {
            let mut acc = 0.0;
            for i in 0..n {
                let h_col: f64 = (0..n).map(|k| hessian[i * n + k] * null_space[b][k]).sum();
                acc += null_space[a][i] * h_col;
            }
            reduced[a * r + b] = acc;
        }
    }
    if !solve_in_place(&mut reduced, &mut rhs, r) {
        return false;
    }
    let step: Vec<f64> = (0..n)
        .map(|i| (0..r).map(|a| rhs[a] * null_space[a][i]).sum())
        .collect();
    // The directional derivative g^T step is minus the squared Newton decrement.
    let slope: f64 = gradient.iter().zip(&step).map(|(g, d)| g * d).sum();
    if slope > -1e-22 {
        return false;
    }
    let Some(current) = objective(x) else {
        return false;
    };
    let mut t = 1.0;
    while t > 1e-12 {
        let candidate: Vec<f64> = x.iter().zip(&step).map(|(p, d)| p + t * d).collect();
        if let Some(value) = objective(&candidate)
            && value <= current + 1e-4 * t * slope
        {
            x.copy_from_slice(&candidate);
            return true;
        }
        t *= 0.5;
    }
    false
}

/// An orthonormal basis (as vectors) of `{d : rows * d = 0}` in `n` dimensions.
fn null_space_basis(rows: &[Vec<f64>], n: usize) -> Vec<Vec<f64>> {
    let mut row_basis: Vec<Vec<f64>> = Vec::new();
    let candidates = rows.iter().cloned().map(|row| (row, true));
    let units = (0..n).map(|i| {
        let mut unit = vec![0.0; n];
        unit[i] = 1.0;
        (unit, false)
    });
    let mut null_basis = Vec::new();
    for (mut vector, is_row) in candidates.chain(units) {
        let norm = vector.iter().map(|v| v * v).sum::<f64>().sqrt();
        for _ in 0..2 {
            for q in row_basis.iter().chain(&null_basis) {
                let projection: f64 = vector.iter().zip(q).map(|(v, q)| v * q).sum();
                vector
                    .iter_mut()
                    .zip(q)
                    .for_each(|(v, q)| *v -= projection * q);
            }
        }
        let residual = vector.iter().map(|v| v * v).sum::<f64>().sqrt();
        if residual <= 1e-9 * norm.max(f64::MIN_POSITIVE) {
            continue;
        }
        vector.iter_mut().for_each(|v| *v /= residual);
        if is_row {
            row_basis.push(vector)
        } else {
            null_basis.push(vector)
        }
    }
    null_basis
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicated_actions_share_the_weight_equally() {
        // Rows 0 and 1 are copies; every mix of them against row 2 = 0 is optimal (value 1).
        let payoffs =
            Matrix::new("M", vec![vec![1.0, 1.0], vec![1.0, 1.0], vec![0.0, 0.0]]).unwrap();
        let strategy =
            max_entropy_strategy(&payoffs, 1.0, &[vec![1.0, 0.0, 0.0], vec![0.0, 1.0, 0.0]]);
        assert!(
            (strategy[0] - 0.5).abs() < 1e-12 && (strategy[1] - 0.5).abs() < 1e-12,
            "{strategy:?}"
        );
        assert_eq!(strategy[2], 0.0);
    }

    #[test]
    fn a_binding_inequality_stops_the_entropy_short_of_uniform() {
        // One column: x0 * 1 + x1 * 1 + x2 * 0 >= 0.8 with value 0.8 is optimal on
        // {x2 <= 0.2}; maximum entropy is x2 = 0.2, x0 = x1 = 0.4.
        let payoffs =
            Matrix::new("M", vec![vec![1.0, 0.8], vec![1.0, 0.8], vec![0.0, 0.8]]).unwrap();
        let extremes = [
            vec![1.0, 0.0, 0.0],
            vec![0.0, 1.0, 0.0],
            vec![0.8, 0.0, 0.2],
            vec![0.0, 0.8, 0.2],
        ];
        let strategy = max_entropy_strategy(&payoffs, 0.8, &extremes);
        assert!((strategy[2] - 0.2).abs() < 1e-6, "{strategy:?}");
        assert!((strategy[0] - strategy[1]).abs() < 1e-12, "{strategy:?}");
        assert!(
            strategy[0] + strategy[1] >= 0.8 - 1e-12,
            "stays optimal: {strategy:?}"
        );
        assert!((strategy.iter().sum::<f64>() - 1.0).abs() < 1e-15);
    }
}
