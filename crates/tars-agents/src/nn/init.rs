//! Weight initialisation as SB3 does it.
//!
//! - [`orthogonal`]: `torch.nn.init.orthogonal_`, which SB3's `ActorCriticPolicy` applies
//!   with `ortho_init=True` (gains √2 for hidden layers, 0.01 for the policy output, 1 for
//!   the value output; biases 0).
//! - [`kaiming_uniform`]: the default `torch.nn.Linear.reset_parameters`, which DQN and
//!   DDPG keep: `kaiming_uniform_(a=√5)` reduces to U(-1/√fan_in, 1/√fan_in) for weights,
//!   and biases use the same bound.

use tars_envs::Rng;

/// How [`super::Mlp::new`] initialises the parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Init {
    /// `torch.nn.init.orthogonal_` on every weight with the given gains, biases zero: SB3's
    /// `ActorCriticPolicy` with `ortho_init=True`. See [`Init::ORTHO_POLICY`] and
    /// [`Init::ORTHO_VALUE`].
    Orthogonal { hidden_gain: f32, output_gain: f32 },
    /// PyTorch's default `nn.Linear` init, U(-1/√fan_in, 1/√fan_in) for weights and biases:
    /// what DQN and DDPG/TD3 use.
    TorchDefault,
}

impl Init {
    /// SB3's gains for a policy network: √2 for hidden layers, 0.01 for `action_net`.
    pub const ORTHO_POLICY: Init = Init::Orthogonal {
        hidden_gain: std::f32::consts::SQRT_2,
        output_gain: 0.01,
    };
    /// SB3's gains for a value network: √2 for hidden layers, 1 for `value_net`.
    pub const ORTHO_VALUE: Init = Init::Orthogonal {
        hidden_gain: std::f32::consts::SQRT_2,
        output_gain: 1.0,
    };
}

impl Init {
    /// Initialises one layer's `weight` (`[fan_out, fan_in]`) and `bias` (`[fan_out]`).
    pub(crate) fn fill_layer(
        self,
        weight: &mut [f32],
        bias: &mut [f32],
        fan_in: usize,
        fan_out: usize,
        is_output: bool,
        rng: &mut Rng,
    ) {
        match self {
            Init::Orthogonal {
                hidden_gain,
                output_gain,
            } => {
                let gain = if is_output { output_gain } else { hidden_gain };
                orthogonal(weight, fan_out, fan_in, gain, rng);
                bias.fill(0.0);
            }
            Init::TorchDefault => {
                kaiming_uniform(weight, fan_in, rng);
                kaiming_uniform(bias, fan_in, rng);
            }
        }
    }
}

/// Fills `out` (row-major `[rows, cols]`) with a random orthogonal matrix times `gain`:
/// orthonormal columns when `rows >= cols` (WᵀW = I), orthonormal rows otherwise.
///
/// Like `torch.nn.init.orthogonal_`, this is the Q factor of the QR decomposition of a
/// standard Gaussian matrix (transposed when wide), sign-corrected so that R has a positive
/// diagonal. That Q is unique, and modified Gram–Schmidt produces it directly; we run it in
/// f64 with one re-orthogonalisation pass, which keeps Q orthogonal to machine precision.
pub fn orthogonal(out: &mut [f32], rows: usize, cols: usize, gain: f32, rng: &mut Rng) {
    assert_eq!(
        out.len(),
        rows * cols,
        "orthogonal: output is not rows * cols"
    );
    let gaussian: Vec<f64> = (0..rows * cols).map(|_| rng.normal()).collect();
    // Columns of the tall matrix to factor: `len` entries each, `n_vectors` of them.
    let tall = rows >= cols;
    let (len, n_vectors) = if tall { (rows, cols) } else { (cols, rows) };
    let mut vectors: Vec<Vec<f64>> = (0..n_vectors)
        .map(|v| {
            (0..len)
                .map(|e| {
                    if tall {
                        gaussian[e * cols + v]
                    } else {
                        gaussian[v * cols + e]
                    }
                })
                .collect()
        })
        .collect();
    for v in 0..n_vectors {
        let (done, rest) = vectors.split_at_mut(v);
        let current = &mut rest[0];
        for _pass in 0..2 {
            for q in done.iter() {
                let projection: f64 = q.iter().zip(current.iter()).map(|(a, b)| a * b).sum();
                current
                    .iter_mut()
                    .zip(q)
                    .for_each(|(c, &qe)| *c -= projection * qe);
            }
        }
        let norm = current.iter().map(|c| c * c).sum::<f64>().sqrt();
        current.iter_mut().for_each(|c| *c /= norm);
    }
    for r in 0..rows {
        for c in 0..cols {
            let q = if tall { vectors[c][r] } else { vectors[r][c] };
            out[r * cols + c] = (q * f64::from(gain)) as f32;
        }
    }
}

/// Fills `out` with U(-1/√fan_in, 1/√fan_in) draws: PyTorch's default `nn.Linear` init for
/// both weights and biases.
pub fn kaiming_uniform(out: &mut [f32], fan_in: usize, rng: &mut Rng) {
    let bound = 1.0 / (fan_in as f64).sqrt();
    out.iter_mut()
        .for_each(|w| *w = rng.uniform(-bound, bound) as f32);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Max |(M Mᵀ or Mᵀ M) - gain² I| over the smaller Gram matrix.
    fn orthogonality_error(w: &[f32], rows: usize, cols: usize, gain: f32) -> f64 {
        let (n, dot): (usize, Box<dyn Fn(usize, usize) -> f64>) = if rows >= cols {
            (
                cols,
                Box::new(|i, j| {
                    (0..rows)
                        .map(|r| f64::from(w[r * cols + i]) * f64::from(w[r * cols + j]))
                        .sum()
                }),
            )
        } else {
            (
                rows,
                Box::new(|i, j| {
                    (0..cols)
                        .map(|c| f64::from(w[i * cols + c]) * f64::from(w[j * cols + c]))
                        .sum()
                }),
            )
        };
        let target = f64::from(gain) * f64::from(gain);
        let mut worst = 0.0f64;
        for i in 0..n {
            for j in 0..n {
                let expected = if i == j { target } else { 0.0 };
                worst = worst.max((dot(i, j) - expected).abs());
            }
        }
        worst
    }

    #[test]
    fn orthogonal_is_orthogonal_for_tall_square_and_wide_shapes() {
        let mut rng = Rng::new(0);
        for (rows, cols, gain) in [
            (64, 4, 2f32.sqrt()),
            (64, 64, 2f32.sqrt()),
            (2, 64, 0.01),
            (1, 64, 1.0),
            (3, 3, 1.0),
        ] {
            let mut w = vec![0.0; rows * cols];
            orthogonal(&mut w, rows, cols, gain, &mut rng);
            let err = orthogonality_error(&w, rows, cols, gain);
            assert!(
                err < 1e-5 * f64::from(gain * gain).max(1.0),
                "{rows}x{cols}: {err}"
            );
        }
    }

    #[test]
    fn orthogonal_matches_the_sign_corrected_qr_of_the_same_gaussian() {
        // For a 2x2 matrix G = [[a, b], [c, d]] the sign-corrected Q's first column is
        // (a, c) / |(a, c)|: R's first diagonal entry is then positive.
        let mut rng = Rng::new(9);
        let mut draws = rng.clone();
        let (a, _b, c, _d) = (
            draws.normal(),
            draws.normal(),
            draws.normal(),
            draws.normal(),
        );
        let mut w = vec![0.0; 4];
        orthogonal(&mut w, 2, 2, 1.0, &mut rng);
        let norm = (a * a + c * c).sqrt();
        assert!((f64::from(w[0]) - a / norm).abs() < 1e-6);
        assert!((f64::from(w[2]) - c / norm).abs() < 1e-6);
    }

    #[test]
    fn kaiming_uniform_stays_within_its_bound_and_is_deterministic() {
        let mut w = vec![0.0; 4096];
        kaiming_uniform(&mut w, 16, &mut Rng::new(3));
        assert!(w.iter().all(|x| x.abs() <= 0.25));
        assert!(w.iter().any(|x| x.abs() > 0.24));
        let mut again = vec![0.0; 4096];
        kaiming_uniform(&mut again, 16, &mut Rng::new(3));
        assert_eq!(w, again);
    }
}
