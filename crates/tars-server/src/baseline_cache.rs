//! A read-through cache of baseline listings in process memory, so `GET /v1/baselines/…`
//! costs no database round trip while nothing changed.
//!
//! Correctness comes from two rules. Every write to the baselines made by this process clears
//! the cache once the write is done ([`BaselineCache::invalidate`], through the service's
//! write methods). And a listing read from the database is only kept when no clear happened
//! while it was being read (the generation it started under is still current), so a read that
//! raced a write never puts the old rows back. Writes by other processes (another `tars`
//! command on the same database, other replicas) are seen once an entry is `ttl` old; fleet
//! mode will clear the cache on their notice (Redis pub/sub) through the same `invalidate`.
//!
//! Keys are an algorithm name and an optional environment id, both `'static` names from the
//! registries (`Algo::name`, `EnvSpec::id`), so there are at most algorithms × (environments
//! + 1) entries and a lookup allocates nothing.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tars_store::BaselineRow;

/// What a listing is cached under: agent type and environment filter.
pub type Key = (&'static str, Option<&'static str>);

/// Baseline listings by (agent type, environment filter), each for at most `ttl`.
pub struct BaselineCache {
    ttl: Duration,
    state: RwLock<State>,
}

#[derive(Default)]
struct State {
    /// Bumped by every invalidation.
    generation: u64,
    entries: HashMap<Key, (Instant, Arc<[BaselineRow]>)>,
}

/// A cache miss: the generation to hand back to [`BaselineCache::fill`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Miss(u64);

impl BaselineCache {
    /// A cache whose entries live `ttl` (zero: nothing is kept).
    pub fn new(ttl: Duration) -> BaselineCache {
        BaselineCache {
            ttl,
            state: RwLock::new(State::default()),
        }
    }

    /// The listing under `key` when it is fresh.
    pub fn get(&self, key: Key) -> Result<Arc<[BaselineRow]>, Miss> {
        let state = self.state.read().expect("baseline cache lock");
        match state.entries.get(&key) {
            Some((at, rows)) if at.elapsed() < self.ttl => Ok(rows.clone()),
            _ => Err(Miss(state.generation)),
        }
    }

    /// Keeps `rows`, read after `miss`, unless the cache was invalidated since.
    pub fn fill(&self, key: Key, miss: Miss, rows: Arc<[BaselineRow]>) {
        if self.ttl.is_zero() {
            return;
        }
        let mut state = self.state.write().expect("baseline cache lock");
        if state.generation == miss.0 {
            state.entries.insert(key, (Instant::now(), rows));
        }
    }

    /// Forgets every listing; reads in flight will not keep what they read.
    pub fn invalidate(&self) {
        let mut state = self.state.write().expect("baseline cache lock");
        state.generation += 1;
        state.entries.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(mean_reward: f64) -> Arc<[BaselineRow]> {
        let now = chrono::Utc::now();
        vec![BaselineRow {
            id: uuid::Uuid::new_v4(),
            agent_type: "DQN".into(),
            environment: "CartPole-v1".into(),
            mean_reward,
            std_reward: 1.0,
            success_rate: 1.0,
            hyperparameters: serde_json::json!({}),
            version: 1,
            rank: 1,
            created_at: now,
            updated_at: now,
        }]
        .into()
    }

    const KEY: Key = ("DQN", Some("CartPole-v1"));

    #[test]
    fn a_read_that_raced_an_invalidation_is_not_kept() {
        let cache = BaselineCache::new(Duration::from_secs(60));
        let miss = cache.get(KEY).unwrap_err();
        // A write lands (and clears the cache) while the old rows are being read.
        cache.invalidate();
        cache.fill(KEY, miss, rows(1.0));
        let miss = cache.get(KEY).expect_err("the stale read was dropped");
        cache.fill(KEY, miss, rows(2.0));
        assert_eq!(cache.get(KEY).unwrap()[0].mean_reward, 2.0);
        assert!(cache.get(("DQN", None)).is_err(), "keys are separate");
        cache.invalidate();
        assert!(cache.get(KEY).is_err());
    }

    #[test]
    fn entries_expire_and_a_zero_ttl_keeps_nothing() {
        let cache = BaselineCache::new(Duration::from_millis(20));
        let miss = cache.get(KEY).unwrap_err();
        cache.fill(KEY, miss, rows(1.0));
        assert!(cache.get(KEY).is_ok());
        std::thread::sleep(Duration::from_millis(30));
        assert!(cache.get(KEY).is_err(), "expired");

        let off = BaselineCache::new(Duration::ZERO);
        let miss = off.get(KEY).unwrap_err();
        off.fill(KEY, miss, rows(1.0));
        assert!(off.get(KEY).is_err());
    }
}
