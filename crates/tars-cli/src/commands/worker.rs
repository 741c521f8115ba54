//! `tars worker`: runs evaluation jobs from the fleet's NATS JetStream queue, `job_workers` at
//! once, with the database and NATS of the same configuration as `tars serve` (fleet mode:
//! `database_url = postgres://…`, `nats_url = nats://…`). It serves no HTTP.
//!
//! SIGTERM or Ctrl-C stops it: it pulls no new job, running jobs get
//! `shutdown_timeout_seconds` to finish, then are stopped at their next training step, put
//! back in the store's queue and nak'd, so another worker takes them at once. A worker killed
//! outright loses nothing either: its jobs come back after `nats_ack_wait_seconds`. Every
//! worker is a candidate for the fleet's `job-reaper` duty (`tars_server::leader`).

use anyhow::Context;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tars_runtime::Registry;
use tars_server::engines::WorkerHeartbeat;
use tars_server::events_nats::{self, Appliers, NatsPublisher};
use tars_server::jobs::Jobs;
use tars_server::queue_nats::{NatsQueue, NatsSettings};
use tars_server::{Config, ConfigArgs, Service};

/// Arguments of `tars worker`.
#[derive(Debug, clap::Args)]
pub struct WorkerArgs {
    #[command(flatten)]
    config: ConfigArgs,
}

pub fn run(args: WorkerArgs) -> anyhow::Result<ExitCode> {
    let config = Config::load(&args.config)?;
    let settings = NatsSettings::from_config(&config).context(
        "tars worker needs a queue to work on: set nats_url (TARS_NATS_URL or --nats-url)",
    )?;
    let n_workers = config.get_int("job_workers") as usize;
    anyhow::ensure!(
        n_workers > 0,
        "tars worker with job_workers = 0 would do nothing; use 1 or more"
    );
    let drain = Duration::from_secs(config.get_int("shutdown_timeout_seconds") as u64);
    let telemetry = tars_server::telemetry::init(&config)?;
    let runtime = crate::runtime()?;
    let worked = runtime.block_on(async {
        let service = Arc::new(Service::open(config).await?);
        let queue = Arc::new(NatsQueue::connect(settings.clone()).await?);
        let _advisories = queue.fail_undeliverable(service.store.clone()).await?;
        queue.track_depth();
        // Queued jobs whose message is missing are published by the job reaper's leader.
        let _reaper = queue.spawn_reaper(service.store.clone())?;
        let jobs = Jobs::new(service.clone(), queue);
        // Cancels of jobs running here arrive as fleet events; baseline events drop caches.
        let client = tars_server::queue_nats::connect(&settings.url).await?;
        let publisher = NatsPublisher::start(client.clone(), &settings.prefix).await?;
        service.set_publisher(publisher.clone());
        let appliers = Appliers {
            service: service.clone(),
            hypersync: None,
            jobs: Some(jobs.clone()),
        };
        let listener = events_nats::listen(client, &settings.prefix, appliers).await?;
        let workers = jobs.spawn_workers(n_workers);
        // In the registry, so the Intelligence engine routes to it and Performance sees it die.
        let heartbeat = WorkerHeartbeat::start(
            Registry::new(
                service.store.clone(),
                service.config.get_int("missed_heartbeats") as u32,
            )
            .with_breaker(service.postgres().shared_breaker()),
            jobs.clone(),
            n_workers,
            Duration::from_secs(service.config.get_int("heartbeat_interval_seconds") as u64),
        )
        .await;
        tracing::info!(
            workers = n_workers,
            stream = settings.stream_name(),
            consumer = settings.consumer_name(),
            "working"
        );
        eprintln!(
            "T.A.R.S. worker running {n_workers} job(s) at once from stream {}",
            settings.stream_name()
        );
        tars_server::app::shutdown_signal().await;
        tracing::info!(
            timeout_seconds = drain.as_secs(),
            "stopping: finishing running jobs"
        );
        jobs.shutdown(workers, tokio::time::Instant::now() + drain)
            .await;
        heartbeat.stop().await;
        listener.abort();
        publisher.close(Duration::from_secs(2)).await;
        service.store.close().await;
        anyhow::Ok(())
    });
    runtime.shutdown_timeout(Duration::from_secs(1));
    telemetry.shutdown();
    worked?;
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}
