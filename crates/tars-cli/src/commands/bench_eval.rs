//! `tars bench eval`: whole evaluations (training included) timed end to end against the
//! seeds' targets (50 episodes < 30 s, 100 < 60 s, 3 environments < 120 s) and ours (quick DQN
//! CartPole < 3 s; quick DQN on CartPole + LunarLander + MountainCar < 15 s). Each row uses a
//! fresh engine, so nothing comes from the policy cache.

use serde_json::json;
use std::io::Write;
use std::time::Instant;
use tars_eval::engine::Quiet;
use tars_eval::{Engine, EngineConfig, EvalRequest, Inputs};

struct Row {
    name: &'static str,
    request: serde_json::Value,
    target_seconds: f64,
}

fn rows() -> Vec<Row> {
    let dqn = |envs: &[&str], quick: bool, episodes: u32| {
        json!({"agent_type": "DQN", "environments": envs, "quick_mode": quick,
               "num_episodes": episodes, "seed": 0})
    };
    vec![
        Row {
            name: "quick DQN CartPole-v1, 50 episodes",
            request: dqn(&["CartPole-v1"], true, 50),
            target_seconds: 3.0,
        },
        Row {
            name: "quick DQN CartPole + LunarLander + MountainCar, 50 episodes",
            request: dqn(
                &["CartPole-v1", "LunarLander-v3", "MountainCar-v0"],
                true,
                50,
            ),
            target_seconds: 15.0,
        },
        Row {
            name: "DQN CartPole-v1 (Zoo budget), 50 episodes",
            request: dqn(&["CartPole-v1"], false, 50),
            target_seconds: 30.0,
        },
        Row {
            name: "DQN CartPole-v1 (Zoo budget), 100 episodes",
            request: dqn(&["CartPole-v1"], false, 100),
            target_seconds: 60.0,
        },
        Row {
            name: "DQN CartPole + LunarLander + MountainCar (Zoo budgets), 100 episodes",
            request: dqn(
                &["CartPole-v1", "LunarLander-v3", "MountainCar-v0"],
                false,
                100,
            ),
            target_seconds: 120.0,
        },
    ]
}

pub fn run(only_quick: bool, json_lines: bool) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if !json_lines {
        writeln!(
            out,
            "{:<70} {:>9} {:>8}  mean rewards",
            "evaluation", "seconds", "target"
        )?;
    }
    for row in rows() {
        let quick = row.request["quick_mode"].as_bool().unwrap_or(false);
        if only_quick && !quick {
            continue;
        }
        let request: EvalRequest = serde_json::from_value(row.request.clone())?;
        let engine = Engine::new(EngineConfig::default());
        let plan = request.validate(engine.config(), 0)?;
        let start = Instant::now();
        let response = engine.evaluate(&plan, &Inputs::default(), &Quiet)?;
        let seconds = start.elapsed().as_secs_f64();
        let means: Vec<String> = response
            .results
            .iter()
            .map(|r| format!("{}: {:.1}", r.environment, r.metrics.metrics.mean_reward))
            .collect();
        if json_lines {
            writeln!(
                out,
                "{}",
                json!({"evaluation": row.name, "seconds": seconds, "target_seconds": row.target_seconds,
                       "mean_rewards": means})
            )?;
        } else {
            writeln!(
                out,
                "{:<70} {:>9.2} {:>7.0}s  {}",
                row.name,
                seconds,
                row.target_seconds,
                means.join(", ")
            )?;
        }
    }
    Ok(())
}
