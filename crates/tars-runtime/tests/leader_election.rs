//! Leader election on the real PostgreSQL (issue 11): two candidates with connections of their
//! own; the leader's session is terminated (as when its process dies) and the other candidate
//! leads within 5 s under a higher epoch, while the old leader's fenced write is refused.
//!
//! The test runs in a PostgreSQL schema of its own, dropped at the end. Without
//! `TARS_TEST_DATABASE_URL` it is skipped, unless `CI` is set: then it fails.

use std::time::{Duration, Instant};
use tars_runtime::leader::{Campaign, ElectionConfig};
use tars_store::{Conflict, NewJob, Store, StoreError};
use tars_testkit::PgSchema;
use uuid::Uuid;

/// A running job, for the fenced writes to act on.
async fn running_job(store: &Store) -> Uuid {
    let job = NewJob {
        id: Uuid::new_v4(),
        kind: tars_store::JobKind::Evaluation,
        request: serde_json::json!({"agent_type": "PPO"}),
        principal: "alice".into(),
        idempotency_key: None,
    };
    store.insert_job(&job).await.unwrap();
    assert!(store.claim_job(job.id).await.unwrap().is_some());
    job.id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_11_a_dead_leader_is_replaced_within_5_s_and_its_fenced_write_is_refused() {
    let Some(schema) = PgSchema::create("tars_leader").await else {
        return;
    };
    // Two candidates as two processes would be: a pool and a leader connection each.
    let store_a = Store::connect(&schema.url()).await.unwrap();
    let store_b = Store::connect(&schema.url()).await.unwrap();
    let duty = "job-reaper";
    let holder_a = format!("candidate-a-{}", &Uuid::new_v4().simple().to_string()[..8]);
    let holder_b = format!("candidate-b-{}", &Uuid::new_v4().simple().to_string()[..8]);
    let campaign_a = Campaign::start(
        store_a.leader_session(duty, &holder_a).unwrap(),
        ElectionConfig::default(),
    );
    let leader_a = campaign_a.leadership();
    let epoch_a = tokio::time::timeout(Duration::from_secs(5), leader_a.until_leader())
        .await
        .expect("the only candidate leads within 5 s")
        .unwrap();
    let campaign_b = Campaign::start(
        store_b.leader_session(duty, &holder_b).unwrap(),
        ElectionConfig::default(),
    );
    let leader_b = campaign_b.leadership();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(leader_a.is_leader(), "the first leader keeps the duty");
    assert!(!leader_b.is_leader(), "one leader at a time");
    assert_eq!(store_b.leader_epoch(duty).await.unwrap(), Some(epoch_a));

    // The leader's fenced write lands.
    let fence_a = leader_a.fence().unwrap();
    let job = running_job(&store_a).await;
    assert!(
        store_a
            .requeue_orphan_job(&fence_a, job, "test")
            .await
            .unwrap()
    );
    assert!(store_a.claim_job(job).await.unwrap().is_some());

    // Its session dies, as when its process is killed: PostgreSQL releases the lock.
    let admin = sqlx::PgPool::connect(&schema.url()).await.unwrap();
    let terminated: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
    )
    .bind(format!("tars leader {holder_a}"))
    .fetch_all(&admin)
    .await
    .unwrap();
    assert_eq!(terminated, [true], "exactly the leader's session");
    let killed = Instant::now();
    let epoch_b = tokio::time::timeout(Duration::from_secs(5), leader_b.until_leader())
        .await
        .expect("another leader within 5 s of the old one's death")
        .unwrap();
    let handover = killed.elapsed();
    assert!(epoch_b > epoch_a, "epoch {epoch_b} after {epoch_a}");
    // The old leader notices at its next renewal and steps down.
    tokio::time::timeout(Duration::from_secs(5), leader_a.until_deposed())
        .await
        .expect("the old leader steps down");
    assert_eq!(leader_a.epoch(), None);
    eprintln!(
        "new leader {:.2} s after the old one's session was terminated (epoch {epoch_a} -> {epoch_b})",
        handover.as_secs_f64()
    );

    // A write the old leader started under its epoch arrives late: refused, nothing changed.
    let late = store_a
        .requeue_orphan_job(&fence_a, job, "late")
        .await
        .unwrap_err();
    match &late {
        StoreError::Conflict(Conflict::Fenced {
            duty: fenced_duty,
            epoch,
            current,
        }) => {
            assert_eq!(
                (fenced_duty.as_str(), *epoch, *current),
                (duty, epoch_a, Some(epoch_b))
            );
        }
        other => panic!("expected a fenced write, got {other:?}"),
    }
    assert_eq!(
        late.to_string(),
        format!(
            "job-reaper: leader epoch {epoch_a} is stale (the current epoch is {epoch_b}); \
             another process leads this duty now, so this write was refused"
        )
    );
    assert_eq!(
        store_a.job(job).await.unwrap().unwrap().status,
        tars_store::JobStatus::Running
    );
    // The new leader's write lands.
    let fence_b = leader_b.fence().unwrap();
    assert!(
        store_b
            .requeue_orphan_job(&fence_b, job, "test")
            .await
            .unwrap()
    );
    // The stored holder is the new leader.
    let holder: String = sqlx::query_scalar("SELECT holder FROM leader_epochs WHERE duty = $1")
        .bind(duty)
        .fetch_one(&admin)
        .await
        .unwrap();
    assert_eq!(holder, holder_b);

    // The old candidate campaigns again but follows; stopping the leader hands over.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!leader_a.is_leader());
    campaign_b.stop().await;
    let epoch_again = tokio::time::timeout(Duration::from_secs(5), leader_a.until_leader())
        .await
        .expect("the remaining candidate leads after the leader resigned")
        .unwrap();
    assert!(epoch_again > epoch_b);
    campaign_a.stop().await;
    admin.close().await;
    store_a.close().await;
    store_b.close().await;
    schema.drop().await;
}
