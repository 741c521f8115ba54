//! Trains PPO or A2C with the RL Zoo's hyperparameters on several seeds and reports the
//! training time and the deterministic 50-episode evaluation of each run.
//!
//! ```text
//! cargo run --release -p tars-agents --example onpolicy_bench -- ppo CartPole-v1 0,1,2,3,4 [n_timesteps] [key=json ...]
//! ```

use std::time::Instant;

use serde_json::{Map, Value};
use tars_agents::{Policy, Silent, a2c, ppo};
use tars_envs::{Rng, VecEnv};

/// Mean return of `n_episodes` episodes on one environment with deterministic actions.
fn evaluate(policy: &mut Policy, n_episodes: usize, seed: u64) -> f64 {
    let mut vec_env = VecEnv::make(&policy.env_id.clone(), 1, seed).expect("a known env");
    let mut rng = Rng::new(seed);
    let mut obs = vec_env.obs.clone();
    let mut returns = Vec::with_capacity(n_episodes);
    while returns.len() < n_episodes {
        vec_env.step(policy.act(&obs, true, &mut rng));
        obs.copy_from_slice(&vec_env.obs);
        if vec_env.done(0) {
            returns.push(vec_env.episode_returns[0]);
        }
    }
    returns.iter().sum::<f64>() / n_episodes as f64
}

/// CPU time of this thread in seconds (`/proc/self/schedstat`), which the machine's load does
/// not inflate the way it inflates wall-clock time.
fn cpu_seconds() -> f64 {
    std::fs::read_to_string("/proc/self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .map_or(f64::NAN, |ns| ns * 1e-9)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: onpolicy_bench <ppo|a2c> <env-id> <seeds,...> [n_timesteps] [key=json ...]";
    let (algo, env_id, seeds) = match &args[..] {
        [algo, env_id, seeds, ..] => (algo.as_str(), env_id.as_str(), seeds),
        _ => panic!("{usage}"),
    };
    let seeds: Vec<u64> = seeds
        .split(',')
        .map(|s| s.parse().expect("seeds are integers"))
        .collect();
    let mut n_timesteps = None;
    let mut overrides = Map::new();
    for arg in &args[3..] {
        match arg.split_once('=') {
            Some((key, value)) => {
                let value = serde_json::from_str(value).unwrap_or_else(|_| Value::from(value));
                overrides.insert(key.to_string(), value);
            }
            None => n_timesteps = Some(arg.parse::<f64>().expect("n_timesteps is a number") as u64),
        }
    }
    let mut scores = Vec::new();
    for seed in seeds {
        let (start, cpu_start) = (Instant::now(), cpu_seconds());
        let output = match algo {
            "ppo" => ppo::train(env_id, &overrides, seed, n_timesteps, &mut Silent),
            "a2c" => a2c::train(env_id, &overrides, seed, n_timesteps, &mut Silent),
            _ => panic!("{usage}"),
        }
        .unwrap_or_else(|err| panic!("{err}"));
        let train_seconds = start.elapsed().as_secs_f64();
        let train_cpu = cpu_seconds() - cpu_start;
        let mut policy = output.policy;
        let start = Instant::now();
        let score = evaluate(&mut policy, 50, 1_000 + seed);
        println!(
            "{algo} {env_id} seed {seed}: {} steps in {train_seconds:.2} s ({train_cpu:.2} s CPU), eval mean {score:.1} \
             ({:.2} s)",
            output.timesteps,
            start.elapsed().as_secs_f64()
        );
        scores.push(score);
    }
    println!("scores: {scores:?}");
}
