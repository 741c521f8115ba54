//! `tars config show`: the effective configuration and where each value came from.

use serde_json::json;
use std::io::Write;
use std::process::ExitCode;
use tars_server::config::{Config, ConfigArgs};

/// Arguments of `tars config`.
#[derive(Debug, clap::Args)]
pub struct ConfigCommandArgs {
    #[command(subcommand)]
    command: ConfigCommand,
    #[command(flatten)]
    config: ConfigArgs,
}

#[derive(Debug, clap::Subcommand)]
enum ConfigCommand {
    /// Print every key, its value (secrets masked), its source and its environment variable.
    Show {
        #[arg(long)]
        json: bool,
    },
}

pub fn run(args: ConfigCommandArgs) -> anyhow::Result<ExitCode> {
    let config = Config::load(&args.config)?;
    let ConfigCommand::Show { json } = args.command;
    let rows = config.rows();
    let mut out = std::io::stdout().lock();
    if json {
        let map: serde_json::Map<String, serde_json::Value> = rows
            .iter()
            .map(|[key, value, source, env, _]| {
                (
                    key.clone(),
                    json!({"value": value, "source": source, "env": env}),
                )
            })
            .collect();
        writeln!(out, "{}", serde_json::Value::from(map))?;
        return Ok(ExitCode::SUCCESS);
    }
    let width = |i: usize| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0);
    let (w0, w1, w2, w3) = (width(0), width(1), width(2), width(3));
    writeln!(
        out,
        "{:<w0$}  {:<w1$}  {:<w2$}  {:<w3$}  meaning",
        "key", "value", "source", "env var"
    )?;
    for [key, value, source, env, help] in &rows {
        writeln!(
            out,
            "{key:<w0$}  {value:<w1$}  {source:<w2$}  {env:<w3$}  {help}"
        )?;
    }
    Ok(ExitCode::SUCCESS)
}
