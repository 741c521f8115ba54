//! Past work over HTTP: `GET /v1/jobs` and `GET /v1/runs` list jobs and stored evaluation runs
//! newest first, filtered (kind, status, agent type, environment, a time range) and paged by
//! cursor (`next_cursor` of one page is the `cursor` of the next); `GET /v1/runs/{run_id}` is
//! one run's stored response. Viewers may read them all.

use crate::app::AppState;
use crate::auth::{Principal, Role};
use crate::error::ApiError;
use axum::Json;
use axum::extract::{Path, Query, State};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tars_store::{JobFilter, JobKind, JobRow, JobStatus, Page, RunFilter, RunRow};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

/// Rows per page when `limit` is not given.
const DEFAULT_LIMIT: i64 = 50;

/// The filters and page of a listing.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Jobs only: evaluation, training or trial.
    pub kind: Option<String>,
    /// Jobs only: queued, running, succeeded, failed or cancelled.
    pub status: Option<String>,
    /// DQN, A2C, PPO, DDPG or TD3 (any case).
    pub agent_type: Option<String>,
    /// Runs only: runs with a result on this environment, e.g. CartPole-v1.
    pub environment: Option<String>,
    /// Created at or after this time (RFC 3339, e.g. 2026-12-08T00:00:00Z).
    pub since: Option<String>,
    /// Created before this time (RFC 3339).
    pub until: Option<String>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Rows per page, 1 to 200 (default 50).
    pub limit: Option<i64>,
}

impl ListQuery {
    fn page(&self) -> Result<Page, ApiError> {
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT);
        let (since, until) = (self.since.as_deref(), self.until.as_deref());
        Ok(Page::parse(since, until, self.cursor.as_deref(), limit)?)
    }

    fn refuse(&self, field: &str, value: &Option<String>, listing: &str) -> Result<(), ApiError> {
        match value {
            Some(_) => Err(ApiError::unprocessable(format!(
                "{field} filters jobs, not {listing}"
            ))),
            None => Ok(()),
        }
    }
}

/// A job in a listing: what it is and where it is, its result at its `status_url`.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobSummary {
    pub job_id: Uuid,
    pub kind: String,
    pub status: String,
    pub status_url: String,
    /// The request's agent type, when it names one.
    pub agent_type: Option<String>,
    /// Who submitted it.
    pub principal: String,
    /// The stored evaluation run, once an evaluation succeeded.
    pub run_id: Option<Uuid>,
    pub error: Option<String>,
    pub attempts: i32,
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
}

/// A page of jobs, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobsPage {
    pub jobs: Vec<JobSummary>,
    /// Pass as `cursor` for the next page; absent on the last one.
    pub next_cursor: Option<String>,
}

/// One environment's result in a run listing.
#[derive(Debug, Serialize, ToSchema)]
pub struct ResultSummary {
    /// What `tars baseline promote` and `POST /v1/baselines` name.
    pub result_id: Uuid,
    pub environment: String,
    pub mean_reward: Option<f64>,
    pub std_reward: Option<f64>,
    /// The regression verdict against the baseline, when one was compared.
    #[schema(value_type = Option<Object>)]
    pub regression: Option<Value>,
}

/// A stored evaluation run in a listing.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunSummary {
    pub run_id: Uuid,
    pub agent_type: String,
    pub seed: u64,
    pub duration_seconds: f64,
    pub created_at: String,
    pub results: Vec<ResultSummary>,
}

/// A page of runs, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunsPage {
    pub runs: Vec<RunSummary>,
    /// Pass as `cursor` for the next page; absent on the last one.
    pub next_cursor: Option<String>,
}

pub fn parse_kind(text: &str) -> Result<JobKind, ApiError> {
    JobKind::ALL
        .into_iter()
        .find(|k| k.as_str() == text)
        .ok_or_else(|| {
            ApiError::unprocessable(format!(
                "kind '{text}' is not a job kind; valid: evaluation, training, trial"
            ))
        })
}

pub fn parse_status(text: &str) -> Result<JobStatus, ApiError> {
    JobStatus::ALL
        .into_iter()
        .find(|s| s.as_str() == text)
        .ok_or_else(|| {
            ApiError::unprocessable(format!(
                "status '{text}' is not a job status; valid: queued, running, succeeded, failed, cancelled"
            ))
        })
}

pub fn job_summary(row: JobRow) -> JobSummary {
    JobSummary {
        job_id: row.id,
        kind: row.kind.as_str().to_string(),
        status: row.status.as_str().to_string(),
        status_url: format!("/v1/jobs/{}", row.id),
        agent_type: row.request["agent_type"]
            .as_str()
            .map(|a| a.to_ascii_uppercase()),
        principal: row.principal,
        run_id: row.run_id,
        error: row.error,
        attempts: row.attempts,
        created_at: row.created_at.to_rfc3339(),
        started_at: row.started_at.map(|t| t.to_rfc3339()),
        finished_at: row.finished_at.map(|t| t.to_rfc3339()),
    }
}

pub fn run_summary(run: RunRow) -> RunSummary {
    RunSummary {
        run_id: run.id,
        agent_type: run.agent_type,
        seed: run.seed,
        duration_seconds: run.duration_seconds,
        created_at: run.created_at.to_rfc3339(),
        results: run
            .results
            .into_iter()
            .map(|result| ResultSummary {
                result_id: result.id,
                mean_reward: result.metrics["mean_reward"].as_f64(),
                std_reward: result.metrics["std_reward"].as_f64(),
                environment: result.environment,
                regression: result.regression,
            })
            .collect(),
    }
}

/// Jobs, newest first (viewer).
#[utoipa::path(get, path = "/v1/jobs", operation_id = "list_jobs", params(ListQuery),
    responses((status = 200, body = JobsPage), (status = 422)), security(("bearer" = [])))]
pub async fn list_jobs(
    State(state): State<AppState>,
    principal: Principal,
    Query(query): Query<ListQuery>,
) -> Result<Json<JobsPage>, ApiError> {
    principal.require(Role::Viewer)?;
    if query.environment.is_some() {
        return Err(ApiError::unprocessable(
            "environment filters runs, not jobs; use GET /v1/runs?environment=…",
        ));
    }
    let filter = JobFilter {
        kind: query.kind.as_deref().map(parse_kind).transpose()?,
        status: query.status.as_deref().map(parse_status).transpose()?,
        agent_type: query.agent_type.clone(),
        page: query.page()?,
    };
    let listed = (state.service.postgres())
        .store(|| state.service.store.list_jobs(&filter))
        .await?;
    Ok(Json(JobsPage {
        next_cursor: listed.next.map(|c| c.encode()),
        jobs: listed.rows.into_iter().map(job_summary).collect(),
    }))
}

/// Stored evaluation runs, newest first (viewer).
#[utoipa::path(get, path = "/v1/runs", operation_id = "list_runs", params(ListQuery),
    responses((status = 200, body = RunsPage), (status = 422)), security(("bearer" = [])))]
pub async fn list_runs(
    State(state): State<AppState>,
    principal: Principal,
    Query(query): Query<ListQuery>,
) -> Result<Json<RunsPage>, ApiError> {
    principal.require(Role::Viewer)?;
    query.refuse("kind", &query.kind, "runs")?;
    query.refuse("status", &query.status, "runs")?;
    let filter = RunFilter {
        agent_type: query.agent_type.clone(),
        environment: query.environment.clone(),
        page: query.page()?,
    };
    let listed = (state.service.postgres())
        .store(|| state.service.store.list_runs(&filter))
        .await?;
    Ok(Json(RunsPage {
        next_cursor: listed.next.map(|c| c.encode()),
        runs: listed.rows.into_iter().map(run_summary).collect(),
    }))
}

/// One stored run: the evaluation's response as it was answered (viewer).
#[utoipa::path(get, path = "/v1/runs/{run_id}", operation_id = "get_run",
    params(("run_id" = String, Path)),
    responses((status = 200, body = tars_eval::EvalResponse), (status = 404)),
    security(("bearer" = [])))]
pub async fn get_run(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    principal.require(Role::Viewer)?;
    let missing = || ApiError::not_found(format!("run '{id}' does not exist (run ids are UUIDs)"));
    let run_id: Uuid = id.parse().map_err(|_| missing())?;
    let run = (state.service.postgres())
        .store(|| state.service.store.run(run_id))
        .await?
        .ok_or_else(missing)?;
    Ok(Json(run.response))
}
