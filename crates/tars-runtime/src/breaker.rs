//! Circuit breakers: a dependency that keeps failing is not called for a while, so callers fail
//! fast (with an error naming the dependency and when it will be tried again) instead of piling
//! up on timeouts, and the dependency gets room to recover.
//!
//! States: **closed** (calls go through; outcomes are counted) → **open** after
//! `consecutive_failures` failures in a row, or when at least `rate_min_calls` of the last
//! `rate_window` calls were recorded and `failure_rate` of them failed → after `open_for`,
//! **half-open**: up to `half_open_probes` calls go through as probes; a probe's success closes
//! the breaker, its failure opens it again for another `open_for`.
//!
//! Exported as the gauge `tars_circuit_breaker_state{dependency}` (0 closed, 1 open,
//! 2 half-open) and the counter `tars_circuit_breaker_transitions_total{dependency,to}`.
//! Only failures the caller counts as the dependency's (e.g. "unreachable", not "not found")
//! should be recorded as failures: see [`CircuitBreaker::call`].

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// When a breaker opens and for how long.
#[derive(Debug, Clone, PartialEq)]
pub struct BreakerConfig {
    /// Failures in a row that open the breaker.
    pub consecutive_failures: u32,
    /// Fraction of failed calls in the window that opens the breaker (in (0, 1]).
    pub failure_rate: f64,
    /// Calls the failure rate is computed over (the most recent ones).
    pub rate_window: usize,
    /// Calls the window must hold before the rate can open the breaker.
    pub rate_min_calls: usize,
    /// How long an open breaker refuses calls before letting probes through.
    pub open_for: Duration,
    /// Probes a half-open breaker lets through at once.
    pub half_open_probes: u32,
}

impl Default for BreakerConfig {
    fn default() -> BreakerConfig {
        BreakerConfig {
            consecutive_failures: 5,
            failure_rate: 0.5,
            rate_window: 20,
            rate_min_calls: 10,
            open_for: Duration::from_secs(5),
            half_open_probes: 1,
        }
    }
}

/// A breaker's state, as exported by the gauge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

impl BreakerState {
    /// The gauge's value: 0 closed, 1 open, 2 half-open.
    pub fn gauge(self) -> f64 {
        match self {
            BreakerState::Closed => 0.0,
            BreakerState::Open => 1.0,
            BreakerState::HalfOpen => 2.0,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half_open",
        }
    }
}

/// A call refused without being made: the dependency's breaker is open.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{dependency} is unavailable: its circuit breaker is open after repeated failures; \
     the next attempt is in {} ms", retry_in.as_millis()
)]
pub struct BreakerOpen {
    pub dependency: String,
    /// When the breaker lets a probe through.
    pub retry_in: Duration,
}

/// A guarded call's failure: refused by the breaker, or the call's own error.
#[derive(Debug, thiserror::Error)]
pub enum CallError<E> {
    #[error(transparent)]
    Open(#[from] BreakerOpen),
    #[error(transparent)]
    Failed(E),
}

impl<E> CallError<E> {
    /// The call's own error, if it was made.
    pub fn failed(&self) -> Option<&E> {
        match self {
            CallError::Failed(err) => Some(err),
            CallError::Open(_) => None,
        }
    }
}

/// One dependency's breaker. Share it (`Arc`) between every caller of that dependency.
#[derive(Debug)]
pub struct CircuitBreaker {
    dependency: String,
    config: BreakerConfig,
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    state: State,
    consecutive_failures: u32,
    /// Recent outcomes while closed, `true` = failed.
    window: VecDeque<bool>,
}

#[derive(Debug, Clone, Copy)]
enum State {
    Closed,
    Open { until: Instant },
    HalfOpen { probes: u32 },
}

/// Leave to make one call; report its outcome with [`Permit::success`] or [`Permit::failure`].
/// Dropped without a report (e.g. the call was cancelled, or failed in a way that says nothing
/// about the dependency), it counts as neither.
#[derive(Debug)]
#[must_use = "report the call's outcome"]
pub struct Permit<'a> {
    breaker: &'a CircuitBreaker,
    probe: bool,
    reported: bool,
}

impl CircuitBreaker {
    /// A closed breaker for `dependency` (the metric label and the name in errors).
    pub fn new(dependency: impl Into<String>, config: BreakerConfig) -> CircuitBreaker {
        let breaker = CircuitBreaker {
            dependency: dependency.into(),
            config,
            inner: Mutex::new(Inner {
                state: State::Closed,
                consecutive_failures: 0,
                window: VecDeque::new(),
            }),
        };
        metrics::gauge!("tars_circuit_breaker_state", "dependency" => breaker.dependency.clone())
            .set(BreakerState::Closed.gauge());
        breaker
    }

    pub fn dependency(&self) -> &str {
        &self.dependency
    }

    /// The state now (an open breaker whose time is up reads as half-open).
    pub fn state(&self) -> BreakerState {
        let mut inner = self.inner.lock().expect("breaker lock");
        self.refresh(&mut inner);
        match inner.state {
            State::Closed => BreakerState::Closed,
            State::Open { .. } => BreakerState::Open,
            State::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    /// Leave to call the dependency now, or why not.
    pub fn permit(&self) -> Result<Permit<'_>, BreakerOpen> {
        let mut inner = self.inner.lock().expect("breaker lock");
        self.refresh(&mut inner);
        match &mut inner.state {
            State::Closed => Ok(Permit {
                breaker: self,
                probe: false,
                reported: false,
            }),
            State::Open { until } => Err(BreakerOpen {
                dependency: self.dependency.clone(),
                retry_in: until.saturating_duration_since(Instant::now()),
            }),
            State::HalfOpen { probes } if *probes < self.config.half_open_probes => {
                *probes += 1;
                Ok(Permit {
                    breaker: self,
                    probe: true,
                    reported: false,
                })
            }
            // Probes are out: the others wait until one reports.
            State::HalfOpen { .. } => Err(BreakerOpen {
                dependency: self.dependency.clone(),
                retry_in: Duration::ZERO,
            }),
        }
    }

    /// Calls `call` unless the breaker is open; records its error as the dependency's failure
    /// when `is_failure` says so (other errors, like "not found", count as successes: the
    /// dependency answered).
    pub async fn call<T, E, Fut>(
        &self,
        is_failure: impl Fn(&E) -> bool,
        call: impl FnOnce() -> Fut,
    ) -> Result<T, CallError<E>>
    where
        Fut: Future<Output = Result<T, E>>,
    {
        let permit = self.permit()?;
        match call().await {
            Ok(value) => {
                permit.success();
                Ok(value)
            }
            Err(err) => {
                if is_failure(&err) {
                    permit.failure();
                } else {
                    permit.success();
                }
                Err(CallError::Failed(err))
            }
        }
    }

    /// Open → half-open once the cool-down is over.
    fn refresh(&self, inner: &mut Inner) {
        if let State::Open { until } = inner.state
            && Instant::now() >= until
        {
            self.transition(inner, State::HalfOpen { probes: 0 });
        }
    }

    fn record(&self, probe: bool, failed: bool) {
        let mut inner = self.inner.lock().expect("breaker lock");
        self.refresh(&mut inner);
        match inner.state {
            // A success of a call let through before the breaker opened says nothing of now.
            State::HalfOpen { .. } => {
                if failed {
                    self.open(&mut inner);
                } else if probe {
                    self.transition(&mut inner, State::Closed);
                }
            }
            // A call that started before the breaker opened.
            State::Open { .. } => {}
            State::Closed => {
                if failed {
                    inner.consecutive_failures += 1;
                } else {
                    inner.consecutive_failures = 0;
                }
                inner.window.push_back(failed);
                while inner.window.len() > self.config.rate_window.max(1) {
                    inner.window.pop_front();
                }
                let failures = inner.window.iter().filter(|failed| **failed).count();
                let rate_trips = inner.window.len() >= self.config.rate_min_calls.max(1)
                    && failures as f64 >= self.config.failure_rate * inner.window.len() as f64;
                if failed
                    && (inner.consecutive_failures >= self.config.consecutive_failures.max(1)
                        || rate_trips)
                {
                    self.open(&mut inner);
                }
            }
        }
    }

    /// A probe dropped without a report frees its slot.
    fn release_probe(&self) {
        let mut inner = self.inner.lock().expect("breaker lock");
        if let State::HalfOpen { probes } = &mut inner.state {
            *probes = probes.saturating_sub(1);
        }
    }

    fn open(&self, inner: &mut Inner) {
        let until = Instant::now() + self.config.open_for;
        tracing::warn!(
            dependency = %self.dependency,
            open_for_ms = self.config.open_for.as_millis() as u64,
            "circuit breaker open: failing fast"
        );
        self.transition(inner, State::Open { until });
    }

    fn transition(&self, inner: &mut Inner, to: State) {
        let state = match to {
            State::Closed => BreakerState::Closed,
            State::Open { .. } => BreakerState::Open,
            State::HalfOpen { .. } => BreakerState::HalfOpen,
        };
        if state == BreakerState::Closed {
            tracing::info!(dependency = %self.dependency, "circuit breaker closed");
        }
        inner.state = to;
        inner.consecutive_failures = 0;
        inner.window.clear();
        let dependency = self.dependency.clone();
        metrics::gauge!("tars_circuit_breaker_state", "dependency" => dependency.clone())
            .set(state.gauge());
        metrics::counter!("tars_circuit_breaker_transitions_total",
            "dependency" => dependency, "to" => state.as_str())
        .increment(1);
    }
}

impl Permit<'_> {
    /// The call succeeded (or the dependency answered, even with an error of the caller's).
    pub fn success(mut self) {
        self.reported = true;
        self.breaker.record(self.probe, false);
    }

    /// The dependency failed (unreachable, timed out, refused).
    pub fn failure(mut self) {
        self.reported = true;
        self.breaker.record(self.probe, true);
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if !self.reported && self.probe {
            self.breaker.release_probe();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> BreakerConfig {
        BreakerConfig {
            consecutive_failures: 3,
            failure_rate: 0.5,
            rate_window: 10,
            rate_min_calls: 6,
            open_for: Duration::from_secs(10),
            half_open_probes: 1,
        }
    }

    async fn fail(breaker: &CircuitBreaker) -> Result<(), CallError<&'static str>> {
        breaker.call(|_| true, || async { Err("down") }).await
    }

    async fn succeed(breaker: &CircuitBreaker) -> Result<(), CallError<&'static str>> {
        breaker.call(|_| true, || async { Ok(()) }).await
    }

    #[tokio::test(start_paused = true)]
    async fn consecutive_failures_open_it_and_a_successful_probe_closes_it() {
        let breaker = CircuitBreaker::new("postgres", config());
        for _ in 0..2 {
            assert!(matches!(
                fail(&breaker).await,
                Err(CallError::Failed("down"))
            ));
        }
        assert_eq!(breaker.state(), BreakerState::Closed);
        assert!(matches!(fail(&breaker).await, Err(CallError::Failed(_))));
        assert_eq!(breaker.state(), BreakerState::Open);

        // Open: the call is not made, and the error says what and when.
        let mut called = false;
        let refused = breaker
            .call(
                |_: &&str| true,
                || {
                    called = true;
                    async { Ok(()) }
                },
            )
            .await
            .unwrap_err();
        assert!(!called);
        assert_eq!(
            refused.to_string(),
            "postgres is unavailable: its circuit breaker is open after repeated failures; \
             the next attempt is in 10000 ms"
        );
        tokio::time::advance(Duration::from_secs(4)).await;
        match succeed(&breaker).await {
            Err(CallError::Open(open)) => assert_eq!(open.retry_in, Duration::from_secs(6)),
            other => panic!("expected an open breaker, got {other:?}"),
        }

        tokio::time::advance(Duration::from_secs(6)).await;
        assert_eq!(breaker.state(), BreakerState::HalfOpen);
        // One probe at a time.
        let probe = breaker.permit().expect("a probe");
        assert_eq!(breaker.permit().unwrap_err().retry_in, Duration::ZERO);
        probe.success();
        assert_eq!(breaker.state(), BreakerState::Closed);
        assert!(succeed(&breaker).await.is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_probe_opens_it_again_for_a_full_cool_down() {
        let breaker = CircuitBreaker::new("nats", config());
        for _ in 0..3 {
            let _ = fail(&breaker).await;
        }
        tokio::time::advance(Duration::from_secs(10)).await;
        assert!(matches!(fail(&breaker).await, Err(CallError::Failed(_))));
        assert_eq!(breaker.state(), BreakerState::Open);
        tokio::time::advance(Duration::from_secs(9)).await;
        assert_eq!(breaker.state(), BreakerState::Open);
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(breaker.state(), BreakerState::HalfOpen);
        // A probe that never reports (cancelled) frees its slot.
        drop(breaker.permit().expect("a probe"));
        assert!(succeed(&breaker).await.is_ok());
        assert_eq!(breaker.state(), BreakerState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failure_rate_opens_it_without_failures_in_a_row() {
        let breaker = CircuitBreaker::new("redis", config());
        // fail, ok, fail, ok, fail: never 3 in a row, 3 of 5 failed but fewer than 6 calls.
        for idx in 0..5 {
            let _ = if idx % 2 == 0 {
                fail(&breaker).await
            } else {
                succeed(&breaker).await
            };
        }
        assert_eq!(breaker.state(), BreakerState::Closed);
        // The 6th call, a success, brings the window to 6 calls with 3 failures, but only a
        // failure trips the breaker; the 7th, a failure, makes it 4 of 7.
        let _ = succeed(&breaker).await;
        assert_eq!(breaker.state(), BreakerState::Closed);
        let _ = fail(&breaker).await;
        assert_eq!(breaker.state(), BreakerState::Open);
    }

    #[tokio::test(start_paused = true)]
    async fn errors_that_are_not_the_dependencys_fault_do_not_count() {
        let breaker = CircuitBreaker::new("postgres", config());
        for _ in 0..10 {
            let result: Result<(), _> = breaker
                .call(
                    |err: &&str| *err == "unreachable",
                    || async { Err("not found") },
                )
                .await;
            assert!(matches!(result, Err(CallError::Failed("not found"))));
        }
        assert_eq!(breaker.state(), BreakerState::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn the_state_is_exported_as_a_gauge_and_transitions_are_counted() {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        let line = |name: &str| {
            handle
                .render()
                .lines()
                .find(|line| line.starts_with(name))
                .map(str::to_string)
        };
        let breaker = metrics::with_local_recorder(&recorder, || {
            let breaker = CircuitBreaker::new("gauged", config());
            for _ in 0..3 {
                breaker.record(false, true);
            }
            breaker
        });
        let state = "tars_circuit_breaker_state{dependency=\"gauged\"}";
        let opened = "tars_circuit_breaker_transitions_total{dependency=\"gauged\",to=\"open\"}";
        assert_eq!(line(state), Some(format!("{state} 1")));
        assert_eq!(line(opened), Some(format!("{opened} 1")));
        tokio::time::advance(Duration::from_secs(10)).await;
        metrics::with_local_recorder(&recorder, || {
            assert_eq!(breaker.state(), BreakerState::HalfOpen);
        });
        assert_eq!(line(state), Some(format!("{state} 2")));
        metrics::with_local_recorder(&recorder, || breaker.permit().unwrap().success());
        assert_eq!(line(state), Some(format!("{state} 0")));
    }
}
