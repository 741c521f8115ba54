//! OTLP trace export end to end: a stand-in collector (an axum server taking OTLP/HTTP protobuf
//! on `POST /v1/traces`), the service exporting to it, an evaluation requested with a caller's
//! `traceparent`, then a stop that flushes the batch exporter. The exported spans must carry
//! the caller's trace id, hang under the caller's span and include the seeds' span names. In
//! fleet mode (NATS, `TARS_TEST_NATS_URL`) the job runs on another replica than the one that
//! queued it, and its span still hangs under the request, through the message's
//! `traceparent`.
//!
//! Its own test binary: the subscriber is process-wide and installed once.

use axum::body::Bytes;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use tars_server::app;
use tars_server::{Config, ConfigArgs};

const ADMIN_PASSWORD: &str = "correct horse battery staple";
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_ID: &str = "00f067aa0ba902b7";

/// Starts the stand-in collector; returns its base URL and the spans it received.
async fn collector() -> (String, Arc<Mutex<Vec<(Span, String)>>>) {
    let spans: Arc<Mutex<Vec<(Span, String)>>> = Arc::default();
    let received = spans.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: Bytes| {
            let received = received.clone();
            async move {
                assert_eq!(headers["content-type"], "application/x-protobuf");
                let request = ExportTraceServiceRequest::decode(body).expect("OTLP protobuf");
                let mut received = received.lock().unwrap();
                for resource in request.resource_spans {
                    let service = resource
                        .resource
                        .iter()
                        .flat_map(|r| &r.attributes)
                        .find(|kv| kv.key == "service.name")
                        .and_then(|kv| kv.value.as_ref())
                        .map(|v| format!("{:?}", v.value))
                        .unwrap_or_default();
                    for scope in resource.scope_spans {
                        for span in scope.spans {
                            received.push((span, service.clone()));
                        }
                    }
                }
                StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, spans)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_are_exported_to_the_collector_in_the_callers_trace() {
    let (collector_url, spans) = collector().await;
    let dir = std::env::temp_dir().join(format!("tars-otlp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let dir_text = dir.display().to_string();
    let config = Config::load(&ConfigArgs::with(&[
        ("data_dir", dir_text.as_str()),
        ("port", "0"),
        ("admin_password", ADMIN_PASSWORD),
        ("rate_limit_rps", "0"),
        ("otlp_endpoint", collector_url.as_str()),
        ("otlp_service_name", "tars-under-test"),
    ]))
    .unwrap();
    let telemetry = tars_server::telemetry::init(&config).unwrap();
    assert_eq!(
        telemetry.traces_url.as_deref(),
        Some(format!("{collector_url}/v1/traces").as_str())
    );
    let running = app::start(config, false).await.unwrap();
    let base = format!("http://{}", running.addr);
    let client = Client::new();

    let login: Value = client
        .post(format!("{base}/auth/login"))
        .json(&json!({"username": "admin", "password": ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login["access_token"].as_str().unwrap();
    // A baseline, so that the evaluation also runs detect_regression.
    let response = client
        .post(format!("{base}/v1/baselines"))
        .bearer_auth(token)
        .json(
            &json!({"agent_type": "PPO", "environment": "CartPole-v1", "mean_reward": 450.0,
                      "std_reward": 25.0, "success_rate": 0.95, "version": 1, "rank": 1}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);

    let response = client
        .post(format!("{base}/v1/evaluate"))
        .bearer_auth(token)
        .header("traceparent", format!("00-{TRACE_ID}-{PARENT_ID}-01"))
        .json(
            &json!({"agent_type": "PPO", "environments": ["CartPole-v1"], "num_episodes": 3,
                      "compare_to_baseline": true, "hyperparameters": {"n_timesteps": 512}}),
        )
        .send()
        .await
        .unwrap();
    let traceparent = response.headers()["traceparent"]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(response.status(), StatusCode::OK);
    let parts: Vec<&str> = traceparent.split('-').collect();
    assert_eq!(
        (parts[0], parts[1], parts[3]),
        ("00", TRACE_ID, "01"),
        "{traceparent}"
    );
    let request_span_id = parts[2].to_string();
    assert_ne!(request_span_id, PARENT_ID, "the server's own span");

    let fleet_request_span = fleet_evaluation(&client).await;

    // The stop flushes nothing by itself; the telemetry shutdown exports what is queued.
    running.stop().await.unwrap();
    tokio::task::spawn_blocking(move || telemetry.shutdown())
        .await
        .unwrap();

    let spans = spans.lock().unwrap();
    let in_trace: Vec<&Span> = spans
        .iter()
        .map(|(span, _)| span)
        .filter(|span| hex(&span.trace_id) == TRACE_ID)
        .collect();
    let names: BTreeSet<&str> = in_trace.iter().map(|span| span.name.as_str()).collect();
    for expected in [
        "http_request",
        "job",
        "evaluate_agent_in_env",
        "load_agent",
        "run_episodes",
        "compute_metrics",
        "detect_regression",
    ] {
        assert!(
            names.contains(expected),
            "{expected} missing from the caller's trace: {names:?}"
        );
    }
    let request = in_trace
        .iter()
        .find(|span| span.name == "http_request" && hex(&span.parent_span_id) == PARENT_ID)
        .expect("the request span is a child of the caller's span");
    assert_eq!(
        hex(&request.span_id),
        request_span_id,
        "the traceparent answered names the exported span"
    );
    let job = in_trace.iter().find(|span| span.name == "job").unwrap();
    assert_eq!(
        hex(&job.parent_span_id),
        request_span_id,
        "job under request"
    );
    let attribute = |span: &Span, key: &str| {
        span.attributes
            .iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| kv.value.as_ref())
            .map(|v| format!("{:?}", v.value))
            .unwrap_or_default()
    };
    assert!(
        attribute(job, "agent.type").contains("PPO"),
        "{:?}",
        job.attributes
    );
    assert!(attribute(job, "environment.name").contains("CartPole-v1"));
    assert!(attribute(job, "job_id").len() > 30);
    assert!(attribute(request, "http.request.method").contains("POST"));
    assert!(attribute(request, "http.route").contains("/v1/evaluate"));
    assert!(
        attribute(request, "http.response.status_code").contains("200"),
        "{:?}",
        request.attributes
    );
    let evaluate = in_trace
        .iter()
        .find(|span| span.name == "evaluate_agent_in_env")
        .unwrap();
    assert_eq!(evaluate.parent_span_id, job.span_id, "engine under job");
    assert!(
        spans
            .iter()
            .all(|(_, service)| service.contains("tars-under-test")),
        "service.name is the configured one"
    );
    // Requests without a traceparent start traces of their own.
    assert!(
        spans
            .iter()
            .any(|(span, _)| span.name == "http_request" && span.parent_span_id.is_empty())
    );
    if let Some(request_span) = fleet_request_span {
        let job = spans
            .iter()
            .map(|(span, _)| span)
            .find(|span| hex(&span.trace_id) == FLEET_TRACE_ID && span.name == "job")
            .expect("the worker's job span is in the caller's trace");
        assert_eq!(
            hex(&job.parent_span_id),
            request_span,
            "the job, run by another replica, hangs under the request that queued it"
        );
        assert!(
            spans
                .iter()
                .any(|(span, _)| span.name == "evaluate_agent_in_env"
                    && span.parent_span_id == job.span_id),
            "the engine's spans under the worker's job"
        );
    }
    std::fs::remove_dir_all(dir).unwrap();
}

const FLEET_TRACE_ID: &str = "0af7651916cd43dd8448eb211c80319c";

/// Fleet mode: a replica without job workers queues an evaluation on NATS and a second replica
/// runs it. The request span's id, or `None` (skipped) without NATS.
async fn fleet_evaluation(client: &Client) -> Option<String> {
    let [nats_url] = tars_testkit::service_urls(["TARS_TEST_NATS_URL"])?;
    let prefix = format!("otlp{}", std::process::id());
    let dir = std::env::temp_dir().join(format!("tars-otlp-fleet-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let dir_text = dir.display().to_string();
    let replica = |job_workers: &'static str| {
        Config::load(&ConfigArgs::with(&[
            ("data_dir", dir_text.as_str()),
            ("port", "0"),
            ("admin_password", ADMIN_PASSWORD),
            ("rate_limit_rps", "0"),
            ("nats_url", nats_url.as_str()),
            ("nats_prefix", prefix.as_str()),
            ("job_workers", job_workers),
        ]))
        .unwrap()
    };
    let api = app::start(replica("0"), false).await.unwrap();
    let worker = app::start(replica("1"), false).await.unwrap();
    let base = format!("http://{}", api.addr);
    let login: Value = client
        .post(format!("{base}/auth/login"))
        .json(&json!({"username": "admin", "password": ADMIN_PASSWORD}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login["access_token"].as_str().unwrap();
    let response = client
        .post(format!("{base}/v1/evaluate"))
        .bearer_auth(token)
        .header("prefer", "respond-async")
        .header("traceparent", format!("00-{FLEET_TRACE_ID}-{PARENT_ID}-01"))
        .json(
            &json!({"agent_type": "PPO", "environments": ["CartPole-v1"], "num_episodes": 2,
                      "hyperparameters": {"n_timesteps": 256, "n_steps": 32, "batch_size": 32}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let request_span = response.headers()["traceparent"]
        .to_str()
        .unwrap()
        .split('-')
        .nth(2)
        .unwrap()
        .to_string();
    let job: Value = response.json().await.unwrap();
    let status_url = format!("{base}{}", job["status_url"].as_str().unwrap());
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let view: Value = client
            .get(&status_url)
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if view["status"] == "succeeded" {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the worker never ran it: {view}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    api.stop().await.unwrap();
    worker.stop().await.unwrap();
    let nats = async_nats::connect(&nats_url).await.unwrap();
    let jetstream = async_nats::jetstream::new(nats);
    for stream in [
        format!("{}_JOBS", prefix.to_uppercase()),
        format!("{}_EVENTS", prefix.to_uppercase()),
    ] {
        let _ = jetstream.delete_stream(&stream).await;
    }
    let _ = std::fs::remove_dir_all(&dir);
    Some(request_span)
}
