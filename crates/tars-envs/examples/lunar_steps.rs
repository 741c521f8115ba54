//! Runs 200 seeded `LunarLander-v3` episodes with random actions or gymnasium's heuristic and
//! prints the time per step: a fixed workload to profile the Box2D world under (`perf record`)
//! or to run against an instrumented Box2D (`scripts/box2d_velocity_cycles.patch`).
//!
//! `cargo run --release -p tars-envs --example lunar_steps -- [random|heuristic]`

use std::time::Instant;
use tars_envs::{Action, Env, LunarLander, LunarLanderOptions, Rng, heuristic_discrete};

fn main() {
    let policy = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "random".to_string());
    let heuristic = match policy.as_str() {
        "random" => false,
        "heuristic" => true,
        other => {
            eprintln!("unknown policy {other:?}; expected random or heuristic");
            std::process::exit(2);
        }
    };
    let mut env = LunarLander::discrete(LunarLanderOptions::default()).expect("default options");
    let max_steps = env.spec().max_episode_steps;
    let mut rng = Rng::new(1);
    let mut obs = [0.0f32; 8];
    let mut steps = 0u64;
    let start = Instant::now();
    for seed in 0..200 {
        env.reset(Some(seed));
        env.observe(&mut obs);
        for _ in 0..max_steps {
            let action = if heuristic {
                heuristic_discrete(&obs)
            } else {
                rng.below(4) as usize
            };
            let transition = env.step(Action::Discrete(action));
            env.observe(&mut obs);
            steps += 1;
            if transition.terminated {
                break;
            }
        }
    }
    let elapsed = start.elapsed();
    println!(
        "{policy}: {steps} steps in 200 episodes, {:.2} µs per step (resets included)",
        elapsed.as_secs_f64() * 1e6 / steps as f64
    );
}
