//! The auth routes and the `Principal` extractor through axum, without a socket
//! (`tower::ServiceExt::oneshot`): login, refresh rotation and reuse, every 401 and 403, the
//! error shape of bad bodies, RS256 and HS256 keys from the configuration, and the OpenAPI paths.

use axum::body::Body;
use axum::extract::FromRef;
use axum::http::{HeaderMap, Request, StatusCode, header};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tars_server::auth::{self, Auth, AuthSettings, JwtKey, Principal, Role};
use tars_server::{ApiError, Config, ConfigArgs};
use tars_store::Store;
use tower::ServiceExt;

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
const ADMIN_PASSWORD: &str = "correct horse battery staple";

/// A state like the server's: `Arc<Auth>` is reachable through `FromRef`.
#[derive(Clone)]
struct AppState {
    auth: Arc<Auth>,
}

impl FromRef<AppState> for Arc<Auth> {
    fn from_ref(state: &AppState) -> Arc<Auth> {
        state.auth.clone()
    }
}

/// The auth routes plus one route per role that answers who called.
fn app(auth: Arc<Auth>) -> Router {
    async fn whoami(principal: Principal, role: Role) -> Result<Json<Value>, ApiError> {
        principal.require(role)?;
        Ok(Json(
            json!({"subject": principal.subject, "role": principal.role}),
        ))
    }
    Router::new()
        .route(
            "/viewer",
            get(|principal: Principal| whoami(principal, Role::Viewer)),
        )
        .route(
            "/operator",
            get(|principal: Principal| whoami(principal, Role::Operator)),
        )
        .route(
            "/admin",
            get(|principal: Principal| whoami(principal, Role::Admin)),
        )
        .merge(auth::router())
        .with_state(AppState { auth })
}

/// An `Auth` over a fresh in-memory store (also returned) that has its first admin.
async fn new_auth() -> (Arc<Auth>, Store) {
    let store = Store::connect("sqlite::memory:").await.unwrap();
    let auth = Auth::with_settings(
        store.clone(),
        AuthSettings {
            key: JwtKey::Hs256(SECRET.to_vec()),
            access_token_ttl: Duration::from_secs(900),
            refresh_token_ttl: Duration::from_secs(3600),
            admin_password: Some(ADMIN_PASSWORD.into()),
        },
    )
    .unwrap();
    auth.bootstrap_admin().await.unwrap();
    (Arc::new(auth), store)
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

/// Sends one request: `body` as raw text with a JSON content type, `bearer` as the token.
async fn send(app: &Router, method: &str, uri: &str, bearer: Option<&str>, body: &str) -> Reply {
    let mut request = Request::builder().method(method).uri(uri);
    if let Some(token) = bearer {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    if !body.is_empty() {
        request = request.header(header::CONTENT_TYPE, "application/json");
    }
    let request = request.body(Body::from(body.to_string())).unwrap();
    reply(app, request).await
}

async fn reply(app: &Router, request: Request<Body>) -> Reply {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Reply {
        status,
        headers,
        body,
    }
}

async fn login(app: &Router, username: &str, password: &str) -> Reply {
    let body = json!({"username": username, "password": password}).to_string();
    send(app, "POST", "/auth/login", None, &body).await
}

async fn refresh(app: &Router, refresh_token: &Value) -> Reply {
    let body = json!({"refresh_token": refresh_token}).to_string();
    send(app, "POST", "/auth/refresh", None, &body).await
}

/// Asserts the API error shape, status and code; returns the message.
fn error(reply: &Reply, status: StatusCode, code: &str) -> String {
    assert_eq!(reply.status, status, "{}", reply.body);
    assert_eq!(reply.body["error"]["code"], code, "{}", reply.body);
    reply.body["error"]["message"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn login_returns_bearer_tokens_that_open_the_routes_of_the_role() {
    let (auth, store) = new_auth().await;
    let app = app(auth);
    let reply = login(&app, "admin", ADMIN_PASSWORD).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.headers[header::CACHE_CONTROL], "no-store");
    let mut fields: Vec<&str> = reply
        .body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    fields.sort_unstable();
    assert_eq!(
        fields,
        ["access_token", "expires_in", "refresh_token", "token_type"]
    );
    assert_eq!(reply.body["token_type"], "bearer");
    assert_eq!(reply.body["expires_in"], 900);
    let token = reply.body["access_token"].as_str().unwrap();
    for path in ["/viewer", "/operator", "/admin"] {
        let reply = send(&app, "GET", path, Some(token), "").await;
        assert_eq!(reply.status, StatusCode::OK, "{path}: {}", reply.body);
        assert_eq!(reply.body, json!({"subject": "admin", "role": "admin"}));
    }

    // A viewer reaches the viewer route only; 403 names the role needed.
    auth::create_user(&store, "vera", Role::Viewer, "vera's password")
        .await
        .unwrap();
    let reply = login(&app, "vera", "vera's password").await;
    let token = reply.body["access_token"].as_str().unwrap();
    assert_eq!(
        send(&app, "GET", "/viewer", Some(token), "").await.status,
        StatusCode::OK
    );
    let reply = send(&app, "GET", "/operator", Some(token), "").await;
    assert_eq!(
        error(&reply, StatusCode::FORBIDDEN, "forbidden"),
        "this needs the operator role or above; vera is a viewer"
    );
    assert_eq!(reply.body["error"]["details"]["required_role"], "operator");
}

#[tokio::test]
async fn wrong_names_and_passwords_get_one_generic_401() {
    let app = app(new_auth().await.0);
    let wrong_password = login(&app, "admin", "not the password").await;
    let unknown_user = login(&app, "mallory", ADMIN_PASSWORD).await;
    let message = error(&wrong_password, StatusCode::UNAUTHORIZED, "unauthorized");
    assert_eq!(message, "wrong user name or password");
    assert_eq!(
        wrong_password.body, unknown_user.body,
        "no user enumeration"
    );
    assert_eq!(wrong_password.status, unknown_user.status);
}

#[tokio::test]
async fn bad_bodies_get_the_api_error_shape() {
    let app = app(new_auth().await.0);
    let cases = [
        ("{not json", StatusCode::BAD_REQUEST, "invalid_request"),
        (
            r#"{"username": "admin"}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
        ),
        (
            r#"{"username": "admin", "password": 12345678}"#,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
        ),
    ];
    for (body, status, code) in cases {
        let reply = send(&app, "POST", "/auth/login", None, body).await;
        let message = error(&reply, status, code);
        assert!(!message.is_empty(), "{body}");
    }
    let missing = send(
        &app,
        "POST",
        "/auth/login",
        None,
        r#"{"username": "admin"}"#,
    )
    .await;
    assert!(
        error(
            &missing,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request"
        )
        .contains("missing field `password`")
    );
    let no_content_type = Request::post("/auth/login")
        .body(Body::from(r#"{"username": "admin", "password": "x"}"#))
        .unwrap();
    let reply = reply(&app, no_content_type).await;
    assert!(
        error(
            &reply,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type"
        )
        .contains("application/json")
    );
    let reply = send(&app, "POST", "/auth/refresh", None, "{}").await;
    assert!(
        error(&reply, StatusCode::UNPROCESSABLE_ENTITY, "invalid_request")
            .contains("missing field `refresh_token`")
    );
}

#[tokio::test]
async fn refresh_rotates_and_a_reused_refresh_token_ends_the_session() {
    let app = app(new_auth().await.0);
    let first = login(&app, "admin", ADMIN_PASSWORD).await.body;
    let second = refresh(&app, &first["refresh_token"]).await;
    assert_eq!(second.status, StatusCode::OK, "{}", second.body);
    assert_eq!(second.headers[header::CACHE_CONTROL], "no-store");
    assert_ne!(second.body["refresh_token"], first["refresh_token"]);
    let token = second.body["access_token"].as_str().unwrap();
    assert_eq!(
        send(&app, "GET", "/admin", Some(token), "").await.status,
        StatusCode::OK
    );

    let reused = refresh(&app, &first["refresh_token"]).await;
    assert_eq!(
        error(&reused, StatusCode::UNAUTHORIZED, "unauthorized"),
        "refresh token already used; every token of its session is revoked now, log in again"
    );
    let revoked = refresh(&app, &second.body["refresh_token"]).await;
    assert_eq!(
        error(&revoked, StatusCode::UNAUTHORIZED, "unauthorized"),
        "refresh token revoked; log in again"
    );
    let unknown = refresh(&app, &json!("tars_rt_not-a-token")).await;
    assert_eq!(
        error(&unknown, StatusCode::UNAUTHORIZED, "unauthorized"),
        "unknown refresh token; log in again"
    );
    // A new login starts a new session.
    let again = login(&app, "admin", ADMIN_PASSWORD).await.body;
    assert_eq!(
        refresh(&app, &again["refresh_token"]).await.status,
        StatusCode::OK
    );
}

/// An access token dies with its session: after its user is removed, its password changed or
/// its refresh token reused, it fails (401 saying why) within `SESSION_CHECK_TTL`, on any
/// replica, since the store answers.
#[tokio::test]
async fn ending_a_session_ends_its_access_tokens() {
    let (auth, store) = new_auth().await;
    let app = app(auth);
    let ended = "this access token's session has ended";
    let after_the_check =
        || tokio::time::sleep(auth::SESSION_CHECK_TTL + Duration::from_millis(100));
    for user in ["removed", "new-password", "reused"] {
        auth::create_user(&store, user, Role::Operator, "a long enough password")
            .await
            .unwrap();
        let tokens = login(&app, user, "a long enough password").await.body;
        let token = tokens["access_token"].as_str().unwrap();
        assert_eq!(
            send(&app, "GET", "/operator", Some(token), "").await.status,
            StatusCode::OK
        );
        match user {
            "removed" => store.delete_user(user).await.unwrap(),
            "new-password" => {
                let hash = auth::hash_password("another long password").unwrap();
                store.set_password(user, &hash).await.unwrap();
            }
            _ => {
                let next = refresh(&app, &tokens["refresh_token"]).await;
                assert_eq!(next.status, StatusCode::OK);
                let reused = refresh(&app, &tokens["refresh_token"]).await;
                assert_eq!(reused.status, StatusCode::UNAUTHORIZED);
                // The rotated token's access token belongs to the same, now revoked, session.
                let rotated = next.body["access_token"].as_str().unwrap().to_string();
                after_the_check().await;
                let refused = send(&app, "GET", "/operator", Some(&rotated), "").await;
                assert!(error(&refused, StatusCode::UNAUTHORIZED, "unauthorized").contains(ended));
            }
        }
        after_the_check().await;
        let refused = send(&app, "GET", "/operator", Some(token), "").await;
        let message = error(&refused, StatusCode::UNAUTHORIZED, "unauthorized");
        assert!(message.contains(ended), "{user}: {message}");
    }
    // Other sessions live on.
    let admin = login(&app, "admin", ADMIN_PASSWORD).await.body;
    let token = admin["access_token"].as_str().unwrap();
    assert_eq!(
        send(&app, "GET", "/admin", Some(token), "").await.status,
        StatusCode::OK
    );
}

/// Failed logins back off per account: after five in a row, 429 with Retry-After, without
/// even checking the password; other accounts are not affected.
#[tokio::test]
async fn failed_logins_back_off_per_account() {
    let app = app(new_auth().await.0);
    for _ in 0..auth::FREE_LOGIN_FAILURES {
        let reply = login(&app, "admin", "a wrong password").await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    }
    // The sixth failure starts the wait; then even the right password waits.
    assert_eq!(
        login(&app, "admin", "a wrong password").await.status,
        StatusCode::UNAUTHORIZED
    );
    let waiting = login(&app, "admin", ADMIN_PASSWORD).await;
    let message = error(&waiting, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    assert!(
        message.contains("too many failed logins for this account"),
        "{message}"
    );
    assert_eq!(waiting.headers["retry-after"], "1");
    // Another account logs in meanwhile.
    assert_eq!(
        login(&app, "nobody", "x").await.status,
        StatusCode::UNAUTHORIZED
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        login(&app, "admin", ADMIN_PASSWORD).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn every_bad_bearer_gets_a_401_that_says_what_was_wrong() {
    let app = app(new_auth().await.0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let sign = |claims: Value, secret: &[u8]| {
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(secret),
        )
        .unwrap()
    };
    let claims = |exp: u64| json!({"sub": "admin", "role": "admin", "exp": exp, "iat": now - 10, "jti": "t"});
    let expired = sign(claims(now - 5), SECRET);
    let foreign = sign(claims(now + 60), b"another secret, another server!!");
    let valid = sign(claims(now + 60), SECRET);
    assert_eq!(
        send(&app, "GET", "/admin", Some(&valid), "").await.status,
        StatusCode::OK
    );

    let without_header = send(&app, "GET", "/viewer", None, "").await;
    let basic = reply(
        &app,
        Request::get("/viewer")
            .header(header::AUTHORIZATION, "Basic YWRtaW46YWRtaW4=")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    let cases = [
        (
            without_header,
            "missing Authorization header; send `Authorization: Bearer <access token>` with a \
             token from POST /auth/login",
        ),
        (
            basic,
            "malformed Authorization header: expected `Bearer <access token>`",
        ),
        (
            send(&app, "GET", "/viewer", Some("not-a-jwt"), "").await,
            "malformed access token: expected a JWT from POST /auth/login",
        ),
        (
            send(&app, "GET", "/viewer", Some(&expired), "").await,
            "access token expired; get a new one from POST /auth/refresh",
        ),
        (
            send(&app, "GET", "/viewer", Some(&foreign), "").await,
            "invalid access token signature: it was not issued by this server, or it was altered",
        ),
    ];
    for (reply, message) in cases {
        assert_eq!(
            error(&reply, StatusCode::UNAUTHORIZED, "unauthorized"),
            message
        );
    }
}

#[tokio::test]
async fn keys_come_from_the_configuration_and_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let data_dir = data_dir.to_str().unwrap();
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
    let private = format!("{fixtures}/auth_rs256_private.pem");
    let public = format!("{fixtures}/auth_rs256_public.pem");
    let principal = Principal {
        subject: "ops".into(),
        role: Role::Operator,
    };
    let load = |values: &[(&'static str, &str)]| {
        let mut all = vec![("data_dir", data_dir)];
        all.extend_from_slice(values);
        Config::load(&ConfigArgs::with(&all)).unwrap()
    };
    let store = Store::connect("sqlite::memory:").await.unwrap();

    // HS256 without jwt_secret: a key file is made once, and a restarted server accepts the
    // tokens of the previous one.
    let first = Auth::new(store.clone(), &load(&[])).unwrap();
    let token = first.issue_access_token(&principal).unwrap();
    assert!(std::path::Path::new(data_dir).join("jwt_secret").exists());
    let restarted = Auth::new(store.clone(), &load(&[])).unwrap();
    assert_eq!(restarted.verify(&token).unwrap(), principal);

    // RS256 from PEM files.
    let rs256 = load(&[
        ("jwt_algorithm", "RS256"),
        ("jwt_private_key_file", &private),
        ("jwt_public_key_file", &public),
    ]);
    let auth = Auth::new(store.clone(), &rs256).unwrap();
    let token = auth.issue_access_token(&principal).unwrap();
    assert_eq!(auth.verify(&token).unwrap(), principal);
    assert_eq!(
        jsonwebtoken::decode_header(&token).unwrap().alg,
        jsonwebtoken::Algorithm::RS256
    );
    assert!(matches!(
        restarted.verify(&token),
        Err(auth::AuthError::WrongAlgorithm { expected: "HS256" })
    ));

    let missing = Auth::new(store.clone(), &load(&[("jwt_algorithm", "RS256")])).unwrap_err();
    assert_eq!(
        missing.to_string(),
        "invalid jwt_private_key_file: jwt_algorithm = RS256 needs jwt_private_key_file and \
         jwt_public_key_file (PEM files)"
    );
    let unreadable = Auth::new(
        store.clone(),
        &load(&[
            ("jwt_algorithm", "RS256"),
            ("jwt_private_key_file", "/nonexistent/key.pem"),
            ("jwt_public_key_file", &public),
        ]),
    )
    .unwrap_err();
    assert!(
        unreadable
            .to_string()
            .starts_with("invalid jwt_private_key_file: cannot read /nonexistent/key.pem"),
        "{unreadable}"
    );
    let configured = load(&[("jwt_secret", "too short")]);
    assert_eq!(
        Auth::new(store, &configured).unwrap_err().to_string(),
        "invalid jwt_secret: it is 9 bytes long; use at least 32 random bytes (e.g. `openssl rand -hex 32`)"
    );
}

#[test]
fn the_openapi_document_has_both_routes_and_the_token_schema() {
    let document = serde_json::to_value(auth::openapi()).unwrap();
    for path in ["/auth/login", "/auth/refresh"] {
        let operation = &document["paths"][path]["post"];
        assert_eq!(operation["tags"], json!(["auth"]), "{path}");
        assert!(operation["responses"]["200"].is_object(), "{path}");
        assert!(operation["responses"]["401"].is_object(), "{path}");
    }
    let schemas = &document["components"]["schemas"];
    for schema in ["LoginRequest", "RefreshRequest", "Tokens", "Role"] {
        assert!(schemas[schema].is_object(), "{schema}");
    }
    assert_eq!(
        schemas["Role"]["enum"],
        json!(["viewer", "operator", "admin"])
    );
}
