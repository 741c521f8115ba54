//! Properties of random games (proptest): every returned profile is an equilibrium,
//! non-degenerate games have an odd number of equilibria, Lemke-Howson lands on one of them,
//! and the zero-sum value equals the LP dual and every equilibrium's payoff.

use proptest::prelude::*;
use tars_nash::{
    Bimatrix, Matrix, NormalFormGame, ReplicatorConfig, VERIFY_TOL, all_equilibria, lemke_howson,
    nash_conv, replicator_dynamics, solve_matrix_game,
};

use crate::util::{assert_distribution, max_abs_diff};

/// Rows of a `n_rows x n_cols` matrix with entries from `entry`.
fn matrix(
    n_rows: usize,
    n_cols: usize,
    entry: impl Strategy<Value = f64> + Clone,
) -> impl Strategy<Value = Vec<Vec<f64>>> {
    prop::collection::vec(prop::collection::vec(entry, n_cols), n_rows)
}

/// Games up to 6x6 with continuous payoffs (almost surely non-degenerate).
fn continuous_game() -> impl Strategy<Value = Bimatrix> {
    (1_usize..=6, 1_usize..=6).prop_flat_map(|(n_rows, n_cols)| {
        (
            matrix(n_rows, n_cols, -10.0..10.0),
            matrix(n_rows, n_cols, -10.0..10.0),
        )
            .prop_map(|(a, b)| Bimatrix::from_rows(a, b).unwrap())
    })
}

/// Games up to 4x4 with payoffs in {-2, ..., 2}: ties everywhere, often degenerate.
fn tied_game() -> impl Strategy<Value = Bimatrix> {
    let entry = (-2_i32..=2).prop_map(f64::from);
    (1_usize..=4, 1_usize..=4).prop_flat_map(move |(n_rows, n_cols)| {
        (
            matrix(n_rows, n_cols, entry.clone()),
            matrix(n_rows, n_cols, entry.clone()),
        )
            .prop_map(|(a, b)| Bimatrix::from_rows(a, b).unwrap())
    })
}

fn payoff_scale(game: &Bimatrix) -> f64 {
    let (a_lo, a_hi) = game.a().min_max();
    let (b_lo, b_hi) = game.b().min_max();
    [1.0, a_lo.abs(), a_hi.abs(), b_lo.abs(), b_hi.abs()]
        .into_iter()
        .fold(0.0, f64::max)
}

fn check_all_verified(game: &Bimatrix) -> Result<usize, TestCaseError> {
    let result = all_equilibria(game).unwrap();
    prop_assert!(
        !result.equilibria().is_empty(),
        "every finite game has an equilibrium"
    );
    for equilibrium in result.equilibria() {
        assert_distribution(equilibrium.row());
        assert_distribution(equilibrium.col());
        let gap = nash_conv(game, equilibrium.row(), equilibrium.col()).unwrap();
        prop_assert!(
            gap <= VERIFY_TOL * payoff_scale(game),
            "NashConv {gap} of {equilibrium:?}"
        );
        let (row_payoff, col_payoff) = game.payoffs(equilibrium.row(), equilibrium.col());
        prop_assert!((row_payoff - equilibrium.row_payoff()).abs() < 1e-12);
        prop_assert!((col_payoff - equilibrium.col_payoff()).abs() < 1e-12);
    }
    if !result.is_degenerate() {
        prop_assert_eq!(
            result.equilibria().len() % 2,
            1,
            "non-degenerate games have an odd count"
        );
        prop_assert!(result.is_finite());
    }
    Ok(result.equilibria().len())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn continuous_games_have_an_odd_number_of_verified_equilibria(game in continuous_game()) {
        let result = all_equilibria(&game).unwrap();
        prop_assert!(!result.is_degenerate());
        check_all_verified(&game)?;
    }

    #[test]
    fn tied_games_return_only_verified_extreme_equilibria(game in tied_game()) {
        check_all_verified(&game)?;
    }

    #[test]
    fn lemke_howson_finds_one_of_the_enumerated_equilibria(game in continuous_game()) {
        let found = lemke_howson(&game).unwrap();
        let all = all_equilibria(&game).unwrap();
        prop_assert!(
            all.equilibria().iter().any(|e| {
                max_abs_diff(e.row(), found.row()) < 1e-9 && max_abs_diff(e.col(), found.col()) < 1e-9
            }),
            "{found:?} not in {:?}", all.equilibria()
        );
    }

    #[test]
    fn zero_sum_value_equals_the_lp_dual_and_every_equilibrium_payoff(
        rows in (1_usize..=6, 1_usize..=6).prop_flat_map(|(m, n)| matrix(m, n, -10.0..10.0))
    ) {
        let a = Matrix::new("A", rows).unwrap();
        let solution = solve_matrix_game(&a).unwrap();
        prop_assert!((solution.value() - solution.dual_value()).abs() <= 1e-9 * payoff_scale(&Bimatrix::zero_sum(a.clone())));
        prop_assert!((solution.value() - solution.equilibrium().row_payoff()).abs() <= 1e-9 * 10.0);
        for equilibrium in all_equilibria(&Bimatrix::zero_sum(a)).unwrap().equilibria() {
            prop_assert!((equilibrium.row_payoff() - solution.value()).abs() <= 1e-9 * 10.0);
        }
    }

    #[test]
    fn replicator_reports_the_true_nash_conv_of_its_profile(game in continuous_game()) {
        let normal_form = NormalFormGame::from_bimatrix(&game);
        let config = ReplicatorConfig { n_iterations: 500, ..ReplicatorConfig::default() };
        let result = replicator_dynamics(&normal_form, &config).unwrap();
        for strategy in &result.profile {
            prop_assert!((strategy.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        }
        let recomputed = nash_conv(&game, &result.profile[0], &result.profile[1]).unwrap();
        prop_assert!((recomputed - result.nash_conv).abs() < 1e-12);
    }
}
