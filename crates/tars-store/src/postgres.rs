//! The fleet backend: PostgreSQL through a pool of up to ten connections.
//!
//! Writers of one (agent type, environment) pair serialise on a transaction-scoped advisory lock
//! keyed by the pair's name, which also covers a pair that has no rows yet (a `SELECT … FOR
//! UPDATE` would lock nothing there). Text is ordered with `COLLATE "C"`, byte order, as SQLite
//! orders it.

use crate::StoreError;
use crate::error::id_conflict;
use crate::model::{
    BaselineRow, HistoryAction, HistoryRow, NewBaseline, NewRun, ResultRow, RunRow,
};
use crate::promotion::{HistoryEntry, PairTx};
use sqlx::postgres::{PgPool, PgPoolOptions, PgRow};
use sqlx::types::Json;
use sqlx::{Postgres, Row, Transaction};
use uuid::Uuid;

const MAX_CONNECTIONS: u32 = 10;
/// How long a call waits for a connection (sqlx's default is 30 s): while the server is down,
/// calls fail after this long with a transient error, so circuit breakers open and workers
/// back off instead of hanging. Broken idle connections are tested before use and replaced, so
/// the pool reconnects by itself once the server is back.
const ACQUIRE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

pub(crate) async fn connect(url: &str) -> Result<PgPool, StoreError> {
    let pool = PgPoolOptions::new()
        .max_connections(MAX_CONNECTIONS)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect(url)
        .await?;
    crate::migrations::POSTGRES.run(&pool).await?;
    Ok(pool)
}

async fn begin_write(pool: &PgPool) -> Result<Transaction<'static, Postgres>, StoreError> {
    Ok(pool.begin().await?)
}

pub(crate) async fn insert_baseline(
    pool: &PgPool,
    baseline: &NewBaseline,
) -> Result<BaselineRow, StoreError> {
    let mut tx = begin_write(pool).await?;
    let row = crate::promotion::insert(&mut tx, baseline).await?;
    tx.commit().await?;
    Ok(row)
}

pub(crate) async fn promote(
    pool: &PgPool,
    promotion: &crate::Promotion,
) -> Result<BaselineRow, StoreError> {
    let mut tx = begin_write(pool).await?;
    let row = crate::promotion::promote(&mut tx, promotion).await?;
    tx.commit().await?;
    Ok(row)
}

pub(crate) async fn baselines(
    pool: &PgPool,
    agent_type: Option<&str>,
    environment: Option<&str>,
) -> Result<Vec<BaselineRow>, StoreError> {
    let rows = sqlx::query(
        r#"SELECT * FROM eval_baselines
           WHERE ($1 IS NULL OR agent_type = $1) AND ($2 IS NULL OR environment = $2)
           ORDER BY agent_type COLLATE "C", environment COLLATE "C", rank"#,
    )
    .bind(agent_type)
    .bind(environment)
    .try_map(|row| baseline_from_row(&row))
    .fetch_all(pool)
    .await?;
    Ok(rows)
}

pub(crate) async fn baseline(
    pool: &PgPool,
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
    .fetch_optional(pool)
    .await?;
    Ok(row)
}

pub(crate) async fn baseline_returns(
    pool: &PgPool,
    baseline_id: Uuid,
) -> Result<Option<Vec<f64>>, StoreError> {
    let returns: Option<Json<Vec<f64>>> = sqlx::query_scalar(
        "SELECT r.episode_returns FROM baseline_sources s
         JOIN eval_results r ON r.id = s.eval_result_id
         WHERE s.baseline_id = $1",
    )
    .bind(baseline_id)
    .fetch_optional(pool)
    .await?;
    Ok(returns.map(|Json(returns)| returns))
}

pub(crate) async fn current_version(
    pool: &PgPool,
    agent_type: &str,
    environment: &str,
) -> Result<Option<i32>, StoreError> {
    let version: Option<i32> = sqlx::query_scalar(
        "SELECT MAX(version) FROM eval_baselines WHERE agent_type = $1 AND environment = $2",
    )
    .bind(agent_type)
    .bind(environment)
    .fetch_one(pool)
    .await?;
    Ok(version)
}

pub(crate) async fn history(
    pool: &PgPool,
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
    .fetch_all(pool)
    .await?;
    Ok(rows)
}

pub(crate) async fn save_run(
    pool: &PgPool,
    run_id: Uuid,
    agent_type: &str,
    run: &NewRun,
) -> Result<Uuid, StoreError> {
    let mut tx = begin_write(pool).await?;
    let inserted = sqlx::query(
        "INSERT INTO eval_runs (id, agent_type, request, response, seed, duration_seconds, job_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (job_id) DO NOTHING",
    )
    .bind(run_id)
    .bind(agent_type)
    .bind(Json(&run.request))
    .bind(Json(&run.response))
    .bind(run.seed.cast_signed())
    .bind(run.duration_seconds)
    .bind(run.job_id)
    .execute(&mut *tx)
    .await
    .map_err(|error| id_conflict(error, "eval run", run_id))?
    .rows_affected();
    if inserted == 0
        && let Some(job_id) = run.job_id
    {
        // The job already has its run (an earlier delivery stored it): that one stands.
        let existing: Uuid = sqlx::query_scalar("SELECT id FROM eval_runs WHERE job_id = $1")
            .bind(job_id)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        return Ok(existing);
    }
    for (position, result) in run.results.iter().enumerate() {
        let result_id = result.id.unwrap_or_else(Uuid::new_v4);
        sqlx::query(
            "INSERT INTO eval_results (id, run_id, position, environment, metrics, episode_returns,
                                       episode_lengths, hyperparameters, regression)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(result_id)
        .bind(run_id)
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

pub(crate) async fn run(pool: &PgPool, id: Uuid) -> Result<Option<RunRow>, StoreError> {
    let Some(mut run) = sqlx::query("SELECT * FROM eval_runs WHERE id = $1")
        .bind(id)
        .try_map(|row| run_from_row(&row))
        .fetch_optional(pool)
        .await?
    else {
        return Ok(None);
    };
    run.results = sqlx::query("SELECT * FROM eval_results WHERE run_id = $1 ORDER BY position")
        .bind(id)
        .try_map(|row| result_from_row(&row))
        .fetch_all(pool)
        .await?;
    Ok(Some(run))
}

pub(crate) async fn runs(pool: &PgPool, limit: i64) -> Result<Vec<RunRow>, StoreError> {
    // One read transaction: both statements see the same snapshot.
    let mut tx = pool
        .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .await?;
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

pub(crate) async fn result(pool: &PgPool, id: Uuid) -> Result<Option<ResultRow>, StoreError> {
    let row = sqlx::query("SELECT * FROM eval_results WHERE id = $1")
        .bind(id)
        .try_map(|row| result_from_row(&row))
        .fetch_optional(pool)
        .await?;
    Ok(row)
}

impl PairTx for Transaction<'_, Postgres> {
    async fn lock_pair(&mut self, agent_type: &str, environment: &str) -> Result<(), StoreError> {
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
            .bind(format!(
                "tars-store/eval_baselines/{agent_type}/{environment}"
            ))
            .execute(&mut **self)
            .await?;
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
            .bind(id)
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
        .bind(id)
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
        .bind(row.id)
        .bind(&row.agent_type)
        .bind(&row.environment)
        .bind(row.rank)
        .bind(row.version)
        .bind(row.mean_reward)
        .bind(row.std_reward)
        .bind(row.success_rate)
        .bind(Json(&row.hyperparameters))
        .bind(entry.action.as_str())
        .bind(entry.eval_result_id)
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
            .bind(baseline_id)
            .bind(eval_result_id)
            .execute(&mut **self)
            .await?;
        Ok(())
    }
}

fn uuid(row: &PgRow, column: &str) -> Result<Uuid, sqlx::Error> {
    row.try_get(column)
}

fn baseline_from_row(row: &PgRow) -> Result<BaselineRow, sqlx::Error> {
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

fn history_from_row(row: &PgRow) -> Result<HistoryRow, sqlx::Error> {
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
        eval_result_id: row.try_get("eval_result_id")?,
        actor: row.try_get("actor")?,
        created_at: row.try_get("created_at")?,
    })
}

pub(crate) fn run_from_row(row: &PgRow) -> Result<RunRow, sqlx::Error> {
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

pub(crate) fn result_from_row(row: &PgRow) -> Result<ResultRow, sqlx::Error> {
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
