//! `tars`: the T.A.R.S. command line. Glue only: parse arguments, call the library crates,
//! print results. Errors are printed with their whole chain and exit with status 2; a broken
//! pipe while printing (e.g. `tars env list | head -1`) counts as success.

mod commands;

use clap::{CommandFactory, Parser, Subcommand};
use std::process::ExitCode;

/// T.A.R.S. trains, evaluates, gates, tunes and rolls out reinforcement-learning agents.
#[derive(Debug, Parser)]
#[command(name = "tars", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Inspect and step the environments.
    Env(commands::env::EnvArgs),
    /// Train an agent (DQN, A2C, PPO, DDPG, TD3), write its checkpoint and evaluate it.
    Train(commands::train::TrainArgs),
    /// Evaluate a checkpoint with SB3's evaluate_policy semantics.
    Evaluate(commands::train::EvaluateArgs),
    /// Evaluate an agent configuration, compare it with the baselines, store the run.
    Eval(commands::eval::EvalArgs),
    /// List, inspect, insert, promote and bootstrap the ranked baselines.
    Baseline(commands::baseline::BaselineArgs),
    /// Propose a hyperparameter change: evaluated against the baseline, then approved.
    Propose(commands::hypersync::ProposeArgs),
    /// List, show, approve and reject proposals.
    Proposals(commands::hypersync::ProposalsArgs),
    /// Restore an earlier config version of an agent type.
    Rollback(commands::hypersync::RollbackArgs),
    /// The live agents' configurations and their history.
    Agents(commands::hypersync::AgentsArgs),
    /// Run the HTTP service (evaluations, jobs, baselines, auth, metrics, OpenAPI).
    Serve(commands::serve::ServeArgs),
    /// Run jobs from the fleet's NATS queue, without HTTP (`--nats-url nats://…`).
    Worker(commands::worker::WorkerArgs),
    /// Past jobs (evaluations, trainings, trials): list and show.
    Jobs(commands::history::JobsArgs),
    /// Stored evaluation runs and their result ids: list and show.
    Runs(commands::history::RunsArgs),
    /// Add, list, re-password and remove the users of the HTTP API.
    User(commands::user::UserArgs),
    /// Show the effective configuration.
    Config(commands::config::ConfigCommandArgs),
    /// Tune hyperparameters: a study of real training runs (TPE, random or grid; pruning).
    Tune(commands::tune::TuneArgs),
    /// Solve games: Nash equilibria, zero-sum values, NashConv.
    Nash(commands::nash::NashArgs),
    /// Measure throughput against the peer tools' figures.
    Bench(commands::bench::BenchArgs),
    /// Development helpers: `tars dev fleet` starts a local fleet of replicas and workers.
    Dev(commands::dev::DevArgs),
    /// Print the shell completion script for bash, zsh, fish, elvish or powershell.
    Completions { shell: clap_complete::Shell },
    /// Print the man page of tars (roff), or write one page per command into a directory.
    Man {
        /// Write tars.1, tars-eval.1, … into this directory instead.
        #[arg(long, value_name = "DIR")]
        out: Option<std::path::PathBuf>,
    },
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Env(args) => commands::env::run(args),
        Command::Train(args) => commands::train::train(args),
        Command::Evaluate(args) => commands::train::evaluate(args),
        Command::Eval(args) => commands::eval::run(args),
        Command::Baseline(args) => commands::baseline::run(args),
        Command::Config(args) => commands::config::run(args),
        Command::User(args) => commands::user::run(args),
        Command::Jobs(args) => commands::history::jobs(args),
        Command::Runs(args) => commands::history::runs(args),
        Command::Serve(args) => commands::serve::run(args),
        Command::Worker(args) => commands::worker::run(args),
        Command::Propose(args) => commands::hypersync::propose(args),
        Command::Proposals(args) => commands::hypersync::proposals(args),
        Command::Rollback(args) => commands::hypersync::rollback(args),
        Command::Agents(args) => commands::hypersync::agents(args),
        Command::Tune(args) => commands::tune::run(args),
        Command::Nash(args) => commands::nash::run(args),
        Command::Bench(args) => commands::bench::run(args),
        Command::Dev(args) => commands::dev::run(args),
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "tars", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Command::Man { out: None } => {
            clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Man { out: Some(dir) } => {
            std::fs::create_dir_all(&dir)?;
            clap_mangen::generate_to(Cli::command(), &dir)?;
            eprintln!("wrote the man pages to {}", dir.display());
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The async runtime of the commands that talk to storage or the network.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_command_line_is_well_formed() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
