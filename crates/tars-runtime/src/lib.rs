//! The runtime the long-running parts of T.A.R.S. share in fleet and embedded mode (seed 002):
//! the engine lifecycle and registry, the bounded priority task queue, circuit breakers and
//! retry with backoff around every dependency, and leader election for singleton duties.
//!
//! - [`engine`]: the [`Engine`] lifecycle trait and [`EngineRunner`], which drives one engine:
//!   its queue, its scheduled tasks (on the leader only), heartbeats, outcomes into
//!   `task_results` and the seed's metrics, graceful stop.
//! - [`queue`]: the bounded priority [`TaskQueue`] (backpressure, priorities, timeouts).
//! - [`registry`]: live components by heartbeat, in the store so every replica sees them.
//! - [`engines`]: the four engines — Intelligence, Performance, Optimization, Analysis.
//! - [`breaker`], [`retry`]: circuit breakers and retry with backoff and jitter around every
//!   dependency.
//! - [`leader`]: leader election (PostgreSQL advisory lock + fencing epoch) for singleton duties.

pub mod breaker;
pub mod engine;
pub mod engines;
pub mod leader;
pub mod queue;
pub mod registry;
pub mod retry;

pub use engine::{Engine, EngineRunner, EngineSettings, EngineStatus, Health, Schedule};
pub use queue::{QueueConfig, QueueError, TaskQueue};
pub use registry::{Component, Registry};

use serde_json::Value;
use std::future::Future;
use std::pin::Pin;
use uuid::Uuid;

/// A boxed, sendable future: what the engine trait's methods return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A task's priority (seed 002's `Priority`): higher runs first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Priority {
    Low = 0,
    Normal = 1,
    High = 2,
    Critical = 3,
}

impl Priority {
    pub fn as_i32(self) -> i32 {
        self as i32
    }
}

/// One unit of work for an engine.
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    pub id: Uuid,
    /// What to do, e.g. `scan` or `route`; the engine dispatches on it.
    pub kind: String,
    pub priority: Priority,
    pub payload: Value,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

impl Task {
    pub fn new(kind: &str, priority: Priority, payload: Value) -> Task {
        Task {
            id: Uuid::new_v4(),
            kind: kind.to_string(),
            priority,
            payload,
            created_at: chrono::Utc::now(),
        }
    }
}

/// What a task produced: its result, and a decision's confidence (in `0..=1`) when it made one.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskOutput {
    pub result: Value,
    pub confidence: Option<f64>,
}

impl TaskOutput {
    pub fn new(result: Value) -> TaskOutput {
        TaskOutput {
            result,
            confidence: None,
        }
    }
}

/// How a task ended (`task_results.status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TaskStatus {
    Completed,
    Failed,
    /// Cancelled after `task_timeout_seconds`.
    TimedOut,
    /// Refused: the queue was full (backpressure) or closed.
    Rejected,
}

impl TaskStatus {
    pub const ALL: [TaskStatus; 4] = [
        TaskStatus::Completed,
        TaskStatus::Failed,
        TaskStatus::TimedOut,
        TaskStatus::Rejected,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Completed => "completed",
            TaskStatus::Failed => "failed",
            TaskStatus::TimedOut => "timed_out",
            TaskStatus::Rejected => "rejected",
        }
    }
}
