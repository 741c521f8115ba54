//! The networks of deterministic-policy methods (DDPG, later TD3): SB3's TD3 `Actor`, whose
//! `mu` is `create_mlp(..., squash_output=True)` (a final `nn.Tanh`), and `ContinuousCritic`,
//! which evaluates `q_net(th.cat([obs, actions], dim=1))`
//! (`stable_baselines3/td3/policies.py`, `stable_baselines3/common/policies.py`).
//!
//! As in SB3, actors act and critics judge in the squashed space [-1, 1]; [`ActionBounds`]
//! converts to and from the environment's bounds (`BasePolicy.scale_action` /
//! `unscale_action`). The actor's loss is `-critic(obs, actor(obs)).mean()`, so the critic
//! exposes ∂Q/∂a ([`Critic::action_grad`]) for the actor's backward pass.

use super::activation::tanh;
use super::mlp::Mlp;

/// The bounds of a `Box` action space, for mapping between [-1, 1] and `[low, high]`.
#[derive(Debug, Clone, PartialEq)]
pub struct ActionBounds {
    pub low: Vec<f32>,
    pub high: Vec<f32>,
}

impl ActionBounds {
    pub fn new(low: Vec<f32>, high: Vec<f32>) -> ActionBounds {
        assert_eq!(low.len(), high.len(), "action bounds of different lengths");
        assert!(
            low.iter()
                .zip(&high)
                .all(|(l, h)| l < h && l.is_finite() && h.is_finite()),
            "action bounds must be finite with low < high"
        );
        ActionBounds { low, high }
    }

    pub fn action_dim(&self) -> usize {
        self.low.len()
    }

    /// [-1, 1] → `[low, high]`: `low + ½ (scaled + 1)(high - low)`, row by row.
    pub fn unscale(&self, scaled: &[f32], out: &mut [f32]) {
        assert_eq!(scaled.len(), out.len());
        for (scaled_row, out_row) in scaled
            .chunks_exact(self.action_dim())
            .zip(out.chunks_exact_mut(self.action_dim()))
        {
            for (d, (o, &s)) in out_row.iter_mut().zip(scaled_row).enumerate() {
                *o = self.low[d] + 0.5 * (s + 1.0) * (self.high[d] - self.low[d]);
            }
        }
    }

    /// Clips every row of `actions` to `[low, high]` in place (what SB3's `collect_rollouts`
    /// and `predict` do to Gaussian actions).
    pub fn clip(&self, actions: &mut [f32]) {
        let dim = self.action_dim();
        for (idx, a) in actions.iter_mut().enumerate() {
            *a = a.clamp(self.low[idx % dim], self.high[idx % dim]);
        }
    }

    /// `[low, high]` → [-1, 1]: `2 (action - low) / (high - low) - 1`, row by row.
    pub fn scale(&self, action: &[f32], out: &mut [f32]) {
        assert_eq!(action.len(), out.len());
        for (action_row, out_row) in action
            .chunks_exact(self.action_dim())
            .zip(out.chunks_exact_mut(self.action_dim()))
        {
            for (d, (o, &a)) in out_row.iter_mut().zip(action_row).enumerate() {
                *o = 2.0 * (a - self.low[d]) / (self.high[d] - self.low[d]) - 1.0;
            }
        }
    }
}

/// A deterministic policy `tanh(net(obs))`, with actions in [-1, 1].
#[derive(Debug, Clone)]
pub struct DeterministicActor {
    /// `obs_dim → net_arch… → action_dim`, linear output (SB3 DDPG: `[400, 300]`, ReLU,
    /// [`super::Init::TorchDefault`]).
    pub net: Mlp,
    actions: Vec<f32>,
    grad_pre_tanh: Vec<f32>,
}

impl DeterministicActor {
    pub fn new(net: Mlp) -> DeterministicActor {
        DeterministicActor {
            net,
            actions: Vec::new(),
            grad_pre_tanh: Vec::new(),
        }
    }

    pub fn action_dim(&self) -> usize {
        self.net.out_dim()
    }

    /// Squashed actions `[batch, action_dim]` for `obs` (`[batch, obs_dim]`).
    pub fn forward(&mut self, obs: &[f32]) -> &[f32] {
        let pre_tanh = self.net.forward(obs);
        let n = pre_tanh.len();
        if self.actions.len() < n {
            self.actions.resize(n, 0.0);
        }
        self.actions[..n]
            .iter_mut()
            .zip(pre_tanh)
            .for_each(|(a, &u)| *a = tanh(u));
        &self.actions[..n]
    }

    /// Backpropagates ∂loss/∂actions through the tanh and the network of the last forward,
    /// accumulating into `net.params.grad`.
    pub fn backward(&mut self, grad_actions: &[f32]) {
        let n = grad_actions.len();
        assert_eq!(
            n,
            self.net.batch() * self.action_dim(),
            "grad_actions does not match the last forward"
        );
        if self.grad_pre_tanh.len() < n {
            self.grad_pre_tanh.resize(n, 0.0);
        }
        let squashed = self.actions[..n].iter().zip(grad_actions);
        self.grad_pre_tanh[..n]
            .iter_mut()
            .zip(squashed)
            .for_each(|(g, (&a, &ga))| *g = ga * (1.0 - a * a));
        self.net.backward(&self.grad_pre_tanh[..n]);
    }
}

/// A state-action value network `Q(s, a) = net(concat(obs, action))`.
#[derive(Debug, Clone)]
pub struct Critic {
    /// `obs_dim + action_dim → net_arch… → 1`.
    pub net: Mlp,
    obs_dim: usize,
    input: Vec<f32>,
    action_grad: Vec<f32>,
}

impl Critic {
    /// Wraps `net`, whose input is `obs_dim` observation features followed by the action.
    pub fn new(obs_dim: usize, net: Mlp) -> Critic {
        assert_eq!(net.out_dim(), 1, "a critic outputs one value");
        assert!(
            net.in_dim() > obs_dim,
            "the critic's input must hold obs_dim features and an action"
        );
        Critic {
            net,
            obs_dim,
            input: Vec::new(),
            action_grad: Vec::new(),
        }
    }

    pub fn action_dim(&self) -> usize {
        self.net.in_dim() - self.obs_dim
    }

    /// Q-values `[batch]` for `obs` (`[batch, obs_dim]`) and `actions` (`[batch, action_dim]`).
    pub fn forward(&mut self, obs: &[f32], actions: &[f32]) -> &[f32] {
        let (obs_dim, action_dim) = (self.obs_dim, self.action_dim());
        let batch = obs.len() / obs_dim;
        assert!(
            obs.len() == batch * obs_dim && actions.len() == batch * action_dim,
            "critic inputs have mismatched batches"
        );
        let width = obs_dim + action_dim;
        if self.input.len() < batch * width {
            self.input.resize(batch * width, 0.0);
        }
        let rows = obs
            .chunks_exact(obs_dim)
            .zip(actions.chunks_exact(action_dim));
        for (row, (o, a)) in self.input.chunks_exact_mut(width).zip(rows) {
            row[..obs_dim].copy_from_slice(o);
            row[obs_dim..].copy_from_slice(a);
        }
        self.net.forward(&self.input[..batch * width])
    }

    /// Accumulates ∂loss/∂params into `net.params.grad`, given ∂loss/∂Q (`[batch]`).
    pub fn backward(&mut self, grad_q: &[f32]) {
        self.net.backward(grad_q);
    }

    /// ∂loss/∂actions (`[batch, action_dim]`) given ∂loss/∂Q, leaving `net.params.grad`
    /// untouched. With `grad_q = -1/batch` this is the actor loss's gradient wrt the actions.
    pub fn action_grad(&mut self, grad_q: &[f32]) -> &[f32] {
        let (obs_dim, action_dim) = (self.obs_dim, self.action_dim());
        let batch = grad_q.len();
        if self.action_grad.len() < batch * action_dim {
            self.action_grad.resize(batch * action_dim, 0.0);
        }
        let input_grad = self.net.input_grad(grad_q);
        let rows = self
            .action_grad
            .chunks_exact_mut(action_dim)
            .zip(input_grad.chunks_exact(obs_dim + action_dim));
        rows.for_each(|(out, row)| out.copy_from_slice(&row[obs_dim..]));
        &self.action_grad[..batch * action_dim]
    }
}

#[cfg(test)]
mod tests {
    use tars_envs::Rng;

    use super::*;
    use crate::nn::testutil::{assert_gradients_close, finite_differences, normals, weighted_sum};
    use crate::nn::{Activation, Init};

    #[test]
    fn bounds_scale_and_unscale_are_inverse_and_hit_the_ends() {
        let bounds = ActionBounds::new(vec![-2.0, 0.0], vec![2.0, 1.0]);
        let mut env_action = [0.0; 4];
        bounds.unscale(&[-1.0, 1.0, 0.5, 0.0], &mut env_action);
        assert_eq!(env_action, [-2.0, 1.0, 1.0, 0.5]);
        let mut scaled = [0.0; 4];
        bounds.scale(&env_action, &mut scaled);
        assert_eq!(scaled, [-1.0, 1.0, 0.5, 0.0]);
    }

    #[test]
    fn actor_backward_matches_finite_differences() {
        let mut rng = Rng::new(21);
        let (obs_dim, batch) = (3, 4);
        let net = Mlp::new(
            obs_dim,
            &[8, 6],
            2,
            Activation::Relu,
            Init::TorchDefault,
            &mut rng,
        );
        let mut actor = DeterministicActor::new(net);
        let obs = normals(batch * obs_dim, &mut rng);
        let weights = normals(batch * 2, &mut rng);
        let actions = actor.forward(&obs).to_vec();
        assert!(actions.iter().all(|a| a.abs() < 1.0));
        actor.backward(&weights);
        let analytic = actor.net.params.grad.clone();
        let mut probe = actor.clone();
        let numeric = finite_differences(analytic.len(), 1e-3, |i, delta| {
            let original = probe.net.params.value[i];
            probe.net.params.value[i] = original + delta;
            let loss = weighted_sum(&weights, probe.forward(&obs));
            probe.net.params.value[i] = original;
            loss
        });
        assert_gradients_close("actor params", &analytic, &numeric, 2e-3);
    }

    #[test]
    fn critic_action_grad_and_param_grads_match_finite_differences() {
        let mut rng = Rng::new(22);
        let (obs_dim, action_dim, batch) = (3, 2, 5);
        let net = Mlp::new(
            obs_dim + action_dim,
            &[8, 8],
            1,
            Activation::Relu,
            Init::TorchDefault,
            &mut rng,
        );
        let mut critic = Critic::new(obs_dim, net);
        let obs = normals(batch * obs_dim, &mut rng);
        let actions = normals(batch * action_dim, &mut rng);
        let grad_q = normals(batch, &mut rng);

        critic.forward(&obs, &actions);
        let action_grad = critic.action_grad(&grad_q).to_vec();
        assert!(critic.net.params.grad.iter().all(|&g| g == 0.0));
        let mut shifted = actions.clone();
        let mut probe = critic.clone();
        let numeric = finite_differences(actions.len(), 1e-3, |i, delta| {
            shifted[i] = actions[i] + delta;
            let loss = weighted_sum(&grad_q, probe.forward(&obs, &shifted));
            shifted[i] = actions[i];
            loss
        });
        assert_gradients_close("dQ/da", &action_grad, &numeric, 2e-3);

        critic.backward(&grad_q);
        let numeric = finite_differences(critic.net.n_params(), 1e-3, |i, delta| {
            let original = probe.net.params.value[i];
            probe.net.params.value[i] = original + delta;
            let loss = weighted_sum(&grad_q, probe.forward(&obs, &actions));
            probe.net.params.value[i] = original;
            loss
        });
        assert_gradients_close("critic params", &critic.net.params.grad, &numeric, 2e-3);
    }
}
