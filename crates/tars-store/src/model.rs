//! The values going into and coming out of the store, and the checks every input passes before
//! any SQL runs (so both backends refuse the same inputs with the same messages).

use crate::StoreError;
use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

/// Longest agent type, in characters (the seed's `VARCHAR(50)`).
pub const MAX_AGENT_TYPE_CHARS: usize = 50;
/// Longest environment id, in characters (the seed's `VARCHAR(100)`).
pub const MAX_ENVIRONMENT_CHARS: usize = 100;
/// Longest actor name, in characters.
pub const MAX_ACTOR_CHARS: usize = 200;

/// A baseline inserted as is, like the seed's §3.2 rows: no re-ranking, the rank must be free.
#[derive(Debug, Clone, PartialEq)]
pub struct NewBaseline {
    /// Any case; stored upper-case ("DQN").
    pub agent_type: String,
    /// A gymnasium id ("CartPole-v1"), case-sensitive.
    pub environment: String,
    pub mean_reward: f64,
    pub std_reward: f64,
    /// In `0..=1`.
    pub success_rate: f64,
    /// A JSON object.
    pub hyperparameters: Value,
    /// At least 1.
    pub version: i32,
    /// At least 1.
    pub rank: i32,
}

/// One row of `eval_baselines`.
#[derive(Debug, Clone, PartialEq)]
pub struct BaselineRow {
    pub id: Uuid,
    pub agent_type: String,
    pub environment: String,
    pub mean_reward: f64,
    pub std_reward: f64,
    pub success_rate: f64,
    pub hyperparameters: Value,
    /// The pair's version when this row last changed.
    pub version: i32,
    /// 1 is the best.
    pub rank: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A new baseline that takes `rank` and pushes the rows at `rank` and below down by one; see
/// the crate docs for the versioning rules.
#[derive(Debug, Clone, PartialEq)]
pub struct Promotion {
    /// Any case; stored upper-case.
    pub agent_type: String,
    pub environment: String,
    pub mean_reward: f64,
    pub std_reward: f64,
    pub success_rate: f64,
    pub hyperparameters: Value,
    /// From 1 to the number of rows of the pair plus one.
    pub rank: i32,
    /// The pair's version the caller read with [`Store::current_version`](crate::Store::current_version);
    /// `None` means the caller expects the pair to have no baselines yet.
    pub expected_version: Option<i32>,
    /// The evaluation result the numbers come from; its episode returns become the baseline's.
    pub eval_result_id: Option<Uuid>,
    /// Who promoted (a user name or a service), kept in the history.
    pub actor: Option<String>,
}

/// What happened to a baseline row in one history entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HistoryAction {
    /// Inserted directly ([`Store::insert_baseline`](crate::Store::insert_baseline)).
    Insert,
    /// Inserted by a promotion.
    Promote,
    /// Pushed one rank down by a promotion above it.
    Demote,
    /// Deleted.
    Delete,
}

impl HistoryAction {
    pub fn as_str(self) -> &'static str {
        match self {
            HistoryAction::Insert => "insert",
            HistoryAction::Promote => "promote",
            HistoryAction::Demote => "demote",
            HistoryAction::Delete => "delete",
        }
    }

    pub(crate) fn parse(text: &str) -> Option<HistoryAction> {
        [
            HistoryAction::Insert,
            HistoryAction::Promote,
            HistoryAction::Demote,
            HistoryAction::Delete,
        ]
        .into_iter()
        .find(|action| action.as_str() == text)
    }
}

/// One row of `baseline_history`: a baseline row as it was right after a change.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryRow {
    /// Grows with every entry: newest first means highest id first.
    pub id: i64,
    pub baseline_id: Uuid,
    pub agent_type: String,
    pub environment: String,
    pub rank: i32,
    pub version: i32,
    pub mean_reward: f64,
    pub std_reward: f64,
    pub success_rate: f64,
    pub hyperparameters: Value,
    pub action: HistoryAction,
    /// The evaluation result a promoted row came from.
    pub eval_result_id: Option<Uuid>,
    pub actor: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// An evaluation run with all its results, saved in one transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct NewRun {
    /// `None`: the store picks a random (v4) id.
    pub id: Option<Uuid>,
    /// The job this run answers, if any: a job has at most one run ([`crate::Store::save_run`]
    /// returns the stored one instead of storing a second).
    pub job_id: Option<Uuid>,
    /// Any case; stored upper-case.
    pub agent_type: String,
    pub request: Value,
    pub response: Value,
    /// Stored as the `BIGINT` with the same bits: seeds above `i64::MAX` read negative in SQL
    /// and come back unchanged here.
    pub seed: u64,
    pub duration_seconds: f64,
    /// In request order.
    pub results: Vec<NewResult>,
}

/// One environment's result within a [`NewRun`].
#[derive(Debug, Clone, PartialEq)]
pub struct NewResult {
    /// `None`: the store picks a random (v4) id.
    pub id: Option<Uuid>,
    pub environment: String,
    pub metrics: Value,
    /// Finite numbers, one per episode.
    pub episode_returns: Vec<f64>,
    pub episode_lengths: Vec<u64>,
    pub hyperparameters: Value,
    /// The regression verdict, when the run compared against a baseline.
    pub regression: Option<Value>,
}

/// A stored evaluation run and its results, in request order.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRow {
    pub id: Uuid,
    pub agent_type: String,
    pub request: Value,
    pub response: Value,
    pub seed: u64,
    pub duration_seconds: f64,
    pub created_at: DateTime<Utc>,
    pub results: Vec<ResultRow>,
}

/// A stored result of one environment.
#[derive(Debug, Clone, PartialEq)]
pub struct ResultRow {
    pub id: Uuid,
    pub run_id: Uuid,
    pub environment: String,
    pub metrics: Value,
    pub episode_returns: Vec<f64>,
    pub episode_lengths: Vec<u64>,
    pub hyperparameters: Value,
    pub regression: Option<Value>,
    pub created_at: DateTime<Utc>,
}

/// Upper-cases an agent type: the stored form, and the form every lookup compares with.
pub(crate) fn normalize_agent_type(agent_type: &str) -> String {
    agent_type.trim().to_ascii_uppercase()
}

pub(crate) fn check_agent_type(agent_type: &str) -> Result<String, StoreError> {
    let agent_type = normalize_agent_type(agent_type);
    check_text("agent_type", &agent_type, MAX_AGENT_TYPE_CHARS, "e.g. DQN")?;
    Ok(agent_type)
}

pub(crate) fn check_environment(environment: &str) -> Result<(), StoreError> {
    check_text(
        "environment",
        environment,
        MAX_ENVIRONMENT_CHARS,
        "e.g. CartPole-v1",
    )
}

/// The checks shared by direct inserts and promotions: names, numbers and hyperparameters.
pub(crate) fn check_baseline_values(
    environment: &str,
    mean_reward: f64,
    std_reward: f64,
    success_rate: f64,
    hyperparameters: &Value,
    rank: i32,
) -> Result<(), StoreError> {
    check_environment(environment)?;
    if !mean_reward.is_finite() {
        return Err(StoreError::invalid(
            "mean_reward",
            format!("{mean_reward} is not a finite number"),
        ));
    }
    if !(std_reward.is_finite() && std_reward >= 0.0) {
        return Err(StoreError::invalid(
            "std_reward",
            format!("{std_reward} is not a finite number ≥ 0"),
        ));
    }
    if !(0.0..=1.0).contains(&success_rate) {
        return Err(StoreError::invalid(
            "success_rate",
            format!("{success_rate} is outside 0..=1"),
        ));
    }
    if !hyperparameters.is_object() {
        return Err(StoreError::invalid(
            "hyperparameters",
            format!(
                "expected a JSON object such as {{\"learning_rate\": 0.001}}, got {hyperparameters}"
            ),
        ));
    }
    if rank < 1 {
        return Err(StoreError::invalid(
            "rank",
            format!("{rank} is below 1; rank 1 is the best"),
        ));
    }
    Ok(())
}

pub(crate) fn check_actor(actor: Option<&str>) -> Result<(), StoreError> {
    match actor {
        Some(actor) if actor.chars().count() > MAX_ACTOR_CHARS => Err(StoreError::invalid(
            "actor",
            format!(
                "{} characters is longer than {MAX_ACTOR_CHARS}",
                actor.chars().count()
            ),
        )),
        _ => Ok(()),
    }
}

pub(crate) fn check_run(run: &NewRun) -> Result<String, StoreError> {
    let agent_type = check_agent_type(&run.agent_type)?;
    if !(run.duration_seconds.is_finite() && run.duration_seconds >= 0.0) {
        return Err(StoreError::invalid(
            "duration_seconds",
            format!("{} is not a finite number ≥ 0", run.duration_seconds),
        ));
    }
    for result in &run.results {
        check_environment(&result.environment)?;
        if let Some(episode_idx) = result.episode_returns.iter().position(|x| !x.is_finite()) {
            return Err(StoreError::invalid(
                "episode_returns",
                format!(
                    "episode {episode_idx} of {} returned {}; returns must be finite numbers",
                    result.environment, result.episode_returns[episode_idx]
                ),
            ));
        }
    }
    Ok(agent_type)
}

fn check_text(
    field: &'static str,
    text: &str,
    max_chars: usize,
    example: &str,
) -> Result<(), StoreError> {
    let n_chars = text.chars().count();
    if n_chars == 0 {
        return Err(StoreError::invalid(
            field,
            format!("it is empty; name one, {example}"),
        ));
    }
    if n_chars > max_chars {
        return Err(StoreError::invalid(
            field,
            format!("'{text}' has {n_chars} characters, more than {max_chars}"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_types_are_upper_case() {
        assert_eq!(check_agent_type(" dqn ").unwrap(), "DQN");
        assert!(
            check_agent_type("")
                .unwrap_err()
                .to_string()
                .contains("e.g. DQN")
        );
    }

    #[test]
    fn history_actions_round_trip() {
        for action in [
            HistoryAction::Insert,
            HistoryAction::Promote,
            HistoryAction::Demote,
            HistoryAction::Delete,
        ] {
            assert_eq!(HistoryAction::parse(action.as_str()), Some(action));
        }
        assert_eq!(HistoryAction::parse("upsert"), None);
    }

    #[test]
    fn values_outside_their_range_name_the_valid_range() {
        let error = check_baseline_values("CartPole-v1", 1.0, 1.0, 1.5, &serde_json::json!({}), 1)
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "invalid success_rate: 1.5 is outside 0..=1"
        );
        let error = check_baseline_values("CartPole-v1", 1.0, 1.0, 0.5, &serde_json::json!([]), 1)
            .unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("invalid hyperparameters: expected a JSON object")
        );
    }
}
