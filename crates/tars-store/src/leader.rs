//! The storage side of leader election for singleton duties (`leader_epochs`): who may run a
//! duty, and fencing so that only the current leader's writes land.
//!
//! PostgreSQL (fleet): a [`LeaderSession`] is a dedicated connection, outside the pool. It
//! takes the duty's *session-level* advisory lock (`pg_try_advisory_lock`, keyed by the schema
//! and the duty, so fleets sharing a database in different schemas do not collide) and, in the
//! same breath, bumps the duty's `epoch`. The lock lives as long as the connection: when the
//! process dies or its connection is cut, PostgreSQL ends the session and releases the lock, and
//! the next candidate gets a higher epoch. SQLite (embedded): one process, which is the leader
//! of every duty; it bumps the epoch too, so fenced writes behave the same.
//!
//! A killed process's kernel closes its sockets, so PostgreSQL ends the session at once. A host
//! that dies (or drops off the network) closes nothing: the session sets PostgreSQL's *server*
//! TCP keepalives short (`KEEPALIVES`: probes after 1 s idle, every 1 s, 3 unanswered end
//! the session), so the backend notices within about 4 s and releases the lock, instead of
//! after the operating system's default of two hours.
//!
//! A fenced write ([`Store::requeue_orphan_job`]) names the [`Fence`] (duty, epoch) it was
//! started under and checks it in its own transaction, holding the duty's epoch row with
//! `FOR SHARE`: a new leader's epoch bump waits for it, and a write that comes after the bump is
//! refused with [`Conflict::Fenced`](crate::Conflict::Fenced). The election loop (retrying,
//! stepping down, the watch channel) is `tars_runtime::leader`'s; this module only talks SQL.

use crate::id::{Id, with_pool};
use crate::{Backend, Conflict, Store, StoreError};
use sqlx::{Connection, PgConnection};

/// The longest duty name.
pub const MAX_DUTY_CHARS: usize = 100;

/// The term a write was started under: the duty and the leader's epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    pub duty: String,
    pub epoch: i64,
}

/// One candidate for one duty. Dropping it ends its PostgreSQL session, and with it the lock.
pub struct LeaderSession {
    store: Store,
    duty: String,
    holder: String,
    /// PostgreSQL: the dedicated connection, `None` until the first attempt or after a failure.
    connection: Option<PgConnection>,
}

const LOCK: &str = "SELECT pg_try_advisory_lock(hashtext('tars.leader'), \
                    hashtext(current_schema() || '.' || $1))";
const UNLOCK: &str = "SELECT pg_advisory_unlock(hashtext('tars.leader'), \
                      hashtext(current_schema() || '.' || $1))";
macro_rules! epoch_statements {
    ($now:literal) => {
        [
            concat!(
                "INSERT INTO leader_epochs (duty, epoch, holder, acquired_at, renewed_at) \
                 VALUES ($1, 1, $2, ",
                $now,
                ", ",
                $now,
                ") ON CONFLICT (duty) DO UPDATE SET epoch = leader_epochs.epoch + 1, \
                 holder = excluded.holder, acquired_at = excluded.acquired_at, \
                 renewed_at = excluded.renewed_at RETURNING epoch"
            ),
            concat!(
                "UPDATE leader_epochs SET renewed_at = ",
                $now,
                " WHERE duty = $1 AND epoch = $2"
            ),
        ]
    };
}
/// The leader session's server-side TCP keepalives (seconds; ignored on Unix sockets): the
/// backend probes a silent client after 1 s, every 1 s, and ends the session (releasing the
/// lock) after 3 unanswered probes. A live leader renews every second, so only a dead or
/// unreachable host goes unanswered.
const KEEPALIVES: &str = "SELECT set_config('tcp_keepalives_idle', '1', false), \
                              set_config('tcp_keepalives_interval', '1', false), \
                              set_config('tcp_keepalives_count', '3', false)";
const PG_EPOCH: [&str; 2] = epoch_statements!("NOW()");
const SQLITE_EPOCH: [&str; 2] = epoch_statements!("strftime('%Y-%m-%dT%H:%M:%fZ', 'now')");
const BUMP: usize = 0;
const RENEW: usize = 1;
const CURRENT: &str = "SELECT epoch FROM leader_epochs WHERE duty = $1";
const CURRENT_SHARED: &str = "SELECT epoch FROM leader_epochs WHERE duty = $1 FOR SHARE";
const RUNNING: &str = "SELECT id FROM eval_jobs WHERE status = 'running' ORDER BY started_at, id";
const REQUEUE_ORPHAN: &str = "UPDATE eval_jobs SET status = 'queued', error = $2 \
                              WHERE id = $1 AND status = 'running'";

impl Store {
    /// A candidate for `duty` named `holder` (e.g. host and process id). Connects nothing yet.
    pub fn leader_session(&self, duty: &str, holder: &str) -> Result<LeaderSession, StoreError> {
        check_duty(duty)?;
        if holder.is_empty() || holder.chars().count() > 200 {
            return Err(StoreError::invalid(
                "leader holder",
                format!(
                    "must be 1 to 200 characters, got {}",
                    holder.chars().count()
                ),
            ));
        }
        Ok(LeaderSession {
            store: self.clone(),
            duty: duty.to_string(),
            holder: holder.to_string(),
            connection: None,
        })
    }

    /// The duty's current epoch; `None` before anyone led it.
    pub async fn leader_epoch(&self, duty: &str) -> Result<Option<i64>, StoreError> {
        check_duty(duty)?;
        Ok(match &self.backend {
            Backend::Postgres(pool) => {
                sqlx::query_scalar(CURRENT)
                    .bind(duty)
                    .fetch_optional(pool)
                    .await?
            }
            Backend::Sqlite(db) => {
                sqlx::query_scalar(CURRENT)
                    .bind(duty)
                    .fetch_optional(&db.write)
                    .await?
            }
        })
    }

    /// The jobs in status `running`, longest running first (for the job reaper).
    pub async fn running_jobs(&self) -> Result<Vec<uuid::Uuid>, StoreError> {
        let ids: Vec<Id> =
            with_pool!(self, pool => sqlx::query_scalar(RUNNING).fetch_all(pool).await?);
        Ok(ids.into_iter().map(|id| id.0).collect())
    }

    /// A fenced write of the job reaper: puts a `running` job whose queue message is gone (no
    /// worker will ever deliver it again) back to `queued` with `error` as the reason. `false`
    /// when the job is not running any more; [`Conflict::Fenced`] when `fence` is not the
    /// duty's current term (a new leader was elected: this process must stop the duty).
    pub async fn requeue_orphan_job(
        &self,
        fence: &Fence,
        id: uuid::Uuid,
        error: &str,
    ) -> Result<bool, StoreError> {
        let affected = match &self.backend {
            Backend::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                let current: Option<i64> = sqlx::query_scalar(CURRENT_SHARED)
                    .bind(&fence.duty)
                    .fetch_optional(&mut *tx)
                    .await?;
                check_fence(fence, current)?;
                let affected = sqlx::query(REQUEUE_ORPHAN)
                    .bind(id)
                    .bind(error)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                tx.commit().await?;
                affected
            }
            Backend::Sqlite(db) => {
                // One writer connection: nothing runs between the check and the write.
                let mut tx = db.write.begin_with("BEGIN IMMEDIATE").await?;
                let current: Option<i64> = sqlx::query_scalar(CURRENT)
                    .bind(&fence.duty)
                    .fetch_optional(&mut *tx)
                    .await?;
                check_fence(fence, current)?;
                let affected = sqlx::query(REQUEUE_ORPHAN)
                    .bind(id.hyphenated().to_string())
                    .bind(error)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                tx.commit().await?;
                affected
            }
        };
        Ok(affected == 1)
    }
}

impl LeaderSession {
    pub fn duty(&self) -> &str {
        &self.duty
    }

    /// Tries to become the duty's leader: `Some(epoch)` (the new, bumped epoch) when this
    /// candidate now holds the duty, `None` when another does. Opens the dedicated connection
    /// first when it has none; a failure drops it (the next attempt opens a new one).
    pub async fn try_acquire(&mut self) -> Result<Option<i64>, StoreError> {
        let result = self.acquire_inner().await;
        if result.is_err() {
            self.connection = None;
        }
        result
    }

    async fn acquire_inner(&mut self) -> Result<Option<i64>, StoreError> {
        match &self.store.backend {
            Backend::Postgres(pool) => {
                if self.connection.is_none() {
                    // Named, so operators see in pg_stat_activity which session leads.
                    let name: String = format!("tars leader {}", self.holder)
                        .chars()
                        .take(63)
                        .collect();
                    let options = pool
                        .connect_options()
                        .as_ref()
                        .clone()
                        .application_name(&name);
                    let mut connection = PgConnection::connect_with(&options).await?;
                    sqlx::query(KEEPALIVES).execute(&mut connection).await?;
                    self.connection = Some(connection);
                }
                let connection = self.connection.as_mut().expect("just connected");
                let locked: bool = sqlx::query_scalar(LOCK)
                    .bind(&self.duty)
                    .fetch_one(&mut *connection)
                    .await?;
                if !locked {
                    return Ok(None);
                }
                let bumped = sqlx::query_scalar(PG_EPOCH[BUMP])
                    .bind(&self.duty)
                    .bind(&self.holder)
                    .fetch_one(&mut *connection)
                    .await;
                match bumped {
                    Ok(epoch) => Ok(Some(epoch)),
                    Err(err) => {
                        // Do not sit on a lock without an epoch.
                        let _ = sqlx::query(UNLOCK)
                            .bind(&self.duty)
                            .execute(&mut *connection)
                            .await;
                        Err(err.into())
                    }
                }
            }
            Backend::Sqlite(db) => Ok(Some(
                sqlx::query_scalar(SQLITE_EPOCH[BUMP])
                    .bind(&self.duty)
                    .bind(&self.holder)
                    .fetch_one(&db.write)
                    .await?,
            )),
        }
    }

    /// The leader says it is alive: an error means it may no longer hold the duty (the
    /// connection, and with it the lock, is lost; or another holder's epoch is stored) and
    /// must step down at once. The connection is dropped then.
    pub async fn renew(&mut self, epoch: i64) -> Result<(), StoreError> {
        let result = self.renew_inner(epoch).await;
        if result.is_err() {
            self.connection = None;
        }
        result
    }

    async fn renew_inner(&mut self, epoch: i64) -> Result<(), StoreError> {
        let renewed = match &self.store.backend {
            Backend::Postgres(_) => {
                let Some(connection) = self.connection.as_mut() else {
                    return Err(StoreError::invalid(
                        "leader session",
                        "it holds no connection; call try_acquire first",
                    ));
                };
                sqlx::query(PG_EPOCH[RENEW])
                    .bind(&self.duty)
                    .bind(epoch)
                    .execute(&mut *connection)
                    .await?
                    .rows_affected()
            }
            Backend::Sqlite(db) => sqlx::query(SQLITE_EPOCH[RENEW])
                .bind(&self.duty)
                .bind(epoch)
                .execute(&db.write)
                .await?
                .rows_affected(),
        };
        if renewed == 1 {
            return Ok(());
        }
        let current = self.store.leader_epoch(&self.duty).await?;
        Err(Conflict::Fenced {
            duty: self.duty.clone(),
            epoch,
            current,
        }
        .into())
    }

    /// Gives the duty up: releases the lock and closes the connection.
    pub async fn resign(&mut self) {
        if let Some(mut connection) = self.connection.take() {
            let _ = sqlx::query(UNLOCK)
                .bind(&self.duty)
                .execute(&mut connection)
                .await;
            let _ = connection.close().await;
        }
    }
}

fn check_duty(duty: &str) -> Result<(), StoreError> {
    if duty.is_empty() || duty.chars().count() > MAX_DUTY_CHARS {
        return Err(StoreError::invalid(
            "duty",
            format!(
                "must be 1 to {MAX_DUTY_CHARS} characters, got {}",
                duty.chars().count()
            ),
        ));
    }
    Ok(())
}

fn check_fence(fence: &Fence, current: Option<i64>) -> Result<(), StoreError> {
    if current == Some(fence.epoch) {
        return Ok(());
    }
    Err(Conflict::Fenced {
        duty: fence.duty.clone(),
        epoch: fence.epoch,
        current,
    }
    .into())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A host that vanishes loses the lock within seconds: its session's backend probes it
    /// after 1 s of silence, every 1 s, 3 times. Against `TARS_TEST_DATABASE_URL` (TCP), in
    /// a schema of its own; skipped without it, unless `CI` is set.
    #[tokio::test]
    async fn the_leader_session_asks_for_short_server_keepalives() {
        let Some(schema) = tars_testkit::PgSchema::create("tars_keepalive").await else {
            return;
        };
        let store = Store::connect(&schema.url()).await.unwrap();
        let mut session = store.leader_session("keepalive", "test").unwrap();
        assert_eq!(session.try_acquire().await.unwrap(), Some(1));
        let connection = session
            .connection
            .as_mut()
            .expect("the session's connection");
        let settings: (String, String, String) = sqlx::query_as(
            "SELECT current_setting('tcp_keepalives_idle'), \
             current_setting('tcp_keepalives_interval'), current_setting('tcp_keepalives_count')",
        )
        .fetch_one(&mut *connection)
        .await
        .unwrap();
        assert_eq!(settings, ("1".into(), "1".into(), "3".into()));
        session.resign().await;
        store.close().await;
        schema.drop().await;
    }
}
