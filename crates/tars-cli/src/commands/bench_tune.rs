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

/// The samplers benchmarked: TPE with Optuna 5.0's defaults (multivariate), the univariate
/// TPE, and random.
fn samplers() -> Vec<(&'static str, SamplerConfig)> {
    vec![
        ("tpe", SamplerConfig::Tpe(TpeConfig::default())),
        (
            "tpe-univariate",
            SamplerConfig::Tpe(TpeConfig {
                multivariate: false,
                ..TpeConfig::default()
            }),
        ),
        ("random", SamplerConfig::Random),
    ]
}

/// One study: the best value after each trial and the sampler's seconds.
fn run_study(
    function: TestFunction,
    sampler: &SamplerConfig,
    seed: u64,
    n_trials: usize,
) -> anyhow::Result<(Vec<f64>, f64)> {
    let config = StudyConfig {
        sampler: sampler.clone(),
        ..StudyConfig::new(function.search_space(), seed)
    };
    let mut study = Study::new(config)?;
    let (mut best, mut best_so_far) = (f64::INFINITY, Vec::with_capacity(n_trials));
    let mut sampler_seconds = 0.0;
    let mut x = Vec::with_capacity(function.bounds().len());
    for _ in 0..n_trials {
        let start = Instant::now();
        let trial = study.ask()?;
        sampler_seconds += start.elapsed().as_secs_f64();
        x.clear();
        // Parameters are x0, x1, …; sorted by name, x10 would come before x2.
        for idx in 0..function.bounds().len() {
            x.push(trial.params[&format!("x{idx}")].as_f64().expect("floats"));
        }
        let value = function.eval(&x);
        let start = Instant::now();
        study.tell(trial.number, Outcome::Complete(value))?;
        sampler_seconds += start.elapsed().as_secs_f64();
        best = best.min(value);
        best_so_far.push(best);
    }
    Ok((best_so_far, sampler_seconds))
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

pub fn run(seeds: u64, n_trials: usize, json_out: bool) -> anyhow::Result<()> {
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
            "{n_trials} trials, median of {seeds} seeds; ms/trial is the sampler's (ask + tell), objective excluded"
        )?;
        writeln!(
            out,
            "{:<15} {:<17} {:>10} {:>10} {:>10} {:>9}   {:<26} per-seed best@{n_trials}",
            "function",
            "sampler",
            "best@50",
            "best@100",
            "best@200",
            "ms/trial",
            "Optuna 5.0 best@200, ms"
        )?;
    }
    for function in TestFunction::ALL {
        for (name, sampler) in samplers() {
            let mut per_seed_best: Vec<Vec<f64>> = Vec::new();
            let mut seconds = 0.0;
            for seed in 0..seeds {
                let (best_so_far, sampler_seconds) = run_study(function, &sampler, seed, n_trials)?;
                per_seed_best.push(best_so_far);
                seconds += sampler_seconds;
            }
            let ms_per_trial = seconds * 1e3 / (seeds as f64 * n_trials as f64);
            let best_at = |k: usize| -> f64 {
                median(&per_seed_best.iter().map(|b| b[k - 1]).collect::<Vec<_>>())
            };
            let final_values: Vec<f64> = per_seed_best.iter().map(|b| b[n_trials - 1]).collect();
            let (optuna_tpe, optuna_ms, optuna_random) = optuna(function);
            let peer = if name == "random" {
                format!("{optuna_random} (0.4-1.4 ms)")
            } else if name == "tpe-univariate" {
                "-".to_string()
            } else {
                format!("{optuna_tpe} ({optuna_ms} ms)")
            };
            if json_out {
                let mut row = json!({
                    "function": function.name(), "sampler": name, "seeds": seeds, "trials": n_trials,
                    "minimum": function.minimum(), "ms_per_trial": ms_per_trial,
                    "per_seed_best": final_values,
                    "optuna_best_at_200": if name == "random" { optuna_random } else { optuna_tpe },
                    "optuna_ms_per_trial": if name == "random" { None } else { Some(optuna_ms) },
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
                    "{:<15} {:<17} {:>10} {:>10} {:>10} {ms_per_trial:>9.3}   {peer:<26} {}",
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
