//! The key table: every configuration key, its kind, default, valid range and help, and how a
//! raw text becomes a checked value.

use super::{Source, Value};

/// The keys, their defaults and valid ranges.
pub(super) const KEYS: &[Key] = &[
    Key::int(
        "port",
        8099,
        0,
        65_535,
        "HTTP port of `tars serve` (0: any free port)",
    ),
    Key::text("host", "127.0.0.1", "address `tars serve` binds"),
    Key::int(
        "sync_wait_seconds",
        30,
        0,
        3_600,
        "POST /v1/evaluate waits this long before 202",
    ),
    Key::int("queue_capacity", 64, 1, 100_000, "queued jobs before 503"),
    Key::int(
        "cpu_slots",
        2,
        1,
        1_024,
        "CPU-bound requests (Nash) computed at once, off the async threads; more get 503",
    ),
    Key::int(
        "max_nash_actions",
        256,
        1,
        100_000,
        "most rows or columns of a game or score table POST /v1/nash/compute accepts",
    ),
    Key::int(
        "max_queued_per_study",
        16,
        1,
        100_000,
        "trials one AutoML study keeps queued or running at once (its `workers` is capped to it), so others' work still runs",
    ),
    Key::int(
        "max_queued_per_principal",
        32,
        1,
        100_000,
        "jobs one account keeps queued or running at once (evaluations, trainings, its studies' trials); more get 429",
    ),
    Key::int(
        "max_job_attempts",
        3,
        1,
        100,
        "runs a job may start; one started this often that never ended (the process died, was killed or stopped) fails as interrupted instead of running again",
    ),
    Key::int(
        "job_workers",
        1,
        0,
        64,
        "jobs evaluated at once (0: none, API only; needs nats_url)",
    ),
    Key::float(
        "rate_limit_rps",
        50.0,
        0.0,
        1e9,
        "requests/s per principal and per IP (0 = off)",
    ),
    Key::int(
        "rate_limit_burst",
        100,
        1,
        1_000_000_000,
        "requests allowed in a burst",
    ),
    Key::int(
        "max_body_bytes",
        1_048_576,
        1_024,
        1_073_741_824,
        "largest request body",
    ),
    Key::int("request_timeout_seconds", 600, 1, 86_400, "longest request"),
    Key::int(
        "max_connections",
        4_096,
        1,
        1_000_000,
        "open HTTP connections; one more is closed at once (keep it below the process's file limit)",
    ),
    Key::int(
        "header_read_timeout_seconds",
        10,
        1,
        3_600,
        "time a client has to send a request's headers, counted from connect or from the last response (closes slow and idle connections)",
    ),
    Key::text("log_format", "text", "text or json"),
    Key::int(
        "shutdown_timeout_seconds",
        20,
        0,
        3_600,
        "on SIGTERM: time in-flight requests and running jobs get before jobs are re-queued",
    ),
    Key::int(
        "baseline_cache_ms",
        1_000,
        0,
        3_600_000,
        "GET /v1/baselines serves from memory this long (0 = off); writes here clear it at once",
    ),
    Key::text(
        "otlp_endpoint",
        "",
        "OTLP/HTTP collector for traces, e.g. http://localhost:4318 (unset: OTEL_EXPORTER_OTLP_ENDPOINT, else off)",
    ),
    Key::text(
        "otlp_service_name",
        "tars-eval-engine",
        "the service.name resource of exported traces (seed 001's name by default)",
    ),
    Key::float(
        "otlp_sampling_ratio",
        1.0,
        0.0,
        1.0,
        "share of new traces exported (a caller's traceparent decides for its own)",
    ),
    Key::text("data_dir", "", "holds the SQLite file and checkpoints"),
    Key::text("database_url", "", "sqlite://PATH or postgres://…"),
    Key::text(
        "nats_url",
        "",
        "fleet mode: jobs over NATS JetStream at nats://HOST:PORT (empty: in-process queue)",
    ),
    Key::text(
        "nats_prefix",
        "tars",
        "names of the fleet's NATS stream, consumer and subjects (letters, digits, _ and -)",
    ),
    Key::int(
        "nats_ack_wait_seconds",
        30,
        1,
        3_600,
        "a job whose worker stops acknowledging it for this long goes to another worker",
    ),
    Key::int(
        "nats_max_deliver",
        5,
        1,
        1_000,
        "deliveries of a job before a transient failure fails it",
    ),
    Key::text(
        "redis_url",
        "",
        "fleet mode: shared cache, rate limits and Idempotency-Key records at redis://HOST:PORT (empty: off)",
    ),
    Key::text(
        "redis_prefix",
        "tars",
        "namespace of the fleet's Redis keys and invalidation channel (letters, digits, _ and -)",
    ),
    Key::int(
        "redis_cache_seconds",
        300,
        1,
        86_400,
        "baseline listings and active configs live this long in Redis (writes invalidate them at once)",
    ),
    Key::int(
        "default_episodes",
        100,
        1,
        10_000,
        "episodes per environment",
    ),
    Key::int(
        "quick_mode_episodes",
        50,
        1,
        10_000,
        "episodes in quick mode",
    ),
    Key::int("max_concurrent", 4, 1, 64, "environments evaluated at once"),
    Key::int(
        "max_job_memory_bytes",
        tars_agents::Budget::DEFAULT.memory_bytes as i64,
        1 << 20,
        i64::MAX,
        "estimated memory one job (evaluation, training, trial) may use; larger requests get 422",
    ),
    Key::int(
        "max_job_env_steps",
        tars_agents::Budget::DEFAULT.env_steps as i64,
        1,
        i64::MAX,
        "environment steps one job may take (training + evaluation episodes × step limit)",
    ),
    Key::int(
        "max_study_env_steps",
        200_000_000,
        1,
        i64::MAX,
        "environment steps one AutoML study may take (trials × each trial's steps)",
    ),
    Key::int(
        "env_cache_size",
        50,
        1,
        10_000,
        "trained policies kept in memory",
    ),
    Key::int(
        "bootstrap_reps",
        10_000,
        100,
        1_000_000,
        "bootstrap resamples",
    ),
    Key::float(
        "thresholds.failure_rate",
        0.15,
        0.0,
        1.0,
        "max failure rate",
    ),
    Key::float(
        "thresholds.reward_drop_pct",
        0.10,
        0.0,
        1.0,
        "max normalised drop",
    ),
    Key::int(
        "thresholds.loss_trend_window",
        10,
        3,
        10_000,
        "loss points in the trend",
    ),
    Key::float(
        "thresholds.variance_multiplier",
        2.5,
        1.0,
        1e6,
        "max std / baseline std",
    ),
    Key::int(
        "auto_rollback",
        1,
        0,
        1,
        "1: roll back a change its post-apply evaluation finds a regression",
    ),
    Key::int(
        "post_apply_episodes",
        50,
        1,
        10_000,
        "episodes of the post-apply evaluation",
    ),
    Key::int(
        "config_poll_ms",
        500,
        10,
        600_000,
        "how often a server picks up config changes made elsewhere",
    ),
    Key::int(
        "engines",
        1,
        0,
        1,
        "1: run the Intelligence, Performance, Optimization and Analysis engines in `tars serve`",
    ),
    Key::int(
        "max_concurrent_tasks",
        200,
        1,
        100_000,
        "an engine's tasks running at once (seed 002)",
    ),
    Key::int(
        "queue_size",
        5_000,
        1,
        1_000_000,
        "an engine's waiting tasks; one more is refused (backpressure)",
    ),
    Key::int(
        "task_timeout_seconds",
        30,
        1,
        86_400,
        "an engine task running longer is cancelled and recorded as timed_out",
    ),
    Key::int(
        "heartbeat_interval_seconds",
        10,
        1,
        3_600,
        "how often engines and workers write their heartbeat to the registry",
    ),
    Key::int(
        "missed_heartbeats",
        3,
        1,
        1_000,
        "heartbeats a component may miss before it counts as dead",
    ),
    Key::int(
        "engine_interval_seconds",
        60,
        1,
        86_400,
        "how often the Analysis, Performance and Optimization engines scan (leader only)",
    ),
    Key::float(
        "drift_threshold",
        0.15,
        0.0,
        100.0,
        "Analysis: recent evaluations this far from the baseline's mean reward (relative) are drift",
    ),
    Key::int(
        "drift_window",
        10,
        1,
        1_000,
        "Analysis: the latest evaluation results per (agent, environment) compared with the baseline",
    ),
    Key::float(
        "baseline_stale_days",
        7.0,
        0.0,
        3_650.0,
        "Analysis and Optimization: a baseline not updated for this long is stale",
    ),
    Key::int(
        "stale_study_trials",
        10,
        0,
        10_000,
        "Optimization: trials of the study started for a stale baseline (0: start none)",
    ),
    Key::int(
        "auto_apply_pause_after",
        3,
        0,
        1_000,
        "Optimization: consecutive regressions of an agent's proposals that pause its auto-apply (0: never)",
    ),
    Key::float(
        "alert_task_failure_rate",
        0.05,
        0.0,
        1.0,
        "Performance: share of an engine's tasks failing or timing out in the window",
    ),
    Key::int(
        "alert_queue_size",
        1_000,
        1,
        10_000_000,
        "Performance: an engine queue deeper than this raises HighTaskQueueDepth",
    ),
    Key::float(
        "alert_eval_p95_seconds",
        300.0,
        0.0,
        1e9,
        "Performance: p95 evaluation duration in the window above this raises HighEvaluationLatency",
    ),
    Key::float(
        "alert_eval_failure_rate",
        0.05,
        0.0,
        1.0,
        "Performance: share of evaluation jobs failing in the window",
    ),
    Key::int(
        "alert_window_seconds",
        300,
        1,
        604_800,
        "Performance: the window the rates and p95 are computed over",
    ),
    Key::int(
        "study_lease_seconds",
        30,
        2,
        3_600,
        "how long a server's claim on a running study holds unrenewed (renewed every third of it)",
    ),
    Key::text(
        "jwt_algorithm",
        "HS256",
        "access-token signature: HS256 or RS256",
    ),
    Key::secret(
        "jwt_secret",
        "HS256 key; unset: generated once into <data_dir>/jwt_secret",
    ),
    Key::text(
        "jwt_private_key_file",
        "",
        "RS256 private key (PEM) that signs access tokens",
    ),
    Key::text(
        "jwt_public_key_file",
        "",
        "RS256 public key (PEM) that verifies access tokens",
    ),
    Key::int(
        "access_token_ttl",
        900,
        1,
        86_400,
        "seconds an access token is valid",
    ),
    Key::int(
        "refresh_token_ttl",
        604_800,
        1,
        31_536_000,
        "seconds a refresh token is valid",
    ),
    Key::secret(
        "admin_password",
        "password of the first user, admin (unset: generated and printed once)",
    ),
];

#[derive(Debug, Clone, Copy)]
pub(super) enum Kind {
    Int { default: i64, min: i64, max: i64 },
    Float { default: f64, min: f64, max: f64 },
    Text { default: &'static str },
    Secret,
}

#[derive(Debug)]
pub(super) struct Key {
    pub(super) name: &'static str,
    pub(super) kind: Kind,
    pub(super) help: &'static str,
}

impl Key {
    const fn int(name: &'static str, default: i64, min: i64, max: i64, help: &'static str) -> Key {
        let kind = Kind::Int { default, min, max };
        Key { name, kind, help }
    }
    const fn float(
        name: &'static str,
        default: f64,
        min: f64,
        max: f64,
        help: &'static str,
    ) -> Key {
        let kind = Kind::Float { default, min, max };
        Key { name, kind, help }
    }
    const fn text(name: &'static str, default: &'static str, help: &'static str) -> Key {
        let kind = Kind::Text { default };
        Key { name, kind, help }
    }
    /// Text that `tars config show` prints as `***` and errors never echo, unset by default. It
    /// has no flag: a command line is visible to every user of the machine.
    const fn secret(name: &'static str, help: &'static str) -> Key {
        let kind = Kind::Secret;
        Key { name, kind, help }
    }

    pub(super) fn short_name(&self) -> &'static str {
        self.name.strip_prefix("thresholds.").unwrap_or(self.name)
    }

    pub(super) fn env_var(&self) -> String {
        format!("TARS_{}", self.short_name().to_uppercase())
    }

    pub(super) fn flag(&self) -> String {
        format!("--{}", self.short_name().replace('_', "-"))
    }

    /// Parses and range-checks `raw`; the error names the key, the value and what is valid.
    pub(super) fn parse(&self, raw: &str, source: &Source) -> anyhow::Result<Value> {
        let invalid = |valid: String| {
            anyhow::anyhow!(
                "invalid {} = '{raw}' (from {source}): expected {valid}",
                self.name
            )
        };
        match self.kind {
            Kind::Int { min, max, .. } => match raw.trim().parse::<i64>() {
                Ok(v) if (min..=max).contains(&v) => Ok(Value::Int(v)),
                _ => Err(invalid(format!("an integer in {min}..={max}"))),
            },
            Kind::Float { min, max, .. } => match raw.trim().parse::<f64>() {
                Ok(v) if (min..=max).contains(&v) => Ok(Value::Float(v)),
                _ => Err(invalid(format!("a number in [{min}, {max}]"))),
            },
            Kind::Text { .. } if raw.trim().is_empty() => Err(invalid("a non-empty value".into())),
            Kind::Text { .. } => Ok(Value::Text(raw.trim().to_string())),
            // Not trimmed (a password may end in a space), and never echoed.
            Kind::Secret if raw.is_empty() => Err(anyhow::anyhow!(
                "invalid {} (from {source}): expected a non-empty value",
                self.name
            )),
            Kind::Secret => Ok(Value::Text(raw.to_string())),
        }
    }
}
