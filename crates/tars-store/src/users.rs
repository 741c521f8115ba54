//! Users of the HTTP API (`users`) and their refresh tokens (`refresh_tokens`).
//!
//! The store keeps what it is given: an argon2id PHC string, never a password, and the SHA-256
//! of a refresh token in lower-case hex, never the token. Hashing, JWTs and roles' meaning are
//! the server's (`tars_server::auth`); here a role is one of [`ROLES`].
//!
//! # Refresh-token rotation
//!
//! Every login starts a *family* of refresh tokens ([`Store::insert_refresh_token`]).
//! [`Store::use_refresh_token`] is one transaction that finds the token by its hash and:
//! - if it was used or revoked before, revokes every token of its family
//!   ([`RefreshUse::Reused`], [`RefreshUse::Revoked`]): a used token presented again was copied,
//!   and nothing tells the thief from the owner, so both have to log in again;
//! - else if it has expired, changes nothing ([`RefreshUse::Expired`]);
//! - else marks it used, stores its successor in the same family and returns the user as stored
//!   now ([`RefreshUse::Rotated`]), so a new role applies from the next refresh.
//!
//! Writers of one user's tokens serialise (PostgreSQL: a transaction-scoped advisory lock on the
//! user's id; SQLite: `BEGIN IMMEDIATE`), so two refreshes with the same token cannot both win,
//! and a revocation sees every token of the family, including a successor stored a moment
//! before. Changing a user's password revokes all of their tokens; deleting a user deletes them.
//!
//! The SQL is the same on both backends except for ids (PostgreSQL `UUID`, SQLite hyphenated
//! text), times (`TIMESTAMPTZ`, RFC 3339 text in UTC) and the lock; the steps are written once,
//! over [`UserTx`].

use crate::error::{Conflict, is_unique_violation};
use crate::{Backend, Store, StoreError};
use chrono::{DateTime, SecondsFormat, Utc};
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use sqlx::{Postgres, Row, Sqlite, Transaction};
use std::fmt;
use uuid::Uuid;
use uuid::fmt::Hyphenated;

/// Longest user name, in characters.
pub const MAX_USERNAME_CHARS: usize = 64;

/// The roles a user can have, lowest first.
pub const ROLES: [&str; 3] = ["viewer", "operator", "admin"];

/// A user to create.
#[derive(Clone, PartialEq, Eq)]
pub struct NewUser {
    /// 1 to [`MAX_USERNAME_CHARS`] characters from `A-Z a-z 0-9 _ . -`; case-sensitive.
    pub username: String,
    /// An argon2id PHC string (`$argon2id$v=19$…`).
    pub password_hash: String,
    /// One of [`ROLES`].
    pub role: String,
}

/// One row of `users`.
#[derive(Clone, PartialEq, Eq)]
pub struct UserRow {
    pub id: Uuid,
    pub username: String,
    /// The argon2id PHC string.
    pub password_hash: String,
    /// One of [`ROLES`].
    pub role: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The first refresh token of a new family (a login).
#[derive(Clone, PartialEq, Eq)]
pub struct NewRefreshToken {
    pub user_id: Uuid,
    pub family_id: Uuid,
    /// SHA-256 of the token, 64 lower-case hex digits.
    pub token_hash: String,
    pub expires_at: DateTime<Utc>,
}

/// The token that replaces a used one, in the same family.
#[derive(Clone, PartialEq, Eq)]
pub struct NextRefreshToken {
    /// SHA-256 of the token, 64 lower-case hex digits.
    pub token_hash: String,
    pub expires_at: DateTime<Utc>,
}

/// What [`Store::use_refresh_token`] found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RefreshUse {
    /// The token was valid: it is used now and its successor is stored.
    Rotated { user: UserRow, family_id: Uuid },
    /// The token had been used already: its family is revoked now.
    Reused { user_id: Uuid, family_id: Uuid },
    /// The token had been revoked (reuse, a new password, a logout): its family is revoked.
    Revoked { user_id: Uuid, family_id: Uuid },
    /// The token has expired; nothing changed.
    Expired { user_id: Uuid, family_id: Uuid },
    /// No token has this hash (never issued, or its user was deleted).
    Unknown,
}

// Password and token hashes stay out of logs.
impl fmt::Debug for NewUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewUser")
            .field("username", &self.username)
            .field("password_hash", &"***")
            .field("role", &self.role)
            .finish()
    }
}

impl fmt::Debug for UserRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserRow")
            .field("id", &self.id)
            .field("username", &self.username)
            .field("password_hash", &"***")
            .field("role", &self.role)
            .field("created_at", &self.created_at)
            .field("updated_at", &self.updated_at)
            .finish()
    }
}

impl fmt::Debug for NewRefreshToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewRefreshToken")
            .field("user_id", &self.user_id)
            .field("family_id", &self.family_id)
            .field("token_hash", &"***")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

impl fmt::Debug for NextRefreshToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NextRefreshToken")
            .field("token_hash", &"***")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// Runs `$body` inside one transaction of the store's backend, bound to `$tx`, and commits; an
/// error (`?` in the body) rolls back. `write` opens SQLite's writer with `BEGIN IMMEDIATE`.
macro_rules! transaction {
    ($store:expr, $mode:ident, |$tx:ident| $body:expr) => {
        match &$store.backend {
            Backend::Sqlite(db) => {
                let mut $tx = transaction!(@sqlite db, $mode);
                let value = $body;
                $tx.commit().await?;
                value
            }
            Backend::Postgres(pool) => {
                let mut $tx = pool.begin().await?;
                let value = $body;
                $tx.commit().await?;
                value
            }
        }
    };
    (@sqlite $db:ident, read) => { $db.read.begin().await? };
    (@sqlite $db:ident, write) => { $db.write.begin_with("BEGIN IMMEDIATE").await? };
}

impl Store {
    /// Creates a user; a taken name is [`Conflict::UserExists`].
    pub async fn create_user(&self, user: &NewUser) -> Result<UserRow, StoreError> {
        check_username(&user.username)?;
        check_password_hash(&user.password_hash)?;
        check_role(&user.role)?;
        let id = Uuid::new_v4();
        Ok(transaction!(self, write, |tx| tx
            .insert_user(id, user)
            .await?))
    }

    /// The user with exactly this name, if any.
    pub async fn user_by_name(&self, username: &str) -> Result<Option<UserRow>, StoreError> {
        Ok(transaction!(self, read, |tx| tx
            .user_by_name(username)
            .await?))
    }

    /// Every user, by name (byte order).
    pub async fn users(&self) -> Result<Vec<UserRow>, StoreError> {
        Ok(transaction!(self, read, |tx| tx.users().await?))
    }

    /// How many users there are (0 on a fresh database: the server then creates `admin`).
    pub async fn count_users(&self) -> Result<i64, StoreError> {
        Ok(transaction!(self, read, |tx| tx.count_users().await?))
    }

    /// Replaces a user's password hash and revokes all of their refresh tokens, so every
    /// session logs in again with the new password.
    pub async fn set_password(
        &self,
        username: &str,
        password_hash: &str,
    ) -> Result<UserRow, StoreError> {
        check_password_hash(password_hash)?;
        let now = Utc::now();
        Ok(transaction!(self, write, |tx| {
            let user = locked_user(&mut tx, username).await?;
            tx.revoke_user(user.id, now).await?;
            tx.update_user(user.id, password_hash, &user.role).await?
        }))
    }

    /// Changes a user's role. Access tokens already issued keep the old role until they expire
    /// (at most the access-token lifetime); refreshed ones carry the new role.
    pub async fn set_role(&self, username: &str, role: &str) -> Result<UserRow, StoreError> {
        check_role(role)?;
        Ok(transaction!(self, write, |tx| {
            let user = locked_user(&mut tx, username).await?;
            tx.update_user(user.id, &user.password_hash, role).await?
        }))
    }

    /// Deletes a user and their refresh tokens.
    pub async fn delete_user(&self, username: &str) -> Result<(), StoreError> {
        transaction!(self, write, |tx| {
            let user = locked_user(&mut tx, username).await?;
            tx.delete_user(user.id).await?
        });
        Ok(())
    }

    /// Stores the first token of a new family (a login); returns its id. An unknown user is
    /// [`StoreError::NotFound`].
    pub async fn insert_refresh_token(&self, token: &NewRefreshToken) -> Result<Uuid, StoreError> {
        check_token_hash(&token.token_hash)?;
        let id = Uuid::new_v4();
        transaction!(self, write, |tx| {
            tx.lock_user(token.user_id).await?;
            if tx.user_by_id(token.user_id).await?.is_none() {
                return Err(StoreError::not_found("user", token.user_id));
            }
            tx.insert_token(id, token).await?
        });
        Ok(id)
    }

    /// Uses the refresh token with hash `token_hash` at `now`, in one transaction:
    /// - used or revoked before: revokes its whole family ([`RefreshUse::Reused`],
    ///   [`RefreshUse::Revoked`]), because a used token presented again was copied;
    /// - else expired: changes nothing ([`RefreshUse::Expired`]);
    /// - else: marks it used, stores `next` in the same family and returns the user as stored
    ///   now ([`RefreshUse::Rotated`]).
    ///
    /// Two calls with the same token never both rotate it: the second sees it used.
    pub async fn use_refresh_token(
        &self,
        token_hash: &str,
        next: &NextRefreshToken,
        now: DateTime<Utc>,
    ) -> Result<RefreshUse, StoreError> {
        check_token_hash(token_hash)?;
        check_token_hash(&next.token_hash)?;
        Ok(transaction!(self, write, |tx| use_token(
            &mut tx, token_hash, next, now
        )
        .await?))
    }

    /// Revokes every token of a family that is not revoked yet (a logout); returns how many.
    pub async fn revoke_family(
        &self,
        family_id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        Ok(transaction!(self, write, |tx| {
            match tx.family_user(family_id).await? {
                Some(user_id) => {
                    tx.lock_user(user_id).await?;
                    tx.revoke_family(family_id, now).await?
                }
                None => 0,
            }
        }))
    }

    /// Whether session (refresh-token family) `family_id` lives: one of its tokens is not
    /// revoked. Deleting the user (its tokens go with it), a new password, a logout and a
    /// reused token end it.
    pub async fn session_active(&self, family_id: Uuid) -> Result<bool, StoreError> {
        const ACTIVE: &str =
            "SELECT COUNT(*) FROM refresh_tokens WHERE family_id = $1 AND revoked_at IS NULL";
        let count: i64 = match &self.backend {
            Backend::Postgres(pool) => {
                sqlx::query_scalar(ACTIVE)
                    .bind(family_id)
                    .fetch_one(pool)
                    .await?
            }
            Backend::Sqlite(db) => {
                sqlx::query_scalar(ACTIVE)
                    .bind(family_id.hyphenated().to_string())
                    .fetch_one(&db.read)
                    .await?
            }
        };
        Ok(count > 0)
    }

    /// Deletes the refresh tokens that expired before `before`; returns how many. A deleted
    /// token presented again reads as [`RefreshUse::Unknown`] instead of revoking its family; it
    /// had expired, so it is refused either way.
    pub async fn prune_refresh_tokens(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        Ok(transaction!(self, write, |tx| tx
            .prune_tokens(before)
            .await?))
    }
}

/// The user called `username`, with their tokens locked; [`StoreError::NotFound`] if none.
async fn locked_user(tx: &mut impl UserTx, username: &str) -> Result<UserRow, StoreError> {
    let Some(user) = tx.user_by_name(username).await? else {
        return Err(StoreError::not_found("user", username));
    };
    tx.lock_user(user.id).await?;
    // Re-read under the lock: a concurrent delete may have won.
    tx.user_by_id(user.id)
        .await?
        .ok_or_else(|| StoreError::not_found("user", username))
}

/// The steps of [`Store::use_refresh_token`].
async fn use_token(
    tx: &mut impl UserTx,
    token_hash: &str,
    next: &NextRefreshToken,
    now: DateTime<Utc>,
) -> Result<RefreshUse, StoreError> {
    let Some(found) = tx.token(token_hash).await? else {
        return Ok(RefreshUse::Unknown);
    };
    tx.lock_user(found.user_id).await?;
    // Read again under the lock: another refresh may have used or revoked it meanwhile.
    let Some(token) = tx.token(token_hash).await? else {
        return Ok(RefreshUse::Unknown);
    };
    let (user_id, family_id) = (token.user_id, token.family_id);
    if token.used_at.is_some() || token.revoked_at.is_some() {
        tx.revoke_family(family_id, now).await?;
        return Ok(if token.used_at.is_some() {
            RefreshUse::Reused { user_id, family_id }
        } else {
            RefreshUse::Revoked { user_id, family_id }
        });
    }
    if token.expires_at <= now {
        return Ok(RefreshUse::Expired { user_id, family_id });
    }
    let Some(user) = tx.user_by_id(user_id).await? else {
        return Ok(RefreshUse::Unknown);
    };
    tx.mark_used(token.id, now).await?;
    let successor = NewRefreshToken {
        user_id,
        family_id,
        token_hash: next.token_hash.clone(),
        expires_at: next.expires_at,
    };
    tx.insert_token(Uuid::new_v4(), &successor).await?;
    Ok(RefreshUse::Rotated { user, family_id })
}

/// A stored refresh token (its hash stays in the database).
struct TokenRow {
    id: Uuid,
    user_id: Uuid,
    family_id: Uuid,
    expires_at: DateTime<Utc>,
    used_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
}

/// The statements the user and token writes need, inside one open transaction of a backend.
trait UserTx {
    /// Blocks other writers of the user's tokens until this transaction ends.
    async fn lock_user(&mut self, user_id: Uuid) -> Result<(), StoreError>;
    async fn user_by_name(&mut self, username: &str) -> Result<Option<UserRow>, StoreError>;
    async fn user_by_id(&mut self, id: Uuid) -> Result<Option<UserRow>, StoreError>;
    async fn users(&mut self) -> Result<Vec<UserRow>, StoreError>;
    async fn count_users(&mut self) -> Result<i64, StoreError>;
    /// A taken name is [`Conflict::UserExists`].
    async fn insert_user(&mut self, id: Uuid, user: &NewUser) -> Result<UserRow, StoreError>;
    /// Sets both columns and `updated_at`.
    async fn update_user(
        &mut self,
        id: Uuid,
        password_hash: &str,
        role: &str,
    ) -> Result<UserRow, StoreError>;
    async fn delete_user(&mut self, id: Uuid) -> Result<(), StoreError>;
    async fn token(&mut self, token_hash: &str) -> Result<Option<TokenRow>, StoreError>;
    async fn family_user(&mut self, family_id: Uuid) -> Result<Option<Uuid>, StoreError>;
    async fn insert_token(&mut self, id: Uuid, token: &NewRefreshToken) -> Result<(), StoreError>;
    async fn mark_used(&mut self, token_id: Uuid, now: DateTime<Utc>) -> Result<(), StoreError>;
    async fn revoke_family(
        &mut self,
        family_id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError>;
    async fn revoke_user(&mut self, user_id: Uuid, now: DateTime<Utc>) -> Result<u64, StoreError>;
    async fn prune_tokens(&mut self, before: DateTime<Utc>) -> Result<u64, StoreError>;
}

const USER_BY_NAME: &str = "SELECT * FROM users WHERE username = $1";
const USER_BY_ID: &str = "SELECT * FROM users WHERE id = $1";
const COUNT_USERS: &str = "SELECT COUNT(*) FROM users";
const INSERT_USER: &str = "INSERT INTO users (id, username, password_hash, role)
     VALUES ($1, $2, $3, $4) RETURNING *";
const DELETE_USER: &str = "DELETE FROM users WHERE id = $1";
const TOKEN: &str = "SELECT id, user_id, family_id, expires_at, used_at, revoked_at
     FROM refresh_tokens WHERE token_hash = $1";
const FAMILY_USER: &str = "SELECT user_id FROM refresh_tokens WHERE family_id = $1 LIMIT 1";
const INSERT_TOKEN: &str =
    "INSERT INTO refresh_tokens (id, user_id, family_id, token_hash, expires_at)
     VALUES ($1, $2, $3, $4, $5)";
const MARK_USED: &str = "UPDATE refresh_tokens SET used_at = $2 WHERE id = $1";
const REVOKE_FAMILY: &str =
    "UPDATE refresh_tokens SET revoked_at = $2 WHERE family_id = $1 AND revoked_at IS NULL";
const REVOKE_USER: &str =
    "UPDATE refresh_tokens SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL";
const PRUNE_TOKENS: &str = "DELETE FROM refresh_tokens WHERE expires_at < $1";

impl UserTx for Transaction<'_, Postgres> {
    async fn lock_user(&mut self, user_id: Uuid) -> Result<(), StoreError> {
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
            .bind(format!("tars-store/users/{user_id}"))
            .execute(&mut **self)
            .await?;
        Ok(())
    }

    async fn user_by_name(&mut self, username: &str) -> Result<Option<UserRow>, StoreError> {
        let user = sqlx::query(USER_BY_NAME)
            .bind(username)
            .try_map(|row| pg_user(&row))
            .fetch_optional(&mut **self)
            .await?;
        Ok(user)
    }

    async fn user_by_id(&mut self, id: Uuid) -> Result<Option<UserRow>, StoreError> {
        let user = sqlx::query(USER_BY_ID)
            .bind(id)
            .try_map(|row| pg_user(&row))
            .fetch_optional(&mut **self)
            .await?;
        Ok(user)
    }

    async fn users(&mut self) -> Result<Vec<UserRow>, StoreError> {
        let users = sqlx::query(r#"SELECT * FROM users ORDER BY username COLLATE "C""#)
            .try_map(|row| pg_user(&row))
            .fetch_all(&mut **self)
            .await?;
        Ok(users)
    }

    async fn count_users(&mut self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar(COUNT_USERS)
            .fetch_one(&mut **self)
            .await?)
    }

    async fn insert_user(&mut self, id: Uuid, user: &NewUser) -> Result<UserRow, StoreError> {
        sqlx::query(INSERT_USER)
            .bind(id)
            .bind(&user.username)
            .bind(&user.password_hash)
            .bind(&user.role)
            .try_map(|row| pg_user(&row))
            .fetch_one(&mut **self)
            .await
            .map_err(|error| user_exists(error, &user.username))
    }

    async fn update_user(
        &mut self,
        id: Uuid,
        password_hash: &str,
        role: &str,
    ) -> Result<UserRow, StoreError> {
        let user = sqlx::query(
            "UPDATE users SET password_hash = $2, role = $3, updated_at = NOW()
             WHERE id = $1 RETURNING *",
        )
        .bind(id)
        .bind(password_hash)
        .bind(role)
        .try_map(|row| pg_user(&row))
        .fetch_one(&mut **self)
        .await?;
        Ok(user)
    }

    async fn delete_user(&mut self, id: Uuid) -> Result<(), StoreError> {
        sqlx::query(DELETE_USER)
            .bind(id)
            .execute(&mut **self)
            .await?;
        Ok(())
    }

    async fn token(&mut self, token_hash: &str) -> Result<Option<TokenRow>, StoreError> {
        let token = sqlx::query(TOKEN)
            .bind(token_hash)
            .try_map(|row: PgRow| {
                Ok(TokenRow {
                    id: row.try_get("id")?,
                    user_id: row.try_get("user_id")?,
                    family_id: row.try_get("family_id")?,
                    expires_at: row.try_get("expires_at")?,
                    used_at: row.try_get("used_at")?,
                    revoked_at: row.try_get("revoked_at")?,
                })
            })
            .fetch_optional(&mut **self)
            .await?;
        Ok(token)
    }

    async fn family_user(&mut self, family_id: Uuid) -> Result<Option<Uuid>, StoreError> {
        Ok(sqlx::query_scalar(FAMILY_USER)
            .bind(family_id)
            .fetch_optional(&mut **self)
            .await?)
    }

    async fn insert_token(&mut self, id: Uuid, token: &NewRefreshToken) -> Result<(), StoreError> {
        sqlx::query(INSERT_TOKEN)
            .bind(id)
            .bind(token.user_id)
            .bind(token.family_id)
            .bind(&token.token_hash)
            .bind(token.expires_at)
            .execute(&mut **self)
            .await?;
        Ok(())
    }

    async fn mark_used(&mut self, token_id: Uuid, now: DateTime<Utc>) -> Result<(), StoreError> {
        sqlx::query(MARK_USED)
            .bind(token_id)
            .bind(now)
            .execute(&mut **self)
            .await?;
        Ok(())
    }

    async fn revoke_family(
        &mut self,
        family_id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let done = sqlx::query(REVOKE_FAMILY)
            .bind(family_id)
            .bind(now)
            .execute(&mut **self)
            .await?;
        Ok(done.rows_affected())
    }

    async fn revoke_user(&mut self, user_id: Uuid, now: DateTime<Utc>) -> Result<u64, StoreError> {
        let done = sqlx::query(REVOKE_USER)
            .bind(user_id)
            .bind(now)
            .execute(&mut **self)
            .await?;
        Ok(done.rows_affected())
    }

    async fn prune_tokens(&mut self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let done = sqlx::query(PRUNE_TOKENS)
            .bind(before)
            .execute(&mut **self)
            .await?;
        Ok(done.rows_affected())
    }
}

impl UserTx for Transaction<'_, Sqlite> {
    async fn lock_user(&mut self, _user_id: Uuid) -> Result<(), StoreError> {
        // Writes begin with `BEGIN IMMEDIATE`, which holds the database's write lock already.
        Ok(())
    }

    async fn user_by_name(&mut self, username: &str) -> Result<Option<UserRow>, StoreError> {
        let user = sqlx::query(USER_BY_NAME)
            .bind(username)
            .try_map(|row| sqlite_user(&row))
            .fetch_optional(&mut **self)
            .await?;
        Ok(user)
    }

    async fn user_by_id(&mut self, id: Uuid) -> Result<Option<UserRow>, StoreError> {
        let user = sqlx::query(USER_BY_ID)
            .bind(id.hyphenated())
            .try_map(|row| sqlite_user(&row))
            .fetch_optional(&mut **self)
            .await?;
        Ok(user)
    }

    async fn users(&mut self) -> Result<Vec<UserRow>, StoreError> {
        let users = sqlx::query("SELECT * FROM users ORDER BY username")
            .try_map(|row| sqlite_user(&row))
            .fetch_all(&mut **self)
            .await?;
        Ok(users)
    }

    async fn count_users(&mut self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar(COUNT_USERS)
            .fetch_one(&mut **self)
            .await?)
    }

    async fn insert_user(&mut self, id: Uuid, user: &NewUser) -> Result<UserRow, StoreError> {
        sqlx::query(INSERT_USER)
            .bind(id.hyphenated())
            .bind(&user.username)
            .bind(&user.password_hash)
            .bind(&user.role)
            .try_map(|row| sqlite_user(&row))
            .fetch_one(&mut **self)
            .await
            .map_err(|error| user_exists(error, &user.username))
    }

    async fn update_user(
        &mut self,
        id: Uuid,
        password_hash: &str,
        role: &str,
    ) -> Result<UserRow, StoreError> {
        let user = sqlx::query(
            "UPDATE users SET password_hash = $2, role = $3,
                 updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
             WHERE id = $1 RETURNING *",
        )
        .bind(id.hyphenated())
        .bind(password_hash)
        .bind(role)
        .try_map(|row| sqlite_user(&row))
        .fetch_one(&mut **self)
        .await?;
        Ok(user)
    }

    async fn delete_user(&mut self, id: Uuid) -> Result<(), StoreError> {
        sqlx::query(DELETE_USER)
            .bind(id.hyphenated())
            .execute(&mut **self)
            .await?;
        Ok(())
    }

    async fn token(&mut self, token_hash: &str) -> Result<Option<TokenRow>, StoreError> {
        let token = sqlx::query(TOKEN)
            .bind(token_hash)
            .try_map(|row: SqliteRow| {
                Ok(TokenRow {
                    id: sqlite_uuid(&row, "id")?,
                    user_id: sqlite_uuid(&row, "user_id")?,
                    family_id: sqlite_uuid(&row, "family_id")?,
                    expires_at: row.try_get("expires_at")?,
                    used_at: row.try_get("used_at")?,
                    revoked_at: row.try_get("revoked_at")?,
                })
            })
            .fetch_optional(&mut **self)
            .await?;
        Ok(token)
    }

    async fn family_user(&mut self, family_id: Uuid) -> Result<Option<Uuid>, StoreError> {
        let user_id: Option<Hyphenated> = sqlx::query_scalar(FAMILY_USER)
            .bind(family_id.hyphenated())
            .fetch_optional(&mut **self)
            .await?;
        Ok(user_id.map(Hyphenated::into_uuid))
    }

    async fn insert_token(&mut self, id: Uuid, token: &NewRefreshToken) -> Result<(), StoreError> {
        sqlx::query(INSERT_TOKEN)
            .bind(id.hyphenated())
            .bind(token.user_id.hyphenated())
            .bind(token.family_id.hyphenated())
            .bind(&token.token_hash)
            .bind(sqlite_time(token.expires_at))
            .execute(&mut **self)
            .await?;
        Ok(())
    }

    async fn mark_used(&mut self, token_id: Uuid, now: DateTime<Utc>) -> Result<(), StoreError> {
        sqlx::query(MARK_USED)
            .bind(token_id.hyphenated())
            .bind(sqlite_time(now))
            .execute(&mut **self)
            .await?;
        Ok(())
    }

    async fn revoke_family(
        &mut self,
        family_id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let done = sqlx::query(REVOKE_FAMILY)
            .bind(family_id.hyphenated())
            .bind(sqlite_time(now))
            .execute(&mut **self)
            .await?;
        Ok(done.rows_affected())
    }

    async fn revoke_user(&mut self, user_id: Uuid, now: DateTime<Utc>) -> Result<u64, StoreError> {
        let done = sqlx::query(REVOKE_USER)
            .bind(user_id.hyphenated())
            .bind(sqlite_time(now))
            .execute(&mut **self)
            .await?;
        Ok(done.rows_affected())
    }

    async fn prune_tokens(&mut self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        // Every stored time has the same fixed-width UTC format, so text order is time order.
        let done = sqlx::query(PRUNE_TOKENS)
            .bind(sqlite_time(before))
            .execute(&mut **self)
            .await?;
        Ok(done.rows_affected())
    }
}

fn user_exists(error: sqlx::Error, username: &str) -> StoreError {
    if is_unique_violation(&error) {
        StoreError::Conflict(Conflict::UserExists {
            username: username.to_string(),
        })
    } else {
        StoreError::Database(error)
    }
}

fn pg_user(row: &PgRow) -> Result<UserRow, sqlx::Error> {
    Ok(UserRow {
        id: row.try_get("id")?,
        username: row.try_get("username")?,
        password_hash: row.try_get("password_hash")?,
        role: row.try_get("role")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn sqlite_user(row: &SqliteRow) -> Result<UserRow, sqlx::Error> {
    Ok(UserRow {
        id: sqlite_uuid(row, "id")?,
        username: row.try_get("username")?,
        password_hash: row.try_get("password_hash")?,
        role: row.try_get("role")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn sqlite_uuid(row: &SqliteRow, column: &str) -> Result<Uuid, sqlx::Error> {
    Ok(row.try_get::<Hyphenated, _>(column)?.into_uuid())
}

/// The format of the migrations' `strftime('%Y-%m-%dT%H:%M:%fZ', 'now')`: UTC, milliseconds.
fn sqlite_time(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn check_username(username: &str) -> Result<(), StoreError> {
    let n_chars = username.chars().count();
    let valid_chars = username
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if (1..=MAX_USERNAME_CHARS).contains(&n_chars) && valid_chars {
        return Ok(());
    }
    Err(StoreError::invalid(
        "username",
        format!(
            "'{username}' is not a user name; use 1 to {MAX_USERNAME_CHARS} characters from \
             A-Z, a-z, 0-9, '_', '.' and '-'"
        ),
    ))
}

fn check_role(role: &str) -> Result<(), StoreError> {
    if ROLES.contains(&role) {
        return Ok(());
    }
    Err(StoreError::invalid(
        "role",
        format!("unknown role '{role}'; valid roles: {}", ROLES.join(", ")),
    ))
}

fn check_password_hash(password_hash: &str) -> Result<(), StoreError> {
    if password_hash.starts_with("$argon2id$") {
        return Ok(());
    }
    // The value may be a password passed by mistake: never echo it.
    Err(StoreError::invalid(
        "password_hash",
        "expected an argon2id PHC string ($argon2id$v=19$…); hash the password first",
    ))
}

fn check_token_hash(token_hash: &str) -> Result<(), StoreError> {
    let is_sha256_hex = token_hash.len() == 64
        && token_hash
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if is_sha256_hex {
        return Ok(());
    }
    // The value may be a token passed by mistake: never echo it.
    Err(StoreError::invalid(
        "token_hash",
        "expected the SHA-256 of the refresh token as 64 lower-case hex digits, not the token",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_names_roles_and_hashes_are_checked_before_any_sql() {
        assert!(check_username("alice.b-c_1").is_ok());
        assert!(check_username(&"a".repeat(64)).is_ok());
        for bad in ["", "al ice", "élise", "a/b", &"a".repeat(65)] {
            let message = check_username(bad).unwrap_err().to_string();
            assert!(
                message.ends_with("use 1 to 64 characters from A-Z, a-z, 0-9, '_', '.' and '-'"),
                "{message}"
            );
        }
        assert_eq!(
            check_role("root").unwrap_err().to_string(),
            "invalid role: unknown role 'root'; valid roles: viewer, operator, admin"
        );
        let message = check_password_hash("hunter2").unwrap_err().to_string();
        assert!(!message.contains("hunter2"), "{message}");
        assert!(check_token_hash(&"0f".repeat(32)).is_ok());
        let token = format!("tars_rt_{}", "0f".repeat(32));
        let message = check_token_hash(&token).unwrap_err().to_string();
        assert!(!message.contains(&token), "{message}");
        assert!(check_token_hash(&"0F".repeat(32)).is_err());
    }

    #[test]
    fn hashes_stay_out_of_debug_output() {
        let user = NewUser {
            username: "alice".into(),
            password_hash: "$argon2id$v=19$secret".into(),
            role: "viewer".into(),
        };
        assert!(!format!("{user:?}").contains("secret"));
    }

    #[test]
    fn sqlite_times_match_the_migrations_format() {
        let time = DateTime::parse_from_rfc3339("2026-11-01T08:09:10.123456Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(sqlite_time(time), "2026-11-01T08:09:10.123Z");
    }
}
