//! The four engines of seed 002 on the runtime, each doing its work on the store's data:
//!
//! - [`analysis::Analysis`]: validation rules and insights on the evaluation history — recent
//!   evaluations drifting more than `drift_threshold` from the baseline, baselines not updated
//!   for `baseline_stale_days`.
//! - [`optimization::Optimization`]: rules that act — start an AutoML study for a stale
//!   baseline, pause HyperSync auto-apply after repeated regressions.
//! - [`performance::Performance`]: metrics against thresholds — task and evaluation failure
//!   rates, p95 evaluation duration, queue depth, dead components — raised as alerts
//!   (`findings`) and the `tars_alerts_firing{rule}` gauge.
//! - [`intelligence::Intelligence`]: routes a task to a live worker by capability, load and
//!   health, and records the decision with its confidence.
//!
//! What they need from the service layer (starting a study) comes in through [`Actions`], one
//! small function per dependency, so a circuit breaker can wrap each.

pub mod analysis;
pub mod intelligence;
pub mod optimization;
pub mod performance;

use crate::{BoxFuture, Priority, Schedule, Task, TaskOutput};
use chrono::{DateTime, Utc};
use serde_json::Value;
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;
use tars_store::{BaselineRow, NewFinding, Store, StoreError};
use uuid::Uuid;

/// What the engines ask of the service layer.
pub trait Actions: Send + Sync + 'static {
    /// Starts an AutoML study of `agent_type` on `environment` with `n_trials` trials; returns
    /// its id.
    fn start_study(
        &self,
        agent_type: String,
        environment: String,
        n_trials: u32,
        actor: &'static str,
    ) -> BoxFuture<'static, Result<Uuid, String>>;
}

/// An (agent type, environment) pair as a finding's subject: `PPO/CartPole-v1`.
pub fn subject(agent_type: &str, environment: &str) -> String {
    format!("{agent_type}/{environment}")
}

/// The rank-1 baseline of each pair, with the last time any row of the pair changed.
pub fn current_baselines(rows: &[BaselineRow]) -> Vec<(BaselineRow, DateTime<Utc>)> {
    let mut out: Vec<(BaselineRow, DateTime<Utc>)> = Vec::new();
    for row in rows {
        let changed = row.updated_at.max(row.created_at);
        match out
            .iter_mut()
            .find(|(b, _)| b.agent_type == row.agent_type && b.environment == row.environment)
        {
            Some((best, last)) => {
                *last = (*last).max(changed);
                if row.rank < best.rank {
                    *best = row.clone();
                }
            }
            None => out.push((row.clone(), changed)),
        }
    }
    out
}

/// Raises every finding of one rule and resolves the rule's open findings that are not among
/// them; returns the findings newly opened.
pub async fn publish(
    store: &Store,
    kind: &str,
    rule: &str,
    found: &[NewFinding],
) -> Result<Vec<tars_store::FindingRow>, StoreError> {
    let mut opened = Vec::new();
    for finding in found {
        let (row, new) = store.raise_finding(finding).await?;
        if new {
            tracing::warn!(kind, rule, subject = %row.subject, message = %row.message, "finding raised");
            opened.push(row);
        }
    }
    let subjects: Vec<String> = found.iter().map(|f| f.subject.clone()).collect();
    for row in store.resolve_findings(kind, rule, &subjects).await? {
        tracing::info!(kind, rule, subject = %row.subject, "finding resolved");
    }
    Ok(opened)
}

/// A finding of `kind` for `rule` about `subject`.
pub fn finding(
    kind: &str,
    rule: &str,
    subject: String,
    severity: &str,
    message: String,
    details: Value,
) -> NewFinding {
    NewFinding {
        kind: kind.to_string(),
        rule: rule.to_string(),
        subject,
        severity: severity.to_string(),
        message,
        details,
    }
}

/// An engine's health from its last scan: the error of a failed scan degrades it.
#[derive(Default)]
pub struct LastScan(Mutex<Option<String>>);

impl LastScan {
    pub fn record<T>(&self, result: &Result<T, String>) {
        *self.0.lock().expect("scan lock") = result.as_ref().err().cloned();
    }

    pub fn health(&self) -> crate::Health {
        match self.0.lock().expect("scan lock").as_ref() {
            None => crate::Health::Healthy,
            Some(error) => crate::Health::Degraded(format!("the last scan failed: {error}")),
        }
    }
}

/// The one schedule of a scanning engine (Analysis, Optimization, Performance): a `scan`
/// task every `every`.
pub fn scan_schedule(every: Duration, priority: Priority) -> Vec<Schedule> {
    vec![Schedule {
        kind: "scan",
        every,
        priority,
        payload: serde_json::json!({}),
    }]
}

/// Handles a scanning engine's task: `scan` runs `scan` (a future is lazy, so it runs only
/// then); any other kind is refused, naming the engine and the valid kind.
pub async fn scan_task(
    engine: &str,
    task: Task,
    scan: impl Future<Output = Result<Value, String>>,
) -> Result<TaskOutput, String> {
    match task.kind.as_str() {
        "scan" => scan.await.map(TaskOutput::new),
        other => Err(format!(
            "the {engine} engine has no task '{other}'; valid: scan"
        )),
    }
}
