//! `tars nash …`: solve two-player games and resolve conflicting proposals with `tars-nash`,
//! and `tars bench nash`, its timings beside nashpy's.
//!
//! `tars nash solve [FILE|-] [--method all|one|zero-sum|replicator] [--json]` reads
//! `{"A": [[...]], "B": [[...]]}` (B omitted means zero-sum, B = -A) and with `--json` prints
//! exactly `{"equilibria": [{"row", "col", "row_payoff", "col_payoff"}], "complete",
//! "degenerate"}`; scripts depend on that shape. `complete` is true only when `--method all`
//! returned the whole (finite) equilibrium set; `degenerate` is determined only by
//! `--method all` and is false for the other methods.

use std::io::{Read, Write};
use std::process::ExitCode;
use std::time::Instant;
use tars_envs::Rng;

use anyhow::{Context, bail};
use serde_json::{Value, json};
use tars_nash::{
    Bimatrix, Equilibrium, Error as NashError, Matrix, NormalFormGame, ReplicatorConfig,
    all_equilibria, lemke_howson, replicator_dynamics, resolve_conflict, solve_zero_sum,
};

/// Arguments of `tars nash`.
#[derive(Debug, clap::Args)]
pub struct NashArgs {
    #[command(subcommand)]
    command: NashCommand,
}

#[derive(Debug, clap::Subcommand)]
enum NashCommand {
    /// Equilibria of a two-player game read as {"A": [[...]], "B": [[...]]} (B omitted: B = -A).
    Solve {
        /// JSON file with the game; `-` or nothing reads standard input.
        file: Option<String>,
        /// all: every equilibrium (vertex enumeration); one: Lemke-Howson; zero-sum: LP value
        /// and optimal strategies; replicator: approximate, reports NashConv.
        #[arg(long, value_enum, default_value_t = Method::All)]
        method: Method,
        /// Print {"equilibria": [...], "complete": bool, "degenerate": bool}.
        #[arg(long)]
        json: bool,
    },
    /// Weights, stability and conflict of proposals (rows) scored on environments (columns),
    /// read as {"scores": [[...]]}; prints a JSON report.
    Conflict {
        /// JSON file with the scores; `-` or nothing reads standard input.
        file: Option<String>,
        /// Indent the JSON report.
        #[arg(long)]
        pretty: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Method {
    All,
    One,
    ZeroSum,
    Replicator,
}

/// What `solve` found, before printing.
struct Solved {
    equilibria: Vec<(Vec<f64>, Vec<f64>, f64, f64)>,
    complete: bool,
    degenerate: bool,
    notes: Vec<String>,
}

pub fn run(args: NashArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        NashCommand::Solve { file, method, json } => {
            let input = read_input(file.as_deref())?;
            let game = parse_game(&input).context("reading the game")?;
            let solved = solve(&game, method)?;
            print_solved(&game, &solved, json)?;
        }
        NashCommand::Conflict { file, pretty } => {
            let input = read_input(file.as_deref())?;
            let scores = parse_object(&input, &["scores"])
                .and_then(|object| parse_matrix(object.get("scores"), "scores"))
                .context("reading the scores")?;
            let report = resolve_conflict(&scores).context("resolving the conflict")?;
            let value = json!({
                "weights": report.weights,
                "environment_weights": report.environment_weights,
                "value": report.value,
                "stability": report.stability,
                "conflict": report.conflict,
                "nash_averages": report.nash_averages,
                "max_entropy": report.max_entropy,
            });
            let text = if pretty {
                serde_json::to_string_pretty(&value)?
            } else {
                value.to_string()
            };
            writeln!(std::io::stdout().lock(), "{text}")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn solve(game: &Bimatrix, method: Method) -> anyhow::Result<Solved> {
    let row = |e: &Equilibrium| {
        (
            e.row().to_vec(),
            e.col().to_vec(),
            e.row_payoff(),
            e.col_payoff(),
        )
    };
    let mut notes = Vec::new();
    let (equilibria, complete, degenerate) = match method {
        Method::All => {
            let result = all_equilibria(game).map_err(|error| match error {
                NashError::TooLargeForEnumeration { .. } | NashError::TooManyActions { .. } => {
                    anyhow::Error::new(error)
                        .context("use --method one for one equilibrium by Lemke-Howson")
                }
                other => anyhow::Error::new(other),
            })?;
            if !result.is_finite() {
                notes.push(
                    "segments between equilibria that share a strategy are equilibria too".into(),
                );
            }
            if result.n_rejected() > 0 {
                notes.push(format!(
                    "{} candidate(s) failed verification and were left out",
                    result.n_rejected()
                ));
            }
            (
                result.equilibria().iter().map(row).collect(),
                result.is_finite(),
                result.is_degenerate(),
            )
        }
        Method::One => {
            let equilibrium = lemke_howson(game).context("running Lemke-Howson")?;
            (vec![row(&equilibrium)], false, false)
        }
        Method::ZeroSum => {
            let solution = solve_zero_sum(game).context("solving the zero-sum game")?;
            let (value, dual_value) = (solution.value(), solution.dual_value());
            notes.push(format!("value {value:.12} (dual LP {dual_value:.12})"));
            (vec![row(solution.equilibrium())], false, false)
        }
        Method::Replicator => {
            let normal_form = NormalFormGame::from_bimatrix(game);
            let result = replicator_dynamics(&normal_form, &ReplicatorConfig::default())
                .context("running replicator dynamics")?;
            let (row_payoff, col_payoff) = game.payoffs(&result.profile[0], &result.profile[1]);
            eprintln!(
                "note: replicator dynamics is approximate: NashConv {:e} after {} iterations",
                result.nash_conv, result.n_iterations
            );
            let [x, y]: [Vec<f64>; 2] = (result.profile.try_into()).map_err(|_| {
                anyhow::anyhow!("replicator dynamics returned no two-player profile")
            })?;
            (vec![(x, y, row_payoff, col_payoff)], false, false)
        }
    };
    Ok(Solved {
        equilibria,
        complete,
        degenerate,
        notes,
    })
}

fn print_solved(game: &Bimatrix, solved: &Solved, as_json: bool) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if as_json {
        let equilibria: Vec<Value> = solved
            .equilibria
            .iter()
            .map(|(x, y, row_payoff, col_payoff)| json!({"row": x, "col": y, "row_payoff": row_payoff, "col_payoff": col_payoff}))
            .collect();
        let value = json!({"equilibria": equilibria, "complete": solved.complete, "degenerate": solved.degenerate});
        writeln!(out, "{value}")?;
        return Ok(());
    }
    let n_equilibria = solved.equilibria.len();
    let status = match (solved.complete, solved.degenerate) {
        (true, false) => "all of them",
        (true, true) => "all of them; the game is degenerate",
        (false, true) => "the extreme ones of an infinite set; the game is degenerate",
        (false, false) => "not necessarily all",
    };
    writeln!(
        out,
        "{}x{} game: {n_equilibria} equilibri{} ({status})",
        game.n_rows(),
        game.n_cols(),
        if n_equilibria == 1 { "um" } else { "a" },
    )?;
    for (idx, (x, y, row_payoff, col_payoff)) in solved.equilibria.iter().enumerate() {
        writeln!(
            out,
            "#{idx}: row {}  col {}  payoffs ({row_payoff:.6}, {col_payoff:.6})",
            fmt_vec(x),
            fmt_vec(y)
        )?;
    }
    for note in &solved.notes {
        writeln!(out, "note: {note}")?;
    }
    Ok(())
}

fn fmt_vec(values: &[f64]) -> String {
    let parts: Vec<String> = values.iter().map(|v| format!("{:.6}", v)).collect();
    format!("[{}]", parts.join(", "))
}

fn read_input(file: Option<&str>) -> anyhow::Result<String> {
    let mut text = String::new();
    match file {
        None | Some("-") => {
            std::io::stdin()
                .read_to_string(&mut text)
                .context("reading the game from standard input")?;
        }
        Some(path) => {
            text = std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?;
        }
    }
    Ok(text)
}

/// Parses `{"A": [[...]], "B": [[...]]}`; B omitted gives the zero-sum game B = -A.
fn parse_game(text: &str) -> anyhow::Result<Bimatrix> {
    let object = parse_object(text, &["A", "B"])?;
    let a = parse_matrix(object.get("A"), "A")?;
    match object.get("B") {
        None => Ok(Bimatrix::zero_sum(a)),
        Some(b) => Ok(Bimatrix::new(a, parse_matrix(Some(b), "B")?)?),
    }
}

fn parse_object(text: &str, valid_keys: &[&str]) -> anyhow::Result<serde_json::Map<String, Value>> {
    let value: Value = serde_json::from_str(text)
        .context("the input is not valid JSON (payoffs must be finite numbers)")?;
    let Value::Object(object) = value else {
        bail!("expected a JSON object with keys {valid_keys:?}");
    };
    if let Some(unknown) = object
        .keys()
        .find(|key| !valid_keys.contains(&key.as_str()))
    {
        bail!("unknown key {unknown:?}; valid keys are {valid_keys:?}");
    }
    Ok(object)
}

fn parse_matrix(value: Option<&Value>, name: &'static str) -> anyhow::Result<Matrix> {
    let Some(value) = value else {
        bail!("missing {name:?}: give a list of rows, each a list of numbers");
    };
    let shape_error = || anyhow::anyhow!("{name} must be a list of rows, each a list of numbers");
    let rows = value.as_array().ok_or_else(shape_error)?;
    let mut parsed = Vec::with_capacity(rows.len());
    for (row_idx, row) in rows.iter().enumerate() {
        let entries = row.as_array().ok_or_else(shape_error)?;
        let mut parsed_row = Vec::with_capacity(entries.len());
        for (col_idx, entry) in entries.iter().enumerate() {
            let number = entry.as_f64().with_context(|| {
                format!("{name}[{row_idx}][{col_idx}] is {entry}; payoffs must be finite numbers")
            })?;
            parsed_row.push(number);
        }
        parsed.push(parsed_row);
    }
    Ok(Matrix::new(name, parsed)?)
}

/// nashpy 0.0.43 milliseconds per random game (shared/PEERS.md): support enumeration, vertex
/// enumeration, Lemke-Howson.
const NASHPY_MS: [(usize, f64, f64, f64); 4] = [
    (2, 2.1, 12.8, 0.49),
    (3, 10.3, 25.2, 0.57),
    (5, 202.0, 160.0, 0.93),
    (8, 15_246.0, 12_391.0, 0.97),
];

/// `tars bench nash`.
pub fn bench() -> anyhow::Result<()> {
    const N_GAMES: usize = 200;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "Nash solvers, mean over {N_GAMES} seeded random games per size, payoffs uniform(-10, 10)"
    )?;
    writeln!(
        out,
        "nashpy 0.0.43 figures from shared/PEERS.md; compare ratios, absolute times vary"
    )?;
    let header = " size   mean #eq   all eq (ms)  nashpy supp/vert ms   speedup     LH (ms)   nashpy LH ms   speedup";
    writeln!(out, "{header}")?;
    for (size, support_ms, vertex_ms, lh_ms) in NASHPY_MS {
        let mut rng = Rng::new(size as u64);
        let games: Vec<Bimatrix> = (0..N_GAMES)
            .map(|_| random_game(&mut rng, size))
            .collect::<anyhow::Result<_>>()?;
        let start = Instant::now();
        let mut n_equilibria = 0;
        for game in &games {
            n_equilibria += all_equilibria(game)?.equilibria().len();
        }
        let all_ms = start.elapsed().as_secs_f64() * 1e3 / N_GAMES as f64;
        let start = Instant::now();
        for game in &games {
            lemke_howson(game)?;
        }
        let one_ms = start.elapsed().as_secs_f64() * 1e3 / N_GAMES as f64;
        writeln!(
            out,
            "{:>5}  {:>9.2}  {:>12.4}  {:>19}  {:>7.0}x  {:>10.4}  {:>13.2}  {:>7.0}x",
            format!("{size}x{size}"),
            n_equilibria as f64 / N_GAMES as f64,
            all_ms,
            format!("{support_ms}/{vertex_ms}"),
            // Against the faster of nashpy's two (its support enumeration is also incomplete).
            support_ms.min(vertex_ms) / all_ms,
            one_ms,
            lh_ms,
            lh_ms / one_ms,
        )?;
    }
    Ok(())
}

/// A seeded game with payoffs uniform in (-10, 10), the setting of nashpy's figures.
fn random_game(rng: &mut Rng, size: usize) -> anyhow::Result<Bimatrix> {
    let mut matrix = || -> Vec<Vec<f64>> {
        (0..size)
            .map(|_| (0..size).map(|_| rng.uniform(-10.0, 10.0)).collect())
            .collect()
    };
    let a = matrix();
    let b = matrix();
    Ok(Bimatrix::from_rows(a, b)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn omitted_b_means_zero_sum_and_bad_input_says_what_is_valid() {
        let game = parse_game(r#"{"A": [[1, -1], [-1, 1]]}"#).unwrap();
        assert_eq!(game.b().to_rows(), vec![vec![-1.0, 1.0], vec![1.0, -1.0]]);
        let error = |text: &str| format!("{:#}", parse_game(text).unwrap_err());
        assert_eq!(
            error(r#"{"A": [[1, 2], [3]]}"#),
            "payoff matrix A is ragged: row 1 has 1 entries but row 0 has 2; every row needs the same number of entries"
        );
        assert_eq!(
            error(r#"{"A": []}"#),
            "payoff matrix A is empty; give at least one row with at least one entry"
        );
        assert_eq!(
            error(r#"{"A": [[1, "NaN"]]}"#),
            r#"A[0][1] is "NaN"; payoffs must be finite numbers"#
        );
        assert!(
            error(r#"{"A": [[1e999]]}"#)
                .starts_with("the input is not valid JSON (payoffs must be finite numbers)")
        );
        assert_eq!(
            error(r#"{"A": [[1]], "b": [[1]]}"#),
            r#"unknown key "b"; valid keys are ["A", "B"]"#
        );
        assert_eq!(
            error(r#"{"A": [[1, 2]], "B": [[1], [2]]}"#),
            "payoff matrices disagree in shape: A is 1x2 but B is 2x1; B must have the shape of A"
        );
        assert_eq!(
            error(r#"{"B": [[1]]}"#),
            r#"missing "A": give a list of rows, each a list of numbers"#
        );
    }

    #[test]
    fn methods_agree_on_matching_pennies() {
        let game = parse_game(r#"{"A": [[1, -1], [-1, 1]]}"#).unwrap();
        for method in [
            Method::All,
            Method::One,
            Method::ZeroSum,
            Method::Replicator,
        ] {
            let solved = solve(&game, method).unwrap();
            assert_eq!(solved.equilibria.len(), 1);
            assert_eq!(solved.complete, method == Method::All);
            let (x, y, row_payoff, _) = &solved.equilibria[0];
            assert!(
                x.iter().chain(y).all(|p| (p - 0.5).abs() < 1e-3),
                "{method:?}: {x:?} {y:?}"
            );
            assert!(row_payoff.abs() < 1e-3);
        }
    }

    #[test]
    fn large_games_suggest_lemke_howson() {
        let game = random_game(&mut Rng::new(1), 12).unwrap();
        let message = format!("{:#}", solve(&game, Method::All).err().unwrap());
        assert!(
            message.starts_with(
                "use --method one for one equilibrium by Lemke-Howson: a 12x12 game is too large"
            ),
            "{message}"
        );
        assert_eq!(solve(&game, Method::One).unwrap().equilibria.len(), 1);
    }
}
