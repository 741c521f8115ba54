//! HyperSync state: proposals move only from the status the caller saw and keep every move;
//! config versions are a compare-and-set; applying writes the config and the proposal together.

use crate::support::TestDb;
use serde_json::json;
use tars_store::{ConfigAction, Conflict, NewConfig, NewProposal, StoreError, Transition};
use uuid::Uuid;

fn proposal() -> NewProposal {
    NewProposal {
        id: Uuid::new_v4(),
        agent_type: "dqn".into(),
        hyperparameters: json!({"learning_rate": 0.0005}),
        request: json!({"environments": ["CartPole-v1"], "evaluate_before_apply": true}),
        reason: Some("faster learning".into()),
        created_by: "alice".into(),
    }
}

fn transition(id: Uuid, from: &str, to: &str) -> Transition {
    Transition {
        id,
        from: from.into(),
        to: to.into(),
        actor: "admin".into(),
        reason: Some(format!("{from} to {to}")),
        ..Transition::default()
    }
}

fn config(expected_version: i32) -> NewConfig {
    NewConfig {
        agent_type: "DQN".into(),
        expected_version,
        hyperparameters: json!({"learning_rate": 0.0001 * f64::from(expected_version + 1)}),
        checkpoint_id: Some(format!("ckpt-{}", expected_version + 1)),
        environment: Some("CartPole-v1".into()),
        action: ConfigAction::Set,
        proposal_id: None,
        restored_version: None,
        actor: "admin".into(),
        reason: None,
        transition: None,
    }
}

async fn proposals_keep_every_move_and_refuse_stale_ones(db: &TestDb) {
    let new = proposal();
    let row = db.store.insert_proposal(&new).await.unwrap();
    assert_eq!(row.agent_type, "DQN");
    assert_eq!(row.status, "pending");
    assert_eq!(row.hyperparameters, new.hyperparameters);
    assert_eq!(row.request, new.request);

    let evaluating = db
        .store
        .transition_proposal(&transition(new.id, "pending", "evaluating"))
        .await
        .unwrap();
    assert_eq!(evaluating.status, "evaluating");
    let mut to_awaiting = transition(new.id, "evaluating", "awaiting_approval");
    to_awaiting.checkpoint_id = Some("proposal-ckpt".into());
    let awaiting = db.store.transition_proposal(&to_awaiting).await.unwrap();
    assert_eq!(awaiting.checkpoint_id.as_deref(), Some("proposal-ckpt"));
    assert_eq!(
        awaiting.status_reason.as_deref(),
        Some("evaluating to awaiting_approval")
    );

    // A second worker that still thinks it is pending loses, and nothing changes.
    let err = db
        .store
        .transition_proposal(&transition(new.id, "pending", "rejected"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Conflict(Conflict::ProposalStatus { actual, .. }) if actual == "awaiting_approval"),
        "{err}"
    );
    let events = db.store.proposal_events(new.id).await.unwrap();
    let moves: Vec<_> = events
        .iter()
        .map(|e| (e.seq, e.from_status.clone(), e.to_status.clone()))
        .collect();
    assert_eq!(
        moves,
        vec![
            (1, None, "pending".to_string()),
            (2, Some("pending".into()), "evaluating".into()),
            (3, Some("evaluating".into()), "awaiting_approval".into()),
        ]
    );
    assert_eq!(events[0].actor, "alice");

    let missing = db
        .store
        .transition_proposal(&transition(Uuid::new_v4(), "pending", "rejected"))
        .await
        .unwrap_err();
    assert!(matches!(missing, StoreError::NotFound { .. }), "{missing}");

    let listed = db
        .store
        .proposals(Some("DQN"), Some("awaiting_approval"), 10)
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert!(
        db.store
            .proposals(Some("PPO"), None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let again = db.store.insert_proposal(&new).await.unwrap_err();
    assert!(
        matches!(again, StoreError::Conflict(Conflict::IdTaken { .. })),
        "{again}"
    );
}

async fn config_versions_are_a_compare_and_set(db: &TestDb) {
    assert_eq!(db.store.config_version("dqn").await.unwrap(), 0);
    assert!(db.store.config("DQN", None).await.unwrap().is_none());
    let v1 = db.store.insert_config(&config(0)).await.unwrap();
    assert_eq!(v1.version, 1);
    let v2 = db.store.insert_config(&config(1)).await.unwrap();
    assert_eq!(v2.version, 2);
    // A writer that read version 1 loses to the one that wrote version 2.
    let err = db.store.insert_config(&config(1)).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "agent DQN is at config version 2, not 1: someone changed it first; reload \
         (GET /v1/agents/DQN/config) and retry"
    );
    let active = db.store.config("dqn", None).await.unwrap().unwrap();
    assert_eq!(active, v2);
    assert_eq!(db.store.config("DQN", Some(1)).await.unwrap().unwrap(), v1);
    let history = db.store.config_history("DQN").await.unwrap();
    assert_eq!(
        history.iter().map(|c| c.version).collect::<Vec<_>>(),
        vec![1, 2]
    );
    assert_eq!(
        db.store.config_versions().await.unwrap(),
        vec![("DQN".to_string(), 2)]
    );
    let bad = NewConfig {
        hyperparameters: json!([1, 2]),
        ..config(2)
    };
    assert!(matches!(
        db.store.insert_config(&bad).await.unwrap_err(),
        StoreError::Invalid { .. }
    ));
}

async fn applying_writes_config_and_proposal_together(db: &TestDb) {
    let new = proposal();
    db.store.insert_proposal(&new).await.unwrap();
    db.store
        .transition_proposal(&transition(new.id, "pending", "approved"))
        .await
        .unwrap();
    let apply = NewConfig {
        action: ConfigAction::Apply,
        proposal_id: Some(new.id),
        transition: Some(transition(new.id, "approved", "applied")),
        ..config(0)
    };
    let v1 = db.store.insert_config(&apply).await.unwrap();
    assert_eq!(v1.proposal_id, Some(new.id));
    assert_eq!(v1.action, ConfigAction::Apply);
    let applied = db.store.proposal(new.id).await.unwrap().unwrap();
    assert_eq!(applied.status, "applied");
    assert_eq!(applied.applied_version, Some(1));

    // Applying it again fails on the proposal's status and leaves no config behind.
    let err = db
        .store
        .insert_config(&NewConfig {
            expected_version: 1,
            ..apply.clone()
        })
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Conflict(Conflict::ProposalStatus { .. })),
        "{err}"
    );
    assert_eq!(db.store.config_version("DQN").await.unwrap(), 1);

    let rollback = NewConfig {
        action: ConfigAction::Rollback,
        restored_version: Some(1),
        transition: Some(transition(new.id, "applied", "rolled_back")),
        ..config(1)
    };
    let v2 = db.store.insert_config(&rollback).await.unwrap();
    assert_eq!(v2.restored_version, Some(1));
    assert_eq!(
        db.store.proposal(new.id).await.unwrap().unwrap().status,
        "rolled_back"
    );
}

on_both_backends!(
    proposals_keep_every_move_and_refuse_stale_ones,
    config_versions_are_a_compare_and_set,
    applying_writes_config_and_proposal_together,
);
