//! Fleet mode as processes, against the real PostgreSQL and NATS JetStream servers (issue 11):
//! one `tars serve` that only takes requests and two `tars worker`s; one worker is killed with
//! SIGKILL in the middle of a job, and every job still ends succeeded exactly once.
//!
//! Each test has a PostgreSQL schema and a NATS stream/consumer (`nats_prefix`) of its own,
//! both removed at the end. Without `TARS_TEST_DATABASE_URL` and `TARS_TEST_NATS_URL` the tests
//! are skipped, unless `CI` is set; with them set, a server that is down fails the test.

use reqwest::StatusCode;
use reqwest::blocking::Client;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const ADMIN_PASSWORD: &str = "correct horse battery staple";

/// The servers of the fleet tests, a schema and a NATS prefix of this test's own.
struct Fleet {
    runtime: tokio::runtime::Runtime,
    server_url: String,
    /// The database URL with `search_path` set to the test's schema.
    database_url: String,
    schema: String,
    nats_url: String,
    prefix: String,
    dir: PathBuf,
}

impl Fleet {
    /// `None` (after saying so) when the servers are not configured, outside CI.
    fn new(name: &str) -> Option<Fleet> {
        let (Ok(server_url), Ok(nats_url)) = (
            std::env::var("TARS_TEST_DATABASE_URL"),
            std::env::var("TARS_TEST_NATS_URL"),
        ) else {
            assert!(
                std::env::var_os("CI").is_none(),
                "TARS_TEST_DATABASE_URL and TARS_TEST_NATS_URL must be set in CI \
                 (e.g. postgres://postgres@127.0.0.1:5432/test and nats://127.0.0.1:4222)"
            );
            eprintln!("skipping a fleet test: TARS_TEST_DATABASE_URL or TARS_TEST_NATS_URL unset");
            return None;
        };
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let id = uuid::Uuid::new_v4().simple().to_string();
        let schema = format!("tars_fleet_{id}");
        runtime.block_on(async {
            let pool = sqlx::PgPool::connect(&server_url)
                .await
                .expect("connecting to TARS_TEST_DATABASE_URL");
            // Our own hex name, not input; DDL takes no bind parameters.
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
                .execute(&pool)
                .await
                .expect("creating the test schema");
            pool.close().await;
            async_nats::connect(&nats_url)
                .await
                .expect("connecting to TARS_TEST_NATS_URL");
        });
        let separator = if server_url.contains('?') { '&' } else { '?' };
        let database_url = format!("{server_url}{separator}options=-c%20search_path%3D{schema}");
        let dir = std::env::temp_dir().join(format!("tars-fleet-{name}-{id}"));
        std::fs::create_dir_all(&dir).unwrap();
        Some(Fleet {
            runtime,
            server_url,
            database_url,
            schema,
            nats_url,
            prefix: format!("t{}", &id[..12]),
            dir,
        })
    }

    /// `tars <args>` in fleet mode, its stderr lines sent to a channel.
    fn spawn(&self, args: &[&str], env: &[(&str, &str)]) -> Process {
        let mut command = self.command(args, env);
        command.stdout(Stdio::null()).stderr(Stdio::piped());
        let mut child = command.spawn().expect("tars runs");
        Process {
            lines: lines_of(child.stderr.take().unwrap()),
            child,
        }
    }

    /// The command `tars <args>` in fleet mode, without the caller's `TARS_*` settings.
    fn command(&self, args: &[&str], env: &[(&str, &str)]) -> Command {
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
            .env("TARS_LOG_FORMAT", "json")
            .env("TARS_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .envs(env.iter().copied())
            .stdin(Stdio::null());
        command
    }

    /// One integer from the test's schema.
    fn count(&self, sql: &'static str) -> i64 {
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
        let (server_url, schema) = (self.server_url.clone(), self.schema.clone());
        let (nats_url, prefix) = (self.nats_url.clone(), self.prefix.to_uppercase());
        self.runtime.block_on(async move {
            if let Ok(pool) = sqlx::PgPool::connect(&server_url).await {
                let drop = format!("DROP SCHEMA IF EXISTS {schema} CASCADE");
                let _ = sqlx::query(sqlx::AssertSqlSafe(drop)).execute(&pool).await;
                pool.close().await;
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
fn lines_of(output: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
    let (sender, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(output).lines().map_while(Result::ok) {
            let _ = sender.send(line);
        }
    });
    lines
}

/// A `tars` child process and its stderr lines.
struct Process {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Process {
    /// Waits (up to a minute) for a line containing `needle`; returns it.
    fn wait_for_line(&self, needle: &str) -> String {
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
    fn stop(mut self, signal: &str, limit: Duration) -> ExitStatus {
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
fn listening(serve: &Process) -> String {
    let line = serve.wait_for_line("listening on ");
    let rest = line.split("listening on ").nth(1).unwrap();
    rest.split_whitespace().next().unwrap().to_string()
}

fn token(client: &Client, base: &str) -> String {
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
fn running_job(line: &str) -> Option<String> {
    let value: Value = serde_json::from_str(line).ok()?;
    (value["fields"]["message"] == "running a job")
        .then(|| value["fields"]["job"].as_str().map(String::from))
        .flatten()
}

/// Issue 11: kill -9 a worker in the middle of 100 jobs; every job completes exactly once,
/// none lost, none duplicated (rows counted in PostgreSQL).
#[test]
fn issue_11_a_killed_worker_loses_no_job_and_duplicates_none() {
    let Some(fleet) = Fleet::new("kill9") else {
        return;
    };
    let serve = fleet.spawn(
        &["serve", "--port", "0", "--rate-limit-rps", "0"],
        &[("TARS_JOB_WORKERS", "0")],
    );
    let base = listening(&serve);
    let workers: Vec<Process> = (0..2)
        .map(|_| fleet.spawn(&["worker"], &[("TARS_JOB_WORKERS", "1")]))
        .collect();
    for worker in &workers {
        worker.wait_for_line("T.A.R.S. worker running");
    }
    let client = Client::new();
    let token = token(&client, &base);

    // 100 short, distinct evaluations (a seed each, so no policy comes from a cache).
    let mut job_ids = HashSet::new();
    let submitted = Instant::now();
    for seed in 0..100 {
        let response = client
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
        let body: Value = response.json().unwrap();
        job_ids.insert(body["job_id"].as_str().unwrap().to_string());
    }
    assert_eq!(job_ids.len(), 100);

    // Once 20 jobs are done, SIGKILL the first worker right after it starts its next job.
    let deadline = Instant::now() + Duration::from_secs(300);
    while fleet.count("SELECT COUNT(*) FROM eval_jobs WHERE status = 'succeeded'") < 20 {
        assert!(Instant::now() < deadline, "20 jobs did not finish in time");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut workers = workers.into_iter();
    let victim = workers.next().unwrap();
    let survivor = workers.next().unwrap();
    // Lines of jobs it ran before are stale: the next one starting is the one to kill.
    while victim.lines.try_recv().is_ok() {}
    let killed_job = loop {
        let line = victim
            .lines
            .recv_timeout(Duration::from_secs(60))
            .expect("the first worker starts another job");
        if let Some(job) = running_job(&line) {
            break job;
        }
    };
    let status = victim.stop("KILL", Duration::from_secs(10));
    let killed_at = Instant::now();
    assert_eq!(status.code(), None, "killed by a signal");
    assert!(job_ids.contains(&killed_job));

    let job_status = || {
        client
            .get(format!("{base}/v1/jobs/{killed_job}"))
            .bearer_auth(&token)
            .send()
            .unwrap()
            .json::<Value>()
            .unwrap()
    };
    let mut recovered = None;
    let ended =
        "SELECT COUNT(*) FROM eval_jobs WHERE status IN ('succeeded', 'failed', 'cancelled')";
    while fleet.count(ended) < 100 {
        assert!(
            Instant::now() < deadline,
            "the jobs did not all end in time"
        );
        if recovered.is_none() && job_status()["status"] == "succeeded" {
            recovered = Some(killed_at.elapsed());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!(
        "100 jobs over 2 workers, one killed: all done {:.1} s after the first submission; \
         the killed worker's job succeeded elsewhere {:.1} s after the kill (ack wait 2 s)",
        submitted.elapsed().as_secs_f64(),
        recovered
            .unwrap_or_else(|| killed_at.elapsed())
            .as_secs_f64()
    );
    assert_eq!(fleet.count("SELECT COUNT(*) FROM eval_jobs"), 100);
    assert_eq!(
        fleet.count("SELECT COUNT(*) FROM eval_jobs WHERE status = 'succeeded'"),
        100,
        "every job succeeded"
    );
    // Exactly one run per job, and the job points at it.
    assert_eq!(fleet.count("SELECT COUNT(*) FROM eval_runs"), 100);
    assert_eq!(
        fleet.count("SELECT COUNT(DISTINCT job_id) FROM eval_runs"),
        100
    );
    assert_eq!(
        fleet.count(
            "SELECT COUNT(*) FROM eval_jobs j JOIN eval_runs r ON r.job_id = j.id AND r.id = j.run_id"
        ),
        100
    );
    assert_eq!(fleet.count("SELECT COUNT(*) FROM eval_results"), 100);
    // The killed worker's job went to the survivor: a second attempt of the same job.
    let job = job_status();
    assert_eq!(job["status"], "succeeded", "{job}");
    let killed_sql = format!("SELECT attempts::BIGINT FROM eval_jobs WHERE id = '{killed_job}'");
    let attempts = fleet.runtime.block_on(async {
        let pool = sqlx::PgPool::connect(&fleet.database_url).await.unwrap();
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(killed_sql))
            .fetch_one(&pool)
            .await
            .unwrap();
        pool.close().await;
        n
    });
    assert_eq!(attempts, 2, "the killed job ran again once");

    assert!(survivor.stop("TERM", Duration::from_secs(30)).success());
    assert!(serve.stop("TERM", Duration::from_secs(30)).success());
}

/// A short, distinct evaluation job (its own seed, so no policy comes from a cache).
fn short_job(seed: u64) -> Value {
    json!({
        "agent_type": "PPO", "agent_state": {}, "environments": ["CartPole-v1"],
        "num_episodes": 1, "seed": seed,
        "hyperparameters": {"n_timesteps": 4096, "n_steps": 64}
    })
}

fn submit(client: &Client, base: &str, token: &str, body: &Value) -> reqwest::Result<String> {
    let response = client
        .post(format!("{base}/v1/evaluate"))
        .bearer_auth(token)
        .header("Prefer", "respond-async")
        .json(body)
        .send()?;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let body: Value = response.json()?;
    Ok(body["job_id"].as_str().unwrap().to_string())
}

/// Issue 11: the command line's config writes (here `tars rollback`, which writes the store
/// directly) reach a running replica as an event: it serves the new version at once, though
/// its poll runs every ten minutes.
#[test]
fn issue_11_a_cli_config_write_reaches_the_replicas_as_an_event() {
    let Some(fleet) = Fleet::new("cli-events") else {
        return;
    };
    let quiet_poll = [("TARS_JOB_WORKERS", "0"), ("TARS_CONFIG_POLL_MS", "600000")];
    let serve = fleet.spawn(&["serve", "--port", "0"], &quiet_poll);
    let base = listening(&serve);
    let client = Client::new();
    let token = token(&client, &base);
    let config = |method: reqwest::Method, body: Option<Value>| {
        let mut request = client
            .request(method, format!("{base}/v1/agents/PPO/config"))
            .bearer_auth(&token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().unwrap().json::<Value>().unwrap()
    };
    for version in 1..=2 {
        let body = json!({"expected_version": version - 1,
                          "hyperparameters": {"learning_rate": 0.001 * f64::from(version)}});
        let row = config(reqwest::Method::PUT, Some(body));
        assert_eq!(row["version"], version, "{row}");
    }
    let rollback = fleet
        .command(
            &["rollback", "--agent", "PPO", "--reason", "cli event test"],
            &[],
        )
        .output()
        .unwrap();
    assert!(
        rollback.status.success(),
        "{}",
        String::from_utf8_lossy(&rollback.stderr)
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let view = config(reqwest::Method::GET, None);
        if view["served_version"] == 3 {
            assert_eq!(view["version"], 3, "{view}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the replica did not serve the CLI's rollback: {view}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(serve.stop("TERM", Duration::from_secs(30)).success());
}

/// Issue 11: `tars dev fleet --replicas 2 --workers 2` starts the fleet, prints each
/// replica's URL (each answers /health) and every child's pid; SIGINT to the command alone
/// stops every child, and it exits 0.
#[test]
fn issue_11_dev_fleet_starts_replicas_and_workers_and_stops_them_on_sigint() {
    let Some(fleet) = Fleet::new("dev") else {
        return;
    };
    let data_dir = fleet.dir.join("dev-data").display().to_string();
    let mut command = fleet.command(
        &[
            "dev",
            "fleet",
            "--replicas",
            "2",
            "--workers",
            "2",
            "--database-url",
            &fleet.database_url,
            "--nats-url",
            &fleet.nats_url,
            "--nats-prefix",
            &fleet.prefix,
            "--data-dir",
            &data_dir,
        ],
        &[],
    );
    command.stdout(Stdio::piped()).stderr(Stdio::null());
    let mut child = command.spawn().unwrap();
    let stdout = lines_of(child.stdout.take().unwrap());
    let dev = Process {
        child,
        lines: stdout,
    };
    let mut urls = Vec::new();
    let mut pids = Vec::new();
    loop {
        let line = dev
            .lines
            .recv_timeout(Duration::from_secs(60))
            .expect("tars dev fleet prints the fleet within a minute");
        if line.starts_with("fleet up") {
            assert!(line.contains(&fleet.prefix), "{line}");
            break;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        if words[0].starts_with("replica-") {
            urls.push(words[1].to_string());
        }
        pids.push(
            words[words.len() - 1]
                .parse::<u32>()
                .expect("a pid ends the line"),
        );
    }
    assert_eq!((urls.len(), pids.len()), (2, 4), "{urls:?} {pids:?}");
    let client = Client::new();
    for url in &urls {
        let health = client.get(format!("{url}/health")).send().unwrap();
        assert_eq!(health.status(), StatusCode::OK, "{url}");
    }
    let status = dev.stop("INT", Duration::from_secs(60));
    assert!(status.success(), "tars dev fleet exited with {status}");
    for pid in pids {
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "child {pid} still exists after the fleet stopped"
        );
    }
    for url in &urls {
        assert!(client.get(format!("{url}/health")).send().is_err(), "{url}");
    }
}

/// Issue 11, region failover on loopback: regions A and B, each a replica and a worker on
/// their own ports, share one PostgreSQL schema and NATS prefix. Jobs are submitted through
/// both; region A (replica and worker) is killed with SIGKILL while its worker runs a job.
/// Region B serves at once, takes A's in-flight job over once its ack wait (2 s) passes, and
/// every job ends succeeded exactly once. Prints the downtime figures (docs/benchmarks.md);
/// "served after the kill" includes killing A's replica and checking it is gone.
#[test]
fn issue_11_region_failover_region_b_finishes_region_a_jobs() {
    let Some(fleet) = Fleet::new("failover") else {
        return;
    };
    let region = |name: &str| {
        let serve = fleet.spawn(
            &["serve", "--port", "0", "--rate-limit-rps", "0"],
            &[("TARS_JOB_WORKERS", "0")],
        );
        let base = listening(&serve);
        let worker = fleet.spawn(&["worker"], &[("TARS_JOB_WORKERS", "1")]);
        worker.wait_for_line("T.A.R.S. worker running");
        eprintln!("region {name}: {base}");
        (serve, base, worker)
    };
    let (serve_a, base_a, worker_a) = region("A");
    let (serve_b, base_b, worker_b) = region("B");
    let client = Client::new();
    let token = token(&client, &base_a);

    let mut job_ids = HashSet::new();
    for seed in 0..60 {
        let base = if seed % 2 == 0 { &base_a } else { &base_b };
        job_ids.insert(submit(&client, base, &token, &short_job(seed)).unwrap());
    }
    let deadline = Instant::now() + Duration::from_secs(300);
    while fleet.count("SELECT COUNT(*) FROM eval_jobs WHERE status = 'succeeded'") < 10 {
        assert!(Instant::now() < deadline, "10 jobs did not finish in time");
        std::thread::sleep(Duration::from_millis(50));
    }
    while worker_a.lines.try_recv().is_ok() {}
    let in_flight = loop {
        let line = worker_a
            .lines
            .recv_timeout(Duration::from_secs(60))
            .expect("region A's worker starts another job");
        if let Some(job) = running_job(&line) {
            break job;
        }
    };
    // Region A goes down at once: worker and replica.
    assert_eq!(worker_a.stop("KILL", Duration::from_secs(10)).code(), None);
    let killed_at = Instant::now();
    assert_eq!(serve_a.stop("KILL", Duration::from_secs(10)).code(), None);
    assert!(client.get(format!("{base_a}/health")).send().is_err());

    // Clients that move to B are served at once.
    let mut serving = None;
    for seed in 60..70 {
        job_ids.insert(submit(&client, &base_b, &token, &short_job(seed)).unwrap());
        serving.get_or_insert_with(|| killed_at.elapsed());
    }
    let serving = serving.unwrap();
    assert_eq!(job_ids.len(), 70);

    // B's worker takes A's in-flight job over.
    let taken_over = loop {
        let line = worker_b
            .lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("region B's worker takes region A's in-flight job");
        if running_job(&line).as_deref() == Some(in_flight.as_str()) {
            break killed_at.elapsed();
        }
    };
    let job_status = |id: &str| {
        client
            .get(format!("{base_b}/v1/jobs/{id}"))
            .bearer_auth(&token)
            .send()
            .unwrap()
            .json::<Value>()
            .unwrap()
    };
    let finished_in_flight = loop {
        if job_status(&in_flight)["status"] == "succeeded" {
            break killed_at.elapsed();
        }
        assert!(
            Instant::now() < deadline,
            "A's in-flight job never finished"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let ended =
        "SELECT COUNT(*) FROM eval_jobs WHERE status IN ('succeeded', 'failed', 'cancelled')";
    while fleet.count(ended) < 70 {
        assert!(
            Instant::now() < deadline,
            "the jobs did not all end in time"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let all_done = killed_at.elapsed();
    eprintln!(
        "region failover (ack wait 2 s): B served a submission {:.3} s after A was killed; \
         B's worker took A's in-flight job over after {:.2} s and finished it after {:.2} s; \
         all 70 jobs done {:.1} s after the kill",
        serving.as_secs_f64(),
        taken_over.as_secs_f64(),
        finished_in_flight.as_secs_f64(),
        all_done.as_secs_f64()
    );
    assert_eq!(fleet.count("SELECT COUNT(*) FROM eval_jobs"), 70);
    assert_eq!(
        fleet.count("SELECT COUNT(*) FROM eval_jobs WHERE status = 'succeeded'"),
        70,
        "every job succeeded"
    );
    assert_eq!(fleet.count("SELECT COUNT(*) FROM eval_runs"), 70);
    assert_eq!(
        fleet.count("SELECT COUNT(DISTINCT job_id) FROM eval_runs"),
        70
    );
    // A functional bound, not a benchmark (the issue's "< 5 s" is reported, in
    // docs/benchmarks.md): redelivery comes after the 2 s ack wait, far below the 30 s of the
    // default ack wait or the seed's SLA; 10 s leaves room for a saturated shared machine,
    // where the takeover was measured at up to 4.7 s.
    assert!(
        taken_over < Duration::from_secs(10),
        "B took A's in-flight job over only after {taken_over:?}"
    );
    assert!(worker_b.stop("TERM", Duration::from_secs(30)).success());
    assert!(serve_b.stop("TERM", Duration::from_secs(30)).success());
}

/// Issue 11: an API-only replica reports the fleet's queue in `tars_jobs_queue_depth` (read
/// from the JetStream consumer), not the 0 of its own empty worker pool.
#[test]
fn issue_11_an_api_only_replica_reports_the_fleets_queue_depth() {
    let Some(fleet) = Fleet::new("depth") else {
        return;
    };
    let serve = fleet.spawn(
        &["serve", "--port", "0", "--rate-limit-rps", "0"],
        &[("TARS_JOB_WORKERS", "0")],
    );
    let base = listening(&serve);
    let client = Client::new();
    let token = token(&client, &base);
    for seed in 0..5 {
        submit(&client, &base, &token, &short_job(seed)).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let metrics = client
            .get(format!("{base}/metrics"))
            .send()
            .unwrap()
            .text()
            .unwrap();
        if metrics
            .lines()
            .any(|line| line == "tars_jobs_queue_depth 5")
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no tars_jobs_queue_depth 5: {:?}",
            metrics
                .lines()
                .filter(|l| l.starts_with("tars_jobs_queue_depth"))
                .collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(serve.stop("TERM", Duration::from_secs(30)).success());
}
