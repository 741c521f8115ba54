//! Cross-cutting HTTP concerns: the JSON body extractor with API-shaped rejections, rate
//! limits (token buckets per IP and per bearer token; in fleet mode shared by the replicas
//! through Redis, local while Redis is degraded), request timeouts, W3C `traceparent`, and
//! the HTTP metrics.

use crate::error::ApiError;
use crate::redis::Redis;
use crate::redis::limits::Taken;
use axum::extract::{ConnectInfo, FromRequest, MatchedPath, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tracing::Instrument;

/// `axum::Json` whose rejections (bad syntax, wrong types, missing content type, too large)
/// are API errors.
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    axum::Json<T>: FromRequest<S, Rejection = axum::extract::rejection::JsonRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(ApiJson(value)),
            Err(rejection) => {
                let status = rejection.status();
                let code = match status.as_u16() {
                    413 => "payload_too_large",
                    415 => "unsupported_media_type",
                    _ => "invalid_request",
                };
                Err(ApiError::new(status, code, rejection.body_text()))
            }
        }
    }
}

/// Token buckets: `rate` tokens per second up to `burst`, one bucket per key; in Redis when
/// it has one that answers, else in this process.
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<u64, (f64, Instant)>>,
    shared: Option<Arc<Redis>>,
}

impl RateLimiter {
    pub fn new(rate: f64, burst: f64) -> RateLimiter {
        RateLimiter {
            rate,
            burst,
            buckets: Mutex::new(HashMap::new()),
            shared: None,
        }
    }

    /// Keeps the buckets in `redis` (shared by the replicas) while it answers.
    pub fn shared(mut self, redis: Option<Arc<Redis>>) -> RateLimiter {
        self.shared = redis;
        self
    }

    /// Takes one token from each of `keys`' buckets in order, stopping at the first empty one:
    /// its position and the seconds until it has a token.
    pub async fn check_all(&self, keys: &[&str]) -> Result<(), (usize, u64)> {
        if self.rate <= 0.0 || keys.is_empty() {
            return Ok(());
        }
        if let Some(redis) = &self.shared
            && let Some(taken) = redis.take_tokens(keys, self.rate, self.burst).await
        {
            return match taken {
                Taken::Allowed => Ok(()),
                Taken::Limited { index, retry_after } => Err((index, retry_after)),
            };
        }
        for (index, key) in keys.iter().enumerate() {
            self.check(key).map_err(|seconds| (index, seconds))?;
        }
        Ok(())
    }

    /// Takes one token for `key`, or says in how many seconds one will be there.
    pub fn check(&self, key: &str) -> Result<(), u64> {
        if self.rate <= 0.0 {
            return Ok(());
        }
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        key.hash(&mut hasher);
        let now = Instant::now();
        let mut buckets = self.buckets.lock().expect("rate limiter lock");
        if buckets.len() > 100_000 {
            let (rate, burst) = (self.rate, self.burst);
            buckets.retain(|_, (tokens, at)| {
                *tokens + now.duration_since(*at).as_secs_f64() * rate < burst
            });
        }
        let (tokens, at) = buckets.entry(hasher.finish()).or_insert((self.burst, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * self.rate).min(self.burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - *tokens) / self.rate).ceil().max(1.0) as u64)
        }
    }
}

/// The operators' probes, never rate-limited: a load balancer's health checks or a Prometheus
/// scrape coming from the same address as busy clients must not read as a failing instance.
pub(crate) const UNLIMITED_PATHS: [&str; 3] = ["/health", "/ready", "/metrics"];

/// Per-IP and per-bearer-token rate limits; 429 with `Retry-After`. The probes of
/// [`UNLIMITED_PATHS`] pass without spending tokens.
pub async fn rate_limit(
    State(limiter): State<Arc<RateLimiter>>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    if UNLIMITED_PATHS.contains(&request.uri().path()) {
        return Ok(next.run(request).await);
    }
    let ip = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip().to_string());
    let token = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(|v| format!("token:{v}"));
    let buckets: Vec<(&str, String)> = [
        ("ip", ip.map(|ip| format!("ip:{ip}"))),
        ("principal", token),
    ]
    .into_iter()
    .filter_map(|(scope, key)| Some((scope, key?)))
    .collect();
    let keys: Vec<&str> = buckets.iter().map(|(_, key)| key.as_str()).collect();
    if let Err((index, seconds)) = limiter.check_all(&keys).await {
        let scope = buckets[index].0;
        metrics::counter!("tars_http_rate_limited_total", "scope" => scope).increment(1);
        return Err(ApiError::rate_limited(
            format!("too many requests from this {scope}; retry in {seconds} s"),
            seconds,
        ));
    }
    Ok(next.run(request).await)
}

/// Ends requests that take longer than the configured timeout with a 503.
pub async fn timeout(
    State(limit): State<Duration>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    tokio::time::timeout(limit, next.run(request))
        .await
        .map_err(|_| {
            ApiError::unavailable(
                format!("the request took longer than {} s", limit.as_secs()),
                1,
            )
        })
}

/// A W3C trace context: the span of the request, child of the incoming `traceparent`'s span
/// (its trace id, or a new one), which every log line of the request carries and which is
/// exported when OTLP export is on; and the `traceparent` response header naming it.
/// Also records `tars_http_requests_total` and `tars_http_request_duration_seconds`.
pub async fn observe(request: Request, next: Next) -> Response {
    let parent = request
        .headers()
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .and_then(parse_traceparent);
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let method = method_label(request.method()).to_string();
    let (span, trace_id, span_id, sampled) = if crate::telemetry::exporting() {
        // The exported span's own ids, under the caller's span when there is one.
        // HTTP semantic conventions; a 5xx marks the span an error.
        let span = tracing::info_span!(
            "http_request",
            %method,
            %route,
            http.request.method = %method,
            http.route = %route,
            http.response.status_code = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
            trace_id = tracing::field::Empty,
            span_id = tracing::field::Empty
        );
        if let Some(parent) = &parent {
            use tracing_opentelemetry::OpenTelemetrySpanExt;
            let _ = span.set_parent(crate::telemetry::remote_parent(
                &parent.trace_id,
                &parent.parent_id,
                parent.sampled,
            ));
        }
        let (trace_id, span_id, sampled) =
            crate::telemetry::exported_ids(&span).unwrap_or_else(|| local_ids(parent));
        span.record("trace_id", trace_id.as_str());
        span.record("span_id", span_id.as_str());
        (span, trace_id, span_id, sampled)
    } else {
        // Nothing is exported: ids for the logs and the response header only.
        let (trace_id, span_id, sampled) = local_ids(parent);
        let span = tracing::info_span!("http_request", %method, %route, trace_id = %trace_id, span_id = %span_id);
        (span, trace_id, span_id, sampled)
    };
    let start = Instant::now();
    let mut response = next.run(request).instrument(span.clone()).await;
    span.record("http.response.status_code", response.status().as_u16());
    if response.status().is_server_error() {
        span.record("otel.status_code", "ERROR");
    }
    let status = response.status().as_u16().to_string();
    metrics::counter!("tars_http_requests_total", "method" => method.clone(), "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("tars_http_request_duration_seconds", "method" => method, "route" => route)
        .record(start.elapsed().as_secs_f64());
    let flags = if sampled { "01" } else { "00" };
    if let Ok(value) = HeaderValue::from_str(&format!("00-{trace_id}-{span_id}-{flags}")) {
        response.headers_mut().insert("traceparent", value);
    }
    response
}

/// Trace id (the caller's, or a new one), a new span id and the sampled flag of a request
/// whose span is not exported.
fn local_ids(parent: Option<TraceParent>) -> (String, String, bool) {
    let span_id = uuid::Uuid::new_v4().simple().to_string()[..16].to_string();
    match parent {
        Some(p) => (p.trace_id, span_id, p.sampled),
        None => (uuid::Uuid::new_v4().simple().to_string(), span_id, true),
    }
}

/// The parts of a valid `traceparent` that name the caller's span.
#[derive(Debug, PartialEq)]
pub(crate) struct TraceParent {
    pub(crate) trace_id: String,
    pub(crate) parent_id: String,
    pub(crate) sampled: bool,
}

/// A valid `traceparent` (`00-<32 hex>-<16 hex>-<2 hex>`, ids not all zero), ids lower-cased.
pub(crate) fn parse_traceparent(value: &str) -> Option<TraceParent> {
    let parts: Vec<&str> = value.trim().split('-').collect();
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    match parts.as_slice() {
        [version, trace, parent, flags]
            if hex(version, 2)
                && *version != "ff"
                && hex(trace, 32)
                && hex(parent, 16)
                && hex(flags, 2)
                && trace.bytes().any(|b| b != b'0')
                && parent.bytes().any(|b| b != b'0') =>
        {
            Some(TraceParent {
                trace_id: trace.to_ascii_lowercase(),
                parent_id: parent.to_ascii_lowercase(),
                sampled: u8::from_str_radix(flags, 16).is_ok_and(|f| f & 1 == 1),
            })
        }
        _ => None,
    }
}

/// The `method` label: the standard methods by name, any other (HTTP allows any token) as
/// `other`, so that a client cannot create series at will.
fn method_label(method: &axum::http::Method) -> &'static str {
    const KNOWN: [&str; 9] = [
        "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE", "CONNECT",
    ];
    KNOWN
        .into_iter()
        .find(|known| *known == method.as_str())
        .unwrap_or("other")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_parsing_follows_the_w3c_format() {
        let valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(
            parse_traceparent(valid),
            Some(TraceParent {
                trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".into(),
                parent_id: "00f067aa0ba902b7".into(),
                sampled: true,
            })
        );
        let unsampled = "00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-00";
        let parsed = parse_traceparent(unsampled).unwrap();
        assert_eq!(parsed.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
        assert!(!parsed.sampled);
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
        ] {
            assert_eq!(parse_traceparent(bad), None, "{bad}");
        }
    }

    #[test]
    fn buckets_allow_a_burst_then_the_rate() {
        let limiter = RateLimiter::new(1.0, 3.0);
        for _ in 0..3 {
            limiter.check("a").unwrap();
        }
        assert_eq!(limiter.check("a"), Err(1));
        limiter.check("b").unwrap();
        assert!(RateLimiter::new(0.0, 1.0).check("a").is_ok(), "0 = off");
    }
}
