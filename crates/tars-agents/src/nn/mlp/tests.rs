//! Tests of [`super::Mlp`]: every backward pass against finite differences, forward against a
//! naive implementation, parameter layout and seeded determinism.

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
    single
        .iter()
        .zip(&output[2..4])
        .for_each(|(a, b)| assert!((a - b).abs() < 1e-6));
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
