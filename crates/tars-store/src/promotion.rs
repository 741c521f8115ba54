//! Writes to one (agent type, environment) pair — promotions and direct inserts — written once
//! over [`PairTx`], the few statements each backend implements inside its own transaction, so
//! that SQLite and PostgreSQL follow the same steps in the same order.
//!
//! A promotion at rank `r`, in one transaction:
//! 1. lock the pair (PostgreSQL: a transaction-scoped advisory lock on the pair's name, which
//!    also works when the pair has no rows yet; SQLite: `BEGIN IMMEDIATE` on the single writer);
//! 2. read the pair's rows; its version is their highest `version`, `None` when there are none;
//! 3. refuse with [`Conflict::Version`] unless that is the caller's `expected_version`;
//! 4. refuse with [`StoreError::Invalid`] unless `1 <= r <= rows + 1`;
//! 5. move the rows at rank `r` and below one rank down, setting their version to the new one —
//!    in two steps through negative ranks, because the seed's UNIQUE (agent_type, environment,
//!    rank) constraint is checked row by row;
//! 6. insert the new row at rank `r` with version = old version + 1 (1 for an empty pair);
//! 7. write one `baseline_history` row per changed row (`demote`s, then the `promote`), and link
//!    the new row to its evaluation result in `baseline_sources`.

use crate::StoreError;
use crate::error::{Conflict, is_unique_violation};
use crate::model::{BaselineRow, HistoryAction, NewBaseline, Promotion};
use uuid::Uuid;

/// The statements a pair write needs, run inside one open transaction of a backend.
pub(crate) trait PairTx {
    /// Blocks other writers of the pair until this transaction ends.
    async fn lock_pair(&mut self, agent_type: &str, environment: &str) -> Result<(), StoreError>;
    /// The pair's rows, best rank first.
    async fn pair_rows(
        &mut self,
        agent_type: &str,
        environment: &str,
    ) -> Result<Vec<BaselineRow>, StoreError>;
    async fn eval_result_exists(&mut self, id: Uuid) -> Result<bool, StoreError>;
    /// Moves the rows at `from_rank` and below one rank down and sets their version.
    async fn shift_down(
        &mut self,
        agent_type: &str,
        environment: &str,
        from_rank: i32,
        version: i32,
    ) -> Result<(), StoreError>;
    /// Inserts a row (already validated, agent type upper-case) and returns it as stored.
    async fn insert_row(&mut self, id: Uuid, row: &NewBaseline) -> Result<BaselineRow, StoreError>;
    async fn insert_history(&mut self, entry: &HistoryEntry<'_>) -> Result<(), StoreError>;
    async fn link_source(
        &mut self,
        baseline_id: Uuid,
        eval_result_id: Uuid,
    ) -> Result<(), StoreError>;
}

/// A baseline row right after a change, and why it changed.
pub(crate) struct HistoryEntry<'a> {
    pub row: &'a BaselineRow,
    pub action: HistoryAction,
    pub eval_result_id: Option<Uuid>,
    pub actor: Option<&'a str>,
}

/// Inserts `baseline` as is; its rank must be free. `baseline` is validated and normalised.
pub(crate) async fn insert<T: PairTx>(
    tx: &mut T,
    baseline: &NewBaseline,
) -> Result<BaselineRow, StoreError> {
    tx.lock_pair(&baseline.agent_type, &baseline.environment)
        .await?;
    let row = tx
        .insert_row(Uuid::new_v4(), baseline)
        .await
        .map_err(|error| match error {
            StoreError::Database(db_error) if is_unique_violation(&db_error) => {
                StoreError::Conflict(Conflict::RankTaken {
                    agent_type: baseline.agent_type.clone(),
                    environment: baseline.environment.clone(),
                    rank: baseline.rank,
                })
            }
            other => other,
        })?;
    let entry = HistoryEntry {
        row: &row,
        action: HistoryAction::Insert,
        eval_result_id: None,
        actor: None,
    };
    tx.insert_history(&entry).await?;
    Ok(row)
}

/// Runs a promotion (see the module docs). `promotion` is validated and normalised.
pub(crate) async fn promote<T: PairTx>(
    tx: &mut T,
    promotion: &Promotion,
) -> Result<BaselineRow, StoreError> {
    let (agent_type, environment) = (&promotion.agent_type, &promotion.environment);
    tx.lock_pair(agent_type, environment).await?;
    let rows = tx.pair_rows(agent_type, environment).await?;

    let current_version = rows.iter().map(|row| row.version).max();
    if current_version != promotion.expected_version {
        return Err(StoreError::Conflict(Conflict::Version {
            agent_type: agent_type.clone(),
            environment: environment.clone(),
            expected: promotion.expected_version,
            actual: current_version,
        }));
    }
    let n_rows = rows.len();
    let max_rank = i32::try_from(n_rows + 1).unwrap_or(i32::MAX);
    if promotion.rank > max_rank {
        return Err(StoreError::invalid(
            "rank",
            format!(
                "{} is out of range: {agent_type}/{environment} has {n_rows} baselines, so the valid ranks are 1..={max_rank}",
                promotion.rank
            ),
        ));
    }
    if let Some(eval_result_id) = promotion.eval_result_id
        && !tx.eval_result_exists(eval_result_id).await?
    {
        return Err(StoreError::not_found("eval result", eval_result_id));
    }
    let new_version = match current_version {
        None => 1,
        Some(version) => version.checked_add(1).ok_or_else(|| {
            StoreError::invalid(
                "version",
                format!("{agent_type}/{environment} is at the last version, {version}"),
            )
        })?,
    };

    // Move the rows below down, then record them bottom-up so that the history, newest first,
    // reads promote, demote rank + 1, demote rank + 2, ...
    let moved: Vec<BaselineRow> = rows
        .into_iter()
        .filter(|row| row.rank >= promotion.rank)
        .map(|row| BaselineRow {
            rank: row.rank + 1,
            version: new_version,
            ..row
        })
        .collect();
    if !moved.is_empty() {
        tx.shift_down(agent_type, environment, promotion.rank, new_version)
            .await?;
    }
    for row in moved.iter().rev() {
        let entry = HistoryEntry {
            row,
            action: HistoryAction::Demote,
            eval_result_id: None,
            actor: promotion.actor.as_deref(),
        };
        tx.insert_history(&entry).await?;
    }

    let new_baseline = NewBaseline {
        agent_type: agent_type.clone(),
        environment: environment.clone(),
        mean_reward: promotion.mean_reward,
        std_reward: promotion.std_reward,
        success_rate: promotion.success_rate,
        hyperparameters: promotion.hyperparameters.clone(),
        version: new_version,
        rank: promotion.rank,
    };
    let row = tx.insert_row(Uuid::new_v4(), &new_baseline).await?;
    let entry = HistoryEntry {
        row: &row,
        action: HistoryAction::Promote,
        eval_result_id: promotion.eval_result_id,
        actor: promotion.actor.as_deref(),
    };
    tx.insert_history(&entry).await?;
    if let Some(eval_result_id) = promotion.eval_result_id {
        tx.link_source(row.id, eval_result_id).await?;
    }
    Ok(row)
}
