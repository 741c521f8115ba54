//! Training jobs over HTTP (issue 11: trainings go through the job queue): `POST /v1/train`
//! queues a real PPO training that a worker runs; its result names the checkpoint it wrote,
//! which loads (with `eval_freq`, the best policy's too); cancelling stops it; bad requests are 422s naming what is valid and store
//! nothing; an `Idempotency-Key` of an evaluation is not taken for a training.

mod common;

use common::Server;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

async fn wait_final(server: &Server, token: &str, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let (status, job) = server
            .call(Method::GET, token, &format!("/v1/jobs/{id}"), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{job}");
        if ["succeeded", "failed", "cancelled"].contains(&job["status"].as_str().unwrap()) {
            return job;
        }
        assert!(Instant::now() < deadline, "job {id} still {job}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_training_job_trains_and_keeps_a_loadable_checkpoint() {
    let server = Server::start("training", &[]).await;
    let admin = server.admin().await;
    let body = json!({"agent_type": "ppo", "environment": "CartPole-v1", "seed": 1,
        "total_timesteps": 20_000, "eval_episodes": 5});
    let (status, job) = server
        .call(Method::POST, &admin, "/v1/train", Some(body.clone()))
        .await;
    assert!(
        status == StatusCode::OK || status == StatusCode::ACCEPTED,
        "{status}: {job}"
    );
    assert_eq!(job["kind"], "training", "{job}");
    let id = job["job_id"].as_str().unwrap().to_string();
    let job = wait_final(&server, &admin, &id).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let result = &job["result"];
    assert_eq!(result["checkpoint_id"], format!("train-{id}"), "{job}");
    assert_eq!(
        (result["algo"].as_str(), result["env"].as_str()),
        (Some("PPO"), Some("CartPole-v1"))
    );
    assert_eq!(
        result["timesteps"], 20_224,
        "whole rollouts of 8 x 32 steps: {job}"
    );
    assert_eq!(result["eval_episodes"], 5);
    // Learning happened: random play scores ~22.
    let mean = result["eval_mean_reward"].as_f64().unwrap();
    assert!(mean > 100.0, "{job}");
    // The checkpoint loads and plays as the job said.
    let dir = server.dir.join("checkpoints").join(format!("train-{id}"));
    let (mut policy, metadata) = tars_server::service::read_checkpoint(&dir).unwrap();
    assert_eq!(metadata.algo, "PPO");
    let replay = tars_agents::evaluate(&mut policy, 5, 1 + 1_000_000, true).unwrap();
    assert_eq!(replay.mean_reward(), mean);
    // The same training again gives the same weights: deterministic, also when it evaluates
    // every 5,000 steps (SB3's EvalCallback) and keeps the best policy as a second checkpoint.
    let mut watched = body.clone();
    watched["eval_freq"] = json!(5_000);
    watched["eval_freq_episodes"] = json!(3);
    let (_, again) = server
        .call(Method::POST, &admin, "/v1/train", Some(watched))
        .await;
    let again_id = again["job_id"].as_str().unwrap().to_string();
    let again = wait_final(&server, &admin, &again_id).await;
    let again = &again["result"];
    assert_eq!(again["eval_mean_reward"], result["eval_mean_reward"]);
    assert_eq!(again["evaluations_during_training"], 4, "{again}");
    let best = &again["best"];
    let best_id = format!("train-{again_id}/best");
    assert_eq!(best["checkpoint_id"], best_id.as_str(), "{again}");
    let loaded = tars_server::service::load_checkpoint(&server.dir, &best_id).unwrap();
    assert_eq!(
        loaded.metadata.timesteps,
        best["timestep"].as_u64().unwrap()
    );
    let mut best_policy = loaded.policy;
    let replay = tars_agents::evaluate(&mut best_policy, 5, 1 + 1_000_000, true).unwrap();
    assert_eq!(
        replay.mean_reward(),
        best["eval_mean_reward"].as_f64().unwrap()
    );
    let metrics = server.metrics().await;
    assert!(
        metrics.contains("tars_jobs_total{status=\"succeeded\",kind=\"training\"} 2"),
        "{metrics}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_training_stops_and_writes_no_checkpoint() {
    let server = Server::start("training-cancel", &[]).await;
    let admin = server.admin().await;
    let body = json!({"agent_type": "dqn", "environment": "CartPole-v1"});
    let response = server
        .client
        .post(server.url("/v1/train"))
        .bearer_auth(&admin)
        .header("prefer", "respond-async")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let job: Value = response.json().await.unwrap();
    let id = job["job_id"].as_str().unwrap().to_string();
    // Running, with progress.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, job) = server
            .call(Method::GET, &admin, &format!("/v1/jobs/{id}"), None)
            .await;
        if job["progress"]["CartPole-v1"]["timesteps"].as_u64() > Some(0) {
            break;
        }
        assert!(Instant::now() < deadline, "no progress: {job}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, _) = server
        .call(Method::DELETE, &admin, &format!("/v1/jobs/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let job = wait_final(&server, &admin, &id).await;
    assert_eq!(job["status"], "cancelled", "{job}");
    assert!(job["result"].is_null(), "{job}");
    assert!(
        !server
            .dir
            .join("checkpoints")
            .join(format!("train-{id}"))
            .exists()
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_training_requests_are_refused_with_what_is_valid() {
    let server = Server::start("training-bad", &[]).await;
    let admin = server.admin().await;
    let cases = [
        (
            json!({"agent_type": "sac", "environment": "CartPole-v1"}),
            "sac",
        ),
        (
            json!({"agent_type": "ddpg", "environment": "CartPole-v1"}),
            "DDPG cannot train on CartPole-v1",
        ),
        (
            json!({"agent_type": "ppo", "environment": "CartPole-v1",
                   "hyperparameters": {"learning_rate": -1.0}}),
            "learning_rate",
        ),
        (
            json!({"agent_type": "ppo", "environment": "CartPole-v1", "eval_episodes": 0}),
            "eval_episodes must be between 1 and 10000",
        ),
        (
            json!({"agent_type": "ppo", "environment": "CartPole-v1", "epochs": 3}),
            "unknown field `epochs`",
        ),
        (
            json!({"agent_type": "ppo", "environment": "CartPole-v1", "eval_freq": 0}),
            "eval_freq must be at least 1 step",
        ),
        (
            json!({"agent_type": "ppo", "environment": "CartPole-v1", "eval_freq": 1000,
                   "eval_freq_episodes": 0}),
            "eval_freq_episodes must be between 1 and 10000, got 0",
        ),
    ];
    for (body, expected) in cases {
        let (status, error) = server
            .call(Method::POST, &admin, "/v1/train", Some(body.clone()))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {error}");
        let message = error["error"]["message"].as_str().unwrap();
        assert!(message.contains(expected), "{body}: {message}");
    }
    // A viewer may not train.
    let (status, _) = server
        .call(Method::POST, "not-a-token", "/v1/train", Some(json!({})))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // An evaluation's Idempotency-Key is not a training's.
    let evaluation = json!({"agent_type": "PPO", "environments": ["CartPole-v1"],
        "num_episodes": 2, "hyperparameters": {"n_timesteps": 2048}});
    let first = server
        .client
        .post(server.url("/v1/evaluate"))
        .bearer_auth(&admin)
        .header("prefer", "respond-async")
        .header("idempotency-key", "k-1")
        .json(&evaluation)
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), StatusCode::ACCEPTED);
    let reused = server
        .client
        .post(server.url("/v1/train"))
        .bearer_auth(&admin)
        .header("idempotency-key", "k-1")
        .json(&json!({"agent_type": "ppo", "environment": "CartPole-v1"}))
        .send()
        .await
        .unwrap();
    let (status, error) = common::json_of(reused).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Idempotency-Key 'k-1' was already used for a job of kind 'evaluation'"),
        "{error}"
    );
    server.stop().await;
}
