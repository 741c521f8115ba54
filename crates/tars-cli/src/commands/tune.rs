//! `tars tune`: a hyperparameter study on real training. Each trial trains the agent with the
//! sampled hyperparameters (RL Zoo budget, or the quick budget), reports its recent mean
//! return to the pruner while training, and is scored by a deterministic evaluation. Prints a
//! progress bar (trials done, best so far), then the best parameters, or the whole study as
//! JSON.

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Mutex;
use std::sync::atomic::AtomicBool;
use std::time::Instant;
use tars_agents::Algo;
use tars_automl::rl::{Budget, RlObjective};
use tars_automl::sampler::TpeConfig;
use tars_automl::{
    Direction, PrunerConfig, SamplerConfig, Study, StudyConfig, Trial, TrialState, runner, spaces,
};

/// Most trials one study may run.
pub const MAX_TRIALS: u64 = 10_000;

/// Arguments of `tars tune`.
#[derive(Debug, clap::Args)]
pub struct TuneArgs {
    /// Algorithm: dqn, a2c, ppo, ddpg or td3.
    #[arg(long)]
    algo: String,
    /// Environment id; repeat for several (the objective is then the mean normalised score).
    #[arg(long = "env", required = true, value_name = "ENV")]
    envs: Vec<String>,
    /// Trials to run (1 to 10,000).
    #[arg(long, default_value_t = 50, allow_negative_numbers = true)]
    trials: i64,
    /// Sampler: tpe, random or grid.
    #[arg(long, default_value = "tpe")]
    sampler: String,
    /// TPE over all parameters jointly (Optuna's multivariate=True).
    #[arg(long)]
    multivariate: bool,
    /// Pruner: median, sh (successive halving), hyperband or none.
    #[arg(long, default_value = "median")]
    pruner: String,
    /// Seed of the sampler and of every trial's training and evaluation.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Train each trial on the quick budget (a fifth of the RL Zoo's, at least 1,000 steps).
    #[arg(long)]
    quick: bool,
    /// Train each trial for exactly this many steps (overrides --quick).
    #[arg(long)]
    timesteps: Option<u64>,
    /// Deterministic evaluation episodes per trial and environment.
    #[arg(long, default_value_t = 10)]
    episodes: usize,
    /// Trials run at the same time (default: one per core). One worker is reproducible.
    #[arg(long)]
    workers: Option<usize>,
    /// JSON object of distributions that replace or extend the default space
    /// ({"learning_rate": {"type": "float", "low": 1e-5, "high": 1e-2, "log": true}};
    /// null removes a parameter).
    #[arg(long, value_name = "FILE.json")]
    search_space: Option<PathBuf>,
    /// Print the whole study as JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: TuneArgs) -> anyhow::Result<ExitCode> {
    let algo: Algo = args.algo.parse()?;
    let n_trials = runner::check_n_trials(args.trials, MAX_TRIALS)
        .context("--trials: how many trials to run")?;
    let budget = match (args.timesteps, args.quick) {
        (Some(n), _) => Budget::Timesteps(n),
        (None, true) => Budget::Quick,
        (None, false) => Budget::Zoo,
    };
    let objective = RlObjective::new(algo, &args.envs, budget, args.episodes, args.seed)?;
    let default_space = spaces::default_space(algo);
    let search_space = match &args.search_space {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading search space {}", path.display()))?;
            let value: Value = serde_json::from_str(&text)
                .with_context(|| format!("parsing search space {} as JSON", path.display()))?;
            spaces::with_overrides(algo, &objective.env_ids, default_space, &value)
                .with_context(|| format!("search space {}", path.display()))?
        }
        None => {
            spaces::validate(algo, &objective.env_ids, &default_space)?;
            default_space
        }
    };
    let mut sampler = SamplerConfig::from_name(&args.sampler)?;
    if let SamplerConfig::Tpe(tpe) = &mut sampler {
        *tpe = TpeConfig {
            multivariate: args.multivariate,
            ..*tpe
        };
    }
    let config = StudyConfig {
        direction: Direction::Maximize,
        search_space,
        sampler,
        pruner: PrunerConfig::from_name(&args.pruner)?,
        seed: args.seed,
    };
    let study = Mutex::new(Study::new(config)?);
    let n_workers = args
        .workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    anyhow::ensure!(
        (1..=256).contains(&n_workers),
        "--workers must be between 1 and 256, got {n_workers}"
    );

    let bar = (!args.json && std::io::stderr().is_terminal()).then(|| {
        let bar = ProgressBar::new(n_trials as u64);
        bar.set_style(
            ProgressStyle::with_template("trials [{bar:30}] {pos}/{len} {elapsed} {msg}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        bar
    });
    let log_lines = !args.json && bar.is_none();
    let start = Instant::now();
    let summary = runner::optimize(
        &study,
        n_trials,
        n_workers,
        &AtomicBool::new(false),
        |context| {
            objective.evaluate(context.params(), &mut |step, value| {
                context.report(step, value)
            })
        },
        &|study, trial| {
            let best = study.best_trial().map_or("none yet".to_string(), |b| {
                format!(
                    "best {:.2} (trial {})",
                    b.value.unwrap_or(f64::NAN),
                    b.number
                )
            });
            if let Some(bar) = &bar {
                bar.inc(1);
                bar.set_message(best);
            } else if log_lines {
                eprintln!("{}; {best}", describe(trial));
            }
        },
    );
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let wall_seconds = start.elapsed().as_secs_f64();
    let study = study.into_inner().expect("study lock");
    let mut out = std::io::stdout().lock();
    if args.json {
        let mut value = serde_json::to_value(&study)?;
        value["algo"] = json!(algo.name());
        value["environments"] = json!(objective.env_ids);
        value["budget"] = json!(format!("{budget:?}"));
        value["workers"] = json!(n_workers);
        value["wall_seconds"] = json!(wall_seconds);
        value["stopped"] = json!(summary.stopped);
        value["best_trial"] = json!(study.best_trial());
        writeln!(out, "{value}")?;
    } else {
        print_table(&mut out, &study, &objective, algo, wall_seconds, &summary)?;
    }
    Ok(if study.best_trial().is_some() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// One line per finished trial, for logs.
fn describe(trial: &Trial) -> String {
    let duration = trial
        .duration_seconds
        .map_or(String::new(), |s| format!(" in {s:.1} s"));
    match trial.state {
        TrialState::Complete => format!(
            "trial {} complete: {:.2}{duration}",
            trial.number,
            trial.value.unwrap_or(f64::NAN)
        ),
        TrialState::Pruned => format!(
            "trial {} pruned at step {}{duration}",
            trial.number,
            trial.last_step().unwrap_or(0)
        ),
        TrialState::Failed => format!(
            "trial {} failed: {}",
            trial.number,
            trial.error.as_deref().unwrap_or("")
        ),
        TrialState::Running => format!("trial {} running", trial.number),
    }
}

fn print_table(
    out: &mut impl Write,
    study: &Study,
    objective: &RlObjective,
    algo: Algo,
    wall_seconds: f64,
    summary: &runner::Summary,
) -> anyhow::Result<()> {
    let config = study.config();
    writeln!(
        out,
        "{} on {}: {} trials in {wall_seconds:.1} s ({} complete, {} pruned, {} failed); sampler {}, pruner {}",
        algo.name(),
        objective.env_ids.join(", "),
        study.trials().len(),
        study.count(TrialState::Complete),
        study.count(TrialState::Pruned),
        study.count(TrialState::Failed),
        config.sampler.name(),
        config.pruner.name(),
    )?;
    if let Some(reason) = &summary.stopped {
        writeln!(out, "stopped early: {reason}")?;
    }
    if let Some(failed) = study
        .trials()
        .iter()
        .find(|t| t.state == TrialState::Failed)
    {
        writeln!(
            out,
            "first failure (trial {}): {}",
            failed.number,
            failed.error.as_deref().unwrap_or("")
        )?;
    }
    let Some(best) = study.best_trial() else {
        writeln!(out, "no trial completed")?;
        return Ok(());
    };
    let what = if objective.env_ids.len() > 1 {
        "mean normalised score"
    } else {
        "mean evaluation return"
    };
    writeln!(
        out,
        "best: trial {} with {what} {:.2} ({} deterministic episodes{})",
        best.number,
        best.value.unwrap_or(f64::NAN),
        objective.n_eval_episodes,
        if objective.env_ids.len() > 1 {
            " per environment"
        } else {
            ""
        }
    )?;
    writeln!(out, "{:<24} value", "hyperparameter")?;
    let env_id = &objective.env_ids[0];
    let overrides = spaces::to_overrides(algo, env_id, &best.params);
    for (name, value) in &best.params {
        let used = &overrides[name];
        let note = if used != value {
            format!("  (trained with {used}: the rollout's size)")
        } else {
            String::new()
        };
        writeln!(out, "{name:<24} {value}{note}")?;
    }
    let hps: Vec<String> = overrides
        .iter()
        .map(|(name, value)| format!("--hp {name}={}", shell_value(value)))
        .collect();
    writeln!(
        out,
        "train it: tars train --algo {} --env {env_id} --seed {} {}",
        algo.name().to_lowercase(),
        config.seed,
        hps.join(" ")
    )?;
    Ok(())
}

/// A JSON value as one shell word.
fn shell_value(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Array(_) | Value::Object(_) | Value::Null => format!("'{value}'"),
        other => other.to_string(),
    }
}
