//! The engine runtime's tables: a heartbeat rewrites its component's row, task outcomes are
//! kept and counted, a finding stays one open row while it is re-raised and closes when it
//! clears, and an auto-apply pause is set once and lifted.

use crate::support::TestDb;
use chrono::{Duration, Utc};
use serde_json::json;
use tars_store::{ComponentRow, NewFinding, StoreError, TaskResultRow};
use uuid::Uuid;

fn component(name: &str, kind: &str) -> ComponentRow {
    let now = Utc::now();
    ComponentRow {
        id: Uuid::new_v4(),
        kind: kind.into(),
        name: name.into(),
        instance: "node-1:42".into(),
        capabilities: vec!["evaluate".into(), "train".into()],
        status: "healthy".into(),
        running_tasks: 1,
        max_concurrent_tasks: 4,
        queue_size: 3,
        heartbeat_interval_ms: 5_000,
        details: json!({"message": "ok"}),
        started_at: now,
        last_heartbeat: now,
    }
}

fn task(engine: &str, status: &str) -> TaskResultRow {
    let now = Utc::now();
    TaskResultRow {
        id: Uuid::new_v4(),
        engine: engine.into(),
        component_id: Some(Uuid::new_v4()),
        task_type: "scan".into(),
        priority: 2,
        status: status.into(),
        duration_seconds: (status != "rejected").then_some(0.25),
        error: (status == "failed").then(|| "boom".to_string()),
        result: (status == "completed").then(|| json!({"insights": 2})),
        confidence: (status == "completed").then_some(0.75),
        created_at: now,
        started_at: (status != "rejected").then_some(now),
        finished_at: now,
    }
}

fn finding(subject: &str, message: &str) -> NewFinding {
    NewFinding {
        kind: "insight".into(),
        rule: "baseline_drift".into(),
        subject: subject.into(),
        severity: "warning".into(),
        message: message.into(),
        details: json!({"drift": 0.2}),
    }
}

async fn a_heartbeat_rewrites_its_components_row(db: &TestDb) {
    let mut worker = component("eval-worker", "worker");
    db.store.heartbeat(&worker).await.unwrap();
    let engine = component("analysis", "engine");
    db.store.heartbeat(&engine).await.unwrap();
    worker.status = "degraded".into();
    worker.running_tasks = 4;
    worker.last_heartbeat = Utc::now() + Duration::seconds(5);
    db.store.heartbeat(&worker).await.unwrap();

    let rows = db.store.components().await.unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].name, "analysis");
    let stored = &rows[1];
    assert_eq!(stored.id, worker.id);
    assert_eq!(stored.status, "degraded");
    assert_eq!(stored.running_tasks, 4);
    assert_eq!(stored.capabilities, ["evaluate", "train"]);
    assert_eq!(stored.details, json!({"message": "ok"}));
    assert!(stored.last_heartbeat > rows[0].last_heartbeat);

    // Components silent since before a point in time are forgotten; the rest stay.
    let forgotten = db
        .store
        .forget_components(Utc::now() + Duration::seconds(1))
        .await
        .unwrap();
    assert_eq!(forgotten, 1);
    assert_eq!(db.store.components().await.unwrap()[0].id, worker.id);

    let mut bad = component("x", "robot");
    let err = db.store.heartbeat(&bad).await.unwrap_err();
    assert!(err.to_string().contains("valid: engine, worker"), "{err}");
    bad.kind = "engine".into();
    bad.status = "fine".into();
    let err = db.store.heartbeat(&bad).await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Invalid {
                field: "status",
                ..
            }
        ),
        "{err}"
    );
}

async fn task_results_are_kept_listed_and_counted(db: &TestDb) {
    let done = task("analysis", "completed");
    db.store.insert_task_result(&done).await.unwrap();
    db.store
        .insert_task_result(&task("analysis", "failed"))
        .await
        .unwrap();
    db.store
        .insert_task_result(&task("performance", "timed_out"))
        .await
        .unwrap();
    db.store
        .insert_task_result(&task("performance", "rejected"))
        .await
        .unwrap();

    let all = db.store.task_results(None, None, 10).await.unwrap();
    assert_eq!(all.len(), 4);
    let completed = db
        .store
        .task_results(Some("analysis"), Some("completed"), 10)
        .await
        .unwrap();
    // PostgreSQL keeps microseconds: compare everything but the times.
    assert_eq!(completed.len(), 1);
    let stored = &completed[0];
    assert_eq!(
        (
            stored.id,
            &stored.result,
            stored.confidence,
            stored.priority
        ),
        (done.id, &done.result, done.confidence, done.priority)
    );
    assert_eq!(stored.component_id, done.component_id);
    assert_eq!(stored.duration_seconds, Some(0.25));
    let counts = db
        .store
        .task_counts(Utc::now() - Duration::minutes(5))
        .await
        .unwrap();
    assert_eq!(
        counts,
        [
            ("analysis".to_string(), "completed".to_string(), 1),
            ("analysis".to_string(), "failed".to_string(), 1),
            ("performance".to_string(), "rejected".to_string(), 1),
            ("performance".to_string(), "timed_out".to_string(), 1),
        ]
    );
    assert!(
        db.store
            .task_counts(Utc::now() + Duration::minutes(5))
            .await
            .unwrap()
            .is_empty()
    );

    let mut bad = task("analysis", "processing");
    let err = db.store.insert_task_result(&bad).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("valid: completed, failed, timed_out, rejected"),
        "{err}"
    );
    bad.status = "completed".into();
    bad.confidence = Some(1.5);
    let err = db.store.insert_task_result(&bad).await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Invalid {
                field: "confidence",
                ..
            }
        ),
        "{err}"
    );
    bad.confidence = None;
    bad.priority = 7;
    assert!(db.store.insert_task_result(&bad).await.is_err());
    assert!(db.store.task_results(None, Some("done"), 10).await.is_err());
}

async fn a_finding_stays_open_while_raised_and_resolves_when_it_clears(db: &TestDb) {
    let (first, opened) = db
        .store
        .raise_finding(&finding("PPO/CartPole-v1", "drift 20%"))
        .await
        .unwrap();
    assert!(opened);
    let (again, opened) = db
        .store
        .raise_finding(&finding("PPO/CartPole-v1", "drift 25%"))
        .await
        .unwrap();
    assert!(!opened);
    assert_eq!(again.id, first.id);
    assert_eq!(again.message, "drift 25%");
    assert!(again.last_seen_at >= first.last_seen_at);
    let (other, _) = db
        .store
        .raise_finding(&finding("DQN/CartPole-v1", "drift 30%"))
        .await
        .unwrap();
    assert_eq!(
        db.store.findings("insight", true, 10).await.unwrap().len(),
        2
    );
    assert!(
        db.store
            .findings("alert", true, 10)
            .await
            .unwrap()
            .is_empty()
    );

    // Only DQN still drifts: PPO's finding is resolved, and a later drift opens a new one.
    let resolved = db
        .store
        .resolve_findings(
            "insight",
            "baseline_drift",
            &["DQN/CartPole-v1".to_string()],
        )
        .await
        .unwrap();
    assert_eq!(resolved.len(), 1);
    assert_eq!(resolved[0].id, first.id);
    assert!(resolved[0].resolved_at.is_some());
    let open = db.store.findings("insight", true, 10).await.unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].id, other.id);
    assert_eq!(
        db.store.findings("insight", false, 10).await.unwrap().len(),
        2
    );
    let (reopened, opened) = db
        .store
        .raise_finding(&finding("PPO/CartPole-v1", "drift 40%"))
        .await
        .unwrap();
    assert!(opened);
    assert_ne!(reopened.id, first.id);

    let mut bad = finding("x", "y");
    bad.severity = "loud".into();
    let err = db.store.raise_finding(&bad).await.unwrap_err();
    assert!(
        err.to_string().contains("valid: info, warning, critical"),
        "{err}"
    );
    assert!(db.store.findings("gossip", true, 10).await.is_err());
}

async fn an_auto_apply_pause_is_set_once_and_lifted(db: &TestDb) {
    assert_eq!(db.store.auto_apply_pause("ppo").await.unwrap(), None);
    let ids = [Uuid::new_v4(), Uuid::new_v4()];
    let (pause, made) = db
        .store
        .pause_auto_apply("ppo", "2 regressions in a row", &ids, "optimization")
        .await
        .unwrap();
    assert!(made);
    assert_eq!(pause.agent_type, "PPO");
    assert_eq!(pause.proposals, ids);
    let (kept, made) = db
        .store
        .pause_auto_apply("PPO", "again", &[], "optimization")
        .await
        .unwrap();
    assert!(!made);
    assert_eq!(kept.reason, "2 regressions in a row");
    assert_eq!(
        db.store.auto_apply_pauses().await.unwrap(),
        std::slice::from_ref(&kept)
    );
    assert!(kept.is_active());
    let resumed = db
        .store
        .resume_auto_apply("Ppo", "admin")
        .await
        .unwrap()
        .unwrap();
    assert!(!resumed.is_active());
    assert_eq!(resumed.resumed_by.as_deref(), Some("admin"));
    assert_eq!(
        db.store.resume_auto_apply("PPO", "admin").await.unwrap(),
        None
    );
    assert!(
        !db.store
            .auto_apply_pause("PPO")
            .await
            .unwrap()
            .unwrap()
            .is_active()
    );
    // A resumed pause can be set again, with the new reason.
    let (again, made) = db
        .store
        .pause_auto_apply("ppo", "3 more regressions", &[], "optimization")
        .await
        .unwrap();
    assert!(made && again.is_active());
    assert_eq!(again.reason, "3 more regressions");
}

on_both_backends!(
    a_heartbeat_rewrites_its_components_row,
    task_results_are_kept_listed_and_counted,
    a_finding_stays_open_while_raised_and_resolves_when_it_clears,
    an_auto_apply_pause_is_set_once_and_lifted,
);
