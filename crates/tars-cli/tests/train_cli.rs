//! `tars train` and `tars evaluate` end to end: a short real training run writes a checkpoint
//! that evaluates to the same score, and bad input fails with a clear message.

use serde_json::Value;
use std::process::{Command, Output};

fn tars(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tars"))
        .args(args)
        .output()
        .expect("tars runs")
}

/// `tars <args>`, which must succeed, and the JSON it prints.
fn tars_json(args: &[&str]) -> Value {
    let output = tars(args);
    assert!(
        output.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

#[test]
fn train_writes_a_checkpoint_that_evaluates_to_the_same_score() {
    let dir = std::env::temp_dir().join(format!("tars-train-cli-{}", std::process::id()));
    let dir_str = dir.to_str().unwrap();
    let trained = tars_json(&[
        "train",
        "--algo",
        "ppo",
        "--env",
        "CartPole-v1",
        "--seed",
        "3",
        "--timesteps",
        "30000",
        "--out",
        dir_str,
        "--json",
    ]);
    for key in [
        "algo",
        "env",
        "seed",
        "timesteps",
        "train_seconds",
        "eval_mean_reward",
        "eval_std_reward",
        "eval_episodes",
        "checkpoint",
    ] {
        assert!(trained.get(key).is_some(), "missing {key} in {trained}");
    }
    let trained_mean = trained["eval_mean_reward"].as_f64().unwrap();
    assert!(
        trained_mean > 150.0,
        "PPO learned CartPole in 3e4 steps: {trained_mean}"
    );
    assert!(dir.join("model.safetensors").exists() && dir.join("metadata.json").exists());

    let evaluated = tars_json(&[
        "evaluate",
        "--checkpoint",
        dir_str,
        "--episodes",
        "50",
        "--seed",
        "1000003",
        "--json",
    ]);
    assert_eq!(
        evaluated["mean_reward"].as_f64().unwrap(),
        trained_mean,
        "same seed, same episodes"
    );
    assert_eq!(evaluated["episode_returns"].as_array().unwrap().len(), 50);

    // The same directory again: refused, unless asked to replace it.
    let again = tars(&[
        "train",
        "--algo",
        "ppo",
        "--env",
        "CartPole-v1",
        "--timesteps",
        "256",
        "--out",
        dir_str,
    ]);
    assert_eq!(again.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(
        stderr.contains("already holds a checkpoint; pass --overwrite"),
        "{stderr}"
    );
    assert_eq!(
        tars_json(&[
            "evaluate",
            "--checkpoint",
            dir_str,
            "--episodes",
            "50",
            "--seed",
            "1000003",
            "--json"
        ])["mean_reward"],
        evaluated["mean_reward"],
        "the refused run left the checkpoint as it was"
    );

    std::fs::write(dir.join("model.safetensors"), b"not a safetensors file").unwrap();
    let output = tars(&["evaluate", "--checkpoint", dir_str]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("loading checkpoint") && stderr.contains("model.safetensors is corrupted"),
        "{stderr}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn eval_freq_keeps_the_best_policy_as_its_own_checkpoint() {
    let dir = std::env::temp_dir().join(format!("tars-train-best-{}", std::process::id()));
    let dir_str = dir.to_str().unwrap();
    let trained = tars_json(&[
        "train",
        "--algo",
        "dqn",
        "--env",
        "CartPole-v1",
        "--seed",
        "2",
        "--timesteps",
        "10000",
        "--hp",
        "net_arch=[64,64]",
        "--eval-freq",
        "2000",
        "--eval-freq-episodes",
        "3",
        "--out",
        dir_str,
        "--json",
    ]);
    assert_eq!(trained["evaluations_during_training"], 5, "{trained}");
    let best = &trained["best"];
    let step = best["timestep"].as_u64().expect("a best policy");
    assert!(step.is_multiple_of(2000) && step <= 10_000, "{best}");
    let best_dir = dir.join("best");
    assert_eq!(best["checkpoint"], best_dir.to_str().unwrap());
    // With --out, a proposal names the checkpoints by their paths.
    assert_eq!(trained["checkpoint_id"], dir_str);
    assert_eq!(best["checkpoint_id"], format!("{dir_str}/best"));

    // The best checkpoint is a checkpoint: it evaluates to the reported score, and its
    // metadata stops at its step, evaluations during training included.
    let evaluated = tars_json(&[
        "evaluate",
        "--checkpoint",
        best_dir.to_str().unwrap(),
        "--seed",
        "1000002",
        "--json",
    ]);
    assert_eq!(evaluated["mean_reward"], best["eval_mean_reward"]);
    let metadata: Value =
        serde_json::from_slice(&std::fs::read(best_dir.join("metadata.json")).unwrap()).unwrap();
    assert_eq!(metadata["timesteps"], step);
    let curve = metadata["training_curve"].as_array().unwrap();
    let evals = curve.iter().filter(|p| p["key"] == "eval/mean_reward");
    let eval_steps: Vec<u64> = evals.map(|p| p["timestep"].as_u64().unwrap()).collect();
    assert_eq!(eval_steps, (2000..=step).step_by(2000).collect::<Vec<_>>());
    assert!(
        curve
            .iter()
            .all(|p| p["timestep"].as_u64().unwrap() <= step)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_training_requests_name_what_is_valid() {
    let cases: [(&[&str], &str); 6] = [
        (
            &["train", "--algo", "sac", "--env", "CartPole-v1"],
            "unknown algorithm 'sac'; valid algorithms: dqn, a2c, ppo, ddpg, td3",
        ),
        (
            &[
                "train",
                "--algo",
                "ppo",
                "--env",
                "CartPole-v1",
                "--hp",
                "clip_coef=0.1",
            ],
            "unknown PPO hyperparameter 'clip_coef' (did you mean 'clip_range'?)",
        ),
        (
            &[
                "train",
                "--algo",
                "dqn",
                "--env",
                "CartPole-v1",
                "--hp",
                "gamma=1.5",
            ],
            "invalid DQN hyperparameter gamma = 1.5",
        ),
        (
            &["train", "--algo", "ddpg", "--env", "CartPole-v1"],
            "DDPG cannot train on CartPole-v1",
        ),
        (
            &[
                "train",
                "--algo",
                "dqn",
                "--env",
                "CartPole-v1",
                "--eval-freq",
                "0",
            ],
            "--eval-freq must be at least 1 step; leave it out to skip evaluations",
        ),
        (
            &[
                "train",
                "--algo",
                "dqn",
                "--env",
                "CartPole-v1",
                "--eval-freq",
                "1000",
                "--eval-freq-episodes",
                "0",
            ],
            "--eval-freq-episodes must be between 1 and 10000, got 0",
        ),
    ];
    for (args, expected) in cases {
        let output = tars(args);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
    let output = tars(&["evaluate", "--checkpoint", "/nonexistent/tars-checkpoint"]);
    assert!(
        String::from_utf8_lossy(&output.stderr)
            .contains("reading /nonexistent/tars-checkpoint/model.safetensors")
    );
}

#[test]
fn lunar_lander_heuristic_lands_and_aliases_resolve() {
    let stats = tars_json(&[
        "env",
        "rollout",
        "LunarLander-v2",
        "--policy",
        "heuristic",
        "--steps",
        "30000",
        "--num-envs",
        "2",
        "--json",
    ]);
    assert_eq!(stats["env"], "LunarLander-v3");
    assert!(
        stats["mean_episode_return"].as_f64().unwrap() > 150.0,
        "{stats}"
    );
    let output = tars(&[
        "env",
        "rollout",
        "CartPole-v1",
        "--policy",
        "heuristic",
        "--steps",
        "10",
    ]);
    assert!(
        String::from_utf8_lossy(&output.stderr)
            .contains("--policy heuristic exists only for LunarLander")
    );
}
