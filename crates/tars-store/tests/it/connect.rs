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

/// Processes starting together on a new data directory (a server and `tars user add`) set it
/// up once, in turn: every one connects and sees a migrated database. The directory created is
/// the owner's only, and so are the database's files.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_first_starts_are_serialised_and_private() {
    for round in 0..10 {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("data/tars.db").display());
        let starts: Vec<_> = (0..6)
            .map(|_| {
                let url = url.clone();
                tokio::spawn(async move { Store::connect(&url).await })
            })
            .collect();
        for start in starts {
            let store = start
                .await
                .unwrap()
                .unwrap_or_else(|e| panic!("round {round}: {e}"));
            assert!(store.baselines(None, None).await.unwrap().is_empty());
            store.close().await;
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode =
                |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&dir.path().join("data")), 0o700);
            for entry in std::fs::read_dir(dir.path().join("data")).unwrap() {
                let path = entry.unwrap().path();
                assert_eq!(mode(&path), 0o600, "{}", path.display());
            }
        }
    }
}
