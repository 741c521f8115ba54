//! Flat parameter vectors with their gradients, and the operations over whole parameter sets:
//! global-norm gradient clipping (`torch.nn.utils.clip_grad_norm_`) and Polyak averaging
//! (SB3's `stable_baselines3.common.utils.polyak_update`).

use super::activation::multiversion;

/// The parameters of one network (or one free tensor such as `log_std`), flattened, with a
/// gradient vector of the same length.
#[derive(Debug, Clone, PartialEq)]
pub struct Params {
    pub value: Vec<f32>,
    pub grad: Vec<f32>,
}

impl Params {
    /// `n_params` parameters, all zero, with zero gradients.
    pub fn zeros(n_params: usize) -> Params {
        Params {
            value: vec![0.0; n_params],
            grad: vec![0.0; n_params],
        }
    }

    /// Parameters initialised to `value`, with zero gradients.
    pub fn from_value(value: Vec<f32>) -> Params {
        let grad = vec![0.0; value.len()];
        Params { value, grad }
    }

    pub fn len(&self) -> usize {
        self.value.len()
    }

    pub fn is_empty(&self) -> bool {
        self.value.is_empty()
    }

    /// Sets every gradient to zero (`optimizer.zero_grad()`, with `set_to_none=False`).
    pub fn zero_grad(&mut self) {
        self.grad.fill(0.0);
    }

    /// `self = tau * source + (1 - tau) * self`, in SB3's `polyak_update` order: first
    /// multiply by `1 - tau`, then add `tau * source`.
    pub fn polyak_update(&mut self, source: &Params, tau: f32) {
        assert_eq!(
            self.len(),
            source.len(),
            "polyak_update between differently sized parameter sets"
        );
        for (target, &src) in self.value.iter_mut().zip(&source.value) {
            *target = *target * (1.0 - tau) + tau * src;
        }
    }
}

/// Scales the gradients of all `params` together so that their global L2 norm is at most
/// `max_norm`, and returns the norm before clipping — `torch.nn.utils.clip_grad_norm_`.
///
/// As in PyTorch, the scale is `min(1, max_norm / (norm + 1e-6))`, so a norm just below
/// `max_norm` is still shrunk by a hair. The norm is accumulated in f64.
pub fn clip_grad_norm(params: &mut [&mut Params], max_norm: f32) -> f32 {
    let mut sum_sq = 0.0f64;
    for p in params.iter() {
        add_sum_of_squares(&p.grad, &mut sum_sq);
    }
    let total_norm = sum_sq.sqrt() as f32;
    let clip_coef = max_norm / (total_norm + 1e-6);
    if clip_coef < 1.0 {
        for p in params.iter_mut() {
            p.grad.iter_mut().for_each(|g| *g *= clip_coef);
        }
    }
    total_norm
}

multiversion! {
    /// Adds `Σ g²` to `total`, in f64 over 8 interleaved partial sums so the loop vectorises.
    fn add_sum_of_squares(grad: &[f32], total: &mut f64) {
        let mut lanes = [0.0f64; 8];
        let chunks = grad.chunks_exact(8);
        let tail: f64 = chunks.remainder().iter().map(|&g| f64::from(g) * f64::from(g)).sum();
        for chunk in chunks {
            for (lane, &g) in lanes.iter_mut().zip(chunk) {
                *lane += f64::from(g) * f64::from(g);
            }
        }
        *total += lanes.iter().sum::<f64>() + tail;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clip_grad_norm_scales_all_groups_by_the_global_norm() {
        // Two groups with gradients (3, 0) and (0, 4): global norm 5.
        let mut a = Params {
            value: vec![0.0; 2],
            grad: vec![3.0, 0.0],
        };
        let mut b = Params {
            value: vec![0.0; 2],
            grad: vec![0.0, 4.0],
        };
        let norm = clip_grad_norm(&mut [&mut a, &mut b], 0.5);
        assert_eq!(norm, 5.0);
        let coef = 0.5 / (5.0 + 1e-6);
        assert!((a.grad[0] - 3.0 * coef).abs() < 1e-7);
        assert!((b.grad[1] - 4.0 * coef).abs() < 1e-7);
        let clipped = (a.grad[0].powi(2) + b.grad[1].powi(2)).sqrt();
        assert!((clipped - 0.5).abs() < 1e-6);
    }

    #[test]
    fn clip_grad_norm_leaves_small_gradients_alone() {
        let mut a = Params {
            value: vec![0.0; 2],
            grad: vec![0.3, -0.4],
        };
        let norm = clip_grad_norm(&mut [&mut a], 1.0);
        assert!((norm - 0.5).abs() < 1e-7);
        assert_eq!(a.grad, vec![0.3, -0.4]);
    }

    #[test]
    fn polyak_update_moves_target_towards_source() {
        let source = Params::from_value(vec![1.0, 2.0]);
        let mut target = Params::from_value(vec![0.0, 4.0]);
        target.polyak_update(&source, 0.005);
        assert!((target.value[0] - 0.005).abs() < 1e-7);
        assert!((target.value[1] - (4.0 * 0.995 + 0.01)).abs() < 1e-6);
        target.polyak_update(&source, 1.0);
        assert_eq!(target.value, source.value);
    }
}
