//! PyTorch's optimisers, step for step: `torch.optim.Adam` (no AMSGrad, no weight decay) and
//! `torch.optim.RMSprop` (not centred, no momentum), as their single-tensor CPU paths
//! compute them (`torch/optim/adam.py: _single_tensor_adam`,
//! `torch/optim/rmsprop.py: _single_tensor_rmsprop`).
//!
//! An optimiser owns state for an ordered list of [`Params`] and must always be stepped with
//! the same list (one optimiser over several networks behaves exactly like
//! `Adam(policy.parameters())` over SB3's combined policy). The state is allocated on the
//! first step, as in PyTorch. The learning rate can change between steps
//! (SB3's `update_learning_rate` for schedules).

use super::activation::multiversion;
use super::params::Params;

/// Parameter tensors from which [`Adam::step`] updates two halves on rayon's pool, measured
/// together with the products' threshold ([`super::gemm::parallel_min_macs`]): where the
/// products run AVX-512 kernels, DDPG's 400×300 weights (120k) but not DQN's 256×256 (65k),
/// whose split cost DQN CartPole 1 s; with AVX2 kernels, the 256-wide ones too. Never PPO's
/// 64-64 networks, where the hand-off would cost more than the update.
fn parallel_min_params() -> usize {
    static MIN: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *MIN.get_or_init(|| {
        if super::gemm::avx512_kernels() {
            100_000
        } else {
            1 << 15
        }
    })
}

/// Parameter tensors from which [`Adam::step`] splits its update on the
/// [`pair`](super::pair), where the second core is awake and a hand-off costs about a
/// microsecond: DQN's 256-256 Q-network (68k), not PPO's 64-64 networks (4–5k).
const PAIR_MIN_PARAMS: usize = 16_384;

/// `torch.optim.Adam` hyperparameters. `Default` is PyTorch's (lr 1e-3, betas (0.9, 0.999),
/// eps 1e-8), which SB3's DQN and DDPG keep.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdamConfig {
    pub lr: f32,
    pub betas: (f32, f32),
    pub eps: f32,
}

impl Default for AdamConfig {
    fn default() -> AdamConfig {
        AdamConfig {
            lr: 1e-3,
            betas: (0.9, 0.999),
            eps: 1e-8,
        }
    }
}

impl AdamConfig {
    /// What SB3's `ActorCriticPolicy` (PPO, and A2C with `use_rms_prop=False`) builds when
    /// `optimizer_kwargs` is not given: Adam with `eps=1e-5` "to avoid NaN".
    pub fn sb3_actor_critic(lr: f32) -> AdamConfig {
        AdamConfig {
            lr,
            eps: 1e-5,
            ..AdamConfig::default()
        }
    }
}

/// `torch.optim.Adam` over an ordered list of parameter sets.
#[derive(Debug, Clone)]
pub struct Adam {
    pub config: AdamConfig,
    n_steps: u64,
    exp_avg: Vec<f32>,
    exp_avg_sq: Vec<f32>,
}

impl Adam {
    pub fn new(config: AdamConfig) -> Adam {
        Adam {
            config,
            n_steps: 0,
            exp_avg: Vec::new(),
            exp_avg_sq: Vec::new(),
        }
    }

    /// Sets the learning rate for the following steps.
    pub fn set_lr(&mut self, lr: f32) {
        self.config.lr = lr;
    }

    /// Number of steps taken so far (PyTorch's `state["step"]`).
    pub fn n_steps(&self) -> u64 {
        self.n_steps
    }

    /// One Adam step on `params` using their current gradients.
    pub fn step(&mut self, params: &mut [&mut Params]) {
        allocate_state(params, &mut [&mut self.exp_avg, &mut self.exp_avg_sq]);
        self.n_steps += 1;
        let AdamConfig {
            lr,
            betas: (beta1, beta2),
            eps,
        } = self.config;
        // PyTorch computes the bias corrections as Python floats (f64).
        let step = self.n_steps as i32;
        let bias_correction1 = 1.0 - f64::from(beta1).powi(step);
        let bias_correction2 = 1.0 - f64::from(beta2).powi(step);
        let step_size = (f64::from(lr) / bias_correction1) as f32;
        let bias_correction2_sqrt = bias_correction2.sqrt() as f32;
        let coefficients = AdamCoefficients {
            beta1,
            beta2,
            eps,
            step_size,
            bias_correction2_sqrt,
        };
        let mut offset = 0;
        for p in params.iter_mut() {
            let range = offset..offset + p.len();
            let (exp_avg, exp_avg_sq) = (
                &mut self.exp_avg[range.clone()],
                &mut self.exp_avg_sq[range],
            );
            let (value, grad) = (&mut p.value[..], &p.grad[..]);
            let split_min = match super::pair::active() {
                true => PAIR_MIN_PARAMS,
                false => parallel_min_params(),
            };
            if value.len() >= split_min && rayon::current_num_threads() > 1 {
                // Element-wise, so splitting cannot change a single bit.
                let mid = value.len() / 2;
                let (value_lo, value_hi) = value.split_at_mut(mid);
                let (grad_lo, grad_hi) = grad.split_at(mid);
                let (exp_avg_lo, exp_avg_hi) = exp_avg.split_at_mut(mid);
                let (exp_avg_sq_lo, exp_avg_sq_hi) = exp_avg_sq.split_at_mut(mid);
                rayon::join(
                    || adam_update(value_lo, grad_lo, exp_avg_lo, exp_avg_sq_lo, coefficients),
                    || adam_update(value_hi, grad_hi, exp_avg_hi, exp_avg_sq_hi, coefficients),
                );
            } else {
                adam_update(value, grad, exp_avg, exp_avg_sq, coefficients);
            }
            offset += p.len();
        }
    }
}

/// The per-step scalars of Adam's element-wise update.
#[derive(Debug, Clone, Copy)]
struct AdamCoefficients {
    beta1: f32,
    beta2: f32,
    eps: f32,
    step_size: f32,
    bias_correction2_sqrt: f32,
}

multiversion! {
    /// Adam's element-wise update: `exp_avg.lerp_(grad, 1 - beta1)`,
    /// `exp_avg_sq.mul_(beta2).addcmul_(grad, grad, 1 - beta2)`, then
    /// `param.addcdiv_(exp_avg, exp_avg_sq.sqrt() / bias_correction2_sqrt + eps, -step_size)`.
    ///
    /// The moments are read with subnormals as zero ([`flush_subnormal`]). A weight whose
    /// gradient stays zero (a dead ReLU's) otherwise keeps `exp_avg` at a subnormal forever
    /// (`m - 0.1·m` rounds back to `m` once `m` is a few multiples of 2⁻¹⁴⁹), and arithmetic
    /// on subnormals is slow: Adam on DQN's Q-network took 102 µs instead of 45 µs with a
    /// third of its gradients zero (`cargo bench -p tars-agents --bench nn -- adam`).
    /// The weights do not change: a subnormal `exp_avg` moves a weight by less than 10⁻²⁸
    /// (any learning rate ≤ 1), under half an ulp of any weight above 10⁻²¹, and a subnormal
    /// `exp_avg_sq` is lost in `+ eps` (≥ 10⁻⁸) when `denom` is formed.
    fn adam_update(value: &mut [f32], grad: &[f32], exp_avg: &mut [f32], exp_avg_sq: &mut [f32], c: AdamCoefficients) {
        let state = exp_avg.iter_mut().zip(exp_avg_sq.iter_mut());
        for ((value, &grad), (m, v)) in value.iter_mut().zip(grad).zip(state) {
            let m_prev = flush_subnormal(*m);
            *m = m_prev + (1.0 - c.beta1) * (grad - m_prev);
            *v = flush_subnormal(*v) * c.beta2 + (1.0 - c.beta2) * grad * grad;
            let denom = v.sqrt() / c.bias_correction2_sqrt + c.eps;
            *value -= c.step_size * (*m / denom);
        }
    }
}

/// `x`, or zero where `x` is subnormal (what `DAZ` does in hardware, here per value and
/// portable); compiles to a compare and a blend in the vectorised loops.
#[inline(always)]
fn flush_subnormal(x: f32) -> f32 {
    if x.abs() < f32::MIN_POSITIVE { 0.0 } else { x }
}

/// `torch.optim.RMSprop` hyperparameters. `Default` is PyTorch's (lr 1e-2, alpha 0.99,
/// eps 1e-8).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RmsPropConfig {
    pub lr: f32,
    pub alpha: f32,
    pub eps: f32,
}

impl Default for RmsPropConfig {
    fn default() -> RmsPropConfig {
        RmsPropConfig {
            lr: 1e-2,
            alpha: 0.99,
            eps: 1e-8,
        }
    }
}

impl RmsPropConfig {
    /// What SB3's A2C builds with `use_rms_prop=True` (its default):
    /// `RMSprop(alpha=0.99, eps=rms_prop_eps=1e-5, weight_decay=0)`.
    pub fn sb3_a2c(lr: f32) -> RmsPropConfig {
        RmsPropConfig {
            lr,
            alpha: 0.99,
            eps: 1e-5,
        }
    }
}

/// `torch.optim.RMSprop` (not centred, no momentum) over an ordered list of parameter sets:
/// `v = alpha·v + (1 - alpha)·g²; p -= lr · g / (√v + eps)`.
#[derive(Debug, Clone)]
pub struct RmsProp {
    pub config: RmsPropConfig,
    n_steps: u64,
    square_avg: Vec<f32>,
}

impl RmsProp {
    pub fn new(config: RmsPropConfig) -> RmsProp {
        RmsProp {
            config,
            n_steps: 0,
            square_avg: Vec::new(),
        }
    }

    /// Sets the learning rate for the following steps.
    pub fn set_lr(&mut self, lr: f32) {
        self.config.lr = lr;
    }

    /// Number of steps taken so far.
    pub fn n_steps(&self) -> u64 {
        self.n_steps
    }

    /// One RMSprop step on `params` using their current gradients.
    pub fn step(&mut self, params: &mut [&mut Params]) {
        allocate_state(params, &mut [&mut self.square_avg]);
        self.n_steps += 1;
        let RmsPropConfig { lr, alpha, eps } = self.config;
        let mut offset = 0;
        for p in params.iter_mut() {
            let square_avg = &mut self.square_avg[offset..offset + p.len()];
            rmsprop_update(&mut p.value, &p.grad, square_avg, lr, alpha, eps);
            offset += p.len();
        }
    }
}

multiversion! {
    /// RMSprop's element-wise update: `square_avg.mul_(alpha).addcmul_(grad, grad, 1 - alpha)`,
    /// then `param.addcdiv_(grad, square_avg.sqrt() + eps, -lr)`.
    fn rmsprop_update(value: &mut [f32], grad: &[f32], square_avg: &mut [f32], lr: f32, alpha: f32, eps: f32) {
        for ((value, &grad), v) in value.iter_mut().zip(grad).zip(square_avg.iter_mut()) {
            *v = *v * alpha + (1.0 - alpha) * grad * grad;
            *value -= lr * (grad / (v.sqrt() + eps));
        }
    }
}

/// Sizes zeroed optimiser state for `params` on the first step; afterwards checks that the
/// optimiser is stepped with parameter sets of the same total size.
fn allocate_state(params: &[&mut Params], state: &mut [&mut Vec<f32>]) {
    let n_params: usize = params.iter().map(|p| p.len()).sum();
    for buffer in state.iter_mut() {
        if buffer.is_empty() {
            buffer.resize(n_params, 0.0);
        }
        assert_eq!(
            buffer.len(),
            n_params,
            "optimizer stepped with a different parameter list"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two one-element parameter sets stepped together with the same two gradient steps.
    /// The expected values come from PyTorch's update formulas evaluated in f64.
    fn run(mut step: impl FnMut(&mut [&mut Params])) -> Vec<[f32; 2]> {
        let mut a = Params::from_value(vec![1.0]);
        let mut b = Params::from_value(vec![-2.0]);
        let mut trajectory = Vec::new();
        for grads in [[0.5, -0.1], [-0.25, 0.3]] {
            a.grad[0] = grads[0];
            b.grad[0] = grads[1];
            step(&mut [&mut a, &mut b]);
            trajectory.push([a.value[0], b.value[0]]);
        }
        trajectory
    }

    fn assert_trajectory(actual: &[[f32; 2]], expected: &[[f64; 2]]) {
        for (a, e) in actual.iter().zip(expected) {
            for (x, y) in a.iter().zip(e) {
                assert!(
                    (f64::from(*x) - y).abs() < 1e-6,
                    "{actual:?} vs {expected:?}"
                );
            }
        }
    }

    #[test]
    fn adam_matches_torch_steps() {
        let mut adam = Adam::new(AdamConfig {
            lr: 0.1,
            ..AdamConfig::default()
        });
        let trajectory = run(|params| adam.step(params));
        // The first step moves each parameter by lr · sign(grad) (bias correction).
        assert_trajectory(
            &trajectory,
            &[
                [0.900000002, -1.90000001],
                [0.8733662987078463, -1.9494189911200654],
            ],
        );
        assert_eq!(adam.n_steps(), 2);
    }

    #[test]
    fn rmsprop_matches_torch_steps_with_sb3_a2c_settings() {
        let mut rmsprop = RmsProp::new(RmsPropConfig::sb3_a2c(0.01));
        let trajectory = run(|params| rmsprop.step(params));
        assert_trajectory(
            &trajectory,
            &[
                [0.9000199960007998, -1.9000999000999002],
                [0.9449132584395343, -1.994985679143196],
            ],
        );
    }

    #[test]
    fn learning_rate_can_change_between_steps() {
        // Adam's first step is lr · sign(grad) whatever the gradient's size.
        let mut adam = Adam::new(AdamConfig::sb3_actor_critic(3e-4));
        assert_eq!(adam.config.eps, 1e-5);
        adam.set_lr(0.5);
        let mut p = Params::from_value(vec![0.0]);
        p.grad[0] = 10.0;
        adam.step(&mut [&mut p]);
        assert!((p.value[0] + 0.5).abs() < 1e-5);
    }

    #[test]
    fn a_dead_weights_first_moment_reaches_zero_not_a_subnormal() {
        let mut adam = Adam::new(AdamConfig::default());
        let mut p = Params::from_value(vec![0.5]);
        p.grad[0] = 1e-3;
        adam.step(&mut [&mut p]);
        // Then its gradient stays zero: exp_avg decays by 0.9 a step, below f32's normal
        // range after ~800 steps, where unflushed it would stop at a subnormal for good.
        p.grad[0] = 0.0;
        for _ in 0..2_000 {
            adam.step(&mut [&mut p]);
        }
        assert_eq!(adam.exp_avg[0], 0.0);
        assert!(
            adam.exp_avg_sq[0].is_normal(),
            "0.999^2000 · 1e-9 is still normal"
        );
    }

    #[test]
    fn adam_gives_the_same_bits_on_one_thread_and_on_two() {
        let n_params = parallel_min_params() + 5;
        let run = |n_threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(n_threads)
                .build()
                .unwrap();
            pool.install(|| {
                let mut adam = Adam::new(AdamConfig::default());
                let mut p = Params::from_value(vec![0.5; n_params]);
                for step in 0..3 {
                    for (idx, g) in p.grad.iter_mut().enumerate() {
                        *g = ((idx * 7 + step) as f32 * 0.37).sin();
                    }
                    adam.step(&mut [&mut p]);
                }
                p.value.iter().map(|v| v.to_bits()).collect::<Vec<u32>>()
            })
        };
        assert!(run(1) == run(2));
    }

    #[test]
    fn defaults_are_pytorchs() {
        assert_eq!(
            AdamConfig::default(),
            AdamConfig {
                lr: 1e-3,
                betas: (0.9, 0.999),
                eps: 1e-8
            }
        );
        assert_eq!(
            RmsPropConfig::default(),
            RmsPropConfig {
                lr: 1e-2,
                alpha: 0.99,
                eps: 1e-8
            }
        );
    }
}
