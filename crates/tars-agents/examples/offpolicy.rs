//! Trains DQN or DDPG on one environment for several seeds and evaluates each trained policy
//! deterministically over 50 episodes, printing train seconds and the evaluation mean.
//!
//! ```text
//! cargo run -p tars-agents --release --example offpolicy -- dqn CartPole-v1 0..5
//! cargo run -p tars-agents --release --example offpolicy -- ddpg Pendulum-v1 0..5 20000 '{"net_arch": [64, 64]}'
//! ```
//!
//! Arguments: algorithm, environment id, seeds (`3` or `0..5`), optional budget (`-` keeps
//! the Zoo's), optional JSON object of hyperparameter overrides.

use std::time::Instant;

use tars_agents::{Algo, Policy, PolicyNet, Silent, TrainOutput};
use tars_envs::{Actions, Rng, VecEnv};

const EVAL_EPISODES: usize = 50;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 3 {
        eprintln!(
            "usage: offpolicy <dqn|ddpg> <env-id> <seeds: N or A..B> [n_timesteps|-] [overrides-json]"
        );
        std::process::exit(2);
    }
    let algo: Algo = args[0].parse().expect("algorithm");
    let env_id = &args[1];
    let seeds: Vec<u64> = match args[2].split_once("..") {
        Some((a, b)) => (a.parse().expect("seed")..b.parse().expect("seed")).collect(),
        None => vec![args[2].parse().expect("seed")],
    };
    let n_timesteps = args
        .get(3)
        .filter(|s| *s != "-")
        .map(|s| s.parse::<f64>().expect("budget") as u64);
    let overrides: serde_json::Map<String, serde_json::Value> = match args.get(4) {
        Some(json) => serde_json::from_str(json).expect("overrides must be a JSON object"),
        None => serde_json::Map::new(),
    };

    let (mut train_seconds, mut means) = (Vec::new(), Vec::new());
    for &seed in &seeds {
        let (start, cpu_start) = (Instant::now(), cpu_seconds());
        let trained: Result<TrainOutput, _> = match algo {
            Algo::Dqn => {
                tars_agents::dqn::train(env_id, &overrides, seed, n_timesteps, &mut Silent)
            }
            Algo::Ddpg => {
                tars_agents::ddpg::train(env_id, &overrides, seed, n_timesteps, &mut Silent)
            }
            other => panic!("{other} is not an off-policy algorithm"),
        };
        let mut output = trained.unwrap_or_else(|err| panic!("training failed: {err}"));
        let (seconds, cpu) = (start.elapsed().as_secs_f64(), cpu_seconds() - cpu_start);
        let (mean, std) = evaluate(&mut output.policy, env_id, 1_000 + seed);
        println!(
            "{algo} {env_id} seed {seed}: train {seconds:.2} s wall, {cpu:.2} s cpu ({} steps), eval {mean:.1} ± {std:.1}",
            output.timesteps
        );
        train_seconds.push(seconds);
        means.push(mean);
    }
    let average = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    println!(
        "{algo} {env_id}: mean train {:.2} s, eval means {:?}",
        average(&train_seconds),
        means
            .iter()
            .map(|m| (m * 10.0).round() / 10.0)
            .collect::<Vec<_>>()
    );
}

/// CPU time of this thread so far (`/proc/self/schedstat`), which other processes on a shared
/// machine inflate less than wall time; 0 where unavailable.
fn cpu_seconds() -> f64 {
    let schedstat = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
    let nanos = schedstat
        .split_whitespace()
        .next()
        .and_then(|n| n.parse::<f64>().ok());
    nanos.unwrap_or(0.0) * 1e-9
}

/// Mean and std of the returns of `EVAL_EPISODES` deterministic episodes on one environment.
fn evaluate(policy: &mut Policy, env_id: &str, seed: u64) -> (f64, f64) {
    let mut vec_env = VecEnv::make(env_id, 1, seed).expect("environment");
    let mut rng = Rng::new(seed);
    let mut returns = Vec::with_capacity(EVAL_EPISODES);
    let mut env_action = Vec::new();
    while returns.len() < EVAL_EPISODES {
        let obs = vec_env.obs.clone();
        match &mut policy.net {
            // FIXME: `Policy::act` maps the actor's [-1, 1] output with `ActionBounds::scale`
            // instead of `unscale`, halving Pendulum's torque; act as SB3's `predict` does here.
            PolicyNet::Deterministic { actor, bounds } => {
                let squashed = actor.forward(&obs);
                env_action.resize(squashed.len(), 0.0);
                bounds.unscale(squashed, &mut env_action);
                vec_env.step(Actions::Continuous(&env_action));
            }
            _ => vec_env.step(policy.act(&obs, true, &mut rng)),
        }
        if vec_env.done(0) {
            returns.push(vec_env.episode_returns[0]);
        }
    }
    let mean = returns.iter().sum::<f64>() / returns.len() as f64;
    let var = returns.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / returns.len() as f64;
    (mean, var.sqrt())
}
