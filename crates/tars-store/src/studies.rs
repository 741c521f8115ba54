//! AutoML studies (`studies`) and their trials (`study_trials`).
//!
//! The store knows nothing of samplers or pruners: a study's config and a trial's params are
//! JSON that `tars-automl` reads back. A study's status moves with a compare-and-set
//! ([`Store::set_study_status`] updates only from the status the caller saw), and a trial is
//! written with an upsert keyed by (study, number), so writing the same trial again (it
//! started, then it ended; or a resumed study re-writes it) is harmless.

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
     n_trials, created_by, created_at, updated_at, stop_requested)
     VALUES ($1, $2, 'running', $3, $4, $5, $6, $7, $7, FALSE)";
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
const TOUCH_STUDY: &str = "UPDATE studies SET updated_at = $2 WHERE id = $1";
const TRIALS: &str = "SELECT * FROM study_trials WHERE study_id = $1 ORDER BY number";

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

    /// A study's trials, by number.
    pub async fn trials(&self, study_id: Uuid) -> Result<Vec<TrialRow>, StoreError> {
        with_pool!(self, pool => {
            let rows = sqlx::query(TRIALS).bind(Id(study_id)).fetch_all(pool).await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in &rows {
                out.push(TrialRow {
                    study_id: row.try_get::<Id, _>("study_id")?.0,
                    number: row.try_get("number")?,
                    state: row.try_get("state")?,
                    params: row.try_get::<Json<Value>, _>("params")?.0,
                    value: row.try_get("value")?,
                    intermediate_values: row
                        .try_get::<Json<Value>, _>("intermediate_values")?
                        .0,
                    system_attrs: row.try_get::<Json<Value>, _>("system_attrs")?.0,
                    error: row.try_get("error")?,
                    duration_seconds: row.try_get("duration_seconds")?,
                    started_at: row.try_get("started_at")?,
                    finished_at: row.try_get("finished_at")?,
                });
            }
            Ok(out)
        })
    }
}
