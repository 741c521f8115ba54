//! The `# HELP` line and type of every metric T.A.R.S. exports, described once when the
//! Prometheus recorder is installed, so that `/metrics` passes `promtool check metrics`. The
//! table is checked against the source: a metric recorded anywhere in the workspace and missing
//! here (or listed here and recorded nowhere) fails a unit test.

/// How a metric is recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// Every metric: name, kind, help.
pub const METRICS: &[(&str, Kind, &str)] = &[
    // Agent engines (tars-runtime) and the fleet's components.
    (
        "agent_queue_size",
        Kind::Gauge,
        "Tasks waiting in an agent engine's queue.",
    ),
    (
        "agent_running_tasks",
        Kind::Gauge,
        "Tasks an agent engine is running now.",
    ),
    (
        "agent_tasks_total",
        Kind::Counter,
        "Agent engine tasks finished, by engine and status.",
    ),
    (
        "agent_task_duration_seconds",
        Kind::Histogram,
        "Duration of agent engine tasks, in seconds.",
    ),
    (
        "agent_up",
        Kind::Gauge,
        "1 when a registered component (engine, worker, API replica) sends heartbeats, else 0.",
    ),
    (
        "agent_routing_decisions_total",
        Kind::Counter,
        "Routing decisions of the Intelligence engine, by capability and outcome.",
    ),
    (
        "agent_routing_confidence",
        Kind::Histogram,
        "Confidence of the Intelligence engine's routing decisions (0 to 1).",
    ),
    (
        "tars_alerts_firing",
        Kind::Gauge,
        "Open alerts of the Performance engine, by rule.",
    ),
    (
        "tars_optimization_actions_total",
        Kind::Counter,
        "Actions the Optimization engine took, by rule.",
    ),
    (
        "tars_baseline_age_seconds",
        Kind::Gauge,
        "Age of the rank-1 baseline of an agent type and environment, in seconds.",
    ),
    (
        "tars_baseline_drift_ratio",
        Kind::Gauge,
        "Relative drift of recent evaluations from the rank-1 baseline (0.1 = 10 %).",
    ),
    // Evaluation.
    (
        "tars_eval_evaluations_total",
        Kind::Counter,
        "Evaluations of an agent configuration on one environment, by agent type, environment and status.",
    ),
    (
        "tars_eval_episodes_total",
        Kind::Counter,
        "Evaluation episodes run, by agent type and environment.",
    ),
    (
        "tars_eval_duration_seconds",
        Kind::Histogram,
        "Duration of one environment's evaluation (training included), in seconds.",
    ),
    (
        "tars_eval_regression_detected_total",
        Kind::Counter,
        "Regressions found against the baseline, by agent type, environment and severity.",
    ),
    (
        "tars_nash_stability",
        Kind::Gauge,
        "Stability of the last Nash resolution for an agent type (0 to 1).",
    ),
    (
        "tars_nash_conflict",
        Kind::Gauge,
        "Conflict between proposals in the last Nash resolution for an agent type (0 to 1).",
    ),
    (
        "tars_cpu_rejections_total",
        Kind::Counter,
        "CPU-heavy requests refused with 503 because every cpu_slots slot was busy.",
    ),
    // Jobs.
    (
        "tars_jobs_total",
        Kind::Counter,
        "Jobs ended, by kind and status.",
    ),
    (
        "tars_jobs_queue_depth",
        Kind::Gauge,
        "Jobs waiting in the queue.",
    ),
    (
        "tars_jobs_retried_total",
        Kind::Counter,
        "Jobs given back to the queue after a transient failure.",
    ),
    (
        "tars_jobs_idempotent_replays_total",
        Kind::Counter,
        "Submissions answered with the earlier job of their Idempotency-Key, by where it was found.",
    ),
    (
        "tars_jobs_messages_refused_total",
        Kind::Counter,
        "Job queue messages refused as malformed or unknown, by reason.",
    ),
    (
        "tars_automl_trials_total",
        Kind::Counter,
        "AutoML trials ended, by state.",
    ),
    // HyperSync.
    (
        "tars_hypersync_config_version",
        Kind::Gauge,
        "Version of the configuration an agent type serves on this replica.",
    ),
    (
        "tars_hypersync_proposals_total",
        Kind::Counter,
        "Proposals that reached a status, by status.",
    ),
    (
        "tars_hypersync_reload_seconds",
        Kind::Histogram,
        "Time to swap a new configuration into the live agents, in seconds.",
    ),
    (
        "tars_hypersync_rollbacks_total",
        Kind::Counter,
        "Rollbacks, by agent type and trigger (automatic or manual).",
    ),
    // HTTP.
    (
        "tars_http_requests_total",
        Kind::Counter,
        "HTTP requests answered, by method, route and status.",
    ),
    (
        "tars_http_request_duration_seconds",
        Kind::Histogram,
        "Duration of HTTP requests, in seconds, by method and route.",
    ),
    (
        "tars_http_rate_limited_total",
        Kind::Counter,
        "Requests refused with 429 by the rate limits, by scope.",
    ),
    (
        "tars_http_connections_open",
        Kind::Gauge,
        "HTTP connections open now.",
    ),
    (
        "tars_http_connections_rejected_total",
        Kind::Counter,
        "Connections closed at once because max_connections were open.",
    ),
    // Dependencies and the fleet.
    (
        "tars_db_pool_connections",
        Kind::Gauge,
        "Database connections open in the pool.",
    ),
    (
        "tars_db_pool_max_connections",
        Kind::Gauge,
        "Most database connections the pool opens.",
    ),
    (
        "tars_redis_up",
        Kind::Gauge,
        "1 when Redis answers, else 0 (fleet mode).",
    ),
    (
        "tars_redis_errors_total",
        Kind::Counter,
        "Failed Redis operations, by operation.",
    ),
    (
        "tars_circuit_breaker_state",
        Kind::Gauge,
        "State of a dependency's circuit breaker: 0 closed, 1 open, 2 half-open.",
    ),
    (
        "tars_circuit_breaker_transitions_total",
        Kind::Counter,
        "Circuit breaker state changes, by dependency and new state.",
    ),
    (
        "tars_leader",
        Kind::Gauge,
        "1 when this process holds the leadership of a duty, else 0.",
    ),
    (
        "tars_leader_epoch",
        Kind::Gauge,
        "Epoch of the duty's leadership this process holds (0 when it holds none).",
    ),
    (
        "tars_events_published_total",
        Kind::Counter,
        "Fleet events published on NATS, by kind.",
    ),
    (
        "tars_events_publish_failed_total",
        Kind::Counter,
        "Fleet events that could not be published, by kind.",
    ),
    (
        "tars_events_applied_total",
        Kind::Counter,
        "Fleet events applied by this process, by kind.",
    ),
    (
        "tars_events_ignored_total",
        Kind::Counter,
        "Fleet events older than what this process applied, by kind.",
    ),
    (
        "tars_events_refused_total",
        Kind::Counter,
        "Fleet event messages refused as malformed, by reason.",
    ),
    (
        "tars_events_applied_sequence",
        Kind::Gauge,
        "Stream sequence of the last fleet event this process applied.",
    ),
];

/// Describes every metric to the installed recorder.
pub fn describe() {
    for &(name, kind, help) in METRICS {
        match kind {
            Kind::Counter => metrics::describe_counter!(name, help),
            Kind::Gauge => metrics::describe_gauge!(name, help),
            Kind::Histogram => metrics::describe_histogram!(name, help),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::path::Path;

    /// `counter!("name"`, `gauge!("name"` and `histogram!("name"` in every source file.
    fn recorded(dir: &Path, found: &mut BTreeMap<String, Kind>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                recorded(&path, found);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") || path.ends_with("metric_help.rs") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            for (macro_name, kind) in [
                ("metrics::counter!(", Kind::Counter),
                ("metrics::gauge!(", Kind::Gauge),
                ("metrics::histogram!(", Kind::Histogram),
            ] {
                for (at, _) in text.match_indices(macro_name) {
                    let rest = text[at + macro_name.len()..].trim_start();
                    let Some(rest) = rest.strip_prefix('"') else {
                        panic!("{}: a metric name that is not a literal", path.display());
                    };
                    let name = &rest[..rest.find('"').unwrap()];
                    let earlier = found.insert(name.to_string(), kind);
                    assert!(
                        earlier.is_none_or(|k| k == kind),
                        "{name} is recorded as two kinds"
                    );
                }
            }
        }
    }

    #[test]
    fn every_recorded_metric_is_described_once_with_its_kind() {
        let crates = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut found = BTreeMap::new();
        for entry in std::fs::read_dir(&crates).unwrap() {
            let src = entry.unwrap().path().join("src");
            if src.is_dir() {
                recorded(&src, &mut found);
            }
        }
        let described: BTreeMap<String, Kind> = METRICS
            .iter()
            .map(|&(name, kind, _)| (name.to_string(), kind))
            .collect();
        assert_eq!(described.len(), METRICS.len(), "a metric is listed twice");
        assert_eq!(found, described);
        for &(name, _, help) in METRICS {
            assert!(help.ends_with('.') && help.len() > 20, "{name}: {help}");
        }
    }
}
