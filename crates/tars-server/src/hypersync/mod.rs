//! HyperSync orchestration: proposals gated by the evaluation engine, the versioned live
//! configuration of each agent type, hot reload and rollback.
//!
//! A change becomes live in three steps: its checkpoint is loaded into a new
//! [`Snapshot`] (off the request path; a bad checkpoint fails here and changes nothing), the
//! store writes the next config version (a compare-and-set), then the snapshot is swapped in.
//! Other processes on the same database pick the new version up within `config_poll_ms`
//! ([`HyperSync::refresh`]). After a change, a post-apply evaluation of the live checkpoint
//! rolls it back when the detector asks for it (`auto_rollback`).
//!
//! This file holds the live side (snapshots, config writes, refresh, rollback, the post-apply
//! watch); `lifecycle.rs` holds the proposal lifecycle that feeds it.

mod lifecycle;

pub use lifecycle::ProposalBody;

use crate::error::ApiError;
use crate::events::Event;
use crate::service::{Outcome, Service, load_checkpoint};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use std::sync::Arc;
use std::time::Instant;
use tars_agents::{Algo, Policy};
use tars_eval::EvalRequest;
use tars_eval::engine::Quiet;
use tars_hypersync::{ActiveConfig, LiveAgents, ProposalStatus, Snapshot};
use tars_runtime::breaker::CallError;
use tars_store::{ConfigAction, ConfigRow, Conflict, NewConfig, StoreError};
use utoipa::ToSchema;
use uuid::Uuid;

/// The actor of the service's own moves (evaluation verdicts, automatic rollbacks).
pub const SYSTEM_ACTOR: &str = "hypersync";

/// `PUT /v1/agents/{type}/config`.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfigBody {
    /// The version read from `GET …/config` (0 when the agent has none); 409 when it moved.
    pub expected_version: Option<i32>,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub hyperparameters: Map<String, Value>,
    /// The trained policy `act` serves; without one, `act` answers 409.
    #[serde(default)]
    pub checkpoint_id: Option<String>,
    #[serde(default)]
    pub reason: Option<String>,
}

/// A config version as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ConfigView {
    pub agent_type: String,
    pub version: i32,
    #[schema(value_type = Object)]
    pub hyperparameters: Value,
    pub checkpoint_id: Option<String>,
    pub environment: Option<String>,
    /// set, apply or rollback.
    pub action: String,
    pub proposal_id: Option<Uuid>,
    pub restored_version: Option<i32>,
    pub actor: String,
    pub reason: Option<String>,
    pub created_at: String,
}

impl From<ConfigRow> for ConfigView {
    fn from(row: ConfigRow) -> ConfigView {
        ConfigView {
            agent_type: row.agent_type,
            version: row.version,
            hyperparameters: row.hyperparameters,
            checkpoint_id: row.checkpoint_id,
            environment: row.environment,
            action: row.action.as_str().to_string(),
            proposal_id: row.proposal_id,
            restored_version: row.restored_version,
            actor: row.actor,
            reason: row.reason,
            created_at: row.created_at.to_rfc3339(),
        }
    }
}

/// The orchestrator of one process.
pub struct HyperSync {
    service: Arc<Service>,
    live: LiveAgents,
    /// Bumped on every proposal move, so waiters wake up.
    changed: tokio::sync::watch::Sender<u64>,
    /// The latest move of each proposal learnt from fleet events (stale ones are ignored).
    moves: crate::events::ProposalMoves,
    auto_rollback: bool,
    post_apply_episodes: i64,
    /// Evaluations and post-apply watches running in the background.
    tasks: std::sync::Mutex<tokio::task::JoinSet<()>>,
    /// A server's job queue: evaluations run as jobs (in fleet mode on a worker). Unset in a
    /// command-line process, which evaluates itself.
    jobs: std::sync::OnceLock<Arc<crate::jobs::Jobs>>,
}

/// Parses an agent type, or says which are valid.
pub fn parse_agent(agent_type: &str) -> Result<Algo, ApiError> {
    agent_type.parse::<Algo>().map_err(|_| {
        ApiError::unprocessable(format!(
            "unknown agent_type '{agent_type}'; valid: DQN, A2C, PPO, DDPG, TD3"
        ))
    })
}

fn default_env(algo: Algo) -> &'static str {
    match algo {
        Algo::Ddpg | Algo::Td3 => "Pendulum-v1",
        Algo::Dqn | Algo::A2c | Algo::Ppo => "CartPole-v1",
    }
}

impl HyperSync {
    pub fn new(service: Arc<Service>) -> Arc<HyperSync> {
        let config = &service.config;
        Arc::new(HyperSync {
            auto_rollback: config.get_int("auto_rollback") == 1,
            post_apply_episodes: config.get_int("post_apply_episodes"),
            service,
            live: LiveAgents::new(),
            changed: tokio::sync::watch::channel(0).0,
            moves: Default::default(),
            tasks: std::sync::Mutex::new(tokio::task::JoinSet::new()),
            jobs: std::sync::OnceLock::new(),
        })
    }

    /// Runs this orchestrator's evaluations as jobs on `jobs`' queue from now on.
    pub fn evaluate_on(&self, jobs: Arc<crate::jobs::Jobs>) {
        let _ = self.jobs.set(jobs);
    }

    /// Evaluates `request` — as a job when this process has a queue, else here — and, with
    /// `save_as`, keeps the policy trained on its first environment as that checkpoint. `key`
    /// names the job, so a resumed evaluation finds the one already queued.
    async fn run_evaluation(
        &self,
        request: &EvalRequest,
        save_as: Option<&str>,
        principal: &str,
        key: String,
    ) -> anyhow::Result<Outcome> {
        if let Some(jobs) = self.jobs.get() {
            return jobs.evaluate_queued(request, save_as, principal, key).await;
        }
        let outcome = self.service.evaluate(request, Arc::new(Quiet)).await?;
        if let Some(name) = save_as {
            self.service.save_trained_checkpoint(request, name).await?;
        }
        Ok(outcome)
    }

    /// Another process moved proposal `id` of `agent_type` to `status`, about config
    /// `config_version` (a fleet event): waiters look at the store again, and an applied
    /// proposal's version is served here at once when it is newer than the one served. Returns
    /// `false`, doing nothing, when the event is stale: a later move of the proposal was
    /// applied already.
    pub async fn proposal_moved(
        &self,
        id: Uuid,
        agent_type: &str,
        status: &str,
        config_version: i32,
    ) -> bool {
        if !self.moves.admit(id, status, config_version) {
            return false;
        }
        self.changed.send_modify(|n| *n += 1);
        if status == ProposalStatus::Applied.as_str() {
            let served =
                (self.live.snapshot(agent_type)).map_or(0, |snapshot| snapshot.config.version);
            if served < config_version
                && let Err(err) = self.refresh().await
            {
                tracing::warn!(error = %err.message, "applying a proposal event failed; the poll retries");
            }
        }
        true
    }

    fn spawn(&self, task: impl std::future::Future<Output = ()> + Send + 'static) {
        let mut tasks = self.tasks.lock().expect("tasks lock");
        while tasks.try_join_next().is_some() {}
        tasks.spawn(task);
    }

    /// Waits for every background evaluation and post-apply watch, including the ones they
    /// start (a command-line process calls this before it exits).
    pub async fn settle(&self) {
        loop {
            let mut tasks = std::mem::take(&mut *self.tasks.lock().expect("tasks lock"));
            if tasks.is_empty() {
                return;
            }
            while tasks.join_next().await.is_some() {}
        }
    }

    pub fn service(&self) -> &Arc<Service> {
        &self.service
    }

    pub fn live(&self) -> &LiveAgents {
        &self.live
    }

    /// Loads every agent's active config the store has that this process does not serve yet
    /// (all of them at start; later, the ones another process changed). Returns how many
    /// snapshots it installed.
    pub async fn refresh(&self) -> Result<usize, ApiError> {
        let mut installed = 0;
        let (postgres, store) = (self.service.postgres(), &self.service.store);
        for (agent, version) in postgres.store(|| store.config_versions()).await? {
            let live = self.live.snapshot(&agent).map_or(0, |s| s.config.version);
            if live >= version {
                continue;
            }
            let Some(row) = postgres
                .store(|| store.config(&agent, Some(version)))
                .await?
            else {
                continue;
            };
            match self.snapshot(&row, Instant::now()).await {
                Ok(snapshot) => {
                    installed += usize::from(self.install(snapshot));
                }
                Err(err) => tracing::error!(
                    agent_type = %agent, version, error = %err.message,
                    "cannot load the active config; still serving the previous one"
                ),
            }
        }
        Ok(installed)
    }

    fn install(&self, snapshot: Snapshot) -> bool {
        let agent = snapshot.config.agent_type.clone();
        let version = snapshot.config.version;
        let installed = self.live.install(snapshot);
        if installed {
            metrics::gauge!("tars_hypersync_config_version", "agent_type" => agent.clone())
                .set(f64::from(version));
            tracing::info!(agent_type = %agent, version, "config swapped in");
        }
        installed
    }

    /// Builds the snapshot of a stored config: loads its checkpoint (blocking I/O, off the
    /// async threads) and checks it fits the agent type and environment.
    async fn snapshot(&self, row: &ConfigRow, requested_at: Instant) -> Result<Snapshot, ApiError> {
        let config = ActiveConfig {
            agent_type: row.agent_type.clone(),
            version: row.version,
            hyperparameters: row.hyperparameters.clone(),
            checkpoint_id: row.checkpoint_id.clone(),
            environment: row.environment.clone(),
        };
        let policy = self.policy_of(row.checkpoint_id.as_deref()).await?;
        Snapshot::new(config, policy, requested_at)
            .map_err(|e| ApiError::unprocessable(e.to_string()))
    }

    /// The policy of a config's checkpoint, if it names one.
    async fn policy_of(&self, checkpoint_id: Option<&str>) -> Result<Option<Policy>, ApiError> {
        Ok(match checkpoint_id {
            Some(id) => Some(self.policy(id).await?.0),
            None => None,
        })
    }

    async fn policy(&self, id: &str) -> Result<(tars_agents::Policy, String), ApiError> {
        let dir = self.service.config.data_dir();
        let id = id.to_string();
        let loaded = tokio::task::spawn_blocking(move || load_checkpoint(&dir, &id))
            .await
            .map_err(|e| ApiError::internal("loading a checkpoint", e))?
            .map_err(|e| ApiError::unprocessable(format!("{e:#}")))?;
        let env = loaded.policy.env_id.clone();
        Ok((loaded.policy, env))
    }

    /// The active config of `agent_type` (through fleet mode's Redis cache), or 404.
    pub async fn config(&self, agent_type: &str) -> Result<ConfigRow, ApiError> {
        let algo = parse_agent(agent_type)?;
        self.service
            .active_config(algo.name())
            .await?
            .ok_or_else(|| {
                ApiError::not_found(format!(
                    "{} has no active config yet; PUT /v1/agents/{}/config or apply a proposal",
                    algo.name(),
                    algo.name()
                ))
            })
    }

    /// Writes a new config version directly (admin), swaps it in, and watches it.
    pub async fn put_config(
        self: &Arc<Self>,
        agent_type: &str,
        body: ConfigBody,
        actor: &str,
    ) -> Result<ConfigRow, ApiError> {
        let algo = parse_agent(agent_type)?;
        let expected_version = body.expected_version.ok_or_else(|| {
            ApiError::unprocessable(format!(
                "expected_version is required: the version GET /v1/agents/{}/config shows \
                 (0 when the agent has no config yet)",
                algo.name()
            ))
        })?;
        let requested_at = Instant::now();
        let (policy, environment) = match &body.checkpoint_id {
            Some(id) => {
                let (policy, env) = self.policy(id).await?;
                (Some(policy), Some(env))
            }
            None => (None, None),
        };
        self.check_hyperparameters(
            algo,
            environment.as_deref().unwrap_or(default_env(algo)),
            &body.hyperparameters,
        )?;
        let new = NewConfig {
            agent_type: algo.name().to_string(),
            expected_version,
            hyperparameters: Value::Object(body.hyperparameters),
            checkpoint_id: body.checkpoint_id,
            environment,
            action: ConfigAction::Set,
            proposal_id: None,
            restored_version: None,
            actor: actor.to_string(),
            reason: body.reason,
            transition: None,
        };
        self.write_config(new, policy, requested_at, None).await
    }

    /// Checks that `policy` fits the config, writes the config, swaps it in, starts the
    /// post-apply watch. With `follow`, a version written meanwhile by someone else is built
    /// upon (up to 5 attempts; then `follow` is the 409's message); without it, it is a 409.
    async fn write_config(
        self: &Arc<Self>,
        mut new: NewConfig,
        policy: Option<Policy>,
        requested_at: Instant,
        follow: Option<String>,
    ) -> Result<ConfigRow, ApiError> {
        let base = ActiveConfig {
            agent_type: new.agent_type.clone(),
            version: 0,
            hyperparameters: new.hyperparameters.clone(),
            checkpoint_id: new.checkpoint_id.clone(),
            environment: new.environment.clone(),
        };
        let snapshot = |version| {
            let config = ActiveConfig {
                version,
                ..base.clone()
            };
            Snapshot::new(config, policy.clone(), requested_at)
                .map_err(|e| ApiError::unprocessable(e.to_string()))
        };
        // A policy that does not fit is refused before anything is written.
        snapshot(new.expected_version + 1)?;
        let mut attempts = 0;
        let row = loop {
            attempts += 1;
            let inserted = (self.service.postgres())
                .store_once(|| self.service.store.insert_config(&new))
                .await;
            match inserted {
                Ok(row) => break row,
                Err(CallError::Failed(StoreError::Conflict(Conflict::ConfigVersion {
                    actual,
                    ..
                }))) if follow.is_some() => {
                    if attempts == 5 {
                        return Err(ApiError::conflict(follow.unwrap_or_default()));
                    }
                    new.expected_version = actual;
                }
                Err(err) => return Err(err.into()),
            }
        };
        self.service.config_written(&row.agent_type).await;
        self.install(snapshot(row.version)?);
        self.service.publish(Event::Config {
            agent_type: row.agent_type.clone(),
            version: row.version,
        });
        if let Some(transition) = &new.transition {
            self.service.publish(Event::Proposal {
                id: transition.id,
                agent_type: row.agent_type.clone(),
                status: transition.to.clone(),
                config_version: row.version,
            });
        }
        if new.action != ConfigAction::Rollback {
            self.watch(row.clone());
        }
        Ok(row)
    }

    fn check_hyperparameters(
        &self,
        algo: Algo,
        env: &str,
        hyperparameters: &Map<String, Value>,
    ) -> Result<(), ApiError> {
        let plan = tars_agents::train::plan(algo, env, hyperparameters, None)
            .map_err(|e| ApiError::unprocessable(e.to_string()))?;
        // A configuration the agents would train with fits a job, as a proposal's gate does.
        let what = format!("training {} on {env}", algo.name());
        Ok(self.service.config.job_budget().check(&what, plan.cost)?)
    }

    /// Restores an earlier config version (default: the one before the active one).
    pub async fn rollback(
        self: &Arc<Self>,
        agent_type: &str,
        to_version: Option<i32>,
        reason: Option<String>,
        actor: &str,
    ) -> Result<ConfigRow, ApiError> {
        let requested_at = Instant::now();
        let current = self.config(agent_type).await?;
        let agent = current.agent_type.clone();
        let target = to_version.unwrap_or(current.version - 1);
        if current.version == 1 && to_version.is_none() {
            return Err(ApiError::conflict(format!(
                "{agent} is at its first config version (v1); there is nothing before it to roll back to"
            )));
        }
        if target < 1 || target >= current.version {
            return Err(ApiError::unprocessable(format!(
                "to_version {target} is not an earlier version of {agent}: valid 1..={}",
                current.version - 1
            )));
        }
        let (postgres, store) = (self.service.postgres(), &self.service.store);
        let restored = postgres
            .store(|| store.config(&agent, Some(target)))
            .await?
            .ok_or_else(|| {
                ApiError::not_found(format!("{agent} has no config version {target}"))
            })?;
        // The proposal that made the active version is rolled back with it.
        let transition = match current.proposal_id {
            Some(id) => postgres
                .store(|| store.proposal(id))
                .await?
                .filter(|p| p.status == "applied" && p.applied_version == Some(current.version))
                .map(|p| self.transition(&p, ProposalStatus::RolledBack, actor, reason.clone())),
            None => None,
        };
        let new = NewConfig {
            agent_type: agent.clone(),
            expected_version: current.version,
            hyperparameters: restored.hyperparameters.clone(),
            checkpoint_id: restored.checkpoint_id.clone(),
            environment: restored.environment.clone(),
            action: ConfigAction::Rollback,
            proposal_id: restored.proposal_id,
            restored_version: Some(target),
            actor: actor.to_string(),
            reason,
            transition,
        };
        let policy = self.policy_of(restored.checkpoint_id.as_deref()).await?;
        let row = self.write_config(new, policy, requested_at, None).await?;
        let trigger = if actor == SYSTEM_ACTOR {
            "automatic"
        } else {
            "manual"
        };
        metrics::counter!("tars_hypersync_rollbacks_total", "agent_type" => agent, "trigger" => trigger)
            .increment(1);
        Ok(row)
    }

    /// After a change: evaluates the live checkpoint on fresh episodes and rolls the change
    /// back when the detector asks for it (and `auto_rollback` is on).
    fn watch(self: &Arc<Self>, row: ConfigRow) {
        let (true, Some(checkpoint)) = (self.auto_rollback, row.checkpoint_id.clone()) else {
            return;
        };
        let this = self.clone();
        self.spawn(async move {
            let request = EvalRequest {
                agent_type: row.agent_type.clone(),
                agent_state: json!({"checkpoint_id": checkpoint}),
                hyperparameters: Map::new(),
                environments: vec![row.environment.clone().unwrap_or_default()],
                num_episodes: Some(this.post_apply_episodes),
                quick_mode: false,
                compare_to_baseline: true,
                // Fresh episodes, not the ones the proposal was judged on.
                seed: Some(1_000 + row.version as u64),
                include_episodes: false,
            };
            let key = format!("post-apply-{}-v{}", row.agent_type, row.version);
            let outcome = match this
                .run_evaluation(&request, None, SYSTEM_ACTOR, key)
                .await
            {
                Ok(outcome) => outcome,
                Err(err) => {
                    tracing::error!(agent_type = %row.agent_type, version = row.version, error = %err, "post-apply evaluation failed");
                    return;
                }
            };
            let Some(regression) = outcome.response.regression.filter(|r| r.should_rollback) else {
                return;
            };
            let store = &this.service.store;
            let version = (this.service.postgres())
                .store(|| store.config_version(&row.agent_type))
                .await;
            match version {
                Ok(version) if version == row.version => {}
                _ => return, // Changed again meanwhile: that change has its own watch.
            }
            let reason = format!(
                "post-apply evaluation of v{}: {}",
                row.version, regression.reason
            );
            match this
                .rollback(&row.agent_type, None, Some(reason), SYSTEM_ACTOR)
                .await
            {
                Ok(back) => {
                    tracing::warn!(agent_type = %row.agent_type, from = row.version, to = back.version, "rolled back automatically")
                }
                Err(err) => {
                    tracing::error!(agent_type = %row.agent_type, error = %err.message, "automatic rollback failed")
                }
            }
        });
    }
}
