//! Fleet mode's Redis (`redis_url`): a read-through cache of baseline listings and active
//! configs shared by the replicas ([`cache`]), rate-limit buckets shared by the replicas
//! ([`limits`]) and `Idempotency-Key` records ([`idempotency`]).
//!
//! Redis is an accelerator, never a dependency of a request: every operation goes through
//! [`Redis::call`], which skips Redis while it is degraded and turns any error or timeout into
//! "bypass Redis for this request" (the caller falls back to the database, the local rate
//! limiter, the database's idempotency dedupe). The first error marks Redis degraded
//! (`tars_redis_up 0`, `/health` says `"degraded"` with the reason); the monitor task probes it
//! every [`RETRY`] and, once it answers and the invalidation channel is subscribed again, marks
//! it connected. The monitor also listens on `<redis_prefix>:invalidate`: every replica's
//! writes are announced there, and each replica clears its in-memory baseline cache on them.
//!
//! Errors are counted by operation in `tars_redis_errors_total{op}`.

pub mod cache;
pub mod idempotency;
pub mod limits;

use crate::baseline_cache::BaselineCache;
use crate::config::Config;
use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::{Client, RedisResult};
use futures_util::StreamExt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::sync::{Notify, broadcast, watch};

/// The longest one Redis operation may take before the request bypasses Redis.
pub const TIMEOUT: Duration = Duration::from_millis(500);
/// How often a degraded Redis is probed.
pub const RETRY: Duration = Duration::from_secs(1);
/// How long a process waits at start for its first answer from Redis before it serves
/// degraded (the monitor keeps trying).
const FIRST_PROBE: Duration = Duration::from_secs(2);

/// What the configuration says about Redis.
#[derive(Debug, Clone)]
pub struct RedisSettings {
    pub url: String,
    /// The namespace of every key and of the channel (`redis_prefix`).
    pub prefix: String,
    /// How long a cached listing or config lives in Redis (`redis_cache_seconds`).
    pub cache_ttl: Duration,
}

impl RedisSettings {
    /// `None` when `redis_url` is empty (Redis off).
    pub fn from_config(config: &Config) -> Option<RedisSettings> {
        match config.get_text("redis_url") {
            "" => None,
            url => Some(RedisSettings {
                url: url.to_string(),
                prefix: config.get_text("redis_prefix").to_string(),
                cache_ttl: Duration::from_secs(config.get_int("redis_cache_seconds") as u64),
            }),
        }
    }
}

/// Redis as `/health` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Connected,
    /// Requests bypass Redis; the reason is the last error.
    Degraded(String),
}

/// A change another replica announced on `<prefix>:invalidate`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// Some baseline changed.
    Baselines,
    /// The active config of this agent type changed.
    Config(String),
}

/// The connection, its state and the monitor task.
pub struct Redis {
    settings: RedisSettings,
    connection: ConnectionManager,
    client: Client,
    up: AtomicBool,
    status: watch::Sender<Status>,
    /// Wakes the monitor when a request saw Redis fail.
    failed: Notify,
    notices: broadcast::Sender<Notice>,
    /// This replica's in-memory baseline listings, cleared on other replicas' notices.
    local_baselines: Arc<BaselineCache>,
    /// Names this replica in its notices, so it ignores its own.
    origin: String,
    monitor: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Redis {
    /// Starts using the Redis of `settings`: waits up to a couple of seconds for its first
    /// answer, and serves degraded (reconnecting in the background) when there is none. Fails
    /// only when the URL is not a Redis URL.
    pub async fn connect(
        settings: RedisSettings,
        local_baselines: Arc<BaselineCache>,
    ) -> anyhow::Result<Arc<Redis>> {
        let client = Client::open(settings.url.as_str()).map_err(|err| {
            anyhow::anyhow!(
                "invalid redis_url = '{}': {err}; expected redis://[:PASSWORD@]HOST[:PORT][/DB]",
                crate::config::mask_url(&settings.url)
            )
        })?;
        // One attempt per call: a degraded Redis is probed by the monitor, not by requests.
        let manager_config = ConnectionManagerConfig::new()
            .set_number_of_retries(0)
            .set_connection_timeout(Some(TIMEOUT))
            .set_response_timeout(Some(TIMEOUT));
        let connection = ConnectionManager::new_lazy_with_config(client.clone(), manager_config)
            .map_err(|err| anyhow::anyhow!("setting up the Redis connection: {err}"))?;
        metrics::gauge!("tars_redis_up").set(0.0);
        let redis = Arc::new(Redis {
            settings,
            connection,
            client,
            up: AtomicBool::new(false),
            status: watch::channel(Status::Degraded("connecting".into())).0,
            failed: Notify::new(),
            notices: broadcast::channel(64).0,
            local_baselines,
            origin: uuid::Uuid::new_v4().simple().to_string(),
            monitor: std::sync::Mutex::new(None),
        });
        let mut status = redis.status.subscribe();
        let task = tokio::spawn(monitor(redis.clone()));
        *redis.monitor.lock().expect("monitor lock") = Some(task);
        let first = tokio::time::timeout(FIRST_PROBE, status.changed()).await;
        if first.is_err() {
            tracing::warn!(
                "Redis did not answer within {} s; serving without it until it does",
                FIRST_PROBE.as_secs()
            );
        }
        Ok(redis)
    }

    pub fn prefix(&self) -> &str {
        &self.settings.prefix
    }

    pub fn settings(&self) -> &RedisSettings {
        &self.settings
    }

    /// The id this replica's notices carry.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Whether requests use Redis now.
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    pub fn status(&self) -> Status {
        self.status.borrow().clone()
    }

    /// Other replicas' notices (this replica's own writes are not echoed).
    pub fn notices(&self) -> broadcast::Receiver<Notice> {
        self.notices.subscribe()
    }

    /// Stops the monitor (the process is shutting down).
    pub fn close(&self) {
        if let Some(task) = self.monitor.lock().expect("monitor lock").take() {
            task.abort();
        }
    }

    /// Runs one Redis operation: `None` when Redis is degraded, failed or took longer than
    /// [`TIMEOUT`] — the caller then does without Redis. The only way this module talks to
    /// Redis on behalf of a request.
    pub async fn call<T, F, Fut>(&self, op: &'static str, operation: F) -> Option<T>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        if !self.is_up() {
            return None;
        }
        let start = std::time::Instant::now();
        let answered = tokio::time::timeout(TIMEOUT, operation(self.connection.clone())).await;
        metrics::histogram!("tars_redis_operation_duration_seconds", "op" => op)
            .record(start.elapsed().as_secs_f64());
        match answered {
            Ok(Ok(value)) => Some(value),
            Ok(Err(err)) => {
                self.failed(op, err.to_string());
                None
            }
            Err(_) => {
                self.failed(op, format!("no answer within {} ms", TIMEOUT.as_millis()));
                None
            }
        }
    }

    /// Counts an error of `op` that says nothing about the connection (e.g. an entry that
    /// does not decode).
    pub fn count_error(&self, op: &'static str) {
        metrics::counter!("tars_redis_errors_total", "op" => op).increment(1);
    }

    /// Marks Redis degraded after an error of `op`.
    fn failed(&self, op: &'static str, reason: String) {
        self.count_error(op);
        if self.up.swap(false, Ordering::Relaxed) {
            tracing::warn!(op, error = %reason, "Redis failed; serving without it until it answers again");
            metrics::gauge!("tars_redis_up").set(0.0);
            // Other replicas' notices will not arrive while Redis is away.
            self.local_baselines.invalidate();
            self.failed.notify_one();
        }
        self.status
            .send_replace(Status::Degraded(format!("{op}: {reason}")));
    }

    fn mark_up(&self) {
        // Notices may have been missed while Redis was away.
        self.local_baselines.invalidate();
        self.up.store(true, Ordering::Relaxed);
        metrics::gauge!("tars_redis_up").set(1.0);
        self.status.send_replace(Status::Connected);
        tracing::info!(prefix = %self.settings.prefix, "Redis connected");
    }

    /// The channel every replica's invalidations go to.
    pub fn channel(&self) -> String {
        format!("{}:invalidate", self.settings.prefix)
    }

    /// Answers a ping and takes the subscription, bumping the cache generations first (this
    /// process may have written while Redis was away, or Redis may have come back with old
    /// data).
    async fn reconnect(&self) -> RedisResult<::redis::aio::PubSub> {
        let mut connection = self.connection.clone();
        ::redis::cmd("PING")
            .query_async::<String>(&mut connection)
            .await?;
        let mut pubsub = self.client.get_async_pubsub().await?;
        pubsub.subscribe(self.channel()).await?;
        cache::forget_everything(self, &mut connection).await?;
        Ok(pubsub)
    }

    /// Applies a notice from `<prefix>:invalidate` (its payload: see [`cache::notice_payload`]).
    fn receive(&self, payload: &[u8]) {
        let Some((origin, notice)) = cache::parse_notice(payload) else {
            tracing::warn!("ignoring a malformed Redis invalidation notice");
            self.count_error("notice");
            return;
        };
        if origin == self.origin {
            return;
        }
        if notice == Notice::Baselines {
            self.local_baselines.invalidate();
        }
        let _ = self.notices.send(notice);
    }
}

/// Keeps Redis connected: probes it until it answers, subscribes to the invalidation
/// channel, marks it up, then applies notices until the subscription or a request fails.
async fn monitor(redis: Arc<Redis>) {
    loop {
        let attempt = tokio::time::timeout(TIMEOUT * 4, redis.reconnect()).await;
        let mut pubsub = match attempt {
            Ok(Ok(pubsub)) => pubsub,
            Ok(Err(err)) => {
                redis.failed("connect", err.to_string());
                tokio::time::sleep(RETRY).await;
                continue;
            }
            Err(_) => {
                redis.failed("connect", "no answer".into());
                tokio::time::sleep(RETRY).await;
                continue;
            }
        };
        redis.mark_up();
        let mut messages = pubsub.on_message();
        loop {
            tokio::select! {
                message = messages.next() => match message {
                    Some(message) => redis.receive(message.get_payload_bytes()),
                    None => {
                        redis.failed("subscribe", "the subscription's connection closed".into());
                        break;
                    }
                },
                _ = redis.failed.notified() => {
                    if !redis.is_up() {
                        break;
                    }
                }
            }
        }
        drop(messages);
        drop(pubsub);
        tokio::time::sleep(RETRY).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_url_redis_cannot_read_is_refused_with_the_valid_form() {
        let settings = RedisSettings {
            url: "redis://:hunter2@cache:port".into(),
            prefix: "tars".into(),
            cache_ttl: Duration::from_secs(1),
        };
        let local = Arc::new(BaselineCache::new(Duration::ZERO));
        let err = Redis::connect(settings, local).await.err().unwrap();
        let err = format!("{err:#}");
        assert!(
            err.starts_with("invalid redis_url = 'redis://:***@cache:port': "),
            "{err}"
        );
        assert!(
            err.ends_with("expected redis://[:PASSWORD@]HOST[:PORT][/DB]"),
            "{err}"
        );
        assert!(!err.contains("hunter2"), "{err}");
    }
}
