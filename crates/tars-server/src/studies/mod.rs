//! AutoML studies over HTTP: `POST /v1/optimize` starts a `tars-automl` study on real training
//! (`use_real_training: false` is the quick budget), `GET /v1/studies[/{id}]` reads them,
//! `POST /v1/studies/{id}/stop` stops one, and `POST /v1/studies/{id}/propose` turns the best
//! trial into a HyperSync proposal.
//!
//! A study runs on a blocking thread as `tars tune` runs it ([`runner::optimize`]). Each trial
//! is written to the store when it starts (state running) and when it ends, so a restart loses
//! at most the running trials: [`Studies::resume`] rebuilds every study left `running` with
//! [`Study::from_trials`], marks its half-done trials failed ([`INTERRUPTED`]) and enqueues
//! their parameters, so they are re-run under new numbers and do not count towards `n_trials`.
//!
//! Stopping (a request or a shutdown) starts no new trial and cuts the running ones at their
//! next pruning check. A stopped study keeps its finished trials; a shutdown leaves the study
//! `running` and its cut trials `running`, for the next start to resume.
//!
//! Several servers on one database run each study once. Every server has an owner name; a
//! study is created with its creator's lease (`study_lease_seconds`), which a keeper task
//! renews every third of the lease while the study runs. [`Studies::resume`] (at start-up) and
//! the keeper (every third of the lease after that) take over only running studies whose lease
//! has ended or that nobody holds, each with the store's compare-and-set claim, so of several
//! servers exactly one resumes a study. A graceful shutdown releases the leases at once; after
//! a crash the study waits for its lease to end. A server that finds it has lost a study (its
//! renewal failed: another server took it over after the lease ended) stops running it
//! without touching its status, as at a shutdown.

use crate::app::AppState;
use crate::auth::{Principal, Role};
use crate::error::ApiError;
use crate::hypersync::{ProposalBody, parse_agent};
use crate::jobs::Jobs;
use crate::middleware::ApiJson;
use crate::service::Service;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tars_agents::Algo;
use tars_automl::rl::{Budget, RlObjective};
use tars_automl::{
    Direction, Outcome, PrunerConfig, SamplerConfig, Study, StudyConfig, Trial, TrialState, runner,
    spaces,
};
use tars_store::{NewStudy, StudyRow, TrialRow, TrialSummary};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

mod routes;
pub mod trial_job;

pub use routes::*;

/// Most trials one study may run (as `tars tune`).
pub const MAX_TRIALS: u64 = 10_000;
/// Most trials of one study run at the same time.
pub const MAX_WORKERS: usize = 64;
/// The error of a trial cut by a shutdown and re-run after the restart.
pub const INTERRUPTED: &str = "interrupted by a server restart; its parameters were re-run";

/// The body of `POST /v1/optimize` (the seed's `agent_type`, `n_trials`, `use_real_training`,
/// plus the study's settings). Stored with its defaults filled in.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OptimizeBody {
    /// `DQN`, `A2C`, `PPO`, `DDPG` or `TD3`, any case.
    pub agent_type: String,
    /// Trials to run: 1 to 10,000.
    #[serde(default = "default_n_trials")]
    pub n_trials: i64,
    /// Train each trial on the RL Zoo's budget; false: the quick budget (a fifth, at least
    /// 1,000 steps). Never a fake objective.
    #[serde(default)]
    pub use_real_training: bool,
    /// Default: CartPole-v1 (Pendulum-v1 for DDPG). Several: the mean normalised score.
    #[serde(default)]
    pub environments: Vec<String>,
    /// Distributions that replace or extend the algorithm's default space, as
    /// `tars tune --search-space` (`null` removes a parameter).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub search_space: Option<Value>,
    /// tpe, random or grid.
    #[serde(default = "default_sampler")]
    pub sampler: String,
    /// median, sh (successive halving), hyperband or none.
    #[serde(default = "default_pruner")]
    pub pruner: String,
    #[serde(default)]
    pub seed: u64,
    /// Start no trial after this many seconds (running ones finish); counted again from a
    /// resume.
    #[serde(default)]
    pub timeout_seconds: Option<u64>,
    /// Trials run at the same time (1 to 64; default 1, which is reproducible for a seed).
    #[serde(default = "default_workers")]
    pub workers: usize,
    /// Deterministic evaluation episodes per trial and environment (1 to 10,000).
    #[serde(default = "default_eval_episodes")]
    pub n_eval_episodes: usize,
}

fn default_n_trials() -> i64 {
    20
}
fn default_sampler() -> String {
    "tpe".to_string()
}
fn default_pruner() -> String {
    "median".to_string()
}
fn default_workers() -> usize {
    1
}
fn default_eval_episodes() -> usize {
    10
}

/// The studies running in this process.
pub struct Studies {
    service: Arc<Service>,
    /// Each trial is a job on this queue ([`trial_job`]).
    jobs: Arc<Jobs>,
    running: Mutex<HashMap<Uuid, Arc<Control>>>,
    threads: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// This server's name as the owner of the studies it runs.
    owner: String,
    /// How long a claim holds unrenewed.
    lease: Duration,
    /// Studies this process took over from the store (resumed or adopted), in order.
    taken_over: Mutex<Vec<Uuid>>,
    /// Renews this server's leases and adopts studies whose lease ended.
    keeper: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// How a running study is told to stop.
#[derive(Default)]
struct Control {
    /// Start no new trial.
    no_more: AtomicBool,
    /// Cut running trials at their next pruning check.
    abort: AtomicBool,
    /// Who asked to stop (a user), if anyone.
    stopped_by: Mutex<Option<String>>,
    /// The server is shutting down: leave the study running for the next start.
    shutdown: AtomicBool,
}

/// A validated study, ready to run.
struct Plan {
    algo: Algo,
    request: OptimizeBody,
    objective: RlObjective,
    config: StudyConfig,
    n_trials: usize,
}

impl Studies {
    pub fn new(service: Arc<Service>, jobs: Arc<Jobs>) -> Arc<Studies> {
        let lease = Duration::from_secs(service.config.get_int("study_lease_seconds") as u64);
        let owner = format!(
            "pid{}-{}",
            std::process::id(),
            &Uuid::new_v4().simple().to_string()[..12]
        );
        Arc::new(Studies {
            service,
            jobs,
            running: Mutex::new(HashMap::new()),
            threads: Mutex::new(Vec::new()),
            owner,
            lease,
            taken_over: Mutex::new(Vec::new()),
            keeper: Mutex::new(None),
        })
    }

    /// This server's name as a study owner.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// The studies this process took over from the store (at start-up or later), in order.
    pub fn taken_over(&self) -> Vec<Uuid> {
        self.taken_over.lock().expect("studies lock").clone()
    }

    fn lease_until(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        now + chrono::Duration::from_std(self.lease).unwrap_or(chrono::Duration::seconds(30))
    }

    /// Validates, stores and starts a study.
    pub async fn create(
        self: &Arc<Self>,
        body: OptimizeBody,
        actor: &str,
    ) -> Result<Uuid, ApiError> {
        let plan = plan(body)?;
        // Sized before it is stored: the space's most expensive trial, and all the trials.
        let trial = plan
            .objective
            .max_trial_cost(&plan.config.search_space)
            .map_err(invalid)?;
        let config = &self.service.config;
        config
            .job_budget()
            .check_study(trial, plan.n_trials as u64, config.study_env_steps())?;
        let study = Study::new(plan.config.clone()).map_err(invalid)?;
        let id = Uuid::new_v4();
        // Registered first, so a stop that comes before the thread starts is seen.
        let control = self.register(id);
        let new = NewStudy {
            id,
            agent_type: plan.algo.name().to_string(),
            request: serde_json::to_value(&plan.request)
                .map_err(|e| ApiError::internal("serialising the request", e))?,
            config: serde_json::to_value(&plan.config)
                .map_err(|e| ApiError::internal("serialising the study config", e))?,
            n_trials: plan.n_trials as i32,
            created_by: actor.to_string(),
            owner: Some(self.owner.clone()),
            lease_until: Some(self.lease_until(Utc::now())),
        };
        let (postgres, store) = (self.service.postgres(), &self.service.store);
        let inserted = postgres.store_once(|| store.insert_study(&new)).await;
        let row = match inserted {
            Ok(row) => row,
            Err(err) => {
                self.running.lock().expect("studies lock").remove(&id);
                return Err(err.into());
            }
        };
        tracing::info!(study = %row.id, agent_type = %row.agent_type, n_trials = plan.n_trials, "study started");
        let remaining = plan.n_trials;
        self.spawn(id, control, plan, study, remaining);
        Ok(id)
    }

    /// Resumes every running study whose lease has ended (or that nobody holds), e.g. those a
    /// previous run left, and starts the keeper that renews this server's leases and adopts
    /// such studies later; returns how many were resumed now.
    pub async fn resume(self: &Arc<Self>) -> Result<usize, ApiError> {
        let n_resumed = self.take_over_free().await?;
        let keeper = tokio::spawn(keep(Arc::downgrade(self), self.lease / 3));
        if let Some(old) = self.keeper.lock().expect("keeper lock").replace(keeper) {
            old.abort();
        }
        Ok(n_resumed)
    }

    /// Claims and resumes the running studies nobody holds; returns how many it resumed.
    async fn take_over_free(self: &Arc<Self>) -> Result<usize, ApiError> {
        let store = &self.service.store;
        let rows = store
            .studies(None, Some("running"), tars_store::MAX_STUDIES_LISTED)
            .await?;
        let mut n_resumed = 0;
        for row in rows {
            let now = Utc::now();
            let held_elsewhere = row.owner.as_ref().is_some_and(|o| *o != self.owner)
                && row.lease_until.is_some_and(|until| until > now);
            if held_elsewhere
                || self
                    .running
                    .lock()
                    .expect("studies lock")
                    .contains_key(&row.id)
            {
                continue;
            }
            if !store
                .claim_study(row.id, &self.owner, now, self.lease_until(now))
                .await?
            {
                continue;
            }
            if row.stop_requested {
                finish(store, row.id, "stopped", Some("stopped before a restart")).await;
                continue;
            }
            match self.rebuild(&row).await {
                Ok((plan, study, remaining)) => {
                    tracing::info!(study = %row.id, remaining, owner = %self.owner, "resuming a study");
                    let control = self.register(row.id);
                    self.taken_over.lock().expect("studies lock").push(row.id);
                    self.spawn(row.id, control, plan, study, remaining);
                    n_resumed += 1;
                }
                Err(err) => {
                    tracing::warn!(study = %row.id, error = %err.message, "cannot resume a study");
                    finish(
                        store,
                        row.id,
                        "failed",
                        Some(&format!("cannot resume: {}", err.message)),
                    )
                    .await;
                }
            }
        }
        Ok(n_resumed)
    }

    /// Renews the lease of every study this process runs; a study whose lease another server
    /// has taken is left to it (stopped here as at a shutdown).
    async fn renew_leases(&self) {
        let running: Vec<(Uuid, Arc<Control>)> = self
            .running
            .lock()
            .expect("studies lock")
            .iter()
            .map(|(id, control)| (*id, control.clone()))
            .collect();
        for (id, control) in running {
            let until = self.lease_until(Utc::now());
            match self
                .service
                .store
                .renew_study_lease(id, &self.owner, until)
                .await
            {
                Ok(true) => {}
                Ok(false) => {
                    // Ended meanwhile (its status left `running`), or taken over.
                    let row = self.service.store.study(id).await.ok().flatten();
                    if row.is_some_and(|r| r.status == "running") {
                        tracing::warn!(study = %id, "another server took this study over; leaving it");
                        lose(&control);
                    }
                }
                Err(err) => {
                    tracing::warn!(study = %id, error = %err, "cannot renew a study's lease")
                }
            }
        }
    }

    /// A stored study rebuilt: half-done trials failed and their parameters enqueued.
    async fn rebuild(&self, row: &StudyRow) -> Result<(Plan, Study, usize), ApiError> {
        let request: OptimizeBody = serde_json::from_value(row.request.clone())
            .map_err(|e| ApiError::unprocessable(format!("stored request: {e}")))?;
        let mut plan = plan(request)?;
        plan.config = serde_json::from_value(row.config.clone())
            .map_err(|e| ApiError::unprocessable(format!("stored config: {e}")))?;
        let rows = self.service.store.trials(row.id).await?;
        let mut trials = Vec::with_capacity(rows.len());
        for trial in &rows {
            // A trial asked but never written (the process died in between) is a gap.
            while trials.len() < trial.number as usize {
                trials.push(running_trial(trials.len() as u64, &BTreeMap::new())?);
            }
            trials.push(to_trial(trial)?);
        }
        let mut study = Study::from_trials(plan.config.clone(), trials).map_err(invalid)?;
        let half_done: Vec<(u64, BTreeMap<String, Value>)> = study
            .trials()
            .iter()
            .filter(|t| t.state == TrialState::Running)
            .map(|t| (t.number, t.params.clone()))
            .collect();
        for (number, params) in half_done {
            let trial = study
                .tell(number, Outcome::Failed(INTERRUPTED.to_string()))
                .map_err(invalid)?
                .clone();
            self.service
                .store
                .upsert_trial(&to_row(row.id, &trial, Utc::now()))
                .await?;
            if !params.is_empty() {
                study.enqueue(params).map_err(invalid)?;
            }
        }
        let remaining = plan_remaining(plan_n(row), study.trials());
        Ok((plan, study, remaining))
    }

    /// Asks a running study to stop. Returns the study; 409 when it is not running.
    pub async fn stop(&self, id: Uuid, actor: &str) -> Result<StudyRow, ApiError> {
        let (postgres, store) = (self.service.postgres(), &self.service.store);
        (postgres.store(|| store.study(id)).await?).ok_or_else(|| not_found(id))?;
        let row = postgres.store(|| store.request_stop(id)).await?;
        let held_elsewhere = row.owner.as_ref().is_some_and(|o| *o != self.owner)
            && row.lease_until.is_some_and(|until| until > Utc::now());
        let control = self.running.lock().expect("studies lock").get(&id).cloned();
        match control {
            Some(control) => {
                *control.stopped_by.lock().expect("stop lock") = Some(actor.to_string());
                control.no_more.store(true, Ordering::SeqCst);
                control.abort.store(true, Ordering::SeqCst);
            }
            // Another server runs it: it sees the request after its current trials.
            None if held_elsewhere => {}
            // Running in no process (a failed resume, or its server died): stop it here.
            None => {
                let reason = format!("stopped by {actor}");
                return Ok(store
                    .set_study_status(id, "running", "stopped", Some(&reason))
                    .await?);
            }
        }
        Ok(row)
    }

    /// Stops every study of this process at its next pruning check and waits for them (up
    /// to `deadline`), leaving them `running` for the next start.
    /// Then releases their leases, so another server resumes them at once.
    pub async fn shutdown(&self, deadline: tokio::time::Instant) {
        if let Some(keeper) = self.keeper.lock().expect("keeper lock").take() {
            keeper.abort();
        }
        let ids: Vec<Uuid> = {
            let running = self.running.lock().expect("studies lock");
            for control in running.values() {
                lose(control);
            }
            running.keys().copied().collect()
        };
        let threads = std::mem::take(&mut *self.threads.lock().expect("threads lock"));
        for thread in threads {
            if tokio::time::timeout_at(deadline, thread).await.is_err() {
                tracing::warn!("shutdown timeout: a study is still running its trials");
            }
        }
        for id in ids {
            if let Err(err) = self.service.store.release_study(id, &self.owner).await {
                tracing::warn!(study = %id, error = %err, "cannot release a study's lease");
            }
        }
    }

    fn register(&self, id: Uuid) -> Arc<Control> {
        let control = Arc::new(Control::default());
        self.running
            .lock()
            .expect("studies lock")
            .insert(id, control.clone());
        control
    }

    fn spawn(
        self: &Arc<Self>,
        id: Uuid,
        control: Arc<Control>,
        plan: Plan,
        study: Study,
        remaining: usize,
    ) {
        let this = self.clone();
        let runtime = tokio::runtime::Handle::current();
        let thread = tokio::task::spawn_blocking(move || {
            let ending = run(
                &runtime,
                &this.jobs,
                &this.owner,
                id,
                plan,
                study,
                remaining,
                &control,
            );
            let store = &this.service.store;
            if !control.shutdown.load(Ordering::SeqCst) {
                let (status, reason) = ending;
                runtime.block_on(finish(store, id, status, reason.as_deref()));
            }
            this.running.lock().expect("studies lock").remove(&id);
        });
        let mut threads = self.threads.lock().expect("threads lock");
        threads.retain(|t| !t.is_finished());
        threads.push(thread);
    }
}

/// Renews the leases and adopts free studies every `period`, while the studies live.
async fn keep(studies: std::sync::Weak<Studies>, period: Duration) {
    let mut ticks = tokio::time::interval(period.max(Duration::from_millis(100)));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks.tick().await;
    loop {
        ticks.tick().await;
        let Some(studies) = studies.upgrade() else {
            return;
        };
        studies.renew_leases().await;
        match studies.take_over_free().await {
            Ok(0) => {}
            Ok(adopted) => tracing::info!(adopted, "took over studies whose lease had ended"),
            Err(err) => {
                tracing::warn!(error = %err.message, "cannot look for studies to take over")
            }
        }
    }
}

/// Stops running a study without ending it (a shutdown, or another server took it over):
/// no new trial, running ones cut and left for whoever resumes it.
fn lose(control: &Control) {
    control.shutdown.store(true, Ordering::SeqCst);
    control.no_more.store(true, Ordering::SeqCst);
    control.abort.store(true, Ordering::SeqCst);
}

/// Runs `remaining` trials; returns the status to end in and why.
#[allow(clippy::too_many_arguments)]
fn run(
    runtime: &tokio::runtime::Handle,
    jobs: &Jobs,
    owner: &str,
    id: Uuid,
    plan: Plan,
    study: Study,
    remaining: usize,
    control: &Control,
) -> (&'static str, Option<String>) {
    let store = &jobs.service().store;
    let principal = match runtime.block_on(store.study(id)) {
        Ok(Some(row)) => row.created_by,
        _ => owner.to_string(),
    };
    let deadline = plan
        .request
        .timeout_seconds
        .map(|s| Instant::now() + Duration::from_secs(s));
    let timed_out = AtomicBool::new(false);
    let study = Mutex::new(study);
    let persist = |trial: &Trial, at: DateTime<Utc>| {
        if let Err(err) = runtime.block_on(store.upsert_trial(&to_row(id, trial, at))) {
            tracing::warn!(study = %id, trial = trial.number, error = %err, "cannot store a trial");
        }
    };
    let summary = if remaining == 0 {
        runner::Summary {
            n_trials: 0,
            stopped: None,
        }
    } else {
        // One study holds at most `max_queued_per_study` of the queue and the workers, so other
        // studies and evaluations still run beside it.
        let share = jobs.service().config.get_int("max_queued_per_study") as usize;
        runner::optimize(
            &study,
            remaining,
            plan.request.workers.min(share).max(1),
            &control.no_more,
            |context| {
                if let Ok(trial) = running_trial(context.number(), context.params()) {
                    persist(&trial, Utc::now());
                }
                trial_job::run_remote(runtime, jobs, id, &principal, context, control)
            },
            &|_, trial| {
                metrics::counter!("tars_automl_trials_total", "state" => state_name(trial.state))
                    .increment(1);
                // A trial cut by a shutdown stays running in the store: the restart re-runs it.
                let cut_by_shutdown = control.shutdown.load(Ordering::SeqCst)
                    && trial.error.as_deref() == Some(INTERRUPTED);
                if !cut_by_shutdown {
                    persist(trial, Utc::now());
                }
                // A stop asked of another server on the same database is seen here, and so is a
                // take-over by another server (this one's lease ended unrenewed).
                if let Ok(Some(row)) = runtime.block_on(store.study(id)) {
                    if row.status == "running" && row.owner.as_deref() != Some(owner) {
                        lose(control);
                    } else if row.stop_requested || row.status != "running" {
                        control.no_more.store(true, Ordering::SeqCst);
                        let mut stopped_by = control.stopped_by.lock().expect("stop lock");
                        stopped_by.get_or_insert_with(|| "another server".to_string());
                    }
                }
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    timed_out.store(true, Ordering::SeqCst);
                    control.no_more.store(true, Ordering::SeqCst);
                }
            },
        )
    };
    drop(study);
    if let Some(actor) = control.stopped_by.lock().expect("stop lock").clone() {
        return ("stopped", Some(format!("stopped by {actor}")));
    }
    if timed_out.load(Ordering::SeqCst) {
        return (
            "completed",
            Some(format!(
                "timed out after {} s",
                plan.request.timeout_seconds.unwrap_or(0)
            )),
        );
    }
    ("completed", summary.stopped)
}

/// Moves a study out of `running`; a study someone else moved first is left alone.
async fn finish(store: &tars_store::Store, id: Uuid, status: &str, reason: Option<&str>) {
    match store.set_study_status(id, "running", status, reason).await {
        Ok(_) => tracing::info!(study = %id, status, "study ended"),
        Err(err) => tracing::warn!(study = %id, error = %err, "cannot end a study"),
    }
}

fn plan_n(row: &StudyRow) -> usize {
    row.n_trials.max(0) as usize
}

/// Trials still to run: `n_trials` minus the trials that count (not interrupted ones).
fn plan_remaining(n_trials: usize, trials: &[Trial]) -> usize {
    let counted = trials
        .iter()
        .filter(|t| t.error.as_deref() != Some(INTERRUPTED))
        .count();
    n_trials.saturating_sub(counted)
}

/// Checks a request and fills its defaults.
fn plan(mut request: OptimizeBody) -> Result<Plan, ApiError> {
    let algo = parse_agent(&request.agent_type)?;
    request.agent_type = algo.name().to_string();
    let n_trials = runner::check_n_trials(request.n_trials, MAX_TRIALS).map_err(invalid)?;
    if !(1..=MAX_WORKERS).contains(&request.workers) {
        return Err(ApiError::unprocessable(format!(
            "workers = {} is invalid: expected an integer in [1, {MAX_WORKERS}]",
            request.workers
        )));
    }
    if request.timeout_seconds == Some(0) {
        return Err(ApiError::unprocessable(
            "timeout_seconds = 0 is invalid: expected at least 1 (or leave it out)",
        ));
    }
    if request.environments.is_empty() {
        let env = match algo {
            Algo::Ddpg | Algo::Td3 => "Pendulum-v1",
            Algo::Dqn | Algo::A2c | Algo::Ppo => "CartPole-v1",
        };
        request.environments = vec![env.to_string()];
    }
    let budget = if request.use_real_training {
        Budget::Zoo
    } else {
        Budget::Quick
    };
    let objective = RlObjective::new(
        algo,
        &request.environments,
        budget,
        request.n_eval_episodes,
        request.seed,
    )
    .map_err(invalid)?;
    request.environments = objective.env_ids.clone();
    let default_space = spaces::default_space(algo);
    let search_space = match &request.search_space {
        Some(overrides) => {
            spaces::with_overrides(algo, &objective.env_ids, default_space, overrides)
                .map_err(invalid)?
        }
        None => default_space,
    };
    let config = StudyConfig {
        direction: Direction::Maximize,
        search_space,
        sampler: SamplerConfig::from_name(&request.sampler).map_err(invalid)?,
        pruner: PrunerConfig::from_name(&request.pruner).map_err(invalid)?,
        seed: request.seed,
    };
    config.validate().map_err(invalid)?;
    request.sampler = config.sampler.name().to_string();
    request.pruner = config.pruner.name().to_string();
    Ok(Plan {
        algo,
        request,
        objective,
        config,
        n_trials,
    })
}

/// A study setting the caller got wrong: 422 with what is valid.
fn invalid(err: tars_automl::Error) -> ApiError {
    ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_study",
        err.to_string(),
    )
}

fn not_found(id: impl std::fmt::Display) -> ApiError {
    ApiError::not_found(format!("study '{id}' does not exist (study ids are UUIDs)"))
}

fn parse_id(id: &str) -> Result<Uuid, ApiError> {
    id.parse().map_err(|_| not_found(id))
}

fn state_name(state: TrialState) -> &'static str {
    match state {
        TrialState::Running => "running",
        TrialState::Complete => "complete",
        TrialState::Pruned => "pruned",
        TrialState::Failed => "failed",
    }
}

/// The fields of `Trial` with a column of their own; the rest go to `system_attrs`.
const TRIAL_COLUMNS: [&str; 7] = [
    "number",
    "params",
    "state",
    "value",
    "intermediate_values",
    "error",
    "duration_seconds",
];

fn to_row(study_id: Uuid, trial: &Trial, at: DateTime<Utc>) -> TrialRow {
    let finished = trial.is_finished();
    let mut system_attrs = match serde_json::to_value(trial) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    };
    system_attrs.retain(|name, _| !TRIAL_COLUMNS.contains(&name.as_str()));
    let intermediate_values: Map<String, Value> = trial
        .intermediate_values
        .iter()
        .map(|(step, value)| (step.to_string(), json!(value)))
        .collect();
    TrialRow {
        study_id,
        number: trial.number as i32,
        state: state_name(trial.state).to_string(),
        params: json!(trial.params),
        value: trial.value,
        intermediate_values: Value::Object(intermediate_values),
        system_attrs: Value::Object(system_attrs),
        error: trial.error.clone(),
        duration_seconds: trial.duration_seconds,
        started_at: at
            - chrono::Duration::milliseconds(
                (trial.duration_seconds.unwrap_or(0.0) * 1000.0) as i64,
            ),
        finished_at: finished.then_some(at),
    }
}

fn to_trial(row: &TrialRow) -> Result<Trial, ApiError> {
    let mut value = json!({
        "number": row.number,
        "params": row.params,
        "state": row.state,
        "value": row.value,
        "intermediate_values": row.intermediate_values,
        "error": row.error,
        "duration_seconds": row.duration_seconds,
    });
    if let (Value::Object(fields), Value::Object(attrs)) = (&mut value, &row.system_attrs) {
        for (name, attr) in attrs {
            if !TRIAL_COLUMNS.contains(&name.as_str()) {
                fields.insert(name.clone(), attr.clone());
            }
        }
    }
    serde_json::from_value(value)
        .map_err(|e| ApiError::unprocessable(format!("stored trial {}: {e}", row.number)))
}

/// A running trial (also one that was asked but never stored: no params).
fn running_trial(number: u64, params: &BTreeMap<String, Value>) -> Result<Trial, ApiError> {
    serde_json::from_value(json!({"number": number, "params": params, "state": "running"}))
        .map_err(|e| ApiError::internal("building a running trial", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(number: i32, state: &str, value: Option<f64>) -> TrialRow {
        TrialRow {
            study_id: Uuid::nil(),
            number,
            state: state.into(),
            params: json!({"n": number}),
            value,
            intermediate_values: json!({}),
            system_attrs: json!({}),
            error: None,
            duration_seconds: None,
            started_at: Utc::now(),
            finished_at: None,
        }
    }

    #[test]
    fn the_best_is_the_first_complete_trial_with_the_highest_value() {
        let trials = [
            row(0, "pruned", Some(900.0)),
            row(1, "complete", Some(10.0)),
            row(2, "complete", Some(50.0)),
            row(3, "complete", Some(50.0)),
            row(4, "running", None),
        ];
        let best = best_of(&trials).unwrap();
        assert_eq!((best.trial, best.value), (2, 50.0));
        assert_eq!(best.params, json!({"n": 2}));
        assert!(best_of(&trials[..1]).is_none());
    }

    #[test]
    fn interrupted_trials_do_not_count_towards_n_trials() {
        let mut trials: Vec<Trial> = (0..3)
            .map(|n| running_trial(n, &BTreeMap::new()).unwrap())
            .collect();
        trials[1].state = TrialState::Failed;
        trials[1].error = Some(INTERRUPTED.to_string());
        trials[1].intermediate_values = BTreeMap::from([(100, 1.5), (200, 2.5)]);
        trials[1].rung_values = vec![1.5];
        assert_eq!(plan_remaining(4, &trials), 2);
        assert_eq!(plan_remaining(1, &trials), 0);
        let stored = to_trial(&to_row(Uuid::nil(), &trials[1], Utc::now())).unwrap();
        assert_eq!(stored, trials[1]);
    }
}
