//! `tars serve` as a process: it stops on SIGTERM and on Ctrl-C (SIGINT) with exit status 0,
//! answers the request in flight in full, and re-queues the job it was running for the next
//! start; a job interrupted `max_job_attempts` times is failed, not run again; a new data
//! directory is set up once when `tars serve` and `tars user add` start together.

use reqwest::StatusCode;
use reqwest::blocking::Client;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const ADMIN_PASSWORD: &str = "correct horse battery staple";

/// A `tars serve` child on a free port, with its stderr lines.
struct Serve {
    child: Child,
    base: String,
    lines: mpsc::Receiver<String>,
}

impl Serve {
    /// Starts `tars serve` on data directory `dir` and waits until `/health` answers.
    fn start(dir: &Path, client: &Client) -> Serve {
        let mut command = Command::new(env!("CARGO_BIN_EXE_tars"));
        for (var, _) in std::env::vars() {
            if var.starts_with("TARS_") || var.starts_with("OTEL_") {
                command.env_remove(var);
            }
        }
        let mut child = command
            .args([
                "serve",
                "--port",
                "0",
                "--rate-limit-rps",
                "0",
                "--shutdown-timeout-seconds",
                "2",
            ])
            .current_dir(dir)
            .env("TARS_DATA_DIR", dir.join("data"))
            .env("TARS_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("tars serve runs");
        let (sender, lines) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = sender.send(line);
            }
        });
        // "T.A.R.S. listening on http://127.0.0.1:PORT  (API: …)"
        let deadline = Instant::now() + Duration::from_secs(60);
        let base = loop {
            let line = lines
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .expect("tars serve prints its address");
            if let Some(rest) = line.split("listening on ").nth(1)
                && line.starts_with("T.A.R.S.")
            {
                break rest.split_whitespace().next().unwrap().to_string();
            }
        };
        let serve = Serve { child, base, lines };
        while client
            .get(serve.url("/health"))
            .send()
            .map(|r| r.status())
            .ok()
            != Some(StatusCode::OK)
        {
            assert!(Instant::now() < deadline, "/health never answered");
            std::thread::sleep(Duration::from_millis(50));
        }
        serve
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn token(&self, client: &Client) -> String {
        let login: Value = client
            .post(self.url("/auth/login"))
            .json(&json!({"username": "admin", "password": ADMIN_PASSWORD}))
            .send()
            .unwrap()
            .json()
            .unwrap();
        login["access_token"].as_str().unwrap().to_string()
    }

    /// Sends `signal` (e.g. "TERM") with kill(1), then waits up to `limit` for the exit.
    fn stop(mut self, signal: &str, limit: Duration) -> (ExitStatus, Duration, Vec<String>) {
        let sent = Instant::now();
        let killed = Command::new("kill")
            .args([format!("-{signal}"), self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if sent.elapsed() > limit {
                let _ = self.child.kill();
                panic!("tars serve still running {limit:?} after SIG{signal}");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let elapsed = sent.elapsed();
        // The reader thread ends with the pipe; collect what the process printed.
        let lines = self.lines.iter().collect();
        (status, elapsed, lines)
    }
}

fn sandbox(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tars-serve-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn job(serve: &Serve, client: &Client, token: &str, id: &str) -> Value {
    client
        .get(serve.url(&format!("/v1/jobs/{id}")))
        .bearer_auth(token)
        .send()
        .unwrap()
        .json()
        .unwrap()
}

#[test]
fn sigterm_answers_the_request_in_flight_requeues_the_job_and_exits_0() {
    let dir = sandbox("sigterm");
    let client = Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap();
    let serve = Serve::start(&dir, &client);
    let token = serve.token(&client);

    // A synchronous evaluation that trains for far longer than the test: the request in flight.
    let body = json!({"agent_type": "PPO", "environments": ["CartPole-v1"], "num_episodes": 5,
                      "hyperparameters": {"n_timesteps": 15_000_000}});
    let in_flight = {
        let request = client
            .post(serve.url("/v1/evaluate"))
            .bearer_auth(&token)
            .header("idempotency-key", "slow-1")
            .json(&body);
        std::thread::spawn(move || {
            let response = request
                .send()
                .expect("a response, not a dropped connection");
            let status = response.status();
            let body: Value = response.json().expect("a whole JSON body");
            (status, body)
        })
    };
    // The same Idempotency-Key names the job; wait until it trains.
    let deadline = Instant::now() + Duration::from_secs(60);
    let job_id = loop {
        let response = client
            .post(serve.url("/v1/evaluate"))
            .bearer_auth(&token)
            .header("idempotency-key", "slow-1")
            .header("prefer", "respond-async")
            .json(&body)
            .send()
            .unwrap();
        let view: Value = response.json().unwrap();
        if view["status"] == "running"
            && view["progress"]["CartPole-v1"]["timesteps"].as_u64() > Some(0)
        {
            break view["job_id"].as_str().unwrap().to_string();
        }
        assert!(Instant::now() < deadline, "the job never started: {view}");
        std::thread::sleep(Duration::from_millis(100));
    };

    let (status, elapsed, log) = serve.stop("TERM", Duration::from_secs(20));
    let log = log.join("\n");
    assert!(status.success(), "exit status {status:?}; log:\n{log}");
    // The drain timeout is 2 s; the job stops at its next training step after it.
    assert!(
        elapsed < Duration::from_secs(15),
        "stopped after {elapsed:?}"
    );
    assert!(log.contains("re-queued for the next start"), "{log}");
    assert!(
        !log.contains('\u{1b}'),
        "colour codes in a log that is not a terminal: {log}"
    );
    let (status, answer) = in_flight.join().unwrap();
    assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
    assert_eq!(answer["job_id"], job_id.as_str());
    assert_eq!(answer["status"], "queued", "{answer}");

    // The next start runs the job again; Ctrl-C stops that one the same way.
    let serve = Serve::start(&dir, &client);
    let token = serve.token(&client);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let view = job(&serve, &client, &token, &job_id);
        if view["status"] == "running" && view["attempts"] == 2 {
            break;
        }
        assert!(Instant::now() < deadline, "the job was not resumed: {view}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (status, _, log) = serve.stop("INT", Duration::from_secs(20));
    assert!(
        status.success(),
        "exit status {status:?}; log:\n{}",
        log.join("\n")
    );
    std::fs::remove_dir_all(dir).unwrap();
}

/// A job that takes its process down (here: kill -9 while it runs, three times) is not re-run
/// at every start: the fourth start fails it as interrupted, and the server keeps serving.
#[test]
fn a_job_interrupted_max_job_attempts_times_is_failed_not_rerun() {
    let dir = sandbox("poison");
    let client = Client::new();
    let body = json!({"agent_type": "PPO", "environments": ["CartPole-v1"], "num_episodes": 5,
                      "hyperparameters": {"n_timesteps": 15_000_000}});
    let mut serve = Serve::start(&dir, &client);
    let mut token = serve.token(&client);
    let submitted: Value = client
        .post(serve.url("/v1/evaluate"))
        .bearer_auth(&token)
        .header("prefer", "respond-async")
        .json(&body)
        .send()
        .unwrap()
        .json()
        .unwrap();
    let job_id = submitted["job_id"].as_str().unwrap().to_string();
    for attempt in 1..=3 {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let view = job(&serve, &client, &token, &job_id);
            if view["status"] == "running" && view["attempts"] == attempt {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "attempt {attempt} never ran: {view}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let (status, _, _) = serve.stop("KILL", Duration::from_secs(20));
        assert!(!status.success());
        serve = Serve::start(&dir, &client);
        token = serve.token(&client);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let view = loop {
        let view = job(&serve, &client, &token, &job_id);
        if view["status"] != "queued" && view["status"] != "running" {
            break view;
        }
        assert!(Instant::now() < deadline, "the job was not ended: {view}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(view["status"], "failed", "{view}");
    let error = view["error"].as_str().unwrap_or_default();
    assert!(error.contains("interrupted 3 times; not retried"), "{view}");
    // The server that refused it serves, and runs other work.
    let health = client.get(serve.url("/health")).send().unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    let quick = json!({"agent_type": "PPO", "environments": ["CartPole-v1"], "num_episodes": 2,
                       "hyperparameters": {"n_timesteps": 256, "n_steps": 32, "n_envs": 2, "batch_size": 32}});
    let answer = client
        .post(serve.url("/v1/evaluate"))
        .bearer_auth(&token)
        .json(&quick)
        .send()
        .unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    let (status, _, _) = serve.stop("TERM", Duration::from_secs(20));
    assert!(status.success());
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn serve_and_user_add_started_together_on_a_new_data_directory_both_succeed() {
    let client = Client::new();
    for round in 0..5 {
        let dir = sandbox(&format!("first-start-{round}"));
        let mut add = Command::new(env!("CARGO_BIN_EXE_tars"));
        for (var, _) in std::env::vars() {
            if var.starts_with("TARS_") {
                add.env_remove(var);
            }
        }
        let add = add
            .args(["user", "add", "vera", "--role", "viewer"])
            .current_dir(&dir)
            .env("TARS_DATA_DIR", dir.join("data"))
            .env("TARS_USER_PASSWORD", "vera's password")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let serve = Serve::start(&dir, &client);
        let added = add.wait_with_output().unwrap();
        assert!(
            added.status.success(),
            "round {round}: {}",
            String::from_utf8_lossy(&added.stderr)
        );
        // Whichever set the database up first, both accounts exist: the viewer added by the
        // CLI does not stop the server from creating its admin.
        assert!(
            !serve.token(&client).is_empty(),
            "round {round}: admin logs in"
        );
        let vera = client
            .post(serve.url("/auth/login"))
            .json(&json!({"username": "vera", "password": "vera's password"}))
            .send()
            .unwrap();
        assert_eq!(vera.status(), StatusCode::OK, "round {round}");
        let (status, _, _) = serve.stop("TERM", Duration::from_secs(20));
        assert!(status.success());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
