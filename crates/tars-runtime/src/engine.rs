//! The engine lifecycle (seed 002's `BaseAgent`) and the runner that drives one engine.
//!
//! An [`Engine`] says who it is (name, capabilities), what it subscribes to (its
//! [`Schedule`]s: tasks it gives itself periodically), how it handles a task, how healthy it
//! is, and how it stops. [`EngineRunner::start`] runs it: its bounded priority
//! [`TaskQueue`], the schedules (singleton duties: only while this process is the leader),
//! a heartbeat into the [`Registry`], every task's outcome into `task_results` and the seed's
//! metrics (`agent_tasks_total{agent_name,status}`, `agent_queue_size{agent_name}`, …), and
//! a graceful stop with a deadline.

use crate::queue::{Handler, Outcome, QueueConfig, QueueError, TaskQueue};
use crate::registry::{Registry, new_component};
use crate::{BoxFuture, Priority, Task, TaskOutput, TaskStatus};
use chrono::Utc;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tars_store::{ComponentRow, Store, StoreError, TaskResultRow};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// How an engine feels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    Healthy,
    /// Working, with a problem worth seeing (e.g. its last scan failed).
    Degraded(String),
    /// Not doing its job.
    Unhealthy(String),
}

impl Health {
    /// The registry's status word.
    pub fn as_str(&self) -> &'static str {
        match self {
            Health::Healthy => "healthy",
            Health::Degraded(_) => "degraded",
            Health::Unhealthy(_) => "unhealthy",
        }
    }

    pub fn message(&self) -> Option<&str> {
        match self {
            Health::Healthy => None,
            Health::Degraded(m) | Health::Unhealthy(m) => Some(m),
        }
    }
}

/// A task an engine gives itself every `every` (the engine's subscription). Schedules are
/// singleton duties: they fire only while this process is the leader.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    pub kind: &'static str,
    pub every: Duration,
    pub priority: Priority,
    pub payload: Value,
}

/// A long-running component (seed 002's `BaseAgent`).
pub trait Engine: Send + Sync + 'static {
    /// Its name in the registry, metrics (`agent_name`) and `task_results.engine`.
    fn name(&self) -> &'static str;

    /// What it can do; the Intelligence engine routes by these.
    fn capabilities(&self) -> Vec<String>;

    /// Called once before anything runs; an error stops the start.
    fn start(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async { Ok(()) })
    }

    /// The tasks it gives itself periodically.
    fn subscriptions(&self) -> Vec<Schedule>;

    /// Does one task. An `Err` is a failed task with that message.
    fn handle_task(self: Arc<Self>, task: Task) -> BoxFuture<'static, Result<TaskOutput, String>>;

    /// How it is doing now.
    fn health(&self) -> Health {
        Health::Healthy
    }

    /// Called once when it stops, after its queue has drained or the deadline passed.
    fn stop(&self, _deadline: Instant) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}

/// How a runner runs its engine.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EngineSettings {
    pub queue: QueueConfig,
    pub heartbeat_interval: Duration,
}

/// What `GET /v1/engines` shows of one engine.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineStatus {
    pub name: String,
    pub component_id: uuid::Uuid,
    pub instance: String,
    pub capabilities: Vec<String>,
    pub health: Health,
    pub queue_size: usize,
    pub queue_capacity: usize,
    pub running_tasks: usize,
    pub max_concurrent_tasks: usize,
    pub task_timeout_seconds: f64,
    /// Outcomes since this process started, by status.
    pub tasks: HashMap<&'static str, u64>,
    /// The last outcome: task kind, status, error.
    pub last_task: Option<(String, &'static str, Option<String>)>,
    pub schedules: Vec<(String, f64)>,
}

/// One engine, running.
pub struct EngineRunner {
    engine: Arc<dyn Engine>,
    queue: Arc<TaskQueue>,
    registry: Registry,
    component: Mutex<ComponentRow>,
    counts: Arc<Mutex<Counts>>,
    schedules: Vec<Schedule>,
    background: Mutex<Vec<JoinHandle<()>>>,
    executor: Mutex<Option<JoinHandle<()>>>,
    waiters: Waiters,
}

type Waiters = Arc<Mutex<HashMap<uuid::Uuid, tokio::sync::oneshot::Sender<Outcome>>>>;

#[derive(Default)]
struct Counts {
    by_status: HashMap<&'static str, u64>,
    last: Option<(String, &'static str, Option<String>)>,
}

impl EngineRunner {
    /// Starts `engine`: its start hook, queue executor, heartbeat and schedules (which fire
    /// only while `leader` is true).
    pub async fn start(
        engine: Arc<dyn Engine>,
        settings: EngineSettings,
        registry: Registry,
        leader: watch::Receiver<bool>,
    ) -> Result<Arc<EngineRunner>, String> {
        let name = engine.name();
        engine
            .start()
            .await
            .map_err(|e| format!("engine {name} did not start: {e}"))?;
        let queue = TaskQueue::new(settings.queue);
        let component = new_component(
            "engine",
            name,
            engine.capabilities(),
            queue.config().max_concurrent_tasks,
            settings.heartbeat_interval,
        );
        // Every label set exists from the start, so the alert rules see zeros, not gaps.
        for status in TaskStatus::ALL {
            metrics::counter!("agent_tasks_total", "agent_name" => name, "status" => status.as_str())
                .increment(0);
        }
        metrics::gauge!("agent_queue_size", "agent_name" => name).set(0.0);
        metrics::gauge!("agent_running_tasks", "agent_name" => name).set(0.0);
        let runner = Arc::new(EngineRunner {
            schedules: engine.subscriptions(),
            engine,
            queue,
            registry,
            component: Mutex::new(component),
            counts: Arc::default(),
            background: Mutex::new(Vec::new()),
            executor: Mutex::new(None),
            waiters: Arc::default(),
        });
        runner.heartbeat().await;
        let executor = tokio::spawn(
            runner
                .queue
                .clone()
                .run(runner.handler(), runner.recorder()),
        );
        *runner.executor.lock().expect("runner lock") = Some(executor);
        let mut background = Vec::new();
        let beating = runner.clone();
        background.push(tokio::spawn(async move {
            let mut every = tokio::time::interval(settings.heartbeat_interval);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            every.tick().await;
            loop {
                every.tick().await;
                beating.heartbeat().await;
            }
        }));
        for schedule in runner.schedules.clone() {
            let this = runner.clone();
            let leader = leader.clone();
            background.push(tokio::spawn(async move {
                let mut every = tokio::time::interval(schedule.every);
                every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    every.tick().await;
                    if !*leader.borrow() {
                        continue;
                    }
                    let task = Task::new(schedule.kind, schedule.priority, schedule.payload.clone());
                    if let Err(err) = this.submit(task) {
                        tracing::warn!(engine = this.name(), kind = schedule.kind, error = %err, "scheduled task refused");
                    }
                }
            }));
        }
        *runner.background.lock().expect("runner lock") = background;
        tracing::info!(engine = name, "engine started");
        Ok(runner)
    }

    pub fn name(&self) -> &'static str {
        self.engine.name()
    }

    pub fn engine(&self) -> &Arc<dyn Engine> {
        &self.engine
    }

    pub fn queue(&self) -> &Arc<TaskQueue> {
        &self.queue
    }

    /// Queues a task; a full (or closed) queue refuses it at once, and the refusal is
    /// recorded as a `rejected` task.
    pub fn submit(&self, task: Task) -> Result<uuid::Uuid, QueueError> {
        let id = task.id;
        let pushed = self.queue.push(task.clone());
        metrics::gauge!("agent_queue_size", "agent_name" => self.name())
            .set(self.queue.len() as f64);
        if let Err(err) = &pushed {
            let now = Instant::now();
            let outcome = Outcome {
                task,
                status: TaskStatus::Rejected,
                output: None,
                error: Some(err.to_string()),
                started: now,
                duration: Duration::ZERO,
            };
            tokio::spawn((self.recorder())(outcome));
        }
        pushed.map(|()| id)
    }

    /// Queues a task and waits for its outcome (completed, failed or timed out); a full or
    /// closed queue refuses it at once.
    pub async fn call(&self, task: Task) -> Result<Outcome, QueueError> {
        let (send, receive) = tokio::sync::oneshot::channel();
        let id = task.id;
        self.waiters.lock().expect("runner lock").insert(id, send);
        if let Err(err) = self.submit(task) {
            self.waiters.lock().expect("runner lock").remove(&id);
            return Err(err);
        }
        // The sender is dropped unanswered only when the engine is stopped first.
        receive.await.map_err(|_| QueueError::Closed)
    }

    /// What the engine is doing now.
    pub fn status(&self) -> EngineStatus {
        let component = self.component.lock().expect("runner lock");
        let counts = self.counts.lock().expect("runner lock");
        let config = self.queue.config();
        EngineStatus {
            name: self.name().to_string(),
            component_id: component.id,
            instance: component.instance.clone(),
            capabilities: component.capabilities.clone(),
            health: self.engine.health(),
            queue_size: self.queue.len(),
            queue_capacity: config.queue_size,
            running_tasks: self.queue.running(),
            max_concurrent_tasks: config.max_concurrent_tasks,
            task_timeout_seconds: config.task_timeout.as_secs_f64(),
            tasks: counts.by_status.clone(),
            last_task: counts.last.clone(),
            schedules: self
                .schedules
                .iter()
                .map(|s| (s.kind.to_string(), s.every.as_secs_f64()))
                .collect(),
        }
    }

    /// Graceful stop: no new tasks (waiting ones are recorded as rejected), running ones get
    /// until `deadline`, then are cancelled; the engine's stop hook runs; the registry is told.
    pub async fn stop(&self, deadline: Instant) {
        for task in self.background.lock().expect("runner lock").drain(..) {
            task.abort();
        }
        let record = self.recorder();
        for task in self.queue.close() {
            record(Outcome {
                task,
                status: TaskStatus::Rejected,
                output: None,
                error: Some("the engine stopped before the task ran".to_string()),
                started: Instant::now(),
                duration: Duration::ZERO,
            })
            .await;
        }
        let executor = self.executor.lock().expect("runner lock").take();
        if let Some(mut executor) = executor
            && tokio::time::timeout_at(deadline, &mut executor)
                .await
                .is_err()
        {
            tracing::warn!(
                engine = self.name(),
                "stop deadline: cancelling running tasks"
            );
            executor.abort();
        }
        self.engine.stop(deadline).await;
        let mut component = self.component.lock().expect("runner lock").clone();
        component.status = "stopped".to_string();
        component.running_tasks = 0;
        component.queue_size = 0;
        if let Err(err) = self.registry.beat(&component).await {
            tracing::warn!(engine = self.name(), error = %err, "could not deregister");
        }
        metrics::gauge!("agent_queue_size", "agent_name" => self.name()).set(0.0);
        tracing::info!(engine = self.name(), "engine stopped");
    }

    fn handler(&self) -> Handler {
        let engine = self.engine.clone();
        Arc::new(move |task| engine.clone().handle_task(task))
    }

    /// Records an outcome: counts, metrics, and a `task_results` row.
    fn recorder(&self) -> Arc<dyn Fn(Outcome) -> BoxFuture<'static, ()> + Send + Sync> {
        let name = self.name();
        let store = self.registry.store().clone();
        let component_id = self.component.lock().expect("runner lock").id;
        let counts = self.counts.clone();
        let queue = self.queue.clone();
        let waiters = self.waiters.clone();
        Arc::new(move |outcome: Outcome| -> BoxFuture<'static, ()> {
            let store = store.clone();
            {
                let mut counts = counts.lock().expect("runner lock");
                *counts.by_status.entry(outcome.status.as_str()).or_default() += 1;
                counts.last = Some((
                    outcome.task.kind.clone(),
                    outcome.status.as_str(),
                    outcome.error.clone(),
                ));
            }
            metrics::counter!("agent_tasks_total", "agent_name" => name, "status" => outcome.status.as_str())
                .increment(1);
            if outcome.status != TaskStatus::Rejected {
                metrics::histogram!("agent_task_duration_seconds", "agent_name" => name)
                    .record(outcome.duration.as_secs_f64());
            }
            metrics::gauge!("agent_queue_size", "agent_name" => name).set(queue.len() as f64);
            metrics::gauge!("agent_running_tasks", "agent_name" => name)
                .set(queue.running() as f64);
            if let Some(error) = &outcome.error {
                tracing::warn!(engine = name, kind = %outcome.task.kind, status = outcome.status.as_str(), error = %error, "task did not complete");
            }
            let row = result_row(name, component_id, &outcome);
            let waiter = waiters
                .lock()
                .expect("runner lock")
                .remove(&outcome.task.id);
            if let Some(waiter) = waiter {
                let _ = waiter.send(outcome);
            }
            Box::pin(async move {
                if let Err(err) = record_task_result(&store, &row).await {
                    tracing::error!(engine = name, task = %row.id, error = %err, "could not record a task result");
                }
            })
        })
    }

    async fn heartbeat(&self) {
        let health = self.engine.health();
        let component = {
            let mut component = self.component.lock().expect("runner lock");
            let counts = self.counts.lock().expect("runner lock");
            component.status = health.as_str().to_string();
            component.running_tasks = self.queue.running() as i32;
            component.queue_size = self.queue.len() as i32;
            component.details = json!({
                "message": health.message(),
                "tasks": counts.by_status,
                "queue_capacity": self.queue.config().queue_size,
            });
            component.clone()
        };
        metrics::gauge!("agent_queue_size", "agent_name" => self.name())
            .set(self.queue.len() as f64);
        metrics::gauge!("agent_running_tasks", "agent_name" => self.name())
            .set(self.queue.running() as f64);
        if let Err(err) = self.registry.beat(&component).await {
            tracing::warn!(engine = self.name(), error = %err, "heartbeat failed");
        }
    }
}

/// Writes one task outcome to the store: the dependency call a circuit breaker wraps.
pub async fn record_task_result(store: &Store, row: &TaskResultRow) -> Result<(), StoreError> {
    store.insert_task_result(row).await
}

fn result_row(engine: &str, component_id: uuid::Uuid, outcome: &Outcome) -> TaskResultRow {
    let finished_at = Utc::now();
    let ran = outcome.status != TaskStatus::Rejected;
    let duration = chrono::Duration::from_std(outcome.duration).unwrap_or_default();
    TaskResultRow {
        id: outcome.task.id,
        engine: engine.to_string(),
        component_id: Some(component_id),
        task_type: outcome.task.kind.clone(),
        priority: outcome.task.priority.as_i32(),
        status: outcome.status.as_str().to_string(),
        duration_seconds: ran.then_some(outcome.duration.as_secs_f64()),
        error: outcome.error.clone(),
        result: outcome.output.as_ref().map(|o| o.result.clone()),
        confidence: outcome
            .output
            .as_ref()
            .and_then(|o| o.confidence)
            .map(|c| c.clamp(0.0, 1.0)),
        created_at: outcome.task.created_at,
        started_at: ran.then(|| finished_at - duration),
        finished_at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Counts its scans; a `fail` task fails, a `hang` task never ends.
    struct Counter {
        scans: AtomicUsize,
    }

    impl Engine for Counter {
        fn name(&self) -> &'static str {
            "counter"
        }
        fn capabilities(&self) -> Vec<String> {
            vec!["count".into()]
        }
        fn subscriptions(&self) -> Vec<Schedule> {
            vec![Schedule {
                kind: "scan",
                every: Duration::from_millis(20),
                priority: Priority::Normal,
                payload: json!({}),
            }]
        }
        fn handle_task(
            self: Arc<Self>,
            task: Task,
        ) -> BoxFuture<'static, Result<TaskOutput, String>> {
            Box::pin(async move {
                match task.kind.as_str() {
                    "scan" => {
                        let n = self.scans.fetch_add(1, Ordering::SeqCst) + 1;
                        Ok(TaskOutput {
                            result: json!({"scans": n}),
                            confidence: Some(0.5),
                        })
                    }
                    "hang" => std::future::pending().await,
                    other => Err(format!("unknown task kind '{other}'")),
                }
            })
        }
    }

    fn settings(queue_size: usize) -> EngineSettings {
        EngineSettings {
            queue: QueueConfig {
                max_concurrent_tasks: 1,
                queue_size,
                task_timeout: Duration::from_millis(100),
            },
            heartbeat_interval: Duration::from_millis(20),
        }
    }

    async fn wait_for(what: &str, mut check: impl FnMut() -> bool) {
        for _ in 0..500 {
            if check() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("timed out waiting for {what}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn schedules_run_only_on_the_leader_and_every_outcome_is_recorded() {
        let store = Store::connect("sqlite::memory:").await.unwrap();
        let registry = Registry::new(store.clone(), 3);
        let engine = Arc::new(Counter {
            scans: AtomicUsize::new(0),
        });
        let (leader, is_leader) = watch::channel(false);
        let runner = EngineRunner::start(engine.clone(), settings(1), registry.clone(), is_leader)
            .await
            .unwrap();
        // Not the leader: no scans.
        tokio::time::sleep(Duration::from_millis(120)).await;
        assert_eq!(engine.scans.load(Ordering::SeqCst), 0);
        leader.send_replace(true);
        wait_for("two scans", || engine.scans.load(Ordering::SeqCst) >= 2).await;
        leader.send_replace(false);

        // A failing task and a hanging one (cut by the timeout); a full queue refuses.
        runner
            .submit(Task::new("fail", Priority::High, json!({})))
            .unwrap();
        wait_for("the failure", || {
            runner.status().tasks.contains_key("failed")
        })
        .await;
        runner
            .submit(Task::new("hang", Priority::High, json!({})))
            .unwrap();
        wait_for("the hang to start", || runner.queue().running() == 1).await;
        runner
            .submit(Task::new("fail", Priority::Low, json!({})))
            .unwrap();
        let refused = runner.submit(Task::new("fail", Priority::Low, json!({})));
        assert_eq!(refused, Err(QueueError::Backpressure { capacity: 1 }));
        wait_for("the timeout", || {
            runner.status().tasks.contains_key("timed_out")
        })
        .await;
        wait_for("the queued failure", || {
            runner.status().tasks.get("failed") == Some(&2)
        })
        .await;

        let registered = registry.live("engine").await.unwrap();
        assert_eq!(registered.len(), 1);
        assert_eq!(registered[0].row.name, "counter");
        assert_eq!(registered[0].row.capabilities, ["count"]);

        runner.stop(Instant::now() + Duration::from_secs(2)).await;
        assert!(registry.live("engine").await.unwrap().is_empty());
        let rows = store
            .task_results(Some("counter"), None, 100)
            .await
            .unwrap();
        let count = |status: &str| rows.iter().filter(|r| r.status == status).count();
        assert!(count("completed") >= 2, "{rows:?}");
        assert_eq!(count("timed_out"), 1);
        assert_eq!(count("rejected"), 1);
        assert_eq!(count("failed"), 2);
        let scan = rows.iter().find(|r| r.status == "completed").unwrap();
        assert_eq!(scan.confidence, Some(0.5));
        assert_eq!(scan.task_type, "scan");
        let failed = rows.iter().find(|r| r.status == "failed").unwrap();
        assert_eq!(failed.error.as_deref(), Some("unknown task kind 'fail'"));
        let refused = rows.iter().find(|r| r.status == "rejected").unwrap();
        assert!(refused.error.as_ref().unwrap().contains("queue is full"));
        assert_eq!(refused.duration_seconds, None);
        // After the stop nothing is accepted.
        assert_eq!(
            runner.submit(Task::new("scan", Priority::Low, json!({}))),
            Err(QueueError::Closed)
        );
    }
}
