//! Approximate equilibria of N-player or large games: discrete-time replicator dynamics and
//! simultaneous fictitious play, each reporting the NashConv of what it returns.
//!
//! Neither method is guaranteed to converge (replicator dynamics cycles around the mixed
//! equilibrium of rock-paper-scissors; fictitious play can cycle in general-sum games), so both
//! keep the best profile seen, by NashConv, among the iterates and their running average. The
//! average is what converges in two-player zero-sum games (Robinson 1951 for fictitious play;
//! Hofbauer, Sorin, Viossat 2009 for the replicator's time average).

use crate::{Error, NormalFormGame};

/// Settings of [`replicator_dynamics`].
#[derive(Debug, Clone, PartialEq)]
pub struct ReplicatorConfig {
    /// Euler steps of `x_a += step_size * x_a * (u_a - mean u)`.
    pub n_iterations: usize,
    /// Step size on payoffs rescaled to `[0, 1]`; in `(0, 1]` so strategies stay in the simplex.
    pub step_size: f64,
}

impl Default for ReplicatorConfig {
    fn default() -> Self {
        Self {
            n_iterations: 10_000,
            step_size: 0.5,
        }
    }
}

/// Settings of [`fictitious_play`].
#[derive(Debug, Clone, PartialEq)]
pub struct FictitiousPlayConfig {
    /// Rounds in which every player best-responds to the others' empirical mix.
    pub n_iterations: usize,
}

impl Default for FictitiousPlayConfig {
    fn default() -> Self {
        Self {
            n_iterations: 10_000,
        }
    }
}

/// An approximate equilibrium and how far it is from a real one.
#[derive(Debug, Clone, PartialEq)]
pub struct Approximation {
    /// One mixed strategy per player.
    pub profile: Vec<Vec<f64>>,
    /// NashConv of [`Self::profile`], in the game's payoff units.
    pub nash_conv: f64,
    /// Iterations run.
    pub n_iterations: usize,
}

/// Runs replicator dynamics from the uniform profile (per-player payoffs rescaled to `[0, 1]`,
/// which leaves equilibria unchanged).
pub fn replicator_dynamics(
    game: &NormalFormGame,
    config: &ReplicatorConfig,
) -> Result<Approximation, Error> {
    validate_iterations(config.n_iterations)?;
    if !(config.step_size > 0.0 && config.step_size <= 1.0) {
        return Err(Error::OutOfRange {
            name: "step_size",
            value: config.step_size,
            expected: "a number in (0, 1]",
        });
    }
    let scaled = rescaled(game);
    let mut profile = uniform_profile(game);
    let mut tracker = BestTracker::new(game, config.n_iterations);
    for iteration in 1..=config.n_iterations {
        let values = scaled.action_values(&profile);
        for (strategy, values) in profile.iter_mut().zip(&values) {
            let mean: f64 = strategy.iter().zip(values).map(|(p, v)| p * v).sum();
            for (p, v) in strategy.iter_mut().zip(values) {
                *p += config.step_size * *p * (v - mean);
            }
            let sum: f64 = strategy.iter().sum();
            strategy.iter_mut().for_each(|p| *p /= sum);
        }
        tracker.observe(game, &profile, iteration);
    }
    Ok(tracker.finish(config.n_iterations))
}

/// Runs simultaneous fictitious play from uniform beliefs; the empirical mixes are the
/// approximation. Ties between best responses go to the lowest action index.
pub fn fictitious_play(
    game: &NormalFormGame,
    config: &FictitiousPlayConfig,
) -> Result<Approximation, Error> {
    validate_iterations(config.n_iterations)?;
    let mut empirical = uniform_profile(game);
    let mut tracker = BestTracker::new(game, config.n_iterations);
    for iteration in 1..=config.n_iterations {
        let values = game.action_values(&empirical);
        // The uniform prior counts as one round, so round `iteration` has weight 1/(iteration+1).
        let weight = 1.0 / (iteration as f64 + 1.0);
        for (strategy, values) in empirical.iter_mut().zip(&values) {
            let best_idx =
                values.iter().enumerate().fold(
                    0,
                    |best, (idx, &v)| if v > values[best] { idx } else { best },
                );
            strategy.iter_mut().for_each(|p| *p *= 1.0 - weight);
            strategy[best_idx] += weight;
        }
        tracker.observe(game, &empirical, iteration);
    }
    Ok(tracker.finish(config.n_iterations))
}

fn validate_iterations(n_iterations: usize) -> Result<(), Error> {
    if n_iterations == 0 {
        return Err(Error::OutOfRange {
            name: "n_iterations",
            value: 0.0,
            expected: "at least 1",
        });
    }
    Ok(())
}

fn uniform_profile(game: &NormalFormGame) -> Vec<Vec<f64>> {
    game.n_actions()
        .iter()
        .map(|&n| vec![1.0 / n as f64; n])
        .collect()
}

/// The game with each player's payoffs mapped affinely onto `[0, 1]`.
fn rescaled(game: &NormalFormGame) -> NormalFormGame {
    let mut scaled = game.clone();
    for player_idx in 0..game.n_players() {
        let (lo, hi) = game.payoff_range(player_idx);
        let range = if hi > lo { hi - lo } else { 1.0 };
        scaled.map_payoffs(player_idx, |v| (v - lo) / range);
    }
    scaled
}

/// Keeps the lowest-NashConv profile among the iterates and their running average, checked
/// about 200 times per run (NashConv costs as much as an iteration).
struct BestTracker {
    check_every: usize,
    average: Vec<Vec<f64>>,
    best: Option<(f64, Vec<Vec<f64>>)>,
}

impl BestTracker {
    fn new(game: &NormalFormGame, n_iterations: usize) -> Self {
        let average = game.n_actions().iter().map(|&n| vec![0.0; n]).collect();
        Self {
            check_every: (n_iterations / 200).max(1),
            average,
            best: None,
        }
    }

    fn observe(&mut self, game: &NormalFormGame, profile: &[Vec<f64>], iteration: usize) {
        let weight = 1.0 / iteration as f64;
        for (average, strategy) in self.average.iter_mut().zip(profile) {
            for (a, p) in average.iter_mut().zip(strategy) {
                *a += weight * (p - *a);
            }
        }
        if iteration.is_multiple_of(self.check_every) {
            self.consider(game, profile.to_vec());
            self.consider(game, self.average.clone());
        }
    }

    fn consider(&mut self, game: &NormalFormGame, profile: Vec<Vec<f64>>) {
        let nash_conv: f64 = game.gains_unchecked(&profile).iter().sum();
        if self.best.as_ref().is_none_or(|(best, _)| nash_conv < *best) {
            self.best = Some((nash_conv, profile));
        }
    }

    fn finish(self, n_iterations: usize) -> Approximation {
        let (nash_conv, profile) = self
            .best
            .expect("observe ran at least once with check_every = 1 or more");
        Approximation {
            profile,
            nash_conv,
            n_iterations,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Bimatrix, Matrix};

    fn rock_paper_scissors() -> NormalFormGame {
        let a = vec![
            vec![0.0, -1.0, 1.0],
            vec![1.0, 0.0, -1.0],
            vec![-1.0, 1.0, 0.0],
        ];
        NormalFormGame::from_bimatrix(&Bimatrix::zero_sum(Matrix::new("A", a).unwrap()))
    }

    #[test]
    fn fictitious_play_approaches_the_mixed_equilibrium_of_rock_paper_scissors() {
        let game = rock_paper_scissors();
        let short = fictitious_play(&game, &FictitiousPlayConfig { n_iterations: 100 }).unwrap();
        let long = fictitious_play(
            &game,
            &FictitiousPlayConfig {
                n_iterations: 20_000,
            },
        )
        .unwrap();
        assert!(
            long.nash_conv < short.nash_conv,
            "{} vs {}",
            long.nash_conv,
            short.nash_conv
        );
        assert!(long.nash_conv < 0.01, "{}", long.nash_conv);
        assert!((game.nash_conv(&long.profile).unwrap() - long.nash_conv).abs() < 1e-12);
    }

    #[test]
    fn replicator_eliminates_a_dominated_strategy() {
        // Prisoner's dilemma: defection strictly dominates, so the dynamics go to (D, D).
        let game = NormalFormGame::from_bimatrix(
            &Bimatrix::from_rows(
                vec![vec![3.0, 0.0], vec![5.0, 1.0]],
                vec![vec![3.0, 5.0], vec![0.0, 1.0]],
            )
            .unwrap(),
        );
        let result = replicator_dynamics(&game, &ReplicatorConfig::default()).unwrap();
        assert!(result.nash_conv < 1e-9, "{}", result.nash_conv);
        assert!(
            result
                .profile
                .iter()
                .all(|strategy| strategy[1] > 1.0 - 1e-9),
            "{:?}",
            result.profile
        );
    }

    #[test]
    fn bad_settings_are_rejected() {
        let game = rock_paper_scissors();
        let config = ReplicatorConfig {
            step_size: 1.5,
            ..ReplicatorConfig::default()
        };
        assert_eq!(
            replicator_dynamics(&game, &config).unwrap_err().to_string(),
            "step_size = 1.5 is out of range; expected a number in (0, 1]"
        );
        assert!(fictitious_play(&game, &FictitiousPlayConfig { n_iterations: 0 }).is_err());
    }
}
