//! The API's one error shape, `{"error": {"code", "message", "details"}}`, and the status code
//! of each kind of failure. Handlers return `Result<_, ApiError>`; nothing else reaches a client
//! (no stack traces, no internal messages for 5xx beyond a sentence).

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// An error response.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    /// Stable, machine-readable (`invalid_request`, `unauthorized`, `conflict`…).
    pub code: &'static str,
    /// What was wrong and what is valid.
    pub message: String,
    pub details: Value,
    /// Seconds for `Retry-After` (429, 503).
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            details: Value::Null,
            retry_after: None,
        }
    }

    pub fn with_details(mut self, details: Value) -> ApiError {
        self.details = details;
        self
    }

    pub fn retry_after(mut self, seconds: u64) -> ApiError {
        self.retry_after = Some(seconds);
        self
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    pub fn unprocessable(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_request", message)
    }

    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn conflict(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, "conflict", message)
    }

    pub fn unavailable(message: impl Into<String>, retry_after: u64) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
            .retry_after(retry_after)
    }

    /// 429 with `Retry-After`: a limit on the caller (its rate, its logins, its share of the
    /// queue), not on the service.
    pub fn rate_limited(message: impl Into<String>, retry_after: u64) -> ApiError {
        ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message)
            .retry_after(retry_after)
    }

    /// A failure that is ours, not the client's: logged in full, reported as one sentence.
    pub fn internal(context: &str, err: impl std::fmt::Display) -> ApiError {
        tracing::error!(error = %err, "{context}");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("{context} failed; the server log has the details"),
        )
    }
}

impl ApiError {
    /// The error of a `Service::evaluate` call: the engine's own errors keep their status;
    /// anything else is ours, reported as `context` failing.
    pub fn from_evaluation(err: anyhow::Error, context: &str) -> ApiError {
        let err = match err.downcast::<tars_eval::EvalError>() {
            Ok(err) => return ApiError::from(err),
            Err(err) => err,
        };
        match err.downcast::<crate::resilience::StoreCallError>() {
            Ok(err) => ApiError::from(err),
            Err(err) => ApiError::internal(context, err),
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body =
            json!({"error": {"code": self.code, "message": self.message, "details": self.details}});
        let mut response = (self.status, Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

impl From<tars_store::StoreError> for ApiError {
    fn from(err: tars_store::StoreError) -> ApiError {
        use tars_store::StoreError;
        match &err {
            StoreError::Conflict(_) => ApiError::conflict(err.to_string()),
            StoreError::NotFound { .. } => ApiError::not_found(err.to_string()),
            StoreError::Invalid { .. } => ApiError::unprocessable(err.to_string()),
            _ => ApiError::internal("the database call", err),
        }
    }
}

/// The name of a guarded dependency in messages (the breaker's metric label is lowercase).
fn dependency_name(dependency: &str) -> &str {
    match dependency {
        "postgres" => "PostgreSQL",
        "sqlite" => "SQLite",
        "nats" => "NATS",
        "redis" => "Redis",
        other => other,
    }
}

impl From<tars_runtime::breaker::BreakerOpen> for ApiError {
    /// 503 with `Retry-After`: the dependency's breaker is open, nothing was called.
    fn from(open: tars_runtime::breaker::BreakerOpen) -> ApiError {
        let seconds = open.retry_in.as_secs_f64().ceil().max(1.0) as u64;
        let name = dependency_name(&open.dependency);
        ApiError::unavailable(
            format!(
                "{name} is unavailable: its circuit breaker opened after repeated failures, so \
                 this request was not tried; {name} is tried again in {seconds} s"
            ),
            seconds,
        )
        .with_details(json!({"dependency": open.dependency, "breaker": "open"}))
    }
}

impl From<crate::resilience::StoreCallError> for ApiError {
    /// An open breaker or a database that stayed unreachable through the retries: 503 with
    /// `Retry-After`. The store's other errors keep their status (a conflict is a 409).
    fn from(err: crate::resilience::StoreCallError) -> ApiError {
        match err {
            tars_runtime::breaker::CallError::Open(open) => open.into(),
            tars_runtime::breaker::CallError::Failed(err) if err.is_transient() => {
                tracing::error!(error = %err, "the database stayed unreachable through the retries");
                ApiError::unavailable(
                    "the database did not answer, also when retried; try again in 1 s",
                    1,
                )
            }
            tars_runtime::breaker::CallError::Failed(err) => err.into(),
        }
    }
}

impl From<tars_agents::OverBudget> for ApiError {
    /// 422 `over_budget`, with the estimate, the budget and the key that raises it.
    fn from(over: tars_agents::OverBudget) -> ApiError {
        let unit = match over.resource {
            tars_agents::budget::Resource::Memory => "bytes",
            tars_agents::budget::Resource::EnvSteps
            | tars_agents::budget::Resource::StudyEnvSteps => "environment steps",
        };
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "over_budget",
            over.to_string(),
        )
        .with_details(json!({
            "estimate": over.estimate,
            "budget": over.budget,
            "unit": unit,
            "key": over.resource.key(),
        }))
    }
}

impl From<tars_eval::EvalError> for ApiError {
    fn from(err: tars_eval::EvalError) -> ApiError {
        use tars_eval::{EvalError, RequestError};
        match &err {
            EvalError::Request(RequestError::OverBudget(over)) => over.clone().into(),
            EvalError::Request(_) | EvalError::Agent(_) | EvalError::Env(_) => {
                ApiError::unprocessable(err.to_string())
            }
            EvalError::Checkpoint(_) => ApiError::unprocessable(err.to_string()),
            EvalError::Cancelled => {
                ApiError::new(StatusCode::CONFLICT, "cancelled", err.to_string())
            }
            _ => ApiError::internal("the evaluation", err),
        }
    }
}
