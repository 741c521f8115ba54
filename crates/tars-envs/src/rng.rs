//! The seeded random-number generator every environment (and agent) draws from.
//!
//! PCG-64 (MCG variant) from `rand_pcg`: fast, statistically strong, and the same stream on
//! every platform for a given seed. It is not numpy's stream, so same-seed resets are
//! reproducible within T.A.R.S. but differ from gymnasium's.

use rand_core::Rng as _;
use rand_pcg::Pcg64Mcg;

/// A small, fast, seedable generator with the draws RL code needs.
#[derive(Debug, Clone)]
pub struct Rng(Pcg64Mcg);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        // Spread the seed over 128 bits with SplitMix64 so nearby seeds give unrelated streams.
        let mut state = seed;
        let mut next = || {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        let wide = ((next() as u128) << 64) | next() as u128;
        Rng(Pcg64Mcg::new(wide | 1))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// Uniform in `[0, 1)` with 53 random bits.
    pub fn uniform01(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in `[low, high)`, computed as numpy does: `low + (high - low) * u`.
    pub fn uniform(&mut self, low: f64, high: f64) -> f64 {
        low + (high - low) * self.uniform01()
    }

    /// Uniform integer in `0..n` (Lemire's nearly-divisionless method, unbiased).
    pub fn below(&mut self, n: u64) -> u64 {
        debug_assert!(n > 0);
        let mut m = (self.next_u64() as u128) * (n as u128);
        if (m as u64) < n {
            let threshold = n.wrapping_neg() % n;
            while (m as u64) < threshold {
                m = (self.next_u64() as u128) * (n as u128);
            }
        }
        (m >> 64) as u64
    }

    /// Standard normal draw (Box–Muller; one of the pair is discarded for simplicity).
    pub fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.uniform01();
        let u2 = self.uniform01();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// A fresh generator derived from this one, for seeding sub-streams.
    pub fn fork(&mut self) -> Rng {
        Rng::new(self.next_u64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream_and_different_seeds_differ() {
        let draw = |seed| {
            (0..4)
                .map(|_| Rng::new(seed).next_u64())
                .collect::<Vec<_>>()
        };
        assert_eq!(draw(7), draw(7));
        assert_ne!(Rng::new(7).next_u64(), Rng::new(8).next_u64());
    }

    #[test]
    fn uniform_stays_in_range_and_has_the_right_mean() {
        let mut rng = Rng::new(1);
        let n = 100_000;
        let mut sum = 0.0;
        for _ in 0..n {
            let x = rng.uniform(-0.05, 0.05);
            assert!((-0.05..0.05).contains(&x));
            sum += x;
        }
        assert!((sum / n as f64).abs() < 1e-3);
    }

    #[test]
    fn below_is_unbiased_enough() {
        let mut rng = Rng::new(3);
        let mut counts = [0u32; 3];
        for _ in 0..30_000 {
            counts[rng.below(3) as usize] += 1;
        }
        assert!(
            counts.iter().all(|c| (9_400..10_600).contains(c)),
            "{counts:?}"
        );
    }

    #[test]
    fn normal_has_unit_variance() {
        let mut rng = Rng::new(5);
        let n = 100_000;
        let draws: Vec<f64> = (0..n).map(|_| rng.normal()).collect();
        let mean = draws.iter().sum::<f64>() / n as f64;
        let var = draws.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
        assert!(
            mean.abs() < 0.02 && (var - 1.0).abs() < 0.02,
            "{mean} {var}"
        );
    }
}
