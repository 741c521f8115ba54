//! Restart proofs (issue 11): a fleet `tars serve` with two job workers runs 60 evaluations
//! while its NATS server, then its PostgreSQL server, is stopped and started again. The
//! clients reconnect by themselves, every job succeeds exactly once (rows counted), and the
//! circuit breaker of each dependency is seen open (1) and closed again (0) on `/metrics`.
//!
//! The servers are private to the test (never the shared ones): `nats-server -js` on a free
//! port with a store directory of its own, and a PostgreSQL cluster made with `initdb` in a
//! temporary directory owned by `postgres`, run with `pg_ctl` through `runuser` on a free port.
//! Without those binaries (or root, for `runuser`) the test is skipped, unless `CI` is set:
//! then it fails.

use reqwest::StatusCode;
use reqwest::blocking::Client;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const ADMIN_PASSWORD: &str = "correct horse battery staple";
const NATS_SERVER: &str = "/usr/sbin/nats-server";
const PG_BIN: &str = "/usr/lib/postgresql/15/bin";
const N_JOBS: usize = 60;

/// Whether the private servers can run here; outside CI a missing piece skips the test.
fn servers_available() -> bool {
    let missing: Vec<&str> = [
        (!Path::new(NATS_SERVER).exists()).then_some(NATS_SERVER),
        (!Path::new(PG_BIN).join("initdb").exists()).then_some("initdb"),
        (!is_root()).then_some("root (for runuser -u postgres)"),
    ]
    .into_iter()
    .flatten()
    .collect();
    if missing.is_empty() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "the restart proofs need {missing:?} in CI"
    );
    eprintln!("skipping the restart proofs: missing {missing:?}");
    false
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.stdout.starts_with(b"0\n"))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A nats-server of the test's own, with JetStream's file store in `dir`.
struct PrivateNats {
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl PrivateNats {
    fn start(dir: &Path) -> PrivateNats {
        let mut nats = PrivateNats {
            port: free_port(),
            dir: dir.join("nats"),
            child: None,
        };
        nats.run();
        nats
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    fn run(&mut self) {
        let child = Command::new(NATS_SERVER)
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-js",
                "-sd",
            ])
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server runs");
        self.child = Some(child);
        wait_for_port(self.port);
    }

    /// SIGTERM, and wait for the exit.
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
    }
}

impl Drop for PrivateNats {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A PostgreSQL cluster of the test's own, in a directory owned by `postgres`.
struct PrivatePostgres {
    port: u16,
    dir: PathBuf,
}

impl PrivatePostgres {
    fn start(dir: &Path) -> PrivatePostgres {
        let dir = dir.join("pg");
        std::fs::create_dir_all(&dir).unwrap();
        assert!(
            Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&dir)
                .status()
                .unwrap()
                .success()
        );
        let initdb = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(Path::new(PG_BIN).join("initdb"))
            .args(["-A", "trust", "-U", "postgres", "--no-sync", "-D"])
            .arg(dir.join("data"))
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(initdb.success(), "initdb failed");
        let pg = PrivatePostgres {
            port: free_port(),
            dir,
        };
        pg.ctl("start");
        pg
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn ctl(&self, action: &str) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.display()
        );
        let status = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(Path::new(PG_BIN).join("pg_ctl"))
            .arg("-D")
            .arg(self.dir.join("data"))
            .arg("-l")
            .arg(self.dir.join("log"))
            .args(["-o", &options, "-m", "fast", "-w", action])
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "pg_ctl {action} failed");
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(Path::new(PG_BIN).join("pg_ctl"))
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A `tars` child process and its stderr lines.
struct Process {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The test's fleet: its servers, the `tars serve` on them, and an HTTP client.
struct Fleet {
    dir: PathBuf,
    nats: PrivateNats,
    pg: PrivatePostgres,
    runtime: tokio::runtime::Runtime,
    client: Client,
}

impl Fleet {
    fn serve(&self) -> (Process, String) {
        let mut command = Command::new(env!("CARGO_BIN_EXE_tars"));
        for (var, _) in std::env::vars() {
            if var.starts_with("TARS_") || var.starts_with("OTEL_") {
                command.env_remove(var);
            }
        }
        let mut child = command
            .args(["serve", "--port", "0", "--rate-limit-rps", "0"])
            .current_dir(&self.dir)
            .env("TARS_DATA_DIR", self.dir.join("data"))
            .env("TARS_DATABASE_URL", self.pg.url())
            .env("TARS_NATS_URL", self.nats.url())
            .env("TARS_NATS_ACK_WAIT_SECONDS", "5")
            .env("TARS_JOB_WORKERS", "2")
            .env("TARS_QUEUE_CAPACITY", "10000")
            .env("TARS_MAX_QUEUED_PER_PRINCIPAL", "10000")
            .env("TARS_LOG_FORMAT", "json")
            .env("TARS_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("tars runs");
        let (sender, lines) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = sender.send(line);
            }
        });
        let process = Process { child, lines };
        let deadline = Instant::now() + Duration::from_secs(60);
        let base = loop {
            let line = process
                .lines
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .expect("tars serve says where it listens within a minute");
            if let Some(rest) = line.split("listening on ").nth(1) {
                break rest.split_whitespace().next().unwrap().to_string();
            }
        };
        (process, base)
    }

    fn count(&self, sql: &'static str) -> i64 {
        self.runtime.block_on(async {
            let pool = sqlx::PgPool::connect(&self.pg.url()).await.unwrap();
            let n: i64 = sqlx::query_scalar(sql).fetch_one(&pool).await.unwrap();
            pool.close().await;
            n
        })
    }

    /// The breaker gauge of `dependency` on `/metrics`, when exported.
    fn breaker(&self, base: &str, dependency: &str) -> Option<f64> {
        let text = self
            .client
            .get(format!("{base}/metrics"))
            .send()
            .ok()?
            .text()
            .ok()?;
        let prefix = format!("tars_circuit_breaker_state{{dependency=\"{dependency}\"}} ");
        text.lines()
            .find_map(|line| line.strip_prefix(&prefix))
            .and_then(|value| value.trim().parse().ok())
    }

    /// Polls the gauge until it reads `value` (within `limit`); returns how long it took.
    fn wait_for_breaker(
        &self,
        base: &str,
        dependency: &str,
        value: f64,
        limit: Duration,
    ) -> Duration {
        let started = Instant::now();
        loop {
            if self.breaker(base, dependency) == Some(value) {
                return started.elapsed();
            }
            assert!(
                started.elapsed() < limit,
                "the {dependency} breaker never read {value} within {limit:?} (last: {:?})",
                self.breaker(base, dependency)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until at least `n` jobs succeeded.
    fn wait_for_succeeded(&self, n: i64, limit: Duration) {
        let started = Instant::now();
        while self.count("SELECT COUNT(*) FROM eval_jobs WHERE status = 'succeeded'") < n {
            assert!(
                started.elapsed() < limit,
                "{n} jobs did not succeed in time"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

#[test]
fn issue_11_restarting_nats_then_postgres_during_a_run_loses_no_job() {
    if !servers_available() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("tars-outage-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut fleet = Fleet {
        nats: PrivateNats::start(&dir),
        pg: PrivatePostgres::start(&dir),
        dir: dir.clone(),
        runtime: tokio::runtime::Runtime::new().unwrap(),
        client: Client::new(),
    };
    let (serve, base) = fleet.serve();
    let login: Value = fleet
        .client
        .post(format!("{base}/auth/login"))
        .json(&json!({"username": "admin", "password": ADMIN_PASSWORD}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let token = login["access_token"].as_str().unwrap().to_string();
    for seed in 0..N_JOBS {
        let response = fleet
            .client
            .post(format!("{base}/v1/evaluate"))
            .bearer_auth(&token)
            .header("Prefer", "respond-async")
            .json(&json!({
                "agent_type": "PPO", "agent_state": {}, "environments": ["CartPole-v1"],
                "num_episodes": 1, "seed": seed,
                "hyperparameters": {"n_timesteps": 4096, "n_steps": 64}
            }))
            .send()
            .unwrap();
        assert_eq!(response.status(), StatusCode::ACCEPTED);
    }
    assert_eq!(fleet.breaker(&base, "nats"), Some(0.0));
    assert_eq!(fleet.breaker(&base, "postgres"), Some(0.0));

    // NATS goes away mid-run: the breaker opens; it comes back: the client reconnects and the
    // breaker closes.
    fleet.wait_for_succeeded(5, Duration::from_secs(120));
    fleet.nats.stop();
    let opened = fleet.wait_for_breaker(&base, "nats", 1.0, Duration::from_secs(60));
    let before = fleet.count("SELECT COUNT(*) FROM eval_jobs WHERE status = 'succeeded'");
    fleet.nats.run();
    let closed = fleet.wait_for_breaker(&base, "nats", 0.0, Duration::from_secs(60));
    eprintln!(
        "NATS down: breaker open after {:.1} s; back: closed after {:.1} s",
        opened.as_secs_f64(),
        closed.as_secs_f64()
    );
    fleet.wait_for_succeeded(before + 3, Duration::from_secs(120));

    // Then PostgreSQL, while jobs are still queued.
    let succeeded = fleet.count("SELECT COUNT(*) FROM eval_jobs WHERE status = 'succeeded'");
    assert!(
        succeeded + 10 < N_JOBS as i64,
        "too few jobs left for the PostgreSQL restart ({succeeded} done)"
    );
    fleet.pg.ctl("stop");
    let opened = fleet.wait_for_breaker(&base, "postgres", 1.0, Duration::from_secs(90));
    fleet.pg.ctl("start");
    let closed = fleet.wait_for_breaker(&base, "postgres", 0.0, Duration::from_secs(60));
    eprintln!(
        "PostgreSQL down: breaker open after {:.1} s; back: closed after {:.1} s",
        opened.as_secs_f64(),
        closed.as_secs_f64()
    );

    // Every job ends, succeeded, exactly once.
    let deadline = Instant::now() + Duration::from_secs(240);
    let ended =
        "SELECT COUNT(*) FROM eval_jobs WHERE status IN ('succeeded', 'failed', 'cancelled')";
    while fleet.count(ended) < N_JOBS as i64 {
        assert!(
            Instant::now() < deadline,
            "the jobs did not all end in time"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(fleet.count("SELECT COUNT(*) FROM eval_jobs"), N_JOBS as i64);
    assert_eq!(
        fleet.count("SELECT COUNT(*) FROM eval_jobs WHERE status = 'succeeded'"),
        N_JOBS as i64,
        "every job succeeded"
    );
    assert_eq!(fleet.count("SELECT COUNT(*) FROM eval_runs"), N_JOBS as i64);
    assert_eq!(
        fleet.count("SELECT COUNT(DISTINCT job_id) FROM eval_runs"),
        N_JOBS as i64
    );
    assert_eq!(
        fleet.count(
            "SELECT COUNT(*) FROM eval_jobs j JOIN eval_runs r ON r.job_id = j.id AND r.id = j.run_id"
        ),
        N_JOBS as i64
    );
    // The one `tars serve` led the job reaper.
    assert_eq!(
        fleet.count("SELECT COUNT(*) FROM leader_epochs WHERE duty = 'job-reaper'"),
        1
    );

    drop(serve);
    fleet.nats.stop();
    drop(fleet);
    let _ = std::fs::remove_dir_all(&dir);
}
