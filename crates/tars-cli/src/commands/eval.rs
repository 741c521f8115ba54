//! `tars eval`: evaluate an agent configuration on environments, compare it with the rank-1
//! baselines, store the run, and print a table or the API's response JSON.

use crate::commands::train::parse_overrides;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use serde_json::Value;
use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use tars_agents::{Control, Progress};
use tars_eval::engine::Event;
use tars_eval::{EvalError, EvalRequest, EvalResponse, Reporter, RequestError};
use tars_server::config::{Config, ConfigArgs};
use tars_server::service::{Outcome, Service};

/// Arguments of `tars eval`.
#[derive(Debug, clap::Args)]
pub struct EvalArgs {
    /// Agent type: dqn, a2c, ppo, ddpg or td3.
    #[arg(long)]
    agent: String,
    /// Environment id; repeat for several (e.g. --env CartPole-v1 --env Acrobot-v1).
    #[arg(long = "env", required = true, value_name = "ENV")]
    envs: Vec<String>,
    /// Episodes per environment (default: default_episodes, or quick_mode_episodes with --quick).
    #[arg(long)]
    episodes: Option<i64>,
    /// Quick mode: 50 episodes and a fifth of the training budget.
    #[arg(long)]
    quick: bool,
    /// Hyperparameter with its SB3 name or a seed alias, e.g. --hp learning_rate=0.001.
    #[arg(long = "hp", value_name = "KEY=VALUE")]
    hyperparams: Vec<String>,
    /// Evaluate a checkpoint (a directory, or a name under <data_dir>/checkpoints) instead of training.
    #[arg(long, value_name = "ID|DIR")]
    checkpoint: Option<String>,
    /// Compare with the rank-1 baseline of each environment.
    #[arg(long)]
    compare: bool,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Print the API's response JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Leave per-episode returns out of the JSON (they are stored either way).
    #[arg(long)]
    no_episodes: bool,
    /// Exit with status 1 when a regression calls for a rollback (for CI gates).
    #[arg(long)]
    gate: bool,
    #[command(flatten)]
    config: ConfigArgs,
}

pub fn run(args: EvalArgs) -> anyhow::Result<ExitCode> {
    let config = Config::load(&args.config)?;
    let request = EvalRequest {
        agent_type: args.agent.clone(),
        agent_state: args.checkpoint.clone().map_or(Value::Null, Value::String),
        hyperparameters: parse_overrides(&args.hyperparams)?,
        environments: args.envs.clone(),
        num_episodes: args.episodes,
        quick_mode: args.quick,
        compare_to_baseline: args.compare,
        seed: Some(args.seed),
        include_episodes: !args.no_episodes,
    };
    // Check the request before touching the database: bad input fails fast. Over the job
    // budget a server would refuse it; here the user decides, so it is only a warning.
    match request.validate(&config.engine(), args.seed) {
        Err(EvalError::Request(RequestError::OverBudget(over))) => {
            eprintln!("warning: {over} (a server would refuse this request)");
        }
        checked => {
            checked?;
        }
    }
    let config = config.without_job_budget();
    let runtime = crate::runtime()?;
    let outcome = runtime.block_on(async {
        let service = Service::open(config).await?;
        let reporter = Bars::new(std::io::stderr().is_terminal(), args.json);
        let outcome = service.evaluate(&request, Arc::new(reporter)).await;
        service.store.close().await;
        outcome
    })?;
    print(&args, &outcome)?;
    let rollback = outcome
        .response
        .regression
        .as_ref()
        .is_some_and(|r| r.should_rollback);
    Ok(if args.gate && rollback {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn print(args: &EvalArgs, outcome: &Outcome) -> anyhow::Result<()> {
    if let Some((path, err)) = &outcome.unsaved {
        eprintln!(
            "warning: the evaluation could not be stored ({err}); its full result is in {}",
            path.display()
        );
    }
    let response = &outcome.response;
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string(response)?)?;
        return Ok(());
    }
    print_table(&mut out, response)?;
    Ok(())
}

fn print_table(out: &mut impl Write, response: &EvalResponse) -> std::io::Result<()> {
    for result in &response.results {
        let m = &result.metrics.metrics;
        let t = &result.training;
        let how = match t.source.as_str() {
            "checkpoint" => format!(
                "checkpoint {}",
                t.checkpoint_id.as_deref().unwrap_or_default()
            ),
            "cache" => format!("{} steps, cached policy", t.timesteps),
            _ => format!("trained {} steps in {:.1} s", t.timesteps, t.train_seconds),
        };
        writeln!(
            out,
            "{} on {} ({how}; {} episodes, seed {})",
            response.agent_type, result.environment, m.n_episodes, response.seed
        )?;
        writeln!(
            out,
            "  mean {:.2} ± {:.2}  CI95 [{:.2}, {:.2}]   IQM {:.2}  CI95 [{:.2}, {:.2}]",
            m.mean_reward,
            m.std_reward,
            m.mean_ci95[0],
            m.mean_ci95[1],
            m.iqm,
            m.iqm_ci95[0],
            m.iqm_ci95[1]
        )?;
        writeln!(
            out,
            "  median {:.2}  min {:.2}  max {:.2}  success {:.0}%  length {:.1}  cv {}  loss trend {}",
            m.median_reward,
            m.min_reward,
            m.max_reward,
            m.success_rate * 100.0,
            m.mean_episode_length,
            m.cv.map_or("n/a".into(), |v| format!("{v:.3}")),
            m.loss_trend.map_or("n/a".into(), |v| format!("{v:.4}")),
        )?;
        if let (Some(b), Some(r)) = (&result.baseline, &result.regression) {
            let b = &b.baseline;
            writeln!(
                out,
                "  baseline rank {} v{}: {:.2} ± {:.2}, success {:.0}%",
                b.rank,
                b.version,
                b.mean_reward,
                b.std_reward,
                b.success_rate * 100.0
            )?;
            let verdict = if r.detected {
                format!(
                    "REGRESSION ({}, confidence {:.3}{})",
                    r.severity.as_str(),
                    r.confidence,
                    if r.should_rollback { ", roll back" } else { "" }
                )
            } else {
                "ok".to_string()
            };
            writeln!(out, "  verdict: {verdict}: {}", r.reason)?;
        }
        if let Some(note) = &result.note {
            writeln!(out, "  note: {note}")?;
        }
        writeln!(
            out,
            "  result {} ({:.2} s)",
            result.result_id, result.duration_seconds
        )?;
    }
    writeln!(
        out,
        "evaluation {} in {:.2} s",
        response.evaluation_id, response.duration_seconds
    )
}

/// One progress bar per environment on a terminal; plain lines otherwise (or nothing).
/// Progress on stderr: a bar per environment on a terminal; elsewhere (a log, CI) a plain line
/// per phase and per tenth of the training; nothing with `--json`.
struct Bars {
    multi: Option<MultiProgress>,
    bars: Mutex<HashMap<String, ProgressBar>>,
    /// Plain lines: the next training step to report, per environment.
    lines: Option<Mutex<HashMap<String, u64>>>,
}

impl Bars {
    fn new(tty: bool, quiet: bool) -> Bars {
        Bars {
            multi: (tty && !quiet).then(MultiProgress::new),
            bars: Mutex::new(HashMap::new()),
            lines: (!tty && !quiet).then(|| Mutex::new(HashMap::new())),
        }
    }

    fn line(&self, env: &str, text: std::fmt::Arguments) {
        if self.lines.is_some() {
            eprintln!("{env}: {text}");
        }
    }

    fn bar(&self, env: &str) -> Option<ProgressBar> {
        let multi = self.multi.as_ref()?;
        let mut bars = self.bars.lock().expect("bars lock");
        let bar = bars.entry(env.to_string()).or_insert_with(|| {
            let bar = multi.add(ProgressBar::new(0));
            bar.set_style(
                ProgressStyle::with_template("{prefix:>26} [{bar:25}] {pos}/{len} {msg}")
                    .expect("valid template")
                    .progress_chars("=> "),
            );
            bar.set_prefix(env.to_string());
            bar
        });
        Some(bar.clone())
    }
}

impl Reporter for Bars {
    fn training(&self, env: &str, progress: &Progress) -> Control {
        if let Some(lines) = &self.lines {
            let mut next = lines.lock().expect("lines lock");
            let next = next.entry(env.to_string()).or_insert(0);
            if progress.timesteps >= *next && progress.total_timesteps > 0 {
                let recent = progress
                    .recent_mean_return
                    .map_or("n/a".to_string(), |r| format!("{r:.1}"));
                eprintln!(
                    "{env}: trained {}/{} steps, recent return {recent}",
                    progress.timesteps, progress.total_timesteps
                );
                *next = progress.timesteps + progress.total_timesteps.div_ceil(10);
            }
        }
        if let Some(bar) = self.bar(env) {
            bar.set_length(progress.total_timesteps);
            bar.set_position(progress.timesteps);
            let recent = progress
                .recent_mean_return
                .map_or("n/a".to_string(), |r| format!("{r:.1}"));
            bar.set_message(format!("training, recent return {recent}"));
        }
        Control::Continue
    }

    fn event(&self, env: &str, event: Event) {
        match event {
            Event::Training { total_timesteps } => {
                self.line(env, format_args!("training {total_timesteps} steps"))
            }
            Event::CacheHit => self.line(env, format_args!("cached policy")),
            Event::Evaluating { episodes } => {
                self.line(env, format_args!("evaluating {episodes} episodes"))
            }
            Event::Done { mean_reward } => {
                self.line(env, format_args!("done, mean {mean_reward:.1}"))
            }
        }
        let Some(bar) = self.bar(env) else {
            return;
        };
        match event {
            Event::Training { total_timesteps } => {
                bar.set_length(total_timesteps);
                bar.set_message("training");
            }
            Event::CacheHit => bar.set_message("cached policy"),
            Event::Evaluating { episodes } => {
                bar.set_message(format!("evaluating {episodes} episodes"))
            }
            Event::Done { mean_reward } => {
                bar.finish_with_message(format!("done, mean {mean_reward:.1}"))
            }
        }
    }
}
