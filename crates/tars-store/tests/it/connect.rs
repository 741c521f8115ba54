//! URLs `Store::connect` accepts and refuses.

use tars_store::{Store, StoreError};

#[tokio::test]
async fn unknown_schemes_name_the_valid_ones() {
    let error = Store::connect("mysql://root@localhost/test")
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            StoreError::Invalid {
                field: "database url",
                ..
            }
        ),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        "invalid database url: unknown scheme 'mysql'; valid: sqlite://PATH, sqlite::memory:, postgres://USER@HOST/DB"
    );
}

#[tokio::test]
async fn in_memory_sqlite_is_migrated_and_private() {
    let store = Store::connect("sqlite::memory:").await.unwrap();
    assert_eq!(store.backend(), "sqlite");
    store
        .insert_baseline(&crate::support::seed_dqn_cartpole())
        .await
        .unwrap();
    assert_eq!(store.baselines(None, None).await.unwrap().len(), 1);
    let other = Store::connect("sqlite::memory:").await.unwrap();
    assert_eq!(other.baselines(None, None).await.unwrap(), []);
}

#[tokio::test]
async fn sqlite_file_survives_a_reconnect() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("a/b/tars.db").display());
    let store = Store::connect(&url).await.unwrap();
    store
        .insert_baseline(&crate::support::seed_dqn_cartpole())
        .await
        .unwrap();
    store.close().await;
    // Reconnecting applies no migration twice and finds the row.
    let store = Store::connect(&url).await.unwrap();
    assert_eq!(
        store.current_version("DQN", "CartPole-v1").await.unwrap(),
        Some(12)
    );
}

#[tokio::test]
async fn postgres_backend_is_named() {
    let Some(db) = crate::support::TestDb::postgres().await else {
        return;
    };
    assert_eq!(db.store.backend(), "postgres");
    assert!(db.url.starts_with("postgres"));
}
