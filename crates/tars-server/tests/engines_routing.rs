//! The Intelligence and Performance engines end to end in a real server: routing goes to live
//! workers only (this server's job workers, and a remote worker while it beats), every
//! decision is stored with its confidence, and a worker that stops beating drops out of
//! routing and raises the AgentDown alert (`/v1/alerts`, `tars_alerts_firing`, `agent_up`).

mod common;

use common::Server;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::time::Duration;

async fn get(server: &Server, token: &str, path: &str) -> (StatusCode, Value) {
    server.call(Method::GET, token, path, None).await
}

async fn post(server: &Server, token: &str, path: &str, body: Value) -> (StatusCode, Value) {
    server.call(Method::POST, token, path, Some(body)).await
}

/// Polls `GET path` until `check` accepts the body (30 s at most).
async fn wait_for(
    server: &Server,
    token: &str,
    path: &str,
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    for _ in 0..300 {
        let (status, body) = get(server, token, path).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        if check(&body) {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, body) = get(server, token, path).await;
    panic!("timed out waiting for {what}; last {path}: {body:#}");
}

/// Polls /metrics until it has `line` (10 s at most).
async fn wait_for_metric(server: &Server, line: &str) {
    for _ in 0..100 {
        if server.metrics().await.lines().any(|l| l == line) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("/metrics never showed {line}:\n{}", server.metrics().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn intelligence_routes_to_live_workers_and_a_dead_one_drops_out_and_raises_an_alert() {
    let server = Server::start(
        "engines-routing",
        &[
            ("engine_interval_seconds", "1"),
            ("heartbeat_interval_seconds", "1"),
            ("missed_heartbeats", "2"),
        ],
    )
    .await;
    let admin = server.admin().await;

    // This server's job workers take evaluations.
    let (status, decision) = post(
        &server,
        &admin,
        "/v1/engines/route",
        json!({"capability": "evaluate"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{decision}");
    assert_eq!(decision["worker"]["name"], "eval-worker");
    let confidence = decision["confidence"].as_f64().unwrap();
    assert!(confidence > 0.0 && confidence <= 1.0, "{decision}");

    // A worker of another process registers for `train`, as a remote worker does, then dies.
    let store = tars_store::Store::connect(&format!(
        "sqlite://{}",
        server.dir.join("tars.db").display()
    ))
    .await
    .unwrap();
    let registry = tars_runtime::Registry::new(store.clone(), 2);
    let mut remote = tars_runtime::registry::new_component(
        "worker",
        "trainer",
        vec!["train".into()],
        2,
        Duration::from_millis(400),
    );
    remote.instance = "node-7:99".into();
    registry.beat(&remote).await.unwrap();
    let (status, routed) = post(
        &server,
        &admin,
        "/v1/engines/route",
        json!({"capability": "train"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{routed}");
    assert_eq!(routed["worker"]["id"], remote.id.to_string());
    assert_eq!(routed["worker"]["instance"], "node-7:99");

    // No heartbeat for more than 2 × 400 ms: dead, out of routing, and an alert.
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    let (status, refused) = post(
        &server,
        &admin,
        "/v1/engines/route",
        json!({"capability": "train"}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("no live, healthy worker has capability 'train'; live workers: "),
        "{message}"
    );
    assert!(message.contains("eval-worker@"), "{message}");
    let alerts = wait_for(&server, &admin, "/v1/alerts", "AgentDown", |body| {
        body.as_array()
            .unwrap()
            .iter()
            .any(|a| a["rule"] == "AgentDown" && a["subject"] == "worker trainer@node-7:99")
    })
    .await;
    let down = alerts
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["rule"] == "AgentDown")
        .unwrap();
    assert_eq!(down["severity"], "critical");
    wait_for_metric(&server, "tars_alerts_firing{rule=\"AgentDown\"} 1").await;
    wait_for_metric(
        &server,
        "agent_up{agent_name=\"trainer\",kind=\"worker\",instance=\"node-7:99\"} 0",
    )
    .await;

    // Every decision is in task_results: two routed with their confidence, one failed.
    let (_, tasks) = get(&server, &admin, "/v1/engines/tasks?engine=intelligence").await;
    let tasks = tasks.as_array().unwrap();
    let routed: Vec<_> = tasks
        .iter()
        .filter(|t| t["status"] == "completed")
        .collect();
    assert_eq!(routed.len(), 2, "{tasks:?}");
    assert!(
        routed
            .iter()
            .all(|t| t["confidence"].as_f64().unwrap() > 0.0)
    );
    assert!(routed.iter().all(|t| t["task_type"] == "route"));
    let failed: Vec<_> = tasks.iter().filter(|t| t["status"] == "failed").collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["confidence"], Value::Null);

    // Input errors.
    let (status, body) = post(
        &server,
        &admin,
        "/v1/engines/route",
        json!({"capability": ""}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, body) = get(&server, &admin, "/v1/engines/tasks?status=processing").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("valid: completed, failed, timed_out, rejected")
    );

    // Made-up capabilities are counted under one label, not one series each.
    for i in 0..200 {
        let body = json!({"capability": format!("made-up-{i}")});
        let (status, _) = post(&server, &admin, "/v1/engines/route", body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    }
    let metrics = server.metrics().await;
    assert!(!metrics.contains("made-up-"), "{metrics}");
    assert!(
        metrics.contains("capability=\"other\",outcome=\"unroutable\""),
        "{metrics}"
    );
    store.close().await;
    server.stop().await;
}
