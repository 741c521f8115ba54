//! The multi-layer perceptron every agent is built from: SB3's `create_mlp(input_dim,
//! output_dim, net_arch, activation_fn)` — dense layers with an activation after each hidden
//! layer and a linear output — with an explicit backward pass instead of autograd.
//!
//! `forward` caches each layer's output; `backward` walks the layers in reverse over that
//! cache. Weights are `[out, in]` row-major as in `torch.nn.Linear`, so a layer computes
//! `y = x·Wᵀ + b`; the three products per layer go through [`super::gemm`].

use std::ops::Range;

use tars_envs::Rng;

use super::activation::{
    Activation, accumulate_column_sums, activation_backward, add_bias_and_activate,
};
use super::gemm;
use super::init::Init;
use super::params::Params;

/// Where one tensor of an [`Mlp`] sits in its flat parameter vector, for checkpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedTensor {
    /// `"{prefix}.{idx}.weight"` or `"…bias"`, with `idx` the layer's index in the
    /// equivalent `nn.Sequential` (activations included: 0, 2, 4, …).
    pub name: String,
    /// `[out, in]` for weights, `[out]` for biases.
    pub shape: Vec<usize>,
    /// The tensor's elements in [`Mlp::params`]`.value`, row-major.
    pub range: Range<usize>,
}

/// A dense network `in_dim → net_arch… → out_dim` with its parameters and workspaces.
///
/// Cloning gives an independent copy (for target networks); workspaces grow to the largest
/// batch seen and are then reused, so steady-state calls do not allocate.
#[derive(Debug, Clone)]
pub struct Mlp {
    /// All weights and biases, layer by layer, each layer's weight then bias (the order of
    /// `module.parameters()` in PyTorch).
    pub params: Params,
    /// Layer widths: `[in_dim, net_arch…, out_dim]`.
    dims: Vec<usize>,
    activation: Activation,
    /// Offset of each layer's weight in `params`; its bias follows the weight.
    offsets: Vec<usize>,
    /// Batch size of the last forward pass.
    batch: usize,
    /// `outputs[0]` is a copy of the input; `outputs[l + 1]` is layer `l`'s output, after the
    /// activation for hidden layers.
    outputs: Vec<Vec<f32>>,
    /// `deltas[l]` (for `l ≥ 1`) is the loss gradient with respect to layer `l - 1`'s
    /// pre-activation; `deltas[0]` is the gradient with respect to the input.
    deltas: Vec<Vec<f32>>,
}

impl Mlp {
    /// Builds `in_dim → net_arch[0] → … → out_dim` and initialises it with `init`.
    pub fn new(
        in_dim: usize,
        net_arch: &[usize],
        out_dim: usize,
        activation: Activation,
        init: Init,
        rng: &mut Rng,
    ) -> Mlp {
        let dims: Vec<usize> = std::iter::once(in_dim)
            .chain(net_arch.iter().copied())
            .chain([out_dim])
            .collect();
        assert!(
            dims.iter().all(|&d| d > 0),
            "every layer needs at least one unit: {dims:?}"
        );
        let mut offsets = Vec::with_capacity(dims.len() - 1);
        let mut n_params = 0;
        for pair in dims.windows(2) {
            offsets.push(n_params);
            n_params += pair[1] * pair[0] + pair[1];
        }
        let mut mlp = Mlp {
            params: Params::zeros(n_params),
            outputs: vec![Vec::new(); dims.len()],
            deltas: vec![Vec::new(); dims.len() - 1],
            dims,
            activation,
            offsets,
            batch: 0,
        };
        for layer_idx in 0..mlp.n_layers() {
            let (fan_in, fan_out) = (mlp.dims[layer_idx], mlp.dims[layer_idx + 1]);
            let (weight, bias) = mlp.layer_ranges(layer_idx);
            let is_output = layer_idx + 1 == mlp.n_layers();
            let layer = &mut mlp.params.value[weight.start..bias.end];
            let (weight, bias) = layer.split_at_mut(weight.len());
            init.fill_layer(weight, bias, fan_in, fan_out, is_output, rng);
        }
        mlp
    }

    pub fn in_dim(&self) -> usize {
        self.dims[0]
    }

    pub fn out_dim(&self) -> usize {
        self.dims[self.dims.len() - 1]
    }

    pub fn n_params(&self) -> usize {
        self.params.len()
    }

    pub fn activation(&self) -> Activation {
        self.activation
    }

    /// Layer widths, `[in_dim, net_arch…, out_dim]`.
    pub fn dims(&self) -> &[usize] {
        &self.dims
    }

    /// Batch size of the last forward pass.
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// Runs `input` (`[batch, in_dim]`, row-major) through the network, caches what the
    /// backward pass needs, and returns the output `[batch, out_dim]`.
    pub fn forward(&mut self, input: &[f32]) -> &[f32] {
        let in_dim = self.in_dim();
        assert_eq!(
            input.len() % in_dim,
            0,
            "input length {} is not a multiple of in_dim {in_dim}",
            input.len()
        );
        let batch = input.len() / in_dim;
        self.reserve(batch);
        self.batch = batch;
        self.outputs[0][..input.len()].copy_from_slice(input);
        let n_layers = self.n_layers();
        for layer_idx in 0..n_layers {
            let (fan_in, fan_out) = (self.dims[layer_idx], self.dims[layer_idx + 1]);
            let (weight, bias) = self.layer_ranges(layer_idx);
            let (before, after) = self.outputs.split_at_mut(layer_idx + 1);
            let x = &before[layer_idx][..batch * fan_in];
            let y = &mut after[0][..batch * fan_out];
            gemm::x_wt(x, &self.params.value[weight], y, batch, fan_in, fan_out);
            let activation = if layer_idx + 1 < n_layers {
                Some(self.activation)
            } else {
                None
            };
            add_bias_and_activate(y, &self.params.value[bias], activation);
        }
        self.output()
    }

    /// The output of the last forward pass, `[batch, out_dim]`.
    pub fn output(&self) -> &[f32] {
        &self.outputs[self.dims.len() - 1][..self.batch * self.out_dim()]
    }

    /// The input of the output layer in the last forward pass, `[batch, dims[len - 2]]`: the
    /// last hidden layer after its activation (the network's input when it has none). SB3
    /// calls it `latent_pi`; gSDE scales its exploration noise by it.
    pub fn last_hidden(&self) -> &[f32] {
        let layer = self.dims.len() - 2;
        &self.outputs[layer][..self.batch * self.dims[layer]]
    }

    /// Backpropagates `grad_output` (∂loss/∂output, `[batch, out_dim]`) through the last
    /// forward pass and accumulates ∂loss/∂params into `params.grad`.
    pub fn backward(&mut self, grad_output: &[f32]) {
        self.backward_impl(grad_output, true, false);
    }

    /// Like [`Mlp::backward`], and also returns ∂loss/∂input (`[batch, in_dim]`).
    pub fn backward_with_input_grad(&mut self, grad_output: &[f32]) -> &[f32] {
        self.backward_impl(grad_output, true, true);
        &self.deltas[0][..self.batch * self.in_dim()]
    }

    /// Returns ∂loss/∂input (`[batch, in_dim]`) without touching `params.grad`: what DDPG's
    /// actor loss needs from the critic.
    pub fn input_grad(&mut self, grad_output: &[f32]) -> &[f32] {
        self.backward_impl(grad_output, false, true);
        &self.deltas[0][..self.batch * self.in_dim()]
    }

    /// Where each weight and bias sits in `params.value`, named `"{prefix}.{idx}.weight"` /
    /// `"{prefix}.{idx}.bias"` with `nn.Sequential` indices (0, 2, 4, …).
    pub fn named_tensors(&self, prefix: &str) -> Vec<NamedTensor> {
        let mut tensors = Vec::with_capacity(2 * self.n_layers());
        for layer_idx in 0..self.n_layers() {
            let (fan_in, fan_out) = (self.dims[layer_idx], self.dims[layer_idx + 1]);
            let (weight, bias) = self.layer_ranges(layer_idx);
            let sequential_idx = 2 * layer_idx;
            tensors.push(NamedTensor {
                name: format!("{prefix}.{sequential_idx}.weight"),
                shape: vec![fan_out, fan_in],
                range: weight,
            });
            tensors.push(NamedTensor {
                name: format!("{prefix}.{sequential_idx}.bias"),
                shape: vec![fan_out],
                range: bias,
            });
        }
        tensors
    }

    fn n_layers(&self) -> usize {
        self.dims.len() - 1
    }

    fn layer_ranges(&self, layer_idx: usize) -> (Range<usize>, Range<usize>) {
        let (fan_in, fan_out) = (self.dims[layer_idx], self.dims[layer_idx + 1]);
        let weight_start = self.offsets[layer_idx];
        let bias_start = weight_start + fan_out * fan_in;
        (weight_start..bias_start, bias_start..bias_start + fan_out)
    }

    /// Grows the workspaces to hold `batch` rows; never shrinks them.
    fn reserve(&mut self, batch: usize) {
        for (buffer, &width) in self.outputs.iter_mut().zip(&self.dims) {
            if buffer.len() < batch * width {
                buffer.resize(batch * width, 0.0);
            }
        }
        for (buffer, &width) in self.deltas.iter_mut().zip(&self.dims) {
            if buffer.len() < batch * width {
                buffer.resize(batch * width, 0.0);
            }
        }
    }

    fn backward_impl(&mut self, grad_output: &[f32], param_grads: bool, input_grad: bool) {
        let batch = self.batch;
        let n_layers = self.n_layers();
        assert_eq!(
            grad_output.len(),
            batch * self.out_dim(),
            "grad_output does not match the last forward's output"
        );
        if param_grads {
            let (_, bias) = self.layer_ranges(n_layers - 1);
            accumulate_column_sums(grad_output, &mut self.params.grad[bias]);
        }
        for layer_idx in (0..n_layers).rev() {
            let (fan_in, fan_out) = (self.dims[layer_idx], self.dims[layer_idx + 1]);
            let (weight, _) = self.layer_ranges(layer_idx);
            let previous_bias = layer_idx
                .checked_sub(1)
                .map(|previous| self.layer_ranges(previous).1);
            let (lower, upper) = self.deltas.split_at_mut(layer_idx + 1);
            // ∂loss/∂(this layer's pre-activation).
            let delta = if layer_idx + 1 == n_layers {
                grad_output
            } else {
                &upper[0][..batch * fan_out]
            };
            let x = &self.outputs[layer_idx][..batch * fan_in];
            if param_grads {
                gemm::accumulate_dyt_x(
                    delta,
                    x,
                    &mut self.params.grad[weight.clone()],
                    batch,
                    fan_out,
                    fan_in,
                );
            }
            if layer_idx == 0 && !input_grad {
                break;
            }
            let grad_x = &mut lower[layer_idx][..batch * fan_in];
            gemm::dy_w(
                delta,
                &self.params.value[weight],
                grad_x,
                batch,
                fan_out,
                fan_in,
            );
            if let Some(previous_bias) = previous_bias {
                // Through the previous layer's activation, whose output `x` is; its bias
                // gradient is the column sum of the result.
                let bias_grad = param_grads.then(|| &mut self.params.grad[previous_bias]);
                activation_backward(grad_x, x, self.activation, bias_grad);
            }
        }
    }
}

#[cfg(test)]
mod tests;
