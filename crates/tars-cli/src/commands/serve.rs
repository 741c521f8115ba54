//! `tars serve`: the HTTP service (embedded: SQLite and an in-process queue; nothing to install).

use std::process::ExitCode;
use tars_server::{Config, ConfigArgs};

/// Arguments of `tars serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    #[command(flatten)]
    config: ConfigArgs,
}

pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let config = Config::load(&args.config)?;
    init_logging(config.get_text("log_format"));
    crate::runtime()?.block_on(async {
        let running = tars_server::app::start(config, true).await?;
        let url = format!("http://{}", running.addr);
        tracing::info!(%url, "listening");
        eprintln!("T.A.R.S. listening on {url}  (API: {url}/openapi.json, metrics: {url}/metrics)");
        running.wait().await
    })?;
    Ok(ExitCode::SUCCESS)
}

/// Logs to stderr: readable text, or one JSON object per line with the span fields (trace id
/// included) for `log_format = json`. `RUST_LOG` filters (default `info`).
fn init_logging(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if format == "json" {
        builder
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .init();
    } else {
        builder.init();
    }
}
