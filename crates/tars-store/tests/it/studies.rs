//! AutoML studies: a study's status moves only from the status the caller saw, a trial is
//! written once per (study, number) however often it is upserted, and lists filter and sort.

use crate::support::TestDb;
use chrono::Utc;
use serde_json::json;
use tars_store::{Conflict, NewStudy, StoreError, TrialRow};
use uuid::Uuid;

fn study(agent_type: &str) -> NewStudy {
    NewStudy {
        id: Uuid::new_v4(),
        agent_type: agent_type.into(),
        request: json!({"agent_type": agent_type, "n_trials": 4}),
        config: json!({"seed": 7, "sampler": "random"}),
        n_trials: 4,
        created_by: "alice".into(),
    }
}

fn trial(study_id: Uuid, number: i32, state: &str) -> TrialRow {
    let finished = state != "running";
    TrialRow {
        study_id,
        number,
        state: state.into(),
        params: json!({"learning_rate": 0.001 * f64::from(number + 1)}),
        value: (state == "complete").then_some(100.0 + f64::from(number)),
        intermediate_values: json!({"500": 20.0, "1000": 42.5}),
        system_attrs: json!({"rung_values": [20.0]}),
        error: (state == "failed").then(|| "diverged".to_string()),
        duration_seconds: finished.then_some(1.5),
        started_at: Utc::now(),
        finished_at: finished.then(Utc::now),
    }
}

async fn studies_keep_their_request_and_move_only_from_the_status_seen(db: &TestDb) {
    let new = study("ppo");
    let row = db.store.insert_study(&new).await.unwrap();
    assert_eq!(row.agent_type, "PPO");
    assert_eq!(row.status, "running");
    assert_eq!(row.request, new.request);
    assert_eq!(row.config, new.config);
    assert_eq!(row.n_trials, 4);
    assert!(!row.stop_requested);
    let again = db.store.insert_study(&new).await.unwrap_err();
    assert!(
        matches!(again, StoreError::Conflict(Conflict::IdTaken { .. })),
        "{again}"
    );

    let stopping = db.store.request_stop(new.id).await.unwrap();
    assert!(stopping.stop_requested);
    assert_eq!(stopping.status, "running");
    let stopped = db
        .store
        .set_study_status(new.id, "running", "stopped", Some("stopped by alice"))
        .await
        .unwrap();
    assert_eq!(stopped.status, "stopped");
    assert_eq!(stopped.error.as_deref(), Some("stopped by alice"));

    // A runner that still thinks it is running loses, and nothing changes.
    let err = db
        .store
        .set_study_status(new.id, "running", "completed", None)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Conflict(Conflict::StudyStatus { actual, .. }) if actual == "stopped"),
        "{err}"
    );
    let err = db.store.request_stop(new.id).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Conflict(Conflict::StudyStatus { .. })),
        "{err}"
    );
    assert!(matches!(
        db.store
            .set_study_status(new.id, "stopped", "paused", None)
            .await
            .unwrap_err(),
        StoreError::Invalid { .. }
    ));
    assert!(matches!(
        db.store
            .set_study_status(Uuid::new_v4(), "running", "failed", None)
            .await
            .unwrap_err(),
        StoreError::NotFound { .. }
    ));
    assert!(db.store.study(Uuid::new_v4()).await.unwrap().is_none());
}

async fn trials_are_upserted_by_study_and_number(db: &TestDb) {
    let new = study("dqn");
    db.store.insert_study(&new).await.unwrap();
    db.store
        .upsert_trial(&trial(new.id, 1, "running"))
        .await
        .unwrap();
    db.store
        .upsert_trial(&trial(new.id, 0, "running"))
        .await
        .unwrap();
    let complete = trial(new.id, 0, "complete");
    db.store.upsert_trial(&complete).await.unwrap();
    // Writing the same finished trial twice changes nothing.
    db.store.upsert_trial(&complete).await.unwrap();
    db.store
        .upsert_trial(&trial(new.id, 1, "failed"))
        .await
        .unwrap();

    let trials = db.store.trials(new.id).await.unwrap();
    assert_eq!(trials.len(), 2);
    assert_eq!(trials[0].number, 0);
    assert_eq!(trials[0].state, "complete");
    assert_eq!(trials[0].value, Some(100.0));
    assert_eq!(trials[0].params, complete.params);
    assert_eq!(trials[0].intermediate_values, complete.intermediate_values);
    assert_eq!(trials[0].system_attrs, complete.system_attrs);
    assert_eq!(trials[0].duration_seconds, Some(1.5));
    assert!(trials[0].finished_at.is_some());
    assert_eq!(trials[1].state, "failed");
    assert_eq!(trials[1].error.as_deref(), Some("diverged"));
    assert_eq!(trials[1].value, None);

    let orphan = db
        .store
        .upsert_trial(&trial(Uuid::new_v4(), 0, "complete"))
        .await
        .unwrap_err();
    assert!(matches!(orphan, StoreError::NotFound { .. }), "{orphan}");
    let bad_state = db
        .store
        .upsert_trial(&trial(new.id, 2, "done"))
        .await
        .unwrap_err();
    assert!(
        bad_state
            .to_string()
            .contains("running, complete, pruned, failed")
    );
    assert!(db.store.trials(Uuid::new_v4()).await.unwrap().is_empty());
}

async fn studies_are_listed_newest_first_and_filtered(db: &TestDb) {
    let first = study("ppo");
    let second = study("dqn");
    let third = study("ppo");
    for new in [&first, &second, &third] {
        db.store.insert_study(new).await.unwrap();
    }
    db.store
        .set_study_status(second.id, "running", "completed", None)
        .await
        .unwrap();
    let ids = |rows: Vec<tars_store::StudyRow>| rows.into_iter().map(|r| r.id).collect::<Vec<_>>();
    assert_eq!(
        ids(db.store.studies(None, None, 10).await.unwrap()),
        [third.id, second.id, first.id]
    );
    assert_eq!(
        ids(db.store.studies(Some("PpO"), None, 10).await.unwrap()),
        [third.id, first.id]
    );
    assert_eq!(
        ids(db.store.studies(None, Some("completed"), 10).await.unwrap()),
        [second.id]
    );
    assert_eq!(
        ids(db.store.studies(None, Some("running"), 1).await.unwrap()),
        [third.id]
    );
    assert!(db.store.studies(None, Some("done"), 10).await.is_err());
}

on_both_backends!(
    studies_keep_their_request_and_move_only_from_the_status_seen,
    trials_are_upserted_by_study_and_number,
    studies_are_listed_newest_first_and_filtered,
);
