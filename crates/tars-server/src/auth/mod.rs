//! Who may call the API: users with argon2id passwords and a role (viewer < operator < admin),
//! short-lived JWT access tokens, and rotating refresh tokens.
//!
//! - [`Auth::login`] checks a user name and password and returns [`Tokens`]: an access token
//!   (HS256 or RS256, `access_token_ttl`, default 15 min) and an opaque refresh token
//!   (`refresh_token_ttl`, default 7 days) that starts a new family.
//! - [`Auth::refresh`] trades a refresh token for new tokens. Each refresh token works once: its
//!   successor joins the same family, and presenting a used one revokes the family (the rules
//!   are `tars_store::Store::use_refresh_token`'s).
//! - [`Principal`], an axum extractor, verifies `Authorization: Bearer <access token>`;
//!   [`Principal::require`] checks the role. [`router`] serves `POST /auth/login` and
//!   `POST /auth/refresh`; [`openapi`] documents them.
//! - [`Auth::bootstrap_admin`] creates the first user, `admin`, on a database without users.
//!
//! Passwords, tokens and keys are never logged, and their `Debug` output is masked.

mod extract;
mod jwt;
mod password;
mod routes;

pub use extract::bearer_token;
pub use jwt::{JwtKey, MIN_SECRET_BYTES};
pub use password::{
    MAX_PASSWORD_BYTES, MIN_PASSWORD_CHARS, check_new_password, generate_password, hash_password,
};
pub use routes::{AuthApi, LoginRequest, RefreshRequest, openapi, router};

use crate::config::Config;
use crate::error::ApiError;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;
use tars_store::{
    Conflict, NewRefreshToken, NewUser, NextRefreshToken, RefreshUse, Store, StoreError, UserRow,
};
use tokio::sync::Semaphore;
use uuid::Uuid;

/// What a user may do; each role may do everything the roles below it may.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads baselines, jobs and results.
    Viewer,
    /// Also submits and cancels evaluations.
    Operator,
    /// Also writes baselines.
    Admin,
}

impl Role {
    /// Lowest first.
    pub const ALL: [Role; 3] = [Role::Viewer, Role::Operator, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = AuthError;

    /// `viewer`, `operator` or `admin`, in any case.
    fn from_str(text: &str) -> Result<Role, AuthError> {
        Role::ALL
            .into_iter()
            .find(|role| role.as_str().eq_ignore_ascii_case(text.trim()))
            .ok_or_else(|| AuthError::UnknownRole(text.to_string()))
    }
}

/// Who is calling: the user name from a verified access token, and the role it carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub subject: String,
    pub role: Role,
}

impl Principal {
    /// `Ok` when the principal's role is `role` or above; else 403 naming the role needed.
    pub fn require(&self, role: Role) -> Result<(), ApiError> {
        if self.role >= role {
            return Ok(());
        }
        Err(ApiError::forbidden(format!(
            "this needs the {role} role or above; {} is {} {}",
            self.subject,
            if self.role == Role::Operator {
                "an"
            } else {
                "a"
            },
            self.role
        ))
        .with_details(serde_json::json!({"required_role": role, "role": self.role})))
    }
}

/// The answer of `POST /auth/login` and `POST /auth/refresh` (RFC 6749 §5.1's names).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Tokens {
    /// A JWT for `Authorization: Bearer …`.
    pub access_token: String,
    /// Opaque; trade it once at `POST /auth/refresh` for new tokens.
    pub refresh_token: String,
    /// Always `bearer`.
    #[schema(example = "bearer")]
    pub token_type: String,
    /// Seconds until the access token expires.
    #[schema(example = 900)]
    pub expires_in: u64,
}

impl fmt::Debug for Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tokens")
            .field("access_token", &"***")
            .field("refresh_token", &"***")
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .finish()
    }
}

/// Everything [`Auth`] needs besides the store; [`Auth::new`] reads it from the configuration.
#[derive(Clone)]
pub struct AuthSettings {
    pub key: JwtKey,
    pub access_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    /// The first admin's password; `None`: generate one and print it once.
    pub admin_password: Option<String>,
}

impl fmt::Debug for AuthSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthSettings")
            .field("key", &self.key)
            .field("access_token_ttl", &self.access_token_ttl)
            .field("refresh_token_ttl", &self.refresh_token_ttl)
            .field(
                "admin_password",
                &self.admin_password.as_ref().map(|_| "***"),
            )
            .finish()
    }
}

/// What [`Auth::bootstrap_admin`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bootstrap {
    /// There was an admin already; nothing changed.
    Existing,
    /// Created `admin`, with the configured password or (`generated_password`) a printed one.
    Created { generated_password: bool },
}

/// Everything that can go wrong in authentication; [`ApiError`] maps each to its status.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// Wrong user name or password: one message for both, so that names cannot be probed.
    #[error("wrong user name or password")]
    InvalidCredentials,
    #[error(
        "missing Authorization header; send `Authorization: Bearer <access token>` with a token \
         from POST /auth/login"
    )]
    MissingToken,
    #[error("malformed Authorization header: expected `Bearer <access token>`")]
    MalformedHeader,
    #[error("malformed access token: expected a JWT from POST /auth/login")]
    MalformedToken,
    #[error("access token expired; get a new one from POST /auth/refresh")]
    TokenExpired,
    #[error("invalid access token signature: it was not issued by this server, or it was altered")]
    BadSignature,
    #[error("access token is not signed with {expected}, the only algorithm this server accepts")]
    WrongAlgorithm { expected: &'static str },
    #[error(
        "invalid access token claims: expected sub, role (viewer, operator or admin), exp, iat and jti"
    )]
    InvalidClaims,
    /// A used refresh token came back: it was copied, so its whole family is revoked now.
    #[error("refresh token already used; every token of its session is revoked now, log in again")]
    RefreshReused,
    #[error("refresh token revoked; log in again")]
    RefreshRevoked,
    /// Too many failed logins in a row for one account: it waits `seconds` (at most a minute).
    #[error(
        "too many failed logins for this account; try again in {seconds} s (each further failure doubles the wait, up to 60 s; a success resets it)"
    )]
    LoginBackoff { seconds: u64 },
    #[error(
        "this access token's session has ended (its user was removed, its password changed, it logged out or its refresh token was reused); log in again"
    )]
    SessionEnded,
    #[error("refresh token expired; log in again")]
    RefreshExpired,
    #[error("unknown refresh token; log in again")]
    RefreshUnknown,
    #[error("unknown role '{0}'; valid roles: viewer, operator, admin")]
    UnknownRole(String),
    #[error("the password {0}")]
    WeakPassword(String),
    /// A configuration key has an unusable value.
    #[error("invalid {key}: {reason}")]
    Config { key: &'static str, reason: String },
    /// The HS256 key file in the data directory cannot be read or created.
    #[error("the access-token key file {}: {reason}", path.display())]
    SecretFile { path: PathBuf, reason: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("password hashing failed: {0}")]
    Hashing(String),
    #[error("signing an access token failed: {0}")]
    Signing(String),
    #[error("the operating system's random number generator failed: {0}")]
    Random(String),
}

impl From<AuthError> for ApiError {
    fn from(error: AuthError) -> ApiError {
        match error {
            AuthError::InvalidCredentials
            | AuthError::MissingToken
            | AuthError::MalformedHeader
            | AuthError::MalformedToken
            | AuthError::TokenExpired
            | AuthError::BadSignature
            | AuthError::WrongAlgorithm { .. }
            | AuthError::InvalidClaims
            | AuthError::RefreshReused
            | AuthError::RefreshRevoked
            | AuthError::SessionEnded
            | AuthError::RefreshExpired
            | AuthError::RefreshUnknown => ApiError::unauthorized(error.to_string()),
            AuthError::LoginBackoff { seconds } => {
                ApiError::rate_limited(error.to_string(), seconds)
            }
            AuthError::UnknownRole(_) | AuthError::WeakPassword(_) => {
                ApiError::unprocessable(error.to_string())
            }
            AuthError::Store(error) => ApiError::from(error),
            _ => ApiError::internal("authentication", error),
        }
    }
}

/// Logs users in, rotates refresh tokens and verifies access tokens. Share it as `Arc<Auth>`.
pub struct Auth {
    store: Store,
    keys: jwt::Keys,
    access_token_ttl: Duration,
    refresh_token_ttl: Duration,
    admin_password: Option<String>,
    /// Bounds the argon2 computations running at once (each takes 19 MiB and a core).
    hashing: Semaphore,
    /// Sessions checked against the store lately: id → (when, alive), see [`Auth::authenticate`].
    sessions: std::sync::Mutex<std::collections::HashMap<Uuid, (std::time::Instant, bool)>>,
    /// The store's breaker, when the server has one: while it is open, session checks do not
    /// wait on the store.
    breaker: Option<std::sync::Arc<tars_runtime::breaker::CircuitBreaker>>,
    /// Failed logins per account name: (failures in a row, refused until).
    failures: std::sync::Mutex<std::collections::HashMap<String, (u32, std::time::Instant)>>,
}

/// Failed logins in a row an account gets before it waits; then 1 s, doubling per failure,
/// at most [`MAX_LOGIN_BACKOFF`]: guessing slows to a crawl, and a real user whose name an
/// attacker hammers is kept out for a minute at most.
pub const FREE_LOGIN_FAILURES: u32 = 5;
pub const MAX_LOGIN_BACKOFF: Duration = Duration::from_secs(60);

/// How long a session check against the store is reused: a revoked session's access tokens
/// fail on every replica within this long (the store is the shared truth).
pub const SESSION_CHECK_TTL: Duration = Duration::from_secs(1);
/// Most sessions remembered; the memory is cleared past it.
const MAX_REMEMBERED_SESSIONS: usize = 100_000;

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Auth")
            .field("store", &self.store.backend())
            .field("algorithm", &self.keys.algorithm_name())
            .field("access_token_ttl", &self.access_token_ttl)
            .field("refresh_token_ttl", &self.refresh_token_ttl)
            .finish_non_exhaustive()
    }
}

impl Auth {
    /// Reads the keys and lifetimes from `config`: `jwt_algorithm`, `jwt_secret` (or the file
    /// `<data_dir>/jwt_secret`, created on first use), `jwt_private_key_file` and
    /// `jwt_public_key_file`, `access_token_ttl`, `refresh_token_ttl`, `admin_password`.
    pub fn new(store: Store, config: &Config) -> Result<Auth, AuthError> {
        let key = match config.jwt_algorithm() {
            "RS256" => {
                let read = |key: &'static str, path: Option<PathBuf>| match path {
                    Some(path) => std::fs::read(&path).map_err(|error| AuthError::Config {
                        key,
                        reason: format!("cannot read {}: {error}", path.display()),
                    }),
                    None => Err(AuthError::Config {
                        key,
                        reason: "jwt_algorithm = RS256 needs jwt_private_key_file and \
                                 jwt_public_key_file (PEM files)"
                            .into(),
                    }),
                };
                JwtKey::Rs256 {
                    private_pem: read("jwt_private_key_file", config.jwt_private_key_file())?,
                    public_pem: read("jwt_public_key_file", config.jwt_public_key_file())?,
                }
            }
            _ => match config.jwt_secret() {
                Some(secret) => JwtKey::Hs256(secret.as_bytes().to_vec()),
                None => JwtKey::Hs256(jwt::load_or_create_secret(
                    &config.data_dir().join("jwt_secret"),
                )?),
            },
        };
        Auth::with_settings(
            store,
            AuthSettings {
                key,
                access_token_ttl: config.access_token_ttl(),
                refresh_token_ttl: config.refresh_token_ttl(),
                admin_password: config.admin_password().map(String::from),
            },
        )
    }

    /// An `Auth` from explicit settings (tests, tools).
    pub fn with_settings(store: Store, settings: AuthSettings) -> Result<Auth, AuthError> {
        password::warm_up();
        let n_hashers = std::thread::available_parallelism().map_or(2, |n| n.get());
        Ok(Auth {
            store,
            keys: jwt::Keys::new(&settings.key)?,
            access_token_ttl: settings.access_token_ttl,
            refresh_token_ttl: settings.refresh_token_ttl,
            admin_password: settings.admin_password,
            hashing: Semaphore::new(n_hashers),
            sessions: Default::default(),
            breaker: None,
            failures: Default::default(),
        })
    }

    /// Checks the password and starts a new session. Unknown users and wrong passwords get the
    /// same error after the same work.
    pub async fn login(&self, username: &str, password: &str) -> Result<Tokens, AuthError> {
        let now = std::time::Instant::now();
        if let Some((_, until)) = self.failures.lock().expect("failures lock").get(username)
            && *until > now
        {
            let seconds = until.duration_since(now).as_secs_f64().ceil().max(1.0) as u64;
            return Err(AuthError::LoginBackoff { seconds });
        }
        let outcome = self.check_login(username, password).await;
        let mut failures = self.failures.lock().expect("failures lock");
        match &outcome {
            Err(AuthError::InvalidCredentials) => {
                if failures.len() >= MAX_REMEMBERED_SESSIONS {
                    failures.clear();
                }
                let entry = failures.entry(username.to_string()).or_insert((0, now));
                entry.0 += 1;
                if let Some(over) = entry.0.checked_sub(FREE_LOGIN_FAILURES).filter(|n| *n > 0) {
                    let wait =
                        Duration::from_secs(1u64 << (over - 1).min(6)).min(MAX_LOGIN_BACKOFF);
                    entry.1 = now + wait;
                }
            }
            Ok(_) => {
                failures.remove(username);
            }
            Err(_) => {}
        }
        outcome
    }

    async fn check_login(&self, username: &str, password: &str) -> Result<Tokens, AuthError> {
        if password.len() > MAX_PASSWORD_BYTES {
            return Err(AuthError::InvalidCredentials);
        }
        let user = self.store.user_by_name(username).await?;
        let stored_hash = user.as_ref().map(|user| user.password_hash.clone());
        let password = password.to_string();
        let matches = self
            .blocking(move || Ok(password::verify_password(&password, stored_hash.as_deref())))
            .await?;
        let Some(user) = user.filter(|_| matches) else {
            return Err(AuthError::InvalidCredentials);
        };
        let principal = principal_of(&user)?;
        let (refresh_token, token_hash) = password::new_refresh_token()?;
        let family_id = Uuid::new_v4();
        let inserted = self
            .store
            .insert_refresh_token(&NewRefreshToken {
                user_id: user.id,
                family_id,
                token_hash,
                expires_at: Utc::now() + self.refresh_token_ttl,
            })
            .await;
        match inserted {
            Ok(_) => {}
            // Deleted while logging in.
            Err(StoreError::NotFound { .. }) => return Err(AuthError::InvalidCredentials),
            Err(error) => return Err(error.into()),
        }
        tracing::info!(user = %principal.subject, "logged in");
        self.tokens(&principal, refresh_token, family_id)
    }

    /// Trades a refresh token for new tokens: the same session, a new refresh token, an access
    /// token with the user's current role.
    pub async fn refresh(&self, refresh_token: &str) -> Result<Tokens, AuthError> {
        let Some(token_hash) = password::refresh_token_hash(refresh_token) else {
            return Err(AuthError::RefreshUnknown);
        };
        let (next_token, next_hash) = password::new_refresh_token()?;
        let now = Utc::now();
        let next = NextRefreshToken {
            token_hash: next_hash,
            expires_at: now + self.refresh_token_ttl,
        };
        match self
            .store
            .use_refresh_token(&token_hash, &next, now)
            .await?
        {
            RefreshUse::Rotated { user, family_id } => {
                let principal = principal_of(&user)?;
                self.tokens(&principal, next_token, family_id)
            }
            RefreshUse::Reused { user_id, family_id } => {
                tracing::warn!(
                    %user_id,
                    %family_id,
                    "a used refresh token was presented again; its session is revoked"
                );
                Err(AuthError::RefreshReused)
            }
            RefreshUse::Revoked { .. } => Err(AuthError::RefreshRevoked),
            RefreshUse::Expired { .. } => Err(AuthError::RefreshExpired),
            _ => Err(AuthError::RefreshUnknown),
        }
    }

    /// Session checks go through the store's `breaker` (one attempt, never waiting on a store
    /// the breaker knows is down).
    pub fn with_breaker(
        mut self,
        breaker: std::sync::Arc<tars_runtime::breaker::CircuitBreaker>,
    ) -> Auth {
        self.breaker = Some(breaker);
        self
    }

    /// The principal of a valid access token; otherwise why it is not valid. Signature and
    /// claims only: [`Auth::authenticate`] also checks the session.
    pub fn verify(&self, access_token: &str) -> Result<Principal, AuthError> {
        self.keys.verify(access_token)
    }

    /// [`Auth::verify`], then whether the token's session still lives: removing its user,
    /// changing the password, a logout or a reused refresh token end it, and its access tokens
    /// fail from then on. The store answers (so every replica agrees), remembered for
    /// [`SESSION_CHECK_TTL`]: one indexed lookup per session per second.
    pub async fn authenticate(&self, access_token: &str) -> Result<Principal, AuthError> {
        let (principal, sid) = self.keys.verify_session(access_token)?;
        let Some(sid) = sid else {
            return Ok(principal);
        };
        let now = std::time::Instant::now();
        let remembered = self
            .sessions
            .lock()
            .expect("sessions lock")
            .get(&sid)
            .copied();
        let alive = match remembered {
            Some((checked, alive)) if now.duration_since(checked) < SESSION_CHECK_TTL => alive,
            _ => {
                let check = || self.store.session_active(sid);
                let checked = match &self.breaker {
                    Some(breaker) => breaker
                        .call(StoreError::is_transient, check)
                        .await
                        .map_err(|error| error.to_string()),
                    None => check().await.map_err(|error| error.to_string()),
                };
                let alive = match checked {
                    Ok(alive) => alive,
                    // While the store cannot answer, no session can be ended either (the ends
                    // are written there): the last answer stands, and the request goes on to
                    // meet the store's breaker, which says 503 and when to retry.
                    Err(error) => {
                        tracing::debug!(%error, "checking a session failed; the last answer stands");
                        return match remembered {
                            Some((_, false)) => Err(AuthError::SessionEnded),
                            _ => Ok(principal),
                        };
                    }
                };
                let mut sessions = self.sessions.lock().expect("sessions lock");
                if sessions.len() >= MAX_REMEMBERED_SESSIONS {
                    sessions.clear();
                }
                sessions.insert(sid, (now, alive));
                alive
            }
        };
        if alive {
            Ok(principal)
        } else {
            Err(AuthError::SessionEnded)
        }
    }

    /// A fresh access token for `principal`, valid for `access_token_ttl` (for tests and
    /// tools: no password and no refresh token involved).
    pub fn issue_access_token(&self, principal: &Principal) -> Result<String, AuthError> {
        self.keys.sign(
            principal,
            jwt::now_seconds(),
            self.access_token_ttl.as_secs(),
        )
    }

    /// On a database without an admin account, creates `admin` (role admin) with
    /// `admin_password`, or with a generated password printed once to stderr. Several servers
    /// starting together create it once; a `tars user add` of a viewer or operator that ran
    /// first does not leave the service without an admin.
    pub async fn bootstrap_admin(&self) -> Result<Bootstrap, AuthError> {
        self.bootstrap_admin_to(&mut std::io::stderr()).await
    }

    async fn bootstrap_admin_to(
        &self,
        out: &mut (impl std::io::Write + Send),
    ) -> Result<Bootstrap, AuthError> {
        let users = self.store.users().await?;
        if users.iter().any(|user| user.role == Role::Admin.as_str()) {
            return Ok(Bootstrap::Existing);
        }
        let (password, generated_password) = match &self.admin_password {
            Some(password) => {
                check_new_password(password).map_err(|error| AuthError::Config {
                    key: "admin_password",
                    reason: error.to_string(),
                })?;
                (password.clone(), false)
            }
            None => (generate_password()?, true),
        };
        match create_user(&self.store, "admin", Role::Admin, &password).await {
            Ok(_) => {}
            Err(AuthError::Store(StoreError::Conflict(Conflict::UserExists { .. }))) => {
                return Ok(Bootstrap::Existing);
            }
            Err(error) => return Err(error),
        }
        tracing::info!("created the first user, admin");
        if generated_password {
            // Stderr, not the log: shown once to whoever starts the server, never stored.
            let _ = writeln!(
                out,
                "Created the first user, 'admin', with the generated password {password}\n\
                 It is shown only this once: log in with it and change it with \
                 `tars user passwd admin`, or set TARS_ADMIN_PASSWORD before the first start."
            );
        }
        Ok(Bootstrap::Created { generated_password })
    }

    fn tokens(
        &self,
        principal: &Principal,
        refresh_token: String,
        session: Uuid,
    ) -> Result<Tokens, AuthError> {
        let access_token = self.keys.sign_session(
            principal,
            jwt::now_seconds(),
            self.access_token_ttl.as_secs(),
            Some(session),
        )?;
        Ok(Tokens {
            access_token,
            refresh_token,
            token_type: "bearer".into(),
            expires_in: self.access_token_ttl.as_secs(),
        })
    }

    /// Runs an argon2 computation off the async threads, a bounded number at a time.
    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, AuthError> + Send + 'static,
    ) -> Result<T, AuthError> {
        let _permit = self
            .hashing
            .acquire()
            .await
            .map_err(|error| AuthError::Hashing(error.to_string()))?;
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|error| AuthError::Hashing(error.to_string()))?
    }
}

/// Creates a user with a new password (checked, then hashed off the async threads).
pub async fn create_user(
    store: &Store,
    username: &str,
    role: Role,
    password: &str,
) -> Result<UserRow, AuthError> {
    let password_hash = hash_off_thread(password).await?;
    let user = NewUser {
        username: username.to_string(),
        password_hash,
        role: role.as_str().to_string(),
    };
    Ok(store.create_user(&user).await?)
}

/// Sets a user's password (checked, then hashed off the async threads); this ends every
/// session of the user.
pub async fn set_password(
    store: &Store,
    username: &str,
    password: &str,
) -> Result<UserRow, AuthError> {
    let password_hash = hash_off_thread(password).await?;
    Ok(store.set_password(username, &password_hash).await?)
}

async fn hash_off_thread(password: &str) -> Result<String, AuthError> {
    check_new_password(password)?;
    let password = password.to_string();
    tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(|error| AuthError::Hashing(error.to_string()))?
}

/// The principal a stored user logs in as.
fn principal_of(user: &UserRow) -> Result<Principal, AuthError> {
    Ok(Principal {
        subject: user.username.clone(),
        role: user.role.parse()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn auth(admin_password: Option<&str>) -> Auth {
        let store = Store::connect("sqlite::memory:").await.unwrap();
        Auth::with_settings(
            store,
            AuthSettings {
                key: JwtKey::Hs256(b"0123456789abcdef0123456789abcdef".to_vec()),
                access_token_ttl: Duration::from_secs(900),
                refresh_token_ttl: Duration::from_secs(3600),
                admin_password: admin_password.map(String::from),
            },
        )
        .unwrap()
    }

    #[test]
    fn roles_are_ordered_parsed_and_named() {
        assert!(Role::Viewer < Role::Operator && Role::Operator < Role::Admin);
        assert_eq!("Operator".parse::<Role>().unwrap(), Role::Operator);
        assert_eq!(
            "root".parse::<Role>().unwrap_err().to_string(),
            "unknown role 'root'; valid roles: viewer, operator, admin"
        );
        assert_eq!(serde_json::to_string(&Role::Admin).unwrap(), "\"admin\"");
        assert_eq!(
            Role::ALL.map(Role::as_str),
            tars_store::ROLES,
            "the store accepts exactly these"
        );
    }

    #[test]
    fn require_names_the_role_needed() {
        let viewer = Principal {
            subject: "bob".into(),
            role: Role::Viewer,
        };
        assert!(viewer.require(Role::Viewer).is_ok());
        let error = viewer.require(Role::Operator).unwrap_err();
        assert_eq!(error.status, axum::http::StatusCode::FORBIDDEN);
        assert_eq!(error.code, "forbidden");
        assert_eq!(
            error.message,
            "this needs the operator role or above; bob is a viewer"
        );
        assert_eq!(
            error.details,
            serde_json::json!({"required_role": "operator", "role": "viewer"})
        );
        let operator = Principal {
            role: Role::Operator,
            ..viewer
        };
        assert_eq!(
            operator.require(Role::Admin).unwrap_err().message,
            "this needs the admin role or above; bob is an operator"
        );
    }

    #[tokio::test]
    async fn the_first_admin_gets_the_configured_or_a_printed_password_once() {
        let configured = auth(Some("correct horse battery staple")).await;
        let mut out = Vec::new();
        assert_eq!(
            configured.bootstrap_admin_to(&mut out).await.unwrap(),
            Bootstrap::Created {
                generated_password: false
            }
        );
        assert!(out.is_empty(), "nothing printed for a configured password");
        assert_eq!(
            configured.bootstrap_admin_to(&mut out).await.unwrap(),
            Bootstrap::Existing
        );
        let tokens = configured
            .login("admin", "correct horse battery staple")
            .await
            .unwrap();
        assert_eq!(
            configured.verify(&tokens.access_token).unwrap(),
            Principal {
                subject: "admin".into(),
                role: Role::Admin
            }
        );

        let generated = auth(None).await;
        let mut out = Vec::new();
        generated.bootstrap_admin_to(&mut out).await.unwrap();
        let printed = String::from_utf8(out).unwrap();
        let password = printed
            .split_whitespace()
            .find(|word| word.len() == 26)
            .unwrap();
        assert!(
            printed.starts_with("Created the first user, 'admin', with the generated password "),
            "{printed}"
        );
        assert!(generated.login("admin", password).await.is_ok());
        let mut out = Vec::new();
        generated.bootstrap_admin_to(&mut out).await.unwrap();
        assert!(out.is_empty(), "printed only once");

        let weak = auth(Some("short")).await;
        assert_eq!(
            weak.bootstrap_admin().await.unwrap_err().to_string(),
            "invalid admin_password: the password is 5 characters long; use at least 8"
        );
    }

    #[tokio::test]
    async fn a_database_with_users_but_no_admin_gets_one() {
        let first = auth(Some("correct horse battery staple")).await;
        // `tars user add vera --role viewer` won the first start.
        create_user(&first.store, "vera", Role::Viewer, "vera's password")
            .await
            .unwrap();
        assert_eq!(
            first.bootstrap_admin().await.unwrap(),
            Bootstrap::Created {
                generated_password: false
            }
        );
        assert!(
            first
                .login("admin", "correct horse battery staple")
                .await
                .is_ok()
        );

        // An admin under another name is an admin: nothing is created.
        let other = auth(None).await;
        create_user(&other.store, "root", Role::Admin, "root's password")
            .await
            .unwrap();
        assert_eq!(other.bootstrap_admin().await.unwrap(), Bootstrap::Existing);
        assert!(other.store.user_by_name("admin").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn logins_fail_alike_for_unknown_users_and_wrong_passwords() {
        let auth = auth(Some("correct horse battery staple")).await;
        auth.bootstrap_admin().await.unwrap();
        for (username, password) in [
            ("admin", "wrong password"),
            ("nobody", "correct horse battery staple"),
            ("not a name!", "x"),
            ("admin", &"x".repeat(MAX_PASSWORD_BYTES + 1)),
        ] {
            let error = auth.login(username, password).await.unwrap_err();
            assert!(matches!(error, AuthError::InvalidCredentials), "{error:?}");
            assert_eq!(error.to_string(), "wrong user name or password");
        }
    }

    #[tokio::test]
    async fn refreshing_rotates_and_a_reused_token_ends_the_session() {
        let auth = auth(Some("correct horse battery staple")).await;
        auth.bootstrap_admin().await.unwrap();
        let first = auth
            .login("admin", "correct horse battery staple")
            .await
            .unwrap();
        assert_eq!(
            (first.token_type.as_str(), first.expires_in),
            ("bearer", 900)
        );
        let second = auth.refresh(&first.refresh_token).await.unwrap();
        assert_ne!(second.refresh_token, first.refresh_token);
        assert_eq!(auth.verify(&second.access_token).unwrap().role, Role::Admin);
        let third = auth.refresh(&second.refresh_token).await.unwrap();

        // The first token again: refused, and the live third one dies with it.
        assert!(matches!(
            auth.refresh(&first.refresh_token).await,
            Err(AuthError::RefreshReused)
        ));
        assert!(matches!(
            auth.refresh(&third.refresh_token).await,
            Err(AuthError::RefreshRevoked)
        ));
        for not_ours in ["", "garbage", &first.access_token] {
            assert!(matches!(
                auth.refresh(not_ours).await,
                Err(AuthError::RefreshUnknown)
            ));
        }
        // A role change applies from the next refresh.
        let fourth = auth
            .login("admin", "correct horse battery staple")
            .await
            .unwrap();
        auth.store.set_role("admin", "viewer").await.unwrap();
        let fifth = auth.refresh(&fourth.refresh_token).await.unwrap();
        assert_eq!(auth.verify(&fifth.access_token).unwrap().role, Role::Viewer);
    }

    #[tokio::test]
    async fn expired_refresh_tokens_are_refused() {
        let store = Store::connect("sqlite::memory:").await.unwrap();
        let auth = Auth::with_settings(
            store,
            AuthSettings {
                key: JwtKey::Hs256(b"0123456789abcdef0123456789abcdef".to_vec()),
                access_token_ttl: Duration::from_secs(1),
                refresh_token_ttl: Duration::ZERO,
                admin_password: Some("correct horse battery staple".into()),
            },
        )
        .unwrap();
        auth.bootstrap_admin().await.unwrap();
        let tokens = auth
            .login("admin", "correct horse battery staple")
            .await
            .unwrap();
        assert!(matches!(
            auth.refresh(&tokens.refresh_token).await,
            Err(AuthError::RefreshExpired)
        ));
    }

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let tokens = Tokens {
            access_token: "eyJ.secret.jwt".into(),
            refresh_token: "tars_rt_secret".into(),
            token_type: "bearer".into(),
            expires_in: 900,
        };
        let settings = AuthSettings {
            key: JwtKey::Hs256(b"secret-secret-secret-secret-secret".to_vec()),
            access_token_ttl: Duration::from_secs(1),
            refresh_token_ttl: Duration::from_secs(1),
            admin_password: Some("secret".into()),
        };
        for debug in [format!("{tokens:?}"), format!("{settings:?}")] {
            assert!(!debug.contains("secret"), "{debug}");
        }
    }
}
