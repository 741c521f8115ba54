//! The migrations: `eval_baselines` is exactly the seed's table (deployment guide §3.1), the
//! seed's own INSERTs (§3.2) work on it, and its rollback script (§3.3, the `.down.sql`) removes
//! the table, the trigger and the trigger function.

use crate::support::{Raw, TestDb};
use tars_store::migrations;

on_both_backends!(
    seed_inserts_run_verbatim,
    down_migrations_remove_everything_and_up_restores_it
);

/// The seed's `\d eval_baselines`: column, type, nullable, default.
const SEED_COLUMNS: [(&str, &str, &str, &str); 11] = [
    ("id", "uuid", "NO", "gen_random_uuid()"),
    ("agent_type", "character varying(50)", "NO", ""),
    ("environment", "character varying(100)", "NO", ""),
    ("mean_reward", "double precision", "NO", ""),
    ("std_reward", "double precision", "NO", ""),
    ("success_rate", "double precision", "NO", ""),
    ("hyperparameters", "jsonb", "NO", ""),
    ("version", "integer", "NO", ""),
    ("rank", "integer", "NO", "1"),
    ("created_at", "timestamp with time zone", "NO", "now()"),
    ("updated_at", "timestamp with time zone", "NO", "now()"),
];

const SEED_INDEXES: [&str; 4] = [
    "eval_baselines_agent_env_rank_unique",
    "eval_baselines_pkey",
    "idx_eval_baselines_agent_env",
    "idx_eval_baselines_rank",
];

#[tokio::test]
async fn postgres_eval_baselines_is_the_seeds_table() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let Raw::Postgres(pool) = db.raw() else {
        unreachable!()
    };
    let columns: Vec<(String, String, String, String)> = sqlx::query_as(
        "SELECT column_name::text,
                CASE WHEN data_type = 'character varying'
                     THEN 'character varying(' || character_maximum_length || ')'
                     ELSE data_type END,
                is_nullable::text, coalesce(column_default, '')
         FROM information_schema.columns
         WHERE table_schema = current_schema() AND table_name = 'eval_baselines'
         ORDER BY ordinal_position",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let columns: Vec<_> = columns
        .iter()
        .map(|(a, b, c, d)| (a.as_str(), b.as_str(), c.as_str(), d.as_str()))
        .collect();
    assert_eq!(columns, SEED_COLUMNS);

    let indexes: Vec<String> = sqlx::query_scalar(
        "SELECT indexname::text FROM pg_indexes
         WHERE schemaname = current_schema() AND tablename = 'eval_baselines' ORDER BY indexname",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert_eq!(indexes, SEED_INDEXES);
    let unique_constraint: String = sqlx::query_scalar(
        "SELECT pg_get_constraintdef(c.oid) FROM pg_constraint c
         JOIN pg_namespace n ON n.oid = c.connamespace
         WHERE n.nspname = current_schema() AND c.conname = 'eval_baselines_agent_env_rank_unique'",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(unique_constraint, "UNIQUE (agent_type, environment, rank)");
    let trigger: String = sqlx::query_scalar(
        "SELECT pg_get_triggerdef(t.oid) FROM pg_trigger t
         JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = current_schema() AND t.tgname = 'eval_baselines_updated_at'",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert!(
        trigger.starts_with("CREATE TRIGGER eval_baselines_updated_at BEFORE UPDATE ON"),
        "{trigger}"
    );
    assert!(
        trigger.ends_with("FOR EACH ROW EXECUTE FUNCTION update_eval_baselines_updated_at()"),
        "{trigger}"
    );
}

#[tokio::test]
async fn sqlite_eval_baselines_has_the_seeds_names() {
    let db = TestDb::sqlite().await;
    let Raw::Sqlite(pool) = db.raw() else {
        unreachable!()
    };
    let columns: Vec<(String, String, bool, Option<String>)> =
        sqlx::query_as(r#"SELECT name, type, "notnull", dflt_value FROM pragma_table_info('eval_baselines') ORDER BY cid"#)
            .fetch_all(pool)
            .await
            .unwrap();
    let names: Vec<&str> = columns.iter().map(|column| column.0.as_str()).collect();
    let seed_names: Vec<&str> = SEED_COLUMNS.iter().map(|column| column.0).collect();
    assert_eq!(names, seed_names);
    assert!(
        columns.iter().all(|column| column.2),
        "every column is NOT NULL"
    );
    assert_eq!(columns[8].3.as_deref(), Some("1"), "rank defaults to 1");
    let indexes: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'eval_baselines'
           AND name NOT LIKE 'sqlite_autoindex_%' ORDER BY name",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert_eq!(
        indexes,
        ["idx_eval_baselines_agent_env", "idx_eval_baselines_rank"]
    );
    let table_sql: String =
        sqlx::query_scalar("SELECT sql FROM sqlite_master WHERE name = 'eval_baselines'")
            .fetch_one(pool)
            .await
            .unwrap();
    assert!(table_sql.contains(
        "CONSTRAINT eval_baselines_agent_env_rank_unique UNIQUE (agent_type, environment, rank)"
    ));
}

async fn seed_inserts_run_verbatim(db: &TestDb) {
    // §3.2 as written (SQLite has no `::jsonb` cast; the JSON is stored as text there).
    let (dqn, a2c) = match db.raw() {
        Raw::Postgres(_) => (
            "INSERT INTO eval_baselines (
                agent_type, environment, mean_reward, std_reward, success_rate,
                hyperparameters, version, rank
            ) VALUES (
                'DQN', 'CartPole-v1', 450.0, 25.0, 0.95,
                '{\"learning_rate\": 0.001, \"gamma\": 0.99, \"epsilon\": 0.1}'::jsonb,
                12, 1
            )",
            "INSERT INTO eval_baselines (
                agent_type, environment, mean_reward, std_reward, success_rate,
                hyperparameters, version, rank
            ) VALUES (
                'A2C', 'LunarLander-v2', 180.0, 35.0, 0.85,
                '{\"learning_rate\": 0.0007, \"gamma\": 0.99, \"entropy_coef\": 0.01}'::jsonb,
                8, 1
            )",
        ),
        Raw::Sqlite(_) => (
            "INSERT INTO eval_baselines (
                agent_type, environment, mean_reward, std_reward, success_rate,
                hyperparameters, version, rank
            ) VALUES (
                'DQN', 'CartPole-v1', 450.0, 25.0, 0.95,
                '{\"learning_rate\": 0.001, \"gamma\": 0.99, \"epsilon\": 0.1}',
                12, 1
            )",
            "INSERT INTO eval_baselines (
                agent_type, environment, mean_reward, std_reward, success_rate,
                hyperparameters, version, rank
            ) VALUES (
                'A2C', 'LunarLander-v2', 180.0, 35.0, 0.85,
                '{\"learning_rate\": 0.0007, \"gamma\": 0.99, \"entropy_coef\": 0.01}',
                8, 1
            )",
        ),
    };
    assert_eq!(db.exec(dqn).await, 1);
    assert_eq!(db.exec(a2c).await, 1);
    let rows = db.store.baselines(None, None).await.unwrap();
    let summary: Vec<_> = rows
        .iter()
        .map(|row| {
            (
                row.agent_type.as_str(),
                row.environment.as_str(),
                row.mean_reward,
                row.version,
                row.rank,
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("A2C", "LunarLander-v2", 180.0, 8, 1),
            ("DQN", "CartPole-v1", 450.0, 12, 1)
        ]
    );
    assert_eq!(
        rows[1].hyperparameters,
        crate::support::seed_dqn_cartpole().hyperparameters
    );
    // The database made the id (a v4 UUID) and the timestamps.
    assert_eq!(rows[0].id.get_version_num(), 4);
    assert_ne!(rows[0].id, rows[1].id);
}

async fn down_migrations_remove_everything_and_up_restores_it(db: &TestDb) {
    db.store
        .insert_baseline(&crate::support::seed_dqn_cartpole())
        .await
        .unwrap();
    db.store.close().await;
    let (table, trigger, function) = match db.raw() {
        Raw::Postgres(_) => (
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = current_schema() AND c.relname = 'eval_baselines'",
            "SELECT count(*) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
             JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = current_schema() AND t.tgname = 'eval_baselines_updated_at'",
            "SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
             WHERE n.nspname = current_schema() AND p.proname = 'update_eval_baselines_updated_at'",
        ),
        Raw::Sqlite(_) => (
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'eval_baselines'",
            "SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND name = 'eval_baselines_updated_at'",
            // SQLite triggers have no separate function.
            "SELECT 0",
        ),
    };
    let is_postgres = matches!(db.raw(), Raw::Postgres(_));
    let n_tables = "SELECT count(*) FROM (SELECT 1 FROM eval_runs UNION ALL SELECT 1 FROM baseline_history) AS rows";
    assert_eq!(
        (
            db.count(table).await,
            db.count(trigger).await,
            db.count(function).await
        ),
        (1, 1, i64::from(is_postgres))
    );
    assert_eq!(db.count(n_tables).await, 1);

    // Undo every migration down to before the seed's 007: the later tables go first, then 007's
    // .down.sql (the seed's rollback script).
    let before_007 = migrations::EVAL_BASELINES_VERSION - 1;
    match db.raw() {
        Raw::Postgres(pool) => migrations::POSTGRES.undo(pool, before_007).await.unwrap(),
        Raw::Sqlite(pool) => migrations::SQLITE.undo(pool, before_007).await.unwrap(),
    }
    assert_eq!(
        (
            db.count(table).await,
            db.count(trigger).await,
            db.count(function).await
        ),
        (0, 0, 0)
    );
    let leftover_tables = match db.raw() {
        Raw::Postgres(_) => {
            "SELECT count(*) FROM pg_tables WHERE schemaname = current_schema() AND tablename <> '_sqlx_migrations'"
        }
        Raw::Sqlite(_) => {
            "SELECT count(*) FROM sqlite_master WHERE type = 'table'
             AND name NOT IN ('_sqlx_migrations', 'sqlite_sequence')"
        }
    };
    assert_eq!(db.count(leftover_tables).await, 0);

    // Connecting again applies them again, to an empty table.
    let store = tars_store::Store::connect(&db.url).await.unwrap();
    assert_eq!(
        (
            db.count(table).await,
            db.count(trigger).await,
            db.count(function).await
        ),
        (1, 1, i64::from(is_postgres))
    );
    assert_eq!(store.baselines(None, None).await.unwrap(), []);
    store.close().await;
}
