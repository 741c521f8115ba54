//! `tars config show`: the effective configuration and where each value came from; `tars
//! config init`: a commented `tars.toml` with every key at its default.

use anyhow::Context;
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
        /// Print one JSON object: key → value, source and environment variable.
        #[arg(long)]
        json: bool,
    },
    /// Write a commented tars.toml listing every key at its default (stdout with `-`).
    Init {
        /// Where to write it.
        #[arg(default_value = "tars.toml")]
        path: std::path::PathBuf,
        /// Replace an existing file.
        #[arg(long)]
        overwrite: bool,
    },
}

pub fn run(args: ConfigCommandArgs) -> anyhow::Result<ExitCode> {
    let json = match args.command {
        ConfigCommand::Show { json } => json,
        ConfigCommand::Init { path, overwrite } => return init(&path, overwrite),
    };
    let config = Config::load(&args.config)?;
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

fn init(path: &std::path::Path, overwrite: bool) -> anyhow::Result<ExitCode> {
    let template = tars_server::config::template();
    if path == std::path::Path::new("-") {
        std::io::stdout().lock().write_all(template.as_bytes())?;
        return Ok(ExitCode::SUCCESS);
    }
    if path.exists() && !overwrite {
        anyhow::bail!(
            "{} exists; pass --overwrite to replace it, or give another path",
            path.display()
        );
    }
    std::fs::write(path, template).with_context(|| format!("writing {}", path.display()))?;
    eprintln!(
        "wrote {}: every key at its default, commented out",
        path.display()
    );
    Ok(ExitCode::SUCCESS)
}
