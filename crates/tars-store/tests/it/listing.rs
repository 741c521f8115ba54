//! Listings of past work: filters, time ranges and cursor pages that neither repeat nor skip a
//! row, on both backends.

use crate::support::TestDb;
use tars_store::{
    Cursor, IdOf, JobFilter, JobKind, JobStatus, NewJob, NewResult, NewRun, Page, RunFilter,
    StoreError,
};
use uuid::Uuid;

on_both_backends!(
    runs_are_paged_and_filtered,
    jobs_are_paged_and_filtered,
    ids_are_completed_from_a_prefix
);

/// Rows created in the same millisecond are ordered by id: the order is (time, id), descending.
fn newest_first_and_each_once(seen: &[(chrono::DateTime<chrono::Utc>, Uuid)], saved: &[Uuid]) {
    assert!(seen.windows(2).all(|w| w[0] > w[1]), "{seen:?}");
    let mut seen: Vec<Uuid> = seen.iter().map(|(_, id)| *id).collect();
    let mut saved = saved.to_vec();
    seen.sort();
    saved.sort();
    assert_eq!(seen, saved);
}

fn page(limit: i64) -> Page {
    Page {
        limit,
        ..Page::default()
    }
}

async fn save(db: &TestDb, agent_type: &str, environments: &[&str]) -> Uuid {
    let run = NewRun {
        job_id: None,
        id: None,
        agent_type: agent_type.into(),
        request: serde_json::json!({"agent_type": agent_type, "environments": environments}),
        response: serde_json::json!({}),
        seed: 0,
        duration_seconds: 1.0,
        results: environments
            .iter()
            .map(|env| NewResult {
                id: None,
                environment: env.to_string(),
                metrics: serde_json::json!({"mean_reward": 1.0}),
                episode_returns: vec![1.0],
                episode_lengths: vec![1],
                hyperparameters: serde_json::json!({}),
                regression: None,
            })
            .collect(),
    };
    db.store.save_run(&run).await.unwrap()
}

async fn runs_are_paged_and_filtered(db: &TestDb) {
    let mut saved = Vec::new();
    for i in 0..7 {
        let envs: &[&str] = if i % 2 == 0 {
            &["CartPole-v1"]
        } else {
            &["CartPole-v1", "Acrobot-v1"]
        };
        saved.push(save(db, if i < 5 { "ppo" } else { "DQN" }, envs).await);
    }

    // Pages of 3: every run once, in order, the last page without a cursor.
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let filter = RunFilter {
            page: Page { after, ..page(3) },
            ..RunFilter::default()
        };
        let listed = db.store.list_runs(&filter).await.unwrap();
        assert!(
            listed.rows.iter().all(|run| !run.results.is_empty()),
            "results attached"
        );
        seen.extend(listed.rows.iter().map(|run| (run.created_at, run.id)));
        match listed.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    newest_first_and_each_once(&seen, &saved);

    let by = |agent_type: Option<&str>, environment: Option<&str>| RunFilter {
        agent_type: agent_type.map(String::from),
        environment: environment.map(String::from),
        page: page(50),
    };
    let ppo = db.store.list_runs(&by(Some("PPO"), None)).await.unwrap();
    assert_eq!(ppo.rows.len(), 5, "agent types match case-insensitively");
    let acrobot = db
        .store
        .list_runs(&by(None, Some("Acrobot-v1")))
        .await
        .unwrap();
    assert_eq!(acrobot.rows.len(), 3);
    let both = db
        .store
        .list_runs(&by(Some("dqn"), Some("Acrobot-v1")))
        .await
        .unwrap();
    assert_eq!(both.rows.len(), 1);

    // A time range: nothing is older than now minus an hour, nothing is newer than now.
    let now = chrono::Utc::now();
    let range = |since, until| RunFilter {
        page: Page {
            since,
            until,
            ..page(50)
        },
        ..RunFilter::default()
    };
    let hour = chrono::Duration::hours(1);
    let count =
        |filter: RunFilter| async move { db.store.list_runs(&filter).await.unwrap().rows.len() };
    assert_eq!(count(range(Some(now - hour), None)).await, 7);
    assert_eq!(count(range(Some(now + hour), None)).await, 0);
    assert_eq!(count(range(None, Some(now - hour))).await, 0);

    for (filter, message) in [
        (
            RunFilter {
                page: page(0),
                ..RunFilter::default()
            },
            "use 1 to 200",
        ),
        (
            RunFilter {
                page: page(201),
                ..RunFilter::default()
            },
            "use 1 to 200",
        ),
        (range(Some(now), Some(now)), "must be before until"),
    ] {
        let error = db.store.list_runs(&filter).await.unwrap_err();
        assert!(matches!(error, StoreError::Invalid { .. }), "{error}");
        assert!(error.to_string().contains(message), "{error}");
    }
}

async fn jobs_are_paged_and_filtered(db: &TestDb) {
    let mut ids = Vec::new();
    for i in 0..6 {
        let job = NewJob {
            id: Uuid::new_v4(),
            kind: if i < 4 {
                JobKind::Evaluation
            } else {
                JobKind::Training
            },
            request: serde_json::json!({"agent_type": if i % 2 == 0 { "PPO" } else { "dqn" }}),
            principal: "alice".into(),
            idempotency_key: None,
        };
        db.store.insert_job(&job).await.unwrap();
        ids.push(job.id);
    }
    assert!(db.store.claim_job(ids[0]).await.unwrap().is_some());

    let filter = |kind, status, agent_type: Option<&str>, after: Option<Cursor>| JobFilter {
        kind,
        status,
        agent_type: agent_type.map(String::from),
        page: Page { after, ..page(4) },
    };
    let first = db
        .store
        .list_jobs(&filter(None, None, None, None))
        .await
        .unwrap();
    let second = db
        .store
        .list_jobs(&filter(None, None, None, first.next))
        .await
        .unwrap();
    let seen: Vec<_> = (first.rows.iter().chain(&second.rows))
        .map(|job| (job.created_at, job.id))
        .collect();
    newest_first_and_each_once(&seen, &ids);
    assert_eq!(second.next, None);

    let count = |f: JobFilter| async move { db.store.list_jobs(&f).await.unwrap().rows.len() };
    assert_eq!(
        count(filter(Some(JobKind::Training), None, None, None)).await,
        2
    );
    assert_eq!(
        count(filter(None, Some(JobStatus::Running), None, None)).await,
        1
    );
    assert_eq!(
        count(filter(None, Some(JobStatus::Queued), Some("ppo"), None)).await,
        2
    );
    assert_eq!(
        count(filter(Some(JobKind::Evaluation), None, Some("DQN"), None)).await,
        2
    );
}

async fn ids_are_completed_from_a_prefix(db: &TestDb) {
    let run = save(db, "ppo", &["CartPole-v1"]).await;
    let text = run.hyphenated().to_string();
    for prefix in [
        &text[..8],
        &text[..4],
        &text.to_uppercase()[..13],
        text.as_str(),
    ] {
        let found = db.store.ids_with_prefix(IdOf::Run, prefix).await.unwrap();
        assert_eq!(found, vec![run], "{prefix}");
    }
    let result = db.store.run(run).await.unwrap().unwrap().results[0].id;
    let found = db
        .store
        .ids_with_prefix(IdOf::Result, &result.to_string()[..6])
        .await;
    assert_eq!(found.unwrap(), vec![result]);
    // No job has it; another hex start matches nothing.
    assert!(
        db.store
            .ids_with_prefix(IdOf::Job, &text[..8])
            .await
            .unwrap()
            .is_empty()
    );
    for bad in ["abc", "zzzz", "12345678-'; DROP TABLE eval_runs; --"] {
        let error = db.store.ids_with_prefix(IdOf::Run, bad).await.unwrap_err();
        assert!(error.to_string().contains("4 to 36 hex digits"), "{error}");
    }
}
