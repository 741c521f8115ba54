//! 32 promotions of one pair at once, all expecting the same version: one wins, 31 are told to
//! reload; retried, all 32 land, each on its own version, with unique ranks and a history that
//! counts exactly the changes made.

use crate::support::{TestDb, promotion, seed_dqn_cartpole};
use std::sync::Arc;
use std::time::Instant;
use tars_store::{Conflict, HistoryAction, Store, StoreError};
use tokio::sync::Barrier;

on_both_backends!(concurrent_promotions_have_one_winner_then_all_land);

const N_TASKS: usize = 32;

async fn concurrent_promotions_have_one_winner_then_all_land(db: &TestDb) {
    let started = Instant::now();
    db.store
        .insert_baseline(&seed_dqn_cartpole())
        .await
        .unwrap();

    // Round 1: everyone read version 12 and promotes to rank 1 at the same moment.
    let barrier = Arc::new(Barrier::new(N_TASKS));
    let tasks: Vec<_> = (0..N_TASKS)
        .map(|task_idx| {
            let (store, barrier) = (db.store.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                store
                    .promote(&promotion(task_idx as f64, 1, Some(12)))
                    .await
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.unwrap());
    }
    let winners: Vec<usize> = (0..N_TASKS)
        .filter(|&task_idx| outcomes[task_idx].is_ok())
        .collect();
    assert_eq!(winners.len(), 1, "exactly one promotion wins: {outcomes:?}");
    for outcome in &outcomes {
        match outcome {
            Ok(row) => assert_eq!((row.rank, row.version), (1, 13)),
            Err(StoreError::Conflict(Conflict::Version {
                expected: Some(12),
                actual: Some(13),
                ..
            })) => {}
            Err(error) => panic!("a loser must get a version conflict, got {error:?}"),
        }
    }
    let rows = db
        .store
        .baselines(Some("DQN"), Some("CartPole-v1"))
        .await
        .unwrap();
    let ranks: Vec<(i32, f64)> = rows.iter().map(|row| (row.rank, row.mean_reward)).collect();
    assert_eq!(ranks, [(1, winners[0] as f64), (2, 450.0)]);
    // The seed's insert, then the winner's promote and the demote it caused.
    assert_eq!(
        history_actions(&db.store).await,
        [
            HistoryAction::Promote,
            HistoryAction::Demote,
            HistoryAction::Insert
        ]
    );

    // Round 2: the 31 losers retry, each reloading the version after every conflict.
    let round_2 = Instant::now();
    let tasks: Vec<_> = (0..N_TASKS)
        .filter(|task_idx| !winners.contains(task_idx))
        .map(|task_idx| {
            let store = db.store.clone();
            tokio::spawn(async move { promote_until_it_lands(&store, task_idx).await })
        })
        .collect();
    let mut versions = vec![13];
    let mut n_attempts = 0;
    for task in tasks {
        let (version, attempts) = task.await.unwrap();
        versions.push(version);
        n_attempts += attempts;
    }
    versions.sort_unstable();
    assert_eq!(
        versions,
        (13..13 + N_TASKS as i32).collect::<Vec<_>>(),
        "32 distinct, consecutive versions"
    );

    let rows = db
        .store
        .baselines(Some("DQN"), Some("CartPole-v1"))
        .await
        .unwrap();
    let ranks: Vec<i32> = rows.iter().map(|row| row.rank).collect();
    assert_eq!(
        ranks,
        (1..=N_TASKS as i32 + 1).collect::<Vec<_>>(),
        "ranks 1..=33, each once"
    );
    let mut means: Vec<i64> = rows[..N_TASKS]
        .iter()
        .map(|row| row.mean_reward as i64)
        .collect();
    means.sort_unstable();
    assert_eq!(
        means,
        (0..N_TASKS as i64).collect::<Vec<_>>(),
        "every task's baseline is there once"
    );
    assert_eq!(rows[N_TASKS].mean_reward, 450.0, "the seed's row is last");
    assert_eq!(
        db.store
            .current_version("DQN", "CartPole-v1")
            .await
            .unwrap(),
        Some(12 + N_TASKS as i32)
    );

    // Promotion k (k = 1..=32) at rank 1 inserts one row and pushes down the k already there.
    let actions = history_actions(&db.store).await;
    let n_expected = 1 + (1..=N_TASKS).map(|k| 1 + k).sum::<usize>();
    assert_eq!(actions.len(), n_expected);
    assert_eq!(
        actions
            .iter()
            .filter(|&&action| action == HistoryAction::Promote)
            .count(),
        N_TASKS
    );
    eprintln!(
        "{}: 32 concurrent promotions: 1 won, 31 conflicted; {n_attempts} attempts for the 31 retries in {:?}; {:?} in all",
        db.store.backend(),
        round_2.elapsed(),
        started.elapsed()
    );
}

/// Promotes task `task_idx`'s baseline to rank 1, reloading the version after each conflict;
/// returns the version it landed on and the number of attempts.
async fn promote_until_it_lands(store: &Store, task_idx: usize) -> (i32, usize) {
    for attempt in 1.. {
        let version = store.current_version("DQN", "CartPole-v1").await.unwrap();
        match store.promote(&promotion(task_idx as f64, 1, version)).await {
            Ok(row) => return (row.version, attempt),
            Err(StoreError::Conflict(Conflict::Version { .. })) => continue,
            Err(error) => panic!("task {task_idx}: {error}"),
        }
    }
    unreachable!()
}

async fn history_actions(store: &Store) -> Vec<HistoryAction> {
    let history = store.history("DQN", "CartPole-v1", 10_000).await.unwrap();
    history.iter().map(|entry| entry.action).collect()
}
