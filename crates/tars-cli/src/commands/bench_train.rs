//! `tars bench train`: the agents' benchmark table — RL Zoo budgets and hyperparameters,
//! several seeds per row, training time and deterministic evaluation (50 episodes) of the
//! final policy and of the best one of SB3-`EvalCallback` evaluations during training, beside
//! the Stable-Baselines3 / RL Zoo figures of ../shared/PEERS.md.

use serde_json::json;
use std::io::Write;
use std::time::Instant;
use tars_agents::train::EvaluatedRun;
use tars_agents::{Algo, EvalConfig, Silent};

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
        algo: Algo::Td3,
        env_id: "Pendulum-v1",
        timesteps: None,
        sb3: "176-178 s here, -149/-155",
        target: ">= -200 on >= 4/5 (DDPG's)",
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

/// What one seed of a row gave.
struct SeedResult {
    seconds: f64,
    /// 50-episode evaluation of the final policy.
    score: f64,
    /// 50-episode evaluation of the best policy of the periodic evaluations, and its step.
    best: Option<(f64, u64)>,
}

/// Runs the rows whose `algo:env` matches `only` (all when None) for `seeds` seeds; with
/// `eval_freq > 0` training also evaluates every `eval_freq` steps (5 episodes, SB3's
/// `EvalCallback`) and the best of those policies is scored beside the final one.
pub fn run(seeds: u64, only: Option<&str>, eval_freq: u64, json_out: bool) -> anyhow::Result<()> {
    anyhow::ensure!(seeds >= 1, "--seeds must be at least 1");
    // One run at a time: the off-policy algorithms' training phases may use the
    // second core.
    tars_agents::nn::pair::enable();
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
            "{:<5} {:<15} {:>9} {:>29} {:>29}  {:<26} {:<24} passed (final, best)",
            "algo",
            "env",
            "median s",
            "final policy per seed",
            "best checkpoint per seed",
            "SB3 / RL Zoo here",
            "target"
        )?;
    }
    for row in rows {
        let mut results = Vec::new();
        let mut eval_ms = None;
        for seed in 0..seeds {
            let result = run_seed(row, seed, eval_freq, &mut eval_ms)?;
            results.push(result);
        }
        let scores: Vec<f64> = results.iter().map(|r| r.score).collect();
        let best: Vec<Option<f64>> = results.iter().map(|r| r.best.map(|b| b.0)).collect();
        let passed = scores.iter().filter(|&&s| s >= row.pass_at).count();
        let best_passed = best.iter().flatten().filter(|&&s| s >= row.pass_at).count();
        let mut sorted: Vec<f64> = results.iter().map(|r| r.seconds).collect();
        sorted.sort_by(f64::total_cmp);
        let median = sorted[sorted.len() / 2];
        if json_out {
            let seconds: Vec<f64> = results.iter().map(|r| r.seconds).collect();
            let best_steps: Vec<Option<u64>> =
                results.iter().map(|r| r.best.map(|b| b.1)).collect();
            let value = json!({
                "algo": row.algo.name(), "env": row.env_id, "timesteps": row.timesteps, "train_seconds": seconds,
                "eval_mean_reward": scores, "passed": passed, "seeds": seeds, "pass_at": row.pass_at,
                "eval_freq": eval_freq, "best_eval_mean_reward": best, "best_timestep": best_steps,
                "best_passed": best_passed, "eval_50_episodes_ms": eval_ms, "sb3": row.sb3,
                "target": row.target,
            });
            writeln!(out, "{value}")?;
        } else {
            let format = |scores: &mut dyn Iterator<Item = Option<f64>>| {
                let cells: Vec<String> = scores
                    .map(|s| s.map_or("-".into(), |s| format!("{s:.0}")))
                    .collect();
                cells.join(" ")
            };
            writeln!(
                out,
                "{:<5} {:<15} {median:>9.2} {:>29} {:>29}  {:<26} {:<24} {passed}/{seeds}, {best_passed}/{seeds}",
                row.algo.name(),
                row.env_id,
                format(&mut scores.iter().map(|&s| Some(s))),
                format(&mut best.iter().copied()),
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

/// Trains one seed of `row` (timed, periodic evaluations included) and scores its final
/// and best policies on the same 50 episodes.
fn run_seed(
    row: &Row,
    seed: u64,
    eval_freq: u64,
    eval_ms: &mut Option<f64>,
) -> anyhow::Result<SeedResult> {
    let eval = (eval_freq > 0).then(|| EvalConfig {
        eval_freq,
        ..EvalConfig::sb3_defaults(2_000_000 + seed)
    });
    let start = Instant::now();
    let EvaluatedRun { output, best, .. } = tars_agents::train::train_with_evaluations(
        row.algo,
        row.env_id,
        &Default::default(),
        seed,
        row.timesteps,
        &mut Silent,
        eval,
    )?;
    let seconds = start.elapsed().as_secs_f64();
    let mut policy = output.policy;
    let eval_start = Instant::now();
    let evaluation = tars_agents::evaluate(&mut policy, 50, 1_000_000 + seed, true)?;
    eval_ms.get_or_insert(eval_start.elapsed().as_secs_f64() * 1e3);
    let best = match best {
        Some(mut best) => {
            let evaluation = tars_agents::evaluate(&mut best.policy, 50, 1_000_000 + seed, true)?;
            Some((evaluation.mean_reward(), best.timestep))
        }
        None => None,
    };
    Ok(SeedResult {
        seconds,
        score: evaluation.mean_reward(),
        best,
    })
}
