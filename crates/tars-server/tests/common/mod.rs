//! A real server on an ephemeral port with its own data directory, and a client logged in to
//! it: what the HTTP test files share.

#![allow(dead_code)] // Each test binary uses its own part.

use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
use tars_server::app::{self, Running};
use tars_server::{Config, ConfigArgs};

pub const ADMIN_PASSWORD: &str = "correct horse battery staple";

pub struct Server {
    pub running: Option<Running>,
    pub base: String,
    pub client: Client,
    pub dir: std::path::PathBuf,
}

impl Server {
    pub async fn start(name: &str, extra: &[(&'static str, &str)]) -> Server {
        let dir = std::env::temp_dir().join(format!("tars-api-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        Server::start_in(dir, extra).await
    }

    pub async fn start_in(dir: std::path::PathBuf, extra: &[(&'static str, &str)]) -> Server {
        let dir_text = dir.display().to_string();
        let mut values = vec![
            ("data_dir", dir_text.as_str()),
            ("port", "0"),
            ("admin_password", ADMIN_PASSWORD),
            ("rate_limit_rps", "0"),
        ];
        values.extend_from_slice(extra);
        let config = Config::load(&ConfigArgs::with(&values)).unwrap();
        let running = app::start(config, false).await.unwrap();
        Server {
            base: format!("http://{}", running.addr),
            running: Some(running),
            client: Client::new(),
            dir,
        }
    }

    /// `method path` with the bearer token and an optional JSON body: status and JSON answer.
    pub async fn call(
        &self,
        method: reqwest::Method,
        token: &str,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self
            .client
            .request(method, self.url(path))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        json_of(request.send().await.unwrap()).await
    }

    /// `POST /v1/evaluate` with `Prefer: respond-async`: status and the job view.
    pub async fn submit_async(&self, token: &str, body: &Value) -> (StatusCode, Value) {
        let request = self
            .client
            .post(self.url("/v1/evaluate"))
            .bearer_auth(token);
        let request = request.header("prefer", "respond-async").json(body);
        json_of(request.send().await.unwrap()).await
    }

    /// The Prometheus text of `/metrics`.
    pub async fn metrics(&self) -> String {
        let response = self.client.get(self.url("/metrics")).send().await.unwrap();
        response.text().await.unwrap()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn token(&self, username: &str, password: &str) -> String {
        let response = self
            .client
            .post(self.url("/auth/login"))
            .json(&json!({"username": username, "password": password}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["token_type"], "bearer");
        body["access_token"].as_str().unwrap().to_string()
    }

    pub async fn admin(&self) -> String {
        self.token("admin", ADMIN_PASSWORD).await
    }

    pub async fn stop(mut self) -> std::path::PathBuf {
        self.running.take().unwrap().stop().await.unwrap();
        self.dir.clone()
    }
}

pub async fn json_of(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, body)
}

/// A PostgreSQL schema of the test's own on the server `TARS_TEST_DATABASE_URL` names, so
/// tests run in parallel on one database; [`PgSchema::drop`] removes it.
pub struct PgSchema {
    /// The server's URL, without the schema.
    pub server_url: String,
    /// `<prefix>_<id>`.
    pub name: String,
    /// A fresh hex id, for the test's other names (servers, key prefixes).
    pub id: String,
    /// A pool on the server, outside the schema.
    pub admin: sqlx::PgPool,
}

/// The URLs of the real services a test needs (`TARS_TEST_DATABASE_URL`, `TARS_TEST_NATS_URL`,
/// `TARS_TEST_REDIS_URL`), in the order asked; `None` (the test skips) when one is unset, unless
/// `CI` is set: then the test fails.
pub fn service_urls<const N: usize>(vars: [&str; N]) -> Option<[String; N]> {
    let values = vars.map(|var| std::env::var(var).ok());
    if values.iter().all(Option::is_some) {
        return Some(values.map(Option::unwrap));
    }
    let names = vars.join(" and ");
    assert!(
        std::env::var_os("CI").is_none(),
        "{names} must be set in CI"
    );
    eprintln!("skipping a test of real services: {names} not all set");
    None
}

impl PgSchema {
    /// A new schema; `None` (the test skips) without `TARS_TEST_DATABASE_URL`, unless `CI` is
    /// set: then the test fails.
    pub async fn create(prefix: &str) -> Option<PgSchema> {
        let [server_url] = service_urls(["TARS_TEST_DATABASE_URL"])?;
        Some(PgSchema::create_on(server_url, prefix).await)
    }

    /// A new schema on the server at `server_url`.
    pub async fn create_on(server_url: String, prefix: &str) -> PgSchema {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let name = format!("{prefix}_{id}");
        let admin = sqlx::PgPool::connect(&server_url)
            .await
            .expect("connecting to TARS_TEST_DATABASE_URL");
        // Our own hex name, not input; DDL takes no bind parameters.
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {name}")))
            .execute(&admin)
            .await
            .expect("creating the test's schema");
        PgSchema {
            server_url,
            name,
            id,
            admin,
        }
    }

    /// `server_url` (this server's, or one standing in for it) with the schema as the
    /// connections' search path.
    pub fn url_on(&self, server_url: &str) -> String {
        let separator = if server_url.contains('?') { '&' } else { '?' };
        format!(
            "{server_url}{separator}options=-c%20search_path%3D{}",
            self.name
        )
    }

    /// The database URL of a server using the schema.
    pub fn url(&self) -> String {
        self.url_on(&self.server_url)
    }

    pub async fn drop(self) {
        let drop = format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name);
        sqlx::query(sqlx::AssertSqlSafe(drop))
            .execute(&self.admin)
            .await
            .expect("dropping the test's schema");
        self.admin.close().await;
    }
}
