//! PostgreSQL unreachable ⇒ requests fail fast, then recover by themselves (issue 11): a server
//! talks to the real PostgreSQL (in a schema of the test's own) through a TCP proxy of the
//! test's, which is cut (every connection closed, new ones refused) and restored. While cut,
//! the process's `postgres` circuit breaker opens and requests answer 503 with `Retry-After`
//! at once, naming PostgreSQL; after the restore it closes and requests succeed again, and
//! everything written before the cut is still there. Conflicts and not-founds, which are
//! answers of a healthy database, never open it.
//!
//! Its own test binary: it asserts the process-wide breaker gauge, which other tests' servers
//! would move. Runs when `TARS_TEST_DATABASE_URL` is set; skipped otherwise, unless `CI` is set.

mod common;

use common::{PgSchema, Server};
use reqwest::{Method, StatusCode, header};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// A TCP proxy to PostgreSQL that can be cut and restored.
struct Proxy {
    addr: SocketAddr,
    upstream: String,
    accept: Mutex<Option<JoinHandle<()>>>,
    connections: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Proxy {
    async fn start(upstream: &str) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy = Proxy {
            addr: listener.local_addr().unwrap(),
            upstream: upstream.to_string(),
            accept: Mutex::new(None),
            connections: Arc::new(Mutex::new(Vec::new())),
        };
        proxy.serve(listener);
        proxy
    }

    fn serve(&self, listener: TcpListener) {
        let (upstream, connections) = (self.upstream.clone(), self.connections.clone());
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let upstream = upstream.clone();
                let connection = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                connections.lock().unwrap().push(connection);
            }
        });
        *self.accept.lock().unwrap() = Some(accept);
    }

    /// Closes every connection and the listening socket: new connections are refused.
    fn cut(&self) {
        if let Some(accept) = self.accept.lock().unwrap().take() {
            accept.abort();
        }
        for connection in self.connections.lock().unwrap().drain(..) {
            connection.abort();
        }
    }

    /// Listens on the same port again.
    async fn restore(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let listener = loop {
            // The aborted accept task drops its listener asynchronously.
            match TcpListener::bind(self.addr).await {
                Ok(listener) => break listener,
                Err(err) if Instant::now() < deadline => {
                    eprintln!("rebinding the proxy: {err}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(err) => panic!("rebinding the proxy on {}: {err}", self.addr),
            }
        };
        self.serve(listener);
    }
}

/// The value of `tars_circuit_breaker_state{dependency="postgres"}` (0 closed, 1 open,
/// 2 half-open).
async fn breaker_state(server: &Server) -> Option<f64> {
    let metrics = server.metrics().await;
    metrics.lines().find_map(|line| {
        let rest = line.strip_prefix("tars_circuit_breaker_state{")?;
        let (labels, value) = rest.split_once("} ")?;
        labels
            .contains("dependency=\"postgres\"")
            .then(|| value.trim().parse().unwrap())
    })
}

async fn baselines(server: &Server, token: &str) -> (StatusCode, Value, Option<String>, Duration) {
    let started = Instant::now();
    let response = server
        .client
        .get(server.url("/v1/baselines/PPO?environment=CartPole-v1"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let retry_after = response
        .headers()
        .get(header::RETRY_AFTER)
        .map(|v| v.to_str().unwrap().to_string());
    let (status, body) = common::json_of(response).await;
    (status, body, retry_after, started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn issue_11_postgres_cut_opens_the_breaker_requests_fail_fast_and_recover() {
    let Some(schema) = PgSchema::create("tars_outage").await else {
        return;
    };
    let id = schema.id.clone();
    // postgres://user@host:port/db?… → the proxy in place of host:port.
    let (scheme_user, rest) = (schema.server_url)
        .split_once('@')
        .expect("a URL with user@host");
    let (host_port, path) = rest.split_once('/').expect("a URL with a database");
    let proxy = Proxy::start(host_port).await;
    let database_url = schema.url_on(&format!("{scheme_user}@{}/{path}", proxy.addr));
    let server = Server::start(
        &format!("pg-outage-{id}"),
        &[
            ("database_url", database_url.as_str()),
            ("baseline_cache_ms", "0"),
            ("config_poll_ms", "600000"),
        ],
    )
    .await;
    let token = server.admin().await;

    // Written before the cut: five baselines and three config versions.
    for rank in 1..=5 {
        let (status, body) = server
            .call(
                Method::POST,
                &token,
                "/v1/baselines",
                Some(json!({"agent_type": "PPO", "environment": "CartPole-v1",
                            "mean_reward": 500.0 - f64::from(rank), "std_reward": 1.0,
                            "success_rate": 1.0, "rank": rank})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    for version in 1..=3 {
        let (status, body) = server
            .call(
                Method::PUT,
                &token,
                "/v1/agents/PPO/config",
                Some(json!({"expected_version": version - 1,
                            "hyperparameters": {"learning_rate": 0.001 * f64::from(version)}})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    // Answers of a healthy database, however many: the breaker stays closed.
    for _ in 0..10 {
        let (status, body) = server
            .call(
                Method::PUT,
                &token,
                "/v1/agents/PPO/config",
                Some(json!({"expected_version": 1, "hyperparameters": {"learning_rate": 0.01}})),
            )
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        let job = format!("/v1/jobs/{}", uuid::Uuid::new_v4());
        let (status, body) = server.call(Method::GET, &token, &job, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    }
    assert_eq!(breaker_state(&server).await, Some(0.0));
    let (status, before, _, _) = baselines(&server, &token).await;
    assert_eq!(status, StatusCode::OK, "{before}");
    assert_eq!(before.as_array().unwrap().len(), 5);

    proxy.cut();
    let cut_at = Instant::now();
    // Requests in parallel, as clients would send them, until the breaker answers for them.
    let server = Arc::new(server);
    let open = loop {
        let mut calls = Vec::new();
        for _ in 0..4 {
            let (server, token) = (server.clone(), token.clone());
            calls.push(tokio::spawn(
                async move { baselines(&server, &token).await },
            ));
        }
        let mut open = None;
        for call in calls {
            let (status, body, retry_after, took) = call.await.unwrap();
            assert_eq!(
                status,
                StatusCode::SERVICE_UNAVAILABLE,
                "PostgreSQL is cut: {body}"
            );
            assert!(retry_after.is_some(), "a 503 says when to retry: {body}");
            if body["error"]["details"]["breaker"] == "open" {
                open = Some((body, retry_after.unwrap(), took));
            }
        }
        if let Some(open) = open {
            break open;
        }
        assert!(
            cut_at.elapsed() < Duration::from_secs(60),
            "the breaker never opened"
        );
    };
    eprintln!(
        "breaker open {:.1} s after the cut",
        cut_at.elapsed().as_secs_f64()
    );
    let (body, retry_after, _) = open;
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("PostgreSQL"), "{message}");
    let seconds: u64 = retry_after.parse().unwrap();
    assert!((1..=3).contains(&seconds), "Retry-After {seconds}");
    assert!(
        message.contains(&format!("tried again in {seconds} s")),
        "{message}"
    );
    assert_eq!(body["error"]["code"], "unavailable");
    assert_eq!(breaker_state(&server).await, Some(1.0));
    // While open, nothing waits on the database (a call would take the pool's 5 s acquire
    // timeout while connections are refused): the answer is immediate.
    let (status, body, _, took) = baselines(&server, &token).await;
    if body["error"]["details"]["breaker"] == "open" {
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(took < Duration::from_secs(2), "failing fast took {took:?}");
        eprintln!(
            "a request while the breaker is open: 503 in {:.1} ms",
            took.as_secs_f64() * 1e3
        );
        // The AutoML routes go through the same breaker: no wait on the database either.
        let started = Instant::now();
        let (status, body) = server.call(Method::GET, &token, "/v1/studies", None).await;
        let took = started.elapsed();
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert_eq!(body["error"]["details"]["breaker"], "open", "{body}");
        assert!(
            took < Duration::from_secs(2),
            "GET /v1/studies took {took:?}"
        );
    }

    proxy.restore().await;
    let restored_at = Instant::now();
    let after = loop {
        let (status, body, _, _) = baselines(&server, &token).await;
        if status == StatusCode::OK {
            break body;
        }
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert!(
            restored_at.elapsed() < Duration::from_secs(30),
            "requests still fail 30 s after the restore: {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    eprintln!(
        "requests succeed {:.1} s after the restore",
        restored_at.elapsed().as_secs_f64()
    );
    assert_eq!(breaker_state(&server).await, Some(0.0));
    // Nothing written before the cut is lost.
    assert_eq!(after, before);
    let (status, config) = server
        .call(Method::GET, &token, "/v1/agents/PPO/config", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{config}");
    assert_eq!(config["version"], 3, "{config}");
    let (status, history) = server
        .call(Method::GET, &token, "/v1/agents/PPO/config/history", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{history}");
    assert_eq!(history.as_array().unwrap().len(), 3, "{history}");
    // And writes work again.
    let (status, body) = server
        .call(
            Method::PUT,
            &token,
            "/v1/agents/PPO/config",
            Some(json!({"expected_version": 3, "hyperparameters": {"learning_rate": 0.004}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let server = Arc::into_inner(server).expect("no request in flight");
    let _ = std::fs::remove_dir_all(server.stop().await);
    schema.drop().await;
}
