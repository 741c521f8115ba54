//! The agent-engine runtime's state: the registry of live components (`components`), every
//! task's outcome (`task_results`), the engines' findings — insights and alerts — and the
//! HyperSync auto-apply pauses the Optimization engine sets (`findings`, `auto_apply_pauses`).
//!
//! Liveness is not stored: a reader compares a component's `last_heartbeat` with its
//! `heartbeat_interval_ms` (see `tars-runtime`'s registry). A finding is open while its
//! condition holds: [`Store::raise_finding`] opens it or refreshes the open one with the same
//! (kind, rule, subject) and [`Store::resolve_findings`] closes those no longer seen.

use crate::id::{Id, with_pool};
use crate::model::{check_actor, check_agent_type};
use crate::{Store, StoreError};
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::Row;
use sqlx::types::Json;
use uuid::Uuid;

/// The kinds of component the registry holds.
pub const COMPONENT_KINDS: [&str; 2] = ["engine", "worker"];
/// The statuses a component reports.
pub const COMPONENT_STATUSES: [&str; 4] = ["healthy", "degraded", "unhealthy", "stopped"];
/// How a task can end.
pub const TASK_STATUSES: [&str; 4] = ["completed", "failed", "timed_out", "rejected"];
/// The kinds of finding.
pub const FINDING_KINDS: [&str; 2] = ["insight", "alert"];
/// The severities of a finding.
pub const SEVERITIES: [&str; 3] = ["info", "warning", "critical"];
/// The most rows one list returns.
pub const MAX_ENGINE_ROWS_LISTED: i64 = 1_000;

/// A component's heartbeat: the whole row, written over the previous one.
#[derive(Debug, Clone, PartialEq)]
pub struct ComponentRow {
    pub id: Uuid,
    /// `engine` or `worker`.
    pub kind: String,
    pub name: String,
    /// Which process, e.g. `host:pid`.
    pub instance: String,
    pub capabilities: Vec<String>,
    /// healthy, degraded, unhealthy or stopped.
    pub status: String,
    pub running_tasks: i32,
    pub max_concurrent_tasks: i32,
    pub queue_size: i32,
    pub heartbeat_interval_ms: i64,
    /// A JSON object.
    pub details: Value,
    pub started_at: DateTime<Utc>,
    pub last_heartbeat: DateTime<Utc>,
}

/// A task's outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskResultRow {
    pub id: Uuid,
    pub engine: String,
    pub component_id: Option<Uuid>,
    pub task_type: String,
    /// 0 (low) to 3 (critical).
    pub priority: i32,
    /// completed, failed, timed_out or rejected.
    pub status: String,
    pub duration_seconds: Option<f64>,
    pub error: Option<String>,
    pub result: Option<Value>,
    /// In `0..=1`, for decisions (routing).
    pub confidence: Option<f64>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: DateTime<Utc>,
}

/// A finding to raise.
#[derive(Debug, Clone, PartialEq)]
pub struct NewFinding {
    /// `insight` or `alert`.
    pub kind: String,
    pub rule: String,
    pub subject: String,
    /// info, warning or critical.
    pub severity: String,
    pub message: String,
    /// A JSON object.
    pub details: Value,
}

/// One row of `findings`.
#[derive(Debug, Clone, PartialEq)]
pub struct FindingRow {
    pub id: Uuid,
    pub kind: String,
    pub rule: String,
    pub subject: String,
    pub severity: String,
    pub message: String,
    pub details: Value,
    pub first_seen_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
}

/// One row of `auto_apply_pauses`.
#[derive(Debug, Clone, PartialEq)]
pub struct PauseRow {
    pub agent_type: String,
    pub reason: String,
    pub proposals: Vec<Uuid>,
    pub paused_by: String,
    pub paused_at: DateTime<Utc>,
    /// Set when an admin lifted the pause: auto-apply works again.
    pub resumed_by: Option<String>,
    pub resumed_at: Option<DateTime<Utc>>,
}

impl PauseRow {
    /// Whether auto-apply is paused now.
    pub fn is_active(&self) -> bool {
        self.resumed_at.is_none()
    }
}

const UPSERT_COMPONENT: &str = "INSERT INTO components (id, kind, name, instance, capabilities,
     status, running_tasks, max_concurrent_tasks, queue_size, heartbeat_interval_ms, details,
     started_at, last_heartbeat)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
     ON CONFLICT (id) DO UPDATE SET capabilities = excluded.capabilities,
     status = excluded.status, running_tasks = excluded.running_tasks,
     max_concurrent_tasks = excluded.max_concurrent_tasks, queue_size = excluded.queue_size,
     heartbeat_interval_ms = excluded.heartbeat_interval_ms, details = excluded.details,
     last_heartbeat = excluded.last_heartbeat";
const COMPONENTS: &str = "SELECT * FROM components ORDER BY kind, name, instance, id";
const DELETE_COMPONENTS_BEFORE: &str = "DELETE FROM components WHERE last_heartbeat < $1";
const INSERT_TASK_RESULT: &str = "INSERT INTO task_results (id, engine, component_id, task_type,
     priority, status, duration_seconds, error, result, confidence, created_at, started_at,
     finished_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)";
const TASK_RESULTS: &str = "SELECT * FROM task_results
     WHERE ($1 IS NULL OR engine = $1) AND ($2 IS NULL OR status = $2)
     ORDER BY finished_at DESC, id LIMIT $3";
const TASK_COUNTS: &str = "SELECT engine, status, COUNT(*) AS n FROM task_results
     WHERE finished_at >= $1 GROUP BY engine, status ORDER BY engine, status";
const OPEN_FINDING: &str = "SELECT * FROM findings
     WHERE kind = $1 AND rule = $2 AND subject = $3 AND resolved_at IS NULL";
const INSERT_FINDING: &str = "INSERT INTO findings (id, kind, rule, subject, severity, message,
     details, first_seen_at, last_seen_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)";
const REFRESH_FINDING: &str = "UPDATE findings SET severity = $2, message = $3, details = $4,
     last_seen_at = $5 WHERE id = $1";
const OPEN_FINDINGS_OF_RULE: &str = "SELECT * FROM findings
     WHERE kind = $1 AND rule = $2 AND resolved_at IS NULL";
const RESOLVE_FINDING: &str =
    "UPDATE findings SET resolved_at = $2 WHERE id = $1 AND resolved_at IS NULL";
const FINDINGS: &str = "SELECT * FROM findings
     WHERE kind = $1 AND ($2 = FALSE OR resolved_at IS NULL)
     ORDER BY last_seen_at DESC, id LIMIT $3";
const INSERT_PAUSE: &str = "INSERT INTO auto_apply_pauses (agent_type, reason, proposals,
     paused_by, paused_at) VALUES ($1, $2, $3, $4, $5)
     ON CONFLICT (agent_type) DO UPDATE SET reason = excluded.reason,
     proposals = excluded.proposals, paused_by = excluded.paused_by,
     paused_at = excluded.paused_at, resumed_by = NULL, resumed_at = NULL
     WHERE auto_apply_pauses.resumed_at IS NOT NULL";
const PAUSE: &str = "SELECT * FROM auto_apply_pauses WHERE agent_type = $1";
const PAUSES: &str = "SELECT * FROM auto_apply_pauses ORDER BY agent_type";
const RESUME: &str = "UPDATE auto_apply_pauses SET resumed_by = $2, resumed_at = $3
     WHERE agent_type = $1 AND resumed_at IS NULL";
const JOB_COUNTS: &str = "SELECT status, COUNT(*) AS n FROM eval_jobs
     WHERE finished_at >= $1 GROUP BY status ORDER BY status";

macro_rules! component_row {
    ($row:expr) => {{
        let row = $row;
        ComponentRow {
            id: row.try_get::<Id, _>("id")?.0,
            kind: row.try_get("kind")?,
            name: row.try_get("name")?,
            instance: row.try_get("instance")?,
            capabilities: row.try_get::<Json<Vec<String>>, _>("capabilities")?.0,
            status: row.try_get("status")?,
            running_tasks: row.try_get("running_tasks")?,
            max_concurrent_tasks: row.try_get("max_concurrent_tasks")?,
            queue_size: row.try_get("queue_size")?,
            heartbeat_interval_ms: row.try_get("heartbeat_interval_ms")?,
            details: row.try_get::<Json<Value>, _>("details")?.0,
            started_at: row.try_get("started_at")?,
            last_heartbeat: row.try_get("last_heartbeat")?,
        }
    }};
}

macro_rules! task_result_row {
    ($row:expr) => {{
        let row = $row;
        TaskResultRow {
            id: row.try_get::<Id, _>("id")?.0,
            engine: row.try_get("engine")?,
            component_id: row.try_get::<Option<Id>, _>("component_id")?.map(|id| id.0),
            task_type: row.try_get("task_type")?,
            priority: row.try_get("priority")?,
            status: row.try_get("status")?,
            duration_seconds: row.try_get("duration_seconds")?,
            error: row.try_get("error")?,
            result: row
                .try_get::<Option<Json<Value>>, _>("result")?
                .map(|json| json.0),
            confidence: row.try_get("confidence")?,
            created_at: row.try_get("created_at")?,
            started_at: row.try_get("started_at")?,
            finished_at: row.try_get("finished_at")?,
        }
    }};
}

macro_rules! finding_row {
    ($row:expr) => {{
        let row = $row;
        FindingRow {
            id: row.try_get::<Id, _>("id")?.0,
            kind: row.try_get("kind")?,
            rule: row.try_get("rule")?,
            subject: row.try_get("subject")?,
            severity: row.try_get("severity")?,
            message: row.try_get("message")?,
            details: row.try_get::<Json<Value>, _>("details")?.0,
            first_seen_at: row.try_get("first_seen_at")?,
            last_seen_at: row.try_get("last_seen_at")?,
            resolved_at: row.try_get("resolved_at")?,
        }
    }};
}

macro_rules! pause_row {
    ($row:expr) => {{
        let row = $row;
        PauseRow {
            agent_type: row.try_get("agent_type")?,
            reason: row.try_get("reason")?,
            proposals: row.try_get::<Json<Vec<Uuid>>, _>("proposals")?.0,
            paused_by: row.try_get("paused_by")?,
            paused_at: row.try_get("paused_at")?,
            resumed_by: row.try_get("resumed_by")?,
            resumed_at: row.try_get("resumed_at")?,
        }
    }};
}

fn one_of(field: &'static str, value: &str, valid: &[&str]) -> Result<(), StoreError> {
    if valid.contains(&value) {
        Ok(())
    } else {
        Err(StoreError::invalid(
            field,
            format!("unknown {field} '{value}'; valid: {}", valid.join(", ")),
        ))
    }
}

fn check_text(field: &'static str, value: &str, max: usize) -> Result<(), StoreError> {
    if value.is_empty() || value.chars().count() > max {
        return Err(StoreError::invalid(
            field,
            format!(
                "must be 1 to {max} characters, got {}",
                value.chars().count()
            ),
        ));
    }
    Ok(())
}

impl Store {
    /// Writes a component's heartbeat (inserting it the first time).
    pub async fn heartbeat(&self, component: &ComponentRow) -> Result<(), StoreError> {
        one_of("kind", &component.kind, &COMPONENT_KINDS)?;
        one_of("status", &component.status, &COMPONENT_STATUSES)?;
        check_text("name", &component.name, 100)?;
        check_text("instance", &component.instance, 200)?;
        if component.running_tasks < 0
            || component.max_concurrent_tasks < 0
            || component.queue_size < 0
        {
            return Err(StoreError::invalid(
                "running_tasks",
                "task counts must be 0 or more",
            ));
        }
        if component.heartbeat_interval_ms < 1 {
            return Err(StoreError::invalid(
                "heartbeat_interval_ms",
                "must be at least 1",
            ));
        }
        if !component.details.is_object() {
            return Err(StoreError::invalid("details", "must be a JSON object"));
        }
        with_pool!(self, pool => {
            sqlx::query(UPSERT_COMPONENT)
                .bind(Id(component.id))
                .bind(&component.kind)
                .bind(&component.name)
                .bind(&component.instance)
                .bind(Json(&component.capabilities))
                .bind(&component.status)
                .bind(component.running_tasks)
                .bind(component.max_concurrent_tasks)
                .bind(component.queue_size)
                .bind(component.heartbeat_interval_ms)
                .bind(Json(&component.details))
                .bind(component.started_at)
                .bind(component.last_heartbeat)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Every registered component, dead or alive, by kind, name and instance.
    pub async fn components(&self) -> Result<Vec<ComponentRow>, StoreError> {
        with_pool!(self, pool => {
            let rows = sqlx::query(COMPONENTS).fetch_all(pool).await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in &rows {
                out.push(component_row!(row));
            }
            Ok(out)
        })
    }

    /// Forgets components whose last heartbeat is before `before`; returns how many.
    pub async fn forget_components(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        Ok(with_pool!(self, pool => {
            sqlx::query(DELETE_COMPONENTS_BEFORE)
                .bind(before)
                .execute(pool)
                .await?
                .rows_affected()
        }))
    }

    /// Records a task's outcome.
    pub async fn insert_task_result(&self, result: &TaskResultRow) -> Result<(), StoreError> {
        one_of("status", &result.status, &TASK_STATUSES)?;
        check_text("engine", &result.engine, 100)?;
        check_text("task_type", &result.task_type, 100)?;
        if !(0..=3).contains(&result.priority) {
            return Err(StoreError::invalid(
                "priority",
                format!(
                    "{} is not a priority; valid: 0 (low) to 3 (critical)",
                    result.priority
                ),
            ));
        }
        if let Some(confidence) = result.confidence
            && !(0.0..=1.0).contains(&confidence)
        {
            return Err(StoreError::invalid(
                "confidence",
                format!("{confidence} is outside 0..=1"),
            ));
        }
        let inserted: Result<(), sqlx::Error> = with_pool!(self, pool => {
            sqlx::query(INSERT_TASK_RESULT)
                .bind(Id(result.id))
                .bind(&result.engine)
                .bind(result.component_id.map(Id))
                .bind(&result.task_type)
                .bind(result.priority)
                .bind(&result.status)
                .bind(result.duration_seconds)
                .bind(&result.error)
                .bind(result.result.as_ref().map(Json))
                .bind(result.confidence)
                .bind(result.created_at)
                .bind(result.started_at)
                .bind(result.finished_at)
                .execute(pool)
                .await
                .map(|_| ())
        });
        inserted.map_err(|e| crate::error::id_conflict(e, "task result", result.id))
    }

    /// Task outcomes, newest first, of one engine and/or status when given.
    pub async fn task_results(
        &self,
        engine: Option<&str>,
        status: Option<&str>,
        limit: i64,
    ) -> Result<Vec<TaskResultRow>, StoreError> {
        if let Some(status) = status {
            one_of("status", status, &TASK_STATUSES)?;
        }
        let limit = limit.clamp(1, MAX_ENGINE_ROWS_LISTED);
        with_pool!(self, pool => {
            let rows = sqlx::query(TASK_RESULTS)
                .bind(engine)
                .bind(status)
                .bind(limit)
                .fetch_all(pool)
                .await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in &rows {
                out.push(task_result_row!(row));
            }
            Ok(out)
        })
    }

    /// (engine, status, count) of the tasks that finished at or after `since`.
    pub async fn task_counts(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Vec<(String, String, i64)>, StoreError> {
        with_pool!(self, pool => {
            let rows = sqlx::query(TASK_COUNTS).bind(since).fetch_all(pool).await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in &rows {
                out.push((row.try_get("engine")?, row.try_get("status")?, row.try_get("n")?));
            }
            Ok(out)
        })
    }

    /// Opens a finding, or refreshes the open one with the same (kind, rule, subject).
    /// Returns the row and whether it is new.
    pub async fn raise_finding(&self, new: &NewFinding) -> Result<(FindingRow, bool), StoreError> {
        one_of("kind", &new.kind, &FINDING_KINDS)?;
        one_of("severity", &new.severity, &SEVERITIES)?;
        check_text("rule", &new.rule, 100)?;
        check_text("subject", &new.subject, 200)?;
        if !new.details.is_object() {
            return Err(StoreError::invalid("details", "must be a JSON object"));
        }
        let now = Utc::now();
        let raised: Result<(FindingRow, bool), sqlx::Error> = with_pool!(self, pool => async {
            let mut tx = pool.begin().await?;
            let open = sqlx::query(OPEN_FINDING)
                .bind(&new.kind)
                .bind(&new.rule)
                .bind(&new.subject)
                .fetch_optional(&mut *tx)
                .await?;
            let (id, opened) = match open {
                Some(row) => {
                    let id = row.try_get::<Id, _>("id")?;
                    sqlx::query(REFRESH_FINDING)
                        .bind(id)
                        .bind(&new.severity)
                        .bind(&new.message)
                        .bind(Json(&new.details))
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                    (id, false)
                }
                None => {
                    let id = Id(Uuid::new_v4());
                    sqlx::query(INSERT_FINDING)
                        .bind(id)
                        .bind(&new.kind)
                        .bind(&new.rule)
                        .bind(&new.subject)
                        .bind(&new.severity)
                        .bind(&new.message)
                        .bind(Json(&new.details))
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                    (id, true)
                }
            };
            let row = sqlx::query("SELECT * FROM findings WHERE id = $1")
                .bind(id)
                .fetch_one(&mut *tx)
                .await?;
            let row = finding_row!(&row);
            tx.commit().await?;
            Ok((row, opened))
        }
        .await);
        Ok(raised?)
    }

    /// Resolves the open findings of (kind, rule) whose subject is not in `still_open`;
    /// returns the resolved rows.
    pub async fn resolve_findings(
        &self,
        kind: &str,
        rule: &str,
        still_open: &[String],
    ) -> Result<Vec<FindingRow>, StoreError> {
        one_of("kind", kind, &FINDING_KINDS)?;
        let now = Utc::now();
        with_pool!(self, pool => {
            let rows = sqlx::query(OPEN_FINDINGS_OF_RULE)
                .bind(kind)
                .bind(rule)
                .fetch_all(pool)
                .await?;
            let mut resolved = Vec::new();
            for row in &rows {
                let mut finding = finding_row!(row);
                if still_open.contains(&finding.subject) {
                    continue;
                }
                sqlx::query(RESOLVE_FINDING)
                    .bind(Id(finding.id))
                    .bind(now)
                    .execute(pool)
                    .await?;
                finding.resolved_at = Some(now);
                resolved.push(finding);
            }
            Ok(resolved)
        })
    }

    /// Findings of a kind, most recently seen first; only the open ones when `open_only`.
    pub async fn findings(
        &self,
        kind: &str,
        open_only: bool,
        limit: i64,
    ) -> Result<Vec<FindingRow>, StoreError> {
        one_of("kind", kind, &FINDING_KINDS)?;
        let limit = limit.clamp(1, MAX_ENGINE_ROWS_LISTED);
        with_pool!(self, pool => {
            let rows = sqlx::query(FINDINGS)
                .bind(kind)
                .bind(open_only)
                .bind(limit)
                .fetch_all(pool)
                .await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in &rows {
                out.push(finding_row!(row));
            }
            Ok(out)
        })
    }

    /// Pauses HyperSync's auto-apply for an agent type. Returns the pause and whether this
    /// call made it (an active pause is kept as it is; a resumed one is paused again).
    pub async fn pause_auto_apply(
        &self,
        agent_type: &str,
        reason: &str,
        proposals: &[Uuid],
        paused_by: &str,
    ) -> Result<(PauseRow, bool), StoreError> {
        let agent_type = check_agent_type(agent_type)?;
        check_actor(Some(paused_by))?;
        check_text("paused_by", paused_by, 200)?;
        let made: u64 = with_pool!(self, pool => {
            sqlx::query(INSERT_PAUSE)
                .bind(&agent_type)
                .bind(reason)
                .bind(Json(proposals))
                .bind(paused_by)
                .bind(Utc::now())
                .execute(pool)
                .await?
                .rows_affected()
        });
        let row = self
            .auto_apply_pause(&agent_type)
            .await?
            .ok_or_else(|| StoreError::not_found("auto-apply pause", &agent_type))?;
        Ok((row, made == 1))
    }

    /// The auto-apply pause of an agent type (active or resumed), if it ever had one.
    pub async fn auto_apply_pause(&self, agent_type: &str) -> Result<Option<PauseRow>, StoreError> {
        let agent_type = crate::model::normalize_agent_type(agent_type);
        with_pool!(self, pool => {
            let row = sqlx::query(PAUSE).bind(&agent_type).fetch_optional(pool).await?;
            Ok(match row {
                Some(row) => Some(pause_row!(&row)),
                None => None,
            })
        })
    }

    /// Every auto-apply pause (active or resumed), by agent type.
    pub async fn auto_apply_pauses(&self) -> Result<Vec<PauseRow>, StoreError> {
        with_pool!(self, pool => {
            let rows = sqlx::query(PAUSES).fetch_all(pool).await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in &rows {
                out.push(pause_row!(row));
            }
            Ok(out)
        })
    }

    /// Lifts an agent type's auto-apply pause; returns the pause when there was an active one.
    pub async fn resume_auto_apply(
        &self,
        agent_type: &str,
        actor: &str,
    ) -> Result<Option<PauseRow>, StoreError> {
        let agent_type = crate::model::normalize_agent_type(agent_type);
        check_actor(Some(actor))?;
        let moved: u64 = with_pool!(self, pool => {
            sqlx::query(RESUME)
                .bind(&agent_type)
                .bind(actor)
                .bind(Utc::now())
                .execute(pool)
                .await?
                .rows_affected()
        });
        if moved == 0 {
            return Ok(None);
        }
        self.auto_apply_pause(&agent_type).await
    }

    /// (status, count) of the evaluation jobs that finished at or after `since`.
    pub async fn job_counts(&self, since: DateTime<Utc>) -> Result<Vec<(String, i64)>, StoreError> {
        with_pool!(self, pool => {
            let rows = sqlx::query(JOB_COUNTS).bind(since).fetch_all(pool).await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in &rows {
                out.push((row.try_get("status")?, row.try_get("n")?));
            }
            Ok(out)
        })
    }

    /// The database connections of this store's pools.
    pub fn pool_connections(&self) -> PoolConnections {
        match &self.backend {
            crate::Backend::Postgres(pool) => PoolConnections {
                open: pool.size(),
                idle: pool.num_idle() as u32,
                max: pool.options().get_max_connections(),
            },
            crate::Backend::Sqlite(db) => PoolConnections {
                open: db.read.size() + db.write.size(),
                idle: (db.read.num_idle() + db.write.num_idle()) as u32,
                max: db.read.options().get_max_connections()
                    + db.write.options().get_max_connections(),
            },
        }
    }
}

/// The connections of a store's pools, for the pool gauges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolConnections {
    /// Open now, idle or in use.
    pub open: u32,
    /// Open and not in use.
    pub idle: u32,
    /// The most the pools may open.
    pub max: u32,
}
