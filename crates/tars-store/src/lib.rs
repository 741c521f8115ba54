//! The storage layer of T.A.R.S.: ranked baselines per (agent type, environment), every change
//! to them, and evaluation runs with their results — in an embedded SQLite file or in a fleet's
//! PostgreSQL, behind one [`Store`] that behaves the same on both.
//!
//! [`Store::connect`] applies the versioned migrations of `migrations/<backend>/` (embedded in
//! the binary; see [`migrations`]). `eval_baselines` is exactly the seed's migration 007.
//!
//! # Versions and promotions
//!
//! Every (agent type, environment) pair has a version: the highest `version` of its rows, `None`
//! while it has none. A row's `version` is the pair's version when that row last changed. Agent
//! types are stored upper-case and looked up case-insensitively; environment ids are exact.
//!
//! [`Store::promote`] is a compare-and-set: it succeeds only if the pair is still at the
//! caller's `expected_version` (`None`: the pair must have no rows), inserts the new row at the
//! requested rank with version + 1, moves the rows at that rank and below one rank down (they
//! take the new version too) and records each changed row in the history, all in one
//! transaction. Losers of a race get [`Conflict::Version`]; they reload with
//! [`Store::current_version`] and retry. There is no "force": an operator who wants to overwrite
//! reads the version first, like everyone else. The same sequence of calls gives the same ranks.
//! The steps are in `promotion.rs`.
//!
//! [`Store::insert_baseline`] writes a row as is, like the seed's §3.2 rows: the rank must be
//! free and nothing is re-ranked.

mod engines;
mod error;
mod health;
mod hypersync;
mod id;
mod jobs;
mod leader;
mod listing;
mod model;
mod postgres;
mod promotion;
mod sqlite;
mod studies;
mod users;

pub use engines::{
    COMPONENT_KINDS, COMPONENT_STATUSES, ComponentRow, FINDING_KINDS, FindingRow,
    MAX_ENGINE_ROWS_LISTED, NewFinding, PauseRow, PoolConnections, SEVERITIES, TASK_STATUSES,
    TaskResultRow,
};
pub use error::{Conflict, StoreError};
pub use hypersync::{
    ConfigAction, ConfigRow, MAX_PROPOSALS_LISTED, NewConfig, NewProposal, ProposalEvent,
    ProposalRow, Transition,
};
pub use jobs::{Inserted, JobKind, JobRow, JobStatus, NewJob};
pub use leader::{Fence, LeaderSession, MAX_DUTY_CHARS};
pub use listing::{Cursor, IdOf, JobFilter, Listed, MAX_PAGE, Page, RunFilter};
pub use model::{
    BaselineRow, HistoryAction, HistoryRow, MAX_ACTOR_CHARS, MAX_AGENT_TYPE_CHARS,
    MAX_ENVIRONMENT_CHARS, NewBaseline, NewResult, NewRun, Promotion, ResultRow, RunRow,
};
pub use studies::{
    MAX_STUDIES_LISTED, NewStudy, STUDY_STATUSES, StudyRow, TRIAL_STATES, TrialRow, TrialSummary,
};
pub use users::{
    MAX_USERNAME_CHARS, NewRefreshToken, NewUser, NextRefreshToken, ROLES, RefreshUse, UserRow,
};

use model::{check_actor, check_agent_type, check_baseline_values};
use std::collections::HashMap;
use uuid::Uuid;

/// The embedded migrations, one set per backend, applied by [`Store::connect`]. Public for
/// tools that roll back (`Migrator::undo`) or inspect them.
///
/// Files are sqlx's reversible pairs, `<version>_<name>.up.sql` and `.down.sql`, with the same
/// names in both folders. Versions are `20261101000NNN`: the last digits continue the seed's
/// numbering, so `20261101000007_eval_baselines` is the seed's `007_eval_baselines.sql` and its
/// `.down.sql` the seed's `007_rollback.sql`. A shipped migration is never edited; add one.
pub mod migrations {
    use sqlx::migrate::Migrator;

    /// `migrations/postgres/`.
    pub static POSTGRES: Migrator = sqlx::migrate!("migrations/postgres");
    /// `migrations/sqlite/`.
    pub static SQLITE: Migrator = sqlx::migrate!("migrations/sqlite");
    /// The version of the seed's migration 007, `eval_baselines`.
    pub const EVAL_BASELINES_VERSION: i64 = 20261101000007;
}

/// A connection pool to one database, SQLite or PostgreSQL. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    backend: Backend,
}

#[derive(Debug, Clone)]
enum Backend {
    Sqlite(sqlite::Db),
    Postgres(sqlx::PgPool),
}

/// Runs the same call on whichever backend the store has.
macro_rules! dispatch {
    ($store:expr, $function:ident($($arg:expr),*)) => {
        match &$store.backend {
            Backend::Sqlite(db) => sqlite::$function(db, $($arg),*).await,
            Backend::Postgres(pool) => postgres::$function(pool, $($arg),*).await,
        }
    };
}

impl Store {
    /// Opens `url` and applies the migrations:
    /// - `sqlite://PATH` (the file and its directory are created if missing; WAL, foreign keys
    ///   on), `sqlite::memory:` (one private in-memory database);
    /// - `postgres://…` or `postgresql://…`.
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite(sqlite::connect(url).await?)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres(postgres::connect(url).await?)
        } else {
            let scheme = url.split(':').next().unwrap_or(url);
            return Err(StoreError::invalid(
                "database url",
                format!(
                    "unknown scheme '{scheme}'; valid: sqlite://PATH, sqlite::memory:, postgres://USER@HOST/DB"
                ),
            ));
        };
        Ok(Store { backend })
    }

    /// `"sqlite"` or `"postgres"`.
    pub fn backend(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite(_) => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }

    /// Closes every connection; later calls fail.
    pub async fn close(&self) {
        match &self.backend {
            Backend::Sqlite(db) => sqlite::close(db).await,
            Backend::Postgres(pool) => pool.close().await,
        }
    }

    /// Inserts a baseline as is (see the crate docs). A taken rank is [`Conflict::RankTaken`].
    pub async fn insert_baseline(&self, baseline: &NewBaseline) -> Result<BaselineRow, StoreError> {
        let baseline = NewBaseline {
            agent_type: check_agent_type(&baseline.agent_type)?,
            ..baseline.clone()
        };
        check_baseline_values(
            &baseline.environment,
            baseline.mean_reward,
            baseline.std_reward,
            baseline.success_rate,
            &baseline.hyperparameters,
            baseline.rank,
        )?;
        if baseline.version < 1 {
            return Err(StoreError::invalid(
                "version",
                format!("{} is below 1", baseline.version),
            ));
        }
        dispatch!(self, insert_baseline(&baseline))
    }

    /// The baselines, optionally of one agent type and/or environment, ordered by agent type,
    /// environment (byte order) and rank.
    pub async fn baselines(
        &self,
        agent_type: Option<&str>,
        environment: Option<&str>,
    ) -> Result<Vec<BaselineRow>, StoreError> {
        let agent_type = agent_type.map(model::normalize_agent_type);
        dispatch!(self, baselines(agent_type.as_deref(), environment))
    }

    /// The baseline at `rank` of a pair, if any.
    pub async fn baseline(
        &self,
        agent_type: &str,
        environment: &str,
        rank: i32,
    ) -> Result<Option<BaselineRow>, StoreError> {
        let agent_type = model::normalize_agent_type(agent_type);
        dispatch!(self, baseline(&agent_type, environment, rank))
    }

    /// The episode returns of the evaluation result a baseline was promoted from; `None` when
    /// it was inserted directly (or does not exist).
    pub async fn baseline_returns(
        &self,
        baseline_id: Uuid,
    ) -> Result<Option<Vec<f64>>, StoreError> {
        dispatch!(self, baseline_returns(baseline_id))
    }

    /// The pair's version: the highest `version` of its rows, `None` when it has none.
    pub async fn current_version(
        &self,
        agent_type: &str,
        environment: &str,
    ) -> Result<Option<i32>, StoreError> {
        let agent_type = model::normalize_agent_type(agent_type);
        dispatch!(self, current_version(&agent_type, environment))
    }

    /// Promotes a new baseline (see the crate docs): returns the new row, or
    /// [`Conflict::Version`] when the pair is no longer at `expected_version`.
    pub async fn promote(&self, promotion: &Promotion) -> Result<BaselineRow, StoreError> {
        let promotion = Promotion {
            agent_type: check_agent_type(&promotion.agent_type)?,
            ..promotion.clone()
        };
        check_baseline_values(
            &promotion.environment,
            promotion.mean_reward,
            promotion.std_reward,
            promotion.success_rate,
            &promotion.hyperparameters,
            promotion.rank,
        )?;
        check_actor(promotion.actor.as_deref())?;
        dispatch!(self, promote(&promotion))
    }

    /// The pair's history, newest first, at most `limit` entries.
    pub async fn history(
        &self,
        agent_type: &str,
        environment: &str,
        limit: i64,
    ) -> Result<Vec<HistoryRow>, StoreError> {
        check_limit(limit)?;
        let agent_type = model::normalize_agent_type(agent_type);
        dispatch!(self, history(&agent_type, environment, limit))
    }

    /// Saves a run and all its results in one transaction; returns the run's id.
    ///
    /// Idempotent by job: when `run.job_id` already has a run, that run's id is returned and
    /// nothing is written (a redelivered job never stores two runs).
    pub async fn save_run(&self, run: &NewRun) -> Result<Uuid, StoreError> {
        let agent_type = model::check_run(run)?;
        let run_id = run.id.unwrap_or_else(Uuid::new_v4);
        dispatch!(self, save_run(run_id, &agent_type, run))
    }

    /// A run with its results, in request order.
    pub async fn run(&self, id: Uuid) -> Result<Option<RunRow>, StoreError> {
        dispatch!(self, run(id))
    }

    /// One result.
    pub async fn result(&self, id: Uuid) -> Result<Option<ResultRow>, StoreError> {
        dispatch!(self, result(id))
    }

    /// The latest `limit` runs with their results, newest first.
    pub async fn runs(&self, limit: i64) -> Result<Vec<RunRow>, StoreError> {
        check_limit(limit)?;
        dispatch!(self, runs(limit))
    }
}

fn check_limit(limit: i64) -> Result<(), StoreError> {
    if limit < 0 {
        return Err(StoreError::invalid(
            "limit",
            format!("{limit} is negative; use 0 or more"),
        ));
    }
    Ok(())
}

/// Hands each run its results (both lists come from the backends, results in position order).
fn attach_results(mut runs: Vec<RunRow>, results: Vec<ResultRow>) -> Vec<RunRow> {
    let run_idx_by_id: HashMap<Uuid, usize> = runs
        .iter()
        .enumerate()
        .map(|(run_idx, run)| (run.id, run_idx))
        .collect();
    for result in results {
        if let Some(&run_idx) = run_idx_by_id.get(&result.run_id) {
            runs[run_idx].results.push(result);
        }
    }
    runs
}

/// The decode error for a history action this version does not know.
fn unknown_action(action: &str) -> sqlx::Error {
    sqlx::Error::Decode(format!("unknown baseline_history action '{action}'").into())
}
