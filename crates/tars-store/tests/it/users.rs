//! Users and refresh tokens: CRUD with the same refusals on both backends, rotation, reuse
//! revoking the family (also when two refreshes race), expiry, and what a new password or a
//! deleted user does to the tokens.

use crate::support::TestDb;
use chrono::{DateTime, Duration, Utc};
use tars_store::{
    Conflict, NewRefreshToken, NewUser, NextRefreshToken, RefreshUse, StoreError, UserRow,
};
use uuid::Uuid;

on_both_backends!(
    users_are_created_listed_changed_and_deleted,
    invalid_users_are_refused_with_what_is_valid,
    each_refresh_rotates_the_token_in_its_family,
    a_reused_token_revokes_its_family,
    racing_refreshes_with_one_token_rotate_it_once,
    expired_and_unknown_tokens_change_nothing,
    a_new_password_or_a_deleted_user_ends_every_session,
    families_are_revoked_and_pruned_one_by_one,
);

/// A syntactically valid argon2id PHC string (the store never verifies it).
fn phc(tag: &str) -> String {
    format!("$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ${tag}")
}

fn new_user(username: &str, role: &str) -> NewUser {
    NewUser {
        username: username.into(),
        password_hash: phc("hash"),
        role: role.into(),
    }
}

/// A distinct SHA-256-shaped hash per `n`.
fn hash(n: u64) -> String {
    format!("{n:064x}")
}

fn next(n: u64, expires_at: DateTime<Utc>) -> NextRefreshToken {
    NextRefreshToken {
        token_hash: hash(n),
        expires_at,
    }
}

/// Logs `user` in: stores token `hash(n)` in a new family, and returns the family.
async fn login(db: &TestDb, user: &UserRow, n: u64, expires_at: DateTime<Utc>) -> Uuid {
    let family_id = Uuid::new_v4();
    db.store
        .insert_refresh_token(&NewRefreshToken {
            user_id: user.id,
            family_id,
            token_hash: hash(n),
            expires_at,
        })
        .await
        .unwrap();
    family_id
}

fn in_a_day() -> DateTime<Utc> {
    Utc::now() + Duration::days(1)
}

async fn users_are_created_listed_changed_and_deleted(db: &TestDb) {
    assert_eq!(db.store.count_users().await.unwrap(), 0);
    let bob = db
        .store
        .create_user(&new_user("bob", "viewer"))
        .await
        .unwrap();
    let alice = db
        .store
        .create_user(&new_user("alice", "admin"))
        .await
        .unwrap();
    db.store
        .create_user(&new_user("Alice", "operator"))
        .await
        .unwrap();
    assert_eq!(
        (bob.username.as_str(), bob.role.as_str()),
        ("bob", "viewer")
    );
    assert_eq!(bob.password_hash, phc("hash"));
    assert_eq!(bob.id.get_version_num(), 4);
    assert_eq!(db.store.count_users().await.unwrap(), 3);
    // Names are case-sensitive and listed in byte order.
    let names: Vec<String> = db
        .store
        .users()
        .await
        .unwrap()
        .into_iter()
        .map(|user| user.username)
        .collect();
    assert_eq!(names, ["Alice", "alice", "bob"]);
    assert_eq!(db.store.user_by_name("alice").await.unwrap(), Some(alice));
    assert_eq!(db.store.user_by_name("ALICE").await.unwrap(), None);

    let error = db
        .store
        .create_user(&new_user("bob", "admin"))
        .await
        .unwrap_err();
    assert!(
        matches!(&error, StoreError::Conflict(Conflict::UserExists { username }) if username == "bob"),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        "user 'bob' already exists; pick another name"
    );

    let changed = db.store.set_password("bob", &phc("new")).await.unwrap();
    assert_eq!(
        (
            changed.id,
            changed.password_hash.as_str(),
            changed.role.as_str()
        ),
        (bob.id, phc("new").as_str(), "viewer")
    );
    assert!(changed.updated_at >= bob.updated_at);
    assert_eq!(changed.created_at, bob.created_at);
    let promoted = db.store.set_role("bob", "operator").await.unwrap();
    assert_eq!(
        (promoted.role.as_str(), promoted.password_hash.as_str()),
        ("operator", phc("new").as_str())
    );
    assert_eq!(db.store.user_by_name("bob").await.unwrap(), Some(promoted));

    db.store.delete_user("bob").await.unwrap();
    assert_eq!(db.store.user_by_name("bob").await.unwrap(), None);
    assert_eq!(db.store.count_users().await.unwrap(), 2);
    for error in [
        db.store.delete_user("bob").await.unwrap_err(),
        db.store.set_password("bob", &phc("x")).await.unwrap_err(),
        db.store.set_role("bob", "admin").await.unwrap_err(),
    ] {
        assert_eq!(error.to_string(), "user bob not found");
    }
}

async fn invalid_users_are_refused_with_what_is_valid(db: &TestDb) {
    let cases = [
        (
            new_user("", "viewer"),
            "invalid username: '' is not a user name; use 1 to 64 characters from A-Z, a-z, 0-9, '_', '.' and '-'",
        ),
        (
            new_user(&"x".repeat(65), "viewer"),
            "characters from A-Z, a-z, 0-9, '_', '.' and '-'",
        ),
        (
            new_user("ro bert", "viewer"),
            "invalid username: 'ro bert' is not a user name",
        ),
        (
            new_user("robert", "root"),
            "invalid role: unknown role 'root'; valid roles: viewer, operator, admin",
        ),
        (
            NewUser {
                password_hash: "hunter2".into(),
                ..new_user("robert", "viewer")
            },
            "invalid password_hash: expected an argon2id PHC string ($argon2id$v=19$…); hash the password first",
        ),
    ];
    for (user, message) in cases {
        let error = db.store.create_user(&user).await.unwrap_err();
        assert!(error.to_string().contains(message), "{error}");
    }
    db.store
        .create_user(&new_user(&"x".repeat(64), "viewer"))
        .await
        .unwrap();
    db.store
        .create_user(&new_user("a.b-c_D9", "viewer"))
        .await
        .unwrap();
    assert_eq!(
        db.store
            .set_role("a.b-c_D9", "superuser")
            .await
            .unwrap_err()
            .to_string(),
        "invalid role: unknown role 'superuser'; valid roles: viewer, operator, admin"
    );
    let error = db
        .store
        .insert_refresh_token(&NewRefreshToken {
            user_id: Uuid::new_v4(),
            family_id: Uuid::new_v4(),
            token_hash: format!("tars_rt_{}", hash(1)),
            expires_at: in_a_day(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "invalid token_hash: expected the SHA-256 of the refresh token as 64 lower-case hex digits, not the token"
    );
    let nobody = Uuid::new_v4();
    let error = db
        .store
        .insert_refresh_token(&NewRefreshToken {
            user_id: nobody,
            family_id: Uuid::new_v4(),
            token_hash: hash(1),
            expires_at: in_a_day(),
        })
        .await
        .unwrap_err();
    assert_eq!(error.to_string(), format!("user {nobody} not found"));
}

async fn each_refresh_rotates_the_token_in_its_family(db: &TestDb) {
    let user = db
        .store
        .create_user(&new_user("carol", "operator"))
        .await
        .unwrap();
    let family_id = login(db, &user, 1, in_a_day()).await;
    let mut previous = 1;
    for n in 2..5 {
        let used = db
            .store
            .use_refresh_token(&hash(previous), &next(n, in_a_day()), Utc::now())
            .await
            .unwrap();
        assert_eq!(
            used,
            RefreshUse::Rotated {
                user: user.clone(),
                family_id
            }
        );
        previous = n;
    }
    // The role as stored now comes back with the next rotation.
    db.store.set_role("carol", "admin").await.unwrap();
    let RefreshUse::Rotated { user: rotated, .. } = db
        .store
        .use_refresh_token(&hash(4), &next(5, in_a_day()), Utc::now())
        .await
        .unwrap()
    else {
        panic!("token 4 is the family's live token")
    };
    assert_eq!(rotated.role, "admin");
    assert_eq!(
        db.count("SELECT COUNT(*) FROM refresh_tokens WHERE used_at IS NOT NULL")
            .await,
        4
    );
    assert_eq!(
        db.count("SELECT COUNT(*) FROM refresh_tokens WHERE revoked_at IS NOT NULL")
            .await,
        0
    );
}

async fn a_reused_token_revokes_its_family(db: &TestDb) {
    let user = db
        .store
        .create_user(&new_user("dave", "viewer"))
        .await
        .unwrap();
    let family_id = login(db, &user, 1, in_a_day()).await;
    let other_family = login(db, &user, 100, in_a_day()).await;
    db.store
        .use_refresh_token(&hash(1), &next(2, in_a_day()), Utc::now())
        .await
        .unwrap();
    // Token 1 again (a copy): the family is revoked, including the live token 2.
    let reused = db
        .store
        .use_refresh_token(&hash(1), &next(3, in_a_day()), Utc::now())
        .await
        .unwrap();
    assert_eq!(
        reused,
        RefreshUse::Reused {
            user_id: user.id,
            family_id
        }
    );
    let revoked = db
        .store
        .use_refresh_token(&hash(2), &next(4, in_a_day()), Utc::now())
        .await
        .unwrap();
    assert_eq!(
        revoked,
        RefreshUse::Revoked {
            user_id: user.id,
            family_id
        }
    );
    // No successor was stored for the refused tokens; the other session lives on.
    assert_eq!(
        db.count("SELECT COUNT(*) FROM refresh_tokens").await,
        3,
        "tokens 1, 2 and 100"
    );
    assert!(matches!(
        db.store
            .use_refresh_token(&hash(100), &next(101, in_a_day()), Utc::now())
            .await
            .unwrap(),
        RefreshUse::Rotated { family_id, .. } if family_id == other_family
    ));
}

async fn racing_refreshes_with_one_token_rotate_it_once(db: &TestDb) {
    let user = db
        .store
        .create_user(&new_user("erin", "viewer"))
        .await
        .unwrap();
    let family_id = login(db, &user, 1, in_a_day()).await;
    let n_racers = 8;
    let racers: Vec<_> = (0..n_racers)
        .map(|racer_idx| {
            let store = db.store.clone();
            tokio::spawn(async move {
                store
                    .use_refresh_token(&hash(1), &next(10 + racer_idx, in_a_day()), Utc::now())
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut n_rotated = 0;
    let mut successor = None;
    for racer in racers {
        match racer.await.unwrap() {
            RefreshUse::Rotated { .. } => n_rotated += 1,
            RefreshUse::Reused { .. } => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(n_rotated, 1);
    for n in 10..10 + n_racers {
        if db
            .store
            .use_refresh_token(&hash(n), &next(100, in_a_day()), Utc::now())
            .await
            .unwrap()
            != RefreshUse::Unknown
        {
            successor = Some(n);
        }
    }
    // The winner's successor was stored, and revoked by the losers' reuse.
    assert!(successor.is_some());
    assert_eq!(
        db.count("SELECT COUNT(*) FROM refresh_tokens WHERE revoked_at IS NULL")
            .await,
        0
    );
    assert_eq!(
        db.store.revoke_family(family_id, Utc::now()).await.unwrap(),
        0
    );
}

async fn expired_and_unknown_tokens_change_nothing(db: &TestDb) {
    let user = db
        .store
        .create_user(&new_user("frank", "viewer"))
        .await
        .unwrap();
    let expires_at = Utc::now() - Duration::seconds(1);
    let family_id = login(db, &user, 1, expires_at).await;
    for _ in 0..2 {
        let used = db
            .store
            .use_refresh_token(&hash(1), &next(2, in_a_day()), Utc::now())
            .await
            .unwrap();
        assert_eq!(
            used,
            RefreshUse::Expired {
                user_id: user.id,
                family_id
            }
        );
    }
    // Expiry is judged at the caller's `now`.
    assert!(matches!(
        db.store
            .use_refresh_token(
                &hash(1),
                &next(2, in_a_day()),
                expires_at - Duration::seconds(5)
            )
            .await
            .unwrap(),
        RefreshUse::Rotated { .. }
    ));
    assert_eq!(
        db.store
            .use_refresh_token(&hash(999), &next(3, in_a_day()), Utc::now())
            .await
            .unwrap(),
        RefreshUse::Unknown
    );
    assert_eq!(db.count("SELECT COUNT(*) FROM refresh_tokens").await, 2);
}

async fn a_new_password_or_a_deleted_user_ends_every_session(db: &TestDb) {
    let user = db
        .store
        .create_user(&new_user("grace", "admin"))
        .await
        .unwrap();
    let first = login(db, &user, 1, in_a_day()).await;
    let second = login(db, &user, 2, in_a_day()).await;
    db.store.set_password("grace", &phc("new")).await.unwrap();
    for (n, family_id) in [(1, first), (2, second)] {
        assert_eq!(
            db.store
                .use_refresh_token(&hash(n), &next(10 + n, in_a_day()), Utc::now())
                .await
                .unwrap(),
            RefreshUse::Revoked {
                user_id: user.id,
                family_id
            }
        );
    }
    login(db, &user, 3, in_a_day()).await;
    db.store.delete_user("grace").await.unwrap();
    assert_eq!(db.count("SELECT COUNT(*) FROM refresh_tokens").await, 0);
    assert_eq!(
        db.store
            .use_refresh_token(&hash(3), &next(4, in_a_day()), Utc::now())
            .await
            .unwrap(),
        RefreshUse::Unknown
    );
}

async fn families_are_revoked_and_pruned_one_by_one(db: &TestDb) {
    let user = db
        .store
        .create_user(&new_user("heidi", "viewer"))
        .await
        .unwrap();
    let family_id = login(db, &user, 1, in_a_day()).await;
    db.store
        .use_refresh_token(&hash(1), &next(2, in_a_day()), Utc::now())
        .await
        .unwrap();
    let other_family = login(db, &user, 3, in_a_day()).await;
    assert_eq!(
        db.store.revoke_family(family_id, Utc::now()).await.unwrap(),
        2
    );
    assert_eq!(
        db.store.revoke_family(family_id, Utc::now()).await.unwrap(),
        0
    );
    assert_eq!(
        db.store
            .revoke_family(Uuid::new_v4(), Utc::now())
            .await
            .unwrap(),
        0
    );
    assert!(matches!(
        db.store
            .use_refresh_token(&hash(3), &next(4, in_a_day()), Utc::now())
            .await
            .unwrap(),
        RefreshUse::Rotated { family_id, .. } if family_id == other_family
    ));

    login(db, &user, 5, Utc::now() - Duration::days(2)).await;
    assert_eq!(
        db.store
            .prune_refresh_tokens(Utc::now() - Duration::days(1))
            .await
            .unwrap(),
        1
    );
    assert_eq!(db.count("SELECT COUNT(*) FROM refresh_tokens").await, 4);
    assert_eq!(
        db.store
            .prune_refresh_tokens(Utc::now() + Duration::days(2))
            .await
            .unwrap(),
        4
    );
}
