//! `tars bench train`: the agents' benchmark table — RL Zoo budgets and hyperparameters,
//! several seeds per row, training time and deterministic evaluation (50 episodes), beside
//! the Stable-Baselines3 / RL Zoo figures of ../shared/PEERS.md.

use serde_json::json;
use std::io::Write;
use std::time::Instant;
use tars_agents::{Algo, Silent};

/// One benchmark row: what is trained, SB3's figure here, and our target.
struct Row {
    algo: Algo,
    env_id: &'static str,
    /// Budget in steps (None: the RL Zoo's).
    timesteps: Option<u64>,
    sb3: &'static str,
    target: &'static str,
    /// A seed passes when its evaluation mean reaches this.
    pass_at: f64,
}

const ROWS: &[Row] = &[
    Row {
        algo: Algo::Ppo,
        env_id: "CartPole-v1",
        timesteps: Some(100_000),
        sb3: "53-65 s, 500",
        target: "<= 5 s, 500 on >= 4/5",
        pass_at: 500.0,
    },
    Row {
        algo: Algo::Dqn,
        env_id: "CartPole-v1",
        timesteps: Some(50_000),
        sb3: "127-140 s, 1/2 solve",
        target: "<= 10 s, >= 475 on >= 4/5",
        pass_at: 475.0,
    },
    Row {
        algo: Algo::A2c,
        env_id: "CartPole-v1",
        timesteps: Some(500_000),
        sb3: "133-139 s, 500",
        target: "<= 10 s, >= 475 on >= 4/5",
        pass_at: 475.0,
    },
    Row {
        algo: Algo::Ddpg,
        env_id: "Pendulum-v1",
        timesteps: None,
        sb3: "zoo -152",
        target: ">= -200 on >= 4/5",
        pass_at: -200.0,
    },
    Row {
        algo: Algo::Ppo,
        env_id: "Acrobot-v1",
        timesteps: None,
        sb3: "zoo -74",
        target: ">= -100",
        pass_at: -100.0,
    },
    Row {
        algo: Algo::Dqn,
        env_id: "Acrobot-v1",
        timesteps: None,
        sb3: "zoo -77",
        target: ">= -100",
        pass_at: -100.0,
    },
    Row {
        algo: Algo::Dqn,
        env_id: "MountainCar-v0",
        timesteps: None,
        sb3: "zoo -101",
        target: ">= -120",
        pass_at: -120.0,
    },
];

/// Runs the rows whose `algo:env` matches `only` (all when None) for `seeds` seeds.
pub fn run(seeds: u64, only: Option<&str>, json_out: bool) -> anyhow::Result<()> {
    anyhow::ensure!(seeds >= 1, "--seeds must be at least 1");
    let rows: Vec<&Row> = ROWS
        .iter()
        .filter(|row| {
            only.is_none_or(|o| {
                format!("{}:{}", row.algo.name(), row.env_id).eq_ignore_ascii_case(o)
            })
        })
        .collect();
    anyhow::ensure!(
        !rows.is_empty(),
        "--only {:?} matches no row; valid: {}",
        only.unwrap_or(""),
        ROWS.iter()
            .map(|r| format!("{}:{}", r.algo.name().to_lowercase(), r.env_id))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut out = std::io::stdout().lock();
    if !json_out {
        writeln!(
            out,
            "{:<5} {:<15} {:>9} {:>24}  {:<26} {:<24} passed",
            "algo", "env", "median s", "eval mean per seed", "SB3 / RL Zoo here", "target"
        )?;
    }
    for row in rows {
        let (mut seconds, mut scores) = (Vec::new(), Vec::new());
        let mut eval_ms = None;
        for seed in 0..seeds {
            let start = Instant::now();
            let output = tars_agents::train::train(
                row.algo,
                row.env_id,
                &Default::default(),
                seed,
                row.timesteps,
                &mut Silent,
            )?;
            seconds.push(start.elapsed().as_secs_f64());
            let mut policy = output.policy;
            let eval_start = Instant::now();
            let evaluation = tars_agents::evaluate(&mut policy, 50, 1_000_000 + seed, true)?;
            eval_ms.get_or_insert(eval_start.elapsed().as_secs_f64() * 1e3);
            scores.push(evaluation.mean_reward());
        }
        let passed = scores.iter().filter(|&&s| s >= row.pass_at).count();
        let mut sorted = seconds.clone();
        sorted.sort_by(f64::total_cmp);
        let median = sorted[sorted.len() / 2];
        if json_out {
            let value = json!({
                "algo": row.algo.name(), "env": row.env_id, "timesteps": row.timesteps, "train_seconds": seconds,
                "eval_mean_reward": scores, "passed": passed, "seeds": seeds, "pass_at": row.pass_at,
                "eval_50_episodes_ms": eval_ms, "sb3": row.sb3, "target": row.target,
            });
            writeln!(out, "{value}")?;
        } else {
            let per_seed: Vec<String> = scores.iter().map(|s| format!("{s:.0}")).collect();
            writeln!(
                out,
                "{:<5} {:<15} {median:>9.2} {:>24}  {:<26} {:<24} {passed}/{seeds}",
                row.algo.name(),
                row.env_id,
                per_seed.join(" "),
                row.sb3,
                row.target
            )?;
            if let Some(ms) = eval_ms {
                writeln!(
                    out,
                    "      (evaluating 50 episodes of the seed-0 policy took {ms:.1} ms)"
                )?;
            }
        }
    }
    Ok(())
}
