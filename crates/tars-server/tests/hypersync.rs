//! HyperSync over real HTTP: the seeds' pipeline (proposal → evaluation → approval → applied →
//! `act` serves it → a bad proposal is rejected → rollback), in-flight isolation during a
//! reload, the automatic post-apply rollback, and every bad input leaving the state unchanged.

mod common;

use common::{Server, json_of};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::time::Duration;

async fn post(server: &Server, token: &str, path: &str, body: Value) -> (StatusCode, Value) {
    server.call(Method::POST, token, path, Some(body)).await
}

async fn get(server: &Server, token: &str, path: &str) -> (StatusCode, Value) {
    server.call(Method::GET, token, path, None).await
}

async fn put(server: &Server, token: &str, path: &str, body: Value) -> (StatusCode, Value) {
    server.call(Method::PUT, token, path, Some(body)).await
}

async fn baseline(server: &Server, token: &str, agent: &str, mean: f64, std: f64) {
    // CartPole's success is a return of 475 or more.
    let success_rate = if mean >= 475.0 {
        0.9
    } else if mean >= 400.0 {
        0.5
    } else {
        0.0
    };
    let row = json!({"agent_type": agent, "environment": "CartPole-v1", "mean_reward": mean,
        "std_reward": std, "success_rate": success_rate, "version": 1, "rank": 1, "hyperparameters": {}});
    let (status, body) = post(server, token, "/v1/baselines", row).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

/// Polls a proposal until it leaves `evaluating`.
async fn settled(server: &Server, token: &str, id: &str) -> Value {
    for _ in 0..600 {
        let (status, body) = get(server, token, &format!("/v1/proposals/{id}")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        if body["status"] != "evaluating" {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("proposal {id} still evaluating after 60 s");
}

async fn config_version(server: &Server, token: &str, agent: &str) -> i64 {
    let (_, body) = get(server, token, &format!("/v1/agents/{agent}/config")).await;
    body["version"].as_i64().unwrap_or(0)
}

fn ppo_proposal(learning_rate: f64) -> Value {
    json!({"agent_type": "ppo", "proposed_hyperparameters": {"learning_rate": learning_rate},
        "evaluate_before_apply": true, "environments": ["CartPole-v1"], "quick_mode": true,
        "num_episodes": 20, "reason": "tuned by hand"})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seeds_pipeline_proposal_approval_act_rejection_rollback() {
    let server = Server::start("hs-pipeline", &[]).await;
    let admin = server.admin().await;
    baseline(&server, &admin, "PPO", 50.0, 10.0).await;
    baseline(&server, &admin, "DQN", 450.0, 25.0).await;

    // A good proposal passes the evaluation and waits for an admin.
    let (status, first) = post(&server, &admin, "/v1/proposals", ppo_proposal(0.001)).await;
    assert!(
        status == StatusCode::CREATED || status == StatusCode::ACCEPTED,
        "{first}"
    );
    let first = settled(&server, &admin, first["id"].as_str().unwrap()).await;
    assert_eq!(first["status"], "awaiting_approval", "{first}");
    assert_eq!(
        first["evaluation"]["regression"]["should_rollback"], false,
        "{first}"
    );
    assert!(
        first["evaluation"]["results"][0]["metrics"]["mean_reward"]
            .as_f64()
            .unwrap()
            > 50.0
    );
    assert_eq!(first["reason"], first["evaluation"]["regression"]["reason"]);
    let id = first["id"].as_str().unwrap();
    assert_eq!(first["checkpoint_id"], format!("proposal-{id}"));

    // Nothing is live before the approval.
    let act = json!({"observation": [0.01, 0.02, -0.03, 0.04]});
    let (status, body) = post(&server, &admin, "/v1/agents/PPO/act", act.clone()).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");

    let (status, applied) = post(
        &server,
        &admin,
        &format!("/v1/proposals/{id}/approve"),
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{applied}");
    assert_eq!(applied["status"], "applied");
    assert_eq!(applied["applied_version"], 1);
    let moves: Vec<_> = applied["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["to"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        moves,
        [
            "pending",
            "evaluating",
            "awaiting_approval",
            "approved",
            "applied"
        ]
    );
    assert_eq!(applied["history"][3]["actor"], "admin");

    // A checkpoint of another algorithm cannot become DQN's config; nothing changes.
    let (status, err) = put(
        &server,
        &admin,
        "/v1/agents/DQN/config",
        json!({"expected_version": 0, "checkpoint_id": format!("proposal-{id}")}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("holds a PPO policy"),
        "{err}"
    );
    assert_eq!(config_version(&server, &admin, "DQN").await, 0);

    // `act` serves the applied version.
    let (status, acted) = post(&server, &admin, "/v1/agents/ppo/act", act.clone()).await;
    assert_eq!(status, StatusCode::OK, "{acted}");
    assert_eq!(acted["version"], 1);
    assert_eq!(acted["environment"], "CartPole-v1");
    assert!(acted["action"] == 0 || acted["action"] == 1, "{acted}");
    let batch = json!({"observations": [[0.0, 0.0, 0.0, 0.0], [0.1, 1.0, -0.1, -1.0]]});
    let (_, acted) = post(&server, &admin, "/v1/agents/PPO/act", batch).await;
    assert_eq!(acted["actions"].as_array().unwrap().len(), 2);

    // A bad proposal (the seeds' lr 0.5, gamma 0.5, epsilon 0.9) is rejected with the reason.
    let bad = json!({"agent_type": "DQN", "evaluate_before_apply": true, "quick_mode": true,
        "num_episodes": 20, "environments": ["CartPole-v1"],
        "proposed_hyperparameters": {"learning_rate": 0.5, "gamma": 0.5, "exploration_final_eps": 0.9}});
    let (_, rejected) = post(&server, &admin, "/v1/proposals", bad).await;
    let rejected = settled(&server, &admin, rejected["id"].as_str().unwrap()).await;
    assert_eq!(rejected["status"], "rejected", "{rejected}");
    let reason = rejected["reason"].as_str().unwrap();
    assert!(reason.contains("below baseline 450.0"), "{reason}");
    assert_eq!(
        rejected["evaluation"]["regression"]["should_rollback"],
        true
    );
    let (status, err) = post(
        &server,
        &admin,
        &format!("/v1/proposals/{}/approve", rejected["id"].as_str().unwrap()),
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{err}");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("cannot approve a proposal that is rejected")
    );
    assert_eq!(config_version(&server, &admin, "DQN").await, 0);

    // A second change, then a rollback restores the first.
    let (_, second) = post(&server, &admin, "/v1/proposals", ppo_proposal(0.0005)).await;
    let second = settled(&server, &admin, second["id"].as_str().unwrap()).await;
    assert_eq!(second["status"], "awaiting_approval", "{second}");
    let second_id = second["id"].as_str().unwrap();
    let (status, body) = post(
        &server,
        &admin,
        &format!("/v1/proposals/{second_id}/approve"),
        json!({}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, acted) = post(&server, &admin, "/v1/agents/PPO/act", act.clone()).await;
    assert_eq!(acted["version"], 2);

    let (status, back) = post(
        &server,
        &admin,
        "/v1/rollback",
        json!({"agent_type": "ppo", "reason": "Manual rollback"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{back}");
    assert_eq!(back["version"], 3);
    assert_eq!(back["restored_version"], 1);
    assert_eq!(back["action"], "rollback");
    assert_eq!(back["checkpoint_id"], format!("proposal-{id}"));
    assert_eq!(back["hyperparameters"], json!({"learning_rate": 0.001}));
    let (_, second) = get(&server, &admin, &format!("/v1/proposals/{second_id}")).await;
    assert_eq!(second["status"], "rolled_back");
    let (_, acted) = post(&server, &admin, "/v1/agents/PPO/act", act).await;
    assert_eq!(acted["version"], 3);
    let (_, config) = get(&server, &admin, "/v1/agents/PPO/config").await;
    assert_eq!(config["served_version"], 3);
    let (_, history) = get(&server, &admin, "/v1/agents/PPO/config/history").await;
    let actions: Vec<_> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["apply", "apply", "rollback"]);
    let (_, listed) = get(
        &server,
        &admin,
        "/v1/proposals?agent_type=PPO&status=rolled_back",
    )
    .await;
    assert_eq!(listed.as_array().unwrap().len(), 1);

    // A restarted server serves the stored active version.
    let dir = server.stop().await;
    let server = Server::start_in(dir, &[]).await;
    let admin = server.admin().await;
    let (_, acted) = post(
        &server,
        &admin,
        "/v1/agents/PPO/act",
        json!({"observation": [0.0, 0.0, 0.0, 0.0]}),
    )
    .await;
    assert_eq!(acted["version"], 3, "{acted}");
    server.stop().await;
}

/// A change applied while an evaluation and a stream of `act` calls run: the evaluation
/// finishes, no call fails, each answer names one version, and no client sees versions go back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_under_load_drops_nothing_and_mixes_nothing() {
    let server = Server::start("hs-inflight", &[("auto_rollback", "0")]).await;
    let admin = server.admin().await;
    let (_, proposal) = post(&server, &admin, "/v1/proposals", ppo_proposal(0.001)).await;
    let proposal = settled(&server, &admin, proposal["id"].as_str().unwrap()).await;
    let checkpoint = proposal["checkpoint_id"].as_str().unwrap().to_string();
    let (status, v1) = put(&server, &admin, "/v1/agents/PPO/config",
        json!({"expected_version": 0, "hyperparameters": {"learning_rate": 0.001}, "checkpoint_id": checkpoint})).await;
    assert_eq!(status, StatusCode::OK, "{v1}");

    // A long evaluation runs across the swap.
    let evaluation = server
        .client
        .post(server.url("/v1/evaluate"))
        .bearer_auth(&admin)
        .json(
            &json!({"agent_type": "PPO", "environments": ["CartPole-v1"], "num_episodes": 200,
            "agent_state": {"checkpoint_id": checkpoint}}),
        )
        .send();
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let client = server.client.clone();
            let url = server.url("/v1/agents/PPO/act");
            let token = admin.clone();
            tokio::spawn(async move {
                let mut seen = Vec::new();
                for _ in 0..150 {
                    let response = client
                        .post(&url)
                        .bearer_auth(&token)
                        .json(&json!({"observation": [0.0, 0.1, 0.0, -0.1]}))
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(response.status(), StatusCode::OK);
                    let body: Value = response.json().await.unwrap();
                    seen.push(body["version"].as_i64().unwrap());
                }
                seen
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(30)).await;
    let (status, v2) = put(&server, &admin, "/v1/agents/PPO/config",
        json!({"expected_version": 1, "hyperparameters": {"learning_rate": 0.002}, "checkpoint_id": checkpoint})).await;
    assert_eq!(status, StatusCode::OK, "{v2}");
    let mut all = Vec::new();
    for client in clients {
        let seen = client.await.unwrap();
        assert!(
            seen.windows(2).all(|w| w[0] <= w[1]),
            "versions went back: {seen:?}"
        );
        all.extend(seen);
    }
    assert_eq!(all.len(), 600);
    assert!(all.iter().all(|v| *v == 1 || *v == 2));
    assert_eq!(*all.last().unwrap(), 2);
    let (status, result) = json_of(evaluation.await.unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{result}");
    assert_eq!(result["results"][0]["metrics"]["n_episodes"], 200);
    let metrics = server.metrics().await;
    assert!(
        metrics.contains("tars_hypersync_reload_seconds"),
        "{metrics}"
    );
    assert!(metrics.contains("tars_hypersync_config_version{agent_type=\"PPO\"} 2"));
    server.stop().await;
}

/// A change whose post-apply evaluation regresses is rolled back by the service, with why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_regressing_change_is_rolled_back_automatically() {
    let server = Server::start("hs-auto", &[("post_apply_episodes", "20")]).await;
    let admin = server.admin().await;
    baseline(&server, &admin, "DQN", 450.0, 25.0).await;
    // A badly trained DQN checkpoint: the seeds' bad proposal, kept after its rejection.
    let bad = json!({"agent_type": "DQN", "quick_mode": true, "num_episodes": 10,
        "proposed_hyperparameters": {"learning_rate": 0.5, "gamma": 0.5, "exploration_final_eps": 0.9}});
    let (_, rejected) = post(&server, &admin, "/v1/proposals", bad).await;
    let rejected = settled(&server, &admin, rejected["id"].as_str().unwrap()).await;
    assert_eq!(rejected["status"], "rejected");
    let checkpoint = rejected["checkpoint_id"].as_str().unwrap();

    let (status, _) = put(
        &server,
        &admin,
        "/v1/agents/DQN/config",
        json!({"expected_version": 0, "hyperparameters": {}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, v2) = put(&server, &admin, "/v1/agents/DQN/config",
        json!({"expected_version": 1, "hyperparameters": {"learning_rate": 0.5}, "checkpoint_id": checkpoint,
               "reason": "forced by an admin"})).await;
    assert_eq!(status, StatusCode::OK, "{v2}");
    let mut config = Value::Null;
    for _ in 0..300 {
        config = get(&server, &admin, "/v1/agents/DQN/config").await.1;
        if config["version"] == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(config["version"], 3, "no automatic rollback: {config}");
    assert_eq!(config["action"], "rollback");
    assert_eq!(config["restored_version"], 1);
    assert_eq!(config["actor"], "hypersync");
    assert!(
        config["reason"]
            .as_str()
            .unwrap()
            .starts_with("post-apply evaluation of v2: mean reward"),
        "{config}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_clear_error_and_changes_nothing() {
    let server = Server::start("hs-bad", &[]).await;
    let admin = server.admin().await;
    let expect = |status: StatusCode, body: &Value, code: StatusCode, text: &str| {
        assert_eq!(status, code, "{body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(text), "{message} lacks {text}");
    };
    let (s, b) = post(
        &server,
        &admin,
        "/v1/proposals",
        json!({"agent_type": "SAC"}),
    )
    .await;
    expect(
        s,
        &b,
        StatusCode::UNPROCESSABLE_ENTITY,
        "valid: DQN, A2C, PPO, DDPG, TD3",
    );
    let (s, b) = post(
        &server,
        &admin,
        "/v1/proposals",
        json!({"agent_type": "PPO", "proposed_hyperparameters": {"learning_rat": 0.1}}),
    )
    .await;
    expect(s, &b, StatusCode::UNPROCESSABLE_ENTITY, "learning_rat");
    let (s, b) = post(
        &server,
        &admin,
        "/v1/proposals",
        json!({"agent_type": "PPO", "checkpoint_id": "nowhere"}),
    )
    .await;
    expect(
        s,
        &b,
        StatusCode::UNPROCESSABLE_ENTITY,
        "checkpoint 'nowhere' not found",
    );
    let (_, listed) = get(&server, &admin, "/v1/proposals").await;
    assert_eq!(listed, json!([]), "a refused proposal is not stored");
    let (s, b) = get(&server, &admin, "/v1/proposals?status=done").await;
    expect(
        s,
        &b,
        StatusCode::UNPROCESSABLE_ENTITY,
        "valid: pending, evaluating",
    );
    let (s, b) = get(&server, &admin, "/v1/proposals/123").await;
    expect(s, &b, StatusCode::NOT_FOUND, "proposal ids are UUIDs");

    // Configs: a missing checkpoint, no expected version, a stale one.
    let (s, b) = put(
        &server,
        &admin,
        "/v1/agents/PPO/config",
        json!({"expected_version": 0, "checkpoint_id": "nowhere"}),
    )
    .await;
    expect(
        s,
        &b,
        StatusCode::UNPROCESSABLE_ENTITY,
        "checkpoint 'nowhere' not found",
    );
    let (s, b) = put(
        &server,
        &admin,
        "/v1/agents/PPO/config",
        json!({"hyperparameters": {}}),
    )
    .await;
    expect(
        s,
        &b,
        StatusCode::UNPROCESSABLE_ENTITY,
        "expected_version is required",
    );
    let (s, b) = put(
        &server,
        &admin,
        "/v1/agents/PPO/config",
        json!({"expected_version": 0, "hyperparameters": {"n_steps": -4}}),
    )
    .await;
    expect(s, &b, StatusCode::UNPROCESSABLE_ENTITY, "n_steps");
    assert_eq!(config_version(&server, &admin, "PPO").await, 0);
    let (s, _) = put(
        &server,
        &admin,
        "/v1/agents/PPO/config",
        json!({"expected_version": 0}),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (s, b) = put(
        &server,
        &admin,
        "/v1/agents/PPO/config",
        json!({"expected_version": 0}),
    )
    .await;
    expect(s, &b, StatusCode::CONFLICT, "is at config version 1, not 0");

    // act without a policy, with the wrong shape; rollback past the first version.
    let (s, b) = post(
        &server,
        &admin,
        "/v1/agents/PPO/act",
        json!({"observation": [0.0, 0.0, 0.0, 0.0]}),
    )
    .await;
    expect(s, &b, StatusCode::CONFLICT, "has no trained policy");
    let (s, b) = post(&server, &admin, "/v1/agents/PPO/act", json!({})).await;
    expect(
        s,
        &b,
        StatusCode::UNPROCESSABLE_ENTITY,
        "exactly one of observation",
    );
    let (s, b) = post(
        &server,
        &admin,
        "/v1/rollback",
        json!({"agent_type": "PPO"}),
    )
    .await;
    expect(
        s,
        &b,
        StatusCode::CONFLICT,
        "nothing before it to roll back to",
    );
    let (s, b) = post(
        &server,
        &admin,
        "/v1/rollback",
        json!({"agent_type": "PPO", "to_version": 7}),
    )
    .await;
    expect(
        s,
        &b,
        StatusCode::UNPROCESSABLE_ENTITY,
        "not an earlier version",
    );
    let (s, b) = post(
        &server,
        &admin,
        "/v1/rollback",
        json!({"agent_type": "A2C"}),
    )
    .await;
    expect(s, &b, StatusCode::NOT_FOUND, "A2C has no active config");
    assert_eq!(config_version(&server, &admin, "PPO").await, 1);

    // Roles: a viewer reads but neither proposes nor approves nor writes configs.
    let store = &server.running.as_ref().unwrap().state.service.store;
    let password = "long enough password";
    tars_server::auth::create_user(store, "vera", tars_server::auth::Role::Viewer, password)
        .await
        .unwrap();
    let viewer = server.token("vera", password).await;
    let (s, _) = post(
        &server,
        &viewer,
        "/v1/proposals",
        json!({"agent_type": "PPO"}),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = put(
        &server,
        &viewer,
        "/v1/agents/PPO/config",
        json!({"expected_version": 1}),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = post(
        &server,
        &viewer,
        "/v1/rollback",
        json!({"agent_type": "PPO"}),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = get(&server, &viewer, "/v1/agents/PPO/config").await;
    assert_eq!(s, StatusCode::OK);
    server.stop().await;
}

/// A config written by another process on the same database (the CLI, another replica) is
/// served here within `config_poll_ms`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_written_elsewhere_is_picked_up() {
    let server = Server::start("hs-poll", &[("config_poll_ms", "20")]).await;
    let admin = server.admin().await;
    let store = &server.running.as_ref().unwrap().state.service.store;
    for expected_version in 0..3 {
        let row = store
            .insert_config(&tars_store::NewConfig {
                agent_type: "A2C".into(),
                expected_version,
                hyperparameters: json!({"n_steps": 5 + expected_version}),
                checkpoint_id: None,
                environment: None,
                action: tars_store::ConfigAction::Set,
                proposal_id: None,
                restored_version: None,
                actor: "other-replica".into(),
                reason: None,
                transition: None,
            })
            .await
            .unwrap();
        let mut served = Value::Null;
        for _ in 0..100 {
            served =
                get(&server, &admin, "/v1/agents/A2C/config").await.1["served_version"].clone();
            if served == row.version {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(served, row.version);
    }
    server.stop().await;
}

/// Open proposals for one agent weighed by the Nash resolution, from their stored evaluations;
/// a proposal that was never evaluated is evaluated for the game.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nash_weighs_stored_proposals_and_evaluates_what_is_missing() {
    let server = Server::start("hs-nash", &[]).await;
    let admin = server.admin().await;
    let mut ids = Vec::new();
    let mut reasons = Vec::new();
    for lr in [0.001, 0.0003] {
        let (_, p) = post(&server, &admin, "/v1/proposals", ppo_proposal(lr)).await;
        let p = settled(&server, &admin, p["id"].as_str().unwrap()).await;
        ids.push(p["id"].clone());
        reasons.push(p["reason"].as_str().unwrap_or_default().to_string());
    }
    // HyperSync weighs open proposals for the admin once there are two.
    assert!(!reasons[0].contains("Nash"), "{}", reasons[0]);
    assert!(
        reasons[1].contains("2 proposals for PPO await approval; Nash recommends"),
        "{}",
        reasons[1]
    );
    let mut unevaluated = ppo_proposal(0.002);
    unevaluated["evaluate_before_apply"] = json!(false);
    let (status, p) = post(&server, &admin, "/v1/proposals", unevaluated).await;
    assert_eq!(status, StatusCode::CREATED, "{p}");
    assert_eq!(p["status"], "awaiting_approval");
    ids.push(p["id"].clone());
    // An earlier game's evaluation of that pair was cancelled: it is not the answer now, a
    // new job is (the key's next link).
    let key = format!("nash-{}-CartPole-v1", ids[2].as_str().unwrap());
    let (status, job) = json_of(
        server
            .client
            .post(server.url("/v1/evaluate"))
            .bearer_auth(&admin)
            .header("prefer", "respond-async")
            .header("idempotency-key", &key)
            .json(
                &json!({"agent_type": "PPO", "environments": ["CartPole-v1"],
                "quick_mode": false, "num_episodes": 5}),
            )
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{job}");
    let job_path = format!("/v1/jobs/{}", job["job_id"].as_str().unwrap());
    let (status, cancelled) = server.call(Method::DELETE, &admin, &job_path, None).await;
    assert_eq!(status, StatusCode::OK, "{cancelled}");
    for _ in 0..600 {
        if get(&server, &admin, &job_path).await.1["status"] == "cancelled" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        get(&server, &admin, &job_path).await.1["status"],
        "cancelled"
    );

    let (status, game) = post(
        &server,
        &admin,
        "/v1/nash/compute",
        json!({"agent_type": "PPO", "proposal_ids": ids}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{game}");
    assert_eq!(game["environments"], json!(["CartPole-v1"]));
    assert_eq!(game["scores"].as_array().unwrap().len(), 3);
    assert_eq!(
        game["evaluated"],
        json!([{"proposal_id": ids[2], "environment": "CartPole-v1"}])
    );
    let weights: Vec<f64> = serde_json::from_value(game["weights"].clone()).unwrap();
    assert!(
        (weights.iter().sum::<f64>() - 1.0).abs() < 1e-9,
        "{weights:?}"
    );
    let recommended = game["recommended"].as_u64().unwrap() as usize;
    assert_eq!(game["recommended_proposal"], ids[recommended]);
    // The recommendation is a best score on the only environment.
    let scores: Vec<Vec<f64>> = serde_json::from_value(game["scores"].clone()).unwrap();
    let best = scores.iter().map(|r| r[0]).fold(f64::MIN, f64::max);
    assert_eq!(scores[recommended][0], best, "{game}");

    let (status, err) = post(
        &server,
        &admin,
        "/v1/nash/compute",
        json!({"agent_type": "DQN", "proposal_ids": ids}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("is for PPO, not DQN")
    );
    server.stop().await;
}
