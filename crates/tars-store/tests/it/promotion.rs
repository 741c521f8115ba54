//! Promotions: re-ranking, versions, the history, stale versions and the rank range.

use crate::support::{TestDb, promotion, seed_dqn_cartpole};
use tars_store::{Conflict, HistoryAction, NewResult, NewRun, Promotion, StoreError};

on_both_backends!(
    promotion_reranks_and_writes_history,
    first_promotion_of_an_empty_pair_is_version_1,
    stale_version_is_a_conflict,
    rank_out_of_range_is_invalid,
    promotion_from_an_eval_result_keeps_its_returns,
    same_calls_give_same_ranks,
);

/// `(rank, mean_reward, version)` of DQN/CartPole-v1's rows, best first.
async fn ranks(db: &TestDb, environment: &str) -> Vec<(i32, f64, i32)> {
    let rows = db
        .store
        .baselines(Some("DQN"), Some(environment))
        .await
        .unwrap();
    rows.iter()
        .map(|row| (row.rank, row.mean_reward, row.version))
        .collect()
}

async fn promotion_reranks_and_writes_history(db: &TestDb) {
    let store = &db.store;
    let seed = store.insert_baseline(&seed_dqn_cartpole()).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;

    // A better baseline takes rank 1 and pushes the seed's down; the pair moves to version 13.
    let first = store.promote(&promotion(480.0, 1, Some(12))).await.unwrap();
    assert_eq!(
        (first.agent_type.as_str(), first.rank, first.version),
        ("DQN", 1, 13)
    );
    assert_eq!(
        ranks(db, "CartPole-v1").await,
        [(1, 480.0, 13), (2, 450.0, 13)]
    );
    let demoted = store
        .baseline("DQN", "CartPole-v1", 2)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(demoted.id, seed.id);
    assert!(
        demoted.updated_at > seed.updated_at,
        "the trigger moved updated_at"
    );
    assert_eq!(
        store.current_version("DQN", "CartPole-v1").await.unwrap(),
        Some(13)
    );

    // One between them: only the row below moves.
    let second = store.promote(&promotion(460.0, 2, Some(13))).await.unwrap();
    assert_eq!(second.version, 14);
    assert_eq!(
        ranks(db, "CartPole-v1").await,
        [(1, 480.0, 13), (2, 460.0, 14), (3, 450.0, 14)]
    );
    // At the end: nothing moves.
    store.promote(&promotion(100.0, 4, Some(14))).await.unwrap();
    assert_eq!(
        ranks(db, "CartPole-v1").await,
        [
            (1, 480.0, 13),
            (2, 460.0, 14),
            (3, 450.0, 14),
            (4, 100.0, 15)
        ]
    );

    // Newest first: each promotion, then the rows it pushed down, then the seed's insert.
    let history = store.history("dqn", "CartPole-v1", 100).await.unwrap();
    let entries: Vec<_> = history
        .iter()
        .map(|entry| (entry.action, entry.rank, entry.version, entry.mean_reward))
        .collect();
    assert_eq!(
        entries,
        [
            (HistoryAction::Promote, 4, 15, 100.0),
            (HistoryAction::Promote, 2, 14, 460.0),
            (HistoryAction::Demote, 3, 14, 450.0),
            (HistoryAction::Promote, 1, 13, 480.0),
            (HistoryAction::Demote, 2, 13, 450.0),
            (HistoryAction::Insert, 1, 12, 450.0),
        ]
    );
    assert!(history.windows(2).all(|pair| pair[0].id > pair[1].id));
    assert_eq!(history[3].baseline_id, first.id);
    assert_eq!(history[4].baseline_id, seed.id);
    assert_eq!(history[0].actor.as_deref(), Some("alice"));
    assert_eq!(history[5].actor, None);
    assert_eq!(
        store.history("DQN", "CartPole-v1", 2).await.unwrap(),
        history[..2]
    );
    assert_eq!(store.history("DQN", "Acrobot-v1", 10).await.unwrap(), []);
}

async fn first_promotion_of_an_empty_pair_is_version_1(db: &TestDb) {
    let row = db.store.promote(&promotion(300.0, 1, None)).await.unwrap();
    assert_eq!((row.rank, row.version), (1, 1));
    let error = db
        .store
        .promote(&promotion(310.0, 1, None))
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "baseline DQN/CartPole-v1 is at version 1, not empty: someone promoted first; reload and retry"
    );
}

async fn stale_version_is_a_conflict(db: &TestDb) {
    db.store
        .insert_baseline(&seed_dqn_cartpole())
        .await
        .unwrap();
    db.store
        .promote(&promotion(480.0, 1, Some(12)))
        .await
        .unwrap();
    let error = db
        .store
        .promote(&promotion(490.0, 1, Some(12)))
        .await
        .unwrap_err();
    assert!(
        matches!(
            &error,
            StoreError::Conflict(Conflict::Version {
                expected: Some(12),
                actual: Some(13),
                ..
            })
        ),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        "baseline DQN/CartPole-v1 is at version 13, not 12: someone promoted first; reload and retry"
    );
    // Nothing changed: two rows, three history entries.
    assert_eq!(
        ranks(db, "CartPole-v1").await,
        [(1, 480.0, 13), (2, 450.0, 13)]
    );
    assert_eq!(
        db.store
            .history("DQN", "CartPole-v1", 100)
            .await
            .unwrap()
            .len(),
        3
    );
}

async fn rank_out_of_range_is_invalid(db: &TestDb) {
    db.store
        .insert_baseline(&seed_dqn_cartpole())
        .await
        .unwrap();
    let error = db
        .store
        .promote(&promotion(480.0, 3, Some(12)))
        .await
        .unwrap_err();
    assert!(
        matches!(error, StoreError::Invalid { field: "rank", .. }),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        "invalid rank: 3 is out of range: DQN/CartPole-v1 has 1 baselines, so the valid ranks are 1..=2"
    );
    let error = db
        .store
        .promote(&promotion(480.0, 0, Some(12)))
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "invalid rank: 0 is below 1; rank 1 is the best"
    );
    let error = db
        .store
        .promote(&Promotion {
            actor: Some("a".repeat(201)),
            ..promotion(1.0, 1, Some(12))
        })
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "invalid actor: 201 characters is longer than 200"
    );
    assert_eq!(
        db.store
            .current_version("DQN", "CartPole-v1")
            .await
            .unwrap(),
        Some(12)
    );
}

async fn promotion_from_an_eval_result_keeps_its_returns(db: &TestDb) {
    let returns = vec![500.0, 487.5, 499.25, 0.1 + 0.2];
    let run = NewRun {
        job_id: None,
        id: None,
        agent_type: "DQN".into(),
        request: serde_json::json!({"agent_type": "DQN", "environments": ["CartPole-v1"]}),
        response: serde_json::json!({"status": "ok"}),
        seed: 7,
        duration_seconds: 1.5,
        results: vec![NewResult {
            id: None,
            environment: "CartPole-v1".into(),
            metrics: serde_json::json!({"mean_reward": 371.7}),
            episode_returns: returns.clone(),
            episode_lengths: vec![500, 488, 500, 1],
            hyperparameters: serde_json::json!({"learning_rate": 0.0005}),
            regression: None,
        }],
    };
    let run_id = db.store.save_run(&run).await.unwrap();
    let result_id = db.store.run(run_id).await.unwrap().unwrap().results[0].id;

    let unknown = uuid::Uuid::new_v4();
    let error = db
        .store
        .promote(&Promotion {
            eval_result_id: Some(unknown),
            ..promotion(371.7, 1, None)
        })
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        format!("eval result {unknown} not found")
    );

    let promoted = db
        .store
        .promote(&Promotion {
            eval_result_id: Some(result_id),
            ..promotion(371.7, 1, None)
        })
        .await
        .unwrap();
    assert_eq!(
        db.store.baseline_returns(promoted.id).await.unwrap(),
        Some(returns.clone())
    );
    // The returns follow the row when a later promotion pushes it down.
    db.store
        .promote(&promotion(400.0, 1, Some(1)))
        .await
        .unwrap();
    let demoted = db
        .store
        .baseline("DQN", "CartPole-v1", 2)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(demoted.id, promoted.id);
    assert_eq!(
        db.store.baseline_returns(demoted.id).await.unwrap(),
        Some(returns)
    );
    let history = db.store.history("DQN", "CartPole-v1", 10).await.unwrap();
    assert_eq!(history.last().unwrap().eval_result_id, Some(result_id));
}

async fn same_calls_give_same_ranks(db: &TestDb) {
    // The same sequence on two environments ends in the same ranks and versions.
    for environment in ["CartPole-v1", "Acrobot-v1"] {
        let mut expected_version = None;
        for (step, rank) in [1, 1, 2, 1, 4, 3, 6].into_iter().enumerate() {
            let promotion = Promotion {
                environment: environment.into(),
                ..promotion(step as f64, rank, expected_version)
            };
            expected_version = Some(db.store.promote(&promotion).await.unwrap().version);
        }
    }
    let cartpole = ranks(db, "CartPole-v1").await;
    assert_eq!(cartpole, ranks(db, "Acrobot-v1").await);
    let means: Vec<f64> = cartpole
        .iter()
        .map(|&(_, mean_reward, _)| mean_reward)
        .collect();
    assert_eq!(means, [3.0, 1.0, 5.0, 2.0, 4.0, 6.0, 0.0]);
}
