//! The HTTP surface of studies: the views of `GET /v1/studies[/{id}]` and the handlers of
//! `POST /v1/optimize`, `GET /v1/studies[/{id}]`, `POST …/stop` and `POST …/propose`.

use super::*;

/// The answer to `POST /v1/optimize`.
#[derive(Debug, Serialize, ToSchema)]
pub struct StudyCreated {
    pub study_id: Uuid,
    pub status_url: String,
}

/// One trial.
#[derive(Debug, Serialize, ToSchema)]
pub struct TrialView {
    pub number: i32,
    /// running, complete, pruned or failed.
    pub state: String,
    #[schema(value_type = Object)]
    pub params: Value,
    pub value: Option<f64>,
    /// Step → mean return reported to the pruner.
    #[schema(value_type = Object)]
    pub intermediate_values: Value,
    pub error: Option<String>,
    pub duration_seconds: Option<f64>,
    pub started_at: String,
    pub finished_at: Option<String>,
}

/// The best complete trial.
#[derive(Debug, Serialize, ToSchema)]
pub struct BestView {
    pub trial: i32,
    pub value: f64,
    #[schema(value_type = Object)]
    pub params: Value,
}

/// Trials by state, out of `n_trials` (trials interrupted by a restart are not counted).
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct Progress {
    pub n_trials: i32,
    pub complete: usize,
    pub pruned: usize,
    pub failed: usize,
    pub running: usize,
    pub interrupted: usize,
}

/// A study: its request, configuration, progress, best trial and (by id) its trials.
#[derive(Debug, Serialize, ToSchema)]
pub struct StudyView {
    pub id: Uuid,
    pub agent_type: String,
    /// running, stopped, completed or failed.
    pub status: String,
    /// Why it failed, or how it ended early (stopped, timed out, grid exhausted).
    pub reason: Option<String>,
    pub stop_requested: bool,
    /// The submitted body, defaults filled in.
    #[schema(value_type = Object)]
    pub request: Value,
    /// The study's configuration: direction, search space, sampler, pruner, seed.
    #[schema(value_type = Object)]
    pub config: Value,
    pub progress: Progress,
    pub best: Option<BestView>,
    /// `GET /v1/studies/{id}` only.
    pub trials: Option<Vec<TrialView>>,
    pub created_by: String,
    pub created_at: String,
    pub updated_at: String,
}

/// The proposal made from a study's best trial.
#[derive(Debug, Serialize, ToSchema)]
pub struct StudyProposal {
    pub proposal_id: Uuid,
    pub proposal_url: String,
    /// pending or evaluating: the proposal is evaluated before it can be applied.
    pub status: String,
    pub study_id: Uuid,
    pub trial: i32,
    pub value: f64,
    #[schema(value_type = Object)]
    pub proposed_hyperparameters: Value,
}

/// Filters of `GET /v1/studies`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    pub agent_type: Option<String>,
    pub status: Option<String>,
    /// 1 to 1,000 (default 100).
    pub limit: Option<i64>,
}
pub(super) fn trial_view(row: TrialRow) -> TrialView {
    TrialView {
        number: row.number,
        state: row.state,
        params: row.params,
        value: row.value,
        intermediate_values: row.intermediate_values,
        error: row.error,
        duration_seconds: row.duration_seconds,
        started_at: row.started_at.to_rfc3339(),
        finished_at: row.finished_at.map(|t| t.to_rfc3339()),
    }
}

pub(super) fn best_of(trials: &[TrialRow]) -> Option<BestView> {
    trials
        .iter()
        .filter(|t| t.state == "complete")
        .filter_map(|t| t.value.map(|v| (t, v)))
        // The first of equal values wins, as in Optuna.
        .fold(None, |best: Option<(&TrialRow, f64)>, (t, v)| match best {
            Some((_, b)) if b >= v => best,
            _ => Some((t, v)),
        })
        .map(|(t, value)| BestView {
            trial: t.number,
            value,
            params: t.params.clone(),
        })
}

pub(super) fn view(row: StudyRow, trials: Vec<TrialRow>, with_trials: bool) -> StudyView {
    let mut progress = Progress {
        n_trials: row.n_trials,
        ..Progress::default()
    };
    for trial in &trials {
        match trial.state.as_str() {
            "complete" => progress.complete += 1,
            "pruned" => progress.pruned += 1,
            "running" => progress.running += 1,
            _ if trial.error.as_deref() == Some(INTERRUPTED) => progress.interrupted += 1,
            _ => progress.failed += 1,
        }
    }
    let best = best_of(&trials);
    let trials = with_trials.then(|| trials.into_iter().map(trial_view).collect());
    study_view(row, progress, best, trials)
}

/// A study of a list: progress and best from the store's summary (no trials read).
pub(super) fn summary_view(row: StudyRow, summary: TrialSummary) -> StudyView {
    let count = |n: i64| n.max(0) as usize;
    let progress = Progress {
        n_trials: row.n_trials,
        complete: count(summary.complete),
        pruned: count(summary.pruned),
        failed: count(summary.failed),
        running: count(summary.running),
        interrupted: count(summary.interrupted),
    };
    let best = summary.best.map(|(trial, value, params)| BestView {
        trial,
        value,
        params,
    });
    study_view(row, progress, best, None)
}

fn study_view(
    row: StudyRow,
    progress: Progress,
    best: Option<BestView>,
    trials: Option<Vec<TrialView>>,
) -> StudyView {
    StudyView {
        id: row.id,
        agent_type: row.agent_type,
        status: row.status,
        reason: row.error,
        stop_requested: row.stop_requested,
        request: row.request,
        config: row.config,
        progress,
        best,
        trials,
        created_by: row.created_by,
        created_at: row.created_at.to_rfc3339(),
        updated_at: row.updated_at.to_rfc3339(),
    }
}

pub(super) async fn load(
    state: &AppState,
    id: Uuid,
) -> Result<(StudyRow, Vec<TrialRow>), ApiError> {
    let (postgres, store) = (state.service.postgres(), &state.service.store);
    let row = (postgres.store(|| store.study(id)).await?).ok_or_else(|| not_found(id))?;
    let trials = postgres.store(|| store.trials(id)).await?;
    Ok((row, trials))
}

/// Start a hyperparameter study (operator). It runs in the background: poll `status_url`.
#[utoipa::path(post, path = "/v1/optimize", request_body = OptimizeBody,
    responses((status = 202, body = StudyCreated), (status = 403), (status = 422), (status = 503)),
    security(("bearer" = [])))]
pub async fn optimize(
    State(state): State<AppState>,
    principal: Principal,
    ApiJson(body): ApiJson<OptimizeBody>,
) -> Result<impl IntoResponse, ApiError> {
    principal.require(Role::Operator)?;
    let study_id = state.studies.create(body, &principal.subject).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(StudyCreated {
            study_id,
            status_url: format!("/v1/studies/{study_id}"),
        }),
    ))
}

/// A study with its trials, best trial and progress (viewer).
#[utoipa::path(get, path = "/v1/studies/{id}", operation_id = "get_study", params(("id" = String, Path)),
    responses((status = 200, body = StudyView), (status = 404), (status = 503)),
    security(("bearer" = [])))]
pub async fn get(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Json<StudyView>, ApiError> {
    principal.require(Role::Viewer)?;
    let (row, trials) = load(&state, parse_id(&id)?).await?;
    Ok(Json(view(row, trials, true)))
}

/// Studies, newest first (viewer).
#[utoipa::path(get, path = "/v1/studies", operation_id = "list_studies", params(ListQuery),
    responses((status = 200, body = [StudyView]), (status = 422), (status = 503)),
    security(("bearer" = [])))]
pub async fn list(
    State(state): State<AppState>,
    principal: Principal,
    Query(query): Query<ListQuery>,
) -> Result<Json<Vec<StudyView>>, ApiError> {
    principal.require(Role::Viewer)?;
    if let Some(status) = &query.status
        && !tars_store::STUDY_STATUSES.contains(&status.as_str())
    {
        return Err(ApiError::unprocessable(format!(
            "unknown status '{status}'; valid: {}",
            tars_store::STUDY_STATUSES.join(", ")
        )));
    }
    // One statement for the studies, their progress and best trials (no query per study).
    let (postgres, store) = (state.service.postgres(), &state.service.store);
    let rows = postgres
        .store(|| {
            store.study_summaries(
                query.agent_type.as_deref(),
                query.status.as_deref(),
                query.limit.unwrap_or(100),
                INTERRUPTED,
            )
        })
        .await?;
    Ok(Json(
        rows.into_iter()
            .map(|(row, summary)| summary_view(row, summary))
            .collect(),
    ))
}

/// Stop a running study (operator): no new trial starts, running ones are cut at their next
/// pruning check, finished trials are kept. The status becomes `stopped` once it has.
#[utoipa::path(post, path = "/v1/studies/{id}/stop", operation_id = "stop_study", params(("id" = String, Path)),
    responses((status = 202, body = StudyView), (status = 404), (status = 409), (status = 503)),
    security(("bearer" = [])))]
pub async fn stop(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    principal.require(Role::Operator)?;
    let id = parse_id(&id)?;
    let row = state.studies.stop(id, &principal.subject).await?;
    let (postgres, store) = (state.service.postgres(), &state.service.store);
    let trials = postgres.store(|| store.trials(id)).await?;
    Ok((StatusCode::ACCEPTED, Json(view(row, trials, false))))
}

/// Submit the best trial's parameters as a HyperSync proposal, evaluated before it can be
/// applied (operator).
#[utoipa::path(post, path = "/v1/studies/{id}/propose", operation_id = "propose_study_best", params(("id" = String, Path)),
    responses((status = 201, body = StudyProposal), (status = 404), (status = 409),
              (status = 503)),
    security(("bearer" = [])))]
pub async fn propose(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    principal.require(Role::Operator)?;
    let (row, trials) = load(&state, parse_id(&id)?).await?;
    let Some(best) = best_of(&trials) else {
        return Err(ApiError::conflict(format!(
            "study {} has no complete trial yet; propose once one has finished",
            row.id
        )));
    };
    let request: OptimizeBody = serde_json::from_value(row.request.clone())
        .map_err(|e| ApiError::internal("reading the stored request", e))?;
    let algo = parse_agent(&row.agent_type)?;
    let params: BTreeMap<String, Value> = serde_json::from_value(best.params.clone())
        .map_err(|e| ApiError::internal("reading the best trial", e))?;
    // What the trial trained with (e.g. PPO's minibatch cut to the rollout).
    let hyperparameters = spaces::to_overrides(algo, &request.environments[0], &params);
    let body = ProposalBody {
        agent_type: row.agent_type.clone(),
        proposed_hyperparameters: hyperparameters.clone(),
        evaluate_before_apply: true,
        environments: request.environments.clone(),
        reason: Some(format!(
            "best trial {} of study {} (value {:.2})",
            best.trial, row.id, best.value
        )),
        auto_apply: false,
        num_episodes: None,
        quick_mode: !request.use_real_training,
        seed: Some(request.seed),
        checkpoint_id: None,
    };
    let proposal = state
        .hypersync
        .propose(body, &principal.subject, false)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(StudyProposal {
            proposal_id: proposal.id,
            proposal_url: format!("/v1/proposals/{}", proposal.id),
            status: proposal.status,
            study_id: row.id,
            trial: best.trial,
            value: best.value,
            proposed_hyperparameters: Value::Object(hyperparameters),
        }),
    ))
}
