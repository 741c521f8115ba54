//! The service over real HTTP on an ephemeral port, each test with its own data directory:
//! the seed's verification section (000… §7.1 tests 1–4), auth failures, 409, 413, 429,
//! asynchronous jobs, idempotency, cancellation, restart recovery, traceparent, metrics and the
//! committed OpenAPI document.

mod common;

use common::{Server, json_of};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seeds_verification_section_replays_over_http() {
    let server = Server::start("seed", &[]).await;
    let c = &server.client;

    // Test 1: health.
    let (status, health) = json_of(c.get(server.url("/health")).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(health["status"], "healthy");
    assert_eq!(health["service"], "eval-engine");
    assert_eq!(health["database"], "connected");
    assert!(health["version"].is_string() && health["redis"].is_string());

    let token = server.admin().await;

    // Test 2: evaluate synchronously (the seed's body).
    let body = json!({
        "agent_type": "DQN", "agent_state": {},
        "hyperparameters": {"learning_rate": 0.001, "gamma": 0.99, "epsilon": 0.1},
        "environments": ["CartPole-v1"], "num_episodes": 10, "quick_mode": true,
        "compare_to_baseline": false
    });
    let (status, result) = json_of(
        c.post(server.url("/v1/evaluate"))
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{result}");
    assert!(result["results"][0]["metrics"]["mean_reward"].is_f64());
    assert_eq!(result["results"][0]["metrics"]["n_episodes"], 10);
    assert!(result["evaluation_id"].as_str().unwrap().len() == 36);

    // Test 3: a baseline, inserted with the seed's columns, then read back.
    let row = json!({"agent_type": "DQN", "environment": "CartPole-v1", "mean_reward": 450.0,
        "std_reward": 25.0, "success_rate": 0.95, "version": 12, "rank": 1,
        "hyperparameters": {"learning_rate": 0.001, "gamma": 0.99, "epsilon": 0.1}});
    let (status, created) = json_of(
        c.post(server.url("/v1/baselines"))
            .bearer_auth(&token)
            .json(&row)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let (status, baselines) = json_of(
        c.get(server.url("/v1/baselines/DQN?environment=CartPole-v1"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(baselines[0]["mean_reward"], 450.0);
    assert_eq!(baselines[0]["version"], 12);

    // The same rank again is a conflict; so is a promotion from a stale version.
    let (status, error) = json_of(
        c.post(server.url("/v1/baselines"))
            .bearer_auth(&token)
            .json(&row)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(error["error"]["code"], "conflict");
    let mut stale = row.clone();
    stale["expected_version"] = json!(11);
    let (status, error) = json_of(
        c.post(server.url("/v1/baselines"))
            .bearer_auth(&token)
            .json(&stale)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("is at version 12, not 11"),
        "{error}"
    );

    // Test 4: regression detection with the seed's bad hyperparameters.
    let bad = json!({
        "agent_type": "DQN", "agent_state": {},
        "hyperparameters": {"learning_rate": 0.5, "gamma": 0.5, "epsilon": 0.9},
        "environments": ["CartPole-v1"], "num_episodes": 50, "compare_to_baseline": true
    });
    let (status, result) = json_of(
        c.post(server.url("/v1/evaluate"))
            .bearer_auth(&token)
            .json(&bad)
            .send()
            .await
            .unwrap(),
    )
    .await;
    // The Zoo budget trains for longer than the wait limit on a loaded machine: then the
    // answer is 202 and the job carries the result.
    let result = if status == StatusCode::ACCEPTED {
        let job = result["job_id"].as_str().unwrap().to_string();
        let done = poll(&server, &token, &job).await;
        assert_eq!(done["status"], "succeeded", "{done}");
        done["result"].clone()
    } else {
        assert_eq!(status, StatusCode::OK, "{result}");
        result
    };
    assert_eq!(result["regression"]["detected"], true);
    assert_eq!(result["regression"]["should_rollback"], true);

    // Both evaluations are in the metrics.
    let metrics = server.metrics().await;
    for name in [
        "tars_eval_evaluations_total",
        "tars_eval_regression_detected_total",
        "tars_eval_duration_seconds",
        "tars_eval_episodes_total",
        "tars_http_requests_total",
    ] {
        assert!(metrics.contains(name), "{name} missing from /metrics");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_errors_body_limits_and_unknown_paths_are_api_errors() {
    let server = Server::start("errors", &[("max_body_bytes", "4096")]).await;
    let c = &server.client;
    let evaluate = |token: Option<&str>| {
        let request = c.post(server.url("/v1/evaluate")).json(&json!({
            "agent_type": "DQN", "environments": ["CartPole-v1"]}));
        match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    };
    let (status, error) = json_of(evaluate(None).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(error["error"]["code"], "unauthorized");
    let (status, _) = json_of(evaluate(Some("not.a.jwt")).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = json_of(
        c.post(server.url("/auth/login"))
            .json(&json!({"username": "admin", "password": "wrong"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let token = server.admin().await;
    let huge = "x".repeat(10_000);
    let (status, error) = json_of(
        c.post(server.url("/v1/evaluate"))
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(format!("{{\"agent_type\": \"{huge}\"}}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{error}");
    let (status, error) = json_of(
        c.post(server.url("/v1/evaluate"))
            .bearer_auth(&token)
            .json(&json!({"agent_type": "SAC", "environments": ["CartPole-v1"]}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("valid: DQN, A2C, PPO, DDPG, TD3")
    );
    let (status, _) = json_of(c.get(server.url("/nope")).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = json_of(
        c.get(server.url("/v1/jobs/not-a-uuid"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_answer_429_with_retry_after() {
    let server = Server::start(
        "ratelimit",
        &[("rate_limit_rps", "0.5"), ("rate_limit_burst", "3")],
    )
    .await;
    let get = |path: &'static str| server.client.get(server.url(path)).send();
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let response = get("/openapi.json").await.unwrap();
        statuses.push(response.status());
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            assert!(response.headers().get("retry-after").is_some());
        }
    }
    assert_eq!(&statuses[..3], [StatusCode::OK; 3]);
    assert_eq!(statuses[4], StatusCode::TOO_MANY_REQUESTS);
    // The operators' probes are never limited, even from an address that is.
    for path in ["/health", "/ready", "/metrics"] {
        for _ in 0..10 {
            assert_eq!(get(path).await.unwrap().status(), StatusCode::OK, "{path}");
        }
    }
    assert_eq!(
        get("/openapi.json").await.unwrap().status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    server.stop().await;
}

/// The job's view once it ended. The limit only stops a hung test: a Zoo-budget training
/// takes minutes on a loaded 2-core machine.
async fn poll(server: &Server, token: &str, job: &str) -> Value {
    for _ in 0..3000 {
        let (_, view) = json_of(
            server
                .client
                .get(server.url(&format!("/v1/jobs/{job}")))
                .bearer_auth(token)
                .send()
                .await
                .unwrap(),
        )
        .await;
        if ["succeeded", "failed", "cancelled"].contains(&view["status"].as_str().unwrap_or("")) {
            return view;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("job {job} did not finish within 300 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_jobs_are_idempotent_cancellable_and_traced() {
    let server = Server::start("jobs", &[]).await;
    let c = &server.client;
    let token = server.admin().await;
    let body = json!({"agent_type": "PPO", "environments": ["CartPole-v1"], "num_episodes": 5,
                      "hyperparameters": {"n_timesteps": 4096}});
    let submit = |key: &str| {
        c.post(server.url("/v1/evaluate"))
            .bearer_auth(&token)
            .header("prefer", "respond-async")
            .header("idempotency-key", key)
            .header(
                "traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            )
            .json(&body)
    };
    let response = submit("k-1").send().await.unwrap();
    let traceparent = response.headers()["traceparent"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(traceparent.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
    let (status, first) = json_of(response).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let job = first["job_id"].as_str().unwrap().to_string();
    assert_eq!(first["status_url"], format!("/v1/jobs/{job}"));
    let (_, again) = json_of(submit("k-1").send().await.unwrap()).await;
    assert_eq!(
        again["job_id"],
        job.as_str(),
        "same Idempotency-Key, same job"
    );
    let done = poll(&server, &token, &job).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["result"]["results"][0]["environment"], "CartPole-v1");

    // A long job, cancelled while it trains.
    let long = json!({"agent_type": "PPO", "environments": ["CartPole-v1"],
                      "hyperparameters": {"n_timesteps": 5000000}});
    let (_, submitted) = server.submit_async(&token, &long).await;
    let long_job = submitted["job_id"].as_str().unwrap().to_string();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (status, _) = json_of(
        c.delete(server.url(&format!("/v1/jobs/{long_job}")))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let ended = poll(&server, &token, &long_job).await;
    assert_eq!(ended["status"], "cancelled", "{ended}");
    let (status, _) = json_of(
        c.delete(server.url(&format!("/v1/jobs/{long_job}")))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "already cancelled");
    server.stop().await;

    // A submission the full queue refused leaves nothing behind its Idempotency-Key: the
    // retry that Retry-After asks for is a new attempt, not the refusal replayed.
    let server = Server::start("jobs-full", &[("queue_capacity", "1")]).await;
    let token = server.admin().await;
    let c = &server.client;
    let view = |job: String| {
        let request = c
            .get(server.url(&format!("/v1/jobs/{job}")))
            .bearer_auth(&token);
        async move { json_of(request.send().await.unwrap()).await.1 }
    };
    let cancel = |job: String| {
        let request = c
            .delete(server.url(&format!("/v1/jobs/{job}")))
            .bearer_auth(&token);
        async move { request.send().await.unwrap().status() }
    };
    let (_, running) = server.submit_async(&token, &long).await;
    let running = running["job_id"].as_str().unwrap().to_string();
    while view(running.clone()).await["status"] != "running" {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, queued) = server.submit_async(&token, &long).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{queued}");
    let queued = queued["job_id"].as_str().unwrap().to_string();
    let keyed = || {
        c.post(server.url("/v1/evaluate"))
            .bearer_auth(&token)
            .header("prefer", "respond-async")
            .header("idempotency-key", "k-full")
            .json(&body)
    };
    let refused = keyed().send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(refused.headers().contains_key("retry-after"));
    assert_eq!(cancel(queued.clone()).await, StatusCode::OK);
    assert_eq!(cancel(running.clone()).await, StatusCode::OK);
    poll(&server, &token, &running).await;
    let (status, retried) = json_of(keyed().send().await.unwrap()).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{retried}");
    let done = poll(&server, &token, retried["job_id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "succeeded", "a new attempt ran: {done}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_account_holds_at_most_its_share_of_the_queue() {
    let server = Server::start("jobs-share", &[("max_queued_per_principal", "2")]).await;
    let token = server.admin().await;
    let store = server.running.as_ref().unwrap().state.service.store.clone();
    tars_server::auth::create_user(
        &store,
        "olga",
        tars_server::auth::Role::Operator,
        "olga's password",
    )
    .await
    .unwrap();
    let olga = server.token("olga", "olga's password").await;
    let long = json!({"agent_type": "PPO", "environments": ["CartPole-v1"],
                      "hyperparameters": {"n_timesteps": 5000000}});
    let mut held = Vec::new();
    for _ in 0..2 {
        let (status, job) = server.submit_async(&token, &long).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{job}");
        held.push(job["job_id"].as_str().unwrap().to_string());
    }
    let keyed = |token: &str| {
        server
            .client
            .post(server.url("/v1/evaluate"))
            .bearer_auth(token)
            .header("prefer", "respond-async")
            .header("idempotency-key", "k-share")
            .json(&long)
    };
    let refused = keyed(&token).send().await.unwrap();
    assert!(refused.headers().contains_key("retry-after"));
    let (status, body) = json_of(refused).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["error"]["details"]["key"], "max_queued_per_principal");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("2 jobs queued or running")
    );
    // Another account's work is still accepted, and runs beside it.
    let (status, other) = json_of(keyed(&olga).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{other}");
    // Once one of its jobs ends, the account's retry with the same key is a new attempt.
    let (status, _) = server
        .call(
            reqwest::Method::DELETE,
            &token,
            &format!("/v1/jobs/{}", held[1]),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, retried) = json_of(keyed(&token).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{retried}");
    assert_ne!(retried["job_id"], other["job_id"]);
    for job in [
        &held[0],
        retried["job_id"].as_str().unwrap(),
        other["job_id"].as_str().unwrap(),
    ] {
        server
            .call(
                reqwest::Method::DELETE,
                &token,
                &format!("/v1/jobs/{job}"),
                None,
            )
            .await;
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn made_up_methods_and_paths_add_no_metric_series() {
    let server = Server::start("labels", &[]).await;
    for i in 0..1000 {
        let method = reqwest::Method::from_bytes(format!("X{i}").as_bytes()).unwrap();
        let response = server
            .client
            .request(method, server.url(&format!("/made/up/{i}")))
            .send()
            .await
            .unwrap();
        assert!(response.status().is_client_error(), "{}", response.status());
    }
    // The recorder is the process's: other tests add series meanwhile, none with a made-up
    // method or path.
    let metrics = server.metrics().await;
    let made_up: Vec<&str> = metrics
        .lines()
        .filter(|l| l.contains("method=\"X") || l.contains("/made/up"))
        .collect();
    assert!(made_up.is_empty(), "{made_up:?}");
    assert!(
        metrics.contains("method=\"other\",route=\"unmatched\""),
        "{metrics}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_left_by_a_stopped_server_run_after_a_restart() {
    let dir = std::env::temp_dir().join(format!("tars-api-restart-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    // A job stored as running, as a crash would leave it, and one still queued.
    {
        let store = tars_store::Store::connect(&format!("sqlite://{}/tars.db", dir.display()))
            .await
            .unwrap();
        for _ in 0..2 {
            let job = tars_store::NewJob {
                id: uuid::Uuid::new_v4(),
                kind: tars_store::JobKind::Evaluation,
                request: json!({"agent_type": "PPO", "environments": ["CartPole-v1"],
                                "num_episodes": 3, "hyperparameters": {"n_timesteps": 2048}}),
                principal: "admin".into(),
                idempotency_key: None,
            };
            store.insert_job(&job).await.unwrap();
        }
        let queued = store.requeue_unfinished().await.unwrap();
        assert!(store.claim_job(queued[0]).await.unwrap().is_some());
        store.close().await;
    }
    let server = Server::start_in(dir.clone(), &[]).await;
    let store = server.running.as_ref().unwrap().state.service.store.clone();
    for _ in 0..300 {
        if store.runs(10).await.unwrap().len() == 2 {
            server.stop().await;
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the resumed jobs did not run");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_never_get_a_5xx_and_store_nothing() {
    let server = Server::start("fuzz", &[("max_body_bytes", "8192")]).await;
    let c = &server.client;
    let token = server.admin().await;
    let mut rng = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let fragments = [
        "{",
        "}",
        "[",
        "]",
        "\"agent_type\"",
        ":",
        ",",
        "\"DQN\"",
        "null",
        "1e999",
        "-1",
        "\"environments\"",
        "[\"CartPole-v1\"]",
        "\"num_episodes\"",
        "0",
        "true",
        "\"\u{0}\"",
        "{\"agent_type\": 5}",
        "\"hyperparameters\"",
        "{\"gamma\": \"x\"}",
        "\"seed\"",
        "18446744073709551616",
    ];
    let paths = [
        "/v1/evaluate",
        "/v1/baselines",
        "/auth/login",
        "/auth/refresh",
    ];
    for i in 0..2000 {
        let mut body = String::new();
        for _ in 0..(next() % 12) {
            body.push_str(fragments[(next() % fragments.len() as u64) as usize]);
        }
        if i % 97 == 0 {
            body = "y".repeat(10_000);
        }
        let path = paths[(next() % paths.len() as u64) as usize];
        let mut request = c
            .post(server.url(path))
            .header("content-type", "application/json")
            .body(body.clone());
        if i % 3 != 0 {
            request = request.bearer_auth(&token);
        }
        let status = request.send().await.unwrap().status();
        assert!(
            !status.is_server_error(),
            "{path} with {body:?} answered {status}"
        );
    }
    let store = &server.running.as_ref().unwrap().state.service.store;
    assert!(
        store.runs(10).await.unwrap().is_empty(),
        "nothing evaluated"
    );
    assert!(
        store.baselines(None, None).await.unwrap().is_empty(),
        "nothing stored"
    );
    server.stop().await;
}

/// Work is sized before it is accepted: each of these would have aborted the process (a
/// 4 TB replay buffer) or held a worker for days; each is 422 with the estimate, the budget and
/// the key that raises it, and nothing is queued.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_work_is_refused_with_its_estimate_before_anything_is_queued() {
    let server = Server::start("budget", &[]).await;
    let token = server.admin().await;
    let post = reqwest::Method::POST;
    let cases = [
        (
            "/v1/evaluate",
            json!({"agent_type": "DQN", "environments": ["CartPole-v1"],
                   "hyperparameters": {"buffer_size": 1_000_000_000_000u64}}),
            "max_job_memory_bytes",
        ),
        (
            "/v1/evaluate",
            json!({"agent_type": "PPO", "environments": ["CartPole-v1"],
                   "hyperparameters": {"net_arch": vec![4096; 64]}}),
            "max_job_memory_bytes",
        ),
        (
            "/v1/evaluate",
            json!({"agent_type": "PPO", "environments": ["CartPole-v1"],
                   "hyperparameters": {"n_timesteps": 1e12}}),
            "max_job_env_steps",
        ),
        (
            "/v1/train",
            json!({"agent_type": "PPO", "environment": "CartPole-v1",
                   "total_timesteps": 1_000_000_000_000u64}),
            "max_job_env_steps",
        ),
        (
            "/v1/train",
            json!({"agent_type": "PPO", "environment": "CartPole-v1", "eval_freq": 1,
                   "eval_freq_episodes": 10_000, "eval_episodes": 10_000}),
            "max_job_env_steps",
        ),
        (
            "/v1/proposals",
            json!({"agent_type": "DQN", "proposed_hyperparameters": {"buffer_size": 1_000_000_000_000u64},
                   "environments": ["CartPole-v1"]}),
            "max_job_memory_bytes",
        ),
    ];
    for (path, body, key) in cases {
        let (status, error) = server
            .call(post.clone(), &token, path, Some(body.clone()))
            .await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{path} {body}: {error}"
        );
        let error = &error["error"];
        assert_eq!(error["code"], "over_budget", "{error}");
        assert_eq!(error["details"]["key"], key, "{error}");
        let (estimate, budget) = (&error["details"]["estimate"], &error["details"]["budget"]);
        assert!(
            estimate.as_u64().unwrap() > budget.as_u64().unwrap(),
            "{error}"
        );
        assert!(error["message"].as_str().unwrap().contains(key), "{error}");
    }
    let store = &server.running.as_ref().unwrap().state.service.store;
    assert!(
        store.runs(10).await.unwrap().is_empty(),
        "nothing evaluated"
    );
    assert!(
        store.queued_jobs().await.unwrap().is_empty(),
        "nothing queued"
    );
    let (_, proposals) = server
        .call(reqwest::Method::GET, &token, "/v1/proposals", None)
        .await;
    assert_eq!(proposals, json!([]), "nothing proposed");

    // The budget is configuration: a deployment lowers (or raises) it.
    let small = Server::start("budget-small", &[("max_job_memory_bytes", "1048576")]).await;
    let token = small.admin().await;
    let body = json!({"agent_type": "DQN", "environments": ["CartPole-v1"]});
    let (status, error) = small.call(post, &token, "/v1/evaluate", Some(body)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
    assert_eq!(error["error"]["details"]["budget"], 1_048_576, "{error}");
    small.stop().await;
    server.stop().await;
}

/// Nothing that reaches the port can hold it: 200 slowloris connections (headers one byte at
/// a time) and an idle keep-alive connection are closed once `header_read_timeout_seconds`
/// runs out, while normal requests are served; past `max_connections`, a new connection is
/// closed at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_idle_and_excess_connections_are_closed() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    /// Whether the server closed `stream` within `limit`, trickling `trickle` meanwhile.
    async fn closed_within(mut stream: TcpStream, trickle: bool, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        let mut buf = [0u8; 1024];
        loop {
            tokio::select! {
                read = stream.read(&mut buf) => match read {
                    Ok(0) | Err(_) => return true,
                    Ok(_) => {} // a 408 before the close
                },
                _ = tokio::time::sleep(Duration::from_millis(100)) => {
                    if trickle && stream.write_all(b"a").await.is_err() {
                        return true;
                    }
                }
                _ = tokio::time::sleep_until(deadline) => return false,
            }
        }
    }

    let server = Server::start(
        "slowloris",
        &[
            ("header_read_timeout_seconds", "1"),
            ("rate_limit_rps", "0"),
        ],
    )
    .await;
    let addr = server.running.as_ref().unwrap().addr;
    let mut slow = Vec::new();
    for _ in 0..200 {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"GET /health HTTP/1.1\r\nHost: t\r\nX-Slow: ")
            .await
            .unwrap();
        slow.push(tokio::spawn(closed_within(
            stream,
            true,
            Duration::from_secs(15),
        )));
    }
    // An idle keep-alive connection, after one answered request.
    let mut idle = TcpStream::connect(addr).await.unwrap();
    idle.write_all(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 4096];
    let n = idle.read(&mut buf).await.unwrap();
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
    let idle = tokio::spawn(closed_within(idle, false, Duration::from_secs(15)));
    // Meanwhile the service answers.
    for _ in 0..10 {
        let health = server
            .client
            .get(server.url("/health"))
            .send()
            .await
            .unwrap();
        assert_eq!(health.status(), StatusCode::OK);
    }
    for connection in slow {
        assert!(
            connection.await.unwrap(),
            "a slowloris connection stayed open"
        );
    }
    assert!(idle.await.unwrap(), "an idle connection stayed open");
    server.stop().await;

    let server = Server::start("max-connections", &[("max_connections", "4")]).await;
    let addr = server.running.as_ref().unwrap().addr;
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(TcpStream::connect(addr).await.unwrap());
    }
    let excess = TcpStream::connect(addr).await.unwrap();
    assert!(
        closed_within(excess, false, Duration::from_secs(5)).await,
        "the fifth connection was kept"
    );
    drop(held);
    // The slots come back as the connections close.
    let mut answered = false;
    for _ in 0..100 {
        if let Ok(health) = server.client.get(server.url("/health")).send().await {
            answered = health.status() == StatusCode::OK;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(answered);
    server.stop().await;
}

#[test]
fn the_committed_openapi_document_matches_the_code() {
    let generated = serde_json::to_string_pretty(&tars_server::api_doc::openapi()).unwrap() + "\n";
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/api/openapi.json");
    if std::env::var_os("TARS_UPDATE_OPENAPI").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "docs/api/openapi.json is stale; regenerate it with \
         TARS_UPDATE_OPENAPI=1 cargo test -p tars-server --test api openapi"
    );
    for path in [
        "/v1/evaluate",
        "/v1/jobs/{job_id}",
        "/v1/baselines",
        "/health",
        "/auth/login",
    ] {
        assert!(
            generated.contains(path),
            "{path} missing from the OpenAPI document"
        );
    }

    // What client generators need: unique operation ids, resource tags, a description on every
    // response, the error body on every error, and query parameters declared as such.
    let document: Value = serde_json::from_str(&generated).unwrap();
    let mut ids = std::collections::BTreeSet::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let at = format!("{method} {path}");
            let id = operation["operationId"].as_str().unwrap();
            assert!(ids.insert(id.to_string()), "{at}: operationId {id} repeats");
            let tags = operation["tags"].as_array().unwrap();
            assert!(
                tags.len() == 1 && !tags[0].as_str().unwrap().contains("::"),
                "{at}: {tags:?}"
            );
            for parameter in operation["parameters"].as_array().into_iter().flatten() {
                let name = parameter["name"].as_str().unwrap();
                let templated = path.contains(&format!("{{{name}}}"));
                assert_eq!(
                    parameter["in"] == "path",
                    templated,
                    "{at}: parameter {name}"
                );
            }
            for (status, response) in operation["responses"].as_object().unwrap() {
                let described = response["description"].as_str().unwrap_or_default();
                assert!(!described.is_empty(), "{at} {status}: no description");
                if status.starts_with('4') || status.starts_with('5') {
                    assert!(
                        response["content"].is_object(),
                        "{at} {status}: no body schema"
                    );
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nash_compute_solves_games_and_sets_the_gauges() {
    let server = Server::start("nash", &[]).await;
    let c = &server.client;
    let token = server.admin().await;
    let post = |body: Value| {
        c.post(server.url("/v1/nash/compute"))
            .bearer_auth(&token)
            .json(&body)
            .send()
    };
    // Battle of the sexes: two pure equilibria and one mixed, all found.
    let (status, solved) = json_of(
        post(json!({"payoffs": {"row": [[3, 0], [0, 2]], "col": [[2, 0], [0, 3]]}}))
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{solved}");
    assert_eq!(solved["equilibria"].as_array().unwrap().len(), 3);
    assert_eq!(solved["complete"], true);
    assert!(solved["nash_conv"].as_f64().unwrap().abs() < 1e-9);

    // Proposals × environments: one proposal best everywhere ⇒ no conflict.
    let (status, report) = json_of(
        post(
            json!({"agent_type": "PPO", "scores": [[1.0, 0.9], [0.5, 0.4]],
                    "environments": ["CartPole-v1", "Acrobot-v1"]}),
        )
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["recommended"], 0);
    assert!(report["conflict"].as_f64().unwrap().abs() < 1e-9);
    let metrics = server.metrics().await;
    assert!(
        metrics.contains("tars_nash_stability{agent_type=\"PPO\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("tars_nash_conflict{agent_type=\"PPO\"}"));

    // Labels come from a closed set: 1,000 made-up agent names add no series.
    let series = |text: &str| text.lines().filter(|l| l.starts_with("tars_nash_")).count();
    let before = series(&metrics);
    for i in 0..1000 {
        let body = json!({"agent_type": format!("agent-{i}-{}", "x".repeat(200)),
                          "scores": [[1.0, 0.9], [0.5, 0.4]]});
        let (status, error) = json_of(post(body).await.unwrap()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
    }
    assert_eq!(series(&server.metrics().await), before);

    // Heavy work waits for no one: with every CPU slot taken, 503 and Retry-After at once.
    let cpu = server.running.as_ref().unwrap().state.cpu.clone();
    let slots = cpu.available_permits() as u32;
    let taken = cpu.try_acquire_many(slots).unwrap();
    let busy = post(json!({"scores": [[1.0]]})).await.unwrap();
    assert_eq!(busy.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(busy.headers()["retry-after"], "1");
    drop(taken);
    let (status, _) = json_of(post(json!({"scores": [[1.0]]})).await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);

    for (body, message) in [
        (json!({"proposal_ids": ["p1"]}), "is not a UUID"),
        (json!({"proposal_ids": []}), "1 to 20 proposals"),
        (json!({"payoffs": {"row": [[1, 2], [3]]}}), "row"),
        (json!({}), "exactly one of"),
        (
            json!({"payoffs": {"row": [[1e308, 0], [0, -1e308]]}}),
            "magnitude at most 1e12",
        ),
        (
            json!({"scores": vec![vec![1.0; 2]; 257]}),
            "at most 256×256 is accepted (max_nash_actions)",
        ),
        (
            json!({"payoffs": {"row": vec![vec![1.0; 300]; 2]}}),
            "max_nash_actions",
        ),
    ] {
        let (status, error) = json_of(post(body.clone()).await.unwrap()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {error}");
        assert!(
            error["error"]["message"]
                .as_str()
                .unwrap()
                .contains(message),
            "{error}"
        );
    }
    server.stop().await;
}

/// `GET /v1/baselines` answers from memory, so every write path of the process must clear
/// the cache: a listing read right after an insert, a promotion over HTTP and a promotion of a
/// stored result shows the write. The cache is made to live an hour so that only
/// invalidation can make this pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baselines_are_read_back_at_once_after_every_write() {
    let server = Server::start("baseline-cache", &[("baseline_cache_ms", "3600000")]).await;
    let c = &server.client;
    let token = server.admin().await;
    let list = |path: &'static str| {
        let request = c.get(server.url(path)).bearer_auth(&token);
        async move {
            let (status, body) = json_of(request.send().await.unwrap()).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            body.as_array()
                .unwrap()
                .iter()
                .map(|row| {
                    (
                        row["rank"].as_i64().unwrap(),
                        row["mean_reward"].as_f64().unwrap(),
                    )
                })
                .collect::<Vec<_>>()
        }
    };
    let pair = "/v1/baselines/PPO?environment=CartPole-v1";
    let all = "/v1/baselines/PPO";
    // Both listings cached while empty.
    assert_eq!(list(pair).await, []);
    assert_eq!(list(all).await, []);

    let post = |body: Value| {
        let request = c.post(server.url("/v1/baselines")).bearer_auth(&token);
        async move {
            let (status, body) = json_of(request.json(&body).send().await.unwrap()).await;
            assert_eq!(status, StatusCode::CREATED, "{body}");
        }
    };
    post(
        json!({"agent_type": "PPO", "environment": "CartPole-v1", "mean_reward": 400.0,
                "std_reward": 20.0, "success_rate": 0.9, "version": 1, "rank": 1}),
    )
    .await;
    assert_eq!(list(pair).await, [(1, 400.0)], "read after insert");
    assert_eq!(list(all).await, [(1, 400.0)]);

    post(
        json!({"agent_type": "PPO", "environment": "CartPole-v1", "mean_reward": 480.0,
                "std_reward": 10.0, "success_rate": 1.0, "rank": 1, "expected_version": 1}),
    )
    .await;
    assert_eq!(
        list(pair).await,
        [(1, 480.0), (2, 400.0)],
        "read after promotion"
    );

    // A stored evaluation result promoted through the service (`tars baseline promote` and
    // `bootstrap` take this path).
    let (status, result) = json_of(
        c.post(server.url("/v1/evaluate"))
            .bearer_auth(&token)
            .json(
                &json!({"agent_type": "PPO", "environments": ["CartPole-v1"],
                          "num_episodes": 3, "hyperparameters": {"n_timesteps": 512}}),
            )
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{result}");
    let result_id: uuid::Uuid = result["results"][0]["result_id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let mean = result["results"][0]["metrics"]["mean_reward"]
        .as_f64()
        .unwrap();
    let service = server.running.as_ref().unwrap().state.service.clone();
    service
        .promote(result_id, Some(1), None, Some("test".into()))
        .await
        .unwrap();
    assert_eq!(
        list(pair).await,
        [(1, mean), (2, 480.0), (3, 400.0)],
        "read after promoting a result"
    );

    // A write by another process is not seen here until the cache is cleared (or expires):
    // the seam fleet mode's notices will use.
    assert_eq!(list(all).await.len(), 3);
    service
        .store
        .insert_baseline(&tars_store::NewBaseline {
            agent_type: "PPO".into(),
            environment: "Acrobot-v1".into(),
            mean_reward: -80.0,
            std_reward: 5.0,
            success_rate: 1.0,
            hyperparameters: json!({}),
            version: 1,
            rank: 1,
        })
        .await
        .unwrap();
    assert_eq!(list(all).await.len(), 3, "still the cached listing");
    service.invalidate_baselines().await;
    assert_eq!(list(all).await.len(), 4);
    server.stop().await;
}

/// A graceful stop lets the running job finish within the drain time and answers its waiting
/// request with the result; a job still queued does not start and stays queued in the store.
/// (`tars-cli`'s `serve_cli` covers the other branch: a job past the drain time is re-queued.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_finishes_the_running_job_and_leaves_queued_ones_queued() {
    let server = Server::start(
        "drain",
        &[("shutdown_timeout_seconds", "120"), ("job_workers", "1")],
    )
    .await;
    let c = server.client.clone();
    let token = server.admin().await;
    let running = json!({"agent_type": "PPO", "environments": ["CartPole-v1"], "num_episodes": 5,
                         "hyperparameters": {"n_timesteps": 40000}});
    let in_flight = {
        let request = c
            .post(server.url("/v1/evaluate"))
            .bearer_auth(&token)
            .header("idempotency-key", "drain-running")
            .json(&running);
        tokio::spawn(async move { json_of(request.send().await.unwrap()).await })
    };
    // The same Idempotency-Key names the first job; once it trains, queue a second and stop.
    loop {
        let (_, view) = json_of(
            c.post(server.url("/v1/evaluate"))
                .bearer_auth(&token)
                .header("idempotency-key", "drain-running")
                .header("prefer", "respond-async")
                .json(&running)
                .send()
                .await
                .unwrap(),
        )
        .await;
        if view["status"] == "running" {
            break;
        }
        assert_eq!(view["status"], "queued", "{view}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let quick = json!({"agent_type": "PPO", "environments": ["CartPole-v1"], "num_episodes": 3,
                       "hyperparameters": {"n_timesteps": 512}});
    let (status, queued) = server.submit_async(&token, &quick).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{queued}");
    let queued_id: uuid::Uuid = queued["job_id"].as_str().unwrap().parse().unwrap();
    let dir = server.stop().await;
    let (status, result) = in_flight.await.unwrap();
    assert_eq!(
        status,
        StatusCode::OK,
        "finished within the drain: {result}"
    );
    assert_eq!(result["results"][0]["environment"], "CartPole-v1");
    let store = tars_store::Store::connect(&format!("sqlite://{}/tars.db", dir.display()))
        .await
        .unwrap();
    let row = store.job(queued_id).await.unwrap().unwrap();
    assert_eq!(
        (row.status, row.attempts),
        (tars_store::JobStatus::Queued, 0),
        "not started by the stopping server"
    );
    store.close().await;
}

/// `/metrics` as Prometheus' own linter reads it: a `# HELP` and a `# TYPE` for every metric,
/// and `promtool check metrics` (Debian's prometheus package; `.ci/run` installs it) finds
/// nothing to report.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metrics_pass_promtool_check_metrics() {
    let server = Server::start("promtool", &[]).await;
    let token = server.admin().await;
    let quick = json!({"agent_type": "PPO", "environments": ["CartPole-v1"], "num_episodes": 2,
                       "hyperparameters": {"n_timesteps": 256, "n_steps": 32, "n_envs": 2, "batch_size": 32}});
    let (status, body) = server
        .call(reqwest::Method::POST, &token, "/v1/evaluate", Some(quick))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // A pair's series exist from its first baseline, before it is evaluated.
    let baseline = json!({"agent_type": "TD3", "environment": "Pendulum-v1", "mean_reward": -150.0,
                          "std_reward": 20.0, "success_rate": 0.9, "rank": 1});
    let (status, body) = server
        .call(
            reqwest::Method::POST,
            &token,
            "/v1/baselines",
            Some(baseline),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let metrics = server.metrics().await;
    for series in [
        "tars_eval_regression_detected_total{agent_type=\"TD3\",environment=\"Pendulum-v1\",severity=\"critical\"} 0",
        "tars_eval_evaluations_total{agent_type=\"TD3\",environment=\"Pendulum-v1\",status=\"ok\"} 0",
        "tars_eval_duration_seconds_bucket{agent_type=\"TD3\",environment=\"Pendulum-v1\",le=\"600\"} 0",
    ] {
        assert!(metrics.contains(series), "{series} missing:\n{metrics}");
    }
    server.stop().await;
    let mut typed = std::collections::BTreeSet::new();
    let mut helped = std::collections::BTreeSet::new();
    for line in metrics.lines() {
        let mut words = line.split_whitespace();
        match (words.next(), words.next(), words.next()) {
            (Some("#"), Some("TYPE"), Some(name)) => typed.insert(name.to_string()),
            (Some("#"), Some("HELP"), Some(name)) => helped.insert(name.to_string()),
            _ => false,
        };
    }
    assert!(typed.contains("tars_eval_evaluations_total"), "{metrics}");
    assert_eq!(typed, helped, "every metric has its HELP");
    // Known series exist before their first event, latencies are histograms, and the process
    // reports itself.
    for series in [
        "tars_jobs_total{status=\"failed\",kind=\"training\"}",
        "tars_eval_policy_cache_lookups_total{result=\"hit\"}",
        "tars_hypersync_rollbacks_total{agent_type=\"TD3\",trigger=\"manual\"}",
        "tars_eval_duration_seconds_bucket{agent_type=\"PPO\",environment=\"CartPole-v1\",le=\"600\"}",
        "tars_http_request_duration_seconds_bucket{",
        "tars_db_query_duration_seconds_bucket{le=\"0.001\"}",
        "tars_build_info{version=",
        "process_resident_memory_bytes ",
        "process_start_time_seconds ",
    ] {
        assert!(metrics.contains(series), "{series} missing:\n{metrics}");
    }

    let promtool = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let mut promtool = match promtool {
        Ok(child) => child,
        Err(error) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "promtool must be installed in CI (Debian package prometheus): {error}"
            );
            eprintln!("skipping promtool check metrics: {error}");
            return;
        }
    };
    use std::io::Write;
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(metrics.as_bytes())
        .unwrap();
    let output = promtool.wait_with_output().unwrap();
    let report = String::from_utf8_lossy(&output.stdout).to_string()
        + &String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && report.trim().is_empty(),
        "{report}"
    );
}

/// `GET /docs`: the reference page, its script and style come from the server itself, under a
/// policy that forbids anything else; the script renders `/openapi.json`, whose request bodies
/// carry examples.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_reference_page_is_served_whole_from_the_server() {
    let server = Server::start("docs", &[]).await;
    let mut assets = Vec::new();
    for (path, content_type) in [
        ("/docs", "text/html"),
        ("/docs/docs.js", "text/javascript"),
        ("/docs/docs.css", "text/css"),
    ] {
        let response = server.client.get(server.url(path)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let headers = response.headers().clone();
        assert!(
            headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with(content_type)
        );
        assert_eq!(headers["content-security-policy"], "default-src 'self'");
        let text = response.text().await.unwrap();
        assert!(
            !text.contains("http://") && !text.contains("https://"),
            "{path} fetches from elsewhere"
        );
        assets.push(text);
    }
    assert!(assets[0].contains(r#"<script src="/docs/docs.js">"#));
    assert!(assets[0].contains(r#"href="/docs/docs.css""#));
    assert!(assets[1].contains(r#"fetch("/openapi.json")"#));
    let (status, document) = json_of(
        server
            .client
            .get(server.url("/openapi.json"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    for path in [
        "/v1/evaluate",
        "/v1/train",
        "/v1/baselines",
        "/v1/nash/compute",
        "/auth/login",
    ] {
        let example = &document["paths"][path]["post"]["requestBody"]["content"]["application/json"]
            ["example"];
        assert!(example.is_object(), "{path} has no request example");
    }
    server.stop().await;
}

/// Past work is found again: `GET /v1/runs` and `GET /v1/jobs` page by cursor and filter, and
/// `GET /v1/runs/{run_id}` answers the stored response.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_runs_and_jobs_are_listed_filtered_and_paged() {
    let server = Server::start("history", &[]).await;
    let token = server.admin().await;
    let quick = |env: &str| {
        json!({"agent_type": "PPO", "environments": [env], "num_episodes": 2,
               "hyperparameters": {"n_timesteps": 256, "n_steps": 32, "n_envs": 2, "batch_size": 32}})
    };
    let mut evaluated = Vec::new();
    for env in ["CartPole-v1", "Acrobot-v1", "CartPole-v1"] {
        let (status, body) = server
            .call(
                reqwest::Method::POST,
                &token,
                "/v1/evaluate",
                Some(quick(env)),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        evaluated.push(body["evaluation_id"].as_str().unwrap().to_string());
    }
    let get = |path: String| {
        let (server, token) = (&server, &token);
        async move { server.call(reqwest::Method::GET, token, &path, None).await }
    };

    let (status, first) = get("/v1/runs?limit=2".into()).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first["runs"].as_array().unwrap().len(), 2);
    let cursor = first["next_cursor"].as_str().unwrap();
    let (_, second) = get(format!("/v1/runs?limit=2&cursor={cursor}")).await;
    assert_eq!(second["runs"].as_array().unwrap().len(), 1);
    assert!(second["next_cursor"].is_null());
    let mut listed: Vec<String> = first["runs"]
        .as_array()
        .unwrap()
        .iter()
        .chain(second["runs"].as_array().unwrap())
        .map(|run| run["run_id"].as_str().unwrap().to_string())
        .collect();
    listed.sort();
    evaluated.sort();
    assert_eq!(listed, evaluated);
    let run = &first["runs"][0];
    assert_eq!(run["agent_type"], "PPO");
    assert!(run["results"][0]["mean_reward"].is_number(), "{run}");
    assert!(run["results"][0]["result_id"].is_string(), "{run}");

    let (_, acrobot) = get("/v1/runs?environment=Acrobot-v1&agent_type=ppo".into()).await;
    assert_eq!(acrobot["runs"].as_array().unwrap().len(), 1, "{acrobot}");
    let (status, stored) = get(format!("/v1/runs/{}", evaluated[0])).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(stored["evaluation_id"], evaluated[0].as_str());

    let (status, jobs) =
        get("/v1/jobs?kind=evaluation&status=succeeded&agent_type=PPO".into()).await;
    assert_eq!(status, StatusCode::OK, "{jobs}");
    let jobs = jobs["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 3);
    assert!(
        jobs.iter()
            .all(|job| job["run_id"].is_string() && job["principal"] == "admin")
    );
    let (_, none) = get("/v1/jobs?status=failed".into()).await;
    assert!(none["jobs"].as_array().unwrap().is_empty());

    for (path, message) in [
        ("/v1/jobs?kind=study", "valid: evaluation, training, trial"),
        (
            "/v1/jobs?status=done",
            "valid: queued, running, succeeded, failed, cancelled",
        ),
        (
            "/v1/jobs?environment=CartPole-v1",
            "use GET /v1/runs?environment=",
        ),
        ("/v1/runs?status=failed", "status filters jobs, not runs"),
        (
            "/v1/runs?cursor=nonsense",
            "pass the next_cursor of the previous page",
        ),
        ("/v1/runs?limit=0", "use 1 to 200"),
        ("/v1/runs?since=yesterday", "is not an RFC 3339 time"),
    ] {
        let (status, body) = get(path.into()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{path}: {body}");
        let text = body["error"]["message"].as_str().unwrap();
        assert!(text.contains(message), "{path}: {text}");
    }
    let (status, _) = get(format!("/v1/runs/{}", uuid::Uuid::new_v4())).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    server.stop().await;
}
