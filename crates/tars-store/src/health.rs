//! Liveness of the database, for `/health` and `/ready`.

use crate::{Backend, Store, StoreError};

impl Store {
    /// One round trip to the database (`SELECT 1`).
    pub async fn ping(&self) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Postgres(pool) => {
                sqlx::query("SELECT 1").execute(pool).await?;
            }
            Backend::Sqlite(db) => {
                sqlx::query("SELECT 1").execute(&db.read).await?;
            }
        }
        Ok(())
    }
}
