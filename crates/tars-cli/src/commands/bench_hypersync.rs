//! `tars bench hypersync`: hot reload under load. An embedded server on loopback serves a
//! CartPole PPO policy to `clients` connections calling `act` as fast as they can, while
//! `swaps` config versions are written through `PUT /v1/agents/PPO/config`. Reports `act`
//! throughput during the swaps, the PUT latency, and the reload latency (swap requested →
//! first `act` served by the new version) as the server's own histogram measured it; then
//! the latency of `POST /v1/nash/compute` over 5 stored proposals × 3 environments.

use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tars_agents::{Algo, Silent};
use tars_server::app;
use tars_server::config::{Config, ConfigArgs};

const PASSWORD: &str = "bench password, not a secret";

pub fn run(swaps: u32, clients: usize, json_out: bool) -> anyhow::Result<()> {
    let dir = tempfile_dir()?;
    let data_dir = dir.display().to_string();
    let config = Config::load(&ConfigArgs::with(&[
        ("data_dir", data_dir.as_str()),
        ("port", "0"),
        ("admin_password", PASSWORD),
        ("rate_limit_rps", "0"),
        ("auto_rollback", "0"),
        ("log_format", "text"),
    ]))?;
    write_checkpoint(&dir)?;
    let result = crate::runtime()?.block_on(measure(config, swaps, clients));
    let _ = std::fs::remove_dir_all(&dir);
    let report = result?;
    if json_out {
        println!("{report}");
    } else {
        println!("hot reload under load ({clients} act clients, {swaps} swaps, loopback)");
        println!(
            "  act            {:>9.0} req/s during swaps   (target ≥ 10,000)",
            report["act_per_second"].as_f64().unwrap_or(0.0)
        );
        println!(
            "  reload latency p50 {:.3} ms  p99 {:.3} ms   (target p99 < 5 ms; seed < 100 ms)",
            report["reload_ms_p50"].as_f64().unwrap_or(f64::NAN),
            report["reload_ms_p99"].as_f64().unwrap_or(f64::NAN)
        );
        println!(
            "  PUT config     p50 {:.3} ms  p99 {:.3} ms",
            report["put_ms_p50"].as_f64().unwrap_or(f64::NAN),
            report["put_ms_p99"].as_f64().unwrap_or(f64::NAN)
        );
        println!(
            "  Nash 5 proposals × 3 envs (stored) p50 {:.2} ms  p99 {:.2} ms   (target < 50 ms; seed < 1 s)",
            report["nash_5x3_ms_p50"].as_f64().unwrap_or(f64::NAN),
            report["nash_5x3_ms_p99"].as_f64().unwrap_or(f64::NAN)
        );
    }
    Ok(())
}

fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("tars-bench-hypersync-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// A small trained PPO CartPole policy at `<dir>/checkpoints/bench`.
pub(crate) fn write_checkpoint(dir: &std::path::Path) -> anyhow::Result<()> {
    let overrides = serde_json::Map::new();
    let out = tars_agents::train::train(
        Algo::Ppo,
        "CartPole-v1",
        &overrides,
        0,
        Some(2_048),
        &mut Silent,
    )?;
    let (weights, metadata) = tars_agents::checkpoint::encode(
        &out.policy,
        &out.hyperparams,
        0,
        out.timesteps,
        &out.curve,
    );
    let ckpt = dir.join("checkpoints").join("bench");
    std::fs::create_dir_all(&ckpt)?;
    std::fs::write(ckpt.join(tars_agents::checkpoint::WEIGHTS_FILE), weights)?;
    std::fs::write(ckpt.join(tars_agents::checkpoint::METADATA_FILE), metadata)?;
    Ok(())
}

async fn measure(config: Config, swaps: u32, clients: usize) -> anyhow::Result<Value> {
    let running = app::start(config, false).await?;
    let base = format!("http://{}", running.addr);
    let http = reqwest::Client::new();
    let login: Value = http
        .post(format!("{base}/auth/login"))
        .json(&json!({"username": "admin", "password": PASSWORD}))
        .send()
        .await?
        .json()
        .await?;
    let token = login["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let put = |version: u32| {
        let body = json!({"expected_version": version, "checkpoint_id": "bench",
            "hyperparameters": {"learning_rate": 0.001 + f64::from(version) * 1e-6}});
        http.put(format!("{base}/v1/agents/PPO/config"))
            .bearer_auth(&token)
            .json(&body)
            .send()
    };
    let first = put(0).await?;
    anyhow::ensure!(
        first.status().is_success(),
        "PUT config failed: {}",
        first.text().await?
    );

    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicU64::new(0));
    let mut load = Vec::new();
    for _ in 0..clients {
        let (http, url, token) = (
            http.clone(),
            format!("{base}/v1/agents/PPO/act"),
            token.clone(),
        );
        let (stop, served) = (stop.clone(), served.clone());
        load.push(tokio::spawn(async move {
            let body = json!({"observation": [0.01, -0.02, 0.03, 0.04]});
            while !stop.load(Ordering::Relaxed) {
                let response = http
                    .post(&url)
                    .bearer_auth(&token)
                    .json(&body)
                    .send()
                    .await?;
                anyhow::ensure!(
                    response.status().is_success(),
                    "act failed: {}",
                    response.status()
                );
                response.bytes().await?;
                served.fetch_add(1, Ordering::Relaxed);
            }
            anyhow::Ok(())
        }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let start = Instant::now();
    let before = served.load(Ordering::Relaxed);
    let mut put_ms = Vec::with_capacity(swaps as usize);
    for version in 1..=swaps {
        let t = Instant::now();
        let response = put(version).await?;
        anyhow::ensure!(
            response.status().is_success(),
            "PUT config failed: {}",
            response.text().await?
        );
        put_ms.push(t.elapsed().as_secs_f64() * 1e3);
        // Give the clients a moment to be served by the new version, as a real rollout would.
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let elapsed = start.elapsed().as_secs_f64();
    let acts = served.load(Ordering::Relaxed) - before;
    stop.store(true, Ordering::Relaxed);
    for task in load {
        task.await??;
    }
    let nash_ms = nash_latency(&http, &base, &token).await?;
    let metrics = http
        .get(format!("{base}/metrics"))
        .send()
        .await?
        .text()
        .await?;
    running.stop().await?;
    put_ms.sort_by(f64::total_cmp);
    let quantile = |q: &str| {
        metrics
            .lines()
            .find(|l| {
                l.starts_with("tars_hypersync_reload_seconds{")
                    && l.contains(&format!("quantile=\"{q}\""))
            })
            .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .map(|s| s * 1e3)
    };
    let count = metrics
        .lines()
        .find(|l| l.starts_with("tars_hypersync_reload_seconds_count"))
        .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok());
    Ok(json!({
        "swaps": swaps, "clients": clients, "act_requests": acts,
        "act_per_second": acts as f64 / elapsed,
        "reload_ms_p50": quantile("0.5"), "reload_ms_p99": quantile("0.99"),
        "reloads_measured": count,
        "put_ms_p50": put_ms[put_ms.len() / 2],
        "put_ms_p99": put_ms[(put_ms.len() * 99 / 100).min(put_ms.len() - 1)],
        "nash_5x3_ms_p50": nash_ms[nash_ms.len() / 2],
        "nash_5x3_ms_p99": nash_ms[(nash_ms.len() * 99 / 100).min(nash_ms.len() - 1)],
    }))
}

/// `POST /v1/nash/compute` over 5 stored proposals evaluated on 3 environments (short
/// trainings, so the setup takes seconds): milliseconds per call, sorted, over 100 calls.
async fn nash_latency(http: &reqwest::Client, base: &str, token: &str) -> anyhow::Result<Vec<f64>> {
    let mut ids = Vec::new();
    for i in 0..5 {
        let body = json!({"agent_type": "PPO", "evaluate_before_apply": true, "num_episodes": 5,
            "environments": ["CartPole-v1", "Acrobot-v1", "MountainCar-v0"],
            "proposed_hyperparameters": {"n_timesteps": 2048, "learning_rate": 0.0003 * f64::from(i + 1)}});
        let created: Value = http
            .post(format!("{base}/v1/proposals"))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await?
            .json()
            .await?;
        let id = created["id"].as_str().unwrap_or_default().to_string();
        loop {
            let p: Value = http
                .get(format!("{base}/v1/proposals/{id}"))
                .bearer_auth(token)
                .send()
                .await?
                .json()
                .await?;
            if p["status"] != "evaluating" {
                anyhow::ensure!(
                    p["evaluation_id"].is_string(),
                    "proposal {id} has no evaluation: {p}"
                );
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        ids.push(id);
    }
    let body = json!({"agent_type": "PPO", "proposal_ids": ids});
    let mut ms = Vec::with_capacity(100);
    for _ in 0..100 {
        let t = Instant::now();
        let response = http
            .post(format!("{base}/v1/nash/compute"))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await?;
        anyhow::ensure!(
            response.status().is_success(),
            "nash failed: {}",
            response.text().await?
        );
        let answer: Value = response.json().await?;
        anyhow::ensure!(
            answer["evaluated"] == json!([]),
            "the game evaluated missing pairs: {answer}"
        );
        ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    ms.sort_by(f64::total_cmp);
    Ok(ms)
}
