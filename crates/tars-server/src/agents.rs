//! The live agents over HTTP: `act`, the active config and its history, direct config writes
//! and rollback. Every answer names the config version that served it.

use crate::app::AppState;
use crate::auth::{Principal, Role};
use crate::error::ApiError;
use crate::hypersync::{ConfigBody, ConfigView};
use crate::middleware::ApiJson;
use axum::Json;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tars_hypersync::{ActError, ActionBatch};
use utoipa::ToSchema;

/// `POST /v1/agents/{type}/act`: one observation or a batch.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActBody {
    /// One observation.
    #[serde(default)]
    pub observation: Option<Vec<f32>>,
    /// A batch of observations.
    #[serde(default)]
    pub observations: Option<Vec<Vec<f32>>>,
    /// The policy's mode (default true); false samples with `seed`.
    #[serde(default = "yes")]
    pub deterministic: bool,
    #[serde(default)]
    pub seed: u64,
}

fn yes() -> bool {
    true
}

/// Actions and the config version that chose them.
#[derive(Debug, Serialize, ToSchema)]
pub struct ActView {
    pub agent_type: String,
    pub version: i32,
    pub environment: Option<String>,
    /// The action for `observation` (absent for a batch).
    #[schema(value_type = Option<Object>)]
    pub action: Option<Value>,
    /// One action per observation: an index (discrete) or a vector (continuous).
    #[schema(value_type = Object)]
    pub actions: Value,
}

/// Actions of the live policy (viewer).
#[utoipa::path(post, path = "/v1/agents/{agent_type}/act", operation_id = "agent_act", request_body = ActBody,
    params(("agent_type" = String, Path)),
    responses((status = 200, body = ActView), (status = 404), (status = 409), (status = 422)),
    security(("bearer" = [])))]
pub async fn act(
    State(state): State<AppState>,
    principal: Principal,
    Path(agent_type): Path<String>,
    ApiJson(body): ApiJson<ActBody>,
) -> Result<Json<ActView>, ApiError> {
    principal.require(Role::Viewer)?;
    let algo = crate::hypersync::parse_agent(&agent_type)?;
    let snapshot = state
        .hypersync
        .live()
        .snapshot(algo.name())
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "{} has no live config; PUT /v1/agents/{}/config or apply a proposal",
                algo.name(),
                algo.name()
            ))
        })?;
    let (observations, single) = match (body.observation, body.observations) {
        (Some(one), None) => (one, true),
        (None, Some(batch)) => (batch.concat(), false),
        _ => {
            return Err(ApiError::unprocessable(
                "give exactly one of observation (a list of numbers) or observations (a list of them)",
            ));
        }
    };
    let acted = snapshot
        .act(&observations, body.deterministic, body.seed)
        .map_err(|err| match err {
            ActError::NoPolicy { .. } => ApiError::conflict(err.to_string()),
            _ => ApiError::unprocessable(err.to_string()),
        })?;
    if let Some(latency) = acted.reload_latency {
        metrics::histogram!("tars_hypersync_reload_seconds", "agent_type" => algo.name())
            .record(latency.as_secs_f64());
    }
    let actions: Vec<Value> = match acted.actions {
        ActionBatch::Discrete(actions) => actions.into_iter().map(|a| json!(a)).collect(),
        ActionBatch::Continuous { dim, values } => {
            values.chunks_exact(dim).map(|row| json!(row)).collect()
        }
    };
    Ok(Json(ActView {
        agent_type: algo.name().to_string(),
        version: acted.version,
        environment: snapshot.environment().map(str::to_string),
        action: single.then(|| actions[0].clone()),
        actions: Value::Array(actions),
    }))
}

/// The active config, and the version this server serves (viewer).
#[utoipa::path(get, path = "/v1/agents/{agent_type}/config", params(("agent_type" = String, Path)),
    responses((status = 200, body = ConfigView), (status = 404), (status = 503)), security(("bearer" = [])))]
pub async fn get_config(
    State(state): State<AppState>,
    principal: Principal,
    Path(agent_type): Path<String>,
) -> Result<Json<Value>, ApiError> {
    principal.require(Role::Viewer)?;
    let row = state.hypersync.config(&agent_type).await?;
    let served = state
        .hypersync
        .live()
        .snapshot(&row.agent_type)
        .map(|s| s.config.version);
    let mut view = serde_json::to_value(ConfigView::from(row)).expect("serialises");
    view["served_version"] = json!(served);
    Ok(Json(view))
}

/// Every config version, oldest first (viewer).
#[utoipa::path(get, path = "/v1/agents/{agent_type}/config/history",
    params(("agent_type" = String, Path)),
    responses((status = 200, body = [ConfigView]), (status = 503)), security(("bearer" = [])))]
pub async fn config_history(
    State(state): State<AppState>,
    principal: Principal,
    Path(agent_type): Path<String>,
) -> Result<Json<Vec<ConfigView>>, ApiError> {
    principal.require(Role::Viewer)?;
    let algo = crate::hypersync::parse_agent(&agent_type)?;
    let rows = (state.service.postgres())
        .store(|| state.service.store.config_history(algo.name()))
        .await?;
    Ok(Json(rows.into_iter().map(ConfigView::from).collect()))
}

/// Write the next config version (admin); 409 when `expected_version` is stale.
#[utoipa::path(put, path = "/v1/agents/{agent_type}/config", request_body = ConfigBody,
    params(("agent_type" = String, Path)),
    responses((status = 200, body = ConfigView), (status = 409), (status = 422), (status = 503)),
    security(("bearer" = [])))]
pub async fn put_config(
    State(state): State<AppState>,
    principal: Principal,
    Path(agent_type): Path<String>,
    ApiJson(body): ApiJson<ConfigBody>,
) -> Result<Json<ConfigView>, ApiError> {
    principal.require(Role::Admin)?;
    let row = state
        .hypersync
        .put_config(&agent_type, body, &principal.subject)
        .await?;
    Ok(Json(row.into()))
}

/// `POST /v1/rollback`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RollbackBody {
    pub agent_type: String,
    /// Default: the version before the active one.
    #[serde(default)]
    pub to_version: Option<i32>,
    #[serde(default)]
    pub reason: Option<String>,
}

/// Restore an earlier config version as a new version (admin).
#[utoipa::path(post, path = "/v1/rollback", request_body = RollbackBody,
    responses((status = 200, body = ConfigView), (status = 404), (status = 409), (status = 422),
              (status = 503)),
    security(("bearer" = [])))]
pub async fn rollback(
    State(state): State<AppState>,
    principal: Principal,
    ApiJson(body): ApiJson<RollbackBody>,
) -> Result<Json<ConfigView>, ApiError> {
    principal.require(Role::Admin)?;
    let row = state
        .hypersync
        .rollback(
            &body.agent_type,
            body.to_version,
            body.reason,
            &principal.subject,
        )
        .await?;
    Ok(Json(row.into()))
}
