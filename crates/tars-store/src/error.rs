//! `StoreError`, the one error type of this crate, and `Conflict`, the ways a write can lose a
//! race or collide with an existing row.

use uuid::Uuid;

/// Everything a store call can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The write collides with the current state: reload and retry, or pick another key.
    #[error(transparent)]
    Conflict(#[from] Conflict),
    /// A row the call refers to does not exist.
    #[error("{what} {id} not found")]
    NotFound { what: &'static str, id: String },
    /// The caller's input is invalid; `reason` says what was wrong and what is valid.
    #[error("invalid {field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    /// The database failed or is unreachable.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// The embedded migrations could not be applied (or undone).
    #[error("applying the database migrations failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// Why a write was refused because of what is already stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Conflict {
    /// A promotion expected the pair at one version but found another: someone promoted first.
    #[error("{}", version_message(agent_type, environment, *expected, *actual))]
    Version {
        agent_type: String,
        environment: String,
        /// The version the caller read (`None`: it expected no baselines).
        expected: Option<i32>,
        /// The version stored now (`None`: there are no baselines).
        actual: Option<i32>,
    },
    /// A direct insert names an (agent type, environment, rank) that already has a baseline.
    #[error(
        "baseline {agent_type}/{environment} already has a rank {rank} row; \
         promote to re-rank, or insert at a free rank"
    )]
    RankTaken {
        agent_type: String,
        environment: String,
        rank: i32,
    },
    /// A user with this name exists already.
    #[error("user '{username}' already exists; pick another name")]
    UserExists { username: String },
    /// A config write expected the agent at one version but found another.
    #[error(
        "agent {agent_type} is at config version {actual}, not {expected}: someone changed it \
         first; reload (GET /v1/agents/{agent_type}/config) and retry"
    )]
    ConfigVersion {
        agent_type: String,
        expected: i32,
        actual: i32,
    },
    /// A proposal move expected one status but the proposal is in another.
    #[error("proposal {id} is {actual}, not {expected}: it changed meanwhile; reload it")]
    ProposalStatus {
        id: Uuid,
        expected: String,
        actual: String,
    },
    /// A study status move expected one status but the study is in another.
    #[error("study {id} is {actual}, not {expected}: it changed meanwhile; reload it")]
    StudyStatus {
        id: Uuid,
        expected: String,
        actual: String,
    },
    /// A singleton duty's write (or renewal) under an epoch that is no longer the duty's: a new
    /// leader was elected, so this process is not the leader any more.
    #[error(
        "{duty}: leader epoch {epoch} is stale (the current epoch is {}); another process \
         leads this duty now, so this write was refused", current.map_or("none".to_string(), |c| c.to_string())
    )]
    Fenced {
        duty: String,
        epoch: i64,
        current: Option<i64>,
    },
    /// A caller-supplied id is already used.
    #[error("{what} {id} already exists; use a new id or let the store pick one")]
    IdTaken { what: &'static str, id: Uuid },
}

fn version_message(
    agent_type: &str,
    environment: &str,
    expected: Option<i32>,
    actual: Option<i32>,
) -> String {
    let pair = format!("baseline {agent_type}/{environment}");
    let tail = "someone promoted first; reload and retry";
    match (actual, expected) {
        (Some(actual), Some(expected)) => {
            format!("{pair} is at version {actual}, not {expected}: {tail}")
        }
        (Some(actual), None) => format!("{pair} is at version {actual}, not empty: {tail}"),
        (None, Some(expected)) => {
            format!(
                "{pair} has no rows, not version {expected}: they were removed; reload and retry"
            )
        }
        (None, None) => format!("{pair} has no rows, as expected"),
    }
}

impl StoreError {
    /// Whether the failure is the database's availability (unreachable, restarting, connection
    /// lost, pool exhausted), so the same call may succeed later; not the caller's input or a
    /// conflict with stored state.
    pub fn is_transient(&self) -> bool {
        let StoreError::Database(error) = self else {
            return false;
        };
        match error {
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::WorkerCrashed => true,
            sqlx::Error::Database(db_error) => db_error.code().is_some_and(|code| {
                // 08: connection exception; 57P01-03: admin shutdown, crash shutdown, cannot
                // connect now (starting or stopping); 53300: too many connections; 40001,
                // 40P01: serialization failure, deadlock (retry the transaction).
                code.starts_with("08")
                    || matches!(
                        &*code,
                        "57P01" | "57P02" | "57P03" | "53300" | "40001" | "40P01"
                    )
            }),
            _ => false,
        }
    }

    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> StoreError {
        StoreError::Invalid {
            field,
            reason: reason.into(),
        }
    }

    pub(crate) fn not_found(what: &'static str, id: impl ToString) -> StoreError {
        StoreError::NotFound {
            what,
            id: id.to_string(),
        }
    }
}

/// A failed insert of a caller-chosen id: [`Conflict::IdTaken`] when the id is already used,
/// else the database error.
pub(crate) fn id_conflict(error: sqlx::Error, what: &'static str, id: Uuid) -> StoreError {
    if is_unique_violation(&error) {
        StoreError::Conflict(Conflict::IdTaken { what, id })
    } else {
        StoreError::Database(error)
    }
}

/// Whether a database error is a UNIQUE (or primary-key) violation, on either backend.
pub(crate) fn is_unique_violation(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .is_some_and(|db_error| db_error.is_unique_violation())
}

/// Whether a database error is a FOREIGN KEY violation, on either backend.
pub(crate) fn is_foreign_key_violation(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .is_some_and(|db_error| db_error.is_foreign_key_violation())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_conflict_says_who_won_and_what_to_do() {
        let conflict = Conflict::Version {
            agent_type: "DQN".into(),
            environment: "CartPole-v1".into(),
            expected: Some(12),
            actual: Some(13),
        };
        assert_eq!(
            StoreError::from(conflict).to_string(),
            "baseline DQN/CartPole-v1 is at version 13, not 12: someone promoted first; reload and retry"
        );
    }
}
