//! Test support shared by the crates' tests (a dev-dependency only): the URLs of the real
//! services fleet-mode tests run against, and a PostgreSQL schema of each test's own.
//!
//! Tests that need PostgreSQL, Redis or NATS find them through `TARS_TEST_DATABASE_URL`,
//! `TARS_TEST_REDIS_URL` and `TARS_TEST_NATS_URL`. Outside CI a test whose servers are not
//! configured says so and skips; with `CI` set it fails, so CI never passes by skipping.

/// The URLs of the real services a test needs, in the order asked; `None` (the test skips)
/// when one is unset, unless `CI` is set: then the test fails.
pub fn service_urls<const N: usize>(vars: [&str; N]) -> Option<[String; N]> {
    let values = vars.map(|var| std::env::var(var).ok());
    if values.iter().all(Option::is_some) {
        return Some(values.map(Option::unwrap));
    }
    let names = vars.join(" and ");
    assert!(
        std::env::var_os("CI").is_none(),
        "{names} must be set in CI (e.g. postgres://postgres@127.0.0.1:5432/test, \
         redis://127.0.0.1:6379, nats://127.0.0.1:4222)"
    );
    eprintln!("skipping a test of real services: {names} not all set");
    None
}

/// A PostgreSQL schema of the test's own on the server `TARS_TEST_DATABASE_URL` names, so
/// tests run in parallel on one database. [`PgSchema::drop`] removes it; a schema dropped
/// without it (a failing test) is removed from a thread of its own.
pub struct PgSchema {
    /// The server's URL, without the schema.
    pub server_url: String,
    /// `<prefix>_<id>`.
    pub name: String,
    /// A fresh hex id, for the test's other names (servers, key prefixes).
    pub id: String,
    /// A pool on the server, outside the schema.
    pub admin: sqlx::PgPool,
    removed: bool,
}

impl PgSchema {
    /// A new schema; `None` (the test skips) without `TARS_TEST_DATABASE_URL`, unless `CI` is
    /// set: then the test fails.
    pub async fn create(prefix: &str) -> Option<PgSchema> {
        let [server_url] = service_urls(["TARS_TEST_DATABASE_URL"])?;
        Some(PgSchema::create_on(server_url, prefix).await)
    }

    /// A new schema on the server at `server_url`.
    pub async fn create_on(server_url: String, prefix: &str) -> PgSchema {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let name = format!("{prefix}_{id}");
        let admin = sqlx::PgPool::connect(&server_url)
            .await
            .expect("connecting to TARS_TEST_DATABASE_URL");
        // Our own hex name, not input; DDL takes no bind parameters.
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {name}")))
            .execute(&admin)
            .await
            .expect("creating the test's schema");
        PgSchema {
            server_url,
            name,
            id,
            admin,
            removed: false,
        }
    }

    /// `server_url` (this server's, or one standing in for it) with the schema as the
    /// connections' search path.
    pub fn url_on(&self, server_url: &str) -> String {
        let separator = if server_url.contains('?') { '&' } else { '?' };
        format!(
            "{server_url}{separator}options=-c%20search_path%3D{}",
            self.name
        )
    }

    /// The database URL of a server using the schema.
    pub fn url(&self) -> String {
        self.url_on(&self.server_url)
    }

    /// Removes the schema and everything in it.
    pub async fn drop(mut self) {
        let drop = format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name);
        sqlx::query(sqlx::AssertSqlSafe(drop))
            .execute(&self.admin)
            .await
            .expect("dropping the test's schema");
        self.admin.close().await;
        self.removed = true;
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        if self.removed {
            return;
        }
        // Drop is synchronous and may run inside a runtime: connect from a thread with a
        // runtime of its own. Best effort; a leftover schema only costs space.
        let (server_url, name) = (self.server_url.clone(), self.name.clone());
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .expect("a runtime for dropping the schema");
            runtime.block_on(async {
                if let Ok(admin) = sqlx::PgPool::connect(&server_url).await {
                    let drop = format!("DROP SCHEMA IF EXISTS {name} CASCADE");
                    let _ = sqlx::query(sqlx::AssertSqlSafe(drop)).execute(&admin).await;
                    admin.close().await;
                }
            });
        })
        .join();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn schema_exists(admin: &sqlx::PgPool, name: &str) -> bool {
        let query = "SELECT count(*) FROM information_schema.schemata WHERE schema_name = $1";
        let count: i64 = sqlx::query_scalar(query)
            .bind(name)
            .fetch_one(admin)
            .await
            .unwrap();
        count == 1
    }

    #[tokio::test]
    async fn a_schema_is_the_search_path_and_goes_away_either_way() {
        let Some(schema) = PgSchema::create("tars_testkit").await else {
            return;
        };
        let pool = sqlx::PgPool::connect(&schema.url()).await.unwrap();
        let path: String = sqlx::query_scalar("SELECT current_schema()")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(path, schema.name);
        pool.close().await;
        let admin = sqlx::PgPool::connect(&schema.server_url).await.unwrap();
        let name = schema.name.clone();
        schema.drop().await;
        assert!(
            !schema_exists(&admin, &name).await,
            "drop().await removes it"
        );

        // Dropped without `drop().await`, e.g. by a failing test's unwinding.
        let schema = PgSchema::create("tars_testkit").await.unwrap();
        let name = schema.name.clone();
        assert!(schema_exists(&admin, &name).await);
        std::mem::drop(schema);
        assert!(!schema_exists(&admin, &name).await, "Drop removes it");
    }
}
