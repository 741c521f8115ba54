//! AutoML studies (`studies`) and their trials (`study_trials`).
//!
//! The store knows nothing of samplers or pruners: a study's config and a trial's params are
//! JSON that `tars-automl` reads back. A study's status moves with a compare-and-set
//! ([`Store::set_study_status`] updates only from the status the caller saw), and a trial is
//! written with an upsert keyed by (study, number), so writing the same trial again (it
//! started, then it ended; or a resumed study re-writes it) is harmless.
//!
//! Several servers on one database run each study once: a study has an owner and a lease
//! expiry. [`Store::claim_study`] takes a running study with a compare-and-set (nobody holds
//! it, the caller already does, or the holder's lease has ended), the owner renews it
//! ([`Store::renew_study_lease`]) while it runs the study and releases it on a graceful
//! shutdown ([`Store::release_study`]). Lease times are the servers' clocks, so their skew
//! must stay well below the lease.
//!
//! [`Store::study_summaries`] lists studies with their trial counts and best trial in one
//! statement (no query per study).

use crate::id::{Id, with_pool};
use crate::model::check_agent_type;
use crate::{Conflict, Store, StoreError};
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::Row;
use sqlx::types::Json;
use uuid::Uuid;

/// The statuses a study can have.
pub const STUDY_STATUSES: [&str; 4] = ["running", "stopped", "completed", "failed"];
/// The states a trial can have.
pub const TRIAL_STATES: [&str; 4] = ["running", "complete", "pruned", "failed"];
/// The most studies one list returns.
pub const MAX_STUDIES_LISTED: i64 = 1_000;

/// A study to store (status `running`).
#[derive(Debug, Clone, PartialEq)]
pub struct NewStudy {
    pub id: Uuid,
    /// Any case; stored upper-case.
    pub agent_type: String,
    /// The API body with its defaults filled in.
    pub request: Value,
    /// The serialised study configuration.
    pub config: Value,
    pub n_trials: i32,
    pub created_by: String,
    /// The server that runs it from the start, holding its lease until `lease_until`.
    pub owner: Option<String>,
    pub lease_until: Option<DateTime<Utc>>,
}

/// One row of `studies`.
#[derive(Debug, Clone, PartialEq)]
pub struct StudyRow {
    pub id: Uuid,
    pub agent_type: String,
    pub status: String,
    pub request: Value,
    pub config: Value,
    pub n_trials: i32,
    pub error: Option<String>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub stop_requested: bool,
    /// The server that runs (or last ran) the study.
    pub owner: Option<String>,
    /// Until when `owner`'s claim holds (to the millisecond).
    pub lease_until: Option<DateTime<Utc>>,
}

/// A study's trials counted by state, and its best complete trial (highest value, the first
/// among equals): what a list of studies shows without reading every trial.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TrialSummary {
    pub complete: i64,
    pub pruned: i64,
    pub running: i64,
    /// Failed with an error other than the caller's "interrupted" one.
    pub failed: i64,
    /// Failed with exactly the caller's "interrupted" error.
    pub interrupted: i64,
    /// (number, value, params) of the best complete trial.
    pub best: Option<(i32, f64, Value)>,
}

/// One row of `study_trials`, to write or as read.
#[derive(Debug, Clone, PartialEq)]
pub struct TrialRow {
    pub study_id: Uuid,
    pub number: i32,
    /// running, complete, pruned or failed.
    pub state: String,
    /// A JSON object: parameter name → value.
    pub params: Value,
    pub value: Option<f64>,
    /// A JSON object: step (as text) → value.
    pub intermediate_values: Value,
    /// A JSON object: the rest of the trial's state (e.g. successive halving's rung values).
    pub system_attrs: Value,
    pub error: Option<String>,
    pub duration_seconds: Option<f64>,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

const INSERT_STUDY: &str = "INSERT INTO studies (id, agent_type, status, request, config,
     n_trials, created_by, created_at, updated_at, stop_requested, owner, lease_until_ms)
     VALUES ($1, $2, 'running', $3, $4, $5, $6, $7, $7, FALSE, $8, $9)";
const STUDY: &str = "SELECT * FROM studies WHERE id = $1";
const STUDIES: &str = "SELECT * FROM studies
     WHERE ($1 IS NULL OR agent_type = $1) AND ($2 IS NULL OR status = $2)
     ORDER BY created_at DESC, id LIMIT $3";
const SET_STATUS: &str = "UPDATE studies SET status = $3, error = COALESCE($4, error),
     updated_at = $5 WHERE id = $1 AND status = $2";
const REQUEST_STOP: &str = "UPDATE studies SET stop_requested = TRUE, updated_at = $2
     WHERE id = $1 AND status = 'running'";
const UPSERT_TRIAL: &str = "INSERT INTO study_trials (study_id, number, state, params, value,
     intermediate_values, system_attrs, error, duration_seconds, started_at, finished_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
     ON CONFLICT (study_id, number) DO UPDATE SET state = excluded.state,
     params = excluded.params, value = excluded.value,
     intermediate_values = excluded.intermediate_values,
     system_attrs = excluded.system_attrs, error = excluded.error,
     duration_seconds = excluded.duration_seconds, finished_at = excluded.finished_at";
const CLAIM: &str = "UPDATE studies SET owner = $2, lease_until_ms = $3
     WHERE id = $1 AND status = 'running'
     AND (owner IS NULL OR owner = $2 OR lease_until_ms IS NULL OR lease_until_ms <= $4)";
const RENEW: &str = "UPDATE studies SET lease_until_ms = $3
     WHERE id = $1 AND owner = $2 AND status = 'running'";
const RELEASE: &str = "UPDATE studies SET owner = NULL, lease_until_ms = NULL
     WHERE id = $1 AND owner = $2";
/// The listed studies (as `STUDIES`), each with its trials counted by state and its best
/// complete trial, in one statement.
const SUMMARIES: &str = "WITH listed AS (
       SELECT * FROM studies
       WHERE ($1 IS NULL OR agent_type = $1) AND ($2 IS NULL OR status = $2)
       ORDER BY created_at DESC, id LIMIT $3),
     counts AS (
       SELECT t.study_id,
         SUM(CASE WHEN t.state = 'complete' THEN 1 ELSE 0 END) AS n_complete,
         SUM(CASE WHEN t.state = 'pruned' THEN 1 ELSE 0 END) AS n_pruned,
         SUM(CASE WHEN t.state = 'running' THEN 1 ELSE 0 END) AS n_running,
         SUM(CASE WHEN t.state = 'failed' AND t.error = $4 THEN 1 ELSE 0 END) AS n_interrupted,
         SUM(CASE WHEN t.state = 'failed' AND (t.error IS NULL OR t.error <> $4)
             THEN 1 ELSE 0 END) AS n_failed
       FROM study_trials t JOIN listed l ON l.id = t.study_id
       GROUP BY t.study_id),
     ranked AS (
       SELECT t.study_id, t.number, t.value, t.params,
         ROW_NUMBER() OVER (PARTITION BY t.study_id ORDER BY t.value DESC, t.number) AS rn
       FROM study_trials t JOIN listed l ON l.id = t.study_id
       WHERE t.state = 'complete' AND t.value IS NOT NULL)
     SELECT l.*,
       COALESCE(c.n_complete, 0) AS n_complete, COALESCE(c.n_pruned, 0) AS n_pruned,
       COALESCE(c.n_running, 0) AS n_running, COALESCE(c.n_failed, 0) AS n_failed,
       COALESCE(c.n_interrupted, 0) AS n_interrupted,
       r.number AS best_number, r.value AS best_value, r.params AS best_params
     FROM listed l
     LEFT JOIN counts c ON c.study_id = l.id
     LEFT JOIN ranked r ON r.study_id = l.id AND r.rn = 1
     ORDER BY l.created_at DESC, l.id";
const TOUCH_STUDY: &str = "UPDATE studies SET updated_at = $2 WHERE id = $1";
const TRIALS: &str = "SELECT * FROM study_trials WHERE study_id = $1 ORDER BY number";
const TRIAL: &str = "SELECT * FROM study_trials WHERE study_id = $1 AND number = $2";
const REPORT_TRIAL_VALUES: &str = "UPDATE study_trials SET intermediate_values = $3
     WHERE study_id = $1 AND number = $2 AND state = 'running'";

/// A `study_trials` row of either backend as a [`TrialRow`].
macro_rules! trial_row {
    ($row:expr) => {{
        let row = &$row;
        TrialRow {
            study_id: row.try_get::<Id, _>("study_id")?.0,
            number: row.try_get("number")?,
            state: row.try_get("state")?,
            params: row.try_get::<Json<Value>, _>("params")?.0,
            value: row.try_get("value")?,
            intermediate_values: row.try_get::<Json<Value>, _>("intermediate_values")?.0,
            system_attrs: row.try_get::<Json<Value>, _>("system_attrs")?.0,
            error: row.try_get("error")?,
            duration_seconds: row.try_get("duration_seconds")?,
            started_at: row.try_get("started_at")?,
            finished_at: row.try_get("finished_at")?,
        }
    }};
}

macro_rules! study_row {
    ($row:expr) => {{
        let row = $row;
        StudyRow {
            id: row.try_get::<Id, _>("id")?.0,
            agent_type: row.try_get("agent_type")?,
            status: row.try_get("status")?,
            request: row.try_get::<Json<Value>, _>("request")?.0,
            config: row.try_get::<Json<Value>, _>("config")?.0,
            n_trials: row.try_get("n_trials")?,
            error: row.try_get("error")?,
            created_by: row.try_get("created_by")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
            stop_requested: row.try_get("stop_requested")?,
            owner: row.try_get("owner")?,
            lease_until: row
                .try_get::<Option<i64>, _>("lease_until_ms")?
                .and_then(DateTime::<Utc>::from_timestamp_millis),
        }
    }};
}

macro_rules! summary {
    ($row:expr) => {{
        let row = $row;
        let best_number: Option<i32> = row.try_get("best_number")?;
        let best = match best_number {
            Some(number) => Some((
                number,
                row.try_get::<f64, _>("best_value")?,
                row.try_get::<Json<Value>, _>("best_params")?.0,
            )),
            None => None,
        };
        TrialSummary {
            complete: row.try_get("n_complete")?,
            pruned: row.try_get("n_pruned")?,
            running: row.try_get("n_running")?,
            failed: row.try_get("n_failed")?,
            interrupted: row.try_get("n_interrupted")?,
            best,
        }
    }};
}

fn check_status(status: &str) -> Result<(), StoreError> {
    if STUDY_STATUSES.contains(&status) {
        Ok(())
    } else {
        Err(StoreError::invalid(
            "status",
            format!(
                "unknown study status '{status}'; valid: {}",
                STUDY_STATUSES.join(", ")
            ),
        ))
    }
}

fn check_owner(owner: &str) -> Result<(), StoreError> {
    if owner.is_empty() || owner.len() > 200 {
        return Err(StoreError::invalid(
            "owner",
            "a study's owner is a server name of 1 to 200 characters",
        ));
    }
    Ok(())
}

impl Store {
    /// Stores a new study in status `running`.
    pub async fn insert_study(&self, new: &NewStudy) -> Result<StudyRow, StoreError> {
        let agent_type = check_agent_type(&new.agent_type)?;
        if new.created_by.is_empty() {
            return Err(StoreError::invalid("created_by", "must not be empty"));
        }
        crate::model::check_actor(Some(&new.created_by))?;
        if new.n_trials < 1 {
            return Err(StoreError::invalid("n_trials", "must be at least 1"));
        }
        if let Some(owner) = &new.owner {
            check_owner(owner)?;
        }
        let now = Utc::now();
        let inserted: Result<(), sqlx::Error> = with_pool!(self, pool => {
            sqlx::query(INSERT_STUDY)
                .bind(Id(new.id))
                .bind(&agent_type)
                .bind(Json(&new.request))
                .bind(Json(&new.config))
                .bind(new.n_trials)
                .bind(&new.created_by)
                .bind(now)
                .bind(&new.owner)
                .bind(new.lease_until.map(|t| t.timestamp_millis()))
                .execute(pool)
                .await
                .map(|_| ())
        });
        inserted.map_err(|e| crate::error::id_conflict(e, "study", new.id))?;
        self.study(new.id)
            .await?
            .ok_or_else(|| StoreError::not_found("study", new.id))
    }

    pub async fn study(&self, id: Uuid) -> Result<Option<StudyRow>, StoreError> {
        with_pool!(self, pool => {
            let row = sqlx::query(STUDY).bind(Id(id)).fetch_optional(pool).await?;
            Ok(match row {
                Some(row) => Some(study_row!(&row)),
                None => None,
            })
        })
    }

    /// Studies, newest first, filtered by agent type and status when given.
    pub async fn studies(
        &self,
        agent_type: Option<&str>,
        status: Option<&str>,
        limit: i64,
    ) -> Result<Vec<StudyRow>, StoreError> {
        let agent_type = agent_type.map(check_agent_type).transpose()?;
        if let Some(status) = status {
            check_status(status)?;
        }
        let limit = limit.clamp(1, MAX_STUDIES_LISTED);
        with_pool!(self, pool => {
            let rows = sqlx::query(STUDIES)
                .bind(&agent_type)
                .bind(status)
                .bind(limit)
                .fetch_all(pool)
                .await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in &rows {
                out.push(study_row!(row));
            }
            Ok(out)
        })
    }

    /// Studies as [`Store::studies`] lists them, each with its [`TrialSummary`]; trials whose
    /// error is exactly `interrupted_error` are counted apart. One statement.
    pub async fn study_summaries(
        &self,
        agent_type: Option<&str>,
        status: Option<&str>,
        limit: i64,
        interrupted_error: &str,
    ) -> Result<Vec<(StudyRow, TrialSummary)>, StoreError> {
        let agent_type = agent_type.map(check_agent_type).transpose()?;
        if let Some(status) = status {
            check_status(status)?;
        }
        let limit = limit.clamp(1, MAX_STUDIES_LISTED);
        with_pool!(self, pool => {
            let rows = sqlx::query(SUMMARIES)
                .bind(&agent_type)
                .bind(status)
                .bind(limit)
                .bind(interrupted_error)
                .fetch_all(pool)
                .await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in &rows {
                out.push((study_row!(row), summary!(row)));
            }
            Ok(out)
        })
    }

    /// Claims a running study for `owner` until `until`: succeeds (true) when nobody holds
    /// it, `owner` already does, or the holder's lease ended at or before `now`. False when
    /// another server's lease still holds or the study is not running.
    pub async fn claim_study(
        &self,
        id: Uuid,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        check_owner(owner)?;
        let claimed: u64 = with_pool!(self, pool => {
            sqlx::query(CLAIM)
                .bind(Id(id))
                .bind(owner)
                .bind(until.timestamp_millis())
                .bind(now.timestamp_millis())
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(claimed == 1)
    }

    /// Extends `owner`'s lease on a running study to `until`; false when `owner` no longer
    /// holds it (another server claimed it after the lease ended) or it is not running.
    pub async fn renew_study_lease(
        &self,
        id: Uuid,
        owner: &str,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        check_owner(owner)?;
        let renewed: u64 = with_pool!(self, pool => {
            sqlx::query(RENEW)
                .bind(Id(id))
                .bind(owner)
                .bind(until.timestamp_millis())
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(renewed == 1)
    }

    /// Gives up `owner`'s claim (a graceful shutdown), so another server can resume the
    /// study at once. Nothing happens when `owner` does not hold it.
    pub async fn release_study(&self, id: Uuid, owner: &str) -> Result<(), StoreError> {
        with_pool!(self, pool => {
            sqlx::query(RELEASE)
                .bind(Id(id))
                .bind(owner)
                .execute(pool)
                .await?;
            Ok(())
        })
    }

    /// Moves a study from `from` to `to`, recording `error` when given.
    /// [`Conflict::StudyStatus`] when it is no longer in `from`; not found when it does not
    /// exist.
    pub async fn set_study_status(
        &self,
        id: Uuid,
        from: &str,
        to: &str,
        error: Option<&str>,
    ) -> Result<StudyRow, StoreError> {
        check_status(from)?;
        check_status(to)?;
        let now = Utc::now();
        let moved: u64 = with_pool!(self, pool => {
            sqlx::query(SET_STATUS)
                .bind(Id(id))
                .bind(from)
                .bind(to)
                .bind(error)
                .bind(now)
                .execute(pool)
                .await?
                .rows_affected()
        });
        let row = self
            .study(id)
            .await?
            .ok_or_else(|| StoreError::not_found("study", id))?;
        if moved == 0 {
            return Err(Conflict::StudyStatus {
                id,
                expected: from.to_string(),
                actual: row.status,
            }
            .into());
        }
        Ok(row)
    }

    /// Marks a running study to stop; its runner stops at the next trial boundary. Returns
    /// the study; [`Conflict::StudyStatus`] when it is not running.
    pub async fn request_stop(&self, id: Uuid) -> Result<StudyRow, StoreError> {
        let now = Utc::now();
        let moved: u64 = with_pool!(self, pool => {
            sqlx::query(REQUEST_STOP)
                .bind(Id(id))
                .bind(now)
                .execute(pool)
                .await?
                .rows_affected()
        });
        let row = self
            .study(id)
            .await?
            .ok_or_else(|| StoreError::not_found("study", id))?;
        if moved == 0 {
            return Err(Conflict::StudyStatus {
                id,
                expected: "running".to_string(),
                actual: row.status,
            }
            .into());
        }
        Ok(row)
    }

    /// Writes a trial, replacing the stored one with the same (study, number).
    pub async fn upsert_trial(&self, trial: &TrialRow) -> Result<(), StoreError> {
        if !TRIAL_STATES.contains(&trial.state.as_str()) {
            return Err(StoreError::invalid(
                "state",
                format!(
                    "unknown trial state '{}'; valid: {}",
                    trial.state,
                    TRIAL_STATES.join(", ")
                ),
            ));
        }
        if trial.number < 0 {
            return Err(StoreError::invalid("number", "must be at least 0"));
        }
        if !trial.params.is_object()
            || !trial.intermediate_values.is_object()
            || !trial.system_attrs.is_object()
        {
            return Err(StoreError::invalid(
                "params",
                "params, intermediate values and system attributes must be JSON objects",
            ));
        }
        let now = Utc::now();
        let written: Result<(), sqlx::Error> = with_pool!(self, pool => async {
            let mut tx = pool.begin().await?;
            sqlx::query(UPSERT_TRIAL)
                .bind(Id(trial.study_id))
                .bind(trial.number)
                .bind(&trial.state)
                .bind(Json(&trial.params))
                .bind(trial.value.filter(|v| v.is_finite()))
                .bind(Json(&trial.intermediate_values))
                .bind(Json(&trial.system_attrs))
                .bind(&trial.error)
                .bind(trial.duration_seconds)
                .bind(trial.started_at)
                .bind(trial.finished_at)
                .execute(&mut *tx)
                .await?;
            sqlx::query(TOUCH_STUDY)
                .bind(Id(trial.study_id))
                .bind(now)
                .execute(&mut *tx)
                .await?;
            tx.commit().await
        }
        .await);
        match written {
            Err(err) if crate::error::is_foreign_key_violation(&err) => {
                Err(StoreError::not_found("study", trial.study_id))
            }
            other => Ok(other?),
        }
    }

    /// Replaces a running trial's intermediate values (a JSON object: step as text → value),
    /// as the worker running it reports them; `false` when the trial is not running any more
    /// (its owner ended it) or does not exist.
    pub async fn report_trial_values(
        &self,
        study_id: Uuid,
        number: u64,
        intermediate_values: &Value,
    ) -> Result<bool, StoreError> {
        if !intermediate_values.is_object() {
            return Err(StoreError::invalid(
                "intermediate values",
                "must be a JSON object of step → value",
            ));
        }
        let number = i32::try_from(number)
            .map_err(|_| StoreError::invalid("number", "must be at most 2147483647"))?;
        let affected = with_pool!(self, pool => sqlx::query(REPORT_TRIAL_VALUES)
            .bind(Id(study_id))
            .bind(number)
            .bind(Json(intermediate_values))
            .execute(pool)
            .await?
            .rows_affected());
        Ok(affected == 1)
    }

    /// One trial of a study.
    pub async fn trial(&self, study_id: Uuid, number: i32) -> Result<Option<TrialRow>, StoreError> {
        with_pool!(self, pool => {
            let row = sqlx::query(TRIAL)
                .bind(Id(study_id))
                .bind(number)
                .fetch_optional(pool)
                .await?;
            Ok(match row {
                Some(row) => Some(trial_row!(row)),
                None => None,
            })
        })
    }

    /// A study's trials, by number.
    pub async fn trials(&self, study_id: Uuid) -> Result<Vec<TrialRow>, StoreError> {
        with_pool!(self, pool => {
            let rows = sqlx::query(TRIALS).bind(Id(study_id)).fetch_all(pool).await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in &rows {
                out.push(trial_row!(row));
            }
            Ok(out)
        })
    }
}
