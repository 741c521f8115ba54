//! Fleet mode's events ([`crate::events`]) over NATS JetStream.
//!
//! Stream `<PREFIX>_EVENTS` on subjects `<prefix>.events.>` (`config.<AGENT>`,
//! `baseline.<AGENT>.<ENV>`, `proposal.<ID>`, `job.<ID>.cancel`), limits retention: the last
//! message of each subject, for [`MAX_AGE`]. So the stream is the fleet's last word on each
//! thing, and a process that was down replays it on start.
//!
//! - [`NatsPublisher`] publishes this process's events in order, each awaited until the
//!   stream stored it, from one task ([`NatsPublisher::close`] waits for the last one, so a
//!   command-line write is on the stream before the process exits).
//! - [`listen`] applies everyone's events (its own too: every event is idempotent) from an
//!   ordered push consumer that starts at the stream's first message: on start, the process
//!   catches up with what it missed before it serves; after a NATS outage, the consumer
//!   resumes after the last message it applied. A config event refreshes the served
//!   version (`tars_hypersync_config_version{agent_type}`), a baseline event drops the
//!   cached listings, a proposal event wakes waiters (an applied one also refreshes the served
//!   config when it names a newer version), a cancel stops the job if it runs here. A config
//!   event older than the served version, and a proposal event older than the proposal's
//!   latest move applied here, are stale: ignored and counted
//!   (`tars_events_ignored_total{kind}`).
//!
//! The store stays the truth: a replica also refreshes its configs at start and every
//! `config_poll_ms`, and cached baselines expire after `baseline_cache_ms`.

use crate::events::{Event, Publisher};
use crate::hypersync::HyperSync;
use crate::jobs::Jobs;
use crate::service::Service;
use anyhow::Context as _;
use async_nats::jetstream::{self, consumer, stream};
use futures_util::StreamExt;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

/// How long the stream keeps an event.
pub const MAX_AGE: Duration = Duration::from_secs(24 * 3600);

/// How long a start waits to have applied the events stored before it.
const CATCH_UP_LIMIT: Duration = Duration::from_secs(10);

/// The events stream of `prefix`.
pub fn stream_name(prefix: &str) -> String {
    format!("{}_EVENTS", prefix.to_uppercase())
}

/// Creates the events stream if it does not exist (an existing one keeps its configuration).
pub async fn ensure_stream(
    jetstream: &jetstream::Context,
    prefix: &str,
) -> anyhow::Result<stream::Stream> {
    jetstream
        .get_or_create_stream(stream::Config {
            name: stream_name(prefix),
            subjects: vec![format!("{prefix}.events.>")],
            retention: stream::RetentionPolicy::Limits,
            max_age: MAX_AGE,
            max_messages_per_subject: 1,
            discard: stream::DiscardPolicy::Old,
            storage: stream::StorageType::File,
            ..Default::default()
        })
        .await
        .with_context(|| format!("creating the JetStream stream {}", stream_name(prefix)))
}

/// Publishes this process's events, in order, from one background task.
pub struct NatsPublisher {
    sender: Mutex<Option<mpsc::UnboundedSender<Event>>>,
    task: tokio::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl NatsPublisher {
    /// Creates the stream if needed and starts the publishing task.
    pub async fn start(client: async_nats::Client, prefix: &str) -> anyhow::Result<Arc<Self>> {
        let jetstream = jetstream::new(client);
        ensure_stream(&jetstream, prefix).await?;
        let (sender, mut events) = mpsc::unbounded_channel::<Event>();
        let prefix = prefix.to_string();
        let task = tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                let subject = event.subject(&prefix);
                let stored = match jetstream.publish(subject, event.to_json().into()).await {
                    Ok(ack) => ack.await.map(|_| ()).map_err(|e| e.to_string()),
                    Err(err) => Err(err.to_string()),
                };
                match stored {
                    Ok(()) => {
                        metrics::counter!("tars_events_published_total", "kind" => event.kind())
                            .increment(1)
                    }
                    Err(err) => {
                        // Replicas still pick the change up from the store (poll, TTL).
                        tracing::warn!(?event, error = %err, "publishing a fleet event failed");
                        metrics::counter!("tars_events_publish_failed_total", "kind" => event.kind())
                            .increment(1);
                    }
                }
            }
        });
        Ok(Arc::new(NatsPublisher {
            sender: Mutex::new(Some(sender)),
            task: tokio::sync::Mutex::new(Some(task)),
        }))
    }

    /// Publishes what is queued, then stops (later events are dropped). Gives up after
    /// `limit`.
    pub async fn close(&self, limit: Duration) {
        self.sender.lock().expect("sender lock").take();
        if let Some(mut task) = self.task.lock().await.take()
            && tokio::time::timeout(limit, &mut task).await.is_err()
        {
            tracing::warn!("fleet events still unpublished at exit; replicas poll the store");
            task.abort();
        }
    }
}

impl Publisher for NatsPublisher {
    fn publish(&self, event: Event) {
        if let Some(sender) = &*self.sender.lock().expect("sender lock") {
            let _ = sender.send(event);
        }
    }
}

/// Connects to NATS at `url` and makes `service` publish its events there; the CLI's
/// one-shot commands call this when `nats_url` is set (and [`NatsPublisher::close`] before
/// they exit).
pub async fn publisher_of(service: &Service) -> anyhow::Result<Option<Arc<NatsPublisher>>> {
    let url = service.config.nats_url();
    if url.is_empty() {
        return Ok(None);
    }
    let client = crate::queue_nats::connect(url).await?;
    let publisher = NatsPublisher::start(client, service.config.get_text("nats_prefix")).await?;
    service.set_publisher(publisher.clone());
    Ok(Some(publisher))
}

/// What applies events in this process: a replica has all three, a worker no HyperSync.
pub struct Appliers {
    pub service: Arc<Service>,
    pub hypersync: Option<Arc<HyperSync>>,
    pub jobs: Option<Arc<Jobs>>,
}

impl Appliers {
    async fn apply(&self, event: Event) {
        match &event {
            Event::Config {
                agent_type,
                version,
            } => {
                let Some(hypersync) = &self.hypersync else {
                    return;
                };
                let served = hypersync
                    .live()
                    .snapshot(agent_type)
                    .map_or(0, |snapshot| snapshot.config.version);
                if served > *version {
                    // A replay, or another replica's write overtaken by a later one.
                    return ignored(&event);
                }
                if served < *version
                    && let Err(err) = hypersync.refresh().await
                {
                    tracing::warn!(error = %err.message, "applying a config event failed; the poll retries");
                }
            }
            Event::Baseline { .. } => self.service.forget_cached_baselines(),
            Event::Proposal {
                id,
                agent_type,
                status,
                config_version,
            } => {
                if let Some(hypersync) = &self.hypersync
                    && !hypersync
                        .proposal_moved(*id, agent_type, status, *config_version)
                        .await
                {
                    return ignored(&event);
                }
            }
            Event::Cancel { job_id } => {
                if let Some(jobs) = &self.jobs {
                    jobs.cancel_here(*job_id);
                }
            }
        }
        metrics::counter!("tars_events_applied_total", "kind" => event.kind()).increment(1);
    }
}

/// An event older than what this process applied already: counted, not applied.
fn ignored(event: &Event) {
    tracing::debug!(?event, "ignoring a stale fleet event");
    metrics::counter!("tars_events_ignored_total", "kind" => event.kind()).increment(1);
}

/// Applies the fleet's events until the returned task is aborted: first every event the
/// stream holds (returns once they are applied, or after [`CATCH_UP_LIMIT`]), then each new
/// one as it is published.
pub async fn listen(
    client: async_nats::Client,
    prefix: &str,
    appliers: Appliers,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let jetstream = jetstream::new(client.clone());
    let stream = ensure_stream(&jetstream, prefix).await?;
    let state = stream
        .get_info()
        .await
        .context("reading the events stream")?
        .state;
    let stored_until = (state.messages > 0).then_some(state.last_sequence);
    let consumer = stream
        .create_consumer(consumer::push::OrderedConfig {
            deliver_subject: client.new_inbox(),
            filter_subject: format!("{prefix}.events.>"),
            deliver_policy: consumer::DeliverPolicy::All,
            ..Default::default()
        })
        .await
        .context("creating the events consumer")?;
    let mut messages = consumer
        .messages()
        .await
        .context("subscribing to the events consumer")?;
    let (caught_up, mut caught_up_rx) = tokio::sync::watch::channel(stored_until.is_none());
    let task = tokio::spawn(async move {
        while let Some(message) = messages.next().await {
            let message = match message {
                Ok(message) => message,
                Err(err) => {
                    // The ordered consumer recreates itself after the last message applied.
                    tracing::warn!(error = %err, "reading fleet events failed; resuming");
                    continue;
                }
            };
            let sequence = message.info().map(|info| info.stream_sequence).ok();
            match Event::from_json(&message.payload) {
                Ok(event) => appliers.apply(event).await,
                Err(refusal) => {
                    tracing::warn!(subject = %message.subject, "ignoring a fleet event: {refusal}");
                    metrics::counter!("tars_events_refused_total", "reason" => refusal.reason())
                        .increment(1);
                }
            }
            if let Some(sequence) = sequence {
                metrics::gauge!("tars_events_applied_sequence").set(sequence as f64);
                if stored_until.is_some_and(|until| sequence >= until) {
                    caught_up.send_replace(true);
                }
            }
        }
    });
    if tokio::time::timeout(CATCH_UP_LIMIT, caught_up_rx.wait_for(|done| *done))
        .await
        .is_err()
    {
        tracing::warn!("fleet events not caught up in time; serving, the rest applies meanwhile");
    }
    Ok(task)
}
