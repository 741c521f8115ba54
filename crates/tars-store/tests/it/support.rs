//! Test databases: [`TestDb::sqlite`] in a temporary directory, [`TestDb::postgres`] in a schema
//! of its own (dropped again when the test ends, even when it fails), and
//! [`on_both_backends!`], which runs each listed test function once per backend.
//!
//! Without `TARS_TEST_DATABASE_URL` the PostgreSQL tests are skipped, unless `CI` is set: then
//! they fail, because CI is expected to have the server.

use sqlx::Executor;
use sqlx::postgres::PgPool;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool};
use std::str::FromStr;
use tars_store::Store;
use tars_testkit::PgSchema;

/// Runs every listed `async fn name(db: &TestDb)` as `sqlite::name` and `postgres::name`.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let db = $crate::support::TestDb::sqlite().await;
                    super::$name(&db).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(db) = $crate::support::TestDb::postgres().await else { return };
                    super::$name(&db).await;
                }
            )*
        }
    };
}

/// A migrated, empty database and a [`Store`] on it.
pub struct TestDb {
    pub store: Store,
    pub url: String,
    raw: Raw,
    _dir: Option<tempfile::TempDir>,
    /// PostgreSQL: the schema, dropped with the `TestDb`.
    _schema: Option<PgSchema>,
}

/// A plain pool beside the store's, for the SQL the store has no method for.
pub enum Raw {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

impl TestDb {
    pub async fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("creating a temporary directory");
        let url = format!(
            "sqlite://{}",
            dir.path().join("nested/dir/tars.db").display()
        );
        let store = Store::connect(&url).await.expect("connecting to SQLite");
        let raw = SqlitePool::connect_with(SqliteConnectOptions::from_str(&url).unwrap())
            .await
            .expect("opening the SQLite file again");
        TestDb {
            store,
            url,
            raw: Raw::Sqlite(raw),
            _dir: Some(dir),
            _schema: None,
        }
    }

    /// `None` (after saying so) when no server is configured outside CI.
    pub async fn postgres() -> Option<TestDb> {
        let schema = PgSchema::create("tars_test").await?;
        let url = schema.url();
        let store = Store::connect(&url)
            .await
            .expect("connecting to PostgreSQL");
        let raw = PgPool::connect(&url)
            .await
            .expect("connecting to PostgreSQL again");
        Some(TestDb {
            store,
            url,
            raw: Raw::Postgres(raw),
            _dir: None,
            _schema: Some(schema),
        })
    }

    pub fn raw(&self) -> &Raw {
        &self.raw
    }

    /// Runs one statement outside the store; returns the rows it affected.
    pub async fn exec(&self, sql: &'static str) -> u64 {
        match &self.raw {
            Raw::Sqlite(pool) => pool.execute(sql).await.unwrap().rows_affected(),
            Raw::Postgres(pool) => pool.execute(sql).await.unwrap().rows_affected(),
        }
    }

    /// The single integer a query returns.
    pub async fn count(&self, sql: &'static str) -> i64 {
        match &self.raw {
            Raw::Sqlite(pool) => sqlx::query_scalar(sql).fetch_one(pool).await.unwrap(),
            Raw::Postgres(pool) => sqlx::query_scalar(sql).fetch_one(pool).await.unwrap(),
        }
    }
}

/// The seed's first §3.2 row: DQN on CartPole-v1, 450 ± 25, version 12, rank 1.
pub fn seed_dqn_cartpole() -> tars_store::NewBaseline {
    tars_store::NewBaseline {
        agent_type: "DQN".into(),
        environment: "CartPole-v1".into(),
        mean_reward: 450.0,
        std_reward: 25.0,
        success_rate: 0.95,
        hyperparameters: serde_json::json!({"learning_rate": 0.001, "gamma": 0.99, "epsilon": 0.1}),
        version: 12,
        rank: 1,
    }
}

/// The seed's second §3.2 row: A2C on LunarLander-v2, 180 ± 35, version 8, rank 1.
pub fn seed_a2c_lunar_lander() -> tars_store::NewBaseline {
    tars_store::NewBaseline {
        agent_type: "A2C".into(),
        environment: "LunarLander-v2".into(),
        mean_reward: 180.0,
        std_reward: 35.0,
        success_rate: 0.85,
        hyperparameters: serde_json::json!({"learning_rate": 0.0007, "gamma": 0.99, "entropy_coef": 0.01}),
        version: 8,
        rank: 1,
    }
}

/// A promotion of DQN on CartPole-v1 with the given mean reward, rank and expected version.
pub fn promotion(
    mean_reward: f64,
    rank: i32,
    expected_version: Option<i32>,
) -> tars_store::Promotion {
    tars_store::Promotion {
        agent_type: "dqn".into(),
        environment: "CartPole-v1".into(),
        mean_reward,
        std_reward: 10.0,
        success_rate: 0.9,
        hyperparameters: serde_json::json!({"learning_rate": 0.0005}),
        rank,
        expected_version,
        eval_result_id: None,
        actor: Some("alice".into()),
    }
}
