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

// Not every test binary uses both.
#[allow(unused_imports)]
pub use tars_testkit::{PgSchema, service_urls};
