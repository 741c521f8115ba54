//! Test helpers: a seeded generator, random games and closeness checks.

use tars_nash::Bimatrix;

/// SplitMix64 (Steele, Lea, Flood 2014): a tiny seeded generator for reproducible games.
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A game with payoffs uniform in `(-10, 10)`.
pub fn random_game(rng: &mut SplitMix64, n_rows: usize, n_cols: usize) -> Bimatrix {
    let mut matrix = || -> Vec<Vec<f64>> {
        (0..n_rows)
            .map(|_| (0..n_cols).map(|_| rng.next_f64() * 20.0 - 10.0).collect())
            .collect()
    };
    let a = matrix();
    let b = matrix();
    Bimatrix::from_rows(a, b).expect("random payoffs are finite")
}

/// Largest absolute difference between two equally long slices.
pub fn max_abs_diff(lhs: &[f64], rhs: &[f64]) -> f64 {
    assert_eq!(lhs.len(), rhs.len());
    lhs.iter()
        .zip(rhs)
        .map(|(l, r)| (l - r).abs())
        .fold(0.0, f64::max)
}

/// Asserts `strategy` is a probability distribution to round-off.
pub fn assert_distribution(strategy: &[f64]) {
    assert!(
        strategy.iter().all(|&p| p >= 0.0),
        "negative probability in {strategy:?}"
    );
    let sum: f64 = strategy.iter().sum();
    assert!((sum - 1.0).abs() <= 1e-12, "sum {sum} of {strategy:?}");
}
