//! A small, fast MLP engine for on-CPU reinforcement learning at SB3 scale.
//!
//! General tensor frameworks spend most of their time on dispatch at these sizes (a 64-64
//! MLP at batch 256), so this engine does only what the algorithms need:
//!
//! - [`Mlp`]: dense layers built from SB3's `net_arch`, with an explicit backward pass over
//!   activations cached by the last forward (no autograd). Matrix products go through the
//!   `gemm` crate's sgemm (split over rayon's pool when large, with bit-identical results);
//!   workspaces are reused, so a training step does not allocate.
//! - [`Params`]: every network keeps its parameters in one flat `Vec<f32>` with a matching
//!   gradient vector, which makes optimisers, [`clip_grad_norm`], [`Params::polyak_update`]
//!   and checkpoint export ([`Mlp::named_tensors`]) simple loops.
//! - Heads: [`Categorical`], [`DiagGaussian`], gSDE's [`StateDependentNoise`], Q-value
//!   losses ([`td_loss_backward`]), the tanh-squashed [`DeterministicActor`] and the Q(s, a) [`Critic`] that returns ∂Q/∂a.
//! - [`pair`]: a training phase on two cores, its large products and Adam split in halves
//!   (bit-identical to one core).
//! - Optimisers as in PyTorch: [`Adam`] and [`RmsProp`].
//! - Initialisation as in SB3: orthogonal ([`Init::Orthogonal`]) for actor-critic policies,
//!   PyTorch's default ([`Init::TorchDefault`]) for DQN and DDPG.
//!
//! Conventions: f32 everywhere; buffers are row-major `[batch, features]`; weights are stored
//! `[out, in]` like `torch.nn.Linear`; `backward` *accumulates* into gradients, like
//! `loss.backward()`, so call [`Params::zero_grad`] before each step.

mod activation;
mod categorical;
mod deterministic;
mod gaussian;
mod gemm;
mod init;
mod mlp;
mod optim;
pub mod pair;
mod params;
mod q_values;
mod sde;

#[cfg(test)]
mod testutil;

pub use activation::{Activation, tanh, tanh_in_place};
pub use categorical::Categorical;
pub use deterministic::{ActionBounds, Critic, DeterministicActor};
pub use gaussian::DiagGaussian;
pub use init::{Init, kaiming_uniform, orthogonal};
pub use mlp::{Mlp, NamedTensor};
pub use optim::{Adam, AdamConfig, RmsProp, RmsPropConfig};
pub use params::{Params, clip_grad_norm};
pub use q_values::{TdLoss, argmax_rows, max_rows, td_loss_backward};
pub use sde::StateDependentNoise;
