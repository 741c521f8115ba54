//! The HTTP surface of the engines: `GET /v1/engines` (this process's engines, the registry,
//! the auto-apply pauses), `GET /v1/engines/tasks` (`task_results`), `GET /v1/insights`,
//! `GET /v1/alerts`, `POST /v1/engines/route` (ask the Intelligence engine for a worker) and
//! `DELETE /v1/agents/{agent_type}/auto_apply_pause` (an admin resumes auto-apply).

use crate::app::AppState;
use crate::auth::{Principal, Role};
use crate::error::ApiError;
use crate::hypersync::parse_agent;
use crate::middleware::ApiJson;
use axum::Json;
use axum::extract::{Path, Query, State};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use tars_runtime::queue::QueueError;
use tars_runtime::{Priority, Task, TaskStatus};
use tars_store::{FindingRow, PauseRow, TaskResultRow};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

/// One engine running in this process.
#[derive(Debug, Serialize, ToSchema)]
pub struct EngineView {
    pub name: String,
    pub component_id: Uuid,
    pub instance: String,
    pub capabilities: Vec<String>,
    /// healthy, degraded or unhealthy.
    pub health: String,
    /// Why it is not healthy.
    pub message: Option<String>,
    pub queue_size: usize,
    pub queue_capacity: usize,
    pub running_tasks: usize,
    pub max_concurrent_tasks: usize,
    pub task_timeout_seconds: f64,
    /// Outcomes since this process started, by status.
    pub tasks: BTreeMap<String, u64>,
    /// The last outcome: `{kind, status, error}`.
    #[schema(value_type = Option<Object>)]
    pub last_task: Option<Value>,
    /// The tasks it gives itself: `{kind, every_seconds}` (on the leader only).
    #[schema(value_type = Vec<Object>)]
    pub schedules: Vec<Value>,
}

/// A registered component (engine or job worker, any replica).
#[derive(Debug, Serialize, ToSchema)]
pub struct ComponentView {
    pub id: Uuid,
    /// engine or worker.
    pub kind: String,
    pub name: String,
    pub instance: String,
    pub capabilities: Vec<String>,
    /// healthy, degraded, unhealthy or stopped.
    pub status: String,
    /// False once it missed `missed_heartbeats` heartbeats (or stopped).
    pub alive: bool,
    /// (running + queued) / max concurrent, at most 1.
    pub load: f64,
    pub running_tasks: i32,
    pub max_concurrent_tasks: i32,
    pub queue_size: i32,
    pub heartbeat_interval_ms: i64,
    pub last_heartbeat: String,
    pub silent_seconds: f64,
    #[schema(value_type = Object)]
    pub details: Value,
}

/// An agent type whose HyperSync auto-apply the Optimization engine paused.
#[derive(Debug, Serialize, ToSchema)]
pub struct PauseView {
    pub agent_type: String,
    /// True while passing auto-apply proposals wait for an admin.
    pub active: bool,
    pub reason: String,
    /// The regressed proposals that caused it.
    pub proposals: Vec<Uuid>,
    pub paused_by: String,
    pub paused_at: String,
    pub resumed_by: Option<String>,
    pub resumed_at: Option<String>,
}

/// `GET /v1/engines`.
#[derive(Debug, Serialize, ToSchema)]
pub struct EnginesView {
    /// Whether this process runs the engines' scheduled scans (the leader).
    pub leader: bool,
    pub engines: Vec<EngineView>,
    pub components: Vec<ComponentView>,
    pub auto_apply_pauses: Vec<PauseView>,
}

/// One task's outcome (`task_results`).
#[derive(Debug, Serialize, ToSchema)]
pub struct TaskResultView {
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
    #[schema(value_type = Option<Object>)]
    pub result: Option<Value>,
    /// A routing decision's confidence, in 0..=1.
    pub confidence: Option<f64>,
    pub created_at: String,
    pub finished_at: String,
}

/// An insight (Analysis) or an alert (Performance).
#[derive(Debug, Serialize, ToSchema)]
pub struct FindingView {
    pub id: Uuid,
    pub rule: String,
    /// What it is about, e.g. `PPO/CartPole-v1`.
    pub subject: String,
    /// info, warning or critical.
    pub severity: String,
    pub message: String,
    #[schema(value_type = Object)]
    pub details: Value,
    pub first_seen_at: String,
    pub last_seen_at: String,
    /// Set once the condition cleared.
    pub resolved_at: Option<String>,
}

/// Filters of `GET /v1/insights` and `GET /v1/alerts`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FindingQuery {
    /// Only the open ones (default true); false: resolved ones too.
    pub open: Option<bool>,
    /// 1 to 1,000 (default 100).
    pub limit: Option<i64>,
}

/// Filters of `GET /v1/engines/tasks`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TaskQuery {
    /// intelligence, performance, optimization or analysis.
    pub engine: Option<String>,
    /// completed, failed, timed_out or rejected.
    pub status: Option<String>,
    /// 1 to 1,000 (default 100).
    pub limit: Option<i64>,
}

/// `POST /v1/engines/route`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteBody {
    /// What the task needs, e.g. `evaluate`.
    pub capability: String,
}

/// The Intelligence engine's decision.
#[derive(Debug, Serialize, ToSchema)]
pub struct RouteView {
    /// The decision's row in `task_results`.
    pub task_id: Uuid,
    /// The chosen worker: `{id, name, instance}`.
    #[schema(value_type = Object)]
    pub worker: Value,
    /// In 0..=1: health × (1 − load) × heartbeat freshness of the chosen worker.
    pub confidence: f64,
    /// Every candidate with its score, best first.
    #[schema(value_type = Vec<Object>)]
    pub candidates: Vec<Value>,
}

fn time(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339()
}

fn pause_view(row: PauseRow) -> PauseView {
    PauseView {
        active: row.is_active(),
        agent_type: row.agent_type,
        reason: row.reason,
        proposals: row.proposals,
        paused_by: row.paused_by,
        paused_at: time(row.paused_at),
        resumed_by: row.resumed_by,
        resumed_at: row.resumed_at.map(time),
    }
}

fn finding_view(row: FindingRow) -> FindingView {
    FindingView {
        id: row.id,
        rule: row.rule,
        subject: row.subject,
        severity: row.severity,
        message: row.message,
        details: row.details,
        first_seen_at: time(row.first_seen_at),
        last_seen_at: time(row.last_seen_at),
        resolved_at: row.resolved_at.map(time),
    }
}

fn task_view(row: TaskResultRow) -> TaskResultView {
    TaskResultView {
        id: row.id,
        engine: row.engine,
        component_id: row.component_id,
        task_type: row.task_type,
        priority: row.priority,
        status: row.status,
        duration_seconds: row.duration_seconds,
        error: row.error,
        result: row.result,
        confidence: row.confidence,
        created_at: time(row.created_at),
        finished_at: time(row.finished_at),
    }
}

/// The engines of this process, every registered component and the auto-apply pauses
/// (viewer).
#[utoipa::path(get, path = "/v1/engines", operation_id = "list_engines",
    responses((status = 200, body = EnginesView), (status = 401)),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<EnginesView>, ApiError> {
    principal.require(Role::Viewer)?;
    let engines = state
        .engines
        .statuses()
        .into_iter()
        .map(|s| {
            EngineView {
            message: s.health.message().map(str::to_string),
            health: s.health.as_str().to_string(),
            name: s.name,
            component_id: s.component_id,
            instance: s.instance,
            capabilities: s.capabilities,
            queue_size: s.queue_size,
            queue_capacity: s.queue_capacity,
            running_tasks: s.running_tasks,
            max_concurrent_tasks: s.max_concurrent_tasks,
            task_timeout_seconds: s.task_timeout_seconds,
            tasks: s.tasks.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
            last_task: s.last_task.map(|(kind, status, error)| {
                serde_json::json!({"kind": kind, "status": status, "error": error})
            }),
            schedules: s
                .schedules
                .into_iter()
                .map(|(kind, every)| serde_json::json!({"kind": kind, "every_seconds": every}))
                .collect(),
        }
        })
        .collect();
    let registry = state.engines.registry();
    let components = (state.service.postgres())
        .store(|| registry.components())
        .await?
        .into_iter()
        .map(|c| ComponentView {
            load: c.load(),
            alive: c.alive,
            silent_seconds: c.silent_seconds,
            id: c.row.id,
            kind: c.row.kind,
            name: c.row.name,
            instance: c.row.instance,
            capabilities: c.row.capabilities,
            status: c.row.status,
            running_tasks: c.row.running_tasks,
            max_concurrent_tasks: c.row.max_concurrent_tasks,
            queue_size: c.row.queue_size,
            heartbeat_interval_ms: c.row.heartbeat_interval_ms,
            last_heartbeat: time(c.row.last_heartbeat),
            details: c.row.details,
        })
        .collect();
    let pauses = (state.service.postgres())
        .store(|| state.service.store.auto_apply_pauses())
        .await?;
    Ok(Json(EnginesView {
        leader: state.engines.is_leader(),
        engines,
        components,
        auto_apply_pauses: pauses.into_iter().map(pause_view).collect(),
    }))
}

/// The engines' task outcomes, newest first (viewer).
#[utoipa::path(get, path = "/v1/engines/tasks", operation_id = "list_engine_tasks", params(TaskQuery),
    responses((status = 200, body = [TaskResultView]), (status = 401), (status = 422)),
    security(("bearer" = [])))]
pub async fn tasks(
    State(state): State<AppState>,
    principal: Principal,
    Query(query): Query<TaskQuery>,
) -> Result<Json<Vec<TaskResultView>>, ApiError> {
    principal.require(Role::Viewer)?;
    if let Some(status) = &query.status
        && !tars_store::TASK_STATUSES.contains(&status.as_str())
    {
        return Err(ApiError::unprocessable(format!(
            "unknown status '{status}'; valid: {}",
            tars_store::TASK_STATUSES.join(", ")
        )));
    }
    let rows = (state.service.postgres())
        .store(|| {
            state.service.store.task_results(
                query.engine.as_deref(),
                query.status.as_deref(),
                query.limit.unwrap_or(100),
            )
        })
        .await?;
    Ok(Json(rows.into_iter().map(task_view).collect()))
}

async fn findings(
    state: &AppState,
    kind: &str,
    query: FindingQuery,
) -> Result<Vec<FindingView>, ApiError> {
    let (open, limit) = (query.open.unwrap_or(true), query.limit.unwrap_or(100));
    let rows = (state.service.postgres())
        .store(|| state.service.store.findings(kind, open, limit))
        .await?;
    Ok(rows.into_iter().map(finding_view).collect())
}

/// The Analysis engine's insights: baseline drift and staleness (viewer).
#[utoipa::path(get, path = "/v1/insights", operation_id = "list_insights", params(FindingQuery),
    responses((status = 200, body = [FindingView]), (status = 401)),
    security(("bearer" = [])))]
pub async fn insights(
    State(state): State<AppState>,
    principal: Principal,
    Query(query): Query<FindingQuery>,
) -> Result<Json<Vec<FindingView>>, ApiError> {
    principal.require(Role::Viewer)?;
    Ok(Json(findings(&state, "insight", query).await?))
}

/// The Performance engine's alerts (viewer).
#[utoipa::path(get, path = "/v1/alerts", operation_id = "list_alerts", params(FindingQuery),
    responses((status = 200, body = [FindingView]), (status = 401)),
    security(("bearer" = [])))]
pub async fn alerts(
    State(state): State<AppState>,
    principal: Principal,
    Query(query): Query<FindingQuery>,
) -> Result<Json<Vec<FindingView>>, ApiError> {
    principal.require(Role::Viewer)?;
    Ok(Json(findings(&state, "alert", query).await?))
}

/// Asks the Intelligence engine for a live worker with a capability; the decision is stored
/// in `task_results` with its confidence (operator). 422 when no worker fits, 503 when the
/// engine's queue is full or it does not run here.
#[utoipa::path(post, path = "/v1/engines/route", operation_id = "route_task", request_body = RouteBody,
    responses((status = 200, body = RouteView), (status = 401), (status = 403),
              (status = 422), (status = 503)),
    security(("bearer" = [])))]
pub async fn route(
    State(state): State<AppState>,
    principal: Principal,
    ApiJson(body): ApiJson<RouteBody>,
) -> Result<Json<RouteView>, ApiError> {
    principal.require(Role::Operator)?;
    let capability = body.capability.trim();
    if capability.is_empty() || capability.len() > 100 {
        return Err(ApiError::unprocessable(
            "capability must be 1 to 100 characters, e.g. \"evaluate\"",
        ));
    }
    let runner = state.engines.runner("intelligence").ok_or_else(|| {
        ApiError::unavailable(
            "the intelligence engine does not run in this process (engines = 0)",
            60,
        )
    })?;
    let task = Task::new(
        "route",
        Priority::High,
        serde_json::json!({"capability": capability}),
    );
    let outcome = runner.call(task).await.map_err(|err| match err {
        QueueError::Backpressure { .. } => ApiError::unavailable(err.to_string(), 5),
        other => ApiError::unavailable(other.to_string(), 30),
    })?;
    match (outcome.status, outcome.output) {
        (TaskStatus::Completed, Some(output)) => Ok(Json(RouteView {
            task_id: outcome.task.id,
            worker: output.result["worker"].clone(),
            confidence: output.confidence.unwrap_or(0.0),
            candidates: output.result["candidates"]
                .as_array()
                .cloned()
                .unwrap_or_default(),
        })),
        (TaskStatus::Failed, _) => Err(ApiError::unprocessable(
            outcome.error.unwrap_or_else(|| "routing failed".into()),
        )),
        (status, _) => Err(ApiError::unavailable(
            format!(
                "the routing task ended {}: {}",
                status.as_str(),
                outcome.error.unwrap_or_default()
            ),
            5,
        )),
    }
}

/// Resumes HyperSync auto-apply for an agent type the Optimization engine paused (admin).
#[utoipa::path(delete, path = "/v1/agents/{agent_type}/auto_apply_pause",
    params(("agent_type" = String, Path, description = "DQN, A2C, PPO, DDPG or TD3")),
    responses((status = 200, body = PauseView), (status = 401), (status = 403), (status = 404)),
    security(("bearer" = [])))]
pub async fn resume_auto_apply(
    State(state): State<AppState>,
    principal: Principal,
    Path(agent_type): Path<String>,
) -> Result<Json<PauseView>, ApiError> {
    principal.require(Role::Admin)?;
    let agent = parse_agent(&agent_type)?;
    let resumed = (state.service.postgres())
        .store_once(|| (state.service.store).resume_auto_apply(agent.name(), &principal.subject))
        .await?
        .ok_or_else(|| {
            ApiError::not_found(format!("auto-apply of {} is not paused", agent.name()))
        })?;
    tracing::info!(agent_type = agent.name(), actor = %principal.subject, "auto-apply resumed");
    Ok(Json(pause_view(resumed)))
}
