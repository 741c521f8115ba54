//! Agreement with nashpy 0.0.43's `vertex_enumeration` (fixtures from
//! `scripts/nash_fixtures.py`; see `tests/fixtures/README.md`): every reference equilibrium is
//! found and none is extra, on the classic games, on random 3x3, 5x5 and 8x8 games, and on
//! degenerate games with integer payoffs (where the extreme equilibria are compared).

use serde_json::Value;
use tars_nash::{Bimatrix, all_equilibria};

use crate::util::max_abs_diff;

/// nashpy's vertices come from qhull; they agree with ours to about 1e-10.
const MATCH_TOL: f64 = 1e-7;

struct Reference {
    name: String,
    game: Bimatrix,
    equilibria: Vec<(Vec<f64>, Vec<f64>)>,
    support_enumeration_count: Option<usize>,
}

fn load() -> Vec<Reference> {
    let text = include_str!("../fixtures/vertex_enumeration.json");
    let fixture: Value = serde_json::from_str(text).expect("fixture is JSON");
    assert_eq!(fixture["nashpy"], "0.0.43");
    let matrix = |value: &Value| -> Vec<Vec<f64>> {
        serde_json::from_value(value.clone()).expect("a matrix is a list of lists of numbers")
    };
    let vector = |value: &Value| -> Vec<f64> {
        serde_json::from_value(value.clone()).expect("a strategy is a list of numbers")
    };
    fixture["games"]
        .as_array()
        .expect("games is a list")
        .iter()
        .map(|game| Reference {
            name: game["name"].as_str().expect("name").to_owned(),
            game: Bimatrix::from_rows(matrix(&game["A"]), matrix(&game["B"])).expect("valid game"),
            equilibria: game["equilibria"]
                .as_array()
                .expect("equilibria is a list")
                .iter()
                .map(|e| (vector(&e["row"]), vector(&e["col"])))
                .collect(),
            support_enumeration_count: game["support_enumeration_count"]
                .as_u64()
                .map(|n| n as usize),
        })
        .collect()
}

fn matches(ours: (&[f64], &[f64]), theirs: (&[f64], &[f64])) -> bool {
    max_abs_diff(ours.0, theirs.0) <= MATCH_TOL && max_abs_diff(ours.1, theirs.1) <= MATCH_TOL
}

#[test]
fn every_nashpy_equilibrium_is_found_and_none_is_extra() {
    let references = load();
    assert_eq!(references.len(), 5 + 40 + 30 + 6 + 30);
    let mut n_matched = 0;
    let mut n_support_enumeration_misses = 0;
    let mut n_infinite = 0;
    let mut n_degenerate_integer = 0;
    for reference in &references {
        let result = all_equilibria(&reference.game).expect("fixture games are small");
        let ours: Vec<(&[f64], &[f64])> = result
            .equilibria()
            .iter()
            .map(|e| (e.row(), e.col()))
            .collect();
        for theirs in &reference.equilibria {
            assert!(
                ours.iter().any(|&o| matches(o, (&theirs.0, &theirs.1))),
                "{}: nashpy's {theirs:?} is missing from ours {ours:?}",
                reference.name
            );
        }
        for &o in &ours {
            assert!(
                reference
                    .equilibria
                    .iter()
                    .any(|t| matches(o, (&t.0, &t.1))),
                "{}: our {o:?} is not among nashpy's {:?}",
                reference.name,
                reference.equilibria
            );
        }
        n_matched += ours.len();
        if reference.name.starts_with("integer") {
            n_degenerate_integer += usize::from(result.is_degenerate());
        } else {
            let degenerate = reference.name.starts_with("degenerate");
            assert_eq!(result.is_degenerate(), degenerate, "{}", reference.name);
            assert_eq!(result.is_finite(), !degenerate, "{}", reference.name);
        }
        n_infinite += usize::from(!result.is_finite());
        if let Some(count) = reference.support_enumeration_count {
            assert!(count <= ours.len(), "{}", reference.name);
            n_support_enumeration_misses += usize::from(count < ours.len());
        }
    }
    assert_eq!(n_matched, 286);
    // Most integer games are degenerate, and most of those have a continuum of equilibria.
    assert!(
        n_degenerate_integer >= 20 && n_infinite >= 15,
        "{n_degenerate_integer} {n_infinite}"
    );
    eprintln!(
        "matched {n_matched} equilibria in {} games ({n_degenerate_integer} degenerate integer games, {n_infinite} games with infinitely many); nashpy's support enumeration missed some in {n_support_enumeration_misses} games",
        references.len()
    );
}

#[test]
fn classic_games_have_their_textbook_equilibria() {
    let references = load();
    let count = |name: &str| -> usize {
        let reference = references
            .iter()
            .find(|r| r.name == name)
            .expect("classic game present");
        all_equilibria(&reference.game).unwrap().equilibria().len()
    };
    assert_eq!(count("matching_pennies"), 1);
    assert_eq!(count("prisoners_dilemma"), 1);
    assert_eq!(count("battle_of_the_sexes"), 3);
    assert_eq!(count("rock_paper_scissors"), 1);
}
