//! `tars bench tune`: the samplers on the standard test functions (Branin 2-D, Hartmann 6-D,
//! Rosenbrock 10-D), best value after 50/100/200 trials (median over seeds) and the sampler's
//! own time per trial (ask + tell, the objective excluded), beside Optuna 5.0's figures from
//! ../shared/PEERS.md.

use serde_json::json;
use std::io::Write;
use std::time::Instant;
use tars_automl::functions::TestFunction;
use tars_automl::sampler::TpeConfig;
use tars_automl::{Outcome, SamplerConfig, Study, StudyConfig};

/// Optuna 5.0, 200 trials, median of 5 seeds (PEERS.md): (TPE best@200, TPE ms/trial,
/// random best@200). Random's overhead is 0.4–1.4 ms per trial.
fn optuna(function: TestFunction) -> (f64, f64, f64) {
    match function {
        TestFunction::Branin => (0.3997, 3.87, 0.467),
        TestFunction::Hartmann6 => (-3.294, 6.67, -2.114),
        TestFunction::Rosenbrock10 => (630.1, 9.36, 55_873.0),
    }
}

/// The samplers benchmarked: the TPE as `tars tune --sampler tpe` runs it (T.A.R.S.'s
/// default, chosen on other seeds: see docs/benchmarks.md), the same TPE with Optuna 5.0's
/// defaults, and random.
fn samplers() -> Vec<(&'static str, SamplerConfig)> {
    vec![
        ("tpe", SamplerConfig::Tpe(TpeConfig::default())),
        ("tpe-optuna", SamplerConfig::Tpe(TpeConfig::optuna())),
        ("random", SamplerConfig::Random),
    ]
}

/// CPU time this thread has run, from Linux's `/proc/thread-self/schedstat` (nanoseconds);
/// `None` elsewhere. On a shared machine it is steadier than the wall clock.
fn thread_cpu_seconds() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let nanos: f64 = text.split_whitespace().next()?.parse().ok()?;
    Some(nanos * 1e-9)
}

/// One study's result.
struct StudyRun {
    /// Best value after each trial.
    best_so_far: Vec<f64>,
    /// Sampler time per trial (ask + tell, objective excluded): thread CPU time where
    /// available, else wall time.
    ms_per_trial: f64,
    /// The same on the wall clock.
    wall_ms_per_trial: f64,
}

fn run_study(
    function: TestFunction,
    sampler: &SamplerConfig,
    seed: u64,
    n_trials: usize,
) -> anyhow::Result<StudyRun> {
    let config = StudyConfig {
        sampler: sampler.clone(),
        ..StudyConfig::new(function.search_space(), seed)
    };
    let mut study = Study::new(config)?;
    let (mut best, mut best_so_far) = (f64::INFINITY, Vec::with_capacity(n_trials));
    let mut objective_seconds = 0.0;
    let mut x = Vec::with_capacity(function.bounds().len());
    let (cpu_start, wall_start) = (thread_cpu_seconds(), Instant::now());
    for _ in 0..n_trials {
        let trial = study.ask()?;
        let objective_start = Instant::now();
        x.clear();
        // Parameters are x0, x1, …; sorted by name, x10 would come before x2.
        for idx in 0..function.bounds().len() {
            x.push(trial.params[&format!("x{idx}")].as_f64().expect("floats"));
        }
        let value = function.eval(&x);
        objective_seconds += objective_start.elapsed().as_secs_f64();
        study.tell(trial.number, Outcome::Complete(value))?;
        best = best.min(value);
        best_so_far.push(best);
    }
    let wall = wall_start.elapsed().as_secs_f64() - objective_seconds;
    let cpu = match (cpu_start, thread_cpu_seconds()) {
        (Some(start), Some(end)) => end - start - objective_seconds,
        _ => wall,
    };
    Ok(StudyRun {
        best_so_far,
        ms_per_trial: cpu.max(0.0) * 1e3 / n_trials as f64,
        wall_ms_per_trial: wall * 1e3 / n_trials as f64,
    })
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        0.5 * (sorted[n / 2 - 1] + sorted[n / 2])
    }
}

pub fn run(first_seed: u64, seeds: u64, n_trials: usize, json_out: bool) -> anyhow::Result<()> {
    anyhow::ensure!(
        (1..=100).contains(&seeds),
        "--seeds must be between 1 and 100, got {seeds}"
    );
    anyhow::ensure!(
        (1..=10_000).contains(&n_trials),
        "--trials must be between 1 and 10000, got {n_trials}"
    );
    let checkpoints: Vec<usize> = [50, 100, 200]
        .into_iter()
        .filter(|&k| k <= n_trials)
        .collect();
    let mut out = std::io::stdout().lock();
    if !json_out {
        writeln!(
            out,
            "{n_trials} trials, median of {seeds} seeds from {first_seed}; Optuna's figures are PEERS.md's (seeds 0-4); ms/trial is the sampler's (ask + tell, objective excluded; thread CPU time, median over seeds)"
        )?;
        writeln!(
            out,
            "{:<15} {:<15} {:>10} {:>10} {:>10} {:>9}   {:<26} per-seed best@{n_trials}",
            "function",
            "sampler",
            "best@50",
            "best@100",
            "best@200",
            "ms/trial",
            "Optuna 5.0 best@200"
        )?;
    }
    for function in TestFunction::ALL {
        for (name, sampler) in samplers() {
            let mut per_seed_best: Vec<Vec<f64>> = Vec::new();
            let (mut per_seed_ms, mut per_seed_wall_ms) = (Vec::new(), Vec::new());
            for seed in first_seed..first_seed + seeds {
                let run = run_study(function, &sampler, seed, n_trials)?;
                per_seed_best.push(run.best_so_far);
                per_seed_ms.push(run.ms_per_trial);
                per_seed_wall_ms.push(run.wall_ms_per_trial);
            }
            let ms_per_trial = median(&per_seed_ms);
            let best_at = |k: usize| -> f64 {
                median(&per_seed_best.iter().map(|b| b[k - 1]).collect::<Vec<_>>())
            };
            let final_values: Vec<f64> = per_seed_best.iter().map(|b| b[n_trials - 1]).collect();
            let (optuna_tpe, optuna_ms, optuna_random) = optuna(function);
            let peer = match name {
                "random" => format!("{optuna_random} (0.4-1.4 ms)"),
                _ => format!("{optuna_tpe} ({optuna_ms} ms)"),
            };
            if json_out {
                let mut row = json!({
                    "function": function.name(), "sampler": name, "seeds": seeds,
                    "first_seed": first_seed, "trials": n_trials,
                    "minimum": function.minimum(), "ms_per_trial": ms_per_trial,
                    "wall_ms_per_trial": median(&per_seed_wall_ms),
                    "per_seed_best": final_values,
                    "optuna_best_at_200": if name == "random" { optuna_random } else { optuna_tpe },
                    "optuna_ms_per_trial": if name == "random" { None } else { Some(optuna_ms) },
                    "sampler_config": sampler,
                });
                for k in [50, 100, 200] {
                    row[format!("best_at_{k}")] =
                        json!(checkpoints.contains(&k).then(|| best_at(k)));
                }
                writeln!(out, "{row}")?;
            } else {
                let cell = |k: usize| {
                    if checkpoints.contains(&k) {
                        format!("{:.4}", best_at(k))
                    } else {
                        "-".to_string()
                    }
                };
                let per_seed: Vec<String> =
                    final_values.iter().map(|v| format!("{v:.4}")).collect();
                writeln!(
                    out,
                    "{:<15} {:<15} {:>10} {:>10} {:>10} {ms_per_trial:>9.3}   {peer:<26} {}",
                    function.name(),
                    name,
                    cell(50),
                    cell(100),
                    cell(200),
                    per_seed.join(" ")
                )?;
            }
        }
    }
    Ok(())
}
