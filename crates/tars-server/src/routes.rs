//! The API's handlers: evaluation and jobs, baselines, health and readiness, metrics, OpenAPI.
//! Each states the role it needs; the paths, fields and status codes are the seeds'.

use crate::app::AppState;
use crate::auth::{Principal, Role};
use crate::error::ApiError;
use crate::jobs::{SubmitError, Submitted};
use crate::middleware::ApiJson;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tars_eval::EvalRequest;
use tars_store::{JobRow, JobStatus, NewBaseline, Promotion};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

/// A job's state, and its result once it succeeded.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobView {
    pub job_id: Uuid,
    /// evaluation, training or trial.
    pub kind: String,
    /// queued, running, succeeded, failed or cancelled.
    pub status: String,
    pub status_url: String,
    /// Per environment: phase and training timesteps (running jobs only).
    #[schema(value_type = Option<Object>)]
    pub progress: Option<Value>,
    /// Succeeded jobs only: an evaluation's response, a training's checkpoint and scores, a
    /// trial's outcome.
    #[schema(value_type = Option<Object>)]
    pub result: Option<Value>,
    pub error: Option<String>,
    pub attempts: i32,
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
}

pub(crate) async fn job_view(state: &AppState, row: JobRow) -> Result<JobView, ApiError> {
    let result = match row.run_id {
        Some(run_id) => (state.service.postgres())
            .store(|| state.service.store.run(run_id))
            .await?
            .map(|run| run.response),
        None => row.result,
    };
    Ok(JobView {
        job_id: row.id,
        kind: row.kind.as_str().to_string(),
        status: row.status.as_str().to_string(),
        status_url: format!("/v1/jobs/{}", row.id),
        progress: state.jobs.progress(row.id),
        result,
        error: row.error,
        attempts: row.attempts,
        created_at: row.created_at.to_rfc3339(),
        started_at: row.started_at.map(|t| t.to_rfc3339()),
        finished_at: row.finished_at.map(|t| t.to_rfc3339()),
    })
}

/// Evaluate an agent configuration (operator). 200 with the results when done within the
/// wait limit, else 202 with the job; `Prefer: respond-async` gives 202 at once.
#[utoipa::path(post, path = "/v1/evaluate",
    request_body(content = EvalRequest, example = json!({
        "agent_type": "PPO", "environments": ["CartPole-v1"], "num_episodes": 10,
        "hyperparameters": {"learning_rate": 0.0003, "n_timesteps": 50000},
        "compare_to_baseline": true})),
    params(("Idempotency-Key" = Option<String>, Header, description = "de-duplicates submissions"),
           ("Prefer" = Option<String>, Header, description = "respond-async: 202 at once")),
    responses((status = 200, body = tars_eval::EvalResponse), (status = 202, body = JobView),
              (status = 401), (status = 403), (status = 422), (status = 503)),
    security(("bearer" = [])))]
pub async fn evaluate(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    ApiJson(request): ApiJson<EvalRequest>,
) -> Result<Response, ApiError> {
    principal.require(Role::Operator)?;
    let key = idempotency_key(&headers)?;
    let respond_async = respond_async(&headers);
    let row = match state.jobs.submit(&request, &principal.subject, key).await {
        Ok(Submitted::New(row) | Submitted::Existing(row)) => row,
        Err(SubmitError::Invalid(err)) => return Err(err.into()),
        Err(err) => return Err(submit_error(err)),
    };
    let row = if respond_async {
        // The row the submit stored or found: no second read.
        Some(row)
    } else {
        state.jobs.wait(row.id, state.sync_wait).await?
    }
    .ok_or_else(|| ApiError::not_found("job vanished"))?;
    let status = row.status;
    if status == JobStatus::Succeeded
        && let Some(run_id) = row.run_id
        && let Some(run) = (state.service.postgres())
            .store(|| state.service.store.run(run_id))
            .await?
    {
        return Ok((StatusCode::OK, Json(run.response)).into_response());
    }
    if status == JobStatus::Failed && !respond_async {
        let message = row
            .error
            .clone()
            .unwrap_or_else(|| "the evaluation failed".into());
        return Err(ApiError::unprocessable(message).with_details(json!({"job_id": row.id})));
    }
    Ok(accepted(job_view(&state, row).await?))
}

/// The `Idempotency-Key` header, if any.
pub(crate) fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    headers
        .get("idempotency-key")
        .map(|v| {
            v.to_str()
                .map(str::to_string)
                .map_err(|_| ApiError::bad_request("Idempotency-Key must be visible ASCII"))
        })
        .transpose()
}

/// Whether the caller asked for 202 at once (`Prefer: respond-async`).
pub(crate) fn respond_async(headers: &HeaderMap) -> bool {
    headers
        .get("prefer")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|p| p.trim() == "respond-async"))
}

/// The answer to a refused submission (an invalid request is the caller's to map).
pub(crate) fn submit_error(err: SubmitError) -> ApiError {
    match err {
        SubmitError::Invalid(err) => err.into(),
        SubmitError::Store(err) => err.into(),
        SubmitError::KeyReused { key, kind } => ApiError::unprocessable(format!(
            "Idempotency-Key '{key}' was already used for a job of kind '{kind}'; use a new key for each submission"
        )),
        SubmitError::QueueFull => ApiError::unavailable("the job queue is full; retry later", 30),
        SubmitError::PrincipalBusy { limit } => ApiError::rate_limited(
            format!(
                "you already have {limit} jobs queued or running; retry when one ends, or ask an \
             operator to raise max_queued_per_principal"
            ),
            10,
        )
        .with_details(json!({"limit": limit, "key": "max_queued_per_principal"})),
    }
}

/// 202 with the job's view and its `Location`.
pub(crate) fn accepted(view: JobView) -> Response {
    let location = view.status_url.clone();
    let mut response = (StatusCode::ACCEPTED, Json(view)).into_response();
    if let Ok(value) = location.parse() {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

/// The stored job `id`, or 404.
async fn find_job(state: &AppState, id: &str) -> Result<JobRow, ApiError> {
    let id: Uuid = id.parse().map_err(|_| {
        ApiError::not_found(format!("job '{id}' does not exist (job ids are UUIDs)"))
    })?;
    (state.service.postgres())
        .store(|| state.service.store.job(id))
        .await?
        .ok_or_else(|| ApiError::not_found(format!("job {id} does not exist")))
}

/// A job's status, progress and result (viewer).
#[utoipa::path(get, path = "/v1/jobs/{job_id}", params(("job_id" = String, Path)),
    responses((status = 200, body = JobView), (status = 404), (status = 503)), security(("bearer" = [])))]
pub async fn get_job(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<JobView>, ApiError> {
    principal.require(Role::Viewer)?;
    let row = find_job(&state, &id).await?;
    Ok(Json(job_view(&state, row).await?))
}

/// Cancel a job (operator): a queued job at once, a running one at its next training step.
#[utoipa::path(delete, path = "/v1/jobs/{job_id}", params(("job_id" = String, Path)),
    responses((status = 200, body = JobView), (status = 404), (status = 409)),
    security(("bearer" = [])))]
pub async fn cancel_job(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<JobView>, ApiError> {
    principal.require(Role::Operator)?;
    let before = find_job(&state, &id).await?;
    if before.status.is_final() {
        return Err(ApiError::conflict(format!(
            "job {} already {}; only queued or running jobs can be cancelled",
            before.id, before.status
        )));
    }
    let row = state.jobs.cancel(before.id).await?.unwrap_or(before);
    Ok(Json(job_view(&state, row).await?))
}

/// A stored baseline row, as the seed's table has it.
#[derive(Debug, Serialize, ToSchema)]
pub struct BaselineView {
    pub id: Uuid,
    pub agent_type: String,
    pub environment: String,
    pub mean_reward: f64,
    pub std_reward: f64,
    pub success_rate: f64,
    #[schema(value_type = Object)]
    pub hyperparameters: Value,
    pub version: i32,
    pub rank: i32,
    pub created_at: String,
    pub updated_at: String,
}

impl From<tars_store::BaselineRow> for BaselineView {
    fn from(r: tars_store::BaselineRow) -> BaselineView {
        BaselineView {
            id: r.id,
            agent_type: r.agent_type,
            environment: r.environment,
            mean_reward: r.mean_reward,
            std_reward: r.std_reward,
            success_rate: r.success_rate,
            hyperparameters: r.hyperparameters,
            version: r.version,
            rank: r.rank,
            created_at: r.created_at.to_rfc3339(),
            updated_at: r.updated_at.to_rfc3339(),
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BaselineQuery {
    /// Gymnasium id, e.g. CartPole-v1 (all environments when absent).
    pub environment: Option<String>,
    /// History rows to return (default 50).
    pub limit: Option<i64>,
}

fn agent(agent_type: &str) -> Result<&'static str, ApiError> {
    agent_type
        .parse::<tars_agents::Algo>()
        .map(|a| a.name())
        .map_err(|_| {
            ApiError::not_found(format!(
                "unknown agent_type '{agent_type}'; valid: DQN, A2C, PPO, DDPG, TD3"
            ))
        })
}

fn environment(env: &str) -> Result<&'static str, ApiError> {
    tars_envs::spec(env)
        .map(|spec| spec.id)
        .map_err(|err| ApiError::unprocessable(err.to_string()))
}

/// Baselines of an agent type, best rank first (viewer).
#[utoipa::path(get, path = "/v1/baselines/{agent_type}", params(("agent_type" = String, Path), BaselineQuery),
    responses((status = 200, body = [BaselineView]), (status = 404), (status = 503)), security(("bearer" = [])))]
pub async fn get_baselines(
    State(state): State<AppState>,
    principal: Principal,
    Path(agent_type): Path<String>,
    Query(query): Query<BaselineQuery>,
) -> Result<Json<Vec<BaselineView>>, ApiError> {
    principal.require(Role::Viewer)?;
    let agent = agent(&agent_type)?;
    let env = query.environment.as_deref().map(environment).transpose()?;
    let rows = state.service.baselines(agent, env).await?;
    Ok(Json(rows.iter().cloned().map(BaselineView::from).collect()))
}

/// Every change to an agent type's baselines on one environment, newest first (viewer).
#[utoipa::path(get, path = "/v1/baselines/{agent_type}/history", params(("agent_type" = String, Path), BaselineQuery),
    responses((status = 200, body = [Object]), (status = 404), (status = 422), (status = 503)),
    security(("bearer" = [])))]
pub async fn get_history(
    State(state): State<AppState>,
    principal: Principal,
    Path(agent_type): Path<String>,
    Query(query): Query<BaselineQuery>,
) -> Result<Json<Vec<Value>>, ApiError> {
    principal.require(Role::Viewer)?;
    let agent = agent(&agent_type)?;
    let env = environment(query.environment.as_deref().ok_or_else(|| {
        ApiError::unprocessable("environment is required, e.g. ?environment=CartPole-v1")
    })?)?;
    let limit = query.limit.unwrap_or(50).clamp(1, 1000);
    let rows = (state.service.postgres())
        .store(|| state.service.store.history(agent, env, limit))
        .await?;
    Ok(Json(rows.iter().map(history_json).collect()))
}

/// One `baseline_history` entry as the API (and `tars baseline history --json`) shows it.
pub fn history_json(h: &tars_store::HistoryRow) -> Value {
    json!({
        "id": h.id, "baseline_id": h.baseline_id, "agent_type": h.agent_type,
        "environment": h.environment, "rank": h.rank, "version": h.version,
        "mean_reward": h.mean_reward, "std_reward": h.std_reward,
        "success_rate": h.success_rate, "hyperparameters": h.hyperparameters,
        "action": h.action.as_str(), "eval_result_id": h.eval_result_id,
        "actor": h.actor, "created_at": h.created_at.to_rfc3339(),
    })
}

/// A baseline: the seed table's columns. With `expected_version` it is a promotion (re-ranks,
/// 409 when someone moved first); without, a direct insert (409 when the rank is taken).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BaselineBody {
    pub agent_type: String,
    pub environment: String,
    pub mean_reward: f64,
    pub std_reward: f64,
    pub success_rate: f64,
    #[serde(default = "empty_object")]
    #[schema(value_type = Object)]
    pub hyperparameters: Value,
    /// Stored as given (direct insert only).
    pub version: Option<i32>,
    #[serde(default = "one")]
    pub rank: i32,
    /// The version the client read; 0 when there were no baselines yet.
    pub expected_version: Option<i32>,
    /// The stored evaluation result the numbers come from.
    pub eval_result_id: Option<Uuid>,
}

fn empty_object() -> Value {
    json!({})
}

fn one() -> i32 {
    1
}

/// Create or promote a baseline (admin).
#[utoipa::path(post, path = "/v1/baselines",
    request_body(content = BaselineBody, example = json!({
        "agent_type": "DQN", "environment": "CartPole-v1", "mean_reward": 450.0,
        "std_reward": 25.0, "success_rate": 0.95, "rank": 1,
        "hyperparameters": {"learning_rate": 0.001, "gamma": 0.99}})),
    responses((status = 201, body = BaselineView), (status = 409), (status = 422), (status = 503)),
    security(("bearer" = [])))]
pub async fn post_baseline(
    State(state): State<AppState>,
    principal: Principal,
    ApiJson(body): ApiJson<BaselineBody>,
) -> Result<(StatusCode, Json<BaselineView>), ApiError> {
    principal.require(Role::Admin)?;
    let agent_type = agent(&body.agent_type)
        .map_err(|e| ApiError::unprocessable(e.message))?
        .to_string();
    let environment = environment(&body.environment)?.to_string();
    let service = &state.service;
    let row = match body.expected_version {
        Some(expected) => {
            service
                .promote_baseline(&Promotion {
                    agent_type,
                    environment,
                    mean_reward: body.mean_reward,
                    std_reward: body.std_reward,
                    success_rate: body.success_rate,
                    hyperparameters: body.hyperparameters,
                    rank: body.rank,
                    expected_version: (expected > 0).then_some(expected),
                    eval_result_id: body.eval_result_id,
                    actor: Some(principal.subject.clone()),
                })
                .await?
        }
        None => {
            service
                .insert_baseline(&NewBaseline {
                    agent_type,
                    environment,
                    mean_reward: body.mean_reward,
                    std_reward: body.std_reward,
                    success_rate: body.success_rate,
                    hyperparameters: body.hyperparameters,
                    version: body.version.unwrap_or(1),
                    rank: body.rank,
                })
                .await?
        }
    };
    Ok((StatusCode::CREATED, Json(row.into())))
}

/// Liveness with the state of each dependency (the seed's shape); 503 when the database is
/// down (its check is at most one second old). A degraded Redis is reported, not failed: the
/// service works without it.
#[utoipa::path(get, path = "/health", responses(
    (status = 200, body = Object, description = "up: the report of each dependency"),
    (status = 503, body = Object, description = "the database is down: the same report")))]
pub async fn health(State(state): State<AppState>) -> Response {
    let store = &state.service.store;
    let cached = *state.health.lock().expect("health lock");
    let up = match cached {
        Some((at, up)) if at.elapsed() < std::time::Duration::from_secs(1) => up,
        _ => {
            let up = store.ping().await.is_ok();
            *state.health.lock().expect("health lock") = Some((std::time::Instant::now(), up));
            up
        }
    };
    let connection = if up { "connected" } else { "disconnected" };
    let database_key = if store.backend() == "postgres" {
        "postgres"
    } else {
        "database"
    };
    let mut body = json!({
        "status": if up { "healthy" } else { "unhealthy" },
        "service": "eval-engine",
        "version": env!("CARGO_PKG_VERSION"),
        database_key: connection,
        "redis": "not configured",
        "queue_depth": state.jobs.queue_depth(),
    });
    match state.service.redis.as_ref().map(|redis| redis.status()) {
        None => {}
        Some(crate::redis::Status::Connected) => body["redis"] = json!("connected"),
        Some(crate::redis::Status::Degraded(reason)) => {
            body["redis"] = json!("degraded");
            body["redis_reason"] = json!(reason);
        }
    }
    let status = if up {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

/// Readiness: the database answers and the service is not shutting down.
#[utoipa::path(get, path = "/ready", responses(
    (status = 200, body = Object, description = "ready for traffic"),
    (status = 503, description = "shutting down or the database unreachable (the message says which); Retry-After 5")))]
pub async fn ready(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    if state
        .shutting_down
        .load(std::sync::atomic::Ordering::Relaxed)
    {
        return Err(ApiError::unavailable("shutting down", 5));
    }
    state
        .service
        .store
        .ping()
        .await
        .map_err(|err| ApiError::unavailable(format!("database unreachable: {err}"), 5))?;
    Ok(Json(json!({"status": "ready"})))
}

/// Prometheus text exposition.
#[utoipa::path(get, path = "/metrics", responses(
    (status = 200, content_type = "text/plain", description = "the Prometheus text exposition format")))]
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        crate::app::render_metrics(&state.metrics),
    )
}

/// This API's OpenAPI 3.1 document.
pub async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(crate::api_doc::openapi())
}

/// Any path the API does not have.
pub async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint; GET /openapi.json lists them")
}
