//! Hidden-layer activations: the [`Activation`] enum, a fast f32 [`tanh`], and the fused
//! per-layer kernels the [`super::Mlp`] runs (bias + activation forward, activation
//! derivative + bias gradient backward).
//!
//! The tanh is the clamped rational approximation Eigen uses for `ptanh` on floats
//! (`Eigen/src/Core/MathFunctionsImpl.h`, `generic_fast_tanh_float`; also ONNX Runtime's
//! `MlasTanhKernel`), with `tanh(x) = x` for tiny inputs. It auto-vectorises and is within
//! 1e-6 relative of `f32::tanh` everywhere (the worst case over all floats is 4.2e-7; tested
//! over a dense sweep). `±inf` gives `±1` and NaN stays NaN: `f32::clamp` propagates NaN,
//! unlike `min`/`max`.

/// Defines `fn $name` so that its body runs compiled for AVX2 (8 f32 lanes) when the CPU has
/// it, and for the baseline target (SSE2's 4 lanes on x86-64) otherwise. Element-wise kernels
/// run about twice as fast. Both versions perform the same IEEE operations (Rust never
/// contracts `a * b + c` into an FMA), so results are bit-identical whichever runs.
macro_rules! multiversion {
    ($(#[$attr:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $body:block) => {
        $(#[$attr])*
        $vis fn $name($($arg: $ty),*) {
            #[inline(always)]
            fn kernel($($arg: $ty),*) $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2")]
                fn kernel_avx2($($arg: $ty),*) {
                    kernel($($arg),*)
                }
                if std::arch::is_x86_feature_detected!("avx2") {
                    // SAFETY: the CPU supports AVX2, the only requirement of `kernel_avx2`.
                    return unsafe { kernel_avx2($($arg),*) };
                }
            }
            kernel($($arg),*)
        }
    };
}
pub(crate) use multiversion;

/// The activation after each hidden layer (SB3's `activation_fn`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// `nn.Tanh`, the default of SB3's actor-critic policies (PPO, A2C).
    Tanh,
    /// `nn.ReLU`, the default of SB3's DQN and DDPG/TD3 networks.
    Relu,
}

/// Beyond this the approximation rounds to ±1 in f32 (Eigen's clamp bound).
const CLAMP: f32 = 7.905_311;
/// Below this `tanh(x) = x` to within `x²/3 < 6e-8` relative, and the rational loses accuracy.
const TINY: f32 = 0.0004;

// Eigen's coefficients, written as published (f64 literals rounded to f32).
const ALPHA_1: f32 = 4.89352455891786e-3_f64 as f32;
const ALPHA_3: f32 = 6.37261928875436e-4_f64 as f32;
const ALPHA_5: f32 = 1.48572235717979e-5_f64 as f32;
const ALPHA_7: f32 = 5.12229709037114e-8_f64 as f32;
const ALPHA_9: f32 = -8.60467152213735e-11_f64 as f32;
const ALPHA_11: f32 = 2.00018790482477e-13_f64 as f32;
const ALPHA_13: f32 = -2.76076847742355e-16_f64 as f32;
const BETA_0: f32 = 4.89352518554385e-3_f64 as f32;
const BETA_2: f32 = 2.26843463243900e-3_f64 as f32;
const BETA_4: f32 = 1.18534705686654e-4_f64 as f32;
const BETA_6: f32 = 1.19825839466702e-6_f64 as f32;

/// Hyperbolic tangent, within 1e-6 relative of `f32::tanh`; inlines into vectorised loops.
#[inline(always)]
pub fn tanh(x: f32) -> f32 {
    let clamped = x.clamp(-CLAMP, CLAMP);
    let x2 = clamped * clamped;
    let mut numerator = ALPHA_13;
    numerator = numerator * x2 + ALPHA_11;
    numerator = numerator * x2 + ALPHA_9;
    numerator = numerator * x2 + ALPHA_7;
    numerator = numerator * x2 + ALPHA_5;
    numerator = numerator * x2 + ALPHA_3;
    numerator = numerator * x2 + ALPHA_1;
    numerator *= clamped;
    let mut denominator = BETA_6;
    denominator = denominator * x2 + BETA_4;
    denominator = denominator * x2 + BETA_2;
    denominator = denominator * x2 + BETA_0;
    let rational = numerator / denominator;
    if x.abs() < TINY { x } else { rational }
}

/// Applies [`tanh`] to every element.
pub fn tanh_in_place(xs: &mut [f32]) {
    xs.iter_mut().for_each(|x| *x = tanh(*x));
}

multiversion! {
    /// `y[row] += bias`, then the activation if any; one fused pass per row.
    pub(crate) fn add_bias_and_activate(y: &mut [f32], bias: &[f32], activation: Option<Activation>) {
        for row in y.chunks_exact_mut(bias.len()) {
            match activation {
                Some(Activation::Tanh) => {
                    for (v, b) in row.iter_mut().zip(bias) {
                        *v = tanh(*v + b);
                    }
                }
                // `if v < 0 { 0 } else { v }` keeps NaN visible, like `torch.relu`.
                Some(Activation::Relu) => {
                    for (v, b) in row.iter_mut().zip(bias) {
                        let z = *v + b;
                        *v = if z < 0.0 { 0.0 } else { z };
                    }
                }
                None => {
                    for (v, b) in row.iter_mut().zip(bias) {
                        *v += b;
                    }
                }
            }
        }
    }
}

multiversion! {
    /// Multiplies `grad` by the activation's derivative, given the activation's `output`,
    /// and adds the column sums of the result to `bias_grad` if given.
    pub(crate) fn activation_backward(grad: &mut [f32], output: &[f32], activation: Activation, bias_grad: Option<&mut [f32]>) {
        let width = bias_grad.as_ref().map_or(grad.len(), |b| b.len());
        let mut bias_grad = bias_grad;
        for (row, output_row) in grad.chunks_exact_mut(width).zip(output.chunks_exact(width)) {
            match activation {
                Activation::Tanh => {
                    for (g, h) in row.iter_mut().zip(output_row) {
                        *g *= 1.0 - h * h;
                    }
                }
                // torch's `threshold_backward`: zero where the output is not positive.
                Activation::Relu => {
                    for (g, &h) in row.iter_mut().zip(output_row) {
                        *g = if h > 0.0 { *g } else { 0.0 };
                    }
                }
            }
            if let Some(sums) = bias_grad.as_deref_mut() {
                for (s, g) in sums.iter_mut().zip(row.iter()) {
                    *s += g;
                }
            }
        }
    }
}

/// `sums[j] += Σ_rows m[row, j]`.
pub(crate) fn accumulate_column_sums(m: &[f32], sums: &mut [f32]) {
    for row in m.chunks_exact(sums.len()) {
        sums.iter_mut().zip(row).for_each(|(s, v)| *s += v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn relative_error(x: f32) -> f64 {
        let reference = f64::from(x.tanh());
        let approx = f64::from(tanh(x));
        if reference == 0.0 {
            approx.abs()
        } else {
            ((approx - reference) / reference).abs()
        }
    }

    #[test]
    fn matches_std_tanh_within_1e6_relative_over_a_dense_sweep() {
        // Linear sweep over the interesting range, plus a log sweep down to subnormals.
        let mut worst = (0.0f64, 0.0f32);
        let n = 4_000_000;
        let linear = (0..=n).map(|i| -10.0 + 20.0 * i as f32 / n as f32);
        let logarithmic = (0..=200_000).flat_map(|i| {
            let x = 10f32.powf(-40.0 + 42.0 * i as f32 / 200_000.0);
            [x, -x]
        });
        for x in linear.chain(logarithmic) {
            let err = relative_error(x);
            if err > worst.0 {
                worst = (err, x);
            }
        }
        assert!(
            worst.0 < 1e-6,
            "worst relative error {} at x = {}",
            worst.0,
            worst.1
        );
    }

    #[test]
    fn every_float_near_the_tiny_cutoff_and_the_clamp_is_accurate() {
        for centre in [TINY, CLAMP, 1.0] {
            let bits = centre.to_bits();
            for b in bits - 20_000..bits + 20_000 {
                let x = f32::from_bits(b);
                assert!(relative_error(x) < 1e-6, "x = {x}");
                assert!(relative_error(-x) < 1e-6, "x = {}", -x);
            }
        }
    }

    #[test]
    fn special_values_behave() {
        assert_eq!(tanh(0.0), 0.0);
        assert!(tanh(-0.0) == 0.0 && tanh(-0.0).is_sign_negative());
        assert_eq!(tanh(f32::INFINITY), 1.0);
        assert_eq!(tanh(f32::NEG_INFINITY), -1.0);
        assert_eq!(tanh(f32::MAX), 1.0);
        assert!(tanh(f32::NAN).is_nan());
        // Bounded and odd.
        for i in 0..10_000 {
            let x = i as f32 * 1e-3;
            assert!(tanh(x).abs() <= 1.0);
            assert_eq!(tanh(-x), -tanh(x));
        }
    }

    #[test]
    fn fused_kernels_are_bit_identical_to_the_scalar_formulas() {
        // Whichever instruction set the dispatch picks, results must equal the scalar code.
        let bias: Vec<f32> = (0..64).map(|j| j as f32 * 0.01 - 0.3).collect();
        let pre: Vec<f32> = (0..64 * 7).map(|i| (i as f32 * 0.37).sin() * 4.0).collect();
        let mut y = pre.clone();
        add_bias_and_activate(&mut y, &bias, Some(Activation::Tanh));
        for (idx, (&out, &x)) in y.iter().zip(&pre).enumerate() {
            assert_eq!(out.to_bits(), tanh(x + bias[idx % 64]).to_bits());
        }
        let mut grad = pre.clone();
        let mut bias_grad = vec![0.0; 64];
        activation_backward(&mut grad, &y, Activation::Tanh, Some(&mut bias_grad));
        for (idx, &g) in grad.iter().enumerate() {
            assert_eq!(g.to_bits(), (pre[idx] * (1.0 - y[idx] * y[idx])).to_bits());
        }
        let column_sum: f32 = (0..7).map(|row| grad[row * 64 + 5]).sum();
        assert_eq!(bias_grad[5], column_sum);
    }

    #[test]
    fn relu_keeps_nan_visible() {
        let mut y = [f32::NAN, -1.0, 2.0];
        add_bias_and_activate(&mut y, &[0.0; 3], Some(Activation::Relu));
        assert!(y[0].is_nan());
        assert_eq!(y[1..], [0.0, 2.0]);
    }

    #[test]
    fn in_place_matches_scalar() {
        let mut xs: Vec<f32> = (0..100).map(|i| i as f32 * 0.1 - 5.0).collect();
        let expected: Vec<f32> = xs.iter().map(|&x| tanh(x)).collect();
        tanh_in_place(&mut xs);
        assert_eq!(xs, expected);
    }
}
