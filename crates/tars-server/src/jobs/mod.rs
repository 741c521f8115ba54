//! Jobs of three kinds (evaluations, trainings, AutoML trials): a request is stored
//! (`eval_jobs`) before it is queued, workers claim and run it, and its end (succeeded /
//! failed / cancelled) is stored too, with its evaluation run or result. Each kind's run path
//! lives with its kind: `evaluation.rs`, `crate::training`, `crate::studies::trial_job`.
//!
//! The queue is a trait ([`Queue`]); [`LocalQueue`] is the in-process one of embedded mode.
//! The queue only carries job ids: the store is the truth, so a restart loses nothing — queued
//! jobs are queued again and running ones run again ([`Jobs::resume`]; evaluations are
//! deterministic, so the re-run gives the result the lost run would have given).
//!
//! The store calls of a run (claim, finish) go through the process's `postgres` circuit breaker
//! with retry ([`crate::resilience::Guard`]), the one the request paths share
//! (`Service::postgres`); while it is open, workers pull no job.
//!
//! A stopping server ([`Jobs::shutdown`]) starts no new job (queued ones stay queued in the
//! store), gives running ones the drain time, then stops them at their next training step and
//! puts them back in the queue for the next start.

use crate::redis::idempotency::Claim;
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
use tars_store::{Inserted, JobKind, JobRow, JobStatus, NewJob, Store, StoreError};
use tokio::sync::{Notify, watch};
use uuid::Uuid;

mod evaluation;

/// The queue is full (or, fleet mode, cannot take the job now); retry later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueFull;

/// A boxed future, for the object-safe [`Queue`] and [`Acker`].
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Carries job ids from submitters to workers: [`LocalQueue`] in-process (embedded),
/// `queue_nats::NatsQueue` over NATS JetStream (fleet).
pub trait Queue: Send + Sync {
    /// Enqueues a stored job; refuses when the queue is at capacity or unreachable.
    /// `traceparent` (W3C) travels with it, so that the worker's span continues the
    /// submitter's trace in whichever process runs it.
    fn push_traced(
        &self,
        id: Uuid,
        traceparent: Option<String>,
    ) -> BoxFuture<'_, Result<(), QueueFull>>;

    /// Queues job `id` outside any trace.
    fn push(&self, id: Uuid) -> BoxFuture<'_, Result<(), QueueFull>> {
        self.push_traced(id, None)
    }
    /// Queues again, at start-up, what the store holds as unfinished and the queue lost;
    /// returns how many jobs it queued.
    fn resume<'a>(&'a self, store: &'a Store) -> BoxFuture<'a, Result<usize, StoreError>>;
    /// The next job; `None` once the queue is closed (and, in-process, drained).
    fn pop(&self) -> BoxFuture<'_, Option<Delivery>>;
    fn depth(&self) -> usize;
    /// Stops accepting; workers drain what is queued, then `pop` returns `None`.
    fn close(&self);
    /// `Some` when jobs may end in other processes: waiters then look at the store this often.
    fn poll_interval(&self) -> Option<Duration> {
        None
    }
}

/// One delivery of a job to a worker.
pub struct Delivery {
    pub id: Uuid,
    /// The queue delivered this job before: the worker that had it died or gave it back, so
    /// a `running` status in the store is stale ([`Store::reclaim_job`]).
    pub redelivered: bool,
    /// No delivery follows this one: a transient failure now fails the job.
    pub last_attempt: bool,
    /// Tells the queue how the delivery went; `None`: the in-process queue needs no answer.
    pub acker: Option<Arc<dyn Acker>>,
    /// The submitter's `traceparent`, when it came with the job (fleet mode).
    pub traceparent: Option<String>,
}

impl Delivery {
    /// A job of the in-process queue: delivered once.
    pub fn local(id: Uuid) -> Delivery {
        Delivery {
            id,
            redelivered: false,
            last_attempt: true,
            acker: None,
            traceparent: None,
        }
    }

    async fn ack(&self) {
        if let Some(acker) = &self.acker {
            acker.ack().await;
        }
    }

    async fn nak(&self, delay: Option<Duration>) {
        if let Some(acker) = &self.acker {
            acker.nak(delay).await;
        }
    }
}

/// A delivery's answers to its queue.
pub trait Acker: Send + Sync {
    /// The job ended (or needs no run): never deliver it again.
    fn ack(&self) -> BoxFuture<'_, ()>;
    /// Deliver the job again, after `delay`.
    fn nak(&self, delay: Option<Duration>) -> BoxFuture<'_, ()>;
    /// The job is still running: keep it from going to another worker.
    fn progress(&self) -> BoxFuture<'_, ()>;
    /// How often a running job calls [`Acker::progress`].
    fn progress_every(&self) -> Duration;
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

    /// Enqueues a job found at start-up, whatever the capacity (it was accepted before).
    fn push_resumed(&self, id: Uuid) {
        self.state.lock().expect("queue lock").0.push_back(id);
        self.ready.notify_one();
    }
}

impl Queue for LocalQueue {
    // The in-process queue's jobs run here: their parent is in `Jobs::parents`.
    fn push_traced(
        &self,
        id: Uuid,
        _traceparent: Option<String>,
    ) -> BoxFuture<'_, Result<(), QueueFull>> {
        let mut state = self.state.lock().expect("queue lock");
        if state.1 || state.0.len() >= self.capacity {
            return Box::pin(std::future::ready(Err(QueueFull)));
        }
        state.0.push_back(id);
        drop(state);
        self.ready.notify_one();
        Box::pin(std::future::ready(Ok(())))
    }

    /// This process was the only worker: what it left running is queued again, with what it
    /// left queued.
    fn resume<'a>(&'a self, store: &'a Store) -> BoxFuture<'a, Result<usize, StoreError>> {
        Box::pin(async move {
            let ids = store.requeue_unfinished().await?;
            for id in &ids {
                self.push_resumed(*id);
            }
            Ok(ids.len())
        })
    }

    fn pop(&self) -> BoxFuture<'_, Option<Delivery>> {
        Box::pin(async move {
            loop {
                let notified = self.ready.notified();
                {
                    let mut state = self.state.lock().expect("queue lock");
                    if let Some(id) = state.0.pop_front() {
                        return Some(Delivery::local(id));
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
pub struct Live {
    progress: Mutex<BTreeMap<String, serde_json::Value>>,
    pub(crate) cancel: AtomicBool,
    pub(crate) interrupt: AtomicBool,
}

impl Live {
    /// Records the phase a job is in for `env` (shown as its progress).
    pub(crate) fn set_phase(&self, env: &str, phase: &str) {
        let mut progress = self.progress.lock().expect("progress lock");
        let entry = progress
            .entry(env.to_string())
            .or_insert_with(|| serde_json::json!({}));
        entry["phase"] = serde_json::Value::from(phase);
    }

    /// Records a progress entry under `key` (e.g. a trial's last intermediate value).
    pub(crate) fn note(&self, key: &str, value: serde_json::Value) {
        self.progress
            .lock()
            .expect("progress lock")
            .insert(key.to_string(), value);
    }

    /// How a job that stopped on request ends: re-queued when a shutdown stopped it, else
    /// cancelled.
    pub(crate) fn stopped(&self) -> Ending {
        if self.interrupt.load(Ordering::Relaxed) && !self.cancel.load(Ordering::Relaxed) {
            Ending::Interrupted
        } else {
            Ending::Done {
                status: JobStatus::Cancelled,
                run_id: None,
                result: None,
                error: Some("cancelled".into()),
            }
        }
    }
}

/// How a job's run ended, before that end is stored.
pub enum Ending {
    /// Store this end: the status, an evaluation's run or a training's or trial's result.
    Done {
        status: JobStatus,
        run_id: Option<Uuid>,
        result: Option<serde_json::Value>,
        error: Option<String>,
    },
    /// A transient failure: deliver the job again later (fail it on its last delivery).
    Retry(String),
    /// A shutdown stopped it: queue it again for another worker or the next start.
    Interrupted,
}

impl Ending {
    pub(crate) fn failed(error: String) -> Ending {
        Ending::Done {
            status: JobStatus::Failed,
            run_id: None,
            result: None,
            error: Some(error),
        }
    }
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
        self.set_phase(env, phase);
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
    /// Fleet mode: cancels asked by another process for jobs not running here (yet), kept a
    /// while in case this process is claiming the job right now ([`Jobs::cancel_here`]).
    cancels: Mutex<HashMap<Uuid, std::time::Instant>>,
}

/// Links of a key's chain [`Jobs::submit_chained`] tries: the key itself, then `key~2` …
const MAX_KEY_ATTEMPTS: u32 = 20;

/// How long a cancel for a job this process does not run is remembered.
const CANCEL_MEMORY: Duration = Duration::from_secs(600);

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
    /// The principal's `Idempotency-Key` names a job of another kind.
    KeyReused {
        key: String,
        kind: JobKind,
    },
    QueueFull,
    /// The principal already has `limit` jobs queued or running (`max_queued_per_principal`).
    PrincipalBusy {
        limit: i64,
    },
    Store(crate::resilience::StoreCallError),
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
            cancels: Mutex::new(HashMap::new()),
        })
    }

    pub fn service(&self) -> &Arc<Service> {
        &self.service
    }

    /// Whether [`Jobs::shutdown`] has begun.
    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Relaxed)
    }

    pub fn queue_depth(&self) -> usize {
        self.queue.depth()
    }

    /// Jobs this process is running now (the worker heartbeat's load).
    pub fn running(&self) -> usize {
        self.live.lock().expect("live lock").len()
    }

    /// Validates, stores and queues a request. A repeated `Idempotency-Key` (per principal)
    /// gives the earlier job: found through fleet mode's Redis records when they answer, else
    /// by the database's dedupe.
    pub async fn submit(
        &self,
        request: &EvalRequest,
        principal: &str,
        idempotency_key: Option<String>,
    ) -> Result<Submitted, SubmitError> {
        request
            .validate(self.service.engine.config(), 0)
            .map_err(SubmitError::Invalid)?;
        let request = serde_json::to_value(request).expect("requests serialize");
        self.submit_kind(JobKind::Evaluation, request, principal, idempotency_key)
            .await
    }

    /// Stores and queues a job of any kind whose request the caller has validated.
    pub async fn submit_kind(
        &self,
        kind: JobKind,
        request: serde_json::Value,
        principal: &str,
        idempotency_key: Option<String>,
    ) -> Result<Submitted, SubmitError> {
        let job = NewJob {
            id: Uuid::new_v4(),
            kind,
            request,
            principal: principal.to_string(),
            idempotency_key,
        };
        // Keys the store would refuse are left to it (and its message).
        let redis_key = match (&self.service.redis, &job.idempotency_key) {
            (Some(redis), Some(key)) if (1..=200).contains(&key.chars().count()) => {
                Some((redis, key.as_str()))
            }
            _ => None,
        };
        let claim = match redis_key {
            Some((redis, key)) => redis.claim_idempotency_key(principal, key, job.id).await,
            None => None,
        };
        if let Some(Claim::Taken(id)) = claim
            && let Some((_, key)) = redis_key
            && let Some(row) = self
                .service
                .postgres()
                .store(|| self.service.store.job(id))
                .await
                .map_err(SubmitError::Store)?
            && row.principal == principal
            && row.idempotency_key.as_deref() == Some(key)
        {
            if row.kind != kind {
                return Err(SubmitError::KeyReused {
                    key: key.to_string(),
                    kind: row.kind,
                });
            }
            metrics::counter!("tars_jobs_idempotent_replays_total", "source" => "redis")
                .increment(1);
            return Ok(Submitted::Existing(row));
        }
        // Once: a retried insert whose first attempt landed would find it as `Existing`.
        let inserted = (self.service.postgres())
            .store_once(|| self.service.store.insert_job(&job))
            .await;
        let (row, existing) = match inserted {
            Ok(Inserted::New(row)) => (row, false),
            Ok(Inserted::Existing(row)) => (row, true),
            Err(err) => return Err(SubmitError::Store(err)),
        };
        // A record naming another job (the database overruled it, or its job never made it to
        // the database) is corrected.
        let stale_record = matches!(claim, Some(Claim::Taken(_))) || (claim.is_some() && existing);
        if let Some((redis, key)) = redis_key
            && stale_record
        {
            redis.record_idempotency_key(principal, key, row.id).await;
        }
        if existing && row.kind != kind {
            return Err(SubmitError::KeyReused {
                key: row.idempotency_key.clone().unwrap_or_default(),
                kind: row.kind,
            });
        }
        if existing {
            metrics::counter!("tars_jobs_idempotent_replays_total", "source" => "database")
                .increment(1);
            return Ok(Submitted::Existing(row));
        }
        // Counted after the insert, so that concurrent submissions cannot all pass one count;
        // the new job is among the active ones.
        let limit = self.service.config.get_int("max_queued_per_principal");
        let active = (self.service.postgres())
            .store(|| self.service.store.active_jobs_of(principal))
            .await;
        let over = match active {
            Ok(active) => active > limit,
            Err(err) => {
                let _ = self
                    .service
                    .store
                    .refuse_job(row.id, "rejected: the store did not answer")
                    .await;
                return Err(SubmitError::Store(err));
            }
        };
        if over {
            let reason =
                format!("rejected: {principal} already had {limit} jobs queued or running");
            let _ = self.service.store.refuse_job(row.id, &reason).await;
            return Err(SubmitError::PrincipalBusy { limit });
        }
        let traceparent = crate::telemetry::current_traceparent();
        if self.queue.push_traced(row.id, traceparent).await.is_err() {
            // Refused, so the key is free again: a retry after Retry-After is a new attempt.
            let reason = "rejected: the job queue was full";
            let _ = self.service.store.refuse_job(row.id, reason).await;
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

    /// Submits a job under `key` for a caller that will wait for it: concurrent callers
    /// share one job. A job under the key that failed or was cancelled (a full queue refused
    /// it, a shutdown cut it) is not the answer for a caller asking again: it gets the next
    /// link of the key's chain (`key~2`, `key~3`, …), which concurrent callers again share.
    pub async fn submit_chained(
        &self,
        kind: JobKind,
        request: serde_json::Value,
        principal: &str,
        key: &str,
    ) -> Result<Submitted, SubmitError> {
        let mut attempt = 1;
        loop {
            let link = match attempt {
                1 => key.to_string(),
                n => format!("{key}~{n}"),
            };
            match self
                .submit_kind(kind, request.clone(), principal, Some(link))
                .await?
            {
                Submitted::Existing(row)
                    if matches!(row.status, JobStatus::Failed | JobStatus::Cancelled)
                        && attempt < MAX_KEY_ATTEMPTS =>
                {
                    attempt += 1;
                }
                submitted => return Ok(submitted),
            }
        }
    }

    /// Waits up to `limit` for job `id` to end; returns its row then (or as it is at the
    /// deadline, or at once when the server is stopping and the job is queued), `None` when
    /// there is no such job.
    pub async fn wait(
        &self,
        id: Uuid,
        limit: Duration,
    ) -> Result<Option<JobRow>, crate::resilience::StoreCallError> {
        let mut finished = self.finished.subscribe();
        let deadline = tokio::time::Instant::now() + limit;
        let (postgres, store) = (self.service.postgres(), &self.service.store);
        loop {
            let Some(row) = postgres.store(|| store.job(id)).await? else {
                return Ok(None);
            };
            if row.status.is_final()
                || (row.status == JobStatus::Queued && self.stopping.load(Ordering::Relaxed))
            {
                return Ok(Some(row));
            }
            // Jobs run by other processes end without a notice here: look again now and then.
            let wake = match self.queue.poll_interval() {
                Some(every) => deadline.min(tokio::time::Instant::now() + every),
                None => deadline,
            };
            match tokio::time::timeout_at(wake, finished.changed()).await {
                Ok(Ok(())) => continue,
                Err(_) if wake < deadline => continue,
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

    /// Cancels a queued job at once, or asks a running one to stop — here, or (fleet mode) in
    /// whichever process runs it, through an [`Event::Cancel`](crate::events::Event::Cancel).
    /// Returns the job's row after.
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
        } else if !self.cancel_live(id) {
            let row = store.job(id).await?;
            if row
                .as_ref()
                .is_some_and(|row| row.status == JobStatus::Running)
            {
                // Claimed a moment ago, by a worker here that is not live yet or by another
                // process: remembered for the former, told to the fleet for the latter.
                self.cancel_here(id);
                self.service
                    .publish(crate::events::Event::Cancel { job_id: id });
            }
            return Ok(row);
        }
        store.job(id).await
    }

    /// Asks job `id` to stop if it runs in this process; whether it does.
    fn cancel_live(&self, id: Uuid) -> bool {
        match self.live.lock().expect("live lock").get(&id) {
            Some(live) => {
                live.cancel.store(true, Ordering::Relaxed);
                true
            }
            None => false,
        }
    }

    /// Another process asked to cancel job `id` (a fleet event): stops it at its next training
    /// step if it runs here, or, should this process be claiming it right now, as soon as it
    /// starts.
    pub fn cancel_here(&self, id: Uuid) {
        if self.cancel_live(id) {
            tracing::info!(job = %id, "cancelling a job on another process's request");
            return;
        }
        {
            let mut cancels = self.cancels.lock().expect("cancels lock");
            cancels.retain(|_, at| at.elapsed() < CANCEL_MEMORY);
            cancels.insert(id, std::time::Instant::now());
        }
        // A run shows up in `live` before it reads `cancels`: if it read them before the
        // insert above, it is live now, and one of the two sees the other.
        if self.cancel_live(id) {
            self.cancels.lock().expect("cancels lock").remove(&id);
        }
    }

    /// Queues again what a previous process left unfinished ([`Queue::resume`]).
    pub async fn resume(&self) -> Result<usize, tars_store::StoreError> {
        self.queue.resume(&self.service.store).await
    }

    /// Runs `workers` workers until the queue is closed and drained, or [`Jobs::shutdown`].
    pub fn spawn_workers(self: &Arc<Self>, workers: usize) -> Vec<tokio::task::JoinHandle<()>> {
        (0..workers)
            .map(|_| {
                let jobs = self.clone();
                tokio::spawn(async move {
                    loop {
                        // The store is down: take no job that could not be claimed anyway.
                        (jobs.service.postgres())
                            .wait_until_not_open(|| jobs.stopping.load(Ordering::Relaxed))
                            .await;
                        let Some(delivery) = jobs.queue.pop().await else {
                            break;
                        };
                        if jobs.stopping.load(Ordering::Relaxed) {
                            // Stays queued in the store; the next start (or another worker)
                            // runs it.
                            delivery.nak(None).await;
                            break;
                        }
                        jobs.run(delivery).await;
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

    /// Runs one delivery: claims the job (a compare-and-set, so a duplicate delivery of a
    /// job that runs or ended elsewhere does nothing), evaluates it with progress acks, stores
    /// its end and answers the queue. A transient failure (the store unreachable) gives the
    /// job back to the queue with a delay, unless this was its last delivery: then it fails
    /// with that error.
    async fn run(&self, delivery: Delivery) {
        let id = delivery.id;
        let store = &self.service.store;
        // A retried claim may follow one that landed but whose answer was lost: it reclaims.
        let mut reclaim = delivery.redelivered;
        let postgres = self.service.postgres();
        let claimed = postgres
            .store(|| {
                let again = std::mem::replace(&mut reclaim, true);
                async move {
                    if again {
                        store.reclaim_job(id).await
                    } else {
                        store.claim_job(id).await
                    }
                }
            })
            .await;
        let row = match claimed {
            Ok(Some(row)) => row,
            Ok(None) => {
                // Ended, cancelled, gone, or running in another worker (a duplicate message).
                delivery.ack().await;
                return;
            }
            Err(err) => {
                tracing::error!(job = %id, error = %err, "claiming a job failed");
                if delivery.acker.is_none() {
                    return;
                }
                self.retry_later(&delivery, 1, &format!("claiming the job failed: {err}"))
                    .await;
                return;
            }
        };
        // A poison job (one that takes its process down) is not run again and again: each
        // claim counted an attempt before the run, so a job claimed more than
        // `max_job_attempts` times was interrupted every time and ends here, never run.
        let max_attempts = self.service.config.get_int("max_job_attempts");
        if i64::from(row.attempts) > max_attempts {
            let error = format!(
                "interrupted {max_attempts} times; not retried (raise max_job_attempts to allow more)"
            );
            tracing::error!(job = %id, attempts = row.attempts, "{error}");
            let ended = store
                .finish_job(
                    id,
                    JobStatus::Running,
                    JobStatus::Failed,
                    None,
                    Some(&error),
                )
                .await;
            if let Err(err) = ended {
                tracing::error!(job = %id, error = %err, "failing an interrupted job failed");
            }
            delivery.ack().await;
            metrics::counter!("tars_jobs_total", "status" => "failed", "kind" => row.kind.as_str())
                .increment(1);
            self.finished.send_replace(Some((id, JobStatus::Failed)));
            return;
        }
        tracing::info!(job = %id, attempt = row.attempts, redelivered = delivery.redelivered, "running a job");
        let live = Arc::new(Live::default());
        self.live
            .lock()
            .expect("live lock")
            .insert(id, live.clone());
        if self
            .cancels
            .lock()
            .expect("cancels lock")
            .remove(&id)
            .is_some()
        {
            live.cancel.store(true, Ordering::Relaxed);
        }
        // Long jobs tell the queue they are alive, so it does not hand them to another worker.
        let progress = delivery.acker.clone().map(|acker| {
            tokio::spawn(async move {
                let every = acker.progress_every();
                let mut interval =
                    tokio::time::interval_at(tokio::time::Instant::now() + every, every);
                loop {
                    interval.tick().await;
                    acker.progress().await;
                }
            })
        });
        // The seed's attributes: what is evaluated, on which environments.
        let environments = match (&row.request["environments"], &row.request["environment"]) {
            (serde_json::Value::Array(envs), _) => {
                let names: Vec<&str> = envs.iter().filter_map(|e| e.as_str()).collect();
                names.join(",")
            }
            (_, env) => env.as_str().unwrap_or_default().to_string(),
        };
        let span = tracing::info_span!(
            "job",
            job_id = %id,
            kind = %row.kind,
            agent.type = %row.request["agent_type"].as_str().unwrap_or_default().to_ascii_uppercase(),
            environment.name = %environments,
            otel.status_code = tracing::field::Empty,
        );
        // The submitter's span: remembered when it submitted here, else the message's.
        let parent = (self.parents.lock().expect("parents lock").remove(&id)).or_else(|| {
            let traceparent = delivery.traceparent.as_deref()?;
            crate::telemetry::parent_of(traceparent)
        });
        if let Some(parent) = parent {
            use tracing_opentelemetry::OpenTelemetrySpanExt;
            let _ = span.set_parent(parent);
        }
        let (attempts, kind) = (row.attempts, row.kind);
        let work = async move {
            match kind {
                JobKind::Evaluation => self.evaluate(row, live.clone()).await,
                JobKind::Training => {
                    crate::training::run(
                        self.service.config.data_dir(),
                        self.service.config.job_budget(),
                        &row,
                        live.clone(),
                    )
                    .await
                }
                JobKind::Trial => crate::studies::trial_job::run(&self.service, &row, &live).await,
            }
        };
        let ending = tracing::Instrument::instrument(work, span.clone()).await;
        if matches!(
            &ending,
            Ending::Done {
                status: JobStatus::Failed,
                ..
            }
        ) {
            span.record("otel.status_code", "ERROR");
        }
        if let Some(progress) = progress {
            progress.abort();
        }
        let (status, run_id, result, error) = match ending {
            Ending::Done {
                status,
                run_id,
                result,
                error,
            } => (status, run_id, result, error),
            Ending::Retry(error) if !delivery.last_attempt => {
                self.live.lock().expect("live lock").remove(&id);
                let _ = store.requeue_job_after(id, &error).await;
                self.retry_later(&delivery, attempts, &error).await;
                return;
            }
            Ending::Retry(error) => (JobStatus::Failed, None, None, Some(error)),
            Ending::Interrupted => {
                self.requeue(id).await;
                // Another worker (fleet) may take it at once.
                delivery.nak(None).await;
                return;
            }
        };
        let finished = postgres
            .store(|| async {
                match &result {
                    Some(result) => store.succeed_job_with(id, result).await,
                    None => {
                        store
                            .finish_job(id, JobStatus::Running, status, run_id, error.as_deref())
                            .await
                    }
                }
            })
            .await;
        self.live.lock().expect("live lock").remove(&id);
        match finished {
            Ok(_) => delivery.ack().await,
            Err(err) => {
                tracing::error!(job = %id, error = %err, "storing a job's end failed");
                // Run again later: the run is stored once (by job id), the end then too.
                self.retry_later(
                    &delivery,
                    attempts,
                    &format!("storing the job's end failed: {err}"),
                )
                .await;
                self.finished.send_modify(|_| {});
                return;
            }
        }
        metrics::gauge!("tars_jobs_queue_depth").set(self.queue.depth() as f64);
        metrics::counter!("tars_jobs_total", "status" => status.as_str(), "kind" => kind.as_str())
            .increment(1);
        self.finished.send_replace(Some((id, status)));
    }

    /// Gives a job back to the queue after a transient failure, `attempts` so far deciding the
    /// delay; on its last delivery, fails it with `error` instead (when the store takes it).
    async fn retry_later(&self, delivery: &Delivery, attempts: i32, error: &str) {
        if delivery.acker.is_none() || delivery.last_attempt {
            let store = &self.service.store;
            let ended = store
                .finish_job(
                    delivery.id,
                    JobStatus::Running,
                    JobStatus::Failed,
                    None,
                    Some(error),
                )
                .await;
            if let Err(err) = ended {
                tracing::error!(job = %delivery.id, error = %err, "failing a job after its last attempt failed");
            }
            delivery.ack().await;
            // The claim itself may have failed: the kind is read back (this path is rare).
            let kind = match store.job(delivery.id).await {
                Ok(Some(row)) => row.kind.as_str(),
                _ => "unknown",
            };
            metrics::counter!("tars_jobs_total", "status" => "failed", "kind" => kind).increment(1);
            self.finished
                .send_replace(Some((delivery.id, JobStatus::Failed)));
            return;
        }
        let delay = Duration::from_secs(1 << attempts.clamp(0, 6));
        tracing::warn!(job = %delivery.id, error, delay_seconds = delay.as_secs(), "job failed transiently; it will be delivered again");
        metrics::counter!("tars_jobs_retried_total").increment(1);
        delivery.nak(Some(delay)).await;
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
