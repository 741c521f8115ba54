//! `tars bench fleet`: fleet-mode throughput. Starts a fleet of child processes (`tars dev
//! fleet`'s [`Fleet`]: `replicas` API replicas and `workers` workers on the given PostgreSQL
//! and NATS, a fresh `nats_prefix`), then `clients` concurrent connections submit `jobs`
//! short evaluation jobs (`Prefer: respond-async`) round-robin over the replicas. Each job is
//! real work: a trained PPO CartPole checkpoint evaluated on `episodes` episodes of its own
//! seed, stored as a run with its results.
//!
//! Reports the submit rate and latency (p50/p99 as the client saw them) and the end-to-end
//! job rate: jobs / (last job final − first submission), where "final" is seen by polling
//! the jobs oldest first; every job's status is checked, and the failed ones counted.

use super::dev::{Fleet, Spec, fresh_prefix};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const PASSWORD: &str = "bench password, not a secret";

/// What `tars bench fleet` measures.
pub struct Options {
    pub jobs: usize,
    pub replicas: usize,
    pub workers: usize,
    pub clients: usize,
    pub episodes: u32,
    pub database_url: String,
    pub nats_url: String,
    pub json: bool,
}

pub fn run(options: Options) -> anyhow::Result<()> {
    anyhow::ensure!(options.jobs >= 1, "--jobs must be at least 1");
    anyhow::ensure!(options.clients >= 1, "--clients must be at least 1");
    anyhow::ensure!(
        (1..=100).contains(&options.episodes),
        "--episodes must be 1..=100"
    );
    let dir = std::env::temp_dir().join(format!("tars-bench-fleet-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    super::bench_hypersync::write_checkpoint(&dir)?;
    let spec = Spec {
        replicas: options.replicas,
        workers: options.workers,
        database_url: options.database_url.clone(),
        nats_url: options.nats_url.clone(),
        redis_url: None,
        prefix: fresh_prefix(),
        data_dir: dir.clone(),
        env: [
            ("TARS_ADMIN_PASSWORD", PASSWORD.to_string()),
            ("TARS_RATE_LIMIT_RPS", "0".to_string()),
            ("TARS_QUEUE_CAPACITY", (options.jobs + 1_000).to_string()),
            // One account submits every job of the bench.
            (
                "TARS_MAX_QUEUED_PER_PRINCIPAL",
                (options.jobs + 1_000).to_string(),
            ),
            ("TARS_LOG_FORMAT", "text".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect(),
        echo: false,
    };
    let load_before = loadavg();
    let never = AtomicBool::new(false);
    let fleet = Fleet::start(&spec, &never)?.expect("not stopped");
    let urls: Vec<String> = fleet.replica_urls().into_iter().map(|(_, u)| u).collect();
    let measured = crate::runtime()?.block_on(measure(&options, &urls));
    drop(fleet);
    delete_streams(&options.nats_url, &spec.prefix);
    let _ = std::fs::remove_dir_all(&dir);
    let mut report = measured?;
    report["load_before"] = json!(load_before);
    report["load_after"] = json!(loadavg());
    if options.json {
        println!("{report}");
    } else {
        println!(
            "fleet: {} jobs ({} episode(s) of a PPO CartPole checkpoint each), {} replicas, {} workers, {} clients",
            options.jobs, options.episodes, options.replicas, options.workers, options.clients
        );
        println!(
            "  submit      {:>8.0} req/s   p50 {:.2} ms  p99 {:.2} ms   (seed: 1,000+ req/s)",
            report["submit_per_second"].as_f64().unwrap_or(0.0),
            report["submit_ms_p50"].as_f64().unwrap_or(f64::NAN),
            report["submit_ms_p99"].as_f64().unwrap_or(f64::NAN)
        );
        println!(
            "  end to end  {:>8.0} jobs/s  ({} succeeded, {} failed, {:.1} s)",
            report["jobs_per_second"].as_f64().unwrap_or(0.0),
            report["succeeded"],
            report["failed"],
            report["seconds"].as_f64().unwrap_or(0.0)
        );
        println!(
            "  load average before {} after {}",
            report["load_before"], report["load_after"]
        );
    }
    Ok(())
}

async fn measure(options: &Options, urls: &[String]) -> anyhow::Result<Value> {
    let http = reqwest::Client::new();
    let login: Value = http
        .post(format!("{}/auth/login", urls[0]))
        .json(&json!({"username": "admin", "password": PASSWORD}))
        .send()
        .await?
        .json()
        .await?;
    let token = login["access_token"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("logging in failed: {login}"))?
        .to_string();
    let urls: Arc<Vec<String>> = Arc::new(urls.to_vec());
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut clients = Vec::new();
    for _ in 0..options.clients {
        let (http, token, urls, next) = (http.clone(), token.clone(), urls.clone(), next.clone());
        let (jobs, episodes) = (options.jobs, options.episodes);
        clients.push(tokio::spawn(async move {
            let mut submitted = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= jobs {
                    return anyhow::Ok(submitted);
                }
                let body = json!({"agent_type": "PPO", "agent_state": {"checkpoint_id": "bench"},
                                  "environments": ["CartPole-v1"], "num_episodes": episodes,
                                  "seed": i});
                let sent = Instant::now();
                let response = http
                    .post(format!("{}/v1/evaluate", urls[i % urls.len()]))
                    .bearer_auth(&token)
                    .header("Prefer", "respond-async")
                    .json(&body)
                    .send()
                    .await?;
                let status = response.status();
                let view: Value = response.json().await.unwrap_or_default();
                // 202 with the job; 200 with the result when a worker finished it already.
                let id = match status {
                    reqwest::StatusCode::ACCEPTED => view["job_id"].as_str().map(String::from),
                    reqwest::StatusCode::OK => None,
                    _ => anyhow::bail!("submission {i} answered {status}: {view}"),
                };
                submitted.push((i, id, sent.elapsed()));
            }
        }));
    }
    let mut submitted = Vec::with_capacity(options.jobs);
    for client in clients {
        submitted.extend(client.await??);
    }
    let submit_seconds = started.elapsed().as_secs_f64();
    submitted.sort_by_key(|(i, _, _)| *i);
    let mut latencies: Vec<Duration> = submitted.iter().map(|(_, _, d)| *d).collect();
    latencies.sort();
    let quantile =
        |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize].as_secs_f64() * 1e3;

    // Oldest first: each job is looked at until it is final.
    let (mut succeeded, mut failed) = (0usize, 0usize);
    for (i, id, _) in &submitted {
        let Some(id) = id else {
            succeeded += 1;
            continue;
        };
        loop {
            let view: Value = http
                .get(format!("{}/v1/jobs/{id}", urls[i % urls.len()]))
                .bearer_auth(&token)
                .send()
                .await?
                .json()
                .await?;
            match view["status"].as_str() {
                Some("succeeded") => succeeded += 1,
                Some("failed") | Some("cancelled") => failed += 1,
                _ => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            }
            break;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok(json!({
        "jobs": options.jobs,
        "replicas": urls.len(),
        "workers": options.workers,
        "clients": options.clients,
        "episodes": options.episodes,
        "submit_per_second": options.jobs as f64 / submit_seconds,
        "submit_ms_p50": quantile(0.5),
        "submit_ms_p99": quantile(0.99),
        "submit_ms_max": quantile(1.0),
        "jobs_per_second": options.jobs as f64 / seconds,
        "seconds": seconds,
        "succeeded": succeeded,
        "failed": failed,
    }))
}

/// The 1-minute load average (the machine may be shared), or `None` off Linux.
fn loadavg() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Removes the bench's NATS streams.
fn delete_streams(nats_url: &str, prefix: &str) {
    let Ok(runtime) = crate::runtime() else {
        return;
    };
    runtime.block_on(async {
        if let Ok(client) = tars_server::queue_nats::connect(nats_url).await {
            let jetstream = async_nats::jetstream::new(client);
            for kind in ["JOBS", "EVENTS"] {
                let stream = format!("{}_{kind}", prefix.to_uppercase());
                let _ = jetstream.delete_stream(&stream).await;
            }
        }
    });
}
