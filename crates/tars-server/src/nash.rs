//! `POST /v1/nash/compute`: equilibria of a raw two-player game, or the conflict resolution of
//! proposals scored on environments, with the stability and conflict gauges the seeds'
//! dashboards read. The variant that names stored HyperSync proposals scores each on each
//! environment from its stored evaluation, evaluating what is missing.

use crate::app::AppState;
use crate::auth::{Principal, Role};
use crate::error::ApiError;
use crate::hypersync::ProposalBody;
use crate::jobs::Jobs;
use crate::middleware::ApiJson;
use crate::service::Service;
use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};
use std::time::Instant;
use tars_eval::{EvalRequest, normalization};
use tars_nash::{
    Bimatrix, Error as NashError, Matrix, all_equilibria, lemke_howson, resolve_conflict,
};
use tars_store::ProposalRow;
use utoipa::ToSchema;
use uuid::Uuid;

/// A raw game (`payoffs`), or proposals (rows) scored on environments (columns) (`scores`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NashRequest {
    /// `{"row": [[…]], "col": [[…]]}`; `col` omitted ⇒ zero-sum.
    #[schema(value_type = Option<Object>)]
    pub payoffs: Option<Value>,
    /// `[[score of proposal p on environment e]]`, higher is better.
    pub scores: Option<Vec<Vec<f64>>>,
    /// Labels the stability and conflict gauges (with `scores`).
    pub agent_type: Option<String>,
    /// Stored proposals (rows), scored from their evaluations on `environments` (columns;
    /// default: every environment they were evaluated on).
    pub proposal_ids: Option<Vec<String>>,
    pub environments: Option<Vec<String>>,
}

fn matrix(name: &'static str, value: &Value) -> Result<Matrix, ApiError> {
    let rows: Vec<Vec<f64>> = serde_json::from_value(value.clone()).map_err(|_| {
        ApiError::unprocessable(format!(
            "payoffs.{name} must be a list of rows, each a list of finite numbers"
        ))
    })?;
    Matrix::new(name, rows).map_err(|e| ApiError::unprocessable(e.to_string()))
}

/// Refuses a matrix with more than `max` rows or columns (`max_nash_actions`): the solvers'
/// cost grows with the cube of the size and beyond, so the size is checked before any work.
fn check_size(what: &str, matrix: &Matrix, max: usize) -> Result<(), ApiError> {
    let (rows, cols) = (matrix.n_rows(), matrix.n_cols());
    if rows > max || cols > max {
        return Err(ApiError::unprocessable(format!(
            "{what} is {rows}×{cols}; at most {max}×{max} is accepted (max_nash_actions)"
        ))
        .with_details(json!({"rows": rows, "cols": cols, "max": max, "key": "max_nash_actions"})));
    }
    Ok(())
}

/// Equilibria, recommendation, weights, stability, conflict, NashConv (operator). The solvers
/// run off the async threads on one of `cpu_slots`; when all are busy, 503 with Retry-After.
#[utoipa::path(post, path = "/v1/nash/compute", operation_id = "compute_nash",
    request_body(content = NashRequest, example = json!({
        "payoffs": {"row": [[3, 0], [0, 2]], "col": [[2, 0], [0, 3]]}})),
    responses((status = 200, body = Object), (status = 401), (status = 403), (status = 422),
              (status = 503, description = "every CPU slot is busy; retry after Retry-After seconds",
               headers(("Retry-After" = u64, description = "seconds to wait")))),
    security(("bearer" = [])))]
pub async fn compute(
    State(state): State<AppState>,
    principal: Principal,
    ApiJson(request): ApiJson<NashRequest>,
) -> Result<Json<Value>, ApiError> {
    principal.require(Role::Operator)?;
    let start = Instant::now();
    let max = state.service.config.get_int("max_nash_actions") as usize;
    let mut body = match (&request.payoffs, &request.scores, &request.proposal_ids) {
        (Some(payoffs), None, None) => {
            let game = parse_game(payoffs, max)?;
            state.on_cpu(move || solve_game(&game)).await??
        }
        (None, Some(scores), None) => {
            let scores = Matrix::new("scores", scores.clone())
                .map_err(|e| ApiError::unprocessable(e.to_string()))?;
            check_size("scores", &scores, max)?;
            // The gauges' label takes known agent types only (one series each, never one per
            // request); without one, the series is `unknown`.
            let agent = match &request.agent_type {
                Some(agent) => crate::hypersync::parse_agent(agent)?.name().to_string(),
                None => "unknown".to_string(),
            };
            let environments = json!(request.environments);
            state
                .on_cpu(move || resolution(&scores, &agent, environments))
                .await??
        }
        (None, None, Some(ids)) => proposals_game(&state, &request, ids).await?,
        _ => {
            return Err(ApiError::unprocessable(
                "send exactly one of \"payoffs\" ({\"row\": [[…]], \"col\": [[…]]}), \"scores\" ([[…]]) or \"proposal_ids\"",
            ));
        }
    };
    body["computation_ms"] = json!(start.elapsed().as_secs_f64() * 1e3);
    Ok(Json(body))
}

/// The conflict resolution of a proposals × environments score matrix, and its gauges.
pub(crate) fn resolution(
    scores: &Matrix,
    agent: &str,
    environments: Value,
) -> Result<Value, ApiError> {
    let report = resolve_conflict(scores).map_err(|e| ApiError::unprocessable(e.to_string()))?;
    metrics::gauge!("tars_nash_stability", "agent_type" => agent.to_string()).set(report.stability);
    metrics::gauge!("tars_nash_conflict", "agent_type" => agent.to_string()).set(report.conflict);
    let recommended = (0..report.weights.len())
        .max_by(|&a, &b| report.weights[a].total_cmp(&report.weights[b]))
        .unwrap_or(0);
    Ok(json!({
        "recommended": recommended, "weights": report.weights,
        "environment_weights": report.environment_weights, "value": report.value,
        "stability": report.stability, "conflict": report.conflict,
        "nash_averages": report.nash_averages, "max_entropy": report.max_entropy,
        "environments": environments,
    }))
}

/// Most proposals one request may weigh.
const MAX_PROPOSALS: usize = 20;

/// Scores stored proposals on environments by the normalised mean reward of their evaluations
/// (evaluating each pair that has none, with the proposal's own settings), then resolves.
async fn proposals_game(
    state: &AppState,
    request: &NashRequest,
    ids: &[String],
) -> Result<Value, ApiError> {
    if ids.is_empty() || ids.len() > MAX_PROPOSALS {
        return Err(ApiError::unprocessable(format!(
            "proposal_ids must name 1 to {MAX_PROPOSALS} proposals, got {}",
            ids.len()
        )));
    }
    let mut proposals = Vec::with_capacity(ids.len());
    for id in ids {
        let uuid: Uuid = id
            .parse()
            .map_err(|_| ApiError::unprocessable(format!("proposal id '{id}' is not a UUID")))?;
        proposals.push(state.hypersync.proposal(uuid).await?);
    }
    let agent = match &request.agent_type {
        Some(agent) => crate::hypersync::parse_agent(agent)?.name().to_string(),
        None => proposals[0].agent_type.clone(),
    };
    if let Some(other) = proposals.iter().find(|p| p.agent_type != agent) {
        return Err(ApiError::unprocessable(format!(
            "proposal {} is for {}, not {agent}: weigh proposals of one agent type",
            other.id, other.agent_type
        )));
    }
    let table = score_table(
        &state.service,
        &proposals,
        request.environments.clone(),
        Some(&state.jobs),
    )
    .await?;
    let (environments, scores, evaluated) = (table.environments, table.scores, table.evaluated);
    let matrix = Matrix::new("scores", scores.clone())
        .map_err(|e| ApiError::unprocessable(e.to_string()))?;
    let mut body = resolution(&matrix, &agent, json!(environments))?;
    let recommended = body["recommended"].as_u64().unwrap_or(0) as usize;
    body["agent_type"] = json!(agent);
    body["proposal_ids"] = json!(proposals.iter().map(|p| p.id).collect::<Vec<_>>());
    body["recommended_proposal"] = json!(proposals[recommended].id);
    body["scores"] = json!(scores);
    body["evaluated"] = json!(evaluated);
    Ok(body)
}

/// Proposals × environments, scored by normalised mean reward.
pub(crate) struct ScoreTable {
    pub environments: Vec<String>,
    pub scores: Vec<Vec<f64>>,
    /// The (proposal, environment) pairs evaluated for the table.
    pub evaluated: Vec<Value>,
    /// The index in `proposals` of each row.
    pub kept: Vec<usize>,
}

/// Scores `proposals` on `environments` (default: every environment they name) from their
/// stored evaluations; a missing pair is evaluated now as a job on `evaluate_missing`'s queue,
/// or without one the proposal is left out (`kept` says which proposals the rows are).
pub(crate) async fn score_table(
    service: &Service,
    proposals: &[ProposalRow],
    environments: Option<Vec<String>>,
    evaluate_missing: Option<&Jobs>,
) -> Result<ScoreTable, ApiError> {
    let bodies = proposals
        .iter()
        .map(|p| serde_json::from_value::<ProposalBody>(p.request.clone()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ApiError::internal("reading a stored proposal", e))?;
    let environments: Vec<String> = match environments {
        Some(envs) if !envs.is_empty() => envs,
        _ => {
            let mut envs: Vec<String> = Vec::new();
            for env in bodies.iter().flat_map(|b| &b.environments) {
                if !envs.contains(env) {
                    envs.push(env.clone());
                }
            }
            envs
        }
    };
    let mut scores = Vec::with_capacity(proposals.len());
    let mut evaluated = Vec::new();
    let mut kept = Vec::with_capacity(proposals.len());
    'proposals: for (index, (proposal, body)) in proposals.iter().zip(&bodies).enumerate() {
        let stored = match proposal.evaluation_id {
            Some(run) => service
                .postgres()
                .store(|| service.store.run(run))
                .await?
                .map(|r| r.results)
                .unwrap_or_default(),
            None => Vec::new(),
        };
        let mut row = Vec::with_capacity(environments.len());
        for env in &environments {
            let scale = normalization(env).ok_or_else(|| {
                ApiError::unprocessable(format!(
                    "unknown environment '{env}'; `tars env list` shows the ids"
                ))
            })?;
            let stored_mean = stored
                .iter()
                .find(|r| &r.environment == env)
                .and_then(|r| r.metrics["mean_reward"].as_f64());
            let mean = match stored_mean {
                Some(mean) => mean,
                None => match evaluate_missing {
                    Some(jobs) => {
                        evaluated.push(json!({"proposal_id": proposal.id, "environment": env}));
                        evaluate_pair(jobs, proposal, body, env).await?
                    }
                    None => continue 'proposals,
                },
            };
            row.push(scale.normalize(mean));
        }
        scores.push(row);
        kept.push(index);
    }
    Ok(ScoreTable {
        environments,
        scores,
        evaluated,
        kept,
    })
}

/// The mean reward of a proposal's hyperparameters on `env`, evaluated now as a job (and
/// stored); the same pair asked again finds the same job.
async fn evaluate_pair(
    jobs: &Jobs,
    proposal: &ProposalRow,
    body: &ProposalBody,
    env: &str,
) -> Result<f64, ApiError> {
    let request = EvalRequest {
        agent_type: body.agent_type.clone(),
        agent_state: Value::Null,
        hyperparameters: body.proposed_hyperparameters.clone(),
        environments: vec![env.to_string()],
        num_episodes: body.num_episodes,
        quick_mode: body.quick_mode,
        compare_to_baseline: false,
        seed: Some(body.seed.unwrap_or(0)),
        include_episodes: false,
    };
    let key = format!("nash-{}-{env}", proposal.id);
    let outcome = jobs
        .evaluate_queued(&request, None, &proposal.created_by, key)
        .await
        .map_err(|e| ApiError::from_evaluation(e, "evaluating a proposal for the Nash game"))?;
    Ok(outcome.response.results[0].metrics.metrics.mean_reward)
}

/// The game of a `payoffs` body, each matrix at most `max` × `max`.
fn parse_game(payoffs: &Value, max: usize) -> Result<Bimatrix, ApiError> {
    let row = payoffs
        .get("row")
        .ok_or_else(|| ApiError::unprocessable("payoffs.row is missing"))?;
    let a = matrix("row", row)?;
    check_size("payoffs.row", &a, max)?;
    match payoffs.get("col") {
        None => Ok(Bimatrix::zero_sum(a)),
        Some(col) => Bimatrix::new(a, matrix("col", col)?)
            .map_err(|e| ApiError::unprocessable(e.to_string())),
    }
}

/// Every equilibrium (or one, by Lemke–Howson, when the game is too large to enumerate), the
/// recommended one (highest total payoff) and its NashConv.
fn solve_game(game: &Bimatrix) -> Result<Value, ApiError> {
    let (equilibria, complete, degenerate) = match all_equilibria(game) {
        Ok(all) => (
            all.equilibria().to_vec(),
            all.is_finite(),
            all.is_degenerate(),
        ),
        Err(NashError::TooLargeForEnumeration { .. } | NashError::TooManyActions { .. }) => {
            let one = lemke_howson(game).map_err(|e| ApiError::unprocessable(e.to_string()))?;
            (vec![one], false, false)
        }
        Err(e) => return Err(ApiError::unprocessable(e.to_string())),
    };
    let recommended = (0..equilibria.len())
        .max_by(|&i, &j| {
            let total = |k: usize| equilibria[k].row_payoff() + equilibria[k].col_payoff();
            total(i).total_cmp(&total(j))
        })
        .unwrap_or(0);
    let list: Vec<Value> = equilibria
        .iter()
        .map(|e| {
            json!({"row": e.row(), "col": e.col(), "row_payoff": e.row_payoff(),
                   "col_payoff": e.col_payoff(), "nash_conv": e.nash_conv()})
        })
        .collect();
    Ok(json!({
        "equilibria": list, "complete": complete, "degenerate": degenerate,
        "recommended": recommended,
        "weights": equilibria.get(recommended).map(|e| e.row().to_vec()),
        "nash_conv": equilibria.get(recommended).map(|e| e.nash_conv()),
    }))
}
