//! Q-value heads for value-based methods: greedy actions, the max over next-state values for
//! TD targets, and the TD loss on the chosen actions' Q-values with its gradient.
//!
//! SB3's DQN (`stable_baselines3/dqn/dqn.py: DQN.train`) gathers `current_q_values` at the
//! replay actions and uses `F.smooth_l1_loss(current_q_values, target_q_values)`, the mean
//! Huber loss with beta 1 ([`TdLoss::Huber`]).

/// The regression loss between the chosen actions' Q-values and their TD targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TdLoss {
    /// `F.smooth_l1_loss` (beta 1): `0.5·d²` for `|d| < 1`, else `|d| - 0.5`. SB3's DQN.
    Huber,
    /// `F.mse_loss`: `d²`. SB3's DDPG/TD3 critics.
    Mse,
}

/// Writes the index of each row's largest value (the first one on ties, like `argmax`).
pub fn argmax_rows(values: &[f32], width: usize, out: &mut [usize]) {
    assert_eq!(
        values.len(),
        out.len() * width,
        "argmax_rows: shape mismatch"
    );
    for (row, o) in values.chunks_exact(width).zip(out) {
        *o = argmax(row);
    }
}

/// Writes each row's largest value (`values.max(dim=1)`).
pub fn max_rows(values: &[f32], width: usize, out: &mut [f32]) {
    assert_eq!(values.len(), out.len() * width, "max_rows: shape mismatch");
    for (row, o) in values.chunks_exact(width).zip(out) {
        *o = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    }
}

/// The mean TD loss between `q[i, actions[i]]` and `targets[i]`, returning the loss and
/// writing its gradient with respect to every Q-value into `grad_q` (`[batch, n_actions]`,
/// zero except at the chosen actions) — ready for the Q-network's backward pass.
pub fn td_loss_backward(
    q: &[f32],
    n_actions: usize,
    actions: &[usize],
    targets: &[f32],
    loss: TdLoss,
    grad_q: &mut [f32],
) -> f32 {
    let batch = actions.len();
    assert!(
        q.len() == batch * n_actions && targets.len() == batch && grad_q.len() == q.len(),
        "td_loss_backward: shape mismatch"
    );
    grad_q.fill(0.0);
    let scale = 1.0 / batch as f32;
    let mut total = 0.0f64;
    for (row_idx, (&action, &target)) in actions.iter().zip(targets).enumerate() {
        debug_assert!(action < n_actions);
        let idx = row_idx * n_actions + action;
        let diff = q[idx] - target;
        let (value, slope) = match loss {
            TdLoss::Huber if diff.abs() < 1.0 => (0.5 * diff * diff, diff),
            TdLoss::Huber => (diff.abs() - 0.5, diff.signum()),
            TdLoss::Mse => (diff * diff, 2.0 * diff),
        };
        total += f64::from(value);
        grad_q[idx] = slope * scale;
    }
    (total / batch as f64) as f32
}

pub(crate) fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (idx, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = idx;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::testutil::{assert_gradients_close, finite_differences};

    #[test]
    fn argmax_and_max_pick_the_first_largest() {
        let q = [1.0, 3.0, 3.0, -1.0, -2.0, -0.5];
        let mut actions = [9; 2];
        argmax_rows(&q, 3, &mut actions);
        assert_eq!(actions, [1, 2]);
        let mut best = [0.0; 2];
        max_rows(&q, 3, &mut best);
        assert_eq!(best, [3.0, -0.5]);
    }

    #[test]
    fn huber_and_mse_losses_have_the_right_values() {
        // Differences 0.5 (quadratic zone) and -3 (linear zone).
        let q = [0.5, 9.0, 9.0, 0.0];
        let mut grad = [f32::NAN; 4];
        let huber = td_loss_backward(&q, 2, &[0, 1], &[0.0, 3.0], TdLoss::Huber, &mut grad);
        assert!((huber - (0.125 + 2.5) / 2.0).abs() < 1e-6);
        assert_eq!(grad, [0.25, 0.0, 0.0, -0.5]);
        let mse = td_loss_backward(&q, 2, &[0, 1], &[0.0, 3.0], TdLoss::Mse, &mut grad);
        assert!((mse - (0.25 + 9.0) / 2.0).abs() < 1e-6);
        assert_eq!(grad, [0.5, 0.0, 0.0, -3.0]);
    }

    #[test]
    fn td_loss_gradients_match_finite_differences() {
        let q: Vec<f32> = (0..12).map(|i| (i as f32 * 0.9).sin() * 2.0).collect();
        let (actions, targets) = ([0, 2, 1, 2], [0.3, -1.5, 2.5, 0.1]);
        for loss in [TdLoss::Huber, TdLoss::Mse] {
            let mut grad = vec![0.0; 12];
            td_loss_backward(&q, 3, &actions, &targets, loss, &mut grad);
            let mut shifted = q.clone();
            let mut scratch = vec![0.0; 12];
            let numeric = finite_differences(12, 1e-3, |i, delta| {
                shifted[i] = q[i] + delta;
                let value = td_loss_backward(&shifted, 3, &actions, &targets, loss, &mut scratch);
                shifted[i] = q[i];
                f64::from(value)
            });
            assert_gradients_close("td loss", &grad, &numeric, 1e-3);
        }
    }
}
