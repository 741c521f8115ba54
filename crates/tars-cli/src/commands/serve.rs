//! `tars serve`: the HTTP service (embedded: SQLite and an in-process queue; nothing to install).
//!
//! SIGTERM or Ctrl-C stops it gracefully (`tars_server::app::start`): no new connections,
//! in-flight requests and running jobs get `shutdown_timeout_seconds`, unfinished jobs are
//! re-queued, queued spans are flushed to the OTLP collector, and the process exits 0.

use std::process::ExitCode;
use std::time::Duration;
use tars_server::{Config, ConfigArgs};

/// Arguments of `tars serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    #[command(flatten)]
    config: ConfigArgs,
}

pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let config = Config::load(&args.config)?;
    let telemetry = tars_server::telemetry::init(&config)?;
    if let Some(url) = &telemetry.traces_url {
        tracing::info!(%url, "exporting traces over OTLP/HTTP");
    }
    let runtime = crate::runtime()?;
    let served = runtime.block_on(async {
        let running = tars_server::app::start(config, true).await?;
        let url = format!("http://{}", running.addr);
        tracing::info!(%url, "listening");
        eprintln!("T.A.R.S. listening on {url}  (API: {url}/openapi.json, metrics: {url}/metrics)");
        running.wait().await
    });
    // An evaluation thread that ignored the stop request must not hold the exit.
    runtime.shutdown_timeout(Duration::from_secs(1));
    telemetry.shutdown();
    served?;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}
