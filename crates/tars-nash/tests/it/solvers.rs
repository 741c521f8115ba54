//! The solvers on seeded games beyond the fixtures: Lemke-Howson on large and degenerate
//! games, the approximations on an N-player game, and the errors callers see.

use tars_nash::{
    Bimatrix, Error, FictitiousPlayConfig, LemkeHowsonConfig, Matrix, NormalFormGame,
    ReplicatorConfig, VERIFY_TOL, all_equilibria, fictitious_play, lemke_howson, lemke_howson_with,
    nash_conv, replicator_dynamics, solve_zero_sum,
};

use crate::util::{SplitMix64, assert_distribution, random_game};

#[test]
fn lemke_howson_solves_large_games_from_every_first_label() {
    let mut rng = SplitMix64(7);
    for (n_rows, n_cols) in [(30, 30), (60, 40)] {
        let game = random_game(&mut rng, n_rows, n_cols);
        for first_label in [0, n_rows / 2, n_rows + n_cols - 1] {
            let config = LemkeHowsonConfig {
                first_label,
                ..LemkeHowsonConfig::default()
            };
            let equilibrium = lemke_howson_with(&game, &config).unwrap();
            assert_distribution(equilibrium.row());
            assert_distribution(equilibrium.col());
            let gap = nash_conv(&game, equilibrium.row(), equilibrium.col()).unwrap();
            assert!(
                gap <= VERIFY_TOL * 10.0,
                "{n_rows}x{n_cols} label {first_label}: {gap}"
            );
        }
    }
}

#[test]
fn lemke_howson_terminates_on_degenerate_games() {
    // Payoffs in {0, 1} make ties (and degenerate bases) on almost every path.
    let mut rng = SplitMix64(11);
    for _ in 0..200 {
        let mut matrix = || -> Vec<Vec<f64>> {
            (0..5)
                .map(|_| (0..5).map(|_| (rng.next_u64() % 2) as f64).collect())
                .collect()
        };
        let game = Bimatrix::from_rows(matrix(), matrix()).unwrap();
        let equilibrium = lemke_howson(&game).unwrap();
        assert!(nash_conv(&game, equilibrium.row(), equilibrium.col()).unwrap() <= VERIFY_TOL);
    }
}

#[test]
fn seeded_8x8_games_have_an_odd_number_of_equilibria() {
    let mut rng = SplitMix64(8);
    let mut counts = Vec::new();
    for _ in 0..20 {
        let result = all_equilibria(&random_game(&mut rng, 8, 8)).unwrap();
        assert!(!result.is_degenerate() && result.is_finite());
        counts.push(result.equilibria().len());
    }
    assert!(counts.iter().all(|n| n % 2 == 1), "{counts:?}");
    assert!(
        counts.iter().any(|&n| n > 1),
        "random 8x8 games often have several: {counts:?}"
    );
}

/// A three-player game from `payoff(player_idx, actions)` over two actions each.
fn three_player_game(payoff: impl Fn(usize, [usize; 3]) -> f64) -> NormalFormGame {
    let payoffs = (0..3)
        .map(|player_idx| {
            (0..8)
                .map(|idx| payoff(player_idx, [idx >> 2, (idx >> 1) & 1, idx & 1]))
                .collect()
        })
        .collect();
    NormalFormGame::new(vec![2, 2, 2], payoffs).unwrap()
}

#[test]
fn approximations_reach_the_dominant_profile_of_a_three_player_game() {
    // Action 1 pays each player 2 and costs the other two 1 each: strictly dominant.
    let game = three_player_game(|player_idx, actions| {
        let others: usize = actions.iter().sum::<usize>() - actions[player_idx];
        2.0 * actions[player_idx] as f64 - others as f64
    });
    let replicator = replicator_dynamics(&game, &ReplicatorConfig::default()).unwrap();
    let fictitious = fictitious_play(&game, &FictitiousPlayConfig::default()).unwrap();
    assert!(replicator.nash_conv < 1e-9, "{replicator:?}");
    assert!(fictitious.nash_conv < 1e-3, "{fictitious:?}");
    for result in [&replicator, &fictitious] {
        assert!((game.nash_conv(&result.profile).unwrap() - result.nash_conv).abs() < 1e-12);
        assert!(
            result.profile.iter().all(|strategy| strategy[1] > 0.999),
            "{result:?}"
        );
    }
}

#[test]
fn fictitious_play_reports_its_gap_when_it_cycles() {
    // Jordan (1993): player p wants to match player p + 1 except player 2, who wants to
    // mismatch player 0. The unique equilibrium is uniform, where replicator dynamics starts
    // and stays; fictitious play cycles away from it, and says so through its NashConv.
    let game = three_player_game(|player_idx, actions| {
        let next = actions[(player_idx + 1) % 3];
        f64::from(u8::from((actions[player_idx] == next) != (player_idx == 2)))
    });
    let replicator = replicator_dynamics(&game, &ReplicatorConfig::default()).unwrap();
    assert_eq!(replicator.nash_conv, 0.0);
    let fictitious = fictitious_play(&game, &FictitiousPlayConfig::default()).unwrap();
    assert!(fictitious.nash_conv > 0.01, "{fictitious:?}");
    assert!((game.nash_conv(&fictitious.profile).unwrap() - fictitious.nash_conv).abs() < 1e-12);
}

#[test]
fn errors_say_what_is_valid() {
    let too_large = all_equilibria(&random_game(&mut SplitMix64(1), 12, 12)).unwrap_err();
    assert!(matches!(
        too_large,
        Error::TooLargeForEnumeration {
            n_rows: 12,
            n_cols: 12,
            ..
        }
    ));
    assert!(
        too_large
            .to_string()
            .ends_with("find one equilibrium with Lemke-Howson instead")
    );
    let general_sum = random_game(&mut SplitMix64(2), 2, 2);
    assert!(matches!(
        solve_zero_sum(&general_sum),
        Err(Error::NotZeroSum {
            row_idx: 0,
            col_idx: 0,
            ..
        })
    ));
    let zero_sum = Bimatrix::zero_sum(Matrix::new("A", vec![vec![1.0, 2.0]]).unwrap());
    assert_eq!(solve_zero_sum(&zero_sum).unwrap().value(), 1.0);
}
