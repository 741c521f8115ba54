//! Test helpers: central finite differences and the comparison every backward test uses.

use tars_envs::Rng;

/// Central differences `(f(x + eps·e_i) - f(x - eps·e_i)) / 2eps` for `i in 0..n`, where
/// `loss_at(i, delta)` evaluates the loss with coordinate `i` shifted by `delta` (and leaves
/// it restored).
pub(crate) fn finite_differences(
    n: usize,
    eps: f32,
    mut loss_at: impl FnMut(usize, f32) -> f64,
) -> Vec<f64> {
    (0..n)
        .map(|i| (loss_at(i, eps) - loss_at(i, -eps)) / (2.0 * f64::from(eps)))
        .collect()
}

/// Asserts `|analytic - numeric| <= tol · max(1, |numeric|)` element-wise.
pub(crate) fn assert_gradients_close(what: &str, analytic: &[f32], numeric: &[f64], tol: f64) {
    assert_eq!(analytic.len(), numeric.len(), "{what}: length mismatch");
    for (idx, (&a, &n)) in analytic.iter().zip(numeric).enumerate() {
        let err = (f64::from(a) - n).abs();
        assert!(
            err <= tol * n.abs().max(1.0),
            "{what}[{idx}]: analytic {a} vs finite-difference {n}"
        );
    }
}

/// `n` standard-normal f32 draws.
pub(crate) fn normals(n: usize, rng: &mut Rng) -> Vec<f32> {
    (0..n).map(|_| rng.normal() as f32).collect()
}

/// `Σ weights[k] · values[k]` in f64: a generic scalar loss whose gradient is `weights`.
pub(crate) fn weighted_sum(weights: &[f32], values: &[f32]) -> f64 {
    weights
        .iter()
        .zip(values)
        .map(|(&w, &v)| f64::from(w) * f64::from(v))
        .sum()
}
