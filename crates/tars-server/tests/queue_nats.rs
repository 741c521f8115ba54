//! The JetStream job queue against the real NATS server (issue 11): bad messages are refused
//! once and counted, the reaper publishes exactly the jobs that have no message (re-queuing
//! running orphans under its fence), and a job given back is delivered again as a redelivery.
//!
//! Each test has a stream and consumer of its own (`nats_prefix`), deleted at the end. Without
//! `TARS_TEST_NATS_URL` the tests are skipped, unless `CI` is set; with it set, a NATS server
//! that is down fails them.

use std::sync::Arc;
use std::time::Duration;
use tars_server::jobs::{Delivery, Queue};
use tars_server::queue_nats::{NatsQueue, NatsSettings};
use tars_store::{NewJob, Store};
use uuid::Uuid;

/// A queue of its own on the test server, and a client to poke at it.
struct TestQueue {
    queue: Arc<NatsQueue>,
    settings: NatsSettings,
    jetstream: async_nats::jetstream::Context,
}

impl TestQueue {
    async fn new(ack_wait: Duration, max_deliver: i64) -> Option<TestQueue> {
        let Ok(url) = std::env::var("TARS_TEST_NATS_URL") else {
            assert!(
                std::env::var_os("CI").is_none(),
                "TARS_TEST_NATS_URL is not set, but CI is: set it, e.g. nats://127.0.0.1:4222"
            );
            eprintln!("skipping a NATS test: TARS_TEST_NATS_URL is not set");
            return None;
        };
        let settings = NatsSettings {
            url: url.clone(),
            prefix: format!("t{}", &Uuid::new_v4().simple().to_string()[..12]),
            ack_wait,
            max_deliver,
            capacity: 1_000,
        };
        let queue = Arc::new(
            NatsQueue::connect(settings.clone())
                .await
                .expect("connecting to TARS_TEST_NATS_URL"),
        );
        let client = async_nats::connect(&url).await.unwrap();
        Some(TestQueue {
            queue,
            settings,
            jetstream: async_nats::jetstream::new(client),
        })
    }

    async fn publish_raw(&self, payload: &'static [u8]) {
        let subject = self.settings.subject(Uuid::new_v4());
        self.jetstream
            .publish(subject, payload.into())
            .await
            .unwrap()
            .await
            .unwrap();
    }

    /// The next delivery, or `None` when none comes within `limit`.
    async fn pop_within(&self, limit: Duration) -> Option<Delivery> {
        tokio::time::timeout(limit, self.queue.pop())
            .await
            .ok()
            .flatten()
    }

    /// Waits (up to 10 s) for the stream to hold no message: an ack is a plain publish, so
    /// the server applies it shortly after the worker sent it.
    async fn assert_stream_empties(&self) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let messages = self.messages_in_stream().await;
            if messages == 0 {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{messages} message(s) stay in the stream"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn messages_in_stream(&self) -> u64 {
        let mut stream = self
            .jetstream
            .get_stream(self.settings.stream_name())
            .await
            .unwrap();
        stream.info().await.unwrap().state.messages
    }
}

impl Drop for TestQueue {
    fn drop(&mut self) {
        self.queue.close();
        let jetstream = self.jetstream.clone();
        let stream = self.settings.stream_name();
        // Drop is synchronous: delete the stream from a thread with a runtime of its own.
        let _ = std::thread::spawn(move || {
            tokio::runtime::Runtime::new()
                .unwrap()
                .block_on(async move {
                    let _ = jetstream.delete_stream(&stream).await;
                })
        })
        .join();
    }
}

fn refused(reason: &str) -> f64 {
    let rendered = tars_server::app::metrics_handle().render();
    let prefix = format!("tars_jobs_messages_refused_total{{reason=\"{reason}\"}} ");
    rendered
        .lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .map_or(0.0, |n| n.parse().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_newer_messages_are_refused_once_and_counted() {
    let Some(test) = TestQueue::new(Duration::from_secs(1), 3).await else {
        return;
    };
    let (malformed, newer) = (refused("malformed"), refused("newer_version"));
    test.publish_raw(b"{not json").await;
    test.publish_raw(br#"{"job_id": "9b2f3c1e-0000-4000-8000-000000000000"}"#)
        .await;
    test.publish_raw(br#"{"v": 2, "job_id": "9b2f3c1e-0000-4000-8000-000000000000"}"#)
        .await;
    let id = Uuid::new_v4();
    test.queue.push(id).await.unwrap();

    // The three bad messages are terminated on the way; the good one is delivered.
    let delivery = test.pop_within(Duration::from_secs(10)).await.unwrap();
    assert_eq!(
        (delivery.id, delivery.redelivered, delivery.last_attempt),
        (id, false, false)
    );
    delivery.acker.as_ref().unwrap().ack().await;
    assert_eq!(refused("malformed") - malformed, 2.0);
    assert_eq!(refused("newer_version") - newer, 1.0);
    // Terminated and acked messages are gone from the work queue: nothing comes back, even
    // after the ack wait.
    assert!(test.pop_within(Duration::from_secs(3)).await.is_none());
    test.assert_stream_empties().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_given_back_is_redelivered_until_its_last_attempt() {
    let Some(test) = TestQueue::new(Duration::from_secs(30), 2).await else {
        return;
    };
    let id = Uuid::new_v4();
    test.queue.push(id).await.unwrap();
    let first = test.pop_within(Duration::from_secs(10)).await.unwrap();
    assert_eq!((first.redelivered, first.last_attempt), (false, false));
    first.acker.as_ref().unwrap().nak(None).await;
    let second = test.pop_within(Duration::from_secs(10)).await.unwrap();
    assert_eq!(
        (second.id, second.redelivered, second.last_attempt),
        (id, true, true)
    );
    // Progress keeps it; an ack removes it.
    second.acker.as_ref().unwrap().progress().await;
    second.acker.as_ref().unwrap().ack().await;
    assert!(test.pop_within(Duration::from_secs(1)).await.is_none());
    test.assert_stream_empties().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reaper_publishes_jobs_whose_message_is_missing_under_its_fence() {
    let Some(test) = TestQueue::new(Duration::from_secs(30), 3).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let store = Store::connect(&format!("sqlite://{}", dir.path().join("t.db").display()))
        .await
        .unwrap();
    let mut ids = Vec::new();
    for _ in 0..4 {
        let job = NewJob {
            id: Uuid::new_v4(),
            kind: tars_store::JobKind::Evaluation,
            request: serde_json::json!({"agent_type": "PPO", "environments": ["CartPole-v1"]}),
            principal: "alice".into(),
            idempotency_key: None,
        };
        store.insert_job(&job).await.unwrap();
        ids.push(job.id);
    }
    // Job 0 was published before a crash; job 1 was stored but never published; job 2 is
    // running with its message in the stream (a worker has it: left alone); job 3 is running
    // but its message is gone (lost stream): an orphan no worker will ever get.
    test.queue.push(ids[0]).await.unwrap();
    test.queue.push(ids[2]).await.unwrap();
    assert!(store.claim_job(ids[2]).await.unwrap().is_some());
    assert!(store.claim_job(ids[3]).await.unwrap().is_some());
    // Embedded store: the single process leads.
    let mut session = store.leader_session("job-reaper", "test").unwrap();
    let epoch = session.try_acquire().await.unwrap().unwrap();
    let fence = tars_store::Fence {
        duty: "job-reaper".into(),
        epoch,
    };
    assert_eq!(
        test.queue.resume(&store).await.unwrap(),
        0,
        "the reaper does it"
    );
    assert_eq!(test.queue.reap(&store, &fence).await.unwrap(), (1, 1));
    assert_eq!(test.messages_in_stream().await, 4);
    let orphan = store.job(ids[3]).await.unwrap().unwrap();
    assert_eq!(orphan.status, tars_store::JobStatus::Queued);
    assert_eq!(
        orphan.error.as_deref(),
        Some("its queue message was lost; queued again by the job reaper")
    );
    // A second pass finds every job with its message.
    assert_eq!(test.queue.reap(&store, &fence).await.unwrap(), (0, 0));
    let mut delivered = Vec::new();
    for _ in 0..4 {
        let delivery = test.pop_within(Duration::from_secs(10)).await.unwrap();
        delivery.acker.as_ref().unwrap().ack().await;
        delivered.push(delivery.id);
    }
    delivered.sort();
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(delivered, expected);

    // A deposed leader's pass: the re-queue of an orphan is refused.
    assert_eq!(session.try_acquire().await.unwrap(), Some(epoch + 1));
    let orphan = ids[1];
    assert!(store.claim_job(orphan).await.unwrap().is_some());
    let refused = test.queue.reap(&store, &fence).await.unwrap_err();
    assert!(
        matches!(&refused, tars_store::StoreError::Conflict(tars_store::Conflict::Fenced { epoch: e, current: Some(c), .. }) if *e == epoch && *c == epoch + 1),
        "{refused}"
    );
    assert_eq!(
        store.job(orphan).await.unwrap().unwrap().status,
        tars_store::JobStatus::Running
    );
}

/// Issue 11: a job whose run cannot be stored (the store fails) is given back with a delay
/// and its error; when the store comes back it succeeds with one run, and a job that keeps
/// failing fails after `max_deliver` deliveries with its last error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_failures_are_retried_then_fail_the_job_after_max_deliver() {
    use tars_server::jobs::{Jobs, Submitted};
    use tars_store::JobStatus;
    let Some(test) = TestQueue::new(Duration::from_secs(30), 3).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().display().to_string();
    let config = tars_server::Config::load(&tars_server::ConfigArgs::with(&[
        ("data_dir", data_dir.as_str()),
        ("nats_url", test.settings.url.as_str()),
        ("nats_prefix", test.settings.prefix.as_str()),
    ]))
    .unwrap();
    let database_url = config.database_url().to_string();
    let service = Arc::new(tars_server::Service::open(config).await.unwrap());
    let raw = sqlx::SqlitePool::connect(&database_url).await.unwrap();
    let jobs = Jobs::new(service.clone(), test.queue.clone());
    // The store refuses every run while the table is away.
    sqlx::query("ALTER TABLE eval_runs RENAME TO eval_runs_away")
        .execute(&raw)
        .await
        .unwrap();
    let request: tars_eval::EvalRequest = serde_json::from_value(serde_json::json!({
        "agent_type": "PPO", "agent_state": {}, "environments": ["CartPole-v1"],
        "num_episodes": 1, "hyperparameters": {"n_timesteps": 256, "n_steps": 64}
    }))
    .unwrap();
    let submit = |seed: u64| {
        let jobs = jobs.clone();
        let mut request = request.clone();
        request.seed = Some(seed);
        async move {
            match jobs.submit(&request, "alice", None).await {
                Ok(Submitted::New(row)) => row.id,
                _ => panic!("the submission is refused"),
            }
        }
    };
    let recovers = submit(1).await;
    let workers = jobs.spawn_workers(1);

    // First delivery: the run cannot be stored; the job is queued again with the error.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let row = loop {
        let row = service.store.job(recovers).await.unwrap().unwrap();
        if row.error.is_some() {
            break row;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no transient failure seen"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!((row.status, row.attempts), (JobStatus::Queued, 1));
    assert!(
        row.error
            .as_deref()
            .unwrap()
            .contains("could not be stored"),
        "{row:?}"
    );
    sqlx::query("ALTER TABLE eval_runs_away RENAME TO eval_runs")
        .execute(&raw)
        .await
        .unwrap();
    let row = jobs
        .wait(recovers, Duration::from_secs(30))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (row.status, row.attempts, row.error.as_deref()),
        (JobStatus::Succeeded, 2, None)
    );
    assert_eq!(service.store.runs(10).await.unwrap().len(), 1);

    // A job that fails on every delivery fails after the third with its last error.
    sqlx::query("ALTER TABLE eval_runs RENAME TO eval_runs_away")
        .execute(&raw)
        .await
        .unwrap();
    let fails = submit(2).await;
    let row = jobs
        .wait(fails, Duration::from_secs(60))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((row.status, row.attempts), (JobStatus::Failed, 3));
    assert!(
        row.error
            .as_deref()
            .unwrap()
            .contains("could not be stored"),
        "{row:?}"
    );
    jobs.shutdown(workers, tokio::time::Instant::now()).await;
    test.assert_stream_empties().await;
}

/// Issue 11: a job whose worker dies on its last delivery is failed when JetStream gives up on
/// it (the max-deliveries advisory), and its message is deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_whose_last_delivery_is_never_answered_fails() {
    use tars_store::JobStatus;
    let Some(test) = TestQueue::new(Duration::from_secs(1), 1).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let store = Store::connect(&format!("sqlite://{}", dir.path().join("t.db").display()))
        .await
        .unwrap();
    let _advisories = test.queue.fail_undeliverable(store.clone()).await.unwrap();
    let job = NewJob {
        id: Uuid::new_v4(),
        kind: tars_store::JobKind::Evaluation,
        request: serde_json::json!({"agent_type": "PPO", "environments": ["CartPole-v1"]}),
        principal: "alice".into(),
        idempotency_key: None,
    };
    store.insert_job(&job).await.unwrap();
    test.queue.push(job.id).await.unwrap();
    // A worker takes it, claims it, and dies: no ack, no progress.
    let delivery = test.pop_within(Duration::from_secs(10)).await.unwrap();
    assert!(delivery.last_attempt);
    assert!(store.claim_job(job.id).await.unwrap().is_some());
    drop(delivery);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let row = loop {
        let row = store.job(job.id).await.unwrap().unwrap();
        if row.status.is_final() {
            break row;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the job never failed"
        );
        // The server gives up on a message when it would deliver it again: to a live worker
        // pulling (as the rest of a fleet does); this one gets nothing.
        assert!(test.pop_within(Duration::from_millis(200)).await.is_none());
    };
    assert_eq!(row.status, JobStatus::Failed);
    assert_eq!(
        row.error.as_deref(),
        Some("no worker finished the job in 1 deliveries (each worker died or stopped answering)")
    );
    test.assert_stream_empties().await;
}
