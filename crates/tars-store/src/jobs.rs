//! Jobs (`eval_jobs`: evaluations, trainings, AutoML trials, [`JobKind`]): stored before they are queued, claimed by one worker with a
//! compare-and-set on the status, finished with a run id or an error. On start, a service
//! re-queues what a crash left running ([`Store::requeue_unfinished`]): evaluations are
//! deterministic, so running one again gives the result the lost run would have given.
//!
//! The SQL is the same on both backends; only id binding differs (PostgreSQL `UUID`, SQLite
//! hyphenated text), and the clock (`NOW()` / `strftime`).

use crate::{Backend, Store, StoreError};
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::types::Json;
use sqlx::{Row, postgres::PgRow, sqlite::SqliteRow};
use std::fmt;
use uuid::Uuid;

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl JobStatus {
    pub const ALL: [JobStatus; 5] = [
        JobStatus::Queued,
        JobStatus::Running,
        JobStatus::Succeeded,
        JobStatus::Failed,
        JobStatus::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Succeeded => "succeeded",
            JobStatus::Failed => "failed",
            JobStatus::Cancelled => "cancelled",
        }
    }

    pub fn is_final(self) -> bool {
        matches!(
            self,
            JobStatus::Succeeded | JobStatus::Failed | JobStatus::Cancelled
        )
    }

    fn parse(text: &str) -> Result<JobStatus, sqlx::Error> {
        JobStatus::ALL
            .into_iter()
            .find(|s| s.as_str() == text)
            .ok_or_else(|| sqlx::Error::Decode(format!("unknown job status '{text}'").into()))
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a job does; its `request` is that kind's request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum JobKind {
    /// Train and evaluate a configuration (an `EvalRequest`); the result is its run, `run_id`.
    #[default]
    Evaluation,
    /// Train one configuration and keep its checkpoint; the result is in `result`.
    Training,
    /// Run one trial of an AutoML study; the trial's row is the result.
    Trial,
}

impl JobKind {
    pub const ALL: [JobKind; 3] = [JobKind::Evaluation, JobKind::Training, JobKind::Trial];

    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Evaluation => "evaluation",
            JobKind::Training => "training",
            JobKind::Trial => "trial",
        }
    }

    fn parse(text: &str) -> Result<JobKind, sqlx::Error> {
        JobKind::ALL
            .into_iter()
            .find(|k| k.as_str() == text)
            .ok_or_else(|| sqlx::Error::Decode(format!("unknown job kind '{text}'").into()))
    }
}

impl fmt::Display for JobKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A job to store.
#[derive(Debug, Clone, PartialEq)]
pub struct NewJob {
    pub id: Uuid,
    pub kind: JobKind,
    pub request: Value,
    /// Who submitted it (idempotency keys are per principal).
    pub principal: String,
    pub idempotency_key: Option<String>,
}

/// A stored job.
#[derive(Debug, Clone, PartialEq)]
pub struct JobRow {
    pub id: Uuid,
    pub kind: JobKind,
    pub status: JobStatus,
    pub request: Value,
    pub principal: String,
    pub idempotency_key: Option<String>,
    /// The stored evaluation run, once an evaluation succeeded.
    pub run_id: Option<Uuid>,
    /// What a training or trial produced, once it succeeded.
    pub result: Option<Value>,
    pub error: Option<String>,
    /// Times a worker claimed it (more than 1 after a restart re-ran it).
    pub attempts: i32,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// What [`Store::insert_job`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum Inserted {
    New(JobRow),
    /// The principal already submitted a job with this idempotency key: that job.
    Existing(JobRow),
}

const INSERT: &str = "INSERT INTO eval_jobs (id, kind, status, request, principal, idempotency_key)
     VALUES ($1, $5, 'queued', $2, $3, $4)
     ON CONFLICT (principal, idempotency_key) DO NOTHING
     RETURNING *";
const BY_ID: &str = "SELECT * FROM eval_jobs WHERE id = $1";
const BY_KEY: &str = "SELECT * FROM eval_jobs WHERE principal = $1 AND idempotency_key = $2";
const QUEUED: &str = "SELECT id FROM eval_jobs WHERE status = 'queued' ORDER BY created_at, id";
const ACTIVE_OF: &str =
    "SELECT COUNT(*) FROM eval_jobs WHERE principal = $1 AND status IN ('queued', 'running')";
const REQUEUE: &str = "UPDATE eval_jobs SET status = 'queued' WHERE status = 'running'";
const REQUEUE_ONE: &str =
    "UPDATE eval_jobs SET status = 'queued' WHERE id = $1 AND status = 'running'";
const REQUEUE_WITH_ERROR: &str =
    "UPDATE eval_jobs SET status = 'queued', error = $2 WHERE id = $1 AND status = 'running'";

/// The same statements with each backend's clock.
macro_rules! with_now {
    ($name:ident, $now:literal) => {
        const $name: [&str; 5] = [
            concat!(
                "UPDATE eval_jobs SET status = 'running', started_at = ",
                $now,
                ", attempts = attempts + 1 WHERE id = $1 AND status = 'queued' RETURNING *"
            ),
            concat!(
                "UPDATE eval_jobs SET status = $2, run_id = $3, error = $4, finished_at = ",
                $now,
                " WHERE id = $1 AND status = $5"
            ),
            concat!(
                "UPDATE eval_jobs SET status = 'running', started_at = ",
                $now,
                ", attempts = attempts + 1 WHERE id = $1 AND status IN ('queued', 'running') RETURNING *"
            ),
            concat!(
                "UPDATE eval_jobs SET status = 'succeeded', result = $2, error = NULL, finished_at = ",
                $now,
                " WHERE id = $1 AND status = 'running'"
            ),
            concat!(
                "UPDATE eval_jobs SET status = 'failed', error = $2, idempotency_key = NULL, finished_at = ",
                $now,
                " WHERE id = $1 AND status = 'queued'"
            ),
        ];
    };
}
with_now!(PG, "NOW()");
with_now!(SQLITE, "strftime('%Y-%m-%dT%H:%M:%fZ', 'now')");
const CLAIM: usize = 0;
const FINISH: usize = 1;
const RECLAIM: usize = 2;
const SUCCEED_WITH: usize = 3;
const REFUSE: usize = 4;

impl Store {
    /// Stores a queued job, or returns the principal's job with the same idempotency key.
    pub async fn insert_job(&self, job: &NewJob) -> Result<Inserted, StoreError> {
        if job.principal.is_empty() || job.principal.chars().count() > 200 {
            return Err(StoreError::invalid(
                "principal",
                "must be 1 to 200 characters".to_string(),
            ));
        }
        if let Some(key) = &job.idempotency_key
            && (key.is_empty() || key.chars().count() > 200)
        {
            return Err(StoreError::invalid(
                "idempotency key",
                format!("must be 1 to 200 characters, got {}", key.chars().count()),
            ));
        }
        // One round trip for a new job: the insert returns the row it stored.
        let inserted = match &self.backend {
            Backend::Postgres(pool) => {
                sqlx::query(INSERT)
                    .bind(job.id)
                    .bind(Json(&job.request))
                    .bind(&job.principal)
                    .bind(&job.idempotency_key)
                    .bind(job.kind.as_str())
                    .try_map(|row: PgRow| pg_job(&row))
                    .fetch_optional(pool)
                    .await?
            }
            Backend::Sqlite(db) => {
                sqlx::query(INSERT)
                    .bind(job.id.hyphenated().to_string())
                    .bind(Json(&job.request))
                    .bind(&job.principal)
                    .bind(&job.idempotency_key)
                    .bind(job.kind.as_str())
                    .try_map(|row: SqliteRow| sqlite_job(&row))
                    .fetch_optional(&db.write)
                    .await?
            }
        };
        if let Some(row) = inserted {
            return Ok(Inserted::New(row));
        }
        let key = job.idempotency_key.as_deref().unwrap_or_default();
        let existing = match &self.backend {
            Backend::Postgres(pool) => {
                sqlx::query(BY_KEY)
                    .bind(&job.principal)
                    .bind(key)
                    .try_map(|row: PgRow| pg_job(&row))
                    .fetch_optional(pool)
                    .await?
            }
            Backend::Sqlite(db) => {
                sqlx::query(BY_KEY)
                    .bind(&job.principal)
                    .bind(key)
                    .try_map(|row: SqliteRow| sqlite_job(&row))
                    .fetch_optional(&db.write)
                    .await?
            }
        };
        match existing {
            Some(row) => Ok(Inserted::Existing(row)),
            None => Err(StoreError::Conflict(crate::Conflict::IdTaken {
                what: "eval job",
                id: job.id,
            })),
        }
    }

    pub async fn job(&self, id: Uuid) -> Result<Option<JobRow>, StoreError> {
        Ok(match &self.backend {
            Backend::Postgres(pool) => {
                sqlx::query(BY_ID)
                    .bind(id)
                    .try_map(|row: PgRow| pg_job(&row))
                    .fetch_optional(pool)
                    .await?
            }
            Backend::Sqlite(db) => {
                sqlx::query(BY_ID)
                    .bind(id.hyphenated().to_string())
                    .try_map(|row: SqliteRow| sqlite_job(&row))
                    .fetch_optional(&db.write)
                    .await?
            }
        })
    }

    /// Moves a queued job to running and returns it; `None` when it is not queued (claimed,
    /// cancelled, gone).
    pub async fn claim_job(&self, id: Uuid) -> Result<Option<JobRow>, StoreError> {
        self.move_to_running(CLAIM, id).await
    }

    /// Moves a queued *or running* job to running and returns it; `None` when it has ended or
    /// is gone. For a
    /// job delivered again by a queue that redelivers (fleet mode): the worker that had it
    /// stopped acknowledging it (it died), so its `running` status is stale. A worker that was
    /// only slow may still finish too: its run is the same job's run, stored once
    /// ([`Store::save_run`] is idempotent by job), and the first finish wins.
    pub async fn reclaim_job(&self, id: Uuid) -> Result<Option<JobRow>, StoreError> {
        self.move_to_running(RECLAIM, id).await
    }

    /// Runs the claim or reclaim statement `which`, returning the row it moved.
    async fn move_to_running(&self, which: usize, id: Uuid) -> Result<Option<JobRow>, StoreError> {
        Ok(match &self.backend {
            Backend::Postgres(pool) => {
                sqlx::query(PG[which])
                    .bind(id)
                    .try_map(|row: PgRow| pg_job(&row))
                    .fetch_optional(pool)
                    .await?
            }
            Backend::Sqlite(db) => {
                sqlx::query(SQLITE[which])
                    .bind(id.hyphenated().to_string())
                    .try_map(|row: SqliteRow| sqlite_job(&row))
                    .fetch_optional(&db.write)
                    .await?
            }
        })
    }

    /// Puts a running job back in the queue after a transient failure, keeping the failure's
    /// text as its error until it ends; `false` when it is not running any more.
    pub async fn requeue_job_after(&self, id: Uuid, error: &str) -> Result<bool, StoreError> {
        let affected = match &self.backend {
            Backend::Postgres(pool) => sqlx::query(REQUEUE_WITH_ERROR)
                .bind(id)
                .bind(error)
                .execute(pool)
                .await?
                .rows_affected(),
            Backend::Sqlite(db) => sqlx::query(REQUEUE_WITH_ERROR)
                .bind(id.hyphenated().to_string())
                .bind(error)
                .execute(&db.write)
                .await?
                .rows_affected(),
        };
        Ok(affected == 1)
    }

    /// Every queued job id, oldest first, changing nothing (fleet mode: jobs left running
    /// belong to live workers or come back by redelivery).
    pub async fn queued_jobs(&self) -> Result<Vec<Uuid>, StoreError> {
        match &self.backend {
            Backend::Postgres(pool) => Ok(sqlx::query(QUEUED)
                .try_map(|row: PgRow| row.try_get::<Uuid, _>("id"))
                .fetch_all(pool)
                .await?),
            Backend::Sqlite(db) => Ok(sqlx::query(QUEUED)
                .try_map(|row: SqliteRow| text_uuid(&row, "id"))
                .fetch_all(&db.write)
                .await?),
        }
    }

    /// How many of `principal`'s jobs are queued or running.
    pub async fn active_jobs_of(&self, principal: &str) -> Result<i64, StoreError> {
        Ok(match &self.backend {
            Backend::Postgres(pool) => {
                sqlx::query_scalar(ACTIVE_OF)
                    .bind(principal)
                    .fetch_one(pool)
                    .await?
            }
            Backend::Sqlite(db) => {
                sqlx::query_scalar(ACTIVE_OF)
                    .bind(principal)
                    .fetch_one(&db.write)
                    .await?
            }
        })
    }

    /// Ends a job that is in status `from` (running, or queued for a cancel); `false` when it
    /// is not in that status any more.
    pub async fn finish_job(
        &self,
        id: Uuid,
        from: JobStatus,
        to: JobStatus,
        run_id: Option<Uuid>,
        error: Option<&str>,
    ) -> Result<bool, StoreError> {
        let affected = match &self.backend {
            Backend::Postgres(pool) => sqlx::query(PG[FINISH])
                .bind(id)
                .bind(to.as_str())
                .bind(run_id)
                .bind(error)
                .bind(from.as_str())
                .execute(pool)
                .await?
                .rows_affected(),
            Backend::Sqlite(db) => sqlx::query(SQLITE[FINISH])
                .bind(id.hyphenated().to_string())
                .bind(to.as_str())
                .bind(run_id.map(|id| id.hyphenated().to_string()))
                .bind(error)
                .bind(from.as_str())
                .execute(&db.write)
                .await?
                .rows_affected(),
        };
        Ok(affected == 1)
    }

    /// Ends a queued job the queue refused (full, closed), and frees its idempotency key: the
    /// refusal leaves no record behind the key, so a retry with it is a new attempt. `false`
    /// when the job is not queued any more.
    pub async fn refuse_job(&self, id: Uuid, reason: &str) -> Result<bool, StoreError> {
        let affected = match &self.backend {
            Backend::Postgres(pool) => sqlx::query(PG[REFUSE])
                .bind(id)
                .bind(reason)
                .execute(pool)
                .await?
                .rows_affected(),
            Backend::Sqlite(db) => sqlx::query(SQLITE[REFUSE])
                .bind(id.hyphenated().to_string())
                .bind(reason)
                .execute(&db.write)
                .await?
                .rows_affected(),
        };
        Ok(affected == 1)
    }

    /// Ends a running job as succeeded with what it produced (a training's checkpoint, a
    /// trial's outcome); `false` when it is not running any more.
    pub async fn succeed_job_with(&self, id: Uuid, result: &Value) -> Result<bool, StoreError> {
        let affected = match &self.backend {
            Backend::Postgres(pool) => sqlx::query(PG[SUCCEED_WITH])
                .bind(id)
                .bind(Json(result))
                .execute(pool)
                .await?
                .rows_affected(),
            Backend::Sqlite(db) => sqlx::query(SQLITE[SUCCEED_WITH])
                .bind(id.hyphenated().to_string())
                .bind(Json(result))
                .execute(&db.write)
                .await?
                .rows_affected(),
        };
        Ok(affected == 1)
    }

    /// Puts a running job back in the queue (its process is stopping before it finished);
    /// `false` when it is not running any more.
    pub async fn requeue_job(&self, id: Uuid) -> Result<bool, StoreError> {
        let affected = match &self.backend {
            Backend::Postgres(pool) => sqlx::query(REQUEUE_ONE)
                .bind(id)
                .execute(pool)
                .await?
                .rows_affected(),
            Backend::Sqlite(db) => sqlx::query(REQUEUE_ONE)
                .bind(id.hyphenated().to_string())
                .execute(&db.write)
                .await?
                .rows_affected(),
        };
        Ok(affected == 1)
    }

    /// Re-queues jobs left running by a process that stopped, and returns every queued job id,
    /// oldest first.
    pub async fn requeue_unfinished(&self) -> Result<Vec<Uuid>, StoreError> {
        match &self.backend {
            Backend::Postgres(pool) => {
                sqlx::query(REQUEUE).execute(pool).await?;
                let ids = sqlx::query(QUEUED)
                    .try_map(|row: PgRow| row.try_get::<Uuid, _>("id"))
                    .fetch_all(pool)
                    .await?;
                Ok(ids)
            }
            Backend::Sqlite(db) => {
                sqlx::query(REQUEUE).execute(&db.write).await?;
                let ids = sqlx::query(QUEUED)
                    .try_map(|row: SqliteRow| text_uuid(&row, "id"))
                    .fetch_all(&db.write)
                    .await?;
                Ok(ids)
            }
        }
    }
}

pub(crate) fn pg_job(row: &PgRow) -> Result<JobRow, sqlx::Error> {
    Ok(JobRow {
        id: row.try_get("id")?,
        kind: JobKind::parse(row.try_get("kind")?)?,
        status: JobStatus::parse(row.try_get("status")?)?,
        request: row.try_get::<Json<Value>, _>("request")?.0,
        principal: row.try_get("principal")?,
        idempotency_key: row.try_get("idempotency_key")?,
        run_id: row.try_get("run_id")?,
        result: row
            .try_get::<Option<Json<Value>>, _>("result")?
            .map(|json| json.0),
        error: row.try_get("error")?,
        attempts: row.try_get("attempts")?,
        created_at: row.try_get("created_at")?,
        started_at: row.try_get("started_at")?,
        finished_at: row.try_get("finished_at")?,
    })
}

pub(crate) fn sqlite_job(row: &SqliteRow) -> Result<JobRow, sqlx::Error> {
    let run_id: Option<String> = row.try_get("run_id")?;
    Ok(JobRow {
        id: text_uuid(row, "id")?,
        kind: JobKind::parse(row.try_get("kind")?)?,
        status: JobStatus::parse(row.try_get("status")?)?,
        request: row.try_get::<Json<Value>, _>("request")?.0,
        principal: row.try_get("principal")?,
        idempotency_key: row.try_get("idempotency_key")?,
        run_id: run_id
            .map(|id| id.parse())
            .transpose()
            .map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
        result: row
            .try_get::<Option<Json<Value>>, _>("result")?
            .map(|json| json.0),
        error: row.try_get("error")?,
        attempts: row.try_get("attempts")?,
        created_at: row.try_get("created_at")?,
        started_at: row.try_get("started_at")?,
        finished_at: row.try_get("finished_at")?,
    })
}

fn text_uuid(row: &SqliteRow, column: &str) -> Result<Uuid, sqlx::Error> {
    let text: String = row.try_get(column)?;
    text.parse().map_err(|e| sqlx::Error::Decode(Box::new(e)))
}
