//! `Idempotency-Key` records in Redis: (principal, key) → job id, set if absent, kept
//! [`TTL`], in front of the database's dedupe (`eval_jobs`' unique (principal, key)).
//!
//! The database stays the truth: a record only lets a repeated submission skip the insert,
//! and a record naming a job the database does not hold (its submitter has not inserted it
//! yet, or lost the insert race) is ignored. With Redis degraded the database dedupes alone.

use super::Redis;
use ::redis::Script;
use sha2::{Digest, Sha256};
use std::sync::LazyLock;
use std::time::Duration;
use uuid::Uuid;

/// How long a record is kept (the database keeps the key for as long as the job).
pub const TTL: Duration = Duration::from_secs(24 * 3600);

/// SET NX with a TTL; on a clash, the job id already recorded.
static CLAIM: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2]) then return false end
        return redis.call('GET', KEYS[1])
        ",
    )
});

/// What Redis knew of a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// First use of the key: recorded for this job.
    Claimed,
    /// The key was used before, for this job.
    Taken(Uuid),
}

impl Redis {
    /// Records `job` under (`principal`, `key`) unless the key was used before; `None` when
    /// Redis cannot answer.
    pub async fn claim_idempotency_key(
        &self,
        principal: &str,
        key: &str,
        job: Uuid,
    ) -> Option<Claim> {
        let record = self.idempotency_record(principal, key);
        let existing: Option<String> = self
            .call("idempotency", |mut connection| async move {
                CLAIM
                    .key(record)
                    .arg(job.to_string())
                    .arg(TTL.as_secs())
                    .invoke_async(&mut connection)
                    .await
            })
            .await?;
        match existing {
            None => Some(Claim::Claimed),
            Some(text) => match text.parse() {
                Ok(id) => Some(Claim::Taken(id)),
                Err(_) => {
                    self.count_error("idempotency_decode");
                    None
                }
            },
        }
    }

    /// Records `job` under (`principal`, `key`), replacing a claim the database overruled.
    pub async fn record_idempotency_key(&self, principal: &str, key: &str, job: Uuid) {
        let record = self.idempotency_record(principal, key);
        self.call("idempotency", |mut connection| async move {
            ::redis::cmd("SET")
                .arg(record)
                .arg(job.to_string())
                .arg("EX")
                .arg(TTL.as_secs())
                .query_async::<()>(&mut connection)
                .await
        })
        .await;
    }

    /// `<prefix>:idem:<sha-256 of principal and key>`: no user text in key names.
    fn idempotency_record(&self, principal: &str, key: &str) -> String {
        let mut hasher = Sha256::new();
        hasher.update(principal.as_bytes());
        hasher.update([0u8]);
        hasher.update(key.as_bytes());
        let digest = hasher.finalize();
        let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
        format!("{}:idem:{hex}", self.prefix())
    }
}
