//! `POST /auth/login` and `POST /auth/refresh`, and their OpenAPI description.

use super::{Auth, Tokens};
use crate::error::ApiError;
use crate::middleware::ApiJson;
use axum::extract::{FromRef, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use std::fmt;
use std::sync::Arc;

/// The auth routes, for any router state that holds an `Arc<Auth>`; merge them at the root
/// (`Router::new().merge(auth::router())`), so the paths are `/auth/login` and `/auth/refresh`.
pub fn router<S>() -> Router<S>
where
    Arc<Auth>: FromRef<S>,
    S: Clone + Send + Sync + 'static,
{
    Router::new()
        .route("/auth/login", post(login))
        .route("/auth/refresh", post(refresh))
}

/// The OpenAPI description of the auth routes, to merge into the API's document.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(login, refresh),
    components(schemas(LoginRequest, RefreshRequest, Tokens, super::Role)),
    tags((name = "auth", description = "Log in and refresh tokens"))
)]
pub struct AuthApi;

/// [`AuthApi`]'s document.
pub fn openapi() -> utoipa::openapi::OpenApi {
    <AuthApi as utoipa::OpenApi>::openapi()
}

/// The body of `POST /auth/login`.
#[derive(Clone, Deserialize, utoipa::ToSchema)]
pub struct LoginRequest {
    #[schema(example = "admin")]
    pub username: String,
    #[schema(format = Password)]
    pub password: String,
}

/// The body of `POST /auth/refresh`.
#[derive(Clone, Deserialize, utoipa::ToSchema)]
pub struct RefreshRequest {
    /// The refresh token of the last login or refresh; it works once.
    pub refresh_token: String,
}

impl fmt::Debug for LoginRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoginRequest")
            .field("username", &self.username)
            .field("password", &"***")
            .finish()
    }
}

impl fmt::Debug for RefreshRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RefreshRequest")
            .field("refresh_token", &"***")
            .finish()
    }
}

/// Log in with a user name and password.
///
/// Returns an access token for `Authorization: Bearer …` and a refresh token. A wrong user name
/// and a wrong password get the same 401.
#[utoipa::path(
    post,
    path = "/auth/login",
    tag = "auth",
    request_body(content = LoginRequest, example = json!({"username": "admin", "password": "change me please"})),
    responses(
        (status = 200, description = "Logged in", body = Tokens),
        (status = 400, description = "The body is not JSON"),
        (status = 401, description = "Wrong user name or password"),
        (status = 422, description = "The JSON lacks username or password"),
    )
)]
async fn login(
    State(auth): State<Arc<Auth>>,
    ApiJson(request): ApiJson<LoginRequest>,
) -> Result<Response, ApiError> {
    let tokens = auth.login(&request.username, &request.password).await?;
    Ok(no_store(tokens))
}

/// Trade a refresh token for new tokens.
///
/// Each refresh token works once; the answer holds its successor. Presenting a used refresh
/// token revokes every token of its session (401): log in again.
#[utoipa::path(
    post,
    path = "/auth/refresh",
    tag = "auth",
    request_body = RefreshRequest,
    responses(
        (status = 200, description = "New tokens", body = Tokens),
        (status = 400, description = "The body is not JSON"),
        (status = 401, description = "Unknown, expired, revoked or already used refresh token"),
        (status = 422, description = "The JSON lacks refresh_token"),
    )
)]
async fn refresh(
    State(auth): State<Arc<Auth>>,
    ApiJson(request): ApiJson<RefreshRequest>,
) -> Result<Response, ApiError> {
    let tokens = auth.refresh(&request.refresh_token).await?;
    Ok(no_store(tokens))
}

/// Tokens with `Cache-Control: no-store` (RFC 6749 §5.1).
fn no_store(tokens: Tokens) -> Response {
    let mut response = Json(tokens).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
