//! Statistical tests of the TPE sampler.

use super::*;
use crate::study::{Outcome, Study, StudyConfig};
use crate::{Distribution, SamplerConfig};

fn study(space: SearchSpace, tpe: TpeConfig, seed: u64) -> Study {
    Study::new(StudyConfig {
        sampler: SamplerConfig::Tpe(tpe),
        ..StudyConfig::new(space, seed)
    })
    .unwrap()
}

fn quadratic_study(tpe: TpeConfig, seed: u64, n_trials: usize) -> Vec<f64> {
    let space = SearchSpace::new([("x".to_string(), Distribution::float(-10.0, 10.0))]).unwrap();
    let mut study = study(space, tpe, seed);
    (0..n_trials)
        .map(|_| {
            let trial = study.ask().unwrap();
            let x = trial.params["x"].as_f64().unwrap();
            study
                .tell(trial.number, Outcome::Complete((x - 2.0).powi(2)))
                .unwrap();
            x
        })
        .collect()
}

#[test]
fn tpe_concentrates_near_the_optimum_of_a_quadratic() {
    for (seed, multivariate) in (0..4).map(|s| (s, false)).chain((0..4).map(|s| (s, true))) {
        let xs = quadratic_study(
            TpeConfig {
                multivariate,
                ..TpeConfig::default()
            },
            seed,
            100,
        );
        let late = &xs[50..];
        let near = late.iter().filter(|x| (*x - 2.0).abs() < 1.0).count();
        // A uniform sampler puts 10% of its draws within 1 of the optimum (5 of 50; 18 or more
        // has probability < 1e-7); Optuna's TPE, with bandwidths of at least range / 12 here,
        // puts about half.
        assert!(near >= 18, "seed {seed}: {near}/50 within 1 of the optimum");
        let best = xs
            .iter()
            .map(|x| (x - 2.0).abs())
            .fold(f64::INFINITY, f64::min);
        assert!(best < 0.1, "seed {seed}: best |x - 2| = {best}");
    }
}

#[test]
fn the_first_trials_are_random_and_the_gamma_is_optunas() {
    assert_eq!(
        (0..=300).step_by(50).map(default_gamma).collect::<Vec<_>>(),
        [0, 5, 10, 15, 20, 25, 25]
    );
    assert_eq!(default_gamma(11), 2);
    let tpe = quadratic_study(TpeConfig::default(), 4, 10);
    let mut rng_study = {
        let space =
            SearchSpace::new([("x".to_string(), Distribution::float(-10.0, 10.0))]).unwrap();
        Study::new(StudyConfig {
            sampler: SamplerConfig::Random,
            ..StudyConfig::new(space, 4)
        })
        .unwrap()
    };
    let random: Vec<f64> = (0..10)
        .map(|_| rng_study.ask().unwrap().params["x"].as_f64().unwrap())
        .collect();
    assert_eq!(tpe, random, "startup trials are the random sampler's");
}

#[test]
fn the_constant_liar_moves_suggestions_away_from_running_trials() {
    let space = SearchSpace::new([
        ("x".to_string(), Distribution::float(-10.0, 10.0)),
        ("n".to_string(), Distribution::int(0, 20)),
    ])
    .unwrap();
    // Optuna's settings: its broad early bandwidths show the liar's spreading plainly.
    let run = |constant_liar: bool| {
        let mut study = study(
            space.clone(),
            TpeConfig {
                constant_liar,
                ..TpeConfig::optuna()
            },
            9,
        );
        for _ in 0..30 {
            let trial = study.ask().unwrap();
            let x = trial.params["x"].as_f64().unwrap();
            study
                .tell(trial.number, Outcome::Complete(x.abs()))
                .unwrap();
        }
        // Eight workers: each asks while the others are still running.
        (0..8)
            .map(|_| study.ask().unwrap().params)
            .collect::<Vec<_>>()
    };
    let (with_liar, without) = (run(true), run(false));
    assert_eq!(
        with_liar[0], without[0],
        "nothing is running at the first ask"
    );
    assert_ne!(with_liar[1..], without[1..]);
    let spread = |params: &[BTreeMap<String, Value>]| {
        let xs: Vec<f64> = params.iter().map(|p| p["x"].as_f64().unwrap()).collect();
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>()
    };
    assert!(
        spread(&with_liar) > spread(&without),
        "the liar spreads parallel suggestions"
    );
}

#[test]
fn lattice_and_log_parameters_stay_on_their_domain() {
    let space = SearchSpace::from_json(&serde_json::json!({
        "a": {"type": "int", "low": 8, "high": 2048, "log": true},
        "b": {"type": "int", "low": 0, "high": 30, "step": 5},
        "c": {"type": "float", "low": 0.0, "high": 1.0, "step": 0.1},
        "d": {"type": "float", "low": 1e-5, "high": 1.0, "log": true},
        "e": {"type": "categorical", "choices": ["x", [64, 64], 3]},
    }))
    .unwrap();
    for multivariate in [false, true] {
        let mut study = study(
            space.clone(),
            TpeConfig {
                multivariate,
                ..TpeConfig::default()
            },
            2,
        );
        for _ in 0..60 {
            let trial = study.ask().unwrap();
            for (name, distribution) in space.iter() {
                assert!(
                    distribution.to_internal(&trial.params[name]).is_some(),
                    "{name} = {} outside {distribution}",
                    trial.params[name]
                );
            }
            let c = trial.params["c"].as_f64().unwrap();
            assert!(
                ((c * 10.0).round() - c * 10.0).abs() < 1e-9,
                "c = {c} off the 0.1 lattice"
            );
            let value =
                trial.params["a"].as_f64().unwrap().ln() + trial.params["d"].as_f64().unwrap();
            study.tell(trial.number, Outcome::Complete(value)).unwrap();
        }
    }
}

#[test]
fn pruned_trials_that_got_further_rank_first_below() {
    let mut trials = Vec::new();
    for (number, state, steps) in [
        (0, TrialState::Pruned, vec![(1, 5.0)]),
        (1, TrialState::Pruned, vec![(1, 1.0), (2, 9.0)]),
        (2, TrialState::Complete, vec![]),
        (3, TrialState::Running, vec![]),
        (4, TrialState::Failed, vec![]),
    ] {
        trials.push(Trial {
            number,
            params: BTreeMap::new(),
            state,
            value: (state == TrialState::Complete).then_some(3.0),
            intermediate_values: steps.into_iter().collect(),
            error: None,
            duration_seconds: None,
            rung_values: Vec::new(),
        });
    }
    let numbers = |ts: Vec<&Trial>| ts.iter().map(|t| t.number).collect::<Vec<_>>();
    let (below, above) = split_trials(&trials, Direction::Minimize, 2, &TpeConfig::default());
    assert_eq!((numbers(below), numbers(above)), (vec![1, 2], vec![0, 3]));
    let no_liar = TpeConfig {
        constant_liar: false,
        ..TpeConfig::default()
    };
    let (below, above) = split_trials(&trials, Direction::Minimize, 1, &no_liar);
    assert_eq!((numbers(below), numbers(above)), (vec![2], vec![0, 1]));
}

#[test]
fn under_hyperband_the_tpe_learns_from_its_bracket_only() {
    use crate::PrunerConfig;
    use crate::pruner::HyperbandConfig;
    let hyperband = HyperbandConfig {
        min_resource: Some(1),
        max_resource: Some(9),
        reduction_factor: 3,
        bootstrap_count: 0,
    };
    let brackets = hyperband.brackets(&[]).unwrap();
    let space = SearchSpace::new([("x".to_string(), Distribution::float(-10.0, 10.0))]).unwrap();
    let config = |sampler| StudyConfig {
        sampler,
        pruner: PrunerConfig::Hyperband(hyperband),
        ..StudyConfig::new(space.clone(), 5)
    };
    let mut tpe = Study::new(config(SamplerConfig::Tpe(TpeConfig::default()))).unwrap();
    let mut random = Study::new(config(SamplerConfig::Random)).unwrap();
    let (mut n_startup_checked, mut n_tpe_checked) = (0, 0);
    for number in 0..40u64 {
        let in_bracket = (0..number)
            .filter(|&t| brackets.bracket_of(5, t) == brackets.bracket_of(5, number))
            .count();
        let asked = tpe.ask().unwrap();
        let random_draw = random.ask().unwrap();
        if in_bracket < 10 {
            // Fewer than n_startup_trials in its bracket: a random draw, however many
            // trials the other brackets hold.
            assert_eq!(asked.params, random_draw.params, "trial {number}");
            n_startup_checked += usize::from(number >= 10);
        } else {
            assert_ne!(asked.params, random_draw.params, "trial {number}");
            n_tpe_checked += 1;
        }
        let x = asked.params["x"].as_f64().unwrap();
        tpe.report(asked.number, 9, x * x).unwrap();
        tpe.tell(asked.number, Outcome::Complete(x * x)).unwrap();
        random
            .tell(random_draw.number, Outcome::Complete(0.0))
            .unwrap();
    }
    assert!(
        n_startup_checked > 0 && n_tpe_checked > 0,
        "{n_startup_checked} {n_tpe_checked}"
    );
}
