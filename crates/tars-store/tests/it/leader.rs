//! Leader sessions and fenced writes (`leader_epochs`): on PostgreSQL one session at a time
//! holds a duty and each election bumps the epoch; on SQLite the single process always leads;
//! on both, a write under a stale epoch is refused and changes nothing.

use crate::support::TestDb;
use tars_store::{Conflict, Fence, JobStatus, NewJob, StoreError};
use uuid::Uuid;

on_both_backends!(
    elections_bump_the_epoch_and_stale_writes_are_refused,
    duty_and_holder_are_checked,
    renewing_under_a_stale_epoch_fails,
);

async fn running_job(db: &TestDb) -> Uuid {
    let job = NewJob {
        id: Uuid::new_v4(),
        kind: tars_store::JobKind::Evaluation,
        request: serde_json::json!({"agent_type": "PPO"}),
        principal: "alice".into(),
        idempotency_key: None,
    };
    db.store.insert_job(&job).await.unwrap();
    assert!(db.store.claim_job(job.id).await.unwrap().is_some());
    job.id
}

async fn elections_bump_the_epoch_and_stale_writes_are_refused(db: &TestDb) {
    assert_eq!(db.store.leader_epoch("reaper").await.unwrap(), None);
    let mut first = db.store.leader_session("reaper", "first").unwrap();
    let mut second = db.store.leader_session("reaper", "second").unwrap();
    assert_eq!(first.try_acquire().await.unwrap(), Some(1));
    first.renew(1).await.unwrap();
    let epoch = if db.store.backend() == "postgres" {
        // The lock is held: the other candidate waits, however often it asks.
        assert_eq!(second.try_acquire().await.unwrap(), None);
        assert_eq!(second.try_acquire().await.unwrap(), None);
        first.resign().await;
        second.try_acquire().await.unwrap()
    } else {
        // Embedded: one process, which leads every duty.
        second.try_acquire().await.unwrap()
    };
    assert_eq!(epoch, Some(2));
    assert_eq!(db.store.leader_epoch("reaper").await.unwrap(), Some(2));
    assert_eq!(
        db.count("SELECT COUNT(*) FROM leader_epochs WHERE holder = 'second'")
            .await,
        1
    );

    let job = running_job(db).await;
    let stale = Fence {
        duty: "reaper".into(),
        epoch: 1,
    };
    let refused = db
        .store
        .requeue_orphan_job(&stale, job, "lost")
        .await
        .unwrap_err();
    assert!(
        matches!(
            &refused,
            StoreError::Conflict(Conflict::Fenced {
                epoch: 1,
                current: Some(2),
                ..
            })
        ),
        "{refused:?}"
    );
    assert_eq!(
        refused.to_string(),
        "reaper: leader epoch 1 is stale (the current epoch is 2); another process leads this \
         duty now, so this write was refused"
    );
    assert_eq!(
        db.store.job(job).await.unwrap().unwrap().status,
        JobStatus::Running
    );
    // No epoch at all for a duty nobody led.
    let unknown = Fence {
        duty: "nobody".into(),
        epoch: 1,
    };
    assert!(matches!(
        db.store.requeue_orphan_job(&unknown, job, "lost").await,
        Err(StoreError::Conflict(Conflict::Fenced { current: None, .. }))
    ));

    let current = Fence {
        duty: "reaper".into(),
        epoch: 2,
    };
    assert!(
        db.store
            .requeue_orphan_job(&current, job, "lost")
            .await
            .unwrap()
    );
    let row = db.store.job(job).await.unwrap().unwrap();
    assert_eq!(
        (row.status, row.error.as_deref()),
        (JobStatus::Queued, Some("lost"))
    );
    // Not running any more: nothing to do.
    assert!(
        !db.store
            .requeue_orphan_job(&current, job, "lost")
            .await
            .unwrap()
    );
    second.resign().await;
}

async fn duty_and_holder_are_checked(db: &TestDb) {
    let long = "d".repeat(101);
    for (duty, holder, message) in [
        ("", "h", "invalid duty: must be 1 to 100 characters, got 0"),
        (
            long.as_str(),
            "h",
            "invalid duty: must be 1 to 100 characters, got 101",
        ),
        (
            "reaper",
            "",
            "invalid leader holder: must be 1 to 200 characters, got 0",
        ),
    ] {
        let err = db.store.leader_session(duty, holder).err().unwrap();
        assert_eq!(err.to_string(), message);
    }
}

async fn renewing_under_a_stale_epoch_fails(db: &TestDb) {
    let mut session = db.store.leader_session("engines", "me").unwrap();
    let epoch = session.try_acquire().await.unwrap().unwrap();
    let err = session.renew(epoch + 7).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Conflict(Conflict::Fenced { current: Some(e), .. }) if *e == epoch),
        "{err:?}"
    );
}
