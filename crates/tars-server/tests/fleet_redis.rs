//! Fleet mode's Redis (issue 11) with two API replicas on one PostgreSQL schema and one Redis:
//! a baseline or config written through one replica is read through the other at once, a
//! rate-limit burst is shared, and an `Idempotency-Key` gives the same job on both.
//!
//! Each test has its own schema and Redis key prefix. Without `TARS_TEST_DATABASE_URL` and
//! `TARS_TEST_REDIS_URL` the tests are skipped, unless `CI` is set; with them set, a server
//! that is down fails them.

mod common;

use common::{PgSchema, Server, json_of, service_urls};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// Two replicas (A, then B with `b_extra` on top) sharing a fresh schema and a Redis prefix.
struct Fleet {
    a: Server,
    b: Server,
    redis: redis::aio::MultiplexedConnection,
    prefix: String,
    schema: PgSchema,
}

impl Fleet {
    async fn start(
        extra: &[(&'static str, &str)],
        b_extra: &[(&'static str, &str)],
    ) -> Option<Fleet> {
        let [server_url, redis_url] =
            service_urls(["TARS_TEST_DATABASE_URL", "TARS_TEST_REDIS_URL"])?;
        let schema = PgSchema::create_on(server_url, "tars_redis").await;
        let id = schema.id.clone();
        let database_url = schema.url();
        let prefix = format!("t{}", &id[..12]);
        let mut values = vec![
            ("database_url", database_url.as_str()),
            ("redis_url", redis_url.as_str()),
            ("redis_prefix", prefix.as_str()),
        ];
        values.extend_from_slice(extra);
        let a = Server::start(&format!("redis-a-{id}"), &values).await;
        values.extend_from_slice(b_extra);
        let b = Server::start(&format!("redis-b-{id}"), &values).await;
        let redis = redis::Client::open(redis_url.as_str())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .expect("connecting to TARS_TEST_REDIS_URL");
        Some(Fleet {
            a,
            b,
            redis,
            prefix,
            schema,
        })
    }

    /// The Redis keys under this test's prefix matching `pattern`.
    async fn keys(&mut self, pattern: &str) -> Vec<String> {
        redis::cmd("KEYS")
            .arg(format!("{}:{pattern}", self.prefix))
            .query_async(&mut self.redis)
            .await
            .unwrap()
    }

    async fn stop(mut self) {
        let keys = self.keys("*").await;
        if !keys.is_empty() {
            redis::cmd("DEL")
                .arg(keys)
                .query_async::<()>(&mut self.redis)
                .await
                .unwrap();
        }
        for dir in [self.a.stop().await, self.b.stop().await] {
            let _ = std::fs::remove_dir_all(dir);
        }
        self.schema.drop().await;
    }
}

async fn health(server: &Server) -> Value {
    let response = server
        .client
        .get(server.url("/health"))
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(response).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// Issue 11: "a baseline written through one is read through the other at once
/// (read-after-write)". B keeps listings in memory for ten minutes, so only Redis can make the
/// new rows visible there; B reads before every write, so each write has a cached listing to
/// invalidate. The same for the active config, which B's live agents also pick up from A's
/// notice on `<prefix>:invalidate`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_11_a_write_through_one_replica_is_read_through_the_other_at_once() {
    // B polls for config changes every ten minutes: only A's notice can swap them in.
    let b_extra = [
        ("baseline_cache_ms", "600000"),
        ("config_poll_ms", "600000"),
    ];
    let Some(mut fleet) = Fleet::start(&[], &b_extra).await else {
        return;
    };
    let (a, b) = (&fleet.a, &fleet.b);
    assert_eq!(health(a).await["redis"], "connected");
    assert_eq!(health(b).await["redis"], "connected");
    let (token_a, token_b) = (a.admin().await, b.admin().await);
    let listing = "/v1/baselines/PPO?environment=CartPole-v1";

    let mut version = 0;
    for write in 1..=50 {
        let (status, before) = b.call(Method::GET, &token_b, listing, None).await;
        assert_eq!(status, StatusCode::OK, "{before}");
        assert_eq!(before.as_array().unwrap().len(), write - 1);
        let mean_reward = 100.0 + write as f64;
        let (status, row) = a
            .call(
                Method::POST,
                &token_a,
                "/v1/baselines",
                Some(json!({"agent_type": "PPO", "environment": "CartPole-v1",
                            "mean_reward": mean_reward, "std_reward": 1.0, "success_rate": 1.0,
                            "expected_version": version})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{row}");
        version = row["version"].as_i64().unwrap();
        let (status, after) = b.call(Method::GET, &token_b, listing, None).await;
        assert_eq!(status, StatusCode::OK, "{after}");
        assert_eq!(
            after.as_array().unwrap().len(),
            write,
            "write {write}: {after}"
        );
        assert_eq!(
            after[0]["mean_reward"],
            json!(mean_reward),
            "write {write}: {after}"
        );
        assert_eq!(after[0]["version"], json!(version));
    }
    // The listing lives in Redis, not only in B's memory.
    let cached = fleet.keys("baselines:PPO:CartPole-v1").await;
    assert_eq!(cached.len(), 1, "{cached:?}");

    // The active config: written through A, read through B at once.
    let (a, b) = (&fleet.a, &fleet.b);
    for version in 1..=5 {
        let (status, view) = b
            .call(Method::GET, &token_b, "/v1/agents/PPO/config", None)
            .await;
        if version == 1 {
            assert_eq!(status, StatusCode::NOT_FOUND, "{view}");
        } else {
            assert_eq!(view["version"], json!(version - 1), "{view}");
        }
        let (status, row) = a
            .call(
                Method::PUT,
                &token_a,
                "/v1/agents/PPO/config",
                Some(json!({"expected_version": version - 1,
                            "hyperparameters": {"learning_rate": 0.001 * f64::from(version)}})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{row}");
        let (status, view) = b
            .call(Method::GET, &token_b, "/v1/agents/PPO/config", None)
            .await;
        assert_eq!(status, StatusCode::OK, "{view}");
        assert_eq!(view["version"], json!(version), "{view}");
        assert_eq!(
            view["hyperparameters"]["learning_rate"],
            json!(0.001 * f64::from(version))
        );
        // The notice reaches B's live agents soon after (asynchronously: no "at once" here).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let (_, view) = b
                .call(Method::GET, &token_b, "/v1/agents/PPO/config", None)
                .await;
            if view["served_version"] == json!(version) {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "B never served version {version}: {view}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }
    assert_eq!(fleet.keys("config:PPO").await.len(), 1);
    fleet.stop().await;
}

/// The rate-limit buckets are Redis's: a burst spent across both replicas leaves none on
/// either (with local buckets each replica would allow the whole burst).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_11_a_burst_spent_across_replicas_is_spent_on_both() {
    const BURST: usize = 6;
    let burst = BURST.to_string();
    let extra = [
        ("rate_limit_rps", "0.01"),
        ("rate_limit_burst", burst.as_str()),
    ];
    let Some(fleet) = Fleet::start(&extra, &[]).await else {
        return;
    };
    let (a, b) = (&fleet.a, &fleet.b);
    for idx in 0..BURST {
        let server = if idx % 2 == 0 { a } else { b };
        let response = server
            .client
            .get(server.url("/openapi.json"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "request {idx}");
    }
    for server in [a, b] {
        let response = server
            .client
            .get(server.url("/openapi.json"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        // 1 token at 0.01/s: 100 s, less what refilled since the burst began.
        let retry_after: u64 = response.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((90..=100).contains(&retry_after), "{retry_after}");
        let (_, body) = json_of(response).await;
        assert_eq!(body["error"]["code"], "rate_limited", "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("too many requests from this ip"),
            "{body}"
        );
    }
    fleet.stop().await;
}

fn replays(metrics: &str, source: &str) -> f64 {
    let name = format!("tars_jobs_idempotent_replays_total{{source=\"{source}\"}} ");
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(&name))
        .map_or(0.0, |value| value.parse().unwrap())
}

/// The same `Idempotency-Key` through A and then B gives one job, found through Redis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_11_the_same_idempotency_key_on_two_replicas_gives_one_job() {
    let Some(mut fleet) = Fleet::start(&[], &[]).await else {
        return;
    };
    let (a, b) = (&fleet.a, &fleet.b);
    let (token_a, token_b) = (a.admin().await, b.admin().await);
    let body = json!({"agent_type": "PPO", "environments": ["CartPole-v1"], "num_episodes": 3,
                      "hyperparameters": {"n_timesteps": 512}});
    let submit = |server: &Server, token: &str| {
        server
            .client
            .post(server.url("/v1/evaluate"))
            .bearer_auth(token)
            .header("prefer", "respond-async")
            .header("idempotency-key", "fleet-key-1")
            .json(&body)
            .send()
    };
    let replays_before = replays(&a.metrics().await, "redis");
    let (status, first) = json_of(submit(a, &token_a).await.unwrap()).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{first}");
    let job_id = first["job_id"].as_str().unwrap().to_string();
    // Cancelled so that B answers with the job, not with a result.
    let (status, cancelled) = a
        .call(
            Method::DELETE,
            &token_a,
            &format!("/v1/jobs/{job_id}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{cancelled}");
    let (status, second) = json_of(submit(b, &token_b).await.unwrap()).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{second}");
    assert_eq!(second["job_id"], json!(job_id));
    assert_eq!(replays(&b.metrics().await, "redis"), replays_before + 1.0);
    let records = fleet.keys("idem:*").await;
    assert_eq!(records.len(), 1, "{records:?}");
    let recorded: String = redis::cmd("GET")
        .arg(&records[0])
        .query_async(&mut fleet.redis)
        .await
        .unwrap();
    assert_eq!(recorded, job_id);
    fleet.stop().await;
}

/// A read that missed, then raced a write, must not put its old rows back: the fill is
/// refused once the write bumped the generation, and the next read misses again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_that_raced_a_write_does_not_refill_the_shared_cache() {
    use std::sync::Arc;
    use std::time::Duration;
    use tars_server::baseline_cache::BaselineCache;
    use tars_server::redis::cache::Lookup;
    use tars_server::redis::{Notice, Redis, RedisSettings, Status};
    let Some([url]) = service_urls(["TARS_TEST_REDIS_URL"]) else {
        return;
    };
    let prefix = format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let settings = RedisSettings {
        url,
        prefix: prefix.clone(),
        cache_ttl: Duration::from_secs(60),
    };
    let local = Arc::new(BaselineCache::new(Duration::from_secs(60)));
    let shared = Redis::connect(settings, local).await.unwrap();
    assert_eq!(shared.status(), Status::Connected);
    let now = chrono::Utc::now();
    let row = |mean_reward: f64| tars_store::BaselineRow {
        id: uuid::Uuid::new_v4(),
        agent_type: "A2C".into(),
        environment: "Acrobot-v1".into(),
        mean_reward,
        std_reward: 1.0,
        success_rate: 0.5,
        hyperparameters: json!({}),
        version: 1,
        rank: 1,
        created_at: now,
        updated_at: now,
    };
    let lookup = || shared.cached_baselines("A2C", Some("Acrobot-v1"));

    let Some(Lookup::Miss(stale)) = lookup().await else {
        panic!("an empty cache misses")
    };
    shared.invalidate(Notice::Baselines).await;
    shared
        .fill_baselines("A2C", Some("Acrobot-v1"), stale, &[row(1.0)])
        .await;
    let Some(Lookup::Miss(fresh)) = lookup().await else {
        panic!("the raced read was kept")
    };
    shared
        .fill_baselines("A2C", Some("Acrobot-v1"), fresh, &[row(2.0)])
        .await;
    let Some(Lookup::Hit(rows)) = lookup().await else {
        panic!("a fill after the write is kept")
    };
    assert_eq!(rows[0].mean_reward, 2.0);
    assert!(
        matches!(
            shared.cached_baselines("A2C", None).await,
            Some(Lookup::Miss(_))
        ),
        "keys are separate"
    );
    shared.invalidate(Notice::Baselines).await;
    assert!(matches!(lookup().await, Some(Lookup::Miss(_))));
    shared.close();

    let mut connection = redis::Client::open(std::env::var("TARS_TEST_REDIS_URL").unwrap())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:*"))
        .query_async(&mut connection)
        .await
        .unwrap();
    redis::cmd("DEL")
        .arg(keys)
        .query_async::<()>(&mut connection)
        .await
        .unwrap();
}
