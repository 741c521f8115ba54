//! Benchmarks of the NN engine at SB3's default sizes.
//!
//! - `ppo_minibatch_update`: one PPO gradient step as SB3's `PPO.train` takes it for a
//!   CartPole-sized problem — policy 4→64→64→2 and value 4→64→64→1 tanh nets, minibatch 256:
//!   forward both, the clipped-surrogate + entropy + value-MSE loss gradients, backward both,
//!   `clip_grad_norm_(0.5)`, one Adam step. Budget: 0.6 ms.
//! - `mlp_forward_backward`: forward and backward of the policy net alone, for reference.
//! - `sgemm_floor`: only the 16 `sgemm` calls of a PPO minibatch update, same shapes: the
//!   floor any engine built on the `gemm` crate pays.
//! - `dqn_gradient_step`: one gradient step of SB3's `DQN.train` at the RL Zoo's CartPole
//!   size — 4→256→256→2 ReLU Q-network and its target, batch 64: target forward on the next
//!   observations, online forward, Huber TD loss, backward, `clip_grad_norm_(10)`, Adam. The
//!   Zoo's 5e4-step budget takes 24,704 of them.
//!   `dqn_gradient_step_1_thread` runs it on a one-thread rayon pool,
//!   `dqn_gradient_step_two_cores` on `nn::pair` as DQN's training phases do.
//! - `adam_step_dqn`: Adam alone on the Q-network's parameters; `adam_step_dqn_dead` after a
//!   third of its gradients stayed zero (dead ReLUs), whose moments would be subnormal.
//! - `dqn_act`: the greedy action for one observation, taken at almost every environment step.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use tars_agents::nn::pair::{self, enable, on_two_cores, phases_on_two_cores};
use tars_agents::nn::{
    Activation, Adam, AdamConfig, Categorical, Init, Mlp, Params, TdLoss, argmax_rows,
    clip_grad_norm, max_rows, td_loss_backward,
};
use tars_envs::Rng;

const OBS_DIM: usize = 4;
const N_ACTIONS: usize = 2;
const BATCH: usize = 256;

/// One minibatch of rollout data.
struct Minibatch {
    obs: Vec<f32>,
    actions: Vec<usize>,
    old_log_prob: Vec<f32>,
    advantages: Vec<f32>,
    returns: Vec<f32>,
}

/// The networks, optimiser and reused buffers of a PPO learner.
struct Learner {
    policy: Mlp,
    value: Mlp,
    dist: Categorical,
    optimizer: Adam,
    log_prob: Vec<f32>,
    entropy: Vec<f32>,
    d_log_prob: Vec<f32>,
    grad_logits: Vec<f32>,
    grad_values: Vec<f32>,
}

impl Learner {
    fn new(rng: &mut Rng) -> Learner {
        Learner {
            policy: Mlp::new(
                OBS_DIM,
                &[64, 64],
                N_ACTIONS,
                Activation::Tanh,
                Init::ORTHO_POLICY,
                rng,
            ),
            value: Mlp::new(
                OBS_DIM,
                &[64, 64],
                1,
                Activation::Tanh,
                Init::ORTHO_VALUE,
                rng,
            ),
            dist: Categorical::new(N_ACTIONS),
            optimizer: Adam::new(AdamConfig::sb3_actor_critic(3e-4)),
            log_prob: vec![0.0; BATCH],
            entropy: vec![0.0; BATCH],
            d_log_prob: vec![0.0; BATCH],
            grad_logits: vec![0.0; BATCH * N_ACTIONS],
            grad_values: vec![0.0; BATCH],
        }
    }

    /// One step of SB3's `PPO.train` inner loop; returns the loss.
    fn update(&mut self, minibatch: &Minibatch) -> f32 {
        let (clip_range, ent_coef, vf_coef, max_grad_norm) = (0.2f32, 0.01f32, 0.5f32, 0.5f32);
        let scale = 1.0 / BATCH as f32;
        self.policy.params.zero_grad();
        self.value.params.zero_grad();

        // Policy: ratio, clipped surrogate and entropy, with normalised advantages.
        let logits = self.policy.forward(&minibatch.obs);
        self.dist.log_prob_entropy(
            logits,
            &minibatch.actions,
            &mut self.log_prob,
            &mut self.entropy,
        );
        let adv_mean = minibatch.advantages.iter().sum::<f32>() * scale;
        let adv_var = minibatch
            .advantages
            .iter()
            .map(|a| (a - adv_mean).powi(2))
            .sum::<f32>()
            / (BATCH - 1) as f32;
        let adv_std = adv_var.sqrt();
        let mut policy_loss = 0.0;
        for i in 0..BATCH {
            let advantage = (minibatch.advantages[i] - adv_mean) / (adv_std + 1e-8);
            let ratio = (self.log_prob[i] - minibatch.old_log_prob[i]).exp();
            let clipped = ratio.clamp(1.0 - clip_range, 1.0 + clip_range);
            let (surrogate1, surrogate2) = (advantage * ratio, advantage * clipped);
            policy_loss -= surrogate1.min(surrogate2) * scale;
            let through_ratio = surrogate1 <= surrogate2 || clipped == ratio;
            self.d_log_prob[i] = if through_ratio {
                -advantage * ratio * scale
            } else {
                0.0
            };
        }
        let entropy_loss = -self.entropy.iter().sum::<f32>() * scale;
        self.dist.backward(
            logits,
            &minibatch.actions,
            &self.d_log_prob,
            -ent_coef * scale,
            &mut self.grad_logits,
        );
        self.policy.backward(&self.grad_logits);

        // Value: MSE to the returns.
        let values = self.value.forward(&minibatch.obs);
        let mut value_loss = 0.0;
        for ((g, &v), &ret) in self
            .grad_values
            .iter_mut()
            .zip(values)
            .zip(&minibatch.returns)
        {
            value_loss += (v - ret).powi(2) * scale;
            *g = vf_coef * 2.0 * (v - ret) * scale;
        }
        self.value.backward(&self.grad_values);

        let mut params = [&mut self.policy.params, &mut self.value.params];
        clip_grad_norm(&mut params, max_grad_norm);
        self.optimizer.step(&mut params);
        policy_loss + ent_coef * entropy_loss + vf_coef * value_loss
    }
}

fn minibatch(rng: &mut Rng) -> Minibatch {
    let mut normal = || rng.normal() as f32;
    let obs = (0..BATCH * OBS_DIM).map(|_| normal()).collect();
    let old_log_prob = (0..BATCH)
        .map(|_| -std::f32::consts::LN_2 + 0.1 * normal())
        .collect();
    let advantages = (0..BATCH).map(|_| normal()).collect();
    let returns = (0..BATCH).map(|_| 10.0 * normal()).collect();
    let actions = (0..BATCH)
        .map(|_| rng.below(N_ACTIONS as u64) as usize)
        .collect();
    Minibatch {
        obs,
        actions,
        old_log_prob,
        advantages,
        returns,
    }
}

fn bench(c: &mut Criterion) {
    let mut rng = Rng::new(0);
    let data = minibatch(&mut rng);
    let mut learner = Learner::new(&mut rng);
    c.bench_function("ppo_minibatch_update", |b| {
        b.iter(|| black_box(learner.update(black_box(&data))))
    });

    let mut net = Mlp::new(
        OBS_DIM,
        &[64, 64],
        N_ACTIONS,
        Activation::Tanh,
        Init::ORTHO_POLICY,
        &mut rng,
    );
    let grad_output: Vec<f32> = (0..BATCH * N_ACTIONS)
        .map(|_| rng.normal() as f32)
        .collect();
    c.bench_function("mlp_forward_backward", |b| {
        b.iter(|| {
            net.forward(black_box(&data.obs));
            net.backward(black_box(&grad_output));
        })
    });
}

/// The matrix products of one PPO update: per net, 3 forward, 3 weight-gradient and 2
/// input-gradient products (the first layer's input gradient is not needed).
fn sgemm_floor(c: &mut Criterion) {
    let dims = [[OBS_DIM, 64, 64, N_ACTIONS], [OBS_DIM, 64, 64, 1]];
    let operand = vec![0.1f32; BATCH * 64];
    let mut out = vec![0.0f32; BATCH * 64];
    let mut grad = vec![0.0f32; 64 * 64];
    c.bench_function("sgemm_floor", |b| {
        b.iter(|| {
            for net in &dims {
                for l in 0..3 {
                    let (fan_in, fan_out) = (net[l], net[l + 1]);
                    gemm(
                        &operand,
                        (BATCH, fan_in, fan_out),
                        (fan_in, 1),
                        (1, fan_in),
                        &mut out,
                        0.0,
                    );
                    gemm(
                        &operand,
                        (fan_out, BATCH, fan_in),
                        (1, fan_out),
                        (fan_in, 1),
                        &mut grad,
                        1.0,
                    );
                    if l > 0 {
                        gemm(
                            &operand,
                            (BATCH, fan_out, fan_in),
                            (fan_out, 1),
                            (fan_in, 1),
                            &mut out,
                            0.0,
                        );
                    }
                }
            }
            black_box(&out);
        })
    });
}

/// `c[m, n] = operand · operand + beta · c` with the given (row, column) strides.
fn gemm(
    operand: &[f32],
    (m, k, n): (usize, usize, usize),
    a: (usize, usize),
    b: (usize, usize),
    c: &mut [f32],
    beta: f32,
) {
    assert!(operand.len() >= BATCH * 64 && c.len() >= m * n && m * k <= operand.len());
    // SAFETY: every shape used here fits in the 256 x 64 operand and in `c`.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            beta != 0.0,
            operand.as_ptr(),
            a.1 as isize,
            a.0 as isize,
            operand.as_ptr(),
            b.1 as isize,
            b.0 as isize,
            beta,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        )
    }
}

/// The Q-network, its target and the reused buffers of a DQN learner at the Zoo's CartPole
/// size.
struct DqnLearner {
    q_net: Mlp,
    q_net_target: Mlp,
    optimizer: Adam,
    next_q: Vec<f32>,
    targets: Vec<f32>,
    grad_q: Vec<f32>,
}

const DQN_BATCH: usize = 64;

impl DqnLearner {
    fn new(rng: &mut Rng) -> DqnLearner {
        let q_net = Mlp::new(
            OBS_DIM,
            &[256, 256],
            N_ACTIONS,
            Activation::Relu,
            Init::TorchDefault,
            rng,
        );
        let mut optimizer = Adam::new(AdamConfig::default());
        optimizer.set_lr(2.3e-3);
        DqnLearner {
            q_net_target: q_net.clone(),
            q_net,
            optimizer,
            next_q: vec![0.0; DQN_BATCH],
            targets: vec![0.0; DQN_BATCH],
            grad_q: vec![0.0; DQN_BATCH * N_ACTIONS],
        }
    }

    /// One step of SB3's `DQN.train` inner loop on a replay sample; returns the loss.
    fn update(&mut self, sample: &Minibatch, next_obs: &[f32], rewards: &[f32]) -> f32 {
        let next_q_values = self.q_net_target.forward(next_obs);
        max_rows(next_q_values, N_ACTIONS, &mut self.next_q);
        for ((target, &reward), &next_q) in self.targets.iter_mut().zip(rewards).zip(&self.next_q) {
            *target = reward + 0.99 * next_q;
        }
        let q_values = self.q_net.forward(&sample.obs[..DQN_BATCH * OBS_DIM]);
        let loss = td_loss_backward(
            q_values,
            N_ACTIONS,
            &sample.actions[..DQN_BATCH],
            &self.targets,
            TdLoss::Huber,
            &mut self.grad_q,
        );
        self.q_net.params.zero_grad();
        self.q_net.backward(&self.grad_q);
        clip_grad_norm(&mut [&mut self.q_net.params], 10.0);
        self.optimizer.step(&mut [&mut self.q_net.params]);
        loss
    }
}

fn dqn(c: &mut Criterion) {
    let mut rng = Rng::new(1);
    let sample = minibatch(&mut rng);
    let next_obs: Vec<f32> = (0..DQN_BATCH * OBS_DIM)
        .map(|_| rng.normal() as f32)
        .collect();
    let rewards = vec![1.0f32; DQN_BATCH];
    let mut learner = DqnLearner::new(&mut rng);
    c.bench_function("dqn_gradient_step", |b| {
        b.iter(|| black_box(learner.update(&sample, black_box(&next_obs), &rewards)))
    });
    // The same on a one-thread pool: the hidden layer's products are not split.
    let one_thread = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("a one-thread pool");
    c.bench_function("dqn_gradient_step_1_thread", |b| {
        one_thread.install(|| {
            b.iter(|| black_box(learner.update(&sample, black_box(&next_obs), &rewards)))
        })
    });
    // The same on `nn::pair`, as DQN's training phases run: the hidden layer's products and
    // Adam split in halves over the two cores. The pair is opt-in per process, as in
    // `tars bench train`; the assert checks that the phase really ran on it.
    enable();
    c.bench_function("dqn_gradient_step_two_cores", |b| {
        b.iter_custom(|iters| {
            let (learner, sample, next_obs, rewards) = (&mut learner, &sample, &next_obs, &rewards);
            let phases_before = phases_on_two_cores();
            let elapsed = on_two_cores(move || {
                let start = std::time::Instant::now();
                for _ in 0..iters {
                    black_box(learner.update(sample, black_box(next_obs), rewards));
                }
                start.elapsed()
            });
            assert!(
                !pair::available() || phases_on_two_cores() > phases_before,
                "dqn_gradient_step_two_cores ran on one core"
            );
            elapsed
        })
    });
    let mut action = [0usize];
    c.bench_function("dqn_act", |b| {
        b.iter(|| {
            let q_values = learner.q_net.forward(black_box(&next_obs[..OBS_DIM]));
            argmax_rows(q_values, N_ACTIONS, &mut action);
            black_box(action[0])
        })
    });
}

/// Adam alone on the DQN Q-network's 67,586 parameters, with gradients of a realistic size;
/// then with every third gradient zero for 2,000 steps first, as a dead ReLU's are, which
/// drives those weights' first moments below f32's normal range.
fn adam(c: &mut Criterion) {
    let mut rng = Rng::new(2);
    let n = 4 * 256 + 256 + 256 * 256 + 256 + 256 * 2 + 2;
    let weights: Vec<f32> = (0..n).map(|_| rng.normal() as f32 * 0.05).collect();
    let mut grads: Vec<f32> = (0..n).map(|_| rng.normal() as f32 * 1e-3).collect();
    let step = |params: &mut Params, optimizer: &mut Adam, grads: &[f32]| {
        params.grad.copy_from_slice(grads);
        optimizer.step(&mut [params]);
    };
    let (mut params, mut optimizer) = (
        Params::from_value(weights),
        Adam::new(AdamConfig::default()),
    );
    c.bench_function("adam_step_dqn", |b| {
        b.iter(|| step(&mut params, &mut optimizer, &grads))
    });
    grads.iter_mut().step_by(3).for_each(|g| *g = 0.0);
    for _ in 0..2_000 {
        step(&mut params, &mut optimizer, &grads);
    }
    c.bench_function("adam_step_dqn_dead", |b| {
        b.iter(|| step(&mut params, &mut optimizer, &grads))
    });
}

criterion_group!(benches, bench, sgemm_floor, dqn, adam);
criterion_main!(benches);
