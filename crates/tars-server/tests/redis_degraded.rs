//! Redis down ⇒ the service degrades, it does not fail (issue 11): a server starts before its
//! private `redis-server`, which is then started, killed under it and started again on the
//! same port. Its own test binary:
//! it asserts the process-wide `tars_redis_up` gauge, which other tests' servers would move.
//!
//! Runs when `TARS_TEST_REDIS_URL` is set (the machine has Redis); skipped otherwise, unless
//! `CI` is set.

mod common;

use common::{Server, json_of, service_urls};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A `redis-server` of our own, without persistence, killed on drop.
struct PrivateRedis {
    child: Child,
    port: u16,
}

impl PrivateRedis {
    fn start(port: u16) -> PrivateRedis {
        let binary = ["/usr/bin/redis-server", "/usr/local/bin/redis-server"]
            .into_iter()
            .find(|path| std::path::Path::new(path).exists())
            .unwrap_or("redis-server");
        let child = Command::new(binary)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting redis-server (apt-get install redis-server)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not start on {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        PrivateRedis { child, port }
    }

    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    async fn keys(&self, pattern: &str) -> Vec<String> {
        let client = redis::Client::open(format!("redis://127.0.0.1:{}", self.port)).unwrap();
        let mut connection = client.get_multiplexed_async_connection().await.unwrap();
        redis::cmd("KEYS")
            .arg(pattern)
            .query_async(&mut connection)
            .await
            .unwrap()
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn health(server: &Server) -> Value {
    let response = server
        .client
        .get(server.url("/health"))
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(response).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "a degraded Redis is not a failed service: {body}"
    );
    body
}

/// `/health` until its `redis` field is `state`, for up to 10 s.
async fn health_until(server: &Server, state: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let body = health(server).await;
        if body["redis"] == state {
            return body;
        }
        assert!(Instant::now() < deadline, "redis never {state}: {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn gauge(metrics: &str) -> Option<&str> {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix("tars_redis_up "))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_11_redis_down_degrades_the_service_and_it_recovers_by_itself() {
    if service_urls(["TARS_TEST_REDIS_URL"]).is_none() {
        return;
    }
    // Redis is not there yet when the server starts: it starts degraded.
    let port = free_port();
    let url = format!("redis://127.0.0.1:{port}");
    let prefix = format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let server = Server::start(
        &format!("redis-degraded-{prefix}"),
        &[
            ("redis_url", url.as_str()),
            ("redis_prefix", prefix.as_str()),
            ("rate_limit_rps", "1000"),
            ("rate_limit_burst", "1000"),
        ],
    )
    .await;
    let body = health(&server).await;
    assert_eq!(body["redis"], "degraded", "{body}");
    assert!(
        body["redis_reason"].as_str().unwrap().contains("refused"),
        "{body}"
    );
    assert_eq!(gauge(&server.metrics().await), Some("0"));
    let token = server.admin().await;

    // Redis appears: the server connects by itself and caches.
    let redis = PrivateRedis::start(port);
    health_until(&server, "connected").await;
    assert_eq!(gauge(&server.metrics().await), Some("1"));
    let listing = "/v1/baselines/DQN?environment=CartPole-v1";
    let (status, rows) = server.call(Method::GET, &token, listing, None).await;
    assert_eq!((status, rows), (StatusCode::OK, json!([])));
    assert_eq!(redis.keys(&format!("{prefix}:baselines:*")).await.len(), 1);
    let baseline = |mean_reward: f64, rank: i32| {
        json!({"agent_type": "DQN", "environment": "CartPole-v1", "mean_reward": mean_reward,
               "std_reward": 1.0, "success_rate": 1.0, "rank": rank})
    };

    // Down: every request still answers, from the database and local buckets.
    redis.kill();
    for rank in 1..=3 {
        let (status, row) = server
            .call(
                Method::POST,
                &token,
                "/v1/baselines",
                Some(baseline(10.0 * f64::from(rank), rank)),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{row}");
        let (status, rows) = server.call(Method::GET, &token, listing, None).await;
        assert_eq!(status, StatusCode::OK, "{rows}");
        assert_eq!(
            rows.as_array().unwrap().len(),
            rank as usize,
            "read-after-write: {rows}"
        );
    }
    // The database alone dedupes Idempotency-Keys.
    let submit = || {
        server
            .client
            .post(server.url("/v1/evaluate"))
            .bearer_auth(&token)
            .header("prefer", "respond-async")
            .header("idempotency-key", "while-redis-is-down")
            .json(
                &json!({"agent_type": "PPO", "environments": ["CartPole-v1"],
                          "num_episodes": 3, "hyperparameters": {"n_timesteps": 512}}),
            )
            .send()
    };
    let (status, first) = json_of(submit().await.unwrap()).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{first}");
    let job = first["job_id"].as_str().unwrap();
    let (status, _) = server
        .call(Method::DELETE, &token, &format!("/v1/jobs/{job}"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, second) = json_of(submit().await.unwrap()).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{second}");
    assert_eq!(second["job_id"], first["job_id"]);

    let body = health_until(&server, "degraded").await;
    assert!(!body["redis_reason"].as_str().unwrap().is_empty(), "{body}");
    let metrics = server.metrics().await;
    assert_eq!(gauge(&metrics), Some("0"));
    assert!(metrics.contains("tars_redis_errors_total{op="), "{metrics}");

    // Back on the same port (empty: no persistence): connected again, caching again, and what
    // was written meanwhile is served.
    let redis = PrivateRedis::start(port);
    health_until(&server, "connected").await;
    assert_eq!(gauge(&server.metrics().await), Some("1"));
    let (status, rows) = server.call(Method::GET, &token, listing, None).await;
    assert_eq!(status, StatusCode::OK, "{rows}");
    assert_eq!(rows.as_array().unwrap().len(), 3, "{rows}");
    assert_eq!(redis.keys(&format!("{prefix}:baselines:*")).await.len(), 1);
    assert_eq!(
        redis.keys(&format!("{prefix}:rate:*")).await.len(),
        2,
        "ip and token buckets"
    );
    let dir = server.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}
