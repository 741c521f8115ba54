//! `tars bench …`: throughput measured here, printed beside the peer tools' figures
//! (../shared/PEERS.md, measured on the same kind of 2-core machine). Compare ratios.

use std::io::Write;
use std::process::ExitCode;

/// Arguments of `tars bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    target: BenchTarget,
}

#[derive(Debug, clap::Subcommand)]
enum BenchTarget {
    /// Environment steps/s, single and vectorised, beside gymnasium's.
    Envs {
        /// Seconds spent measuring each configuration.
        #[arg(long, default_value_t = 1.0)]
        seconds: f64,
        /// Environments in the vectorised configuration.
        #[arg(long, default_value_t = 4096)]
        num_envs: usize,
        /// Print JSON lines instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Nash solvers: all equilibria and Lemke–Howson, beside nashpy.
    Nash,
    /// Whole evaluations (training included) against the seeds' time targets.
    Eval {
        /// Only the quick-mode rows.
        #[arg(long)]
        quick: bool,
        /// Print JSON lines instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// HyperSync: reload latency over many config swaps while `act` is under load.
    Hypersync {
        #[arg(long, default_value_t = 1000)]
        swaps: u32,
        /// Concurrent `act` connections.
        #[arg(long, default_value_t = 4)]
        clients: usize,
        /// Print one JSON object instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Agents: train with RL Zoo budgets over several seeds, evaluate, beside SB3.
    Train {
        /// Seeds per row.
        #[arg(long, default_value_t = 5)]
        seeds: u64,
        /// Only this row, as algo:env (e.g. ppo:CartPole-v1).
        #[arg(long)]
        only: Option<String>,
        /// Steps between evaluations during training (SB3's EvalCallback defaults: 10,000
        /// steps, 5 episodes); the best evaluated policy gets its own column. 0: none.
        #[arg(long, default_value_t = 10_000)]
        eval_freq: u64,
        /// Print JSON lines instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Fleet mode: short evaluation jobs through replicas and workers (child processes) on
    /// PostgreSQL and NATS; submit rate, p99 submit latency, jobs/s.
    Fleet {
        #[arg(long, default_value_t = 10_000)]
        jobs: usize,
        #[arg(long, default_value_t = 2)]
        replicas: usize,
        #[arg(long, default_value_t = 2)]
        workers: usize,
        /// Concurrent submitting connections.
        #[arg(long, default_value_t = 32)]
        clients: usize,
        /// Episodes each job evaluates.
        #[arg(long, default_value_t = 2)]
        episodes: u32,
        #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
        database_url: String,
        #[arg(long, default_value = "nats://127.0.0.1:4222")]
        nats_url: String,
        /// Print one JSON object instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Samplers on Branin, Hartmann-6 and Rosenbrock-10, beside Optuna.
    Tune {
        /// Seeds per row (the median is reported).
        #[arg(long, default_value_t = 5)]
        seeds: u64,
        /// The first seed (PEERS.md's Optuna figures are seeds 0-4).
        #[arg(long, default_value_t = 0)]
        first_seed: u64,
        /// Trials per study.
        #[arg(long, default_value_t = 200)]
        trials: usize,
        /// Print JSON lines instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// gymnasium 1.4 single-env steps/s with `gym.make(id)`, recorded on an earlier machine
/// (PEERS.md), not measured by this command.
fn gymnasium_steps_per_second(env_id: &str) -> Option<f64> {
    Some(match env_id {
        "CartPole-v1" => 46_517.0,
        "Acrobot-v1" => 9_388.0,
        "MountainCar-v0" => 30_383.0,
        "Pendulum-v1" => 27_909.0,
        "MountainCarContinuous-v0" => 152_875.0,
        // Measured with scripts/bench_lunar.py (gymnasium 1.4.0) on the first machine.
        "LunarLander-v3" => 22_200.0,
        "LunarLanderContinuous-v3" => 18_100.0,
        _ => return None,
    })
}

/// What `tars bench` prints first when it runs from an unoptimised build.
const DEBUG_BUILD_WARNING: &str = "warning: this `tars` is a debug build, ~30x slower on \
numeric code than a release build, so these figures say nothing about T.A.R.S.' speed; run \
`cargo run --release -- bench ...` or a `cargo install --path crates/tars-cli` binary";

pub fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    if cfg!(debug_assertions) {
        eprintln!("{DEBUG_BUILD_WARNING}");
    }
    match args.target {
        BenchTarget::Envs {
            seconds,
            num_envs,
            json,
        } => envs(seconds, num_envs, json)?,
        BenchTarget::Nash => super::nash::bench()?,
        BenchTarget::Eval { quick, json } => super::bench_eval::run(quick, json)?,
        BenchTarget::Hypersync {
            swaps,
            clients,
            json,
        } => super::bench_hypersync::run(swaps, clients, json)?,
        BenchTarget::Train {
            seeds,
            only,
            eval_freq,
            json,
        } => super::bench_train::run(seeds, only.as_deref(), eval_freq, json)?,
        BenchTarget::Tune {
            seeds,
            first_seed,
            trials,
            json,
        } => super::bench_tune::run(first_seed, seeds, trials, json)?,
        BenchTarget::Fleet {
            jobs,
            replicas,
            workers,
            clients,
            episodes,
            database_url,
            nats_url,
            json,
        } => super::bench_fleet::run(super::bench_fleet::Options {
            jobs,
            replicas,
            workers,
            clients,
            episodes,
            database_url,
            nats_url,
            json,
        })?,
    }
    Ok(ExitCode::SUCCESS)
}

/// Steps/s of a random rollout, grown until it lasts at least `seconds`.
fn measure(env_id: &str, num_envs: usize, seconds: f64) -> anyhow::Result<f64> {
    let mut steps = 10_000u64.max(num_envs as u64 * 10);
    loop {
        let stats = super::env::run_rollout(
            env_id,
            steps,
            num_envs,
            0,
            super::env::RolloutPolicy::Random,
        )?;
        if stats.seconds >= seconds {
            return Ok(stats.steps as f64 / stats.seconds);
        }
        let scale = (seconds / stats.seconds.max(1e-6)).clamp(2.0, 100.0);
        steps = (steps as f64 * scale * 1.1) as u64;
    }
}

fn envs(seconds: f64, num_envs: usize, json: bool) -> anyhow::Result<()> {
    anyhow::ensure!(seconds > 0.0, "--seconds must be positive, got {seconds}");
    anyhow::ensure!(
        num_envs >= 1,
        "--num-envs must be at least 1, got {num_envs}"
    );
    let mut out = std::io::stdout().lock();
    if !json {
        writeln!(
            out,
            "random actions, resets included; threads: {}; the gymnasium column is PEERS.md's \
             figures from another machine (scripts/bench_lunar.py measures LunarLander here)",
            rayon_threads()
        )?;
        writeln!(
            out,
            "{:<26} {:>14} {:>14} {:>10} {:>18}",
            "env",
            "1 env steps/s",
            "gymnasium",
            "ratio",
            format!("{num_envs} envs steps/s")
        )?;
    }
    for spec in tars_envs::specs() {
        let single = measure(spec.id, 1, seconds)?;
        let vectorised = measure(spec.id, num_envs, seconds)?;
        let peer = gymnasium_steps_per_second(spec.id);
        if json {
            let value = serde_json::json!({
                "env": spec.id, "single_steps_per_second": single, "gymnasium_steps_per_second": peer,
                "ratio": peer.map(|p| single / p), "num_envs": num_envs, "vectorised_steps_per_second": vectorised,
            });
            writeln!(out, "{value}")?;
        } else {
            let (peer_text, ratio) = match peer {
                Some(p) => (format!("{p:.0}"), format!("{:.1}x", single / p)),
                None => ("n/a".to_string(), "n/a".to_string()),
            };
            writeln!(
                out,
                "{:<26} {single:>14.0} {peer_text:>14} {ratio:>10} {vectorised:>18.0}",
                spec.id
            )?;
        }
    }
    Ok(())
}

fn rayon_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
