//! Evaluation runs and results: round trips, ordering and all-or-nothing saves.

use crate::support::TestDb;
use tars_store::{Conflict, NewResult, NewRun, StoreError};
use uuid::Uuid;

on_both_backends!(
    run_and_results_round_trip,
    runs_are_listed_newest_first,
    a_failed_save_leaves_nothing,
    a_job_stores_one_run
);

fn result(environment: &str, episode_returns: Vec<f64>) -> NewResult {
    NewResult {
        id: None,
        environment: environment.into(),
        metrics: serde_json::json!({"mean_reward": 1.0, "iqm": {"value": 1.0, "ci": [0.5, 1.5]}}),
        episode_lengths: (1..=episode_returns.len() as u64).collect(),
        episode_returns,
        hyperparameters: serde_json::json!({"learning_rate": 0.0003, "n_steps": 2048}),
        regression: None,
    }
}

fn run(results: Vec<NewResult>) -> NewRun {
    NewRun {
        job_id: None,
        id: None,
        agent_type: "ppo".into(),
        request: serde_json::json!({"agent_type": "ppo", "environments": ["CartPole-v1", "Acrobot-v1"], "seed": 42}),
        response: serde_json::json!({"results": {"CartPole-v1": {"mean_reward": 500.0}}}),
        seed: 42,
        duration_seconds: 12.25,
        results,
    }
}

async fn run_and_results_round_trip(db: &TestDb) {
    let run_id = Uuid::new_v4();
    let result_id = Uuid::new_v4();
    // Returns that only survive a shortest-round-trip float encoding.
    let returns = vec![
        0.1 + 0.2,
        -1e-300,
        123456789.12345679,
        f64::MAX,
        f64::MIN_POSITIVE,
    ];
    let new_run = NewRun {
        job_id: None,
        id: Some(run_id),
        seed: u64::MAX - 1,
        results: vec![
            NewResult {
                id: Some(result_id),
                ..result("CartPole-v1", returns.clone())
            },
            NewResult {
                regression: Some(
                    serde_json::json!({"is_regression": true, "reason": "mean fell 12%"}),
                ),
                ..result("Acrobot-v1", vec![-500.0, -80.0])
            },
        ],
        ..run(Vec::new())
    };
    assert_eq!(db.store.save_run(&new_run).await.unwrap(), run_id);

    let stored = db.store.run(run_id).await.unwrap().unwrap();
    assert_eq!(stored.id, run_id);
    assert_eq!(stored.agent_type, "PPO");
    assert_eq!(stored.seed, u64::MAX - 1);
    assert_eq!(stored.duration_seconds, 12.25);
    assert_eq!(
        (&stored.request, &stored.response),
        (&new_run.request, &new_run.response)
    );
    let environments: Vec<&str> = stored
        .results
        .iter()
        .map(|result| result.environment.as_str())
        .collect();
    assert_eq!(environments, ["CartPole-v1", "Acrobot-v1"]);
    let first = &stored.results[0];
    assert_eq!((first.id, first.run_id), (result_id, run_id));
    assert_eq!(first.episode_returns, returns);
    assert_eq!(first.episode_lengths, [1, 2, 3, 4, 5]);
    assert_eq!(first.metrics, new_run.results[0].metrics);
    assert_eq!(first.hyperparameters, new_run.results[0].hyperparameters);
    assert_eq!(first.regression, None);
    assert_eq!(stored.results[1].regression, new_run.results[1].regression);
    assert_eq!(
        db.store.result(result_id).await.unwrap().as_ref(),
        Some(first)
    );
    assert_eq!(db.store.result(Uuid::new_v4()).await.unwrap(), None);
    assert_eq!(db.store.run(Uuid::new_v4()).await.unwrap(), None);
}

async fn runs_are_listed_newest_first(db: &TestDb) {
    let mut run_ids = Vec::new();
    for n_results in 0..3 {
        let results = (0..n_results)
            .map(|env_idx| result(&format!("Env{env_idx}-v0"), vec![1.0]))
            .collect();
        run_ids.push(db.store.save_run(&run(results)).await.unwrap());
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let runs = db.store.runs(2).await.unwrap();
    let listed: Vec<(Uuid, usize)> = runs.iter().map(|run| (run.id, run.results.len())).collect();
    assert_eq!(listed, [(run_ids[2], 2), (run_ids[1], 1)]);
    assert_eq!(runs[0].results[1].environment, "Env1-v0");
    assert_eq!(db.store.runs(10).await.unwrap().len(), 3);
    assert_eq!(db.store.runs(0).await.unwrap(), []);
    assert_eq!(
        db.store.runs(-1).await.unwrap_err().to_string(),
        "invalid limit: -1 is negative; use 0 or more"
    );
}

async fn a_failed_save_leaves_nothing(db: &TestDb) {
    // The second result reuses the first one's id: the whole run is rolled back.
    let result_id = Uuid::new_v4();
    let run_id = Uuid::new_v4();
    let duplicate = NewRun {
        job_id: None,
        id: Some(run_id),
        results: vec![
            NewResult {
                id: Some(result_id),
                ..result("CartPole-v1", vec![1.0])
            },
            NewResult {
                id: Some(result_id),
                ..result("Acrobot-v1", vec![2.0])
            },
        ],
        ..run(Vec::new())
    };
    let error = db.store.save_run(&duplicate).await.unwrap_err();
    assert!(
        matches!(error, StoreError::Conflict(Conflict::IdTaken { what: "eval result", id }) if id == result_id),
        "{error:?}"
    );
    assert_eq!(db.store.run(run_id).await.unwrap(), None);
    assert_eq!(db.store.result(result_id).await.unwrap(), None);

    db.store
        .save_run(&NewRun {
            job_id: None,
            id: Some(run_id),
            ..run(Vec::new())
        })
        .await
        .unwrap();
    let error = db
        .store
        .save_run(&NewRun {
            job_id: None,
            id: Some(run_id),
            ..run(Vec::new())
        })
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        format!("eval run {run_id} already exists; use a new id or let the store pick one")
    );

    let error = db
        .store
        .save_run(&run(vec![result("CartPole-v1", vec![1.0, f64::INFINITY])]))
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "invalid episode_returns: episode 1 of CartPole-v1 returned inf; returns must be finite numbers"
    );
    assert_eq!(db.store.runs(10).await.unwrap().len(), 1);
}

/// Issue 11: a job delivered twice (its first worker died after storing) stores one run; the
/// second save returns the first run's id and writes nothing.
async fn a_job_stores_one_run(db: &TestDb) {
    let job_id = Uuid::new_v4();
    let first = db
        .store
        .save_run(&NewRun {
            job_id: Some(job_id),
            ..run(vec![result("CartPole-v1", vec![1.0])])
        })
        .await
        .unwrap();
    let again = db
        .store
        .save_run(&NewRun {
            job_id: Some(job_id),
            ..run(vec![result("CartPole-v1", vec![2.0])])
        })
        .await
        .unwrap();
    assert_eq!(again, first);
    let runs = db.store.runs(10).await.unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].results[0].episode_returns, [1.0]);
    // Runs of no job are not constrained by each other.
    db.store.save_run(&run(Vec::new())).await.unwrap();
    db.store.save_run(&run(Vec::new())).await.unwrap();
    assert_eq!(db.store.runs(10).await.unwrap().len(), 3);
}
