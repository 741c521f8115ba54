//! The proposal lifecycle: a hyperparameter change is stored, evaluated against the rank-1
//! baseline (as a job where the process has a queue), decided by the detector's verdict —
//! rejected, left for an admin's approval (with Nash's recommendation when several wait), or
//! applied — and resumed after a restart. Every move is a compare-and-set on the proposal's
//! status, counted and published to the other replicas.

use super::{HyperSync, SYSTEM_ACTOR, default_env, parse_agent};
use crate::error::ApiError;
use crate::events::Event;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tars_eval::EvalRequest;
use tars_hypersync::{Action, ProposalStatus, Verdict, verdict};
use tars_runtime::breaker::CallError;
use tars_store::{
    ConfigAction, Conflict, NewConfig, NewProposal, ProposalRow, StoreError, Transition,
};
use utoipa::ToSchema;
use uuid::Uuid;

/// `POST /v1/proposals`: a hyperparameter change for one agent type.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProposalBody {
    /// `DQN`, `A2C`, `PPO`, `DDPG` or `TD3`, any case.
    pub agent_type: String,
    /// Hyperparameter overrides (SB3 names), like `/v1/evaluate`'s `hyperparameters`.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub proposed_hyperparameters: Map<String, Value>,
    /// Evaluate against the rank-1 baseline first (default true); a regression rejects it.
    #[serde(default = "yes")]
    pub evaluate_before_apply: bool,
    /// Default: the environment of the active config, else CartPole-v1 (Pendulum-v1 for DDPG).
    #[serde(default)]
    pub environments: Vec<String>,
    /// Why the change is wanted.
    #[serde(default)]
    pub reason: Option<String>,
    /// Apply as soon as it passes, without waiting for an approval (admins only).
    #[serde(default)]
    pub auto_apply: bool,
    #[serde(default)]
    pub num_episodes: Option<i64>,
    #[serde(default)]
    pub quick_mode: bool,
    #[serde(default)]
    pub seed: Option<u64>,
    /// A stored checkpoint trained with these hyperparameters; default: the policy the
    /// evaluation trains.
    #[serde(default)]
    pub checkpoint_id: Option<String>,
}

fn yes() -> bool {
    true
}

impl HyperSync {
    /// Stores a proposal and starts its evaluation (or decides at once without one).
    pub async fn propose(
        self: &Arc<Self>,
        mut body: ProposalBody,
        actor: &str,
        may_apply: bool,
    ) -> Result<ProposalRow, ApiError> {
        let algo = parse_agent(&body.agent_type)?;
        body.agent_type = algo.name().to_string();
        if body.auto_apply && !may_apply {
            return Err(ApiError::forbidden(
                "auto_apply needs the admin role; submit without it and ask an admin to approve",
            ));
        }
        if body.environments.is_empty() {
            let active = (self.service.postgres())
                .store(|| self.service.store.config(algo.name(), None))
                .await?;
            let env = active.and_then(|c| c.environment);
            body.environments = vec![env.unwrap_or_else(|| default_env(algo).to_string())];
        }
        // Everything the evaluation would refuse is refused now, before anything is stored.
        let request = eval_request(&body, body.checkpoint_id.as_deref(), body.seed.unwrap_or(0));
        request
            .validate(self.service.engine.config(), 0)
            .map_err(ApiError::from)?;
        if let Some(id) = &body.checkpoint_id {
            let (policy, _) = self.policy(id).await?;
            if policy.algo != algo {
                return Err(ApiError::unprocessable(format!(
                    "checkpoint {id} holds a {} policy; a {} proposal needs a {} checkpoint",
                    policy.algo.name(),
                    algo.name(),
                    algo.name()
                )));
            }
        }
        let new = NewProposal {
            id: Uuid::new_v4(),
            agent_type: algo.name().to_string(),
            hyperparameters: Value::Object(body.proposed_hyperparameters.clone()),
            request: serde_json::to_value(&body).expect("the body serialises"),
            reason: body.reason.clone(),
            created_by: actor.to_string(),
        };
        let row = (self.service.postgres())
            .store_once(|| self.service.store.insert_proposal(&new))
            .await?;
        self.counted(&row);
        if body.evaluate_before_apply {
            let row = self
                .move_to(&row, Action::Evaluate, SYSTEM_ACTOR, None, None, None)
                .await?;
            let this = self.clone();
            let id = row.id;
            self.spawn(async move { this.evaluate(id).await });
            Ok(row)
        } else {
            self.decide(row, None, may_apply, (None, None)).await
        }
    }

    /// Applies the verdict: reject, await approval, or apply.
    /// `evaluated` is the evaluation's run id and the checkpoint it trained, recorded with
    /// the move.
    async fn decide(
        self: &Arc<Self>,
        row: ProposalRow,
        regression: Option<(bool, String)>,
        may_apply: bool,
        evaluated: (Option<Uuid>, Option<String>),
    ) -> Result<ProposalRow, ApiError> {
        let body: ProposalBody = serde_json::from_value(row.request.clone())
            .map_err(|e| ApiError::internal("reading a stored proposal", e))?;
        let regression_ref = regression.as_ref().map(|(d, r)| (*d, r.as_str()));
        let (evaluation_id, checkpoint_id) = evaluated;
        let (action, actor, reason) = match verdict(regression_ref, body.auto_apply, may_apply) {
            Verdict::Reject(reason) => (Action::Reject, SYSTEM_ACTOR.to_string(), Some(reason)),
            // The admin sees what the detector said (e.g. a low-severity variance warning) and,
            // when other proposals for the agent await approval too, which one Nash favours.
            Verdict::AwaitApproval => {
                let detector = regression.as_ref().map(|(_, reason)| reason.clone());
                let nash = self.recommend(&row, evaluation_id).await;
                let reason = match (detector, nash) {
                    (Some(d), Some(n)) => Some(format!("{d}; {n}")),
                    (d, n) => d.or(n),
                };
                (Action::AwaitApproval, SYSTEM_ACTOR.to_string(), reason)
            }
            // The Optimization engine may have paused auto-apply after repeated regressions.
            Verdict::Apply => match self.auto_apply_paused(&row.agent_type).await? {
                Some(why) => (Action::AwaitApproval, SYSTEM_ACTOR.to_string(), Some(why)),
                None => (
                    Action::Approve,
                    row.created_by.clone(),
                    Some("auto_apply: no regression".to_string()),
                ),
            },
        };
        let row = self
            .move_to(&row, action, &actor, reason, evaluation_id, checkpoint_id)
            .await?;
        if action == Action::Approve {
            return self.apply(row, SYSTEM_ACTOR).await;
        }
        Ok(row)
    }

    /// Why auto-apply of `agent_type` is paused (`auto_apply_pauses`, set by the
    /// Optimization engine after repeated regressions), or `None` when it is not: the hook
    /// that turns a passing auto-apply proposal into one awaiting an admin.
    pub async fn auto_apply_paused(&self, agent_type: &str) -> Result<Option<String>, ApiError> {
        let pause = (self.service.postgres())
            .store(|| self.service.store.auto_apply_pause(agent_type))
            .await?;
        Ok(pause.filter(|p| p.is_active()).map(|p| {
            format!(
                "auto-apply of {agent_type} is paused since {} by the {} engine ({}); an admin \
                 approves this proposal, or resumes auto-apply with DELETE \
                 /v1/agents/{agent_type}/auto_apply_pause",
                p.paused_at.to_rfc3339(),
                p.paused_by,
                p.reason
            )
        }))
    }

    /// When other proposals for the same agent await approval, the Nash resolution of all of
    /// them (scored from their stored evaluations, this one's `evaluation_id` included), as a
    /// sentence for the admin; `None` when there is nothing to weigh or it fails.
    async fn recommend(&self, row: &ProposalRow, evaluation_id: Option<Uuid>) -> Option<String> {
        let store = &self.service.store;
        let mut open = (self.service.postgres())
            .store(|| store.proposals(Some(&row.agent_type), Some("awaiting_approval"), 20))
            .await
            .ok()?;
        if open.is_empty() {
            return None;
        }
        let mut this = row.clone();
        this.evaluation_id = evaluation_id.or(row.evaluation_id);
        open.push(this);
        let table = crate::nash::score_table(&self.service, &open, None, None)
            .await
            .ok()?;
        if table.scores.len() < 2 {
            return None;
        }
        let matrix = tars_nash::Matrix::new("scores", table.scores).ok()?;
        let report =
            crate::nash::resolution(&matrix, &row.agent_type, json!(table.environments)).ok()?;
        let best = report["recommended"].as_u64()? as usize;
        let weight = report["weights"][best].as_f64()?;
        Some(format!(
            "{} proposals for {} await approval; Nash recommends {} (weight {weight:.2})",
            table.kept.len(),
            row.agent_type,
            open[table.kept[best]].id
        ))
    }

    /// Runs a proposal's evaluation and moves it on; a failure rejects it with the error.
    async fn evaluate(self: Arc<Self>, id: Uuid) {
        if let Err(err) = self.try_evaluate(id).await {
            if self.jobs.get().is_some_and(|jobs| jobs.is_stopping()) {
                // Its job stays queued; the next start resumes the evaluation and finds it.
                tracing::info!(proposal = %id, "server stopping; the proposal stays evaluating");
                return;
            }
            tracing::error!(proposal = %id, error = %err.message, "proposal evaluation failed");
            let store = &self.service.store;
            if let Ok(Some(row)) = self.service.postgres().store(|| store.proposal(id)).await
                && row.status == "evaluating"
            {
                let reason = format!("the evaluation failed: {}", err.message);
                let _ = self
                    .move_to(&row, Action::Reject, SYSTEM_ACTOR, Some(reason), None, None)
                    .await;
            }
        }
    }

    async fn try_evaluate(self: &Arc<Self>, id: Uuid) -> Result<(), ApiError> {
        let row = self.proposal(id).await?;
        let body: ProposalBody = serde_json::from_value(row.request.clone())
            .map_err(|e| ApiError::internal("reading a stored proposal", e))?;
        let seed = body.seed.unwrap_or(0);
        let request = eval_request(&body, body.checkpoint_id.as_deref(), seed);
        let save_as = body
            .checkpoint_id
            .is_none()
            .then(|| format!("proposal-{id}"));
        let outcome = self
            .run_evaluation(
                &request,
                save_as.as_deref(),
                &row.created_by,
                format!("proposal-{id}"),
            )
            .await
            .map_err(|e| ApiError::from_evaluation(e, "the proposal's evaluation"))?;
        let response = outcome.response;
        let checkpoint_id = body.checkpoint_id.clone().or(save_as).expect("one of them");
        let regression = response
            .regression
            .as_ref()
            .map(|r| (r.should_rollback, r.reason.clone()));
        let evaluation_id = response
            .evaluation_id
            .parse()
            .ok()
            .filter(|_| outcome.unsaved.is_none());
        // auto_apply was checked against the proposer's role when it was submitted.
        self.decide(row, regression, true, (evaluation_id, Some(checkpoint_id)))
            .await?;
        Ok(())
    }

    /// Approves a proposal awaiting approval and applies it (admin).
    pub async fn approve(
        self: &Arc<Self>,
        id: Uuid,
        actor: &str,
        reason: Option<String>,
    ) -> Result<ProposalRow, ApiError> {
        let row = self.proposal(id).await?;
        let row = self
            .move_to(&row, Action::Approve, actor, reason, None, None)
            .await?;
        self.apply(row, actor).await
    }

    /// Rejects a proposal that is not decided yet (admin).
    pub async fn reject(
        &self,
        id: Uuid,
        actor: &str,
        reason: Option<String>,
    ) -> Result<ProposalRow, ApiError> {
        let row = self.proposal(id).await?;
        self.move_to(&row, Action::Reject, actor, reason, None, None)
            .await
    }

    /// Makes an approved proposal the agent's next config version.
    async fn apply(
        self: &Arc<Self>,
        row: ProposalRow,
        actor: &str,
    ) -> Result<ProposalRow, ApiError> {
        let body: ProposalBody = serde_json::from_value(row.request.clone())
            .map_err(|e| ApiError::internal("reading a stored proposal", e))?;
        let requested_at = Instant::now();
        let new = NewConfig {
            agent_type: row.agent_type.clone(),
            expected_version: (self.service.postgres())
                .store(|| self.service.store.config_version(&row.agent_type))
                .await?,
            hyperparameters: row.hyperparameters.clone(),
            checkpoint_id: row.checkpoint_id.clone(),
            environment: body.environments.first().cloned(),
            action: ConfigAction::Apply,
            proposal_id: Some(row.id),
            restored_version: None,
            actor: actor.to_string(),
            reason: body.reason.clone(),
            transition: Some(self.transition(&row, ProposalStatus::Applied, actor, None)),
        };
        let policy = self.policy_of(row.checkpoint_id.as_deref()).await?;
        // Someone else may write a version meanwhile: the proposal is applied on top of it.
        let exhausted = format!(
            "the config of {} kept changing while proposal {} was applied; approve it again",
            row.agent_type, row.id
        );
        self.write_config(new, policy, requested_at, Some(exhausted))
            .await?;
        let applied = self.proposal(row.id).await?;
        self.counted(&applied);
        Ok(applied)
    }

    pub async fn proposal(&self, id: Uuid) -> Result<ProposalRow, ApiError> {
        (self.service.postgres())
            .store(|| self.service.store.proposal(id))
            .await?
            .ok_or_else(|| ApiError::not_found(format!("proposal {id} does not exist")))
    }

    /// Waits up to `limit` for the proposal to leave `evaluating`.
    pub async fn wait(&self, id: Uuid, limit: Duration) -> Result<ProposalRow, ApiError> {
        let mut changed = self.changed.subscribe();
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let row = self.proposal(id).await?;
            if row.status != "evaluating" {
                return Ok(row);
            }
            if tokio::time::timeout_at(deadline, changed.changed())
                .await
                .is_err()
            {
                return Ok(row);
            }
        }
    }

    /// Re-runs what a stopped process left half-done: evaluations, and approved proposals
    /// that were not applied yet.
    pub async fn resume(self: &Arc<Self>) -> Result<usize, ApiError> {
        let (postgres, store) = (self.service.postgres(), &self.service.store);
        let listed = |status| {
            postgres.store(move || {
                store.proposals(None, Some(status), tars_store::MAX_PROPOSALS_LISTED)
            })
        };
        let evaluating = listed("evaluating").await?;
        let approved = listed("approved").await?;
        let n = evaluating.len() + approved.len();
        for row in evaluating {
            self.spawn(self.clone().evaluate(row.id));
        }
        for row in approved {
            let this = self.clone();
            self.spawn(async move {
                if let Err(err) = this.apply(row, SYSTEM_ACTOR).await {
                    tracing::error!(error = %err.message, "resuming an approved proposal failed");
                }
            });
        }
        Ok(n)
    }

    pub(super) fn transition(
        &self,
        row: &ProposalRow,
        to: ProposalStatus,
        actor: &str,
        reason: Option<String>,
    ) -> Transition {
        Transition {
            id: row.id,
            from: row.status.clone(),
            to: to.as_str().to_string(),
            actor: actor.to_string(),
            reason,
            evaluation_id: None,
            checkpoint_id: None,
        }
    }

    /// One legal move, as a compare-and-set on the status `row` shows.
    async fn move_to(
        &self,
        row: &ProposalRow,
        action: Action,
        actor: &str,
        reason: Option<String>,
        evaluation_id: Option<Uuid>,
        checkpoint_id: Option<String>,
    ) -> Result<ProposalRow, ApiError> {
        let status = ProposalStatus::parse(&row.status)
            .map_err(|e| ApiError::internal("reading a proposal", e))?;
        let to = status
            .check(action)
            .map_err(|e| ApiError::conflict(format!("proposal {}: {e}", row.id)))?;
        let mut transition = self.transition(row, to, actor, reason);
        transition.evaluation_id = evaluation_id;
        transition.checkpoint_id = checkpoint_id;
        let moved = (self.service.postgres())
            .store_once(|| self.service.store.transition_proposal(&transition))
            .await
            .map_err(|err| match err {
                CallError::Failed(err @ StoreError::Conflict(Conflict::ProposalStatus { .. })) => {
                    ApiError::conflict(err.to_string())
                }
                other => other.into(),
            })?;
        self.counted(&moved);
        Ok(moved)
    }

    /// Counts a proposal's move and tells waiters here and the other replicas.
    fn counted(&self, row: &ProposalRow) {
        metrics::counter!("tars_hypersync_proposals_total", "status" => row.status.clone())
            .increment(1);
        self.changed.send_modify(|n| *n += 1);
        // An applied proposal is about the version it became; any other move about the
        // version served here when it moved.
        let config_version = row.applied_version.unwrap_or_else(|| {
            self.live
                .snapshot(&row.agent_type)
                .map_or(0, |snapshot| snapshot.config.version)
        });
        self.service.publish(Event::Proposal {
            id: row.id,
            agent_type: row.agent_type.clone(),
            status: row.status.clone(),
            config_version,
        });
    }
}

/// The evaluation a proposal runs: its hyperparameters on its environments, against the
/// rank-1 baselines.
fn eval_request(body: &ProposalBody, checkpoint_id: Option<&str>, seed: u64) -> EvalRequest {
    EvalRequest {
        agent_type: body.agent_type.clone(),
        agent_state: checkpoint_id.map_or(Value::Null, |id| json!({"checkpoint_id": id})),
        hyperparameters: body.proposed_hyperparameters.clone(),
        environments: body.environments.clone(),
        num_episodes: body.num_episodes,
        quick_mode: body.quick_mode,
        compare_to_baseline: true,
        seed: Some(seed),
        include_episodes: false,
    }
}
