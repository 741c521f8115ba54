//! Fleet mode as processes, against the real PostgreSQL and NATS JetStream servers (issue 11):
//! one `tars serve` that only takes requests and two `tars worker`s; one worker is killed with
//! SIGKILL in the middle of a job, and every job still ends succeeded exactly once. Trainings
//! and AutoML trials run on the workers, not on the replica that took the request. The fleet
//! helpers (a schema and a NATS prefix per test) are in `common/fleet.rs`.

mod common;

use common::fleet::{Fleet, Process, lines_of, listening, running_job, token};
use reqwest::StatusCode;
use reqwest::blocking::Client;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// Issue 11: kill -9 a worker in the middle of 100 jobs; every job completes exactly once,
/// none lost, none duplicated (rows counted in PostgreSQL).
#[test]
fn issue_11_a_killed_worker_loses_no_job_and_duplicates_none() {
    let Some(fleet) = Fleet::new("kill9") else {
        return;
    };
    let (serve, base) = fleet.api_replica();
    let workers: Vec<Process> = (0..2).map(|_| fleet.worker()).collect();
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
        let (serve, base) = fleet.api_replica();
        let worker = fleet.worker();
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
    let (serve, base) = fleet.api_replica();
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

/// Issue 11: trainings and AutoML trials go through the JetStream queue like evaluations: an
/// API-only replica takes `POST /v1/train` and `POST /v1/optimize`, and a `tars worker` runs
/// the training and every trial (its log names each job; the replica runs none).
#[test]
fn issue_11_trainings_and_trials_run_on_the_workers() {
    let Some(fleet) = Fleet::new("kinds") else {
        return;
    };
    let (serve, base) = fleet.api_replica();
    let worker = fleet.worker();
    let client = Client::new();
    let token = token(&client, &base);

    let training: Value = client
        .post(format!("{base}/v1/train"))
        .bearer_auth(&token)
        .header("prefer", "respond-async")
        .json(&json!({"agent_type": "ppo", "environment": "CartPole-v1",
            "total_timesteps": 4096, "eval_episodes": 2}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(training["kind"], "training", "{training}");
    let training_id = training["job_id"].as_str().unwrap().to_string();
    let study: Value = client
        .post(format!("{base}/v1/optimize"))
        .bearer_auth(&token)
        .json(
            &json!({"agent_type": "ppo", "n_trials": 3, "n_eval_episodes": 2,
            "sampler": "random", "pruner": "none", "seed": 5}),
        )
        .send()
        .unwrap()
        .json()
        .unwrap();
    let study_id = study["study_id"].as_str().expect("a study").to_string();

    let deadline = Instant::now() + Duration::from_secs(300);
    let (job, study) = loop {
        let job: Value = client
            .get(format!("{base}/v1/jobs/{training_id}"))
            .bearer_auth(&token)
            .send()
            .unwrap()
            .json()
            .unwrap();
        let study: Value = client
            .get(format!("{base}/v1/studies/{study_id}"))
            .bearer_auth(&token)
            .send()
            .unwrap()
            .json()
            .unwrap();
        if job["status"] != "queued" && job["status"] != "running" && study["status"] != "running" {
            break (job, study);
        }
        assert!(Instant::now() < deadline, "{job}\n{study}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(job["status"], "succeeded", "{job}");
    let checkpoint = job["result"]["checkpoint_id"].as_str().unwrap();
    assert!(
        fleet
            .dir
            .join("data/checkpoints")
            .join(checkpoint)
            .join("model.safetensors")
            .exists(),
        "{job}"
    );
    assert_eq!(study["status"], "completed", "{study}");
    let trials = study["trials"].as_array().unwrap();
    assert_eq!(trials.len(), 3, "{study}");
    assert!(trials.iter().all(|t| t["state"] == "complete"), "{study}");

    // One job per trial, all run by the worker.
    assert_eq!(
        fleet.count("SELECT COUNT(*) FROM eval_jobs WHERE kind = 'trial' AND status = 'succeeded'"),
        3
    );
    assert_eq!(
        fleet.count("SELECT COUNT(*) FROM eval_jobs WHERE kind = 'training'"),
        1
    );
    let mut ran = HashSet::new();
    while let Ok(line) = worker.lines.recv_timeout(Duration::from_millis(500)) {
        if let Some(id) = running_job(&line) {
            ran.insert(id);
        }
    }
    assert!(
        ran.contains(&training_id),
        "the worker ran the training: {ran:?}"
    );
    assert_eq!(ran.len(), 4, "the training and 3 trials: {ran:?}");
    while let Ok(line) = serve.lines.try_recv() {
        assert!(
            running_job(&line).is_none(),
            "the replica ran a job: {line}"
        );
    }
    assert!(worker.stop("TERM", Duration::from_secs(30)).success());
    assert!(serve.stop("TERM", Duration::from_secs(30)).success());
}
