//! Proposals over HTTP: submit (operator), read and list (viewer), approve and reject (admin).

use crate::app::AppState;
use crate::auth::{Principal, Role};
use crate::error::ApiError;
use crate::hypersync::ProposalBody;
use crate::middleware::ApiJson;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tars_hypersync::ProposalStatus;
use tars_store::ProposalRow;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

/// A proposal, its evaluation and every status change.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProposalView {
    pub id: Uuid,
    pub agent_type: String,
    /// pending, evaluating, rejected, awaiting_approval, approved, applied or rolled_back.
    pub status: String,
    /// Why it is in this status (e.g. the regression detector's reason for a rejection).
    pub reason: Option<String>,
    /// Why the proposer wanted it.
    pub proposer_reason: Option<String>,
    #[schema(value_type = Object)]
    pub proposed_hyperparameters: Value,
    /// The submitted body, defaults filled in.
    #[schema(value_type = Object)]
    pub request: Value,
    /// The evaluation response (`GET /v1/proposals/{id}` only).
    #[schema(value_type = Option<Object>)]
    pub evaluation: Option<Value>,
    pub evaluation_id: Option<Uuid>,
    pub checkpoint_id: Option<String>,
    /// The agent config version it became.
    pub applied_version: Option<i32>,
    pub created_by: String,
    pub created_at: String,
    pub updated_at: String,
    pub history: Vec<EventView>,
}

/// One status change.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventView {
    pub from: Option<String>,
    pub to: String,
    pub actor: String,
    pub reason: Option<String>,
    pub at: String,
}

async fn view(
    state: &AppState,
    row: ProposalRow,
    with_evaluation: bool,
) -> Result<ProposalView, ApiError> {
    let (postgres, store) = (state.service.postgres(), &state.service.store);
    let history = postgres
        .store(|| store.proposal_events(row.id))
        .await?
        .into_iter()
        .map(|e| EventView {
            from: e.from_status,
            to: e.to_status,
            actor: e.actor,
            reason: e.reason,
            at: e.at.to_rfc3339(),
        })
        .collect();
    let evaluation = match (with_evaluation, row.evaluation_id) {
        (true, Some(run)) => postgres
            .store(|| store.run(run))
            .await?
            .map(|run| run.response),
        _ => None,
    };
    Ok(ProposalView {
        id: row.id,
        agent_type: row.agent_type,
        status: row.status,
        reason: row.status_reason,
        proposer_reason: row.reason,
        proposed_hyperparameters: row.hyperparameters,
        request: row.request,
        evaluation,
        evaluation_id: row.evaluation_id,
        checkpoint_id: row.checkpoint_id,
        applied_version: row.applied_version,
        created_by: row.created_by,
        created_at: row.created_at.to_rfc3339(),
        updated_at: row.updated_at.to_rfc3339(),
        history,
    })
}

fn parse_id(id: &str) -> Result<Uuid, ApiError> {
    id.parse().map_err(|_| {
        ApiError::not_found(format!(
            "proposal '{id}' does not exist (proposal ids are UUIDs)"
        ))
    })
}

/// Submit a proposal (operator; `auto_apply` needs admin). With `evaluate_before_apply` the
/// answer waits up to `sync_wait_seconds` for the verdict: 201 when decided, else 202.
#[utoipa::path(post, path = "/v1/proposals", operation_id = "create_proposal", request_body = ProposalBody,
    responses((status = 201, body = ProposalView), (status = 202, body = ProposalView),
              (status = 403), (status = 422)),
    security(("bearer" = [])))]
pub async fn create(
    State(state): State<AppState>,
    principal: Principal,
    ApiJson(body): ApiJson<ProposalBody>,
) -> Result<Response, ApiError> {
    principal.require(Role::Operator)?;
    let may_apply = principal.role >= Role::Admin;
    let row = state
        .hypersync
        .propose(body, &principal.subject, may_apply)
        .await?;
    let row = state.hypersync.wait(row.id, state.sync_wait).await?;
    let status = if row.status == "evaluating" {
        StatusCode::ACCEPTED
    } else {
        StatusCode::CREATED
    };
    let location = format!("/v1/proposals/{}", row.id);
    let mut response = (status, Json(view(&state, row, true).await?)).into_response();
    if let Ok(value) = location.parse() {
        response.headers_mut().insert(header::LOCATION, value);
    }
    Ok(response)
}

/// A proposal with its evaluation and history (viewer).
#[utoipa::path(get, path = "/v1/proposals/{id}", operation_id = "get_proposal", params(("id" = String, Path)),
    responses((status = 200, body = ProposalView), (status = 404)), security(("bearer" = [])))]
pub async fn get(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<ProposalView>, ApiError> {
    principal.require(Role::Viewer)?;
    let row = state.hypersync.proposal(parse_id(&id)?).await?;
    Ok(Json(view(&state, row, true).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    pub agent_type: Option<String>,
    pub status: Option<String>,
    /// At most this many, newest first (default 100, at most 1,000).
    pub limit: Option<i64>,
}

/// Proposals, newest first (viewer).
#[utoipa::path(get, path = "/v1/proposals", operation_id = "list_proposals", params(ListQuery),
    responses((status = 200, body = [ProposalView]), (status = 422)), security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    principal: Principal,
    Query(query): Query<ListQuery>,
) -> Result<Json<Vec<ProposalView>>, ApiError> {
    principal.require(Role::Viewer)?;
    if let Some(status) = &query.status {
        ProposalStatus::parse(status).map_err(ApiError::unprocessable)?;
    }
    let agent = query
        .agent_type
        .as_deref()
        .map(crate::hypersync::parse_agent)
        .transpose()?;
    let rows = (state.service.postgres())
        .store(|| {
            state.service.store.proposals(
                agent.map(|a| a.name()),
                query.status.as_deref(),
                query.limit.unwrap_or(100),
            )
        })
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        out.push(view(&state, row, false).await?);
    }
    Ok(Json(out))
}

/// An admin's decision.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionBody {
    #[serde(default)]
    pub reason: Option<String>,
}

/// The optional body of approve/reject: empty, or `{"reason": "…"}`.
fn decision_reason(body: &[u8]) -> Result<Option<String>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice::<DecisionBody>(body)
        .map(|b| b.reason)
        .map_err(|e| {
            ApiError::unprocessable(format!(
                "the body must be empty or {{\"reason\": \"…\"}}: {e}"
            ))
        })
}

/// Approve a proposal awaiting approval, which applies it (admin); 409 from any other status.
#[utoipa::path(post, path = "/v1/proposals/{id}/approve", operation_id = "approve_proposal", params(("id" = String, Path)),
    request_body = DecisionBody,
    responses((status = 200, body = ProposalView), (status = 404), (status = 409)),
    security(("bearer" = [])))]
pub async fn approve(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<ProposalView>, ApiError> {
    decide(&state, &principal, &id, &body, true).await
}

/// Reject a proposal that is not decided yet (admin).
#[utoipa::path(post, path = "/v1/proposals/{id}/reject", operation_id = "reject_proposal", params(("id" = String, Path)),
    request_body = DecisionBody,
    responses((status = 200, body = ProposalView), (status = 404), (status = 409)),
    security(("bearer" = [])))]
pub async fn reject(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<ProposalView>, ApiError> {
    decide(&state, &principal, &id, &body, false).await
}

async fn decide(
    state: &AppState,
    principal: &Principal,
    id: &str,
    body: &[u8],
    approve: bool,
) -> Result<Json<ProposalView>, ApiError> {
    principal.require(Role::Admin)?;
    let (id, reason) = (parse_id(id)?, decision_reason(body)?);
    let hypersync = &state.hypersync;
    let row = if approve {
        hypersync.approve(id, &principal.subject, reason).await?
    } else {
        hypersync.reject(id, &principal.subject, reason).await?
    };
    Ok(Json(view(state, row, true).await?))
}
