//! `tars eval`, `tars baseline` and `tars config` end to end on an embedded SQLite store in a
//! fresh data directory: real training, real storage, real verdicts.

mod common;

use common::Sandbox;
use serde_json::Value;
use std::process::Command;

#[test]
fn the_seeds_test_4_bad_dqn_config_is_caught_and_gated() {
    let sandbox = Sandbox::new("seed4");
    // The seed's §3.2 row, inserted from summary statistics.
    sandbox.ok(&[
        "baseline",
        "insert",
        "--agent",
        "DQN",
        "--env",
        "CartPole-v1",
        "--mean",
        "450",
        "--std",
        "25",
        "--success",
        "0.95",
        "--baseline-version",
        "12",
        "--rank",
        "1",
        "--hyperparameters",
        r#"{"learning_rate": 0.001, "gamma": 0.99, "epsilon": 0.1}"#,
    ]);
    let args = [
        "eval",
        "--agent",
        "dqn",
        "--env",
        "CartPole-v1",
        "--hp",
        "learning_rate=0.5",
        "--hp",
        "gamma=0.5",
        "--hp",
        "epsilon=0.9",
        "--hp",
        "n_timesteps=10000",
        "--episodes",
        "50",
        "--compare",
        "--json",
        "--gate",
    ];
    let output = sandbox.tars(&args);
    assert_eq!(output.status.code(), Some(1), "--gate fails on a rollback");
    let response: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(response["regression"]["detected"], Value::Bool(true));
    assert_eq!(response["regression"]["should_rollback"], Value::Bool(true));
    let reason = response["regression"]["reason"].as_str().unwrap();
    assert!(
        reason.contains("below baseline 450.0 (rank 1, v12) on CartPole-v1; p < 0.001"),
        "{reason}"
    );
    let mean = response["results"][0]["metrics"]["mean_reward"]
        .as_f64()
        .unwrap();
    assert!(mean < 100.0, "{mean}");
    assert_eq!(
        response["results"][0]["metrics"]["episode_returns"]
            .as_array()
            .unwrap()
            .len(),
        50
    );
}

#[test]
fn bootstrap_promote_and_history_rank_stored_results() {
    let sandbox = Sandbox::new("baselines");
    let boot = sandbox.json(&[
        "baseline",
        "bootstrap",
        "--agent",
        "ppo",
        "--env",
        "CartPole-v1",
        "--timesteps",
        "20000",
        "--episodes",
        "20",
    ]);
    assert_eq!(boot["rank"], 1);
    assert_eq!(boot["version"], 1);
    assert_eq!(boot["agent_type"], "PPO");
    let shown = sandbox.json(&[
        "baseline",
        "show",
        "--agent",
        "ppo",
        "--env",
        "CartPole-v1",
        "--json",
    ]);
    assert_eq!(shown["n_returns"], 20, "promoted with its episode returns");

    // A worse configuration, evaluated and compared, then promoted: it earns rank 2.
    let worse = sandbox.json(&[
        "eval",
        "--agent",
        "ppo",
        "--env",
        "CartPole-v1",
        "--hp",
        "n_timesteps=2048",
        "--episodes",
        "20",
        "--compare",
        "--json",
    ]);
    let result = &worse["results"][0];
    assert_eq!(result["baseline"]["n_returns"], 20);
    assert_eq!(result["regression"]["checks"][0]["name"], "reward_drop");
    let result_id = result["result_id"].as_str().unwrap();
    let promoted = sandbox.json(&["baseline", "promote", result_id, "--actor", "ci"]);
    assert_eq!(promoted["rank"], 2);
    assert_eq!(promoted["version"], 2);

    // A stale expected version is a conflict, and nothing changes.
    sandbox.fails(
        &["baseline", "promote", result_id, "--expected-version", "1"],
        "is at version 2, not 1",
    );
    let list = sandbox.json(&["baseline", "list", "--json"]);
    let ranks: Vec<i64> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["rank"].as_i64().unwrap())
        .collect();
    assert_eq!(ranks, [1, 2]);
    let history = sandbox.json(&[
        "baseline",
        "history",
        "--agent",
        "PPO",
        "--env",
        "CartPole-v1",
        "--json",
    ]);
    let actions: Vec<&str> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["promote", "promote"], "newest first");
    assert_eq!(history[0]["actor"], "ci");
}

#[test]
fn bad_input_is_refused_before_anything_runs() {
    let sandbox = Sandbox::new("bad");
    for (args, message) in [
        (
            vec!["eval", "--agent", "sac", "--env", "CartPole-v1"],
            "unknown agent_type 'sac'; valid: DQN, A2C, PPO, DDPG, TD3",
        ),
        (
            vec![
                "eval",
                "--agent",
                "dqn",
                "--env",
                "CartPole-v1",
                "--episodes",
                "0",
            ],
            "num_episodes must be between 1 and 10000, got 0",
        ),
        (
            vec!["eval", "--agent", "ddpg", "--env", "CartPole-v1"],
            "DDPG cannot train on CartPole-v1",
        ),
        (
            vec!["eval", "--agent", "dqn", "--env", "Pong-v5"],
            "Pong-v5",
        ),
        (
            vec![
                "eval",
                "--agent",
                "dqn",
                "--env",
                "CartPole-v1",
                "--hp",
                "gama=0.9",
            ],
            "unknown DQN hyperparameter 'gama'",
        ),
        (
            vec![
                "eval",
                "--agent",
                "ppo",
                "--env",
                "CartPole-v1",
                "--checkpoint",
                "nope",
            ],
            "checkpoint 'nope' not found",
        ),
        (
            vec![
                "eval",
                "--agent",
                "dqn",
                "--env",
                "CartPole-v1",
                "--max-concurrent",
                "0",
            ],
            "invalid max_concurrent = '0' (from --max-concurrent): expected an integer in 1..=64",
        ),
        (
            vec!["baseline", "promote", "not-a-uuid"],
            "'not-a-uuid' is not a result id",
        ),
        (
            vec!["baseline", "show", "--agent", "dqn", "--env", "CartPole-v1"],
            "no rank-1 baseline for DQN on CartPole-v1",
        ),
        (
            vec![
                "baseline",
                "insert",
                "--agent",
                "dqn",
                "--env",
                "CartPole-v1",
                "--mean",
                "1",
                "--std",
                "1",
                "--success",
                "2",
            ],
            "success_rate",
        ),
    ] {
        sandbox.fails(&args, message);
    }
    let list = sandbox.json(&["baseline", "list", "--json"]);
    assert_eq!(list, Value::Array(vec![]), "nothing was stored");
}

#[test]
fn config_show_reports_each_value_and_its_source() {
    let sandbox = Sandbox::new("config");
    std::fs::write(
        sandbox.dir.join("tars.toml"),
        "max_concurrent = 2\n[thresholds]\nfailure_rate = 0.2\n",
    )
    .unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_tars"));
    let output = command
        .args(["config", "show", "--json", "--reward-drop-pct", "0.05"])
        .current_dir(&sandbox.dir)
        .env("TARS_DATA_DIR", "/srv/tars")
        .env(
            "TARS_DATABASE_URL",
            "postgres://tars:hunter2@db.example/tars",
        )
        .env_remove("TARS_CONFIG")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let shown: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(shown["max_concurrent"]["value"], "2");
    assert_eq!(shown["max_concurrent"]["source"], "tars.toml");
    assert_eq!(shown["thresholds.failure_rate"]["value"], "0.2");
    assert_eq!(
        shown["thresholds.reward_drop_pct"]["source"],
        "--reward-drop-pct"
    );
    assert_eq!(shown["data_dir"]["source"], "TARS_DATA_DIR");
    assert_eq!(
        shown["database_url"]["value"],
        "postgres://tars:***@db.example/tars"
    );
    assert_eq!(shown["port"]["value"], "8099");
    assert!(!String::from_utf8_lossy(&output.stdout).contains("hunter2"));
}

#[test]
fn over_the_job_budget_the_cli_warns_and_runs() {
    let sandbox = Sandbox::new("cli-budget");
    std::fs::write(sandbox.dir.join("tars.toml"), "max_job_env_steps = 1000\n").unwrap();
    let out = sandbox.dir.join("trained");
    let trained = sandbox.tars(&[
        "train",
        "--algo",
        "ppo",
        "--env",
        "CartPole-v1",
        "--timesteps",
        "2048",
        "--eval-episodes",
        "1",
        "--out",
        out.to_str().unwrap(),
        "--json",
    ]);
    let stderr = String::from_utf8_lossy(&trained.stderr);
    assert!(trained.status.success(), "{stderr}");
    assert!(
        stderr.contains("warning: training PPO on CartPole-v1")
            && stderr.contains("max_job_env_steps")
            && stderr.contains("a server would refuse this training"),
        "{stderr}"
    );
    assert!(
        out.join("model.safetensors").exists(),
        "it trained all the same"
    );

    let evaluated = sandbox.tars(&[
        "eval",
        "--agent",
        "ppo",
        "--env",
        "CartPole-v1",
        "--hp",
        "n_timesteps=2048",
        "--episodes",
        "1",
        "--json",
    ]);
    let stderr = String::from_utf8_lossy(&evaluated.stderr);
    assert!(evaluated.status.success(), "{stderr}");
    assert!(
        stderr.contains("max_job_env_steps")
            && stderr.contains("a server would refuse this request"),
        "{stderr}"
    );
}

#[test]
fn config_init_writes_a_commented_file_that_config_show_reads() {
    let sandbox = Sandbox::new("config-init");
    sandbox.ok(&["config", "init"]);
    let written = std::fs::read_to_string(sandbox.dir.join("tars.toml")).unwrap();
    assert!(written.contains("# port = 8099"), "{written}");
    assert!(written.contains("[thresholds]"), "{written}");
    sandbox.fails(&["config", "init"], "exists; pass --overwrite");
    // Uncommenting a line sets it.
    std::fs::write(
        sandbox.dir.join("tars.toml"),
        written.replace("# port = 8099", "port = 9001"),
    )
    .unwrap();
    let shown = sandbox.json(&["config", "show", "--json"]);
    assert_eq!(shown["port"]["value"], "9001", "{shown}");
    sandbox.ok(&["config", "init", "--overwrite"]);
    let printed = sandbox.ok(&["config", "init", "-"]);
    assert_eq!(printed, written);
}

#[test]
fn past_runs_are_listed_and_shown_and_bad_filters_say_what_is_valid() {
    let sandbox = Sandbox::new("history");
    let eval = |env: &str| {
        sandbox.json(&[
            "eval",
            "--agent",
            "ppo",
            "--env",
            env,
            "--hp",
            "n_timesteps=256",
            "--hp",
            "n_steps=32",
            "--hp",
            "batch_size=32",
            "--episodes",
            "2",
            "--json",
        ])
    };
    let first = eval("CartPole-v1");
    let second = eval("Acrobot-v1");
    let listed = sandbox.json(&["runs", "list", "--json"]);
    let runs = listed["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2, "{listed}");
    assert_eq!(runs[0]["run_id"], second["evaluation_id"], "newest first");
    assert_eq!(runs[1]["run_id"], first["evaluation_id"]);
    let acrobot = sandbox.json(&["runs", "list", "--env", "Acrobot-v1", "--json"]);
    assert_eq!(acrobot["runs"].as_array().unwrap().len(), 1);

    let table = sandbox.ok(&["runs", "list", "--limit", "1"]);
    assert!(
        table.contains(second["evaluation_id"].as_str().unwrap()),
        "{table}"
    );
    let cursor = table
        .lines()
        .last()
        .unwrap()
        .strip_prefix("more: --cursor ")
        .unwrap();
    let rest = sandbox.json(&["runs", "list", "--limit", "1", "--cursor", cursor, "--json"]);
    assert_eq!(rest["runs"][0]["run_id"], first["evaluation_id"]);
    assert!(rest["next_cursor"].is_null());

    let shown = sandbox.json(&["runs", "show", first["evaluation_id"].as_str().unwrap()]);
    assert_eq!(shown["evaluation_id"], first["evaluation_id"]);
    // Git-style: the first characters of an id name it when they name only it.
    let short = &first["evaluation_id"].as_str().unwrap()[..8];
    let shown = sandbox.json(&["runs", "show", short]);
    assert_eq!(shown["evaluation_id"], first["evaluation_id"]);
    sandbox.fails(
        &["runs", "show", "ffffffff-ffff"],
        "no run id starts with 'ffffffff-ffff'",
    );
    // `tars eval` runs in-process: no job.
    let jobs = sandbox.json(&["jobs", "list", "--json"]);
    assert!(jobs["jobs"].as_array().unwrap().is_empty(), "{jobs}");

    sandbox.fails(
        &["jobs", "list", "--kind", "study"],
        "valid: evaluation, training, trial",
    );
    sandbox.fails(
        &["runs", "list", "--since", "yesterday"],
        "is not an RFC 3339 time",
    );
    sandbox.fails(&["runs", "list", "--limit", "0"], "use 1 to 200");
    sandbox.fails(&["runs", "show", "nope"], "4 to 36 hex digits");
    sandbox.fails(&["jobs", "show", &uuid_like()], "does not exist");

    // Off a terminal and without --json, progress is a plain line per phase.
    let plain = sandbox.tars(&[
        "eval",
        "--agent",
        "ppo",
        "--env",
        "CartPole-v1",
        "--hp",
        "n_timesteps=256",
        "--hp",
        "n_steps=32",
        "--hp",
        "batch_size=32",
        "--episodes",
        "2",
    ]);
    let stderr = String::from_utf8_lossy(&plain.stderr);
    assert!(plain.status.success(), "{stderr}");
    for line in [
        "CartPole-v1: training ",
        "CartPole-v1: evaluating 2 episodes",
        "CartPole-v1: done, mean",
    ] {
        assert!(stderr.contains(line), "{line} missing: {stderr}");
    }
    assert!(!stderr.contains('\u{1b}'), "{stderr}");
}

fn uuid_like() -> String {
    "00000000-0000-4000-8000-000000000000".to_string()
}
