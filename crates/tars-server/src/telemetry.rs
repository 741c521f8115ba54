//! Logs and traces of the service: the process's `tracing` subscriber writes log lines to
//! stderr (text, or JSON with the span fields) and, when an OTLP endpoint is configured, exports
//! spans to an OpenTelemetry collector over OTLP/HTTP (protobuf).
//!
//! The exporter is the SDK's batch exporter: spans queue in memory and a thread of its own
//! posts them in batches, so a request never waits on the collector. [`Telemetry::shutdown`]
//! flushes what is queued; `tars serve` calls it after the server stopped.
//!
//! A request's span joins the caller's trace: `middleware::observe` makes the incoming W3C
//! `traceparent` the parent of `http_request` ([`remote_parent`]).

use crate::config::Config;
use anyhow::Context as _;
use opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState, TracerProvider as _,
};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use std::sync::atomic::{AtomicBool, Ordering};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::Layer;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Whether [`init`] installed an exporter (the process-wide subscriber is installed once).
static EXPORTING: AtomicBool = AtomicBool::new(false);

/// Whether spans are exported: requests then take their ids from the exported span.
pub fn exporting() -> bool {
    EXPORTING.load(Ordering::Relaxed)
}

/// The installed subscriber's exporter, if any; flush it with [`Telemetry::shutdown`].
#[must_use = "call shutdown() before exiting, or queued spans are lost"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
    /// Where spans go (`…/v1/traces`), for the start-up log line.
    pub traces_url: Option<String>,
}

impl Telemetry {
    /// Exports every queued span and stops the exporter (blocks for at most a few seconds;
    /// call it outside async code or in `spawn_blocking`).
    pub fn shutdown(self) {
        if let Some(provider) = self.provider
            && let Err(err) = provider.shutdown_with_timeout(std::time::Duration::from_secs(5))
        {
            eprintln!("warning: flushing traces to the OTLP collector failed: {err}");
        }
    }
}

/// The collector's base URL: `otlp_endpoint`, else `OTEL_EXPORTER_OTLP_ENDPOINT`, else none.
pub fn otlp_endpoint(config: &Config) -> Option<String> {
    Some(config.get_text("otlp_endpoint").to_string())
        .filter(|url| !url.is_empty())
        .or_else(|| std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT").ok())
        .filter(|url| !url.trim().is_empty())
}

/// Installs the process-wide subscriber: log lines to stderr filtered by `RUST_LOG` (default
/// `info`), and spans at `info` and above to the OTLP collector when one is configured.
pub fn init(config: &Config) -> anyhow::Result<Telemetry> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only for a terminal: a file, a pipe or a log collector gets plain text.
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let logs = if config.get_text("log_format") == "json" {
        fmt.json()
            .with_current_span(true)
            .with_span_list(true)
            .with_filter(filter)
            .boxed()
    } else {
        fmt.with_filter(filter).boxed()
    };
    let (provider, traces_url) = match otlp_endpoint(config) {
        Some(base) => {
            let url = format!("{}/v1/traces", base.trim().trim_end_matches('/'));
            (Some(tracer_provider(config, &url)?), Some(url))
        }
        None => (None, None),
    };
    let traces = provider.as_ref().map(|provider| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("tars"))
            .with_filter(tracing_subscriber::filter::LevelFilter::INFO)
    });
    tracing_subscriber::registry()
        .with(logs)
        .with(traces)
        .try_init()
        .context("installing the tracing subscriber")?;
    EXPORTING.store(provider.is_some(), Ordering::Relaxed);
    Ok(Telemetry {
        provider,
        traces_url,
    })
}

/// A batch exporter to `url` (OTLP/HTTP protobuf), the service name as the resource, and a
/// parent-based sampler: a caller's sampled flag decides, new traces are kept at
/// `otlp_sampling_ratio`.
fn tracer_provider(config: &Config, url: &str) -> anyhow::Result<SdkTracerProvider> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .with_endpoint(url)
        .build()
        .with_context(|| format!("building the OTLP exporter for {url}"))?;
    let ratio = config.get_float("otlp_sampling_ratio");
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(config.get_text("otlp_service_name").to_string())
        .build();
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            ratio,
        ))))
        .with_resource(resource)
        .build())
}

/// The OpenTelemetry context of a caller's span, from the parts of a `traceparent`.
pub fn remote_parent(trace_id: &str, parent_id: &str, sampled: bool) -> opentelemetry::Context {
    let flags = if sampled {
        TraceFlags::SAMPLED
    } else {
        TraceFlags::default()
    };
    let span_context = SpanContext::new(
        TraceId::from_hex(trace_id).unwrap_or(TraceId::INVALID),
        SpanId::from_hex(parent_id).unwrap_or(SpanId::INVALID),
        flags,
        true,
        TraceState::NONE,
    );
    opentelemetry::Context::new().with_remote_span_context(span_context)
}

/// The trace id, span id and sampled flag that `span` exports under, when spans are exported.
pub fn exported_ids(span: &tracing::Span) -> Option<(String, String, bool)> {
    let context = span.context();
    let span_ref = context.span();
    let span_context = span_ref.span_context();
    span_context.is_valid().then(|| {
        (
            span_context.trace_id().to_string(),
            span_context.span_id().to_string(),
            span_context.is_sampled(),
        )
    })
}

/// The W3C `traceparent` of the current span, when spans are exported: it goes with a queued
/// job, so that the worker running it, here or in another process, continues the trace.
pub fn current_traceparent() -> Option<String> {
    let (trace_id, span_id, sampled) = exported_ids(&tracing::Span::current())?;
    Some(format!(
        "00-{trace_id}-{span_id}-{}",
        if sampled { "01" } else { "00" }
    ))
}

/// The context a well-formed `traceparent` names.
pub fn parent_of(traceparent: &str) -> Option<opentelemetry::Context> {
    let parsed = crate::middleware::parse_traceparent(traceparent)?;
    Some(remote_parent(
        &parsed.trace_id,
        &parsed.parent_id,
        parsed.sampled,
    ))
}

/// The OpenTelemetry context of the current span, when spans are exported: work that runs
/// later on another task (a queued job) makes it the parent of its own span.
pub fn current_context() -> Option<opentelemetry::Context> {
    let context = tracing::Span::current().context();
    let valid = context.span().span_context().is_valid();
    valid.then_some(context)
}
