//! AutoML studies: a study's status moves only from the status the caller saw, a trial is
//! written once per (study, number) however often it is upserted, lists filter and sort and
//! summarise trials, and a study is held by one server at a time (lease).

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
        owner: None,
        lease_until: None,
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

async fn a_study_is_held_by_one_server_at_a_time(db: &TestDb) {
    let store = &db.store;
    let now = Utc::now();
    let lease = chrono::Duration::seconds(30);
    let new = NewStudy {
        owner: Some("server-a".into()),
        lease_until: Some(now + lease),
        ..study("ppo")
    };
    let id = new.id;
    let row = store.insert_study(&new).await.unwrap();
    assert_eq!(row.owner.as_deref(), Some("server-a"));
    assert_eq!(
        row.lease_until.map(|t| t.timestamp_millis()),
        Some((now + lease).timestamp_millis())
    );
    // Held by A: B can neither claim nor renew it; A can do both.
    assert!(
        !store
            .claim_study(id, "server-b", now, now + lease)
            .await
            .unwrap()
    );
    assert!(
        !store
            .renew_study_lease(id, "server-b", now + lease)
            .await
            .unwrap()
    );
    assert!(
        store
            .claim_study(id, "server-a", now, now + lease)
            .await
            .unwrap()
    );
    let later = now + chrono::Duration::seconds(20);
    assert!(
        store
            .renew_study_lease(id, "server-a", later + lease)
            .await
            .unwrap()
    );
    // A's lease ends at later + 30 s: B cannot take it one millisecond before, can at the end.
    let end = later + lease;
    let just_before = end - chrono::Duration::milliseconds(1);
    assert!(
        !store
            .claim_study(id, "server-b", just_before, end + lease)
            .await
            .unwrap()
    );
    assert!(
        store
            .claim_study(id, "server-b", end, end + lease)
            .await
            .unwrap()
    );
    // A finds out when it renews: it has lost the study.
    assert!(
        !store
            .renew_study_lease(id, "server-a", end + lease)
            .await
            .unwrap()
    );
    // Releasing what one does not hold changes nothing; B's release frees it at once.
    store.release_study(id, "server-a").await.unwrap();
    let row = store.study(id).await.unwrap().unwrap();
    assert_eq!(row.owner.as_deref(), Some("server-b"));
    store.release_study(id, "server-b").await.unwrap();
    let row = store.study(id).await.unwrap().unwrap();
    assert_eq!((row.owner, row.lease_until), (None, None));
    // Eight servers race for the free study: exactly one wins.
    let claims = (0..8).map(|i| {
        let store = store.clone();
        tokio::spawn(async move {
            let owner = format!("server-{i}");
            store
                .claim_study(id, &owner, now, now + lease)
                .await
                .unwrap()
        })
    });
    let mut winners = 0;
    for claim in claims {
        winners += usize::from(claim.await.unwrap());
    }
    assert_eq!(winners, 1);
    // A study that is not running is nobody's to claim.
    let done = study("dqn");
    store.insert_study(&done).await.unwrap();
    store
        .set_study_status(done.id, "running", "completed", None)
        .await
        .unwrap();
    assert!(
        !store
            .claim_study(done.id, "server-a", now, now + lease)
            .await
            .unwrap()
    );
    let bad = store.claim_study(id, "", now, now).await.unwrap_err();
    assert!(bad.to_string().contains("owner"), "{bad}");
}

async fn study_summaries_count_trials_and_pick_the_best(db: &TestDb) {
    const INTERRUPTED: &str = "interrupted by a restart";
    let store = &db.store;
    let (first, second, empty) = (study("ppo"), study("dqn"), study("ppo"));
    for new in [&first, &second, &empty] {
        store.insert_study(new).await.unwrap();
    }
    // First: complete 100, 101 and 103 (two of value 103: the earlier one is best), a pruned
    // trial worth more than any complete one, a running, a failed and an interrupted one.
    for (number, state) in [
        (0, "complete"),
        (1, "complete"),
        (2, "pruned"),
        (3, "complete"),
        (4, "running"),
        (5, "failed"),
        (6, "failed"),
        (7, "complete"),
    ] {
        let mut row = trial(first.id, number, state);
        if number == 2 {
            row.value = Some(1e6);
        }
        if number == 6 {
            row.error = Some(INTERRUPTED.into());
        }
        if number == 7 {
            row.value = Some(103.0);
        }
        store.upsert_trial(&row).await.unwrap();
    }
    store
        .upsert_trial(&trial(second.id, 0, "running"))
        .await
        .unwrap();
    let summaries = store
        .study_summaries(None, None, 10, INTERRUPTED)
        .await
        .unwrap();
    let ids: Vec<Uuid> = summaries.iter().map(|(row, _)| row.id).collect();
    assert_eq!(
        ids,
        [empty.id, second.id, first.id],
        "as `studies` lists them"
    );
    let (_, of_first) = &summaries[2];
    assert_eq!(
        (
            of_first.complete,
            of_first.pruned,
            of_first.running,
            of_first.failed,
            of_first.interrupted
        ),
        (4, 1, 1, 1, 1)
    );
    let (number, value, params) = of_first.best.clone().unwrap();
    assert_eq!((number, value), (3, 103.0));
    assert_eq!(params, json!({"learning_rate": 0.004}));
    assert_eq!(summaries[1].1.running, 1);
    assert_eq!(summaries[1].1.best, None);
    assert_eq!(summaries[0].1, tars_store::TrialSummary::default());
    // Filters and limits as `studies`.
    let dqn = store
        .study_summaries(Some("dqn"), Some("running"), 10, INTERRUPTED)
        .await
        .unwrap();
    assert_eq!(dqn.len(), 1);
    assert_eq!(dqn[0].0.id, second.id);
    let newest = store
        .study_summaries(None, None, 1, INTERRUPTED)
        .await
        .unwrap();
    assert_eq!(newest.len(), 1);
    assert_eq!(newest[0].0.id, empty.id);
}

on_both_backends!(
    studies_keep_their_request_and_move_only_from_the_status_seen,
    trials_are_upserted_by_study_and_number,
    studies_are_listed_newest_first_and_filtered,
    a_study_is_held_by_one_server_at_a_time,
    study_summaries_count_trials_and_pick_the_best,
);
