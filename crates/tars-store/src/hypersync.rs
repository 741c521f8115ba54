//! HyperSync's state: proposals with every status change (`proposals`, `proposal_events`) and
//! the versioned live configuration of each agent type (`agent_configs`).
//!
//! Statuses are plain strings here (the database's CHECK lists them); `tars-hypersync` owns the
//! state machine and says which moves are legal. The store makes each move a compare-and-set:
//! [`Store::transition_proposal`] updates only from the status the caller saw, and
//! [`Store::insert_config`] writes version `expected + 1` only while the agent is at `expected`.
//! Applying or rolling back a proposal and writing its config happen in one transaction.

use crate::id::{Id, with_pool};
use crate::model::{check_actor, check_agent_type, check_environment};
use crate::{Conflict, Store, StoreError};
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::Row;
use sqlx::types::Json;
use uuid::Uuid;

/// A proposal to store (status `pending`).
#[derive(Debug, Clone, PartialEq)]
pub struct NewProposal {
    pub id: Uuid,
    /// Any case; stored upper-case.
    pub agent_type: String,
    /// A JSON object of hyperparameter overrides.
    pub hyperparameters: Value,
    /// The rest of the request: environments, evaluate_before_apply, auto_apply…
    pub request: Value,
    pub reason: Option<String>,
    pub created_by: String,
}

/// One row of `proposals`.
#[derive(Debug, Clone, PartialEq)]
pub struct ProposalRow {
    pub id: Uuid,
    pub agent_type: String,
    pub status: String,
    pub hyperparameters: Value,
    pub request: Value,
    pub reason: Option<String>,
    /// Why the last transition happened.
    pub status_reason: Option<String>,
    pub evaluation_id: Option<Uuid>,
    pub checkpoint_id: Option<String>,
    /// The config version it became, once applied.
    pub applied_version: Option<i32>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// One status change of a proposal.
#[derive(Debug, Clone, PartialEq)]
pub struct ProposalEvent {
    pub seq: i32,
    /// `None` for the creation.
    pub from_status: Option<String>,
    pub to_status: String,
    pub actor: String,
    pub reason: Option<String>,
    pub at: DateTime<Utc>,
}

/// A status change: applies only while the proposal is `from`. The optional fields are set
/// when given and kept otherwise.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Transition {
    pub id: Uuid,
    pub from: String,
    pub to: String,
    pub actor: String,
    pub reason: Option<String>,
    pub evaluation_id: Option<Uuid>,
    pub checkpoint_id: Option<String>,
}

/// Why a config version exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigAction {
    /// Written directly (`PUT /v1/agents/{type}/config`).
    Set,
    /// An approved proposal.
    Apply,
    /// Restores an earlier version.
    Rollback,
}

impl ConfigAction {
    pub fn as_str(self) -> &'static str {
        match self {
            ConfigAction::Set => "set",
            ConfigAction::Apply => "apply",
            ConfigAction::Rollback => "rollback",
        }
    }

    fn parse(text: &str) -> Result<ConfigAction, sqlx::Error> {
        [
            ConfigAction::Set,
            ConfigAction::Apply,
            ConfigAction::Rollback,
        ]
        .into_iter()
        .find(|a| a.as_str() == text)
        .ok_or_else(|| sqlx::Error::Decode(format!("unknown config action '{text}'").into()))
    }
}

/// A config version to write.
#[derive(Debug, Clone, PartialEq)]
pub struct NewConfig {
    /// Any case; stored upper-case.
    pub agent_type: String,
    /// The version the caller read; 0 when the agent has none. The new one is this + 1.
    pub expected_version: i32,
    pub hyperparameters: Value,
    pub checkpoint_id: Option<String>,
    pub environment: Option<String>,
    pub action: ConfigAction,
    pub proposal_id: Option<Uuid>,
    pub restored_version: Option<i32>,
    pub actor: String,
    pub reason: Option<String>,
    /// A proposal move made in the same transaction (e.g. approved → applied, which also
    /// records the new version as the proposal's `applied_version`).
    pub transition: Option<Transition>,
}

/// One row of `agent_configs`.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigRow {
    pub agent_type: String,
    pub version: i32,
    pub hyperparameters: Value,
    pub checkpoint_id: Option<String>,
    pub environment: Option<String>,
    pub action: ConfigAction,
    pub proposal_id: Option<Uuid>,
    pub restored_version: Option<i32>,
    pub actor: String,
    pub reason: Option<String>,
    pub created_at: DateTime<Utc>,
}

const INSERT_PROPOSAL: &str = "INSERT INTO proposals (id, agent_type, status, hyperparameters,
     request, reason, created_by, created_at, updated_at)
     VALUES ($1, $2, 'pending', $3, $4, $5, $6, $7, $7)";
const INSERT_EVENT: &str =
    "INSERT INTO proposal_events (proposal_id, seq, from_status, to_status, actor, reason, at)
     SELECT $1, COALESCE(MAX(seq), 0) + 1, $2, $3, $4, $5, $6
     FROM proposal_events WHERE proposal_id = $1";
const UPDATE_STATUS: &str = "UPDATE proposals SET status = $3, status_reason = $4,
     evaluation_id = COALESCE($5, evaluation_id), checkpoint_id = COALESCE($6, checkpoint_id),
     applied_version = COALESCE($7, applied_version), updated_at = $8
     WHERE id = $1 AND status = $2";
const PROPOSAL: &str = "SELECT * FROM proposals WHERE id = $1";
const PROPOSALS: &str = "SELECT * FROM proposals
     WHERE ($1 IS NULL OR agent_type = $1) AND ($2 IS NULL OR status = $2)
     ORDER BY created_at DESC, id LIMIT $3";
const EVENTS: &str = "SELECT * FROM proposal_events WHERE proposal_id = $1 ORDER BY seq";
const LATEST_VERSION: &str =
    "SELECT COALESCE(MAX(version), 0) AS version FROM agent_configs WHERE agent_type = $1";
const INSERT_CONFIG: &str = "INSERT INTO agent_configs (agent_type, version, hyperparameters,
     checkpoint_id, environment, action, proposal_id, restored_version, actor, reason, created_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";
const CONFIG: &str = "SELECT * FROM agent_configs WHERE agent_type = $1 AND version = $2";
const ACTIVE: &str = "SELECT * FROM agent_configs WHERE agent_type = $1
     ORDER BY version DESC LIMIT 1";
const HISTORY: &str = "SELECT * FROM agent_configs WHERE agent_type = $1 ORDER BY version";
const VERSIONS: &str = "SELECT agent_type, MAX(version) AS version FROM agent_configs
     GROUP BY agent_type ORDER BY agent_type";

/// The most proposals one list returns.
pub const MAX_PROPOSALS_LISTED: i64 = 1_000;

macro_rules! proposal_row {
    ($row:expr) => {{
        let row = $row;
        ProposalRow {
            id: row.try_get::<Id, _>("id")?.0,
            agent_type: row.try_get("agent_type")?,
            status: row.try_get("status")?,
            hyperparameters: row.try_get::<Json<Value>, _>("hyperparameters")?.0,
            request: row.try_get::<Json<Value>, _>("request")?.0,
            reason: row.try_get("reason")?,
            status_reason: row.try_get("status_reason")?,
            evaluation_id: row
                .try_get::<Option<Id>, _>("evaluation_id")?
                .map(|id| id.0),
            checkpoint_id: row.try_get("checkpoint_id")?,
            applied_version: row.try_get("applied_version")?,
            created_by: row.try_get("created_by")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
        }
    }};
}

macro_rules! config_row {
    ($row:expr) => {{
        let row = $row;
        ConfigRow {
            agent_type: row.try_get("agent_type")?,
            version: row.try_get("version")?,
            hyperparameters: row.try_get::<Json<Value>, _>("hyperparameters")?.0,
            checkpoint_id: row.try_get("checkpoint_id")?,
            environment: row.try_get("environment")?,
            action: ConfigAction::parse(row.try_get("action")?)?,
            proposal_id: row.try_get::<Option<Id>, _>("proposal_id")?.map(|id| id.0),
            restored_version: row.try_get("restored_version")?,
            actor: row.try_get("actor")?,
            reason: row.try_get("reason")?,
            created_at: row.try_get("created_at")?,
        }
    }};
}

/// Runs a [`Transition`] on `$executor`; evaluates to the number of proposals it moved (0/1).
macro_rules! run_transition {
    ($executor:expr, $t:expr, $applied_version:expr, $now:expr) => {{
        let t: &Transition = $t;
        let moved = sqlx::query(UPDATE_STATUS)
            .bind(Id(t.id))
            .bind(&t.from)
            .bind(&t.to)
            .bind(&t.reason)
            .bind(t.evaluation_id.map(Id))
            .bind(&t.checkpoint_id)
            .bind($applied_version)
            .bind($now)
            .execute(&mut *$executor)
            .await?
            .rows_affected();
        if moved == 1 {
            sqlx::query(INSERT_EVENT)
                .bind(Id(t.id))
                .bind(&t.from)
                .bind(&t.to)
                .bind(&t.actor)
                .bind(&t.reason)
                .bind($now)
                .execute(&mut *$executor)
                .await?;
        }
        moved
    }};
}

fn check_actor_name(actor: &str) -> Result<(), StoreError> {
    if actor.is_empty() {
        return Err(StoreError::invalid("actor", "must not be empty"));
    }
    check_actor(Some(actor))
}

fn check_object(field: &'static str, value: &Value) -> Result<(), StoreError> {
    if value.is_object() {
        Ok(())
    } else {
        Err(StoreError::invalid(field, "must be a JSON object"))
    }
}

impl Store {
    /// Stores a new proposal in status `pending`, with its creation event.
    pub async fn insert_proposal(&self, new: &NewProposal) -> Result<ProposalRow, StoreError> {
        let agent_type = check_agent_type(&new.agent_type)?;
        check_actor_name(&new.created_by)?;
        check_object("hyperparameters", &new.hyperparameters)?;
        let now = Utc::now();
        let inserted: Result<(), sqlx::Error> = with_pool!(self, pool => async {
            let mut tx = pool.begin().await?;
            sqlx::query(INSERT_PROPOSAL)
                .bind(Id(new.id))
                .bind(&agent_type)
                .bind(Json(&new.hyperparameters))
                .bind(Json(&new.request))
                .bind(&new.reason)
                .bind(&new.created_by)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            sqlx::query(INSERT_EVENT)
                .bind(Id(new.id))
                .bind(None::<String>)
                .bind("pending")
                .bind(&new.created_by)
                .bind(&new.reason)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            tx.commit().await
        }
        .await);
        inserted.map_err(|e| crate::error::id_conflict(e, "proposal", new.id))?;
        self.proposal(new.id)
            .await?
            .ok_or_else(|| StoreError::not_found("proposal", new.id))
    }

    pub async fn proposal(&self, id: Uuid) -> Result<Option<ProposalRow>, StoreError> {
        with_pool!(self, pool => {
            let row = sqlx::query(PROPOSAL).bind(Id(id)).fetch_optional(pool).await?;
            Ok(match row {
                Some(row) => Some(proposal_row!(&row)),
                None => None,
            })
        })
    }

    /// Proposals, newest first, filtered by agent type and status when given.
    pub async fn proposals(
        &self,
        agent_type: Option<&str>,
        status: Option<&str>,
        limit: i64,
    ) -> Result<Vec<ProposalRow>, StoreError> {
        let agent_type = agent_type.map(check_agent_type).transpose()?;
        let limit = limit.clamp(1, MAX_PROPOSALS_LISTED);
        with_pool!(self, pool => {
            let rows = sqlx::query(PROPOSALS)
                .bind(&agent_type)
                .bind(status)
                .bind(limit)
                .fetch_all(pool)
                .await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in &rows {
                out.push(proposal_row!(row));
            }
            Ok(out)
        })
    }

    /// Every status change of a proposal, in order.
    pub async fn proposal_events(&self, id: Uuid) -> Result<Vec<ProposalEvent>, StoreError> {
        with_pool!(self, pool => {
            let rows = sqlx::query(EVENTS).bind(Id(id)).fetch_all(pool).await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in &rows {
                out.push(ProposalEvent {
                    seq: row.try_get("seq")?,
                    from_status: row.try_get("from_status")?,
                    to_status: row.try_get("to_status")?,
                    actor: row.try_get("actor")?,
                    reason: row.try_get("reason")?,
                    at: row.try_get("at")?,
                });
            }
            Ok(out)
        })
    }

    /// Moves a proposal from `t.from` to `t.to`. [`Conflict::ProposalStatus`] when it is no
    /// longer in `t.from`; not found when it does not exist.
    pub async fn transition_proposal(&self, t: &Transition) -> Result<ProposalRow, StoreError> {
        check_actor_name(&t.actor)?;
        let now = Utc::now();
        let moved: u64 = with_pool!(self, pool => {
            let mut tx = pool.begin().await?;
            let moved = run_transition!(tx, t, None::<i32>, now);
            tx.commit().await?;
            moved
        });
        let row = self
            .proposal(t.id)
            .await?
            .ok_or_else(|| StoreError::not_found("proposal", t.id))?;
        if moved == 0 {
            return Err(status_conflict(t, &row));
        }
        Ok(row)
    }

    /// Writes config version `expected_version + 1` (and runs `transition`, if any, in the
    /// same transaction). [`Conflict::ConfigVersion`] when the agent is not at
    /// `expected_version` any more.
    pub async fn insert_config(&self, new: &NewConfig) -> Result<ConfigRow, StoreError> {
        let agent_type = check_agent_type(&new.agent_type)?;
        check_actor_name(&new.actor)?;
        check_object("hyperparameters", &new.hyperparameters)?;
        if let Some(env) = &new.environment {
            check_environment(env)?;
        }
        if new.expected_version < 0 {
            return Err(StoreError::invalid(
                "expected_version",
                "must be 0 (no config yet) or a version the agent had",
            ));
        }
        let version = new.expected_version + 1;
        let now = Utc::now();
        let outcome: Result<Written, sqlx::Error> = with_pool!(self, pool => async {
            let mut tx = pool.begin().await?;
            let actual: i32 = sqlx::query(LATEST_VERSION)
                .bind(&agent_type)
                .fetch_one(&mut *tx)
                .await?
                .try_get("version")?;
            if actual != new.expected_version {
                return Ok(Written::VersionMoved(actual));
            }
            sqlx::query(INSERT_CONFIG)
                .bind(&agent_type)
                .bind(version)
                .bind(Json(&new.hyperparameters))
                .bind(&new.checkpoint_id)
                .bind(&new.environment)
                .bind(new.action.as_str())
                .bind(new.proposal_id.map(Id))
                .bind(new.restored_version)
                .bind(&new.actor)
                .bind(&new.reason)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            let moved = match &new.transition {
                Some(t) => run_transition!(tx, t, Some(version), now),
                None => 1,
            };
            if moved == 1 {
                tx.commit().await?;
                Ok(Written::Done)
            } else {
                tx.rollback().await?;
                Ok(Written::ProposalMoved)
            }
        }
        .await);
        let conflict = |actual| Conflict::ConfigVersion {
            agent_type: agent_type.clone(),
            expected: new.expected_version,
            actual,
        };
        match outcome {
            Ok(Written::Done) => {}
            Ok(Written::VersionMoved(actual)) => return Err(conflict(actual).into()),
            Ok(Written::ProposalMoved) => {
                let t = new
                    .transition
                    .as_ref()
                    .expect("only a transition fails this way");
                let row = self
                    .proposal(t.id)
                    .await?
                    .ok_or_else(|| StoreError::not_found("proposal", t.id))?;
                return Err(status_conflict(t, &row));
            }
            // Another writer inserted the same version between our read and our insert.
            Err(err) if crate::error::is_unique_violation(&err) => {
                return Err(conflict(self.config_version(&agent_type).await?).into());
            }
            Err(err) => return Err(err.into()),
        }
        self.config(&agent_type, Some(version))
            .await?
            .ok_or_else(|| {
                StoreError::not_found("agent config", format!("{agent_type} v{version}"))
            })
    }

    /// The agent's active config (`version: None`) or the given version.
    pub async fn config(
        &self,
        agent_type: &str,
        version: Option<i32>,
    ) -> Result<Option<ConfigRow>, StoreError> {
        let agent_type = check_agent_type(agent_type)?;
        with_pool!(self, pool => {
            let row = match version {
                Some(version) => {
                    sqlx::query(CONFIG)
                        .bind(&agent_type)
                        .bind(version)
                        .fetch_optional(pool)
                        .await?
                }
                None => sqlx::query(ACTIVE).bind(&agent_type).fetch_optional(pool).await?,
            };
            Ok(match row {
                Some(row) => Some(config_row!(&row)),
                None => None,
            })
        })
    }

    /// The agent's active version, 0 when it has no config.
    pub async fn config_version(&self, agent_type: &str) -> Result<i32, StoreError> {
        let agent_type = check_agent_type(agent_type)?;
        with_pool!(self, pool => {
            Ok(sqlx::query(LATEST_VERSION)
                .bind(&agent_type)
                .fetch_one(pool)
                .await?
                .try_get("version")?)
        })
    }

    /// Every config version of the agent, oldest first.
    pub async fn config_history(&self, agent_type: &str) -> Result<Vec<ConfigRow>, StoreError> {
        let agent_type = check_agent_type(agent_type)?;
        with_pool!(self, pool => {
            let rows = sqlx::query(HISTORY).bind(&agent_type).fetch_all(pool).await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in &rows {
                out.push(config_row!(row));
            }
            Ok(out)
        })
    }

    /// The active version of every agent type that has a config.
    pub async fn config_versions(&self) -> Result<Vec<(String, i32)>, StoreError> {
        with_pool!(self, pool => {
            let rows = sqlx::query(VERSIONS).fetch_all(pool).await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in &rows {
                out.push((row.try_get("agent_type")?, row.try_get("version")?));
            }
            Ok(out)
        })
    }
}

/// How a config write ended, inside its transaction.
enum Written {
    Done,
    /// The agent is at this version, not the expected one.
    VersionMoved(i32),
    /// The proposal to move was not in the expected status.
    ProposalMoved,
}

fn status_conflict(t: &Transition, row: &ProposalRow) -> StoreError {
    Conflict::ProposalStatus {
        id: t.id,
        expected: t.from.clone(),
        actual: row.status.clone(),
    }
    .into()
}
