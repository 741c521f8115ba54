//! Criterion benchmarks: all equilibria and Lemke-Howson on seeded random games with payoffs
//! uniform in (-10, 10), the setting of nashpy's figures in shared/PEERS.md.

use criterion::{Criterion, criterion_group, criterion_main};
use tars_nash::{Bimatrix, all_equilibria, lemke_howson};

/// SplitMix64 (Steele, Lea, Flood 2014): a tiny seeded generator, enough for benchmark games.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_f64(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn random_games(size: usize, n_games: usize) -> Vec<Bimatrix> {
    let mut rng = SplitMix64(size as u64);
    let matrix = |rng: &mut SplitMix64| -> Vec<Vec<f64>> {
        (0..size)
            .map(|_| (0..size).map(|_| rng.next_f64() * 20.0 - 10.0).collect())
            .collect()
    };
    (0..n_games)
        .map(|_| {
            let a = matrix(&mut rng);
            let b = matrix(&mut rng);
            Bimatrix::from_rows(a, b).expect("random payoffs are finite")
        })
        .collect()
}

fn bench_nash(c: &mut Criterion) {
    for size in [2, 3, 5, 8] {
        let games = random_games(size, 16);
        let mut game_idx = 0;
        c.bench_function(&format!("all_equilibria {size}x{size}"), |bencher| {
            bencher.iter(|| {
                game_idx = (game_idx + 1) % games.len();
                all_equilibria(&games[game_idx]).expect("small games enumerate")
            })
        });
        c.bench_function(&format!("lemke_howson {size}x{size}"), |bencher| {
            bencher.iter(|| {
                game_idx = (game_idx + 1) % games.len();
                lemke_howson(&games[game_idx]).expect("lemke-howson converges")
            })
        });
    }
}

criterion_group!(benches, bench_nash);
criterion_main!(benches);
