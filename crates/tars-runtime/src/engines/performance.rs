//! The Performance engine: watches metrics against thresholds and raises alerts.
//!
//! Every scan computes, over the last `alert_window_seconds` (the store's data, so every
//! replica's work counts), and raises an alert (`findings`, kind `alert`) per rule and subject
//! that crosses its threshold — the seeds' alert names:
//! - `TaskFailureRate` (per engine): failed + timed-out share of its finished tasks;
//! - `HighTaskQueueDepth` (per engine instance): its queue, from its heartbeat;
//! - `AgentDown` (per component): a registered engine or worker that missed its heartbeats;
//! - `HighEvaluationLatency`: p95 duration of the evaluation runs stored in the window;
//! - `EvaluationFailureRateHigh`: failed share of the evaluation jobs finished in the window.
//!
//! An alert stays open while its condition holds and is resolved when it clears;
//! `tars_alerts_firing{rule}` is the number open per rule.

use super::{LastScan, finding, publish};
use crate::registry::Registry;
use crate::{BoxFuture, Engine, Health, Priority, Schedule, Task, TaskOutput};
use chrono::Utc;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tars_store::{NewFinding, Store, StoreError};

/// The rules, in the order they are evaluated.
pub const RULES: [&str; 5] = [
    "TaskFailureRate",
    "HighTaskQueueDepth",
    "AgentDown",
    "HighEvaluationLatency",
    "EvaluationFailureRateHigh",
];
/// Components silent this long are forgotten by the registry.
pub const FORGET_AFTER: Duration = Duration::from_secs(86_400);
/// The evaluation runs one scan reads for the latency rule (newest first).
pub const RUNS_SCANNED: i64 = 1_000;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PerformanceConfig {
    pub every: Duration,
    pub window: Duration,
    pub task_failure_rate: f64,
    pub queue_size: usize,
    pub eval_p95_seconds: f64,
    pub eval_failure_rate: f64,
}

pub struct Performance {
    store: Store,
    registry: Registry,
    config: PerformanceConfig,
    last: LastScan,
}

impl Performance {
    pub fn new(store: Store, registry: Registry, config: PerformanceConfig) -> Arc<Performance> {
        for rule in RULES {
            metrics::gauge!("tars_alerts_firing", "rule" => rule).set(0.0);
        }
        Arc::new(Performance {
            store,
            registry,
            config,
            last: LastScan::default(),
        })
    }

    pub async fn scan(&self) -> Result<Value, String> {
        let result = self.try_scan().await.map_err(|e| e.to_string());
        self.last.record(&result);
        result
    }

    async fn try_scan(&self) -> Result<Value, StoreError> {
        let found = self.evaluate().await?;
        let mut firing = BTreeMap::new();
        for rule in RULES {
            let of_rule: Vec<NewFinding> =
                found.iter().filter(|f| f.rule == rule).cloned().collect();
            publish(&self.store, "alert", rule, &of_rule).await?;
            metrics::gauge!("tars_alerts_firing", "rule" => rule).set(of_rule.len() as f64);
            firing.insert(
                rule,
                of_rule
                    .iter()
                    .map(|f| f.subject.clone())
                    .collect::<Vec<_>>(),
            );
        }
        self.registry.forget_older_than(FORGET_AFTER).await?;
        Ok(json!({ "firing": firing }))
    }

    /// Every rule's alerts as of now.
    async fn evaluate(&self) -> Result<Vec<NewFinding>, StoreError> {
        let config = &self.config;
        let since = Utc::now() - chrono::Duration::from_std(config.window).unwrap_or_default();
        let window = format!("{}s", config.window.as_secs());
        let mut found = Vec::new();

        let mut tasks: BTreeMap<String, (i64, i64)> = BTreeMap::new();
        for (engine, status, n) in self.store.task_counts(since).await? {
            let entry = tasks.entry(engine).or_default();
            match status.as_str() {
                "failed" | "timed_out" => {
                    entry.0 += n;
                    entry.1 += n;
                }
                "completed" => entry.1 += n,
                _ => {}
            }
        }
        for (engine, (bad, finished)) in tasks {
            let rate = bad as f64 / finished.max(1) as f64;
            if finished > 0 && rate > config.task_failure_rate {
                found.push(finding(
                    "alert",
                    "TaskFailureRate",
                    engine.clone(),
                    "warning",
                    format!(
                        "{:.1}% of {engine}'s tasks failed or timed out in the last {window} \
                         ({bad} of {finished}; threshold {:.1}%)",
                        rate * 100.0,
                        config.task_failure_rate * 100.0
                    ),
                    json!({"rate": rate, "failed": bad, "finished": finished,
                           "threshold": config.task_failure_rate}),
                ));
            }
        }

        for component in self.registry.components().await? {
            let row = &component.row;
            let who = format!("{}@{}", row.name, row.instance);
            if !component.alive && row.status != "stopped" {
                found.push(finding(
                    "alert",
                    "AgentDown",
                    format!("{} {who}", row.kind),
                    "critical",
                    format!(
                        "{} {who} has sent no heartbeat for {:.0} s (every {} ms expected)",
                        row.kind, component.silent_seconds, row.heartbeat_interval_ms
                    ),
                    json!({"component_id": row.id, "kind": row.kind, "name": row.name,
                           "instance": row.instance, "silent_seconds": component.silent_seconds}),
                ));
            }
            if component.alive && row.queue_size as usize > config.queue_size {
                found.push(finding(
                    "alert",
                    "HighTaskQueueDepth",
                    who.clone(),
                    "warning",
                    format!(
                        "{who} has {} tasks waiting (threshold {})",
                        row.queue_size, config.queue_size
                    ),
                    json!({"queue_size": row.queue_size, "threshold": config.queue_size}),
                ));
            }
        }

        let mut durations: Vec<f64> = self
            .store
            .runs(RUNS_SCANNED)
            .await?
            .into_iter()
            .filter(|run| run.created_at >= since)
            .map(|run| run.duration_seconds)
            .collect();
        if let Some(p95) = p95(&mut durations)
            && p95 > config.eval_p95_seconds
        {
            found.push(finding(
                "alert",
                "HighEvaluationLatency",
                "evaluations".into(),
                "warning",
                format!(
                    "p95 evaluation duration in the last {window} is {p95:.1} s over {} runs \
                     (threshold {:.1} s)",
                    durations.len(),
                    config.eval_p95_seconds
                ),
                json!({"p95_seconds": p95, "runs": durations.len(),
                       "threshold": config.eval_p95_seconds}),
            ));
        }

        let jobs: BTreeMap<String, i64> = self.store.job_counts(since).await?.into_iter().collect();
        let failed = jobs.get("failed").copied().unwrap_or(0);
        let finished = failed + jobs.get("succeeded").copied().unwrap_or(0);
        let rate = failed as f64 / finished.max(1) as f64;
        if finished > 0 && rate > config.eval_failure_rate {
            found.push(finding(
                "alert",
                "EvaluationFailureRateHigh",
                "evaluations".into(),
                "critical",
                format!(
                    "{:.1}% of the evaluation jobs finished in the last {window} failed \
                     ({failed} of {finished}; threshold {:.1}%)",
                    rate * 100.0,
                    config.eval_failure_rate * 100.0
                ),
                json!({"rate": rate, "failed": failed, "finished": finished,
                       "threshold": config.eval_failure_rate}),
            ));
        }
        Ok(found)
    }
}

/// The 95th percentile (nearest rank) of `values`; `None` when empty.
pub fn p95(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let rank = ((0.95 * values.len() as f64).ceil() as usize).clamp(1, values.len());
    Some(values[rank - 1])
}

impl Engine for Performance {
    fn name(&self) -> &'static str {
        "performance"
    }

    fn capabilities(&self) -> Vec<String> {
        vec!["monitoring".into(), "alerting".into()]
    }

    fn subscriptions(&self) -> Vec<Schedule> {
        super::scan_schedule(self.config.every, Priority::High)
    }

    fn handle_task(self: Arc<Self>, task: Task) -> BoxFuture<'static, Result<TaskOutput, String>> {
        Box::pin(async move { super::scan_task("performance", task, self.scan()).await })
    }

    fn health(&self) -> Health {
        self.last.health()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::new_component;
    use tars_store::TaskResultRow;
    use uuid::Uuid;

    #[test]
    fn p95_is_the_nearest_rank() {
        assert_eq!(p95(&mut []), None);
        assert_eq!(p95(&mut [3.0]), Some(3.0));
        let mut values: Vec<f64> = (1..=100).rev().map(f64::from).collect();
        assert_eq!(p95(&mut values), Some(95.0));
        assert_eq!(p95(&mut [1.0, 2.0, 300.0]), Some(300.0));
    }

    fn task(engine: &str, status: &str) -> TaskResultRow {
        let now = Utc::now();
        TaskResultRow {
            id: Uuid::new_v4(),
            engine: engine.into(),
            component_id: None,
            task_type: "scan".into(),
            priority: 1,
            status: status.into(),
            duration_seconds: Some(0.1),
            error: None,
            result: None,
            confidence: None,
            created_at: now,
            started_at: Some(now),
            finished_at: now,
        }
    }

    #[tokio::test]
    async fn thresholds_crossed_raise_alerts_and_clear_when_they_recover() {
        let store = Store::connect("sqlite::memory:").await.unwrap();
        let registry = Registry::new(store.clone(), 2);
        let engine = Performance::new(
            store.clone(),
            registry.clone(),
            PerformanceConfig {
                every: Duration::from_secs(60),
                window: Duration::from_secs(300),
                task_failure_rate: 0.05,
                queue_size: 10,
                eval_p95_seconds: 300.0,
                eval_failure_rate: 0.05,
            },
        );
        // analysis: 1 failure in 10 (10% > 5%); optimization: 1 in 40 (2.5%).
        for n in 0..10 {
            let status = if n == 0 { "timed_out" } else { "completed" };
            store
                .insert_task_result(&task("analysis", status))
                .await
                .unwrap();
        }
        for n in 0..40 {
            let status = if n == 0 { "failed" } else { "completed" };
            store
                .insert_task_result(&task("optimization", status))
                .await
                .unwrap();
        }
        let mut deep = new_component("engine", "intelligence", vec![], 4, Duration::from_secs(60));
        deep.queue_size = 11;
        registry.beat(&deep).await.unwrap();
        let gone = new_component(
            "worker",
            "eval-worker",
            vec![],
            1,
            Duration::from_millis(10),
        );
        registry.beat(&gone).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;

        let scan = engine.scan().await.unwrap();
        assert_eq!(scan["firing"]["TaskFailureRate"], json!(["analysis"]));
        let instance = crate::registry::instance();
        assert_eq!(
            scan["firing"]["HighTaskQueueDepth"],
            json!([format!("intelligence@{instance}")])
        );
        assert_eq!(
            scan["firing"]["AgentDown"],
            json!([format!("worker eval-worker@{instance}")])
        );
        assert_eq!(scan["firing"]["HighEvaluationLatency"], json!([]));
        let alerts = store.findings("alert", true, 10).await.unwrap();
        assert_eq!(alerts.len(), 3);
        let failure = alerts.iter().find(|a| a.rule == "TaskFailureRate").unwrap();
        assert!(
            failure.message.starts_with(
                "10.0% of analysis's tasks failed or timed out in the last 300s (1 of 10"
            ),
            "{}",
            failure.message
        );

        // The queue drains and the worker stops cleanly: those alerts resolve.
        deep.queue_size = 0;
        registry.beat(&deep).await.unwrap();
        let mut stopped = gone.clone();
        stopped.status = "stopped".into();
        registry.beat(&stopped).await.unwrap();
        let scan = engine.scan().await.unwrap();
        assert_eq!(scan["firing"]["HighTaskQueueDepth"], json!([]));
        assert_eq!(scan["firing"]["AgentDown"], json!([]));
        let open = store.findings("alert", true, 10).await.unwrap();
        assert_eq!(open.len(), 1);
        assert_eq!(store.findings("alert", false, 10).await.unwrap().len(), 3);
    }
}
