//! Evaluation jobs: a request is stored (`eval_jobs`) before it is queued, workers claim and
//! run it, and its end (succeeded / failed / cancelled) is stored too, with the evaluation run.
//!
//! The queue is a trait ([`Queue`]); [`LocalQueue`] is the in-process one of embedded mode.
//! The queue only carries job ids: the store is the truth, so a restart loses nothing — queued
//! jobs are queued again and running ones run again ([`Jobs::resume`]; evaluations are
//! deterministic, so the re-run gives the result the lost run would have given).
//!
//! A stopping server ([`Jobs::shutdown`]) starts no new job (queued ones stay queued in the
//! store), gives running ones the drain time, then stops them at their next training step and
//! puts them back in the queue for the next start.

use crate::service::Service;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tars_agents::{Control, Progress};
use tars_eval::engine::Event;
use tars_eval::{EvalRequest, Reporter};
use tars_store::{Inserted, JobRow, JobStatus, NewJob};
use tokio::sync::{Notify, watch};
use uuid::Uuid;

/// The queue is full; retry later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueFull;

/// Carries job ids from submitters to workers.
pub trait Queue: Send + Sync {
    /// Enqueues a new submission; refuses when the queue is at capacity.
    fn push(&self, id: Uuid) -> Result<(), QueueFull>;
    /// Enqueues a job found at start-up, whatever the capacity (it was accepted before).
    fn push_resumed(&self, id: Uuid);
    /// The next job id; `None` once the queue is closed and empty.
    fn pop(&self) -> Pin<Box<dyn Future<Output = Option<Uuid>> + Send + '_>>;
    fn depth(&self) -> usize;
    /// Stops accepting; workers drain what is queued, then `pop` returns `None`.
    fn close(&self);
}

/// The in-process queue: a bounded FIFO.
pub struct LocalQueue {
    capacity: usize,
    state: Mutex<(VecDeque<Uuid>, bool)>,
    ready: Notify,
}

impl LocalQueue {
    pub fn new(capacity: usize) -> LocalQueue {
        LocalQueue {
            capacity,
            state: Mutex::new((VecDeque::new(), false)),
            ready: Notify::new(),
        }
    }
}

impl Queue for LocalQueue {
    fn push(&self, id: Uuid) -> Result<(), QueueFull> {
        let mut state = self.state.lock().expect("queue lock");
        if state.1 || state.0.len() >= self.capacity {
            return Err(QueueFull);
        }
        state.0.push_back(id);
        drop(state);
        self.ready.notify_one();
        Ok(())
    }

    fn push_resumed(&self, id: Uuid) {
        self.state.lock().expect("queue lock").0.push_back(id);
        self.ready.notify_one();
    }

    fn pop(&self) -> Pin<Box<dyn Future<Output = Option<Uuid>> + Send + '_>> {
        Box::pin(async move {
            loop {
                let notified = self.ready.notified();
                {
                    let mut state = self.state.lock().expect("queue lock");
                    if let Some(id) = state.0.pop_front() {
                        return Some(id);
                    }
                    if state.1 {
                        return None;
                    }
                }
                notified.await;
            }
        })
    }

    fn depth(&self) -> usize {
        self.state.lock().expect("queue lock").0.len()
    }

    fn close(&self) {
        self.state.lock().expect("queue lock").1 = true;
        self.ready.notify_waiters();
    }
}

/// Live state of a running job: progress per environment, the cancel flag, and the flag a
/// shutdown sets to stop it for a re-run later.
#[derive(Default)]
struct Live {
    progress: Mutex<BTreeMap<String, serde_json::Value>>,
    cancel: AtomicBool,
    interrupt: AtomicBool,
}

impl Reporter for Live {
    fn training(&self, env: &str, progress: &Progress) -> Control {
        self.progress.lock().expect("progress lock").insert(
            env.to_string(),
            serde_json::json!({"phase": "training", "timesteps": progress.timesteps,
                               "total_timesteps": progress.total_timesteps}),
        );
        if self.cancel.load(Ordering::Relaxed) || self.interrupt.load(Ordering::Relaxed) {
            Control::Stop
        } else {
            Control::Continue
        }
    }

    fn event(&self, env: &str, event: Event) {
        let phase = match event {
            Event::Training { .. } => "training",
            Event::CacheHit => "cached",
            Event::Evaluating { .. } => "evaluating",
            Event::Done { .. } => "done",
        };
        let mut progress = self.progress.lock().expect("progress lock");
        let entry = progress
            .entry(env.to_string())
            .or_insert_with(|| serde_json::json!({}));
        entry["phase"] = serde_json::Value::from(phase);
    }
}

/// Submits, runs, cancels and watches jobs.
pub struct Jobs {
    service: Arc<Service>,
    queue: Arc<dyn Queue>,
    live: Mutex<HashMap<Uuid, Arc<Live>>>,
    /// The latest final status of each job finished by this process, for waiters.
    finished: watch::Sender<Option<(Uuid, JobStatus)>>,
    /// Set by [`Jobs::shutdown`]: workers take no new job and waiters stop waiting for queued ones.
    stopping: AtomicBool,
    /// The trace context of the request that submitted each job not yet run, when spans are
    /// exported: the job's span joins the caller's trace.
    parents: Mutex<HashMap<Uuid, opentelemetry::Context>>,
}

/// How long a job asked to stop by a shutdown gets to reach its next training step.
const INTERRUPT_GRACE: Duration = Duration::from_secs(3);

/// The outcome of a submission.
pub enum Submitted {
    New(JobRow),
    /// Same principal and `Idempotency-Key` as an earlier submission.
    Existing(JobRow),
}

/// Why a submission was refused.
pub enum SubmitError {
    Invalid(tars_eval::EvalError),
    QueueFull,
    Store(tars_store::StoreError),
}

impl Jobs {
    pub fn new(service: Arc<Service>, queue: Arc<dyn Queue>) -> Arc<Jobs> {
        Arc::new(Jobs {
            service,
            queue,
            live: Mutex::new(HashMap::new()),
            finished: watch::channel(None).0,
            stopping: AtomicBool::new(false),
            parents: Mutex::new(HashMap::new()),
        })
    }

    pub fn queue_depth(&self) -> usize {
        self.queue.depth()
    }

    /// Validates, stores and queues a request.
    pub async fn submit(
        &self,
        request: &EvalRequest,
        principal: &str,
        idempotency_key: Option<String>,
    ) -> Result<Submitted, SubmitError> {
        request
            .validate(self.service.engine.config(), 0)
            .map_err(SubmitError::Invalid)?;
        let job = NewJob {
            id: Uuid::new_v4(),
            request: serde_json::to_value(request).expect("requests serialize"),
            principal: principal.to_string(),
            idempotency_key,
        };
        let row = match self.service.store.insert_job(&job).await {
            Ok(Inserted::New(row)) => row,
            Ok(Inserted::Existing(row)) => return Ok(Submitted::Existing(row)),
            Err(err) => return Err(SubmitError::Store(err)),
        };
        if self.queue.push(row.id).is_err() {
            let reason = "rejected: the job queue was full";
            let _ = self
                .service
                .store
                .finish_job(
                    row.id,
                    JobStatus::Queued,
                    JobStatus::Failed,
                    None,
                    Some(reason),
                )
                .await;
            return Err(SubmitError::QueueFull);
        }
        if let Some(context) = crate::telemetry::current_context() {
            self.parents
                .lock()
                .expect("parents lock")
                .insert(row.id, context);
        }
        metrics::gauge!("tars_jobs_queue_depth").set(self.queue.depth() as f64);
        Ok(Submitted::New(row))
    }

    /// Waits up to `limit` for job `id` to end; returns its row then (or as it is at the
    /// deadline, or at once when the server is stopping and the job is queued), `None` when
    /// there is no such job.
    pub async fn wait(
        &self,
        id: Uuid,
        limit: Duration,
    ) -> Result<Option<JobRow>, tars_store::StoreError> {
        let mut finished = self.finished.subscribe();
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let Some(row) = self.service.store.job(id).await? else {
                return Ok(None);
            };
            if row.status.is_final()
                || (row.status == JobStatus::Queued && self.stopping.load(Ordering::Relaxed))
            {
                return Ok(Some(row));
            }
            match tokio::time::timeout_at(deadline, finished.changed()).await {
                Ok(Ok(())) => continue,
                _ => return Ok(Some(row)),
            }
        }
    }

    /// Progress of a running job, per environment.
    pub fn progress(&self, id: Uuid) -> Option<serde_json::Value> {
        let live = self.live.lock().expect("live lock").get(&id).cloned()?;
        let progress = live.progress.lock().expect("progress lock").clone();
        Some(serde_json::Value::Object(progress.into_iter().collect()))
    }

    /// Cancels a queued job at once, or asks a running one to stop. Returns the job's row after.
    pub async fn cancel(&self, id: Uuid) -> Result<Option<JobRow>, tars_store::StoreError> {
        let store = &self.service.store;
        if store
            .finish_job(
                id,
                JobStatus::Queued,
                JobStatus::Cancelled,
                None,
                Some("cancelled"),
            )
            .await?
        {
            self.parents.lock().expect("parents lock").remove(&id);
            self.finished.send_replace(Some((id, JobStatus::Cancelled)));
        } else if let Some(live) = self.live.lock().expect("live lock").get(&id) {
            live.cancel.store(true, Ordering::Relaxed);
        }
        store.job(id).await
    }

    /// Queues again what a previous process left queued or running.
    pub async fn resume(&self) -> Result<usize, tars_store::StoreError> {
        let ids = self.service.store.requeue_unfinished().await?;
        for id in &ids {
            self.queue.push_resumed(*id);
        }
        Ok(ids.len())
    }

    /// Runs `workers` workers until the queue is closed and drained, or [`Jobs::shutdown`].
    pub fn spawn_workers(self: &Arc<Self>, workers: usize) -> Vec<tokio::task::JoinHandle<()>> {
        (0..workers)
            .map(|_| {
                let jobs = self.clone();
                tokio::spawn(async move {
                    while let Some(id) = jobs.queue.pop().await {
                        if jobs.stopping.load(Ordering::Relaxed) {
                            // Stays queued in the store; the next start runs it.
                            break;
                        }
                        jobs.run(id).await;
                    }
                })
            })
            .collect()
    }

    /// Stops taking new jobs; workers finish what is queued.
    pub fn close(&self) {
        self.queue.close();
    }

    /// Stops the workers for a shutdown: no queued job starts (they stay queued in the store),
    /// running jobs get until `deadline` to finish, then are asked to stop at their next
    /// training step and re-queued. Returns once every worker ended, or
    /// [`INTERRUPT_GRACE`] after the deadline (a job still running then is re-queued by the
    /// next start, [`Jobs::resume`]).
    pub async fn shutdown(
        &self,
        mut workers: Vec<tokio::task::JoinHandle<()>>,
        deadline: tokio::time::Instant,
    ) {
        self.stopping.store(true, Ordering::Relaxed);
        self.queue.close();
        // Waiters of queued jobs answer now (202): those jobs will not run in this process.
        self.finished.send_modify(|_| {});
        let mut idx = 0;
        while idx < workers.len() {
            if tokio::time::timeout_at(deadline, &mut workers[idx])
                .await
                .is_err()
            {
                break;
            }
            idx += 1;
        }
        if idx == workers.len() {
            return;
        }
        let running: Vec<Uuid> = {
            let live = self.live.lock().expect("live lock");
            for job in live.values() {
                job.interrupt.store(true, Ordering::Relaxed);
            }
            live.keys().copied().collect()
        };
        tracing::warn!(
            jobs = ?running,
            "shutdown timeout: stopping running jobs to re-queue them"
        );
        let grace = tokio::time::Instant::now() + INTERRUPT_GRACE;
        for worker in &mut workers[idx..] {
            if tokio::time::timeout_at(grace, &mut *worker).await.is_err() {
                tracing::warn!("a job did not stop in time; the next start re-queues it");
                break;
            }
        }
        for worker in &workers[idx..] {
            worker.abort();
        }
    }

    async fn run(&self, id: Uuid) {
        let store = &self.service.store;
        match store.claim_job(id).await {
            Ok(true) => {}
            Ok(false) => return,
            Err(err) => {
                tracing::error!(job = %id, error = %err, "claiming a job failed");
                return;
            }
        }
        let row = match store.job(id).await {
            Ok(Some(row)) => row,
            _ => return,
        };
        let live = Arc::new(Live::default());
        self.live
            .lock()
            .expect("live lock")
            .insert(id, live.clone());
        let span = tracing::info_span!("job", job_id = %id);
        if let Some(parent) = self.parents.lock().expect("parents lock").remove(&id) {
            use tracing_opentelemetry::OpenTelemetrySpanExt;
            let _ = span.set_parent(parent);
        }
        let (status, run_id, error) = match serde_json::from_value::<EvalRequest>(row.request) {
            Err(err) => (
                JobStatus::Failed,
                None,
                Some(format!("stored request is invalid: {err}")),
            ),
            Ok(request) => {
                let outcome = tracing::Instrument::instrument(
                    self.service.evaluate(&request, live.clone()),
                    span,
                )
                .await;
                match outcome {
                    Ok(outcome) => {
                        record_metrics(&outcome.response);
                        match outcome.unsaved {
                            None => (
                                JobStatus::Succeeded,
                                outcome.response.evaluation_id.parse().ok(),
                                None,
                            ),
                            Some((path, err)) => (
                                JobStatus::Failed,
                                None,
                                Some(format!(
                                    "the evaluation finished but could not be stored ({err}); its result is in {}",
                                    path.display()
                                )),
                            ),
                        }
                    }
                    Err(err) => {
                        let cancelled = err
                            .downcast_ref::<tars_eval::EvalError>()
                            .is_some_and(|e| matches!(e, tars_eval::EvalError::Cancelled));
                        if cancelled
                            && live.interrupt.load(Ordering::Relaxed)
                            && !live.cancel.load(Ordering::Relaxed)
                        {
                            self.requeue(id).await;
                            return;
                        }
                        let status = if cancelled {
                            JobStatus::Cancelled
                        } else {
                            JobStatus::Failed
                        };
                        (status, None, Some(format!("{err:#}")))
                    }
                }
            }
        };
        if let Err(err) = store
            .finish_job(id, JobStatus::Running, status, run_id, error.as_deref())
            .await
        {
            tracing::error!(job = %id, error = %err, "storing a job's end failed");
        }
        self.live.lock().expect("live lock").remove(&id);
        metrics::gauge!("tars_jobs_queue_depth").set(self.queue.depth() as f64);
        metrics::counter!("tars_jobs_total", "status" => status.as_str()).increment(1);
        self.finished.send_replace(Some((id, status)));
    }

    /// Puts a job a shutdown stopped back in the queue for the next start.
    async fn requeue(&self, id: Uuid) {
        match self.service.store.requeue_job(id).await {
            Ok(_) => tracing::info!(job = %id, "re-queued for the next start"),
            Err(err) => {
                tracing::error!(job = %id, error = %err, "re-queuing a stopped job failed; the next start re-queues it")
            }
        }
        self.live.lock().expect("live lock").remove(&id);
        self.finished.send_modify(|_| {});
    }
}

/// The seeds' evaluation metrics, per environment.
fn record_metrics(response: &tars_eval::EvalResponse) {
    for result in &response.results {
        let labels = [
            ("agent_type", response.agent_type.clone()),
            ("environment", result.environment.clone()),
        ];
        let status = match &result.regression {
            Some(r) if r.detected => "regression",
            _ => "ok",
        };
        let mut with_status = labels.to_vec();
        with_status.push(("status", status.to_string()));
        metrics::counter!("tars_eval_evaluations_total", &with_status).increment(1);
        if let Some(r) = result.regression.as_ref().filter(|r| r.detected) {
            let mut with_severity = labels.to_vec();
            with_severity.push(("severity", r.severity.as_str().to_string()));
            metrics::counter!("tars_eval_regression_detected_total", &with_severity).increment(1);
        }
        metrics::histogram!("tars_eval_duration_seconds", &labels).record(result.duration_seconds);
        metrics::counter!("tars_eval_episodes_total", &labels)
            .increment(result.metrics.metrics.n_episodes as u64);
    }
}
