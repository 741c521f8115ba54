//! Criterion benchmarks: what checking an access token costs per request. Every request with
//! a token verifies its signature and claims; a token that names a session also asks the
//! store whether the session still lives, at most once per session per second
//! (`SESSION_CHECK_TTL`), so the store lookup is paid by one request a second and the rest
//! find the answer remembered. The lookup is measured on SQLite (embedded mode) and, when
//! `TARS_TEST_DATABASE_URL` names a server, on PostgreSQL (fleet mode).

use criterion::{Criterion, criterion_group, criterion_main};
use std::time::Duration;
use tars_server::auth::{self, Auth, AuthSettings, JwtKey, Role};
use tars_store::Store;
use uuid::Uuid;

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

/// `auth` over `store` with a logged-in user: the access token and its session id.
async fn logged_in(store: &Store) -> (Auth, String, Uuid) {
    let auth = Auth::with_settings(
        store.clone(),
        AuthSettings {
            key: JwtKey::Hs256(SECRET.to_vec()),
            access_token_ttl: Duration::from_secs(900),
            refresh_token_ttl: Duration::from_secs(3600),
            admin_password: None,
        },
    )
    .unwrap();
    let name = format!("bench-{}", Uuid::new_v4().simple());
    auth::create_user(store, &name, Role::Operator, "a long enough password")
        .await
        .unwrap();
    let tokens = auth.login(&name, "a long enough password").await.unwrap();
    let claims = jsonwebtoken::decode::<serde_json::Value>(
        &tokens.access_token,
        &jsonwebtoken::DecodingKey::from_secret(SECRET),
        &jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256),
    )
    .unwrap()
    .claims;
    let sid = claims["sid"].as_str().unwrap().parse().unwrap();
    (auth, tokens.access_token, sid)
}

fn bench_auth(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sqlite = runtime
        .block_on(Store::connect(&format!(
            "sqlite://{}/tars.db",
            dir.path().display()
        )))
        .unwrap();
    let (auth, token, sid) = runtime.block_on(logged_in(&sqlite));
    c.bench_function("access token: signature and claims", |b| {
        b.iter(|| auth.verify(&token).unwrap())
    });
    c.bench_function("access token: session remembered", |b| {
        b.iter(|| runtime.block_on(auth.authenticate(&token)).unwrap())
    });
    c.bench_function("session lookup: SQLite", |b| {
        b.iter(|| assert!(runtime.block_on(sqlite.session_active(sid)).unwrap()))
    });
    if let Some(schema) = runtime.block_on(tars_testkit::PgSchema::create("bench_auth")) {
        let postgres = runtime.block_on(Store::connect(&schema.url())).unwrap();
        let (_, _, sid) = runtime.block_on(logged_in(&postgres));
        c.bench_function("session lookup: PostgreSQL", |b| {
            b.iter(|| assert!(runtime.block_on(postgres.session_active(sid)).unwrap()))
        });
        runtime.block_on(postgres.close());
        runtime.block_on(schema.drop());
    }
    runtime.block_on(sqlite.close());
}

criterion_group!(benches, bench_auth);
criterion_main!(benches);
