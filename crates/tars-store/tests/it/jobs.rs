//! Evaluation jobs: idempotent submission, exactly-once claims, finishing, restart recovery.

use crate::support::TestDb;
use serde_json::json;
use tars_store::{Inserted, JobStatus, NewJob};
use uuid::Uuid;

fn job(principal: &str, key: Option<&str>) -> NewJob {
    NewJob {
        id: Uuid::new_v4(),
        kind: tars_store::JobKind::Evaluation,
        request: json!({"agent_type": "DQN", "environments": ["CartPole-v1"]}),
        principal: principal.to_string(),
        idempotency_key: key.map(String::from),
    }
}

async fn idempotency_keys_are_per_principal(db: &TestDb) {
    let first = job("alice", Some("k1"));
    let Inserted::New(row) = db.store.insert_job(&first).await.unwrap() else {
        panic!("first submission is new")
    };
    assert_eq!(row.status, JobStatus::Queued);
    assert_eq!(row.request, first.request);
    let again = job("alice", Some("k1"));
    match db.store.insert_job(&again).await.unwrap() {
        Inserted::Existing(existing) => assert_eq!(existing.id, first.id),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        db.store.insert_job(&job("bob", Some("k1"))).await.unwrap(),
        Inserted::New(_)
    ));
    // Without a key every submission is new.
    assert!(matches!(
        db.store.insert_job(&job("alice", None)).await.unwrap(),
        Inserted::New(_)
    ));
    assert!(matches!(
        db.store.insert_job(&job("alice", None)).await.unwrap(),
        Inserted::New(_)
    ));
    let err = db
        .store
        .insert_job(&job("alice", Some("")))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("idempotency key"), "{err}");
}

async fn a_job_is_claimed_once_and_finished_once(db: &TestDb) {
    let new = job("alice", None);
    db.store.insert_job(&new).await.unwrap();
    // The claim returns the row as it moved it.
    let claimed = db.store.claim_job(new.id).await.unwrap().expect("claimed");
    assert_eq!(
        (
            claimed.status,
            claimed.attempts,
            claimed.started_at.is_some()
        ),
        (JobStatus::Running, 1, true)
    );
    assert_eq!(db.store.job(new.id).await.unwrap(), Some(claimed));
    assert!(
        db.store.claim_job(new.id).await.unwrap().is_none(),
        "second claim loses"
    );
    let row = db.store.job(new.id).await.unwrap().unwrap();
    assert_eq!((row.status, row.attempts), (JobStatus::Running, 1));
    assert!(row.started_at.is_some());
    // A cancel of a queued job does not apply to a running one.
    assert!(
        !db.store
            .finish_job(new.id, JobStatus::Queued, JobStatus::Cancelled, None, None)
            .await
            .unwrap()
    );
    assert!(
        db.store
            .finish_job(
                new.id,
                JobStatus::Running,
                JobStatus::Failed,
                None,
                Some("boom")
            )
            .await
            .unwrap()
    );
    let row = db.store.job(new.id).await.unwrap().unwrap();
    assert_eq!(row.status, JobStatus::Failed);
    assert_eq!(row.error.as_deref(), Some("boom"));
    assert!(row.finished_at.is_some());
    assert!(db.store.job(Uuid::new_v4()).await.unwrap().is_none());
}

async fn a_restart_requeues_running_jobs_oldest_first(db: &TestDb) {
    let (a, b, c) = (job("p", None), job("p", None), job("p", None));
    for j in [&a, &b, &c] {
        db.store.insert_job(j).await.unwrap();
    }
    assert!(db.store.claim_job(a.id).await.unwrap().is_some());
    assert!(db.store.claim_job(c.id).await.unwrap().is_some());
    db.store
        .finish_job(c.id, JobStatus::Running, JobStatus::Succeeded, None, None)
        .await
        .unwrap();
    let mut queued = db.store.requeue_unfinished().await.unwrap();
    let mut expected = vec![a.id, b.id];
    // Oldest first by creation time; jobs created in the same millisecond may come either way.
    queued.sort();
    expected.sort();
    assert_eq!(queued, expected, "a was running, b queued, c finished");
    assert!(db.store.claim_job(a.id).await.unwrap().is_some());
    assert_eq!(db.store.job(a.id).await.unwrap().unwrap().attempts, 2);
}

async fn a_stopping_server_requeues_its_running_job(db: &TestDb) {
    let a = job("p", None);
    db.store.insert_job(&a).await.unwrap();
    assert!(
        !db.store.requeue_job(a.id).await.unwrap(),
        "queued, not running"
    );
    assert!(db.store.claim_job(a.id).await.unwrap().is_some());
    assert!(db.store.requeue_job(a.id).await.unwrap());
    let row = db.store.job(a.id).await.unwrap().unwrap();
    assert_eq!((row.status, row.attempts), (JobStatus::Queued, 1));
    assert!(row.finished_at.is_none());
    assert!(
        db.store.claim_job(a.id).await.unwrap().is_some(),
        "claimable again"
    );
    assert_eq!(db.store.job(a.id).await.unwrap().unwrap().attempts, 2);
}

on_both_backends!(
    idempotency_keys_are_per_principal,
    a_job_is_claimed_once_and_finished_once,
    a_restart_requeues_running_jobs_oldest_first,
    a_stopping_server_requeues_its_running_job,
    a_redelivered_job_is_reclaimed_until_it_ends,
    a_training_job_keeps_its_kind_and_result,
);

/// Issue 11: trainings and trials share the queue; a training's end carries its result.
async fn a_training_job_keeps_its_kind_and_result(db: &TestDb) {
    let mut new = job("alice", None);
    new.kind = tars_store::JobKind::Training;
    db.store.insert_job(&new).await.unwrap();
    let row = db.store.job(new.id).await.unwrap().unwrap();
    assert_eq!(
        (row.kind, row.result),
        (tars_store::JobKind::Training, None)
    );
    let result = json!({"checkpoint_id": "train-1", "eval_mean_reward": 500.0});
    assert!(
        !db.store.succeed_job_with(new.id, &result).await.unwrap(),
        "only a running job ends"
    );
    assert!(db.store.claim_job(new.id).await.unwrap().is_some());
    assert!(db.store.succeed_job_with(new.id, &result).await.unwrap());
    let row = db.store.job(new.id).await.unwrap().unwrap();
    assert_eq!(row.status, JobStatus::Succeeded);
    assert_eq!(row.result, Some(result.clone()));
    assert!(row.finished_at.is_some());
    assert!(
        !db.store.succeed_job_with(new.id, &result).await.unwrap(),
        "ends once"
    );
    // Evaluations stay the default kind.
    let plain = job("alice", None);
    db.store.insert_job(&plain).await.unwrap();
    let row = db.store.job(plain.id).await.unwrap().unwrap();
    assert_eq!(row.kind, tars_store::JobKind::Evaluation);
}

/// Issue 11: fleet mode redelivers a job whose worker died while it was `running`; the next
/// worker reclaims it, a transient failure puts it back with its error, an end is final.
async fn a_redelivered_job_is_reclaimed_until_it_ends(db: &TestDb) {
    let new = job("alice", None);
    let id = new.id;
    let other = job("alice", Some("other"));
    db.store.insert_job(&new).await.unwrap();
    db.store.insert_job(&other).await.unwrap();
    assert!(db.store.claim_job(id).await.unwrap().is_some());
    assert!(db.store.claim_job(id).await.unwrap().is_none());
    assert!(db.store.reclaim_job(id).await.unwrap().is_some());
    assert_eq!(db.store.job(id).await.unwrap().unwrap().attempts, 2);
    assert_eq!(db.store.queued_jobs().await.unwrap(), [other.id]);
    assert!(
        db.store
            .requeue_job_after(id, "database unreachable")
            .await
            .unwrap()
    );
    let row = db.store.job(id).await.unwrap().unwrap();
    assert_eq!(
        (row.status, row.error.as_deref()),
        (JobStatus::Queued, Some("database unreachable"))
    );
    // Still queued and running rows alike stay where a fleet start finds them.
    assert_eq!(db.store.queued_jobs().await.unwrap().len(), 2);
    assert!(db.store.reclaim_job(id).await.unwrap().is_some());
    assert!(
        db.store
            .finish_job(id, JobStatus::Running, JobStatus::Succeeded, None, None)
            .await
            .unwrap()
    );
    let row = db.store.job(id).await.unwrap().unwrap();
    assert_eq!(
        (row.status, row.error, row.attempts),
        (JobStatus::Succeeded, None, 3)
    );
    assert!(db.store.reclaim_job(id).await.unwrap().is_none());
    assert!(!db.store.requeue_job_after(id, "late").await.unwrap());
}
