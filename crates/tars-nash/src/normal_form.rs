//! N-player normal-form games: a payoff table per player over all pure action profiles, the
//! expected payoff of each action against the others' mixed strategies, and NashConv.
//!
//! Used by the approximate solvers in [`crate::dynamics`]; two-player games convert from
//! [`Bimatrix`] with [`NormalFormGame::from_bimatrix`].

use crate::nashconv::{max, validate_strategy};
use crate::{Bimatrix, Error};

/// A validated N-player game. Payoffs are indexed by pure profile in row-major order: the
/// last player's action varies fastest.
#[derive(Debug, Clone, PartialEq)]
pub struct NormalFormGame {
    n_actions: Vec<usize>,
    payoffs: Vec<Vec<f64>>,
}

impl NormalFormGame {
    /// Builds a game with `n_actions[p]` actions for player `p` and `payoffs[p][profile_idx]`
    /// the payoff of player `p` (one table of `prod(n_actions)` entries per player).
    pub fn new(n_actions: Vec<usize>, payoffs: Vec<Vec<f64>>) -> Result<Self, Error> {
        let invalid = |reason: String| Err(Error::InvalidGame { reason });
        if n_actions.len() < 2 {
            return invalid(format!(
                "it has {} players; give at least 2",
                n_actions.len()
            ));
        }
        if let Some(player_idx) = n_actions.iter().position(|&n| n == 0) {
            return invalid(format!(
                "player {player_idx} has no actions; give each at least 1"
            ));
        }
        let n_profiles = n_actions
            .iter()
            .try_fold(1_usize, |acc, &n| acc.checked_mul(n));
        let Some(n_profiles) = n_profiles.filter(|&n| n <= 100_000_000) else {
            return invalid("it has more than 100000000 pure profiles; give fewer actions".into());
        };
        if payoffs.len() != n_actions.len() {
            return invalid(format!(
                "it has {} players but {} payoff tables; give one table per player",
                n_actions.len(),
                payoffs.len()
            ));
        }
        for (player_idx, table) in payoffs.iter().enumerate() {
            if table.len() != n_profiles {
                return invalid(format!(
                    "payoff table {player_idx} has {} entries; give one per pure profile ({n_profiles})",
                    table.len()
                ));
            }
            if let Some(profile_idx) = table.iter().position(|v| !v.is_finite()) {
                return invalid(format!(
                    "payoff {player_idx}[{profile_idx}] is {}; payoffs must be finite numbers",
                    table[profile_idx]
                ));
            }
        }
        Ok(Self { n_actions, payoffs })
    }

    /// The same game as `game`, with player 0 choosing rows.
    pub fn from_bimatrix(game: &Bimatrix) -> Self {
        let flatten = |m: &crate::Matrix| m.to_rows().concat();
        Self {
            n_actions: vec![game.n_rows(), game.n_cols()],
            payoffs: vec![flatten(game.a()), flatten(game.b())],
        }
    }

    /// Number of players.
    pub fn n_players(&self) -> usize {
        self.n_actions.len()
    }

    /// Number of actions of each player.
    pub fn n_actions(&self) -> &[usize] {
        &self.n_actions
    }

    /// What each player would gain by switching to a best response, for a valid profile.
    pub fn best_response_gains(&self, profile: &[Vec<f64>]) -> Result<Vec<f64>, Error> {
        self.validate_profile(profile)?;
        Ok(self.gains_unchecked(profile))
    }

    /// NashConv of `profile`: the sum of [`Self::best_response_gains`]; zero at an equilibrium.
    pub fn nash_conv(&self, profile: &[Vec<f64>]) -> Result<f64, Error> {
        Ok(self.best_response_gains(profile)?.iter().sum())
    }

    /// Smallest and largest payoff of player `player_idx`.
    pub(crate) fn payoff_range(&self, player_idx: usize) -> (f64, f64) {
        self.payoffs[player_idx]
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
                (lo.min(v), hi.max(v))
            })
    }

    /// Applies `f` to every payoff of player `player_idx`.
    pub(crate) fn map_payoffs(&mut self, player_idx: usize, f: impl Fn(f64) -> f64) {
        self.payoffs[player_idx].iter_mut().for_each(|v| *v = f(*v));
    }

    /// Checks that `profile` holds one probability distribution per player.
    pub(crate) fn validate_profile(&self, profile: &[Vec<f64>]) -> Result<(), Error> {
        if profile.len() != self.n_players() {
            return Err(Error::InvalidGame {
                reason: format!(
                    "a profile of {} strategies was given for {} players; give one per player",
                    profile.len(),
                    self.n_players()
                ),
            });
        }
        for (player_idx, strategy) in profile.iter().enumerate() {
            validate_strategy(player_idx, strategy, self.n_actions[player_idx])?;
        }
        Ok(())
    }

    /// [`Self::best_response_gains`] without validation.
    pub(crate) fn gains_unchecked(&self, profile: &[Vec<f64>]) -> Vec<f64> {
        self.action_values(profile)
            .iter()
            .zip(profile)
            .map(|(values, strategy)| {
                let current: f64 = values.iter().zip(strategy).map(|(v, p)| v * p).sum();
                (max(values) - current).max(0.0)
            })
            .collect()
    }

    /// `values[p][a]`: player `p`'s expected payoff from action `a` while the others play
    /// `profile`. One pass over the pure profiles, with prefix and suffix products of the
    /// others' probabilities.
    pub(crate) fn action_values(&self, profile: &[Vec<f64>]) -> Vec<Vec<f64>> {
        let n_players = self.n_players();
        let mut values: Vec<Vec<f64>> = self.n_actions.iter().map(|&n| vec![0.0; n]).collect();
        let mut actions = vec![0_usize; n_players];
        let mut prefix = vec![1.0; n_players + 1];
        let mut suffix = vec![1.0; n_players + 1];
        for profile_idx in 0..self.payoffs[0].len() {
            for p in 0..n_players {
                prefix[p + 1] = prefix[p] * profile[p][actions[p]];
            }
            for p in (0..n_players).rev() {
                suffix[p] = suffix[p + 1] * profile[p][actions[p]];
            }
            for p in 0..n_players {
                let others = prefix[p] * suffix[p + 1];
                if others != 0.0 {
                    values[p][actions[p]] += others * self.payoffs[p][profile_idx];
                }
            }
            // Odometer: the last player's action varies fastest.
            for p in (0..n_players).rev() {
                actions[p] += 1;
                if actions[p] < self.n_actions[p] {
                    break;
                }
                actions[p] = 0;
            }
        }
        values
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_player_values_and_nash_conv() {
        // Each player gets 1 if their action matches player 0's, else 0 (player 0 always 1).
        let n_actions = vec![2, 2, 2];
        let matches = |player_idx: usize| -> Vec<f64> {
            (0..8_usize)
                .map(|idx| {
                    let action = (idx >> (2 - player_idx)) & 1;
                    f64::from(u8::from(action == idx >> 2))
                })
                .collect()
        };
        let payoffs = vec![matches(0), matches(1), matches(2)];
        let game = NormalFormGame::new(n_actions, payoffs).unwrap();
        let coordinated = vec![vec![1.0, 0.0], vec![1.0, 0.0], vec![1.0, 0.0]];
        assert_eq!(game.nash_conv(&coordinated).unwrap(), 0.0);
        let profile = vec![vec![0.25, 0.75], vec![1.0, 0.0], vec![0.5, 0.5]];
        assert_eq!(game.action_values(&profile)[1], vec![0.25, 0.75]);
        // Player 1 gains 0.75 - 0.25; player 2 gains 0.75 - 0.5.
        assert_eq!(
            game.best_response_gains(&profile).unwrap(),
            vec![0.0, 0.5, 0.25]
        );
    }

    #[test]
    fn bad_games_and_profiles_are_rejected() {
        let one_player = NormalFormGame::new(vec![2], vec![vec![0.0, 1.0]]).unwrap_err();
        assert_eq!(
            one_player.to_string(),
            "invalid normal-form game: it has 1 players; give at least 2"
        );
        let short = NormalFormGame::new(vec![2, 2], vec![vec![0.0; 4], vec![0.0; 3]]).unwrap_err();
        assert!(
            short
                .to_string()
                .contains("payoff table 1 has 3 entries; give one per pure profile (4)")
        );
        let nan =
            NormalFormGame::new(vec![1, 2], vec![vec![0.0, f64::NAN], vec![0.0; 2]]).unwrap_err();
        assert!(nan.to_string().contains("payoff 0[1] is NaN"), "{nan}");
        let game = NormalFormGame::new(vec![1, 2], vec![vec![0.0; 2], vec![0.0; 2]]).unwrap();
        assert!(game.nash_conv(&[vec![1.0]]).is_err());
        assert!(game.nash_conv(&[vec![1.0], vec![0.7, 0.7]]).is_err());
    }
}
