//! The agent engines inside `tars serve` (DESIGN §12): builds the four engines of
//! `tars-runtime` on this server's store and study runner, runs each with its
//! [`EngineRunner`], heartbeats this process's job workers into the registry (so the
//! Intelligence engine can route to them and the Performance engine sees them die), exports
//! the registry's liveness (`agent_up`) and the database pool's use, and stops it all
//! gracefully. `routes.rs` is its HTTP surface.
//!
//! The engines' scans are singleton duties: they fire only while the `leader` signal is true
//! (always, in embedded mode; the fleet's leader election drives it).

use crate::error::ApiError;
use crate::jobs::Jobs;
use crate::service::Service;
use crate::studies::{OptimizeBody, Studies};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tars_runtime::engines::Actions;
use tars_runtime::engines::analysis::{Analysis, AnalysisConfig};
use tars_runtime::engines::intelligence::Intelligence;
use tars_runtime::engines::optimization::{Optimization, OptimizationConfig};
use tars_runtime::engines::performance::{Performance, PerformanceConfig};
use tars_runtime::registry::new_component;
use tars_runtime::{
    BoxFuture, Engine, EngineRunner, EngineSettings, EngineStatus, QueueConfig, Registry,
};
use tars_store::ComponentRow;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use uuid::Uuid;

mod routes;

pub use routes::*;

/// The engines of this process and the registry they share.
pub struct Engines {
    service: Arc<Service>,
    studies: Arc<Studies>,
    jobs: Arc<Jobs>,
    registry: Registry,
    runners: Mutex<Vec<Arc<EngineRunner>>>,
    background: Mutex<Vec<JoinHandle<()>>>,
    worker: Mutex<Option<Arc<WorkerHeartbeat>>>,
    leader: Mutex<Option<watch::Receiver<bool>>>,
}

/// The registry entry of a process's evaluation job workers (`tars serve` with
/// `job_workers > 0`, `tars worker`): capability `evaluate`, load from the running and queued
/// jobs, refreshed every heartbeat interval, marked stopped at shutdown.
pub struct WorkerHeartbeat {
    registry: Registry,
    jobs: Arc<Jobs>,
    row: Mutex<ComponentRow>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl WorkerHeartbeat {
    /// Registers `workers` job workers now and beats every `interval`.
    pub async fn start(
        registry: Registry,
        jobs: Arc<Jobs>,
        workers: usize,
        interval: Duration,
    ) -> Arc<WorkerHeartbeat> {
        let row = new_component(
            "worker",
            "eval-worker",
            vec!["evaluate".to_string()],
            workers,
            interval,
        );
        let beat = Arc::new(WorkerHeartbeat {
            registry,
            jobs,
            row: Mutex::new(row),
            task: Mutex::new(None),
        });
        beat.beat().await;
        let this = beat.clone();
        let task = tokio::spawn(async move {
            let mut every = tokio::time::interval(interval);
            every.tick().await;
            loop {
                every.tick().await;
                this.beat().await;
            }
        });
        *beat.task.lock().expect("heartbeat lock") = Some(task);
        beat
    }

    async fn beat(&self) {
        let row = {
            let mut row = self.row.lock().expect("heartbeat lock");
            row.running_tasks = self.jobs.running().min(i32::MAX as usize) as i32;
            row.queue_size = self.jobs.queue_depth().min(i32::MAX as usize) as i32;
            row.clone()
        };
        if let Err(err) = self.registry.beat(&row).await {
            tracing::warn!(error = %err, "job worker heartbeat failed");
        }
    }

    /// Stops beating and marks the workers stopped (they leave routing at once).
    pub async fn stop(&self) {
        if let Some(task) = self.task.lock().expect("heartbeat lock").take() {
            task.abort();
        }
        let mut row = self.row.lock().expect("heartbeat lock").clone();
        row.status = "stopped".to_string();
        row.running_tasks = 0;
        row.queue_size = 0;
        if let Err(err) = self.registry.beat(&row).await {
            tracing::warn!(error = %err, "could not deregister the job workers");
        }
    }
}

/// What the engines ask of the service: starting a study, through the study runner.
struct ServiceActions {
    studies: Arc<Studies>,
}

impl Actions for ServiceActions {
    fn start_study(
        &self,
        agent_type: String,
        environment: String,
        n_trials: u32,
        actor: &'static str,
    ) -> BoxFuture<'static, Result<Uuid, String>> {
        let studies = self.studies.clone();
        Box::pin(
            async move { start_study(&studies, agent_type, environment, n_trials, actor).await },
        )
    }
}

/// Starts a study with the defaults of `POST /v1/optimize` (quick budget): the dependency
/// call a circuit breaker wraps.
async fn start_study(
    studies: &Arc<Studies>,
    agent_type: String,
    environment: String,
    n_trials: u32,
    actor: &str,
) -> Result<Uuid, String> {
    let body: OptimizeBody = serde_json::from_value(serde_json::json!({
        "agent_type": agent_type,
        "n_trials": n_trials,
        "environments": [environment],
    }))
    .map_err(|e| format!("building the study request: {e}"))?;
    studies
        .create(body, actor)
        .await
        .map_err(|e: ApiError| e.message)
}

impl Engines {
    /// The registry on the service's store; no engine runs until [`Engines::start`].
    pub fn new(service: Arc<Service>, studies: Arc<Studies>, jobs: Arc<Jobs>) -> Arc<Engines> {
        let missed = service.config.get_int("missed_heartbeats") as u32;
        Arc::new(Engines {
            registry: Registry::new(service.store.clone(), missed)
                .with_breaker(service.postgres().shared_breaker()),
            service,
            studies,
            jobs,
            runners: Mutex::new(Vec::new()),
            background: Mutex::new(Vec::new()),
            worker: Mutex::new(None),
            leader: Mutex::new(None),
        })
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Whether this process runs the singleton duties now.
    pub fn is_leader(&self) -> bool {
        self.leader
            .lock()
            .expect("engines lock")
            .as_ref()
            .is_some_and(|leader| *leader.borrow())
    }

    /// Starts the four engines (unless `engines = 0`), the heartbeat of this process's
    /// `workers` job workers and the registry's gauges.
    pub async fn start(
        self: &Arc<Self>,
        workers: usize,
        leader: watch::Receiver<bool>,
    ) -> anyhow::Result<()> {
        *self.leader.lock().expect("engines lock") = Some(leader.clone());
        let config = &self.service.config;
        let heartbeat = Duration::from_secs(config.get_int("heartbeat_interval_seconds") as u64);
        let mut background = Vec::new();
        if workers > 0 {
            let beat = WorkerHeartbeat::start(
                self.registry.clone(),
                self.jobs.clone(),
                workers,
                heartbeat,
            )
            .await;
            *self.worker.lock().expect("engines lock") = Some(beat);
        }
        let this = self.clone();
        background.push(tokio::spawn(async move {
            let mut every = tokio::time::interval(heartbeat);
            loop {
                every.tick().await;
                this.export_gauges().await;
            }
        }));
        *self.background.lock().expect("engines lock") = background;
        if config.get_int("engines") == 0 {
            tracing::info!("engines are off (engines = 0)");
            return Ok(());
        }
        let settings = EngineSettings {
            queue: QueueConfig {
                max_concurrent_tasks: config.get_int("max_concurrent_tasks") as usize,
                queue_size: config.get_int("queue_size") as usize,
                task_timeout: Duration::from_secs(config.get_int("task_timeout_seconds") as u64),
            },
            heartbeat_interval: heartbeat,
        };
        let every = Duration::from_secs(config.get_int("engine_interval_seconds") as u64);
        let stale_after =
            Duration::from_secs_f64(config.get_float("baseline_stale_days") * 86_400.0);
        let store = self.service.store.clone();
        let engines: Vec<Arc<dyn Engine>> = vec![
            Intelligence::new(self.registry.clone()),
            Performance::new(
                store.clone(),
                self.registry.clone(),
                PerformanceConfig {
                    every,
                    window: Duration::from_secs(config.get_int("alert_window_seconds") as u64),
                    task_failure_rate: config.get_float("alert_task_failure_rate"),
                    queue_size: config.get_int("alert_queue_size") as usize,
                    eval_p95_seconds: config.get_float("alert_eval_p95_seconds"),
                    eval_failure_rate: config.get_float("alert_eval_failure_rate"),
                },
            ),
            Optimization::new(
                store.clone(),
                Arc::new(ServiceActions {
                    studies: self.studies.clone(),
                }),
                OptimizationConfig {
                    every,
                    stale_after,
                    stale_study_trials: config.get_int("stale_study_trials") as u32,
                    pause_after: config.get_int("auto_apply_pause_after") as u32,
                },
            ),
            Analysis::new(
                store,
                AnalysisConfig {
                    every,
                    drift_threshold: config.get_float("drift_threshold"),
                    drift_window: config.get_int("drift_window") as usize,
                    stale_after,
                },
            ),
        ];
        for engine in engines {
            let runner =
                EngineRunner::start(engine, settings, self.registry.clone(), leader.clone())
                    .await
                    .map_err(anyhow::Error::msg)?;
            self.runners.lock().expect("engines lock").push(runner);
        }
        Ok(())
    }

    /// The engines running in this process.
    pub fn statuses(&self) -> Vec<EngineStatus> {
        self.runners
            .lock()
            .expect("engines lock")
            .iter()
            .map(|runner| runner.status())
            .collect()
    }

    /// The runner of the engine called `name`, when it runs here.
    pub fn runner(&self, name: &str) -> Option<Arc<EngineRunner>> {
        self.runners
            .lock()
            .expect("engines lock")
            .iter()
            .find(|runner| runner.name() == name)
            .cloned()
    }

    /// Graceful stop: each engine finishes or cancels its tasks by `deadline`; the worker
    /// says it stopped.
    pub async fn shutdown(&self, deadline: tokio::time::Instant) {
        for task in self.background.lock().expect("engines lock").drain(..) {
            task.abort();
        }
        let runners: Vec<_> = self
            .runners
            .lock()
            .expect("engines lock")
            .drain(..)
            .collect();
        for runner in runners {
            runner.stop(deadline).await;
        }
        let worker = self.worker.lock().expect("engines lock").take();
        if let Some(worker) = worker {
            worker.stop().await;
        }
    }

    /// `agent_up{agent_name,kind,instance}` from the registry (every replica reports every
    /// component, so a dead one is reported by the living), and the database pool's use.
    async fn export_gauges(&self) {
        match self.registry.components().await {
            Ok(components) => {
                for c in components {
                    metrics::gauge!("agent_up", "agent_name" => c.row.name, "kind" => c.row.kind,
                        "instance" => c.row.instance)
                    .set(if c.alive { 1.0 } else { 0.0 });
                }
            }
            Err(err) => tracing::warn!(error = %err, "reading the registry failed"),
        }
        let pool = self.service.store.pool_connections();
        metrics::gauge!("tars_db_pool_connections").set(f64::from(pool.open));
        metrics::gauge!("tars_db_pool_idle_connections").set(f64::from(pool.idle));
        metrics::gauge!("tars_db_pool_max_connections").set(f64::from(pool.max));
    }
}
