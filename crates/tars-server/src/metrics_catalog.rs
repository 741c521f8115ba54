//! Every metric T.A.R.S. exports: its `# HELP` line and type, described once when the
//! Prometheus recorder is installed (so that `/metrics` passes `promtool check metrics`), the
//! buckets of the histograms, and the series with known label values that exist at 0 from
//! start-up, so that a rate or an alert on them has data before the first event. The table is
//! checked against the source: a metric recorded anywhere in the workspace and missing here
//! (or listed here and recorded nowhere) fails a unit test. The process metrics
//! (`process_cpu_seconds_total`, `process_resident_memory_bytes`, `process_open_fds`,
//! `process_start_time_seconds`, …) come from the `metrics-process` crate, read at each scrape.

use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder};
use tars_eval::Severity;
use tars_store::{BaselineRow, JobKind, JobStatus};

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
        "tars_eval_policy_cache_entries",
        Kind::Gauge,
        "Trained policies the evaluation engine's cache holds.",
    ),
    (
        "tars_eval_policy_cache_lookups_total",
        Kind::Counter,
        "Evaluations whose policy was found in the cache (result=hit) or trained (miss).",
    ),
    (
        "tars_build_info",
        Kind::Gauge,
        "1, with the version of the running tars binary as a label.",
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
        "tars_jobs_publish_failed_total",
        Kind::Counter,
        "Jobs whose NATS message could not be published (the submission got 503).",
    ),
    (
        "tars_jobs_fetch_failed_total",
        Kind::Counter,
        "Failed pulls of job messages from NATS (the worker retries).",
    ),
    (
        "tars_jobs_redelivered_total",
        Kind::Counter,
        "Job messages NATS delivered again (a worker died, stopped answering or gave the job back).",
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
        "tars_db_pool_idle_connections",
        Kind::Gauge,
        "Database connections open in the pool and not in use.",
    ),
    (
        "tars_db_query_duration_seconds",
        Kind::Histogram,
        "Duration of a store call (one query or transaction, its retries included), in seconds.",
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
        "tars_redis_operation_duration_seconds",
        Kind::Histogram,
        "Duration of Redis operations, in seconds, by operation.",
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

/// Evaluations take seconds to minutes (seed 001 alerts at a p95 of 300 s).
const EVALUATION_SECONDS: &[f64] = &[0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0];
/// A hot reload takes well under a millisecond to tens of them (target: p99 < 100 ms).
const RELOAD_SECONDS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];
/// HTTP requests, store calls and Redis operations: a millisecond to the 30 s request timeout.
const REQUEST_SECONDS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// Agent engine tasks: milliseconds (a route) to minutes (a scan).
const TASK_SECONDS: &[f64] = &[0.001, 0.01, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0];
/// A confidence between 0 and 1.
const CONFIDENCE: &[f64] = &[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0];

/// The histograms' buckets (`_bucket`, `_sum` and `_count`, aggregatable across replicas).
pub fn with_buckets(builder: PrometheusBuilder) -> Result<PrometheusBuilder, BuildError> {
    builder
        .set_buckets_for_metric(
            Matcher::Full("tars_eval_duration_seconds".into()),
            EVALUATION_SECONDS,
        )?
        .set_buckets_for_metric(
            Matcher::Full("tars_hypersync_reload_seconds".into()),
            RELOAD_SECONDS,
        )?
        .set_buckets_for_metric(
            Matcher::Full("tars_http_request_duration_seconds".into()),
            REQUEST_SECONDS,
        )?
        .set_buckets_for_metric(
            Matcher::Full("tars_db_query_duration_seconds".into()),
            REQUEST_SECONDS,
        )?
        .set_buckets_for_metric(
            Matcher::Full("tars_redis_operation_duration_seconds".into()),
            REQUEST_SECONDS,
        )?
        .set_buckets_for_metric(
            Matcher::Full("agent_task_duration_seconds".into()),
            TASK_SECONDS,
        )?
        .set_buckets_for_metric(Matcher::Full("agent_routing_confidence".into()), CONFIDENCE)
}

/// The series with known label values, at 0 until their first event: jobs by kind and ending,
/// evaluations and regressions (every severity) of each pair with a baseline, cache lookups,
/// rate-limit scopes, rollbacks of each agent type and trials by state.
pub fn zero_known_series(baselines: &[BaselineRow]) {
    for kind in JobKind::ALL {
        for status in JobStatus::ALL.into_iter().filter(|s| s.is_final()) {
            metrics::counter!("tars_jobs_total", "status" => status.as_str(), "kind" => kind.as_str())
                .increment(0);
        }
    }
    for baseline in baselines {
        zero_pair(&baseline.agent_type, &baseline.environment);
    }
    for result in ["hit", "miss"] {
        metrics::counter!("tars_eval_policy_cache_lookups_total", "result" => result).increment(0);
    }
    for scope in ["ip", "principal"] {
        metrics::counter!("tars_http_rate_limited_total", "scope" => scope).increment(0);
    }
    for algo in tars_agents::Algo::ALL {
        for trigger in ["automatic", "manual"] {
            metrics::counter!("tars_hypersync_rollbacks_total", "agent_type" => algo.name(), "trigger" => trigger)
                .increment(0);
        }
    }
    for state in ["complete", "pruned", "failed"] {
        metrics::counter!("tars_automl_trials_total", "state" => state).increment(0);
    }
    metrics::counter!("tars_cpu_rejections_total").increment(0);
    metrics::counter!("tars_jobs_publish_failed_total").increment(0);
    metrics::counter!("tars_jobs_fetch_failed_total").increment(0);
    metrics::counter!("tars_jobs_redelivered_total").increment(0);
    metrics::counter!("tars_http_connections_rejected_total").increment(0);
}

/// A pair's evaluation series at 0 (its evaluations by status, regressions by severity, the
/// latency histogram): at start-up for the pairs with a baseline, and when a pair gets its
/// baseline, so that the first evaluation or regression after it is an increase.
pub fn zero_pair(agent_type: &str, environment: &str) {
    let pair = [
        ("agent_type", agent_type.to_string()),
        ("environment", environment.to_string()),
    ];
    for status in ["ok", "regression"] {
        let mut labels = pair.to_vec();
        labels.push(("status", status.to_string()));
        metrics::counter!("tars_eval_evaluations_total", &labels).increment(0);
    }
    for severity in Severity::ALL {
        let mut labels = pair.to_vec();
        labels.push(("severity", severity.as_str().to_string()));
        metrics::counter!("tars_eval_regression_detected_total", &labels).increment(0);
    }
    // Registered, not observed: its buckets are exported at 0.
    let _ = metrics::histogram!("tars_eval_duration_seconds", &pair);
}

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
            if path.extension().is_none_or(|e| e != "rs") || path.ends_with("metrics_catalog.rs") {
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
