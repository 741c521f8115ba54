//! The `tars env` commands as scripts use them: exact JSON interfaces and bad-input handling.

use serde_json::Value;
use std::io::Write;
use std::process::{Command, Output, Stdio};

fn tars(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tars"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("tars runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn json_lines(output: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn step_prints_state_obs_reward_terminated_exactly() {
    // The first golden CartPole transition, replayed through the CLI.
    let input = r#"{"case": "random", "state": [0.013696168732145436, -0.02302132862361297, -0.045902647606380534, -0.04834723644714709], "action": 1}"#;
    let output = tars(&["env", "step", "CartPole-v1"], input);
    assert!(output.status.success(), "{output:?}");
    let lines = json_lines(&output);
    assert_eq!(lines.len(), 1);
    let expected: Value = serde_json::from_str(
        r#"{"state": [0.013235742159673177, 0.17272774640672584, -0.04686959233532348, -0.3551522026891103],
            "obs": [0.013235742226243019, 0.17272774875164032, -0.04686959087848663, -0.3551521897315979],
            "reward": 1.0, "terminated": false}"#,
    )
    .unwrap();
    assert_eq!(lines[0], expected);
}

#[test]
fn step_reports_each_bad_line_and_goes_on() {
    let input = [
        r#"{"state": [0, 0, 0, 0], "action": 0}"#,
        r#"not json"#,
        r#"{"state": [0, 0], "action": 0}"#,
        r#"{"state": [0, 0, 0, 0], "action": 2}"#,
        r#"{"state": [0, 0, 0, 0], "action": -1}"#,
        r#"{"state": [0, 0, 0, 0], "action": [0.5]}"#,
        r#"{"state": [0, 0, 0, 1e999], "action": 0}"#,
        r#"{"action": 0}"#,
        r#"{"state": [0, 0, 0, 0.1], "action": 1}"#,
    ]
    .join("\n");
    let output = tars(&["env", "step", "CartPole-v1"], &input);
    assert_eq!(output.status.code(), Some(1), "exit 1 when any line failed");
    let lines = json_lines(&output);
    assert_eq!(lines.len(), 9, "one output line per input line");
    assert!(
        lines[0]["obs"].is_array() && lines[8]["obs"].is_array(),
        "good lines still answered"
    );
    let errors: Vec<&str> = lines[1..8]
        .iter()
        .map(|l| l["error"].as_str().expect("error line"))
        .collect();
    assert!(
        errors[0].starts_with("line 2: invalid JSON"),
        "{}",
        errors[0]
    );
    assert_eq!(
        errors[1],
        "line 3: CartPole-v1 state must have 4 values (x, x_dot, theta, theta_dot), got 2"
    );
    assert_eq!(
        errors[2],
        "line 4: action 2 is out of range; valid actions are 0..2 (0 to 1)"
    );
    assert_eq!(
        errors[3],
        "line 5: action -1 is out of range; actions are non-negative integers below 2"
    );
    assert_eq!(
        errors[4],
        "line 6: wrong action shape: expected Discrete(2), got array of 1 floats"
    );
    assert!(
        errors[5].starts_with("line 7: invalid JSON"),
        "infinite numbers are rejected: {}",
        errors[5]
    );
    assert_eq!(errors[6], "line 8: missing \"state\" (an array of numbers)");
}

#[test]
fn step_handles_continuous_actions_and_wrong_shapes() {
    let input = "{\"state\": [3.14, 0.0], \"action\": [5.0]}\n{\"state\": [3.14, 0.0], \"action\": 1}\n{\"state\": [3.14, 0.0], \"action\": [1, 2]}";
    let output = tars(&["env", "step", "Pendulum-v1"], input);
    let lines = json_lines(&output);
    assert_eq!(lines[0]["terminated"], Value::Bool(false));
    assert_eq!(
        lines[1]["error"],
        "line 2: wrong action shape: expected Box(-2.0, 2.0, (1,)), got integer 1"
    );
    assert_eq!(
        lines[2]["error"],
        "line 3: wrong action shape: expected Box(-2.0, 2.0, (1,)), got array of 2 floats"
    );
}

#[test]
fn unknown_env_is_a_clear_error() {
    let output = tars(&["env", "step", "Cartpole"], "");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("unknown environment 'Cartpole'; valid ids: CartPole-v1, Acrobot-v1"),
        "{stderr}"
    );
    let output = tars(&["env", "rollout", "Nope-v0", "--steps", "10"], "");
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn list_json_has_spaces_limits_and_thresholds() {
    let output = tars(&["env", "list", "--json"], "");
    let all: Vec<Value> = serde_json::from_slice(&output.stdout).unwrap();
    let cartpole = all.iter().find(|e| e["id"] == "CartPole-v1").unwrap();
    assert_eq!(cartpole["max_episode_steps"], 500);
    assert_eq!(cartpole["reward_threshold"], 475.0);
    assert_eq!(cartpole["action_space"]["n"], 2);
    let pendulum = all.iter().find(|e| e["id"] == "Pendulum-v1").unwrap();
    assert_eq!(pendulum["reward_threshold"], Value::Null);
    assert_eq!(pendulum["action_space"]["high"][0], 2.0);
    assert_eq!(pendulum["state"], serde_json::json!(["theta", "theta_dot"]));
}

#[test]
fn rollout_counts_episodes_of_random_cartpole() {
    let output = tars(
        &[
            "env",
            "rollout",
            "CartPole-v1",
            "--steps",
            "200000",
            "--num-envs",
            "4",
            "--seed",
            "3",
            "--json",
        ],
        "",
    );
    assert!(output.status.success(), "{output:?}");
    let stats: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(stats["steps"], 200_000);
    let mean = stats["mean_episode_return"].as_f64().unwrap();
    // Random CartPole lasts about 22 steps.
    assert!((19.0..26.0).contains(&mean), "{mean}");
    let episodes = stats["episodes"].as_u64().unwrap();
    assert!((7_000..10_500).contains(&episodes), "{episodes}");
}

#[test]
fn bench_says_when_it_runs_from_a_debug_build_and_checks_its_options() {
    let output = tars(&["bench", "envs", "--seconds", "0"], "");
    assert!(!output.status.success(), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    // Tests run the binary of their own profile: `cargo test` a debug one, `--release` not.
    let warned = stderr.contains("this `tars` is a debug build");
    assert_eq!(warned, cfg!(debug_assertions), "{stderr}");
    assert!(
        stderr.contains("--seconds must be positive, got 0"),
        "{stderr}"
    );
}
