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
mod tests {
    use super::*;
    use crate::nn::testutil::{assert_gradients_close, finite_differences, normals, weighted_sum};

    /// Checks ∂(c·net(x))/∂params and ∂/∂x against finite differences.
    fn check_backward(activation: Activation, init: Init, seed: u64) {
        let mut rng = Rng::new(seed);
        let (in_dim, batch) = (3, 5);
        let mut mlp = Mlp::new(in_dim, &[7, 6], 2, activation, init, &mut rng);
        // Larger random parameters than the init so every layer matters.
        mlp.params.value = normals(mlp.n_params(), &mut rng)
            .iter()
            .map(|v| 0.5 * v)
            .collect();
        let input = normals(batch * in_dim, &mut rng);
        let weights = normals(batch * mlp.out_dim(), &mut rng);

        mlp.forward(&input);
        mlp.params.zero_grad();
        let input_grad = mlp.backward_with_input_grad(&weights).to_vec();
        let param_grad = mlp.params.grad.clone();

        let eps = 1e-3;
        let mut probe = mlp.clone();
        let numeric = finite_differences(mlp.n_params(), eps, |i, delta| {
            let original = probe.params.value[i];
            probe.params.value[i] = original + delta;
            let loss = weighted_sum(&weights, probe.forward(&input));
            probe.params.value[i] = original;
            loss
        });
        assert_gradients_close("params", &param_grad, &numeric, 2e-3);

        let mut shifted = input.clone();
        let numeric = finite_differences(input.len(), eps, |i, delta| {
            shifted[i] = input[i] + delta;
            let loss = weighted_sum(&weights, probe.forward(&shifted));
            shifted[i] = input[i];
            loss
        });
        assert_gradients_close("input", &input_grad, &numeric, 2e-3);

        // The input-only pass agrees and leaves parameter gradients alone.
        mlp.forward(&input);
        assert_eq!(mlp.input_grad(&weights), &input_grad[..]);
        assert_eq!(mlp.params.grad, param_grad);
    }

    #[test]
    fn tanh_backward_matches_finite_differences() {
        check_backward(Activation::Tanh, Init::ORTHO_POLICY, 1);
    }

    #[test]
    fn relu_backward_matches_finite_differences() {
        check_backward(Activation::Relu, Init::TorchDefault, 2);
    }

    #[test]
    fn backward_accumulates_like_torch() {
        let mut rng = Rng::new(3);
        let mut mlp = Mlp::new(4, &[8], 3, Activation::Tanh, Init::ORTHO_VALUE, &mut rng);
        let input = normals(8, &mut rng);
        let grad_output = normals(6, &mut rng);
        mlp.forward(&input);
        mlp.backward(&grad_output);
        let once = mlp.params.grad.clone();
        mlp.backward(&grad_output);
        mlp.params
            .grad
            .iter()
            .zip(&once)
            .for_each(|(twice, once)| assert!((twice - 2.0 * once).abs() < 1e-5));
    }

    #[test]
    fn forward_matches_a_naive_implementation_and_batches_are_independent() {
        let mut rng = Rng::new(4);
        let mut mlp = Mlp::new(3, &[5], 2, Activation::Tanh, Init::TorchDefault, &mut rng);
        let input = normals(4 * 3, &mut rng);
        let output = mlp.forward(&input).to_vec();
        let tensors = mlp.named_tensors("pi");
        let p = |t: usize| &mlp.params.value[tensors[t].range.clone()];
        for (row, x) in input.chunks(3).enumerate() {
            let hidden: Vec<f32> = (0..5)
                .map(|j| (p(1)[j] + (0..3).map(|k| p(0)[j * 3 + k] * x[k]).sum::<f32>()).tanh())
                .collect();
            for o in 0..2 {
                let y = p(3)[o] + (0..5).map(|j| p(2)[o * 5 + j] * hidden[j]).sum::<f32>();
                assert!((output[row * 2 + o] - y).abs() < 1e-5);
            }
        }
        // A batch of one row gives that row's output (to rounding: one-row products take a
        // dot-product path), after a larger batch grew the buffers.
        let single = mlp.forward(&input[3..6]).to_vec();
        single.iter().zip(&output[2..4]).for_each(|(a, b)| assert!((a - b).abs() < 1e-6));
    }

    #[test]
    fn named_tensors_cover_the_parameters_in_torch_order() {
        let mlp = Mlp::new(
            4,
            &[64, 64],
            2,
            Activation::Tanh,
            Init::ORTHO_POLICY,
            &mut Rng::new(0),
        );
        let tensors = mlp.named_tensors("pi");
        let names: Vec<&str> = tensors.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "pi.0.weight",
                "pi.0.bias",
                "pi.2.weight",
                "pi.2.bias",
                "pi.4.weight",
                "pi.4.bias"
            ]
        );
        assert_eq!(tensors[4].shape, vec![2, 64]);
        assert_eq!(tensors.last().map(|t| t.range.end), Some(mlp.n_params()));
        assert_eq!(mlp.n_params(), 4 * 64 + 64 + 64 * 64 + 64 + 64 * 2 + 2);
        // Orthogonal init: biases zero, output rows scaled by 0.01.
        assert!(
            mlp.params.value[tensors[1].range.clone()]
                .iter()
                .all(|&b| b == 0.0)
        );
        let out_row_norm: f32 = mlp.params.value[tensors[4].range.clone()][..64]
            .iter()
            .map(|w| w * w)
            .sum::<f32>()
            .sqrt();
        assert!((out_row_norm - 0.01).abs() < 1e-6);
    }

    #[test]
    fn same_seed_gives_the_same_weights() {
        let build = |seed| {
            Mlp::new(
                8,
                &[64, 64],
                4,
                Activation::Relu,
                Init::TorchDefault,
                &mut Rng::new(seed),
            )
            .params
            .value
        };
        assert_eq!(build(42), build(42));
        assert_ne!(build(42), build(43));
        let ortho = |seed| {
            Mlp::new(
                8,
                &[64, 64],
                4,
                Activation::Tanh,
                Init::ORTHO_VALUE,
                &mut Rng::new(seed),
            )
            .params
            .value
        };
        assert_eq!(ortho(42), ortho(42));
    }
}
