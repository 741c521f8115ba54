//! The embedded backend: one SQLite file (WAL, foreign keys on) or an in-memory database.
//!
//! Writes go through a pool of one connection and start with `BEGIN IMMEDIATE`, so writers in
//! this process queue fairly for the pool and writers in other processes wait on SQLite's busy
//! timeout instead of failing half-way through a transaction. Reads use a second, read-only pool
//! (WAL readers never block the writer). UUIDs are stored as hyphenated TEXT.

use crate::StoreError;
use crate::error::id_conflict;
use crate::model::{
    BaselineRow, HistoryAction, HistoryRow, NewBaseline, NewRun, ResultRow, RunRow,
};
use crate::promotion::{HistoryEntry, PairTx};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::types::Json;
use sqlx::{Row, Sqlite, Transaction};
use std::str::FromStr;
use std::time::Duration;
use uuid::Uuid;
use uuid::fmt::Hyphenated;

/// How long a writer waits for another process's write transaction before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);
const N_READERS: u32 = 4;

#[derive(Debug, Clone)]
pub(crate) struct Db {
    pub(crate) read: SqlitePool,
    pub(crate) write: SqlitePool,
}

pub(crate) async fn connect(url: &str) -> Result<Db, StoreError> {
    let options = SqliteConnectOptions::from_str(url)?
        .create_if_missing(true)
        .foreign_keys(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(BUSY_TIMEOUT);
    if url.contains(":memory:") || url.contains("mode=memory") {
        // One connection that never closes: the database lives as long as it does.
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await?;
        crate::migrations::SQLITE.run(&pool).await?;
        return Ok(Db {
            read: pool.clone(),
            write: pool,
        });
    }
    let file = options.get_filename().to_path_buf();
    let invalid = |what: &str, error: std::io::Error| {
        StoreError::invalid("database url", format!("cannot {what} for {url}: {error}"))
    };
    if let Some(parent) = file.parent()
        && !parent.as_os_str().is_empty()
    {
        // Directories created here are the owner's only (0700); an existing one is left as is.
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(parent).map_err(|error| {
            invalid(&format!("create the directory {}", parent.display()), error)
        })?;
    }
    // First-start set-up (creating the file, migrations) is serialised across processes by an
    // exclusive lock on `<file>.lock`: a server and a CLI starting together on a new data
    // directory would otherwise race through the migrations.
    let lock_path = file.with_extension("db.lock");
    let lock = tokio::task::spawn_blocking(move || -> std::io::Result<std::fs::File> {
        let lock = private_file(&lock_path)?;
        lock.lock()?;
        Ok(lock)
    })
    .await
    .map_err(|error| invalid("lock the database", std::io::Error::other(error)))?
    .map_err(|error| invalid("lock the database", error))?;
    // The database and its -wal/-shm (SQLite gives them the main file's mode) are the owner's
    // only (0600), whoever created them.
    private_file(&file).map_err(|error| invalid("create the database file", error))?;
    let write = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options.clone())
        .await?;
    crate::migrations::SQLITE.run(&write).await?;
    drop(lock);
    let read = SqlitePoolOptions::new()
        .max_connections(N_READERS)
        .connect_with(options.read_only(true))
        .await?;
    Ok(Db { read, write })
}

/// Opens (creating if missing) `path` readable and writable by its owner only; an existing
/// file's mode is narrowed to 0600 too.
fn private_file(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let file = options.open(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(file)
}

pub(crate) async fn close(db: &Db) {
    db.read.close().await;
    db.write.close().await;
}

async fn begin_write(db: &Db) -> Result<Transaction<'static, Sqlite>, StoreError> {
    Ok(db.write.begin_with("BEGIN IMMEDIATE").await?)
}

pub(crate) async fn insert_baseline(
    db: &Db,
    baseline: &NewBaseline,
) -> Result<BaselineRow, StoreError> {
    let mut tx = begin_write(db).await?;
    let row = crate::promotion::insert(&mut tx, baseline).await?;
    tx.commit().await?;
    Ok(row)
}

pub(crate) async fn promote(
    db: &Db,
    promotion: &crate::Promotion,
) -> Result<BaselineRow, StoreError> {
    let mut tx = begin_write(db).await?;
    let row = crate::promotion::promote(&mut tx, promotion).await?;
    tx.commit().await?;
    Ok(row)
}

pub(crate) async fn baselines(
    db: &Db,
    agent_type: Option<&str>,
    environment: Option<&str>,
) -> Result<Vec<BaselineRow>, StoreError> {
    let rows = sqlx::query(
        "SELECT * FROM eval_baselines
         WHERE ($1 IS NULL OR agent_type = $1) AND ($2 IS NULL OR environment = $2)
         ORDER BY agent_type, environment, rank",
    )
    .bind(agent_type)
    .bind(environment)
    .try_map(|row| baseline_from_row(&row))
    .fetch_all(&db.read)
    .await?;
    Ok(rows)
}

pub(crate) async fn baseline(
    db: &Db,
    agent_type: &str,
    environment: &str,
    rank: i32,
) -> Result<Option<BaselineRow>, StoreError> {
    let row = sqlx::query(
        "SELECT * FROM eval_baselines WHERE agent_type = $1 AND environment = $2 AND rank = $3",
    )
    .bind(agent_type)
    .bind(environment)
    .bind(rank)
    .try_map(|row| baseline_from_row(&row))
    .fetch_optional(&db.read)
    .await?;
    Ok(row)
}

pub(crate) async fn baseline_returns(
    db: &Db,
    baseline_id: Uuid,
) -> Result<Option<Vec<f64>>, StoreError> {
    let returns: Option<Json<Vec<f64>>> = sqlx::query_scalar(
        "SELECT r.episode_returns FROM baseline_sources s
         JOIN eval_results r ON r.id = s.eval_result_id
         WHERE s.baseline_id = $1",
    )
    .bind(baseline_id.hyphenated())
    .fetch_optional(&db.read)
    .await?;
    Ok(returns.map(|Json(returns)| returns))
}

pub(crate) async fn current_version(
    db: &Db,
    agent_type: &str,
    environment: &str,
) -> Result<Option<i32>, StoreError> {
    let version: Option<i32> = sqlx::query_scalar(
        "SELECT MAX(version) FROM eval_baselines WHERE agent_type = $1 AND environment = $2",
    )
    .bind(agent_type)
    .bind(environment)
    .fetch_one(&db.read)
    .await?;
    Ok(version)
}

pub(crate) async fn history(
    db: &Db,
    agent_type: &str,
    environment: &str,
    limit: i64,
) -> Result<Vec<HistoryRow>, StoreError> {
    let rows = sqlx::query(
        "SELECT * FROM baseline_history WHERE agent_type = $1 AND environment = $2
         ORDER BY id DESC LIMIT $3",
    )
    .bind(agent_type)
    .bind(environment)
    .bind(limit)
    .try_map(|row| history_from_row(&row))
    .fetch_all(&db.read)
    .await?;
    Ok(rows)
}

pub(crate) async fn save_run(
    db: &Db,
    run_id: Uuid,
    agent_type: &str,
    run: &NewRun,
) -> Result<Uuid, StoreError> {
    let mut tx = begin_write(db).await?;
    let inserted = sqlx::query(
        "INSERT INTO eval_runs (id, agent_type, request, response, seed, duration_seconds, job_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (job_id) DO NOTHING",
    )
    .bind(run_id.hyphenated())
    .bind(agent_type)
    .bind(Json(&run.request))
    .bind(Json(&run.response))
    .bind(run.seed.cast_signed())
    .bind(run.duration_seconds)
    .bind(run.job_id.map(|id| id.hyphenated().to_string()))
    .execute(&mut *tx)
    .await
    .map_err(|error| id_conflict(error, "eval run", run_id))?
    .rows_affected();
    if inserted == 0
        && let Some(job_id) = run.job_id
    {
        // The job already has its run (an earlier delivery stored it): that one stands.
        let existing: String = sqlx::query_scalar("SELECT id FROM eval_runs WHERE job_id = $1")
            .bind(job_id.hyphenated())
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        return existing
            .parse()
            .map_err(|e| StoreError::Database(sqlx::Error::Decode(Box::new(e))));
    }
    for (position, result) in run.results.iter().enumerate() {
        let result_id = result.id.unwrap_or_else(Uuid::new_v4);
        sqlx::query(
            "INSERT INTO eval_results (id, run_id, position, environment, metrics, episode_returns,
                                       episode_lengths, hyperparameters, regression)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(result_id.hyphenated())
        .bind(run_id.hyphenated())
        .bind(i32::try_from(position).unwrap_or(i32::MAX))
        .bind(&result.environment)
        .bind(Json(&result.metrics))
        .bind(Json(&result.episode_returns))
        .bind(Json(&result.episode_lengths))
        .bind(Json(&result.hyperparameters))
        .bind(result.regression.as_ref().map(Json))
        .execute(&mut *tx)
        .await
        .map_err(|error| id_conflict(error, "eval result", result_id))?;
    }
    tx.commit().await?;
    Ok(run_id)
}

pub(crate) async fn run(db: &Db, id: Uuid) -> Result<Option<RunRow>, StoreError> {
    let Some(mut run) = sqlx::query("SELECT * FROM eval_runs WHERE id = $1")
        .bind(id.hyphenated())
        .try_map(|row| run_from_row(&row))
        .fetch_optional(&db.read)
        .await?
    else {
        return Ok(None);
    };
    run.results = sqlx::query("SELECT * FROM eval_results WHERE run_id = $1 ORDER BY position")
        .bind(id.hyphenated())
        .try_map(|row| result_from_row(&row))
        .fetch_all(&db.read)
        .await?;
    Ok(Some(run))
}

pub(crate) async fn runs(db: &Db, limit: i64) -> Result<Vec<RunRow>, StoreError> {
    // One read transaction: both statements see the same snapshot.
    let mut tx = db.read.begin().await?;
    let runs = sqlx::query("SELECT * FROM eval_runs ORDER BY created_at DESC, id DESC LIMIT $1")
        .bind(limit)
        .try_map(|row| run_from_row(&row))
        .fetch_all(&mut *tx)
        .await?;
    let results = sqlx::query(
        "SELECT * FROM eval_results WHERE run_id IN
             (SELECT id FROM eval_runs ORDER BY created_at DESC, id DESC LIMIT $1)
         ORDER BY run_id, position",
    )
    .bind(limit)
    .try_map(|row| result_from_row(&row))
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(crate::attach_results(runs, results))
}

pub(crate) async fn result(db: &Db, id: Uuid) -> Result<Option<ResultRow>, StoreError> {
    let row = sqlx::query("SELECT * FROM eval_results WHERE id = $1")
        .bind(id.hyphenated())
        .try_map(|row| result_from_row(&row))
        .fetch_optional(&db.read)
        .await?;
    Ok(row)
}

impl PairTx for Transaction<'_, Sqlite> {
    async fn lock_pair(&mut self, _agent_type: &str, _environment: &str) -> Result<(), StoreError> {
        // `BEGIN IMMEDIATE` already holds the database's write lock.
        Ok(())
    }

    async fn pair_rows(
        &mut self,
        agent_type: &str,
        environment: &str,
    ) -> Result<Vec<BaselineRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM eval_baselines WHERE agent_type = $1 AND environment = $2 ORDER BY rank",
        )
        .bind(agent_type)
        .bind(environment)
        .try_map(|row| baseline_from_row(&row))
        .fetch_all(&mut **self)
        .await?;
        Ok(rows)
    }

    async fn eval_result_exists(&mut self, id: Uuid) -> Result<bool, StoreError> {
        let found: Option<i32> = sqlx::query_scalar("SELECT 1 FROM eval_results WHERE id = $1")
            .bind(id.hyphenated())
            .fetch_optional(&mut **self)
            .await?;
        Ok(found.is_some())
    }

    async fn shift_down(
        &mut self,
        agent_type: &str,
        environment: &str,
        from_rank: i32,
        version: i32,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE eval_baselines SET rank = -(rank + 1), version = $4
             WHERE agent_type = $1 AND environment = $2 AND rank >= $3",
        )
        .bind(agent_type)
        .bind(environment)
        .bind(from_rank)
        .bind(version)
        .execute(&mut **self)
        .await?;
        sqlx::query(
            "UPDATE eval_baselines SET rank = -rank
             WHERE agent_type = $1 AND environment = $2 AND rank < 0",
        )
        .bind(agent_type)
        .bind(environment)
        .execute(&mut **self)
        .await?;
        Ok(())
    }

    async fn insert_row(&mut self, id: Uuid, row: &NewBaseline) -> Result<BaselineRow, StoreError> {
        let row = sqlx::query(
            "INSERT INTO eval_baselines (id, agent_type, environment, mean_reward, std_reward,
                                         success_rate, hyperparameters, version, rank)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
             RETURNING *",
        )
        .bind(id.hyphenated())
        .bind(&row.agent_type)
        .bind(&row.environment)
        .bind(row.mean_reward)
        .bind(row.std_reward)
        .bind(row.success_rate)
        .bind(Json(&row.hyperparameters))
        .bind(row.version)
        .bind(row.rank)
        .try_map(|row| baseline_from_row(&row))
        .fetch_one(&mut **self)
        .await?;
        Ok(row)
    }

    async fn insert_history(&mut self, entry: &HistoryEntry<'_>) -> Result<(), StoreError> {
        let row = entry.row;
        sqlx::query(
            "INSERT INTO baseline_history (baseline_id, agent_type, environment, rank, version,
                 mean_reward, std_reward, success_rate, hyperparameters, action, eval_result_id, actor)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(row.id.hyphenated())
        .bind(&row.agent_type)
        .bind(&row.environment)
        .bind(row.rank)
        .bind(row.version)
        .bind(row.mean_reward)
        .bind(row.std_reward)
        .bind(row.success_rate)
        .bind(Json(&row.hyperparameters))
        .bind(entry.action.as_str())
        .bind(entry.eval_result_id.map(Uuid::hyphenated))
        .bind(entry.actor)
        .execute(&mut **self)
        .await?;
        Ok(())
    }

    async fn link_source(
        &mut self,
        baseline_id: Uuid,
        eval_result_id: Uuid,
    ) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO baseline_sources (baseline_id, eval_result_id) VALUES ($1, $2)")
            .bind(baseline_id.hyphenated())
            .bind(eval_result_id.hyphenated())
            .execute(&mut **self)
            .await?;
        Ok(())
    }
}

fn uuid(row: &SqliteRow, column: &str) -> Result<Uuid, sqlx::Error> {
    Ok(row.try_get::<Hyphenated, _>(column)?.into_uuid())
}

fn baseline_from_row(row: &SqliteRow) -> Result<BaselineRow, sqlx::Error> {
    Ok(BaselineRow {
        id: uuid(row, "id")?,
        agent_type: row.try_get("agent_type")?,
        environment: row.try_get("environment")?,
        mean_reward: row.try_get("mean_reward")?,
        std_reward: row.try_get("std_reward")?,
        success_rate: row.try_get("success_rate")?,
        hyperparameters: row.try_get::<Json<_>, _>("hyperparameters")?.0,
        version: row.try_get("version")?,
        rank: row.try_get("rank")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn history_from_row(row: &SqliteRow) -> Result<HistoryRow, sqlx::Error> {
    let action: String = row.try_get("action")?;
    Ok(HistoryRow {
        id: row.try_get("id")?,
        baseline_id: uuid(row, "baseline_id")?,
        agent_type: row.try_get("agent_type")?,
        environment: row.try_get("environment")?,
        rank: row.try_get("rank")?,
        version: row.try_get("version")?,
        mean_reward: row.try_get("mean_reward")?,
        std_reward: row.try_get("std_reward")?,
        success_rate: row.try_get("success_rate")?,
        hyperparameters: row.try_get::<Json<_>, _>("hyperparameters")?.0,
        action: HistoryAction::parse(&action).ok_or_else(|| crate::unknown_action(&action))?,
        eval_result_id: row
            .try_get::<Option<Hyphenated>, _>("eval_result_id")?
            .map(Hyphenated::into_uuid),
        actor: row.try_get("actor")?,
        created_at: row.try_get("created_at")?,
    })
}

pub(crate) fn run_from_row(row: &SqliteRow) -> Result<RunRow, sqlx::Error> {
    Ok(RunRow {
        id: uuid(row, "id")?,
        agent_type: row.try_get("agent_type")?,
        request: row.try_get::<Json<_>, _>("request")?.0,
        response: row.try_get::<Json<_>, _>("response")?.0,
        seed: row.try_get::<i64, _>("seed")?.cast_unsigned(),
        duration_seconds: row.try_get("duration_seconds")?,
        created_at: row.try_get("created_at")?,
        results: Vec::new(),
    })
}

pub(crate) fn result_from_row(row: &SqliteRow) -> Result<ResultRow, sqlx::Error> {
    Ok(ResultRow {
        id: uuid(row, "id")?,
        run_id: uuid(row, "run_id")?,
        environment: row.try_get("environment")?,
        metrics: row.try_get::<Json<_>, _>("metrics")?.0,
        episode_returns: row.try_get::<Json<_>, _>("episode_returns")?.0,
        episode_lengths: row.try_get::<Json<_>, _>("episode_lengths")?.0,
        hyperparameters: row.try_get::<Json<_>, _>("hyperparameters")?.0,
        regression: row
            .try_get::<Option<Json<_>>, _>("regression")?
            .map(|Json(value)| value),
        created_at: row.try_get("created_at")?,
    })
}
