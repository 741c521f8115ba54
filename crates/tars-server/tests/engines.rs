//! The agent engines end to end in a real server on real data: an old baseline and a drifting
//! evaluation give Analysis insights and an Optimization study; repeated regressions pause
//! auto-apply until an admin resumes it; every metric the shipped alert rules use is on
//! /metrics. (Routing and alerts: `engines_routing.rs`, a process of its own because it
//! asserts metric values, which every server in a process shares.)

mod common;

use chrono::Utc;
use common::Server;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::collections::BTreeSet;
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

const FAST: [(&str, &str); 3] = [
    ("engine_interval_seconds", "1"),
    ("heartbeat_interval_seconds", "1"),
    ("missed_heartbeats", "2"),
];

fn with_fast<'a>(extra: &[(&'static str, &'a str)]) -> Vec<(&'static str, &'a str)> {
    let mut values: Vec<(&'static str, &'a str)> = FAST.to_vec();
    values.extend_from_slice(extra);
    values
}

/// The seeds' bad DQN proposal: it trains a policy far below any decent baseline.
fn bad_dqn() -> Value {
    json!({"learning_rate": 0.5, "gamma": 0.5, "exploration_final_eps": 0.9})
}

/// Metric names in the `expr` lines of an alert-rule file.
fn metric_names(rules: &str) -> BTreeSet<String> {
    /// The PromQL functions, operators and modifiers the rules use.
    const PROMQL: [&str; 18] = [
        "abs",
        "absent",
        "and",
        "avg",
        "bool",
        "changes",
        "count",
        "histogram_quantile",
        "increase",
        "max",
        "max_over_time",
        "min",
        "offset",
        "or",
        "rate",
        "resets",
        "sum",
        "unless",
    ];
    /// Keywords followed by a parenthesised list of label names, not metrics.
    const LABEL_LISTS: [&str; 6] = [
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
    ];
    let is_identifier = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    let mut names = BTreeSet::new();
    for line in rules.lines() {
        let Some(expr) = line.trim().strip_prefix("expr:") else {
            continue;
        };
        // Drop label matchers and range selectors, then keep the identifiers.
        let mut plain = String::new();
        let mut depth = 0;
        for c in expr.chars() {
            match c {
                '{' | '[' => depth += 1,
                '}' | ']' => depth -= 1,
                _ if depth == 0 => plain.push(c),
                _ => {}
            }
        }
        let mut rest = plain.as_str();
        while let Some(start) = rest.find(is_identifier) {
            rest = &rest[start..];
            let end = rest.find(|c: char| !is_identifier(c)).unwrap_or(rest.len());
            let token = &rest[..end];
            rest = &rest[end..];
            if LABEL_LISTS.contains(&token) {
                // `sum by (agent_type)`: skip the label list.
                if let Some(list) = rest.trim_start().strip_prefix('(') {
                    rest = list.split_once(')').map_or("", |(_, after)| after);
                }
                continue;
            }
            let is_name = token
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
            if is_name && !PROMQL.contains(&token) {
                names.insert(token.to_string());
            }
        }
    }
    names
}

#[test]
fn the_alert_rule_parser_finds_metric_names() {
    let rules = "      expr: rate(agent_tasks_total{status=\"failed\"}[5m]) > 0.05\n\
                 expr: tars_db_pool_connections / tars_db_pool_max_connections > 0.9\n\
                 expr: sum by (agent_type) (rate(tars_eval_duration_seconds_sum[30m])) / on (agent_type) group_left sum(rate(tars_jobs_total[1h] offset 1d)) or absent(up{job=\"tars\"})\n\
                 summary: \"rate(not_a_metric)\"";
    let names: Vec<_> = metric_names(rules).into_iter().collect();
    assert_eq!(
        names,
        [
            "agent_tasks_total",
            "tars_db_pool_connections",
            "tars_db_pool_max_connections",
            "tars_eval_duration_seconds_sum",
            "tars_jobs_total",
            "up"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_baseline_and_drifting_evaluations_give_insights_a_study_and_every_alert_metric() {
    let server = Server::start(
        "engines-analysis",
        &with_fast(&[("stale_study_trials", "1")]),
    )
    .await;
    let admin = server.admin().await;

    // A DQN/CartPole-v1 baseline last updated ten days ago, written as the store writes it.
    let db = sqlx::SqlitePool::connect(&format!(
        "sqlite://{}",
        server.dir.join("tars.db").display()
    ))
    .await
    .unwrap();
    let ten_days_ago = Utc::now() - chrono::Duration::days(10);
    sqlx::query(
        "INSERT INTO eval_baselines (agent_type, environment, mean_reward, std_reward,
         success_rate, hyperparameters, version, rank, created_at, updated_at)
         VALUES ('DQN', 'CartPole-v1', 500.0, 5.0, 1.0, '{}', 1, 1, $1, $1)",
    )
    .bind(ten_days_ago)
    .execute(&db)
    .await
    .unwrap();
    db.close().await;

    // A real evaluation far below it: drift, and a regression (the regression metrics that
    // alerts.yml uses appear on /metrics at the first one).
    let (status, evaluated) = post(
        &server,
        &admin,
        "/v1/evaluate",
        json!({"agent_type": "DQN", "environments": ["CartPole-v1"], "quick_mode": true,
               "num_episodes": 10, "hyperparameters": bad_dqn(), "compare_to_baseline": true}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{evaluated}");

    let insights = wait_for(&server, &admin, "/v1/insights", "both insights", |body| {
        let rules: BTreeSet<_> = body
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["rule"].as_str().unwrap().to_string())
            .collect();
        rules.contains("baseline_drift") && rules.contains("baseline_stale")
    })
    .await;
    for insight in insights.as_array().unwrap() {
        assert_eq!(insight["subject"], "DQN/CartPole-v1", "{insight}");
        assert!(insight["resolved_at"].is_null());
    }
    let drift = insights
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["rule"] == "baseline_drift")
        .unwrap();
    assert!(
        drift["details"]["drift"].as_f64().unwrap() < -0.15,
        "{drift}"
    );
    assert!(
        drift["message"]
            .as_str()
            .unwrap()
            .contains("below the baseline's 500.0 (threshold 15%)"),
        "{drift}"
    );
    let stale = insights
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["rule"] == "baseline_stale")
        .unwrap();
    assert!(
        stale["message"]
            .as_str()
            .unwrap()
            .starts_with("no baseline update for DQN/CartPole-v1 in 10.0 days (limit 7.0)"),
        "{stale}"
    );

    // The Optimization engine started one study for the stale pair; stop it (CPU), and later
    // scans start no other.
    let studies = wait_for(
        &server,
        &admin,
        "/v1/studies?agent_type=DQN",
        "a study",
        |b| !b.as_array().unwrap().is_empty(),
    )
    .await;
    let study = &studies[0];
    assert_eq!(study["created_by"], "optimization");
    assert_eq!(study["request"]["environments"], json!(["CartPole-v1"]));
    assert_eq!(study["request"]["n_trials"], 1);
    let id = study["id"].as_str().unwrap();
    let _ = post(
        &server,
        &admin,
        &format!("/v1/studies/{id}/stop"),
        json!({}),
    )
    .await;
    let scans = |body: &Value| {
        body.as_array()
            .unwrap()
            .iter()
            .filter(|t| t["status"] == "completed")
            .count()
    };
    let (_, before) = get(&server, &admin, "/v1/engines/tasks?engine=optimization").await;
    let before = scans(&before);
    wait_for(
        &server,
        &admin,
        "/v1/engines/tasks?engine=optimization",
        "two more optimization scans",
        |body| scans(body) >= before + 2,
    )
    .await;
    let (_, studies) = get(&server, &admin, "/v1/studies?agent_type=DQN").await;
    assert_eq!(studies.as_array().unwrap().len(), 1, "{studies}");

    // The engines as GET /v1/engines shows them.
    let (status, engines) = get(&server, &admin, "/v1/engines").await;
    assert_eq!(status, StatusCode::OK, "{engines}");
    assert_eq!(engines["leader"], true);
    let names: BTreeSet<_> = engines["engines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        BTreeSet::from(["analysis", "intelligence", "optimization", "performance"])
    );
    for engine in engines["engines"].as_array().unwrap() {
        assert_eq!(engine["health"], "healthy", "{engine}");
        assert_eq!(engine["queue_capacity"], 5_000);
        assert_eq!(engine["max_concurrent_tasks"], 200);
        assert_eq!(engine["task_timeout_seconds"], 30.0);
    }
    let components = engines["components"].as_array().unwrap();
    assert_eq!(components.len(), 5, "four engines and the job workers");
    assert!(
        components.iter().all(|c| c["alive"] == true),
        "{components:?}"
    );

    // Every metric the shipped alert rules use is exported.
    let rules = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/prometheus/alerts.yml"),
    )
    .unwrap();
    let needed = metric_names(&rules);
    assert!(needed.len() >= 8, "{needed:?}");
    let exported = wait_for_metrics(&server, &needed).await;
    assert!(
        exported.contains("agent_tasks_total{agent_name=\"analysis\",status=\"failed\"} 0"),
        "the failure series exists at zero before any failure"
    );
    server.stop().await;
}

/// Waits until /metrics has a sample of each name (gauges appear on their first scan).
async fn wait_for_metrics(server: &Server, needed: &BTreeSet<String>) -> String {
    let mut missing = Vec::new();
    for _ in 0..100 {
        let text = server.metrics().await;
        missing = needed
            .iter()
            .filter(|name| {
                !text.lines().any(|line| {
                    line.strip_prefix(name.as_str())
                        .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
                })
            })
            .cloned()
            .collect();
        if missing.is_empty() {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("/metrics lacks {missing:?}, which deploy/prometheus/alerts.yml uses");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_regressions_pause_auto_apply_until_an_admin_resumes_it() {
    let server = Server::start(
        "engines-pause",
        &with_fast(&[("auto_apply_pause_after", "2"), ("stale_study_trials", "0")]),
    )
    .await;
    let admin = server.admin().await;
    let row = json!({"agent_type": "DQN", "environment": "CartPole-v1", "mean_reward": 450.0,
        "std_reward": 25.0, "success_rate": 0.5, "version": 1, "rank": 1, "hyperparameters": {}});
    let (status, body) = post(&server, &admin, "/v1/baselines", row).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    // Two proposals whose evaluations regress, one after the other.
    for _ in 0..2 {
        let bad = json!({"agent_type": "DQN", "evaluate_before_apply": true, "quick_mode": true,
            "num_episodes": 10, "environments": ["CartPole-v1"], "auto_apply": true,
            "proposed_hyperparameters": bad_dqn()});
        let (status, proposal) = post(&server, &admin, "/v1/proposals", bad).await;
        assert!(status.is_success(), "{proposal}");
        let path = format!("/v1/proposals/{}", proposal["id"].as_str().unwrap());
        let settled = wait_for(&server, &admin, &path, "the verdict", |p| {
            p["status"] != "evaluating"
        })
        .await;
        assert_eq!(settled["status"], "rejected", "{settled}");
    }
    let engines = wait_for(&server, &admin, "/v1/engines", "the pause", |body| {
        !body["auto_apply_pauses"].as_array().unwrap().is_empty()
    })
    .await;
    let pause = &engines["auto_apply_pauses"][0];
    assert_eq!(pause["agent_type"], "DQN");
    assert_eq!(pause["active"], true);
    assert_eq!(pause["paused_by"], "optimization");
    assert_eq!(pause["proposals"].as_array().unwrap().len(), 2);

    // While paused, a passing auto-apply proposal waits for an admin, saying why.
    let passing = json!({"agent_type": "DQN", "evaluate_before_apply": false, "auto_apply": true,
        "environments": ["CartPole-v1"], "proposed_hyperparameters": {"learning_rate": 0.0005}});
    let (status, held) = post(&server, &admin, "/v1/proposals", passing.clone()).await;
    assert!(status.is_success(), "{held}");
    assert_eq!(held["status"], "awaiting_approval", "{held}");
    let reason = held["reason"].as_str().unwrap();
    assert!(
        reason.contains("auto-apply of DQN is paused since")
            && reason.contains("DELETE /v1/agents/DQN/auto_apply_pause"),
        "{reason}"
    );

    // A viewer cannot resume; an admin can, once.
    let (status, _) = server
        .call(
            Method::DELETE,
            "not-a-token",
            "/v1/agents/DQN/auto_apply_pause",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, resumed) = server
        .call(
            Method::DELETE,
            &admin,
            "/v1/agents/dqn/auto_apply_pause",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{resumed}");
    assert_eq!(resumed["active"], false);
    assert_eq!(resumed["resumed_by"], "admin");
    let (status, again) = server
        .call(
            Method::DELETE,
            &admin,
            "/v1/agents/DQN/auto_apply_pause",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{again}");
    assert_eq!(again["error"]["message"], "auto-apply of DQN is not paused");
    let (status, bad) = server
        .call(
            Method::DELETE,
            &admin,
            "/v1/agents/SAC/auto_apply_pause",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");

    // Resumed: auto-apply applies again, and the old regressions do not pause it again.
    let (status, applied) = post(&server, &admin, "/v1/proposals", passing).await;
    assert!(status.is_success(), "{applied}");
    assert_eq!(applied["status"], "applied", "{applied}");
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let (_, engines) = get(&server, &admin, "/v1/engines").await;
    assert_eq!(
        engines["auto_apply_pauses"][0]["active"], false,
        "{engines}"
    );
    server.stop().await;
}
