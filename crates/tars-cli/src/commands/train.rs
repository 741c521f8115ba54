//! `tars train` and `tars evaluate`: train an agent, write its checkpoint, evaluate it.

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Map, Value, json};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;
use tars_agents::{Algo, Control, Observer, Progress};
use tars_server::training::{TrainRequest, TrainRun};

/// Arguments of `tars train`.
#[derive(Debug, clap::Args)]
pub struct TrainArgs {
    /// Algorithm: dqn, a2c, ppo, ddpg or td3.
    #[arg(long)]
    algo: String,
    /// Gymnasium id, e.g. CartPole-v1.
    #[arg(long)]
    env: String,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Training budget in environment steps (default: the RL Zoo's budget).
    #[arg(long)]
    timesteps: Option<u64>,
    /// Hyperparameter override with its SB3 name, e.g. --hp learning_rate=lin_0.001 --hp net_arch=[64,64].
    #[arg(long = "hp", value_name = "KEY=VALUE")]
    hyperparams: Vec<String>,
    /// Checkpoint directory (default: <data dir>/checkpoints/<algo>-<env>-seed<seed>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Evaluation episodes after training.
    #[arg(long, default_value_t = 50)]
    eval_episodes: usize,
    /// Also evaluate every N steps during training (SB3's EvalCallback) and keep the best
    /// policy as a second checkpoint in <out>/best, as RL Zoo keeps best_model.zip.
    #[arg(long, value_name = "N")]
    eval_freq: Option<u64>,
    /// Episodes per evaluation during training (with --eval-freq).
    #[arg(long, default_value_t = 5, value_name = "K")]
    eval_freq_episodes: usize,
    /// Print one final JSON object.
    #[arg(long)]
    json: bool,
    /// Replace the checkpoint directory when it already holds a checkpoint.
    #[arg(long)]
    overwrite: bool,
}

/// Arguments of `tars evaluate`.
#[derive(Debug, clap::Args)]
pub struct EvaluateArgs {
    /// Checkpoint directory (holding model.safetensors and metadata.json).
    #[arg(long)]
    checkpoint: PathBuf,
    #[arg(long, default_value_t = 50)]
    episodes: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Sample actions instead of taking the most likely one.
    #[arg(long)]
    stochastic: bool,
    #[arg(long)]
    json: bool,
}

/// Parses `key=value` pairs; values are JSON where they parse as JSON, strings otherwise.
pub fn parse_overrides(pairs: &[String]) -> anyhow::Result<Map<String, Value>> {
    let mut overrides = Map::new();
    for pair in pairs {
        let (key, value) = pair.split_once('=').with_context(|| {
            format!("--hp '{pair}' must look like key=value, e.g. learning_rate=0.001")
        })?;
        let value =
            serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.to_string()));
        overrides.insert(key.trim().to_string(), value);
    }
    Ok(overrides)
}

/// The configured data directory (`--data-dir`/`TARS_DATA_DIR`/`tars.toml`, else the XDG one).
pub fn data_dir() -> anyhow::Result<PathBuf> {
    Ok(tars_server::Config::load(&tars_server::ConfigArgs::default())?.data_dir())
}

/// Shows training progress: a bar on a terminal, a plain line every 10% otherwise.
struct ProgressObserver {
    bar: Option<ProgressBar>,
    start: Instant,
    next_report: u64,
    quiet: bool,
}

impl Observer for ProgressObserver {
    fn on_progress(&mut self, progress: &Progress) -> Control {
        let fps = progress.timesteps as f64 / self.start.elapsed().as_secs_f64().max(1e-9);
        let recent = progress
            .recent_mean_return
            .map_or("n/a".to_string(), |r| format!("{r:.1}"));
        if let Some(bar) = &self.bar {
            bar.set_length(progress.total_timesteps);
            bar.set_position(progress.timesteps);
            bar.set_message(format!("{fps:.0} steps/s, recent mean return {recent}"));
        } else if !self.quiet && progress.timesteps >= self.next_report {
            eprintln!(
                "timesteps {}/{} ({fps:.0} steps/s), episodes {}, recent mean return {recent}",
                progress.timesteps, progress.total_timesteps, progress.episodes
            );
            self.next_report = progress.timesteps + progress.total_timesteps.div_ceil(10);
        }
        Control::Continue
    }
}

use tars_server::service::read_checkpoint;

pub fn train(args: TrainArgs) -> anyhow::Result<ExitCode> {
    // This process trains one run: the off-policy algorithms' training phases may use the
    // second core.
    tars_agents::nn::pair::enable();
    let algo: Algo = args.algo.parse()?;
    let env_id = tars_envs::spec(&args.env)?.id;
    anyhow::ensure!(
        args.eval_episodes >= 1,
        "--eval-episodes must be at least 1"
    );
    if let Some(freq) = args.eval_freq {
        anyhow::ensure!(
            freq >= 1,
            "--eval-freq must be at least 1 step; leave it out to skip evaluations during training"
        );
    }
    anyhow::ensure!(
        (1..=10_000).contains(&args.eval_freq_episodes),
        "--eval-freq-episodes must be between 1 and 10000, got {}",
        args.eval_freq_episodes
    );
    let overrides = parse_overrides(&args.hyperparams)?;
    // Sized as a server sizes it; over the job budget a server would refuse the training,
    // here the user decides, so it is only a warning.
    let sized = TrainRequest {
        agent_type: algo.name().to_string(),
        environment: env_id.to_string(),
        hyperparameters: overrides.clone(),
        seed: args.seed,
        total_timesteps: args.timesteps,
        eval_episodes: args.eval_episodes,
        eval_freq: args.eval_freq,
        eval_freq_episodes: args.eval_freq_episodes,
    };
    let budget = tars_server::Config::load(&tars_server::ConfigArgs::default())?.job_budget();
    match sized.validate(budget) {
        Err(error) if error.code == "over_budget" => {
            eprintln!("warning: {error} (a server would refuse this training)");
        }
        checked => {
            checked?;
        }
    }
    let tty = std::io::stderr().is_terminal() && !args.json;
    let bar = tty.then(|| {
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} {msg}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        bar
    });
    let mut observer = ProgressObserver {
        bar,
        start: Instant::now(),
        next_report: 0,
        quiet: args.json,
    };
    // A proposal names a checkpoint by its name under the data directory, or by its path.
    let (dir, checkpoint_id) = match args.out {
        Some(dir) => (dir.clone(), dir.display().to_string()),
        None => {
            let name = format!(
                "{}-{}-seed{}",
                algo.name().to_lowercase(),
                env_id,
                args.seed
            );
            (data_dir()?.join("checkpoints").join(&name), name)
        }
    };
    // A second run with the same algorithm, environment and seed would replace the first's
    // checkpoint, which a proposal may name.
    if dir.join(tars_agents::checkpoint::WEIGHTS_FILE).exists() && !args.overwrite {
        anyhow::bail!(
            "{} already holds a checkpoint; pass --overwrite to replace it, or --out DIR (or \
             another --seed) to keep both",
            dir.display()
        );
    }
    let run = TrainRun {
        algo,
        env_id,
        overrides: &overrides,
        seed: args.seed,
        total_timesteps: args.timesteps,
        eval_episodes: args.eval_episodes,
        eval_freq: args.eval_freq.map(|freq| (freq, args.eval_freq_episodes)),
    };
    let bar = observer.bar.clone();
    let finish_bar = || {
        if let Some(bar) = &bar {
            bar.finish_and_clear();
        }
    };
    let result = run
        .run(&dir, &checkpoint_id, &mut observer, &|| false, &finish_bar)?
        .expect("a CLI training run is never stopped");
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{result}")?;
        return Ok(ExitCode::SUCCESS);
    }
    let number = |value: &Value| value.as_f64().unwrap_or(f64::NAN);
    writeln!(
        out,
        "trained {algo} on {env_id} for {} steps in {:.2} s (seed {})",
        result["timesteps"],
        number(&result["train_seconds"]),
        args.seed
    )?;
    writeln!(
        out,
        "evaluation: {:.2} ± {:.2} over {} episodes (deterministic)",
        number(&result["eval_mean_reward"]),
        number(&result["eval_std_reward"]),
        args.eval_episodes
    )?;
    writeln!(out, "checkpoint: {}", dir.display())?;
    let best = &result["best"];
    if !best.is_null() {
        writeln!(
            out,
            "best of {} evaluations during training: step {}, {:.2} over {} episodes; \
             evaluation: {:.2} ± {:.2}; checkpoint: {}",
            result["evaluations_during_training"],
            best["timestep"],
            number(&best["selection_mean_reward"]),
            args.eval_freq_episodes,
            number(&best["eval_mean_reward"]),
            number(&best["eval_std_reward"]),
            best["checkpoint"].as_str().unwrap_or_default(),
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

pub fn evaluate(args: EvaluateArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        (1..=10_000).contains(&args.episodes),
        "--episodes must be between 1 and 10000, got {}",
        args.episodes
    );
    let (mut policy, metadata) = read_checkpoint(&args.checkpoint)?;
    let start = Instant::now();
    let evaluation =
        tars_agents::evaluate(&mut policy, args.episodes, args.seed, !args.stochastic)?;
    let seconds = start.elapsed().as_secs_f64();
    let mut out = std::io::stdout().lock();
    if args.json {
        let result = json!({
            "algo": metadata.algo, "env": metadata.env_id, "mean_reward": evaluation.mean_reward(),
            "std_reward": evaluation.std_reward(), "episode_returns": evaluation.episode_returns,
            "episode_lengths": evaluation.episode_lengths, "seconds": seconds,
        });
        writeln!(out, "{result}")?;
    } else {
        writeln!(
            out,
            "{} on {}: {:.2} ± {:.2} over {} episodes in {:.3} s",
            metadata.algo,
            metadata.env_id,
            evaluation.mean_reward(),
            evaluation.std_reward(),
            args.episodes,
            seconds
        )?;
    }
    Ok(ExitCode::SUCCESS)
}
