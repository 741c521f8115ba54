//! The registry of live components: every engine and job worker writes a heartbeat into the
//! store's `components` table; a component that has missed `missed_heartbeats` of its own
//! heartbeat intervals is dead. Because the rows are in the store (SQLite embedded,
//! PostgreSQL in a fleet), every replica sees every worker and engine.

use crate::breaker::{CallError, CircuitBreaker};
use chrono::{DateTime, Utc};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use tars_store::{ComponentRow, Store, StoreError};
use uuid::Uuid;

/// A registered component as a reader sees it: its last heartbeat and whether it is alive.
#[derive(Debug, Clone, PartialEq)]
pub struct Component {
    pub row: ComponentRow,
    pub alive: bool,
    /// Seconds since its last heartbeat (0 when the clock says it is in the future).
    pub silent_seconds: f64,
}

impl Component {
    /// Running tasks over the most it may run, in `0..=1` (1 when it may run none).
    pub fn load(&self) -> f64 {
        let row = &self.row;
        if row.max_concurrent_tasks <= 0 {
            return 1.0;
        }
        (f64::from(row.running_tasks + row.queue_size) / f64::from(row.max_concurrent_tasks))
            .min(1.0)
    }

    pub fn has(&self, capability: &str) -> bool {
        self.row.capabilities.iter().any(|c| c == capability)
    }
}

/// Whether a component whose last heartbeat was at `last` is alive at `now`: it has not
/// missed `missed` heartbeats of `interval`, and did not say it stopped.
pub fn is_alive(
    last: DateTime<Utc>,
    interval: Duration,
    missed: u32,
    status: &str,
    now: DateTime<Utc>,
) -> bool {
    if status == "stopped" {
        return false;
    }
    let silent = (now - last).to_std().unwrap_or_default();
    silent <= interval * missed.max(1)
}

/// Reads and writes the registry.
#[derive(Debug, Clone)]
pub struct Registry {
    store: Store,
    missed_heartbeats: u32,
    /// The process's breaker for the store, when heartbeats should go through it.
    breaker: Option<Arc<CircuitBreaker>>,
}

impl Registry {
    /// `missed_heartbeats`: how many heartbeat intervals of silence make a component dead.
    pub fn new(store: Store, missed_heartbeats: u32) -> Registry {
        Registry {
            store,
            missed_heartbeats: missed_heartbeats.max(1),
            breaker: None,
        }
    }

    /// Heartbeats go through `breaker` (the process's breaker for its database): while the
    /// database is down they fail at once instead of each waiting for a connection, and count
    /// towards opening it like every other call.
    pub fn with_breaker(mut self, breaker: Arc<CircuitBreaker>) -> Registry {
        self.breaker = Some(breaker);
        self
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn missed_heartbeats(&self) -> u32 {
        self.missed_heartbeats
    }

    /// Writes a heartbeat now (through the breaker, if the registry has one).
    pub async fn beat(&self, component: &ComponentRow) -> Result<(), CallError<StoreError>> {
        let mut component = component.clone();
        component.last_heartbeat = Utc::now();
        let write = || self.store.heartbeat(&component);
        match &self.breaker {
            Some(breaker) => breaker.call(StoreError::is_transient, write).await,
            None => write().await.map_err(CallError::Failed),
        }
    }

    /// Every registered component with its liveness, as of now.
    pub async fn components(&self) -> Result<Vec<Component>, StoreError> {
        let now = Utc::now();
        Ok(self
            .store
            .components()
            .await?
            .into_iter()
            .map(|row| self.judge(row, now))
            .collect())
    }

    /// The live components of a kind (`engine`, `worker`).
    pub async fn live(&self, kind: &str) -> Result<Vec<Component>, StoreError> {
        Ok(self
            .components()
            .await?
            .into_iter()
            .filter(|c| c.alive && c.row.kind == kind)
            .collect())
    }

    /// Forgets components silent for longer than `age` (dead long ago); returns how many.
    pub async fn forget_older_than(&self, age: Duration) -> Result<u64, StoreError> {
        let age = chrono::Duration::from_std(age).unwrap_or(chrono::Duration::MAX);
        self.store.forget_components(Utc::now() - age).await
    }

    fn judge(&self, row: ComponentRow, now: DateTime<Utc>) -> Component {
        let interval = Duration::from_millis(row.heartbeat_interval_ms.max(1) as u64);
        let alive = is_alive(
            row.last_heartbeat,
            interval,
            self.missed_heartbeats,
            &row.status,
            now,
        );
        let silent_seconds = (now - row.last_heartbeat)
            .to_std()
            .unwrap_or_default()
            .as_secs_f64();
        Component {
            row,
            alive,
            silent_seconds,
        }
    }
}

/// A component row to heartbeat with: a new id, started now, no tasks yet.
pub fn new_component(
    kind: &str,
    name: &str,
    capabilities: Vec<String>,
    max_concurrent_tasks: usize,
    heartbeat_interval: Duration,
) -> ComponentRow {
    let now = Utc::now();
    ComponentRow {
        id: Uuid::new_v4(),
        kind: kind.to_string(),
        name: name.to_string(),
        instance: instance(),
        capabilities,
        status: "healthy".to_string(),
        running_tasks: 0,
        max_concurrent_tasks: max_concurrent_tasks.min(i32::MAX as usize) as i32,
        queue_size: 0,
        heartbeat_interval_ms: heartbeat_interval.as_millis().clamp(1, i64::MAX as u128) as i64,
        details: Value::Object(Default::default()),
        started_at: now,
        last_heartbeat: now,
    }
}

/// This process: `host:pid`.
pub fn instance() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_string())
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string());
    let mut instance = format!("{host}:{}", std::process::id());
    instance.truncate(200);
    instance
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_component_is_dead_after_missing_n_heartbeats_or_stopping() {
        let now = Utc::now();
        let interval = Duration::from_secs(10);
        let ago = |s: i64| now - chrono::Duration::seconds(s);
        assert!(is_alive(ago(0), interval, 3, "healthy", now));
        assert!(is_alive(ago(29), interval, 3, "degraded", now));
        assert!(is_alive(ago(30), interval, 3, "unhealthy", now));
        assert!(!is_alive(ago(31), interval, 3, "healthy", now));
        assert!(!is_alive(ago(11), interval, 1, "healthy", now));
        assert!(!is_alive(ago(0), interval, 3, "stopped", now));
        // A clock slightly ahead elsewhere is not a reason to call it dead.
        assert!(is_alive(
            now + chrono::Duration::seconds(2),
            interval,
            3,
            "healthy",
            now
        ));
    }

    #[tokio::test]
    async fn heartbeats_go_through_the_breaker_and_fail_fast_while_it_is_open() {
        let store = Store::connect("sqlite::memory:").await.unwrap();
        let config = crate::breaker::BreakerConfig {
            consecutive_failures: 2,
            ..Default::default()
        };
        let breaker = Arc::new(CircuitBreaker::new("registry-test", config));
        let registry = Registry::new(store, 2).with_breaker(breaker.clone());
        let row = new_component("worker", "w", vec![], 1, Duration::from_secs(1));
        registry.beat(&row).await.unwrap();
        assert_eq!(registry.components().await.unwrap().len(), 1);

        // The database failed twice for other callers: the breaker is open.
        for _ in 0..2 {
            let failing = || async { Err::<(), &str>("unreachable") };
            let _ = breaker.call(|_| true, failing).await;
        }
        let mut stopped = row.clone();
        stopped.status = "stopped".into();
        let err = registry.beat(&stopped).await.unwrap_err();
        assert!(matches!(err, CallError::Open(_)), "{err}");
        assert!(
            err.to_string().contains("registry-test is unavailable"),
            "{err}"
        );
        let rows = registry.components().await.unwrap();
        assert_eq!(
            rows[0].row.status, row.status,
            "the refused beat wrote nothing"
        );
    }

    #[tokio::test]
    async fn the_registry_expires_a_component_that_stops_beating() {
        let store = Store::connect("sqlite::memory:").await.unwrap();
        let registry = Registry::new(store, 2);
        let mut fast = new_component(
            "worker",
            "eval-worker",
            vec!["evaluate".into()],
            4,
            Duration::from_millis(40),
        );
        fast.running_tasks = 1;
        fast.queue_size = 1;
        let slow = new_component(
            "engine",
            "analysis",
            vec!["analysis".into()],
            2,
            Duration::from_secs(60),
        );
        registry.beat(&fast).await.unwrap();
        registry.beat(&slow).await.unwrap();
        let live = registry.live("worker").await.unwrap();
        assert_eq!(live.len(), 1);
        assert_eq!(live[0].row.id, fast.id);
        assert_eq!(live[0].load(), 0.5);
        assert!(live[0].has("evaluate") && !live[0].has("train"));

        // Two missed 40 ms heartbeats later the worker is dead; the engine, beating every
        // minute, is not.
        tokio::time::sleep(Duration::from_millis(150)).await;
        let all = registry.components().await.unwrap();
        let by_name = |name: &str| all.iter().find(|c| c.row.name == name).unwrap();
        assert!(!by_name("eval-worker").alive);
        assert!(by_name("eval-worker").silent_seconds >= 0.15);
        assert!(by_name("analysis").alive);
        assert!(registry.live("worker").await.unwrap().is_empty());

        // A new heartbeat brings it back; a stopped one is dead at once.
        registry.beat(&fast).await.unwrap();
        assert_eq!(registry.live("worker").await.unwrap().len(), 1);
        fast.status = "stopped".into();
        registry.beat(&fast).await.unwrap();
        assert!(registry.live("worker").await.unwrap().is_empty());

        assert_eq!(
            registry
                .forget_older_than(Duration::from_secs(3_600))
                .await
                .unwrap(),
            0
        );
        assert_eq!(registry.forget_older_than(Duration::ZERO).await.unwrap(), 2);
    }
}
