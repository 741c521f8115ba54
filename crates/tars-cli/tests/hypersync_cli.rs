//! `tars propose`, `tars proposals`, `tars rollback` and `tars agents config` on an embedded
//! store: real evaluations gate real config versions.

mod common;

use common::Sandbox;

#[test]
fn propose_approve_auto_apply_and_roll_back_from_the_command_line() {
    let sandbox = Sandbox::new("hypersync");
    sandbox.ok(&[
        "baseline",
        "insert",
        "--agent",
        "PPO",
        "--env",
        "CartPole-v1",
        "--mean",
        "50",
        "--std",
        "10",
        "--success",
        "0",
    ]);
    let proposed = sandbox.json(&[
        "propose",
        "--agent",
        "ppo",
        "--hyperparameters",
        r#"{"learning_rate": 0.001}"#,
        "--quick",
        "--episodes",
        "20",
        "--reason",
        "tuned",
        "--json",
    ]);
    assert_eq!(proposed["status"], "awaiting_approval", "{proposed}");
    let id = proposed["id"].as_str().unwrap();
    let listed = sandbox.json(&[
        "proposals",
        "list",
        "--status",
        "awaiting_approval",
        "--json",
    ]);
    assert_eq!(listed[0]["id"], id);

    let approved = sandbox.ok(&["proposals", "approve", id]);
    assert!(approved.contains("applied as config v1"), "{approved}");
    let config = sandbox.json(&["agents", "config", "show", "--agent", "PPO", "--json"]);
    assert_eq!(config[0]["version"], 1);
    assert_eq!(config[0]["checkpoint_id"], format!("proposal-{id}"));

    let auto = sandbox.json(&[
        "propose",
        "--agent",
        "PPO",
        "--hyperparameters",
        r#"{"learning_rate": 0.0015}"#,
        "--quick",
        "--episodes",
        "20",
        "--auto-apply",
        "--json",
    ]);
    assert_eq!(auto["status"], "applied", "{auto}");
    assert_eq!(auto["applied_version"], 2);

    let back = sandbox.ok(&["rollback", "--agent", "ppo", "--reason", "Manual rollback"]);
    assert_eq!(back.trim(), "PPO is at config v3 (restores v1)");
    let history = sandbox.json(&["agents", "config", "history", "--agent", "PPO", "--json"]);
    let versions: Vec<_> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["version"].as_i64().unwrap(),
                c["action"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        versions,
        [
            (1, "apply".into()),
            (2, "apply".into()),
            (3, "rollback".into())
        ]
    );
    let shown = sandbox.json(&["proposals", "show", auto["id"].as_str().unwrap(), "--json"]);
    assert_eq!(shown["status"], "rolled_back");
    assert_eq!(shown["history"].as_array().unwrap().len(), 5);

    // Bad input: a clear message, nothing changed.
    sandbox.fails(
        &["propose", "--agent", "sac"],
        "valid: DQN, A2C, PPO, DDPG, TD3",
    );
    sandbox.fails(
        &["propose", "--agent", "ppo", "--hyperparameters", "[1]"],
        "--hyperparameters must be a JSON object",
    );
    sandbox.fails(
        &["proposals", "approve", id],
        "cannot approve a proposal that is applied",
    );
    sandbox.fails(&["proposals", "list", "--status", "done"], "valid: pending");
    sandbox.fails(&["rollback", "--agent", "a2c"], "A2C has no active config");
    sandbox.fails(
        &["rollback", "--agent", "ppo", "--to-version", "9"],
        "valid 1..=2",
    );
    let config = sandbox.json(&["agents", "config", "show", "--agent", "PPO", "--json"]);
    assert_eq!(config[0]["version"], 3);
    // The same rollback, for scripts.
    let again = sandbox.json(&["rollback", "--agent", "ppo", "--to-version", "2", "--json"]);
    assert_eq!(again["agent_type"], "PPO", "{again}");
    assert_eq!(
        (
            again["version"].as_i64(),
            again["restored_version"].as_i64()
        ),
        (Some(4), Some(2))
    );
}
