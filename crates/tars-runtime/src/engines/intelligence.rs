//! The Intelligence engine: routes a task to a live worker by capability, load and health,
//! and records each decision with its confidence (in `task_results`, through the runner).
//!
//! A `route` task's payload names the capability it needs (`{"capability": "evaluate"}`).
//! The candidates are the registry's live workers with that capability (a worker that missed
//! its heartbeats is dead and drops out; an unhealthy one is skipped). Each gets a score:
//!
//! `score = health × (1 − load) × freshness`
//!
//! with health 1 (healthy) or 0.5 (degraded), load = (running + queued) / max concurrent
//! (capped at 1), and freshness = 1 − silence / (heartbeat interval × missed heartbeats): a
//! worker heard from just now counts fully, one about to be declared dead hardly at all. The
//! highest score wins (ties: the least loaded, then the oldest registration), and the
//! decision's confidence is the winner's score: how sure the engine is that the worker can
//! take the task now.

use crate::registry::{Component, Registry};
use crate::{BoxFuture, Engine, Schedule, Task, TaskOutput};
use serde_json::{Value, json};
use std::sync::Arc;

pub struct Intelligence {
    registry: Registry,
}

/// One candidate's score.
#[derive(Debug, Clone, PartialEq)]
pub struct Scored {
    pub component: Component,
    pub health: f64,
    pub load: f64,
    pub freshness: f64,
    pub score: f64,
}

impl Intelligence {
    pub fn new(registry: Registry) -> Arc<Intelligence> {
        Arc::new(Intelligence { registry })
    }

    /// Picks a worker for `capability`: the decision (as stored) and its confidence.
    pub async fn route(&self, capability: &str) -> Result<TaskOutput, String> {
        let components = self
            .registry
            .components()
            .await
            .map_err(|e| format!("reading the registry failed: {e}"))?;
        let ranked = rank(&components, capability, self.registry.missed_heartbeats());
        let Some(best) = ranked.first() else {
            let live: Vec<String> = components
                .iter()
                .filter(|c| c.alive && c.row.kind == "worker")
                .map(|c| format!("{}@{} {:?}", c.row.name, c.row.instance, c.row.capabilities))
                .collect();
            // A label names a capability some registered component has, never what a caller
            // made up (one series per request otherwise).
            let registered = components
                .iter()
                .any(|c| c.row.capabilities.iter().any(|known| known == capability));
            let label = if registered { capability } else { "other" };
            metrics::counter!("agent_routing_decisions_total", "capability" => label.to_string(), "outcome" => "unroutable")
                .increment(1);
            return Err(format!(
                "no live, healthy worker has capability '{capability}'; live workers: {}",
                if live.is_empty() {
                    "none".to_string()
                } else {
                    live.join(", ")
                }
            ));
        };
        metrics::counter!("agent_routing_decisions_total", "capability" => capability.to_string(), "outcome" => "routed")
            .increment(1);
        metrics::histogram!("agent_routing_confidence").record(best.score);
        let row = &best.component.row;
        Ok(TaskOutput {
            result: json!({
                "capability": capability,
                "worker": {"id": row.id, "name": row.name, "instance": row.instance},
                "score": best.score,
                "candidates": ranked.iter().map(candidate_json).collect::<Vec<_>>(),
            }),
            confidence: Some(best.score),
        })
    }
}

fn candidate_json(scored: &Scored) -> Value {
    let row = &scored.component.row;
    json!({"id": row.id, "name": row.name, "instance": row.instance, "status": row.status,
           "health": scored.health, "load": scored.load, "freshness": scored.freshness,
           "score": scored.score})
}

/// The live, not unhealthy workers with `capability`, best first.
pub fn rank(components: &[Component], capability: &str, missed: u32) -> Vec<Scored> {
    let mut scored: Vec<Scored> = components
        .iter()
        .filter(|c| c.alive && c.row.kind == "worker" && c.has(capability))
        .filter_map(|c| {
            let health = match c.row.status.as_str() {
                "healthy" => 1.0,
                "degraded" => 0.5,
                _ => return None,
            };
            let horizon = c.row.heartbeat_interval_ms as f64 / 1000.0 * f64::from(missed.max(1));
            let freshness = (1.0 - c.silent_seconds / horizon).clamp(0.0, 1.0);
            let load = c.load();
            Some(Scored {
                component: c.clone(),
                health,
                load,
                freshness,
                score: health * (1.0 - load) * freshness,
            })
        })
        .collect();
    scored.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then(a.load.total_cmp(&b.load))
            .then(a.component.row.started_at.cmp(&b.component.row.started_at))
    });
    scored
}

impl Engine for Intelligence {
    fn name(&self) -> &'static str {
        "intelligence"
    }

    fn capabilities(&self) -> Vec<String> {
        vec!["routing".into()]
    }

    /// It acts on request only.
    fn subscriptions(&self) -> Vec<Schedule> {
        Vec::new()
    }

    fn handle_task(self: Arc<Self>, task: Task) -> BoxFuture<'static, Result<TaskOutput, String>> {
        Box::pin(async move {
            match task.kind.as_str() {
                "route" => {
                    let capability = task.payload["capability"].as_str().ok_or_else(|| {
                        "a route task needs a capability, e.g. {\"capability\": \"evaluate\"}"
                            .to_string()
                    })?;
                    self.route(capability).await
                }
                other => Err(format!(
                    "the intelligence engine has no task '{other}'; valid: route"
                )),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::new_component;
    use std::time::Duration;
    use tars_store::Store;

    fn worker(
        name: &str,
        running: i32,
        status: &str,
        interval_ms: u64,
    ) -> tars_store::ComponentRow {
        let mut row = new_component(
            "worker",
            name,
            vec!["evaluate".into()],
            4,
            Duration::from_millis(interval_ms),
        );
        row.running_tasks = running;
        row.status = status.into();
        row
    }

    #[tokio::test]
    async fn routes_to_the_least_loaded_healthy_live_worker() {
        let store = Store::connect("sqlite::memory:").await.unwrap();
        let registry = Registry::new(store, 3);
        let engine = Intelligence::new(registry.clone());
        let err = engine.route("evaluate").await.unwrap_err();
        assert_eq!(
            err,
            "no live, healthy worker has capability 'evaluate'; live workers: none"
        );

        let busy = worker("busy", 3, "healthy", 60_000);
        let idle = worker("idle", 0, "healthy", 60_000);
        let sick = worker("sick", 0, "unhealthy", 60_000);
        let slow = worker("slow", 0, "degraded", 60_000);
        let dying = worker("dying", 0, "healthy", 20);
        for row in [&busy, &idle, &sick, &slow, &dying] {
            registry.beat(row).await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        let decision = engine.route("evaluate").await.unwrap();
        assert_eq!(decision.result["worker"]["name"], "idle");
        let confidence = decision.confidence.unwrap();
        assert!(confidence > 0.99 && confidence <= 1.0, "{confidence}");
        let order: Vec<_> = decision.result["candidates"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_string())
            .collect();
        // The dead worker (missed 3 × 20 ms) and the unhealthy one are not candidates.
        assert_eq!(order, ["idle", "slow", "busy"]);

        // The idle worker dies (stops beating and says so): routing moves on.
        let mut gone = idle.clone();
        gone.status = "stopped".into();
        registry.beat(&gone).await.unwrap();
        let decision = engine.route("evaluate").await.unwrap();
        assert_eq!(decision.result["worker"]["name"], "slow");
        assert!((decision.confidence.unwrap() - 0.5).abs() < 0.01);

        let err = engine.route("train").await.unwrap_err();
        assert!(
            err.starts_with("no live, healthy worker has capability 'train'"),
            "{err}"
        );
        assert!(err.contains("slow@"), "{err}");
    }
}
