//! Rate-limit buckets shared by the replicas: the token buckets of
//! `middleware::RateLimiter` (`rate_limit_rps` per second up to `rate_limit_burst`, one per
//! IP and one per bearer token), kept in Redis hashes (`<prefix>:rate:<sha-256 of the key>`)
//! and taken by one Lua script, so a burst spent through one replica is spent for all of them.
//! The script reads Redis's clock, so the replicas' clocks do not matter. When Redis is
//! degraded the middleware uses its local buckets instead.

use super::Redis;
use ::redis::Script;
use sha2::{Digest, Sha256};
use std::sync::LazyLock;

/// Takes one token from each bucket in KEYS order; stops at the first empty one and answers
/// its position (1-based) and the seconds until it has a token, else `{0, 0}`. Refill as in
/// the local limiter: `min(burst, tokens + elapsed × rate)`.
static TAKE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        local t = redis.call('TIME')
        local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
        local rate = tonumber(ARGV[1])
        local burst = tonumber(ARGV[2])
        for i, key in ipairs(KEYS) do
          local b = redis.call('HMGET', key, 'tokens', 'at')
          local tokens = tonumber(b[1]) or burst
          local at = tonumber(b[2]) or now
          tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
          local taken = tokens >= 1
          if taken then tokens = tokens - 1 end
          redis.call('HSET', key, 'tokens', string.format('%.17g', tokens),
                     'at', string.format('%.17g', now))
          redis.call('PEXPIRE', key, ARGV[3])
          if not taken then
            return {i, math.max(1, math.ceil((1 - tokens) / rate))}
          end
        end
        return {0, 0}
        ",
    )
});

/// A shared bucket's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Taken {
    /// Every bucket had a token.
    Allowed,
    /// Bucket `index` (0-based, in the order given) is empty for this many seconds.
    Limited { index: usize, retry_after: u64 },
}

impl Redis {
    /// Takes a token from each of `keys`' shared buckets in order (as the local limiter
    /// does); `None` when Redis cannot answer (use the local buckets).
    pub async fn take_tokens(&self, keys: &[&str], rate: f64, burst: f64) -> Option<Taken> {
        let prefix = self.prefix();
        let hashed: Vec<String> = keys
            .iter()
            .map(|key| {
                let digest = Sha256::digest(key.as_bytes());
                let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
                format!("{prefix}:rate:{hex}")
            })
            .collect();
        // A bucket untouched for the time it takes to refill is full again: nothing to keep.
        let ttl_ms = ((burst / rate) * 1000.0).ceil().min(1e12) as u64 + 1_000;
        let (position, seconds): (usize, u64) = self
            .call("rate_limit", |mut connection| async move {
                let mut invocation = TAKE.prepare_invoke();
                for key in hashed {
                    invocation.key(key);
                }
                invocation
                    .arg(rate)
                    .arg(burst)
                    .arg(ttl_ms)
                    .invoke_async(&mut connection)
                    .await
            })
            .await?;
        Some(match position {
            0 => Taken::Allowed,
            index => Taken::Limited {
                index: index - 1,
                retry_after: seconds,
            },
        })
    }
}
