//! Fleet mode's job queue: a NATS JetStream work-queue stream with one durable pull consumer
//! that every worker of every process shares (`tars serve` with `job_workers` > 0 and
//! `tars worker`).
//!
//! Names come from `nats_prefix` (`tars`): stream `TARS_JOBS` on subjects `tars.jobs.>`, one
//! subject per job, `tars.jobs.eval.<job id>`, and consumer `tars-workers`. A message is
//! `{"v": 1, "job_id": "…"}` with the job id as `Nats-Msg-Id` (the server drops a duplicate
//! publish within its duplicate window) and the submitter's `traceparent` header, so the
//! worker's `job` span continues the request's trace; the store stays the truth.
//!
//! - The job row is written before its message is published ([`crate::jobs::Jobs::submit`]),
//!   so a crash between the two loses nothing: the elected leader of the `job-reaper` duty
//!   ([`NatsQueue::spawn_reaper`], at election and every [`REAP_EVERY`]) publishes every
//!   queued row whose subject holds no message. In a work-queue stream an acked message is
//!   deleted, so "the job's subject holds a message" is exactly "some worker will still get
//!   it". A duplicate is harmless: claiming a job is a compare-and-set.
//! - A `running` job keeps its message until its worker acks it. If the worker died, the
//!   message comes back after `nats_ack_wait_seconds` (a running job sends progress acks every
//!   third of that) and the next worker reclaims the job. A running job whose message is gone
//!   (a lost stream) is re-queued by the reaper, a write fenced by its leader epoch.
//! - Every call to NATS goes through the `nats` breaker and retry ([`crate::resilience`]);
//!   the client reconnects by itself after a server restart.
//! - A transient failure naks with a delay; after `nats_max_deliver` deliveries the job fails
//!   with its last error. A malformed message, or one of a newer schema version, is logged,
//!   counted (`tars_jobs_messages_refused_total{reason}`) and terminated, never redelivered.
//!   A job whose worker died on its last delivery is failed on the server's max-deliveries
//!   advisory ([`NatsQueue::fail_undeliverable`]), which the server sends when it would
//!   deliver the job again, i.e. once some worker of the fleet pulls.

use crate::config::Config;
use crate::jobs::{Acker, BoxFuture, Delivery, Queue, QueueFull};
use crate::resilience::Guard;
use anyhow::Context as _;
use async_nats::jetstream::{self, consumer::PullConsumer, stream};
use futures_util::StreamExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tars_runtime::breaker::CallError;
use tars_store::{Fence, JobStatus, Store, StoreError};
use tokio::sync::watch;
use uuid::Uuid;

/// The message schema version this build writes and reads.
pub const MESSAGE_VERSION: u64 = 1;

/// How often the job reaper's leader looks for jobs whose message is missing.
pub const REAP_EVERY: Duration = Duration::from_secs(15);
/// How often [`NatsQueue::track_depth`] reads the consumer's depth.
const DEPTH_EVERY: Duration = Duration::from_secs(1);

/// How long one pull waits for a job before asking again (and looking at `close`).
const PULL_EXPIRY: Duration = Duration::from_secs(5);

/// Where and how the fleet's queue lives, from the configuration.
#[derive(Debug, Clone)]
pub struct NatsSettings {
    pub url: String,
    /// `nats_prefix`: names the stream, the consumer and the subjects.
    pub prefix: String,
    pub ack_wait: Duration,
    pub max_deliver: i64,
    /// Messages the stream holds at most; a publish beyond is refused (503).
    pub capacity: i64,
}

impl NatsSettings {
    /// `None` in embedded mode (no `nats_url`).
    pub fn from_config(config: &Config) -> Option<NatsSettings> {
        let url = config.nats_url();
        if url.is_empty() {
            return None;
        }
        Some(NatsSettings {
            url: url.to_string(),
            prefix: config.get_text("nats_prefix").to_string(),
            ack_wait: Duration::from_secs(config.get_int("nats_ack_wait_seconds") as u64),
            max_deliver: config.get_int("nats_max_deliver"),
            capacity: config.get_int("queue_capacity"),
        })
    }

    pub fn stream_name(&self) -> String {
        format!("{}_JOBS", self.prefix.to_uppercase())
    }

    pub fn consumer_name(&self) -> String {
        format!("{}-workers", self.prefix)
    }

    /// The subject of job `id`.
    pub fn subject(&self, id: Uuid) -> String {
        format!("{}.jobs.eval.{id}", self.prefix)
    }
}

/// Connects to the NATS server of `url` (retrying in the background after a first success).
pub async fn connect(url: &str) -> anyhow::Result<async_nats::Client> {
    async_nats::ConnectOptions::new()
        .name("tars")
        .connection_timeout(Duration::from_secs(5))
        .connect(url)
        .await
        .with_context(|| format!("connecting to NATS at {}", crate::config::mask_url(url)))
}

/// The JetStream job queue.
pub struct NatsQueue {
    settings: NatsSettings,
    jetstream: jetstream::Context,
    stream: stream::Stream,
    consumer: PullConsumer,
    /// Jobs waiting or running, as [`NatsQueue::track_depth`] last read them.
    pending: AtomicUsize,
    closed: watch::Sender<bool>,
    /// Every call to NATS (publish, fetch, ack) goes through this breaker (and retry).
    nats: Guard,
}

impl NatsQueue {
    /// Creates the stream and the durable consumer when they do not exist (an existing one
    /// keeps its configuration).
    pub async fn connect(settings: NatsSettings) -> anyhow::Result<NatsQueue> {
        let client = connect(&settings.url).await?;
        let jetstream = jetstream::new(client);
        let stream = jetstream
            .get_or_create_stream(stream::Config {
                name: settings.stream_name(),
                subjects: vec![format!("{}.jobs.>", settings.prefix)],
                retention: stream::RetentionPolicy::WorkQueue,
                discard: stream::DiscardPolicy::New,
                max_messages: settings.capacity,
                storage: stream::StorageType::File,
                ..Default::default()
            })
            .await
            .with_context(|| format!("creating the JetStream stream {}", settings.stream_name()))?;
        let consumer: PullConsumer = stream
            .get_or_create_consumer(
                &settings.consumer_name(),
                jetstream::consumer::pull::Config {
                    durable_name: Some(settings.consumer_name()),
                    filter_subject: format!("{}.jobs.eval.>", settings.prefix),
                    ack_policy: jetstream::consumer::AckPolicy::Explicit,
                    ack_wait: settings.ack_wait,
                    max_deliver: settings.max_deliver,
                    ..Default::default()
                },
            )
            .await
            .with_context(|| {
                format!(
                    "creating the JetStream consumer {}",
                    settings.consumer_name()
                )
            })?;
        Ok(NatsQueue {
            settings,
            jetstream,
            stream,
            consumer,
            pending: AtomicUsize::new(0),
            closed: watch::channel(false).0,
            nats: Guard::new("nats"),
        })
    }

    /// Publishes job `id`'s message, retrying while NATS is unreachable (the job id is the
    /// message id, so a retry after a lost acknowledgement is dropped as a duplicate).
    async fn publish(&self, id: Uuid, traceparent: Option<&str>) -> Result<(), String> {
        use async_nats::jetstream::context::PublishErrorKind;
        // Unreachable, or JetStream not ready after a restart; not a refusal (stream full).
        let transient = |err: &async_nats::jetstream::context::PublishError| {
            matches!(
                err.kind(),
                PublishErrorKind::TimedOut
                    | PublishErrorKind::BrokenPipe
                    | PublishErrorKind::StreamNotFound
            )
        };
        self.nats
            .call(transient, || async {
                let mut headers = async_nats::HeaderMap::new();
                headers.insert("Nats-Msg-Id", id.to_string().as_str());
                if let Some(traceparent) = traceparent {
                    headers.insert("traceparent", traceparent);
                }
                let payload = serde_json::json!({"v": MESSAGE_VERSION, "job_id": id}).to_string();
                let ack = self
                    .jetstream
                    .publish_with_headers(
                        self.settings.subject(id),
                        headers,
                        payload.into_bytes().into(),
                    )
                    .await?;
                ack.await?;
                Ok::<(), async_nats::jetstream::context::PublishError>(())
            })
            .await
            .map_err(|e| e.to_string())
    }

    /// Whether the job's subject still holds a message (some worker will get it).
    async fn has_message(&self, id: Uuid) -> Result<bool, String> {
        use async_nats::jetstream::stream::LastRawMessageErrorKind;
        match self
            .stream
            .get_last_raw_message_by_subject(&self.settings.subject(id))
            .await
        {
            Ok(_) => Ok(true),
            Err(err) if err.kind() == LastRawMessageErrorKind::NoMessageFound => Ok(false),
            Err(err) => Err(err.to_string()),
        }
    }

    /// Fails the jobs the server stops delivering: when a job's last delivery is not answered
    /// (its worker died on the last attempt), JetStream publishes a max-deliveries advisory;
    /// the job is then marked failed and its message deleted. One process of the fleet handles
    /// each advisory (a queue group); ending a job is a compare-and-set anyway.
    pub async fn fail_undeliverable(
        self: &Arc<Self>,
        store: Store,
    ) -> anyhow::Result<tokio::task::JoinHandle<()>> {
        let subject = format!(
            "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{}.{}",
            self.settings.stream_name(),
            self.settings.consumer_name()
        );
        let mut advisories = self
            .jetstream
            .client()
            .queue_subscribe(subject, format!("{}-advisories", self.settings.prefix))
            .await
            .map_err(|e| anyhow::anyhow!("subscribing to max-deliveries advisories: {e}"))?;
        let queue = self.clone();
        Ok(tokio::spawn(async move {
            while let Some(advisory) = advisories.next().await {
                let advisory: serde_json::Value =
                    serde_json::from_slice(&advisory.payload).unwrap_or_default();
                let Some(sequence) = advisory["stream_seq"].as_u64() else {
                    continue;
                };
                let deliveries = advisory["deliveries"].as_u64().unwrap_or_default();
                if let Err(err) = queue.fail_message(&store, sequence, deliveries).await {
                    tracing::error!(sequence, error = %err, "failing an undeliverable job failed");
                }
            }
        }))
    }

    /// Keeps [`Queue::depth`] and `tars_jobs_queue_depth` at the consumer's count of jobs
    /// waiting or running (pending + ack-pending), read from the server every
    /// [`DEPTH_EVERY`], so a replica that runs no job reports the fleet's queue too. Ends when
    /// the queue is closed or dropped.
    pub fn track_depth(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let queue = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(DEPTH_EVERY);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                interval.tick().await;
                let Some(queue) = queue.upgrade() else {
                    return;
                };
                if *queue.closed.borrow() {
                    return;
                }
                match queue.consumer.get_info().await {
                    Ok(info) => {
                        let depth = info.num_pending as usize + info.num_ack_pending;
                        queue.pending.store(depth, Ordering::Relaxed);
                        metrics::gauge!("tars_jobs_queue_depth").set(depth as f64);
                    }
                    Err(err) => {
                        tracing::debug!(error = %err, "reading the job consumer's depth failed")
                    }
                }
            }
        })
    }

    async fn fail_message(
        &self,
        store: &Store,
        sequence: u64,
        deliveries: u64,
    ) -> anyhow::Result<()> {
        let message = self.stream.get_raw_message(sequence).await?;
        let Ok(id) = parse_message(&message.payload) else {
            self.stream.delete_message(sequence).await?;
            return Ok(());
        };
        let row = store.job(id).await?;
        let kind = row.as_ref().map_or("unknown", |row| row.kind.as_str());
        let last = row.and_then(|row| row.error);
        let error = match last {
            Some(last) => format!(
                "no worker finished the job in {deliveries} deliveries; the last error: {last}"
            ),
            None => format!(
                "no worker finished the job in {deliveries} deliveries (each worker died or stopped answering)"
            ),
        };
        for from in [JobStatus::Running, JobStatus::Queued] {
            if store
                .finish_job(id, from, JobStatus::Failed, None, Some(&error))
                .await?
            {
                tracing::error!(job = %id, deliveries, "{error}");
                metrics::counter!("tars_jobs_total", "status" => "failed", "kind" => kind)
                    .increment(1);
                break;
            }
        }
        self.stream.delete_message(sequence).await?;
        Ok(())
    }

    /// Campaigns for the [`JOB_REAPER`](crate::leader::JOB_REAPER) duty (for the life of the
    /// process) and, while this process leads it, reaps ([`NatsQueue::reap`]) as soon as it is
    /// elected and every [`REAP_EVERY`] after.
    pub fn spawn_reaper(
        self: &Arc<Self>,
        store: Store,
    ) -> anyhow::Result<tokio::task::JoinHandle<()>> {
        let campaign = crate::leader::campaign(&store, crate::leader::JOB_REAPER)
            .context("starting the job reaper's leader election")?;
        let queue = self.clone();
        Ok(tokio::spawn(async move {
            let leadership = campaign.leadership();
            while leadership.until_leader().await.is_some() {
                while let Some(fence) = leadership.fence() {
                    match queue.reap(&store, &fence).await {
                        Ok((0, 0)) => {}
                        Ok((queued, orphaned)) => tracing::info!(
                            queued,
                            orphaned,
                            epoch = fence.epoch,
                            "published jobs whose message was missing"
                        ),
                        Err(err) => {
                            tracing::warn!(error = %err, epoch = fence.epoch, "reaping jobs failed")
                        }
                    }
                    tokio::select! {
                        _ = leadership.until_deposed() => break,
                        _ = tokio::time::sleep(REAP_EVERY) => {}
                    }
                }
            }
            drop(campaign);
        }))
    }

    /// The reaper's pass: publishes every queued job whose message is missing (a crash between
    /// storing and publishing it, or a lost stream), and re-queues then publishes every running
    /// job whose message is gone (no worker will deliver it again: the stream was lost, or its
    /// last worker acknowledged it without storing its end). The re-queue is fenced by `fence`:
    /// a deposed leader's is refused. Returns (queued, orphaned) jobs published.
    pub async fn reap(&self, store: &Store, fence: &Fence) -> Result<(usize, usize), StoreError> {
        let mut published = (0, 0);
        for id in store.queued_jobs().await? {
            if self.missing(id).await && self.republish(id).await {
                published.0 += 1;
            }
        }
        for id in store.running_jobs().await? {
            if !self.missing(id).await {
                continue;
            }
            let reason = "its queue message was lost; queued again by the job reaper";
            if store.requeue_orphan_job(fence, id, reason).await? && self.republish(id).await {
                published.1 += 1;
            }
        }
        Ok(published)
    }

    /// Whether job `id`'s message is known to be missing (a failed lookup says no).
    async fn missing(&self, id: Uuid) -> bool {
        match self.has_message(id).await {
            Ok(has) => !has,
            Err(err) => {
                tracing::error!(job = %id, error = %err, "looking up a job's message failed");
                false
            }
        }
    }

    async fn republish(&self, id: Uuid) -> bool {
        match self.publish(id, None).await {
            Ok(()) => true,
            Err(err) => {
                tracing::error!(job = %id, error = %err, "re-publishing a job failed");
                false
            }
        }
    }

    /// The next well-formed message, terminating the others; `None` once closed.
    async fn next(&self) -> Option<Delivery> {
        let mut closed = self.closed.subscribe();
        loop {
            if *closed.borrow() {
                return None;
            }
            let pulled = self.nats.breaker().call(
                |_| true,
                || async {
                    // While disconnected a pull would only wait in the client's buffer.
                    let state = self.jetstream.client().connection_state();
                    if state != async_nats::connection::State::Connected {
                        return Err(format!("not connected to NATS ({state:?})"));
                    }
                    let mut batch = self
                        .consumer
                        .fetch()
                        .max_messages(1)
                        .expires(PULL_EXPIRY)
                        .messages()
                        .await
                        .map_err(|e| e.to_string())?;
                    batch.next().await.transpose().map_err(|e| e.to_string())
                },
            );
            let message = tokio::select! {
                _ = closed.wait_for(|closed| *closed) => return None,
                pulled = pulled => pulled,
            };
            let message = match message {
                Ok(Some(message)) => message,
                Ok(None) => continue,
                Err(err) => {
                    let wait = match &err {
                        CallError::Open(open) => open.retry_in.max(Duration::from_millis(100)),
                        CallError::Failed(err) => {
                            metrics::counter!("tars_jobs_fetch_failed_total").increment(1);
                            tracing::warn!(error = %err, "pulling a job from NATS failed; retrying");
                            Duration::from_secs(1)
                        }
                    };
                    tokio::select! {
                        _ = closed.wait_for(|closed| *closed) => return None,
                        _ = tokio::time::sleep(wait.min(Duration::from_secs(1))) => continue,
                    }
                }
            };
            let delivered = message.info().map_or(1, |info| info.delivered);
            if delivered > 1 {
                metrics::counter!("tars_jobs_redelivered_total").increment(1);
            }
            let (message, acker) = message.split();
            let acker = Arc::new(NatsAcker {
                acker,
                nats: self.nats.clone(),
                progress_every: (self.settings.ack_wait / 3).max(Duration::from_millis(100)),
            });
            match parse_message(&message.payload) {
                Ok(id) => {
                    return Some(Delivery {
                        id,
                        redelivered: delivered > 1,
                        last_attempt: delivered >= self.settings.max_deliver,
                        acker: Some(acker),
                        traceparent: (message.headers.as_ref())
                            .and_then(|headers| headers.get("traceparent"))
                            .map(|value| value.as_str().to_string()),
                    });
                }
                Err(refusal) => {
                    let reason = refusal.reason();
                    tracing::error!(
                        subject = %message.subject,
                        reason,
                        "refusing a job message: {refusal}"
                    );
                    metrics::counter!("tars_jobs_messages_refused_total", "reason" => reason)
                        .increment(1);
                    acker.term().await;
                }
            }
        }
    }
}

impl Queue for NatsQueue {
    fn push_traced(
        &self,
        id: Uuid,
        traceparent: Option<String>,
    ) -> BoxFuture<'_, Result<(), QueueFull>> {
        Box::pin(async move {
            self.publish(id, traceparent.as_deref())
                .await
                .map_err(|err| {
                    metrics::counter!("tars_jobs_publish_failed_total").increment(1);
                    tracing::warn!(job = %id, error = %err, "publishing a job to NATS failed");
                    QueueFull
                })
        })
    }

    /// Nothing at start: in fleet mode, re-publishing lost messages is the singleton duty of
    /// the [`JOB_REAPER`](crate::leader::JOB_REAPER) leader ([`NatsQueue::spawn_reaper`]),
    /// which does it as soon as it is elected.
    fn resume<'a>(&'a self, _store: &'a Store) -> BoxFuture<'a, Result<usize, StoreError>> {
        Box::pin(std::future::ready(Ok(0)))
    }

    fn pop(&self) -> BoxFuture<'_, Option<Delivery>> {
        Box::pin(self.next())
    }

    fn depth(&self) -> usize {
        self.pending.load(Ordering::Relaxed)
    }

    fn close(&self) {
        self.closed.send_replace(true);
    }

    fn poll_interval(&self) -> Option<Duration> {
        Some(Duration::from_millis(250))
    }
}

/// A delivery's acknowledgements.
struct NatsAcker {
    acker: jetstream::message::Acker,
    nats: Guard,
    progress_every: Duration,
}

impl NatsAcker {
    async fn send(&self, kind: jetstream::AckKind) {
        let sent = self.nats.call(|_| true, || self.acker.ack_with(kind)).await;
        if let Err(err) = sent {
            tracing::warn!(error = %err, "acknowledging a job message failed");
        }
    }

    async fn term(&self) {
        self.send(jetstream::AckKind::Term).await;
    }
}

impl Acker for NatsAcker {
    fn ack(&self) -> BoxFuture<'_, ()> {
        Box::pin(self.send(jetstream::AckKind::Ack))
    }

    fn nak(&self, delay: Option<Duration>) -> BoxFuture<'_, ()> {
        Box::pin(self.send(jetstream::AckKind::Nak(delay)))
    }

    fn progress(&self) -> BoxFuture<'_, ()> {
        Box::pin(self.send(jetstream::AckKind::Progress))
    }

    fn progress_every(&self) -> Duration {
        self.progress_every
    }
}

/// Why a message was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Not the JSON object `{"v": 1, "job_id": "<uuid>"}`.
    #[error("malformed message: {0}")]
    Malformed(String),
    /// Written by a newer T.A.R.S.; this worker cannot know what it means.
    #[error(
        "message schema version {found} is newer than this worker's ({MESSAGE_VERSION}); upgrade the worker"
    )]
    NewerVersion { found: u64 },
}

impl Refusal {
    /// The metric label.
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::Malformed(_) => "malformed",
            Refusal::NewerVersion { .. } => "newer_version",
        }
    }
}

/// The job id of a message, or why it cannot be run.
pub fn parse_message(payload: &[u8]) -> Result<Uuid, Refusal> {
    let value: serde_json::Value =
        serde_json::from_slice(payload).map_err(|e| Refusal::Malformed(e.to_string()))?;
    let version = value
        .get("v")
        .and_then(serde_json::Value::as_u64)
        .ok_or_else(|| Refusal::Malformed("no schema version \"v\"".into()))?;
    if version > MESSAGE_VERSION {
        return Err(Refusal::NewerVersion { found: version });
    }
    value
        .get("job_id")
        .and_then(serde_json::Value::as_str)
        .and_then(|id| id.parse().ok())
        .ok_or_else(|| Refusal::Malformed("\"job_id\" is not a UUID".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_parsed_or_refused_with_a_reason() {
        let id = Uuid::new_v4();
        let ok = format!(r#"{{"v": 1, "job_id": "{id}"}}"#);
        assert_eq!(parse_message(ok.as_bytes()), Ok(id));
        let cases: [(&[u8], &str, &str); 5] = [
            (
                b"not json",
                "malformed",
                "malformed message: expected ident at line 1 column 2",
            ),
            (
                b"{}",
                "malformed",
                "malformed message: no schema version \"v\"",
            ),
            (
                br#"{"v": 1, "job_id": 7}"#,
                "malformed",
                "malformed message: \"job_id\" is not a UUID",
            ),
            (
                br#"{"v": "1"}"#,
                "malformed",
                "malformed message: no schema version \"v\"",
            ),
            (
                br#"{"v": 2, "job_id": "x", "kind": "training"}"#,
                "newer_version",
                "message schema version 2 is newer than this worker's (1); upgrade the worker",
            ),
        ];
        for (payload, reason, message) in cases {
            let refusal = parse_message(payload).unwrap_err();
            assert_eq!(
                (refusal.reason(), refusal.to_string().as_str()),
                (reason, message)
            );
        }
    }
}
