//! Fleet mode as processes: a PostgreSQL schema and a NATS prefix of the test's own (both
//! removed at the end), `tars` children in fleet mode, their JSON log lines on a channel.
//! Without `TARS_TEST_DATABASE_URL` and `TARS_TEST_NATS_URL` the tests are skipped, unless
//! `CI` is set; with them set, a server that is down fails the test.

use reqwest::blocking::Client;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use tars_testkit::{PgSchema, service_urls};

pub const ADMIN_PASSWORD: &str = "correct horse battery staple";

/// The servers of the fleet tests, a schema and a NATS prefix of this test's own.
pub struct Fleet {
    pub runtime: tokio::runtime::Runtime,
    /// The database URL with `search_path` set to the test's schema.
    pub database_url: String,
    schema: Option<PgSchema>,
    pub nats_url: String,
    pub prefix: String,
    pub dir: PathBuf,
}

impl Fleet {
    /// `None` (after saying so) when the servers are not configured, outside CI.
    pub fn new(name: &str) -> Option<Fleet> {
        let [server_url, nats_url] =
            service_urls(["TARS_TEST_DATABASE_URL", "TARS_TEST_NATS_URL"])?;
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let schema = runtime.block_on(async {
            async_nats::connect(&nats_url)
                .await
                .expect("connecting to TARS_TEST_NATS_URL");
            PgSchema::create_on(server_url, "tars_fleet").await
        });
        let database_url = schema.url();
        let dir = std::env::temp_dir().join(format!("tars-fleet-{name}-{}", schema.id));
        std::fs::create_dir_all(&dir).unwrap();
        Some(Fleet {
            prefix: format!("t{}", &schema.id[..12]),
            runtime,
            database_url,
            schema: Some(schema),
            nats_url,
            dir,
        })
    }

    /// `tars <args>` in fleet mode, its stderr lines sent to a channel.
    pub fn spawn(&self, args: &[&str], env: &[(&str, &str)]) -> Process {
        let mut command = self.command(args, env);
        command.stdout(Stdio::null()).stderr(Stdio::piped());
        let mut child = command.spawn().expect("tars runs");
        Process {
            lines: lines_of(child.stderr.take().unwrap()),
            child,
        }
    }

    /// An API-only replica (`tars serve`, no job workers, no rate limit) and its base URL.
    pub fn api_replica(&self) -> (Process, String) {
        let serve = self.spawn(
            &["serve", "--port", "0", "--rate-limit-rps", "0"],
            &[("TARS_JOB_WORKERS", "0")],
        );
        let base = listening(&serve);
        (serve, base)
    }

    /// A `tars worker` with one job worker, once it runs.
    pub fn worker(&self) -> Process {
        let worker = self.spawn(&["worker"], &[("TARS_JOB_WORKERS", "1")]);
        worker.wait_for_line("T.A.R.S. worker running");
        worker
    }

    /// The command `tars <args>` in fleet mode, without the caller's `TARS_*` settings.
    pub fn command(&self, args: &[&str], env: &[(&str, &str)]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_tars"));
        for (var, _) in std::env::vars() {
            if var.starts_with("TARS_") || var.starts_with("OTEL_") {
                command.env_remove(var);
            }
        }
        command
            .args(args)
            .current_dir(&self.dir)
            .env("TARS_DATA_DIR", self.dir.join("data"))
            .env("TARS_DATABASE_URL", &self.database_url)
            .env("TARS_NATS_URL", &self.nats_url)
            .env("TARS_NATS_PREFIX", &self.prefix)
            // A dead worker's job goes to another within 2 s; running ones ack every ~0.7 s.
            .env("TARS_NATS_ACK_WAIT_SECONDS", "2")
            .env("TARS_QUEUE_CAPACITY", "10000")
            // The tests submit their hundreds of jobs as one account.
            .env("TARS_MAX_QUEUED_PER_PRINCIPAL", "10000")
            .env("TARS_LOG_FORMAT", "json")
            .env("TARS_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .envs(env.iter().copied())
            .stdin(Stdio::null());
        command
    }

    /// One integer from the test's schema.
    pub fn count(&self, sql: &'static str) -> i64 {
        self.runtime.block_on(async {
            let pool = sqlx::PgPool::connect(&self.database_url).await.unwrap();
            let n: i64 = sqlx::query_scalar(sql).fetch_one(&pool).await.unwrap();
            pool.close().await;
            n
        })
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
        let schema = self.schema.take();
        let (nats_url, prefix) = (self.nats_url.clone(), self.prefix.to_uppercase());
        self.runtime.block_on(async move {
            if let Some(schema) = schema {
                schema.drop().await;
            }
            if let Ok(client) = async_nats::connect(&nats_url).await {
                let jetstream = async_nats::jetstream::new(client);
                for kind in ["JOBS", "EVENTS"] {
                    let _ = jetstream.delete_stream(format!("{prefix}_{kind}")).await;
                }
            }
        });
    }
}

/// The lines of a child's output, sent to a channel by a thread.
pub fn lines_of(output: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
    let (sender, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(output).lines().map_while(Result::ok) {
            let _ = sender.send(line);
        }
    });
    lines
}

/// A `tars` child process and its stderr lines.
pub struct Process {
    pub child: Child,
    pub lines: mpsc::Receiver<String>,
}

impl Process {
    /// Waits (up to a minute) for a line containing `needle`; returns it.
    pub fn wait_for_line(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let line = self
                .lines
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .unwrap_or_else(|_| panic!("no line with {needle:?} within a minute"));
            if line.contains(needle) {
                return line;
            }
        }
    }

    /// Sends `signal` with kill(1) and waits up to `limit` for the exit.
    pub fn stop(mut self, signal: &str, limit: Duration) -> ExitStatus {
        let killed = Command::new("kill")
            .args([format!("-{signal}"), self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
        let sent = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if sent.elapsed() > limit {
                let _ = self.child.kill();
                panic!("tars still running {limit:?} after SIG{signal}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The address `tars serve` prints once it listens.
pub fn listening(serve: &Process) -> String {
    let line = serve.wait_for_line("listening on ");
    let rest = line.split("listening on ").nth(1).unwrap();
    rest.split_whitespace().next().unwrap().to_string()
}

pub fn token(client: &Client, base: &str) -> String {
    let login: Value = client
        .post(format!("{base}/auth/login"))
        .json(&json!({"username": "admin", "password": ADMIN_PASSWORD}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    login["access_token"].as_str().unwrap().to_string()
}

/// The job id of a worker's "running a job" log line (JSON logs).
pub fn running_job(line: &str) -> Option<String> {
    let value: Value = serde_json::from_str(line).ok()?;
    (value["fields"]["message"] == "running a job")
        .then(|| value["fields"]["job"].as_str().map(String::from))
        .flatten()
}
