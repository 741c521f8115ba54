//! `tars tune` end to end (issue 7): bad input fails before any training with a message that
//! says what is wrong, and a tiny real study (short training runs) prints the whole study as
//! JSON.

use serde_json::Value;
use std::process::{Command, Output};

fn tars(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tars"))
        .args(args)
        .output()
        .expect("tars runs")
}

/// Writes `json` to a temporary search-space file and returns its path.
fn space_file(name: &str, json: &str) -> String {
    let path = std::env::temp_dir().join(format!("tars-tune-{}-{name}.json", std::process::id()));
    std::fs::write(&path, json).unwrap();
    path.to_str().unwrap().to_string()
}

#[test]
fn bad_input_fails_fast_with_a_clear_message() {
    let inverted = space_file(
        "inverted",
        r#"{"learning_rate": {"type": "float", "low": 0.01, "high": 1e-5, "log": true}}"#,
    );
    let empty = space_file(
        "empty",
        r#"{"n_epochs": {"type": "int", "low": 5, "high": 5}}"#,
    );
    let log_zero = space_file(
        "log-zero",
        r#"{"ent_coef": {"type": "float", "low": 0, "high": 0.1, "log": true}}"#,
    );
    let unknown = space_file(
        "unknown",
        r#"{"clip_coef": {"type": "float", "low": 0.1, "high": 0.3}}"#,
    );
    let no_choices = space_file(
        "no-choices",
        r#"{"gamma": {"type": "categorical", "choices": []}}"#,
    );
    let base = ["tune", "--algo", "ppo", "--env", "CartPole-v1"];
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["--search-space", &inverted],
            "learning_rate: range [0.01, 0.00001] is inverted (low > high); give low < high",
        ),
        (
            vec!["--search-space", &empty],
            "n_epochs: range [5, 5] is empty (low == high)",
        ),
        (
            vec!["--search-space", &log_zero],
            "ent_coef: log scale needs low > 0, got low = 0",
        ),
        (
            vec!["--search-space", &unknown],
            "unknown PPO hyperparameter 'clip_coef' (did you mean 'clip_range'?); valid names:",
        ),
        (
            vec!["--search-space", &no_choices],
            "gamma: categorical choices are empty; list at least one value",
        ),
        (
            vec!["--trials", "0"],
            "n_trials = 0 is invalid: expected an integer in [1, 10000]",
        ),
        (
            vec!["--trials", "-3"],
            "n_trials = -3 is invalid: expected an integer in [1, 10000]",
        ),
        (
            vec!["--trials", "10001"],
            "n_trials = 10001 is invalid: expected an integer in [1, 10000]",
        ),
        (
            vec!["--sampler", "cmaes"],
            "sampler = cmaes is invalid: expected tpe, random or grid",
        ),
        (
            vec!["--pruner", "percentile"],
            "pruner = percentile is invalid: expected median, sh (successive halving), hyperband or none",
        ),
        (
            vec!["--sampler", "grid"],
            "the grid sampler needs a step for float parameters (or use a categorical)",
        ),
    ];
    for (extra, expected) in cases {
        let args: Vec<&str> = base.iter().copied().chain(extra.iter().copied()).collect();
        let output = tars(&args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?} succeeded");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
    let output = tars(&["tune", "--algo", "sac", "--env", "CartPole-v1"]);
    assert!(String::from_utf8_lossy(&output.stderr).contains("unknown algorithm 'sac'"));
    let output = tars(&["tune", "--algo", "ddpg", "--env", "CartPole-v1"]);
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("DDPG cannot train on CartPole-v1"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn a_tiny_real_study_prints_its_trials_as_json_and_repeats_with_one_worker() {
    let space = space_file(
        "tiny",
        r#"{"n_steps": {"type": "categorical", "choices": [16, 32]}, "n_epochs": {"type": "int", "low": 1, "high": 4}}"#,
    );
    let args = [
        "tune",
        "--algo",
        "ppo",
        "--env",
        "CartPole-v1",
        "--trials",
        "3",
        "--timesteps",
        "1024",
        "--episodes",
        "2",
        "--workers",
        "1",
        "--seed",
        "4",
        "--search-space",
        &space,
        "--json",
    ];
    let output = tars(&args);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let study: Value = serde_json::from_slice(&output.stdout).unwrap();
    let trials = study["trials"].as_array().unwrap();
    assert_eq!(trials.len(), 3);
    for trial in trials {
        let state = trial["state"].as_str().unwrap();
        assert!(state == "complete" || state == "pruned", "{trial}");
        assert!(trial["params"]["learning_rate"].is_number(), "{trial}");
        let n_steps = trial["params"]["n_steps"].as_u64().unwrap();
        assert!(n_steps == 16 || n_steps == 32);
        assert!(
            !trial["intermediate_values"].as_object().unwrap().is_empty(),
            "training reported its recent mean return: {trial}"
        );
    }
    assert_eq!(study["config"]["direction"], "maximize");
    assert_eq!(study["config"]["sampler"]["type"], "tpe");
    assert_eq!(study["config"]["pruner"]["type"], "median");
    assert!(study["best_trial"]["value"].as_f64().unwrap() >= 8.0);

    // Same seed, one worker: the same parameters, curves and values.
    let again: Value = serde_json::from_slice(&tars(&args).stdout).unwrap();
    let outcomes = |study: &Value| -> Vec<(Value, Value, Value)> {
        study["trials"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                (
                    t["params"].clone(),
                    t["intermediate_values"].clone(),
                    t["value"].clone(),
                )
            })
            .collect()
    };
    assert_eq!(outcomes(&study), outcomes(&again));
}

#[test]
fn a_tiny_study_prunes_with_hyperband_brackets() {
    let args = [
        "tune",
        "--algo",
        "ppo",
        "--env",
        "CartPole-v1",
        "--trials",
        "6",
        "--timesteps",
        "1024",
        "--episodes",
        "2",
        "--workers",
        "1",
        "--seed",
        "5",
        "--pruner",
        "hyperband",
        "--json",
    ];
    let output = tars(&args);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let study: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(study["config"]["pruner"]["type"], "hyperband");
    let trials = study["trials"].as_array().unwrap();
    assert_eq!(trials.len(), 6);
    // Nothing is judged before a trial completes (auto max_resource); after that, trials pass
    // their bracket's rungs (r = 1024 / 100 = 10, η = 3: rungs at 10 · 3^k steps).
    assert!(trials[0]["rung_values"].is_null(), "{}", trials[0]);
    assert!(
        trials[1..].iter().any(|t| t["rung_values"].is_array()),
        "{study}"
    );
}
