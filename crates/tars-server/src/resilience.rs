//! The guards of a process's dependencies: one circuit breaker per dependency (`postgres`,
//! `nats`) with retry, exponential backoff and full jitter in front of it
//! (`tars_runtime::{breaker, retry}`). The `postgres` guard is the [`Service`](crate::Service)'s,
//! one per process, shared by the job path and the request paths (`Service::postgres`); an
//! open breaker answers a request with 503 and `Retry-After` (`ApiError::from`).
//!
//! A call through a [`Guard`] is retried while it fails transiently (the dependency unreachable
//! or restarting: [`StoreError::is_transient`], any NATS error), up to [`JOB_PATH_BACKOFF`];
//! every failure counts towards the breaker, and an open breaker fails at once with an error
//! naming the dependency and when it is tried again. Clients reconnect by themselves: sqlx's
//! pool tests idle connections before use and opens new ones, async-nats reconnects in the
//! background; the breaker's probes find out when they are back.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tars_runtime::breaker::{BreakerConfig, BreakerState, CallError, CircuitBreaker};
use tars_runtime::retry::{Backoff, retry};
use tars_store::StoreError;

/// Retries of one job-path call: 4 attempts within 10 s, delays up to 100 ms, 200 ms, 400 ms.
pub const JOB_PATH_BACKOFF: Backoff = Backoff {
    base: Duration::from_millis(100),
    cap: Duration::from_secs(2),
    max_attempts: 4,
    max_elapsed: Some(Duration::from_secs(10)),
};

/// A store call's failure through a [`Guard`]: refused by the open breaker, or the store's error.
pub type StoreCallError = CallError<StoreError>;

/// A dependency's breaker and retry policy. Cheap to clone (the breaker is shared).
#[derive(Debug, Clone)]
pub struct Guard {
    breaker: Arc<CircuitBreaker>,
    backoff: Backoff,
}

impl Guard {
    /// A guard for `dependency` (the metric label): opens after 5 failures in a row or half
    /// of the last 20 calls failing, probes again after 3 s.
    pub fn new(dependency: &str) -> Guard {
        Guard {
            breaker: Arc::new(CircuitBreaker::new(
                dependency,
                BreakerConfig {
                    open_for: Duration::from_secs(3),
                    ..BreakerConfig::default()
                },
            )),
            backoff: JOB_PATH_BACKOFF,
        }
    }

    pub fn breaker(&self) -> &CircuitBreaker {
        &self.breaker
    }

    /// The breaker itself, for callers outside this crate (the registry's heartbeats).
    pub fn shared_breaker(&self) -> Arc<CircuitBreaker> {
        self.breaker.clone()
    }

    /// Runs `op` through the breaker, retrying transient failures with backoff (not an open
    /// breaker: that fails fast).
    pub async fn call<T, E, Fut>(
        &self,
        is_transient: impl Fn(&E) -> bool + Copy,
        mut op: impl FnMut() -> Fut,
    ) -> Result<T, CallError<E>>
    where
        Fut: Future<Output = Result<T, E>>,
    {
        retry(
            &self.backoff,
            |err: &CallError<E>| err.failed().is_some_and(is_transient),
            || {
                let attempt = op();
                self.breaker.call(is_transient, move || attempt)
            },
        )
        .await
    }

    /// A store call, retried while it fails transiently: for reads and idempotent writes.
    pub async fn store<T, Fut>(&self, op: impl FnMut() -> Fut) -> Result<T, StoreCallError>
    where
        Fut: Future<Output = Result<T, StoreError>>,
    {
        let start = Instant::now();
        let result = self.call(StoreError::is_transient, op).await;
        record_store_call(start);
        result
    }

    /// A store call made once through the breaker: for writes a retry could apply twice (a
    /// version compare-and-set whose answer was lost would fail its retry with a conflict).
    pub async fn store_once<T, Fut>(&self, op: impl FnOnce() -> Fut) -> Result<T, StoreCallError>
    where
        Fut: Future<Output = Result<T, StoreError>>,
    {
        let start = Instant::now();
        let result = self.breaker.call(StoreError::is_transient, op).await;
        record_store_call(start);
        result
    }

    /// Waits while the breaker is open (not calling a dependency that is known to be down),
    /// at most until `stop` says so.
    pub async fn wait_until_not_open(&self, stop: impl Fn() -> bool) {
        while self.breaker.state() == BreakerState::Open && !stop() {
            let wait = match self.breaker.permit() {
                Err(open) => open.retry_in,
                Ok(_) => Duration::ZERO,
            };
            tokio::time::sleep(wait.clamp(Duration::from_millis(50), Duration::from_secs(1))).await;
        }
    }
}

/// `tars_db_query_duration_seconds`: a store call through the guard, its retries included.
fn record_store_call(start: Instant) {
    metrics::histogram!("tars_db_query_duration_seconds").record(start.elapsed().as_secs_f64());
}
