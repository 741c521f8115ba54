//! The service assembled: state, router, OpenAPI document and `serve` with graceful shutdown.

use crate::auth::Auth;
use crate::config::Config;
use crate::engines::Engines;
use crate::error::ApiError;
use crate::hypersync::HyperSync;
use crate::jobs::{Jobs, LocalQueue, Queue};
use crate::middleware::{self, RateLimiter};
use crate::routes;
use crate::service::Service;
use crate::studies::Studies;
use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRef};
use axum::routing::{get, post};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// What every handler can reach. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub service: Arc<Service>,
    pub jobs: Arc<Jobs>,
    pub auth: Arc<Auth>,
    pub hypersync: Arc<HyperSync>,
    pub studies: Arc<Studies>,
    /// The agent engines and the registry (started by [`start`]).
    pub engines: Arc<Engines>,
    pub metrics: PrometheusHandle,
    pub sync_wait: Duration,
    pub shutting_down: Arc<AtomicBool>,
    /// The last database check of `/health` and when it ran (reused for up to a second, so a
    /// probe storm costs one round trip per second; `/ready` always checks).
    pub health: Arc<std::sync::Mutex<Option<(std::time::Instant, bool)>>>,
    /// Slots for CPU-bound request work (Nash), run on blocking threads, never on the async
    /// executor's, so probes and logins never wait behind it ([`AppState::on_cpu`]).
    pub cpu: Arc<tokio::sync::Semaphore>,
}

impl AppState {
    /// Runs CPU-bound `work` on a blocking thread when one of the `cpu_slots` is free; when
    /// all are busy, 503 with `Retry-After` at once (the work is refused, not queued, so a
    /// burst of heavy requests cannot pile up behind the slots).
    pub async fn on_cpu<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let Ok(permit) = self.cpu.clone().try_acquire_owned() else {
            metrics::counter!("tars_cpu_rejections_total").increment(1);
            return Err(ApiError::unavailable(
                "every CPU slot (cpu_slots) is busy with other heavy requests; retry later",
                1,
            ));
        };
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            work()
        })
        .await
        .map_err(|e| ApiError::internal("a CPU-bound computation", e))
    }
}

impl FromRef<AppState> for Arc<Auth> {
    fn from_ref(state: &AppState) -> Arc<Auth> {
        state.auth.clone()
    }
}

/// The process-wide Prometheus recorder (installed once; every server in the process shares it).
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let handle = crate::metrics_catalog::with_buckets(PrometheusBuilder::new())
                .expect("the buckets are valid")
                .install_recorder()
                .expect("no other metrics recorder is installed");
            crate::metrics_catalog::describe();
            process_metrics().describe();
            metrics::gauge!("tars_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
            handle
        })
        .clone()
}

/// The process's CPU, memory, file descriptors and start time, read at each scrape.
fn process_metrics() -> &'static metrics_process::Collector {
    static COLLECTOR: OnceLock<metrics_process::Collector> = OnceLock::new();
    COLLECTOR.get_or_init(metrics_process::Collector::default)
}

/// The text of `/metrics`: the process metrics read now, then every recorded series.
pub fn render_metrics(handle: &PrometheusHandle) -> String {
    process_metrics().collect();
    handle.render()
}

/// Builds the state: store, engine, auth (creating the first admin if needed), jobs.
pub async fn state(config: Config) -> anyhow::Result<AppState> {
    // First: what the parts set up below records (breaker, leader and Redis gauges) is kept.
    let metrics = metrics_handle();
    let sync_wait = Duration::from_secs(config.get_int("sync_wait_seconds") as u64);
    let capacity = config.get_int("queue_capacity") as usize;
    let cpu_slots = config.get_int("cpu_slots") as usize;
    let service = Arc::new(Service::open(config).await?);
    // Known series at 0 from the start (a store that cannot list its baselines yet only
    // leaves the pairs out).
    let baselines = service
        .store
        .baselines(None, None)
        .await
        .unwrap_or_default();
    crate::metrics_catalog::zero_known_series(&baselines);
    let auth = Arc::new(
        Auth::new(service.store.clone(), &service.config)?
            .with_breaker(service.postgres().shared_breaker()),
    );
    auth.bootstrap_admin().await?;
    let jobs = Jobs::new(service.clone(), queue(&service, capacity).await?);
    let hypersync = HyperSync::new(service.clone());
    hypersync.evaluate_on(jobs.clone());
    hypersync.refresh().await?;
    let studies = Studies::new(service.clone(), jobs.clone());
    let engines = Engines::new(service.clone(), studies.clone(), jobs.clone());
    Ok(AppState {
        service,
        jobs,
        auth,
        hypersync,
        studies,
        engines,
        metrics,
        sync_wait,
        shutting_down: Arc::new(AtomicBool::new(false)),
        health: Arc::new(std::sync::Mutex::new(None)),
        cpu: Arc::new(tokio::sync::Semaphore::new(cpu_slots)),
    })
}

/// The job queue the configuration asks for: JetStream with `nats_url` (fleet; it also fails
/// the jobs JetStream gives up on and campaigns for the job reaper duty, for the life of the
/// process), else in-process.
pub async fn queue(service: &Service, capacity: usize) -> anyhow::Result<Arc<dyn Queue>> {
    Ok(
        match crate::queue_nats::NatsSettings::from_config(&service.config) {
            Some(settings) => {
                let queue = Arc::new(crate::queue_nats::NatsQueue::connect(settings).await?);
                queue.fail_undeliverable(service.store.clone()).await?;
                // Runs for the life of the process, leading the job reaper when elected.
                queue.spawn_reaper(service.store.clone())?;
                queue.track_depth();
                queue
            }
            None => Arc::new(LocalQueue::new(capacity)),
        },
    )
}

/// The router with every layer.
pub fn router(state: AppState) -> Router {
    let config = &state.service.config;
    let limiter = Arc::new(
        RateLimiter::new(
            config.get_float("rate_limit_rps"),
            config.get_int("rate_limit_burst") as f64,
        )
        .shared(state.service.redis.clone()),
    );
    let timeout = Duration::from_secs(config.get_int("request_timeout_seconds") as u64);
    let body_limit = config.get_int("max_body_bytes") as usize;
    Router::new()
        .route("/v1/evaluate", post(routes::evaluate))
        .route("/v1/train", post(crate::training::train))
        .route("/v1/jobs", get(crate::history::list_jobs))
        .route("/v1/runs", get(crate::history::list_runs))
        .route("/v1/runs/{run_id}", get(crate::history::get_run))
        .route(
            "/v1/jobs/{job_id}",
            get(routes::get_job).delete(routes::cancel_job),
        )
        .route("/v1/baselines", post(routes::post_baseline))
        .route("/v1/baselines/{agent_type}", get(routes::get_baselines))
        .route(
            "/v1/baselines/{agent_type}/history",
            get(routes::get_history),
        )
        .route("/v1/nash/compute", post(crate::nash::compute))
        .route(
            "/v1/proposals",
            post(crate::proposals::create).get(crate::proposals::list),
        )
        .route("/v1/proposals/{id}", get(crate::proposals::get))
        .route(
            "/v1/proposals/{id}/approve",
            post(crate::proposals::approve),
        )
        .route("/v1/proposals/{id}/reject", post(crate::proposals::reject))
        .route("/v1/rollback", post(crate::agents::rollback))
        .route("/v1/optimize", post(crate::studies::optimize))
        .route("/v1/studies", get(crate::studies::list))
        .route("/v1/studies/{id}", get(crate::studies::get))
        .route("/v1/studies/{id}/stop", post(crate::studies::stop))
        .route("/v1/studies/{id}/propose", post(crate::studies::propose))
        .route("/v1/engines", get(crate::engines::list))
        .route("/v1/engines/tasks", get(crate::engines::tasks))
        .route("/v1/engines/route", post(crate::engines::route))
        .route("/v1/insights", get(crate::engines::insights))
        .route("/v1/alerts", get(crate::engines::alerts))
        .route(
            "/v1/agents/{agent_type}/auto_apply_pause",
            axum::routing::delete(crate::engines::resume_auto_apply),
        )
        .route("/v1/agents/{agent_type}/act", post(crate::agents::act))
        .route(
            "/v1/agents/{agent_type}/config",
            get(crate::agents::get_config).put(crate::agents::put_config),
        )
        .route(
            "/v1/agents/{agent_type}/config/history",
            get(crate::agents::config_history),
        )
        .route("/health", get(routes::health))
        .route("/ready", get(routes::ready))
        .route("/metrics", get(routes::metrics))
        .route("/openapi.json", get(routes::openapi))
        .route("/docs", get(crate::api_doc::page))
        .route("/docs/docs.js", get(crate::api_doc::script))
        .route("/docs/docs.css", get(crate::api_doc::style))
        .merge(crate::auth::router())
        .fallback(routes::not_found)
        .with_state(state)
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::from_fn_with_state(
            timeout,
            middleware::timeout,
        ))
        .layer(axum::middleware::from_fn_with_state(
            limiter,
            middleware::rate_limit,
        ))
        .layer(axum::middleware::from_fn(middleware::observe))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            panic_response,
        ))
}

fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> axum::response::Response {
    use axum::response::IntoResponse;
    tracing::error!("a request handler panicked");
    crate::error::ApiError::new(
        axum::http::StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "the server failed on this request; the server log has the details",
    )
    .into_response()
}

/// A running server: its address and the handle that stops it.
pub struct Running {
    pub addr: SocketAddr,
    pub state: AppState,
    shutdown: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Running {
    /// Graceful stop (see [`start`]).
    pub async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.send_replace(true);
        self.task.await?
    }

    /// Serves until a signal stops the server (see [`start`]).
    pub async fn wait(self) -> anyhow::Result<()> {
        self.task.await?
    }
}

/// Binds, resumes stored jobs, starts the workers and serves until [`Running::stop`] or, with
/// `signals`, SIGTERM/Ctrl-C.
///
/// The stop is graceful: the listener closes at once, `/ready` answers 503, no queued job
/// starts; in-flight requests and running jobs get `shutdown_timeout_seconds`, then running
/// jobs are stopped at their next training step and re-queued (their waiting requests answer
/// 202) and connections still open a second later are dropped.
pub async fn start(config: Config, signals: bool) -> anyhow::Result<Running> {
    let addr: SocketAddr = format!("{}:{}", config.host(), config.port())
        .parse()
        .map_err(|e| {
            anyhow::anyhow!("invalid host/port {}:{}: {e}", config.host(), config.port())
        })?;
    let workers = config.get_int("job_workers") as usize;
    let drain = Duration::from_secs(config.get_int("shutdown_timeout_seconds") as u64);
    let state = state(config).await?;
    // Fleet mode: this replica's writes reach the others as events, and theirs reach it —
    // first the ones it missed while down.
    let events = start_events(&state).await?;
    let resumed = state.jobs.resume().await?;
    if resumed > 0 {
        tracing::info!(resumed, "re-queued jobs left by a previous run");
    }
    let worker_tasks = state.jobs.spawn_workers(workers);
    let resumed = state.hypersync.resume().await?;
    if resumed > 0 {
        tracing::info!(resumed, "resumed proposals left by a previous run");
    }
    let resumed = state.studies.resume().await?;
    if resumed > 0 {
        tracing::info!(resumed, "resumed studies left by a previous run");
    }
    // The engines' scheduled scans are singleton duties: they run while this process leads
    // the ENGINES duty (always, on SQLite; one process of the fleet, on PostgreSQL). The
    // campaign lives as long as the server.
    let engines_campaign = crate::leader::campaign(&state.service.store, crate::leader::ENGINES)
        .map_err(|e| anyhow::anyhow!("starting the engines' leader election: {e}"))?;
    state
        .engines
        .start(workers, engines_campaign.leadership().subscribe())
        .await?;
    let poll = Duration::from_millis(state.service.config.get_int("config_poll_ms") as u64);
    let poller = tokio::spawn(poll_configs(state.hypersync.clone(), poll));
    // Fleet mode with Redis: other replicas' config writes are announced there too.
    let redis_notices =
        state.service.redis.as_ref().map(|redis| {
            tokio::spawn(refresh_on_notices(state.hypersync.clone(), redis.notices()))
        });
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?;
    let addr = listener.local_addr()?;
    let (shutdown, mut stop) = tokio::sync::watch::channel(false);
    let (draining, drain_started) = tokio::sync::watch::channel(false);
    let app = router(state.clone());
    let config = &state.service.config;
    let limits = crate::connections::Limits {
        max_connections: config.get_int("max_connections") as usize,
        header_read_timeout: Duration::from_secs(
            config.get_int("header_read_timeout_seconds") as u64
        ),
    };
    let mut server = tokio::spawn(crate::connections::serve(
        listener,
        app,
        limits,
        drain_started,
    ));
    let task_state = state.clone();
    let task = tokio::spawn(async move {
        if signals {
            tokio::select! {
                _ = stop.changed() => {}
                _ = shutdown_signal() => {}
            }
        } else {
            let _ = stop.changed().await;
        }
        let deadline = tokio::time::Instant::now() + drain;
        task_state.shutting_down.store(true, Ordering::Relaxed);
        tracing::info!(
            timeout_seconds = drain.as_secs(),
            "shutting down: finishing in-flight requests and running jobs"
        );
        draining.send_replace(true);
        poller.abort();
        if let Some((_, listener)) = &events {
            listener.abort();
        }
        if let Some(notices) = &redis_notices {
            notices.abort();
        }
        task_state.jobs.shutdown(worker_tasks, deadline).await;
        task_state.studies.shutdown(deadline).await;
        task_state.engines.shutdown(deadline).await;
        engines_campaign.stop().await;
        if let Some((publisher, _)) = &events {
            publisher.close(Duration::from_secs(2)).await;
        }
        let served = match tokio::time::timeout_at(
            deadline.max(tokio::time::Instant::now()) + Duration::from_secs(1),
            &mut server,
        )
        .await
        {
            Ok(served) => served.map_err(anyhow::Error::from).and_then(|r| Ok(r?)),
            Err(_) => {
                tracing::warn!("shutdown timeout: dropping connections still open");
                server.abort();
                Ok(())
            }
        };
        task_state.service.store.close().await;
        if let Some(redis) = &task_state.service.redis {
            redis.close();
        }
        served
    });
    Ok(Running {
        addr,
        state,
        shutdown,
        task,
    })
}

/// Fleet mode's events (`events_nats`): publishes this process's, applies everyone's.
async fn start_events(
    state: &AppState,
) -> anyhow::Result<
    Option<(
        Arc<crate::events_nats::NatsPublisher>,
        tokio::task::JoinHandle<()>,
    )>,
> {
    let url = state.service.config.nats_url();
    if url.is_empty() {
        return Ok(None);
    }
    let client = crate::queue_nats::connect(url).await?;
    let prefix = state.service.config.get_text("nats_prefix");
    let publisher = crate::events_nats::NatsPublisher::start(client.clone(), prefix).await?;
    state.service.set_publisher(publisher.clone());
    let appliers = crate::events_nats::Appliers {
        service: state.service.clone(),
        hypersync: Some(state.hypersync.clone()),
        jobs: Some(state.jobs.clone()),
    };
    let listener = crate::events_nats::listen(client, prefix, appliers).await?;
    Ok(Some((publisher, listener)))
}

/// Picks up config versions written by other processes on the same database (the CLI, other
/// replicas) every `every`.
async fn poll_configs(hypersync: Arc<HyperSync>, every: Duration) {
    let mut interval = tokio::time::interval(every);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        if let Err(err) = hypersync.refresh().await {
            tracing::warn!(error = %err.message, "checking for config changes failed");
        }
    }
}

/// Picks up the config versions other replicas announce through Redis.
async fn refresh_on_notices(
    hypersync: Arc<HyperSync>,
    mut notices: tokio::sync::broadcast::Receiver<crate::redis::Notice>,
) {
    use tokio::sync::broadcast::error::RecvError;
    loop {
        match notices.recv().await {
            Ok(crate::redis::Notice::Config(_)) | Err(RecvError::Lagged(_)) => {}
            Ok(crate::redis::Notice::Baselines) => continue,
            Err(RecvError::Closed) => return,
        }
        if let Err(err) = hypersync.refresh().await {
            tracing::warn!(error = %err.message, "applying a config notice failed; the poll retries");
        }
    }
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
}
