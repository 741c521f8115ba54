//! Direct inserts and reads of `eval_baselines`: the seed's rows, its UNIQUE constraint and its
//! `updated_at` trigger.

use crate::support::{TestDb, seed_a2c_lunar_lander, seed_dqn_cartpole};
use tars_store::{Conflict, HistoryAction, NewBaseline, StoreError};

on_both_backends!(
    seed_rows_insert_and_read_back,
    taken_rank_is_a_conflict,
    updated_at_moves_on_update,
    invalid_values_say_what_is_valid,
);

async fn seed_rows_insert_and_read_back(db: &TestDb) {
    let store = &db.store;
    let dqn = store.insert_baseline(&seed_dqn_cartpole()).await.unwrap();
    let a2c = store
        .insert_baseline(&NewBaseline {
            agent_type: "a2c".into(),
            ..seed_a2c_lunar_lander()
        })
        .await
        .unwrap();
    assert_eq!(dqn.created_at, dqn.updated_at);

    // The seed's verification query: ORDER BY agent_type, environment, rank.
    let rows = store.baselines(None, None).await.unwrap();
    let summary: Vec<_> = rows
        .iter()
        .map(|row| {
            (
                row.agent_type.as_str(),
                row.environment.as_str(),
                row.mean_reward,
                row.version,
                row.rank,
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("A2C", "LunarLander-v2", 180.0, 8, 1),
            ("DQN", "CartPole-v1", 450.0, 12, 1)
        ]
    );
    assert_eq!(rows, [a2c.clone(), dqn.clone()]);
    assert_eq!(dqn.std_reward, 25.0);
    assert_eq!(dqn.success_rate, 0.95);
    assert_eq!(dqn.hyperparameters, seed_dqn_cartpole().hyperparameters);
    assert_eq!(a2c.std_reward, 35.0);
    assert_eq!(a2c.success_rate, 0.85);
    assert_eq!(a2c.hyperparameters["entropy_coef"], 0.01);

    // Agent types are looked up in any case; environments exactly.
    assert_eq!(
        store.baseline("dqn", "CartPole-v1", 1).await.unwrap(),
        Some(dqn.clone())
    );
    assert_eq!(store.baseline("DQN", "cartpole-v1", 1).await.unwrap(), None);
    assert_eq!(store.baseline("DQN", "CartPole-v1", 2).await.unwrap(), None);
    assert_eq!(
        store.baselines(Some("Dqn"), None).await.unwrap(),
        std::slice::from_ref(&dqn)
    );
    assert_eq!(
        store.baselines(None, Some("LunarLander-v2")).await.unwrap(),
        [a2c]
    );
    assert_eq!(
        store
            .baselines(Some("PPO"), Some("CartPole-v1"))
            .await
            .unwrap(),
        []
    );
    assert_eq!(
        store.current_version("dqn", "CartPole-v1").await.unwrap(),
        Some(12)
    );
    assert_eq!(
        store.current_version("PPO", "CartPole-v1").await.unwrap(),
        None
    );
    assert_eq!(store.baseline_returns(dqn.id).await.unwrap(), None);

    let history = store.history("DQN", "CartPole-v1", 10).await.unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(
        (
            history[0].action,
            history[0].baseline_id,
            history[0].version
        ),
        (HistoryAction::Insert, dqn.id, 12)
    );
}

async fn taken_rank_is_a_conflict(db: &TestDb) {
    db.store
        .insert_baseline(&seed_dqn_cartpole())
        .await
        .unwrap();
    let error = db
        .store
        .insert_baseline(&NewBaseline {
            mean_reward: 1.0,
            ..seed_dqn_cartpole()
        })
        .await
        .unwrap_err();
    assert!(
        matches!(&error, StoreError::Conflict(Conflict::RankTaken { agent_type, environment, rank: 1 })
            if agent_type == "DQN" && environment == "CartPole-v1"),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        "baseline DQN/CartPole-v1 already has a rank 1 row; promote to re-rank, or insert at a free rank"
    );
    // Another rank, another environment and another agent are all free.
    db.store
        .insert_baseline(&NewBaseline {
            rank: 2,
            ..seed_dqn_cartpole()
        })
        .await
        .unwrap();
    db.store
        .insert_baseline(&NewBaseline {
            environment: "Acrobot-v1".into(),
            ..seed_dqn_cartpole()
        })
        .await
        .unwrap();
    db.store
        .insert_baseline(&NewBaseline {
            agent_type: "PPO".into(),
            ..seed_dqn_cartpole()
        })
        .await
        .unwrap();
    assert_eq!(db.store.baselines(None, None).await.unwrap().len(), 4);
    assert_eq!(
        db.store
            .history("DQN", "CartPole-v1", 10)
            .await
            .unwrap()
            .len(),
        2
    );
}

async fn updated_at_moves_on_update(db: &TestDb) {
    let before = db
        .store
        .insert_baseline(&seed_dqn_cartpole())
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let n_updated = db
        .exec("UPDATE eval_baselines SET mean_reward = 451.0 WHERE agent_type = 'DQN'")
        .await;
    assert_eq!(n_updated, 1);
    let after = db
        .store
        .baseline("DQN", "CartPole-v1", 1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after.mean_reward, 451.0);
    assert_eq!(after.created_at, before.created_at);
    assert!(
        after.updated_at > before.updated_at,
        "{} !> {}",
        after.updated_at,
        before.updated_at
    );
}

async fn invalid_values_say_what_is_valid(db: &TestDb) {
    let cases = [
        (
            NewBaseline {
                success_rate: 1.5,
                ..seed_dqn_cartpole()
            },
            "invalid success_rate: 1.5 is outside 0..=1",
        ),
        (
            NewBaseline {
                std_reward: -1.0,
                ..seed_dqn_cartpole()
            },
            "invalid std_reward: -1 is not a finite number ≥ 0",
        ),
        (
            NewBaseline {
                mean_reward: f64::NAN,
                ..seed_dqn_cartpole()
            },
            "invalid mean_reward: NaN is not a finite number",
        ),
        (
            NewBaseline {
                rank: 0,
                ..seed_dqn_cartpole()
            },
            "invalid rank: 0 is below 1; rank 1 is the best",
        ),
        (
            NewBaseline {
                version: 0,
                ..seed_dqn_cartpole()
            },
            "invalid version: 0 is below 1",
        ),
        (
            NewBaseline {
                agent_type: " ".into(),
                ..seed_dqn_cartpole()
            },
            "invalid agent_type: it is empty; name one, e.g. DQN",
        ),
        (
            NewBaseline {
                environment: "x".repeat(101),
                ..seed_dqn_cartpole()
            },
            "invalid environment: ",
        ),
        (
            NewBaseline {
                hyperparameters: serde_json::json!(3),
                ..seed_dqn_cartpole()
            },
            "invalid hyperparameters: expected a JSON object such as {\"learning_rate\": 0.001}, got 3",
        ),
    ];
    for (baseline, message) in cases {
        let error = db.store.insert_baseline(&baseline).await.unwrap_err();
        assert!(matches!(error, StoreError::Invalid { .. }), "{error:?}");
        assert!(
            error.to_string().starts_with(message),
            "{error} does not start with {message}"
        );
    }
    assert_eq!(db.store.baselines(None, None).await.unwrap(), []);
}
