//! `POST /v1/nash/compute`: equilibria of a raw two-player game, or the conflict resolution of
//! proposals scored on environments, with the stability and conflict gauges the seeds'
//! dashboards read. The variant that names stored proposals needs HyperSync, which is not
//! built yet; it is refused with a message saying so.

use crate::auth::{Principal, Role};
use crate::error::ApiError;
use crate::middleware::ApiJson;
use axum::Json;
use serde::Deserialize;
use serde_json::{Value, json};
use std::time::Instant;
use tars_nash::{
    Bimatrix, Error as NashError, Matrix, all_equilibria, lemke_howson, resolve_conflict,
};
use utoipa::ToSchema;

/// A raw game (`payoffs`), or proposals (rows) scored on environments (columns) (`scores`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NashRequest {
    /// `{"row": [[…]], "col": [[…]]}`; `col` omitted ⇒ zero-sum.
    #[schema(value_type = Object)]
    pub payoffs: Option<Value>,
    /// `[[score of proposal p on environment e]]`, higher is better.
    pub scores: Option<Vec<Vec<f64>>>,
    /// Labels the stability and conflict gauges (with `scores`).
    pub agent_type: Option<String>,
    /// Stored proposals: needs HyperSync (not built yet).
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

/// Equilibria, recommendation, weights, stability, conflict, NashConv (operator).
#[utoipa::path(post, path = "/v1/nash/compute", request_body = NashRequest,
    responses((status = 200, body = Object), (status = 422)), security(("bearer" = [])))]
pub async fn compute(
    principal: Principal,
    ApiJson(request): ApiJson<NashRequest>,
) -> Result<Json<Value>, ApiError> {
    principal.require(Role::Operator)?;
    let start = Instant::now();
    let mut body = match (&request.payoffs, &request.scores, &request.proposal_ids) {
        (Some(payoffs), None, None) => game(payoffs)?,
        (None, Some(scores), None) => {
            let scores = Matrix::new("scores", scores.clone())
                .map_err(|e| ApiError::unprocessable(e.to_string()))?;
            let report =
                resolve_conflict(&scores).map_err(|e| ApiError::unprocessable(e.to_string()))?;
            let agent = request
                .agent_type
                .clone()
                .unwrap_or_else(|| "unknown".into());
            metrics::gauge!("tars_nash_stability", "agent_type" => agent.clone())
                .set(report.stability);
            metrics::gauge!("tars_nash_conflict", "agent_type" => agent).set(report.conflict);
            let recommended = (0..report.weights.len())
                .max_by(|&a, &b| report.weights[a].total_cmp(&report.weights[b]))
                .unwrap_or(0);
            json!({
                "recommended": recommended, "weights": report.weights,
                "environment_weights": report.environment_weights, "value": report.value,
                "stability": report.stability, "conflict": report.conflict,
                "nash_averages": report.nash_averages, "max_entropy": report.max_entropy,
                "environments": request.environments,
            })
        }
        (None, None, Some(_)) => {
            return Err(ApiError::unprocessable(
                "proposal_ids needs stored HyperSync proposals, which T.A.R.S. does not have yet; \
                 send \"scores\" (proposals × environments) or \"payoffs\" instead",
            ));
        }
        _ => {
            return Err(ApiError::unprocessable(
                "send exactly one of \"payoffs\" ({\"row\": [[…]], \"col\": [[…]]}), \"scores\" ([[…]]) or \"proposal_ids\"",
            ));
        }
    };
    body["computation_ms"] = json!(start.elapsed().as_secs_f64() * 1e3);
    Ok(Json(body))
}

/// Every equilibrium (or one, by Lemke–Howson, when the game is too large to enumerate), the
/// recommended one (highest total payoff) and its NashConv.
fn game(payoffs: &Value) -> Result<Value, ApiError> {
    let row = payoffs
        .get("row")
        .ok_or_else(|| ApiError::unprocessable("payoffs.row is missing"))?;
    let a = matrix("row", row)?;
    let game = match payoffs.get("col") {
        None => Bimatrix::zero_sum(a),
        Some(col) => Bimatrix::new(a, matrix("col", col)?)
            .map_err(|e| ApiError::unprocessable(e.to_string()))?,
    };
    let (equilibria, complete, degenerate) = match all_equilibria(&game) {
        Ok(all) => (
            all.equilibria().to_vec(),
            all.is_finite(),
            all.is_degenerate(),
        ),
        Err(NashError::TooLargeForEnumeration { .. } | NashError::TooManyActions { .. }) => {
            let one = lemke_howson(&game).map_err(|e| ApiError::unprocessable(e.to_string()))?;
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
