//! The shared read-through cache: baseline listings (what `GET /v1/baselines/{agent_type}`
//! returns, per agent type and environment filter) and the active config per agent type.
//!
//! Each kind has a generation counter in Redis (`<prefix>:gen:baselines`,
//! `<prefix>:gen:configs`); an entry (`<prefix>:baselines:<AGENT>:<ENV or *>`,
//! `<prefix>:config:<AGENT>`) is a hash holding the generation it was read under and the JSON
//! value, and lives `redis_cache_seconds`. A lookup returns the entry only when its generation
//! is the current one, else the current generation (the miss's stamp); a fill stores what the
//! database gave only when the generation is still the stamp's — both one Lua script, so one
//! round trip and atomic. A write bumps the generation (and deletes the entry) and announces
//! itself on `<prefix>:invalidate` before the writer answers, so a read through any replica
//! after the write's answer misses and reads the database, and a read that raced the write can
//! never put the old rows back. A process that reconnects after an outage bumps every
//! generation ([`forget_everything`]): it may have written while Redis was away.

use super::{Notice, Redis};
use ::redis::Script;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::sync::{Arc, LazyLock};
use tars_store::{BaselineRow, ConfigAction, ConfigRow};
use uuid::Uuid;

/// A lookup's answer.
#[derive(Debug)]
pub enum Lookup<T> {
    Hit(T),
    /// Not cached (or cached under an older generation): read the database, then fill with
    /// this stamp.
    Miss(Stamp),
}

/// The generation a miss saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp(String);

static GET: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        local g = redis.call('GET', KEYS[1]) or '0'
        local e = redis.call('HMGET', KEYS[2], 'g', 'v')
        if e[1] == g and e[2] then return {g, e[2]} end
        return {g}
        ",
    )
});

static FILL: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        if (redis.call('GET', KEYS[1]) or '0') ~= ARGV[1] then return 0 end
        redis.call('HSET', KEYS[2], 'g', ARGV[1], 'v', ARGV[2])
        redis.call('PEXPIRE', KEYS[2], ARGV[3])
        return 1
        ",
    )
});

static INVALIDATE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        redis.call('INCR', KEYS[1])
        if KEYS[2] then redis.call('DEL', KEYS[2]) end
        return redis.call('PUBLISH', ARGV[1], ARGV[2])
        ",
    )
});

fn baselines_generation(prefix: &str) -> String {
    format!("{prefix}:gen:baselines")
}

fn configs_generation(prefix: &str) -> String {
    format!("{prefix}:gen:configs")
}

fn baselines_key(prefix: &str, agent: &str, environment: Option<&str>) -> String {
    format!("{prefix}:baselines:{agent}:{}", environment.unwrap_or("*"))
}

fn config_key(prefix: &str, agent: &str) -> String {
    format!("{prefix}:config:{agent}")
}

impl Redis {
    /// The cached listing of `agent`'s baselines (on `environment`, or all).
    pub async fn cached_baselines(
        &self,
        agent: &str,
        environment: Option<&str>,
    ) -> Option<Lookup<Arc<[BaselineRow]>>> {
        let prefix = self.prefix();
        let entry = baselines_key(prefix, agent, environment);
        let found = self
            .lookup("cache_get", baselines_generation(prefix), entry)
            .await?;
        Some(match found {
            Lookup::Miss(stamp) => Lookup::Miss(stamp),
            Lookup::Hit((stamp, json)) => match serde_json::from_str::<Vec<Baseline>>(&json) {
                Ok(rows) => Lookup::Hit(rows.into_iter().map(BaselineRow::from).collect()),
                Err(_) => {
                    self.count_error("cache_decode");
                    Lookup::Miss(stamp)
                }
            },
        })
    }

    /// Caches `rows`, read from the database after `stamp`'s miss, unless a write came since.
    pub async fn fill_baselines(
        &self,
        agent: &str,
        environment: Option<&str>,
        stamp: Stamp,
        rows: &[BaselineRow],
    ) {
        let json = serde_json::to_string(&rows.iter().map(Baseline::from).collect::<Vec<_>>())
            .expect("baselines serialize");
        let prefix = self.prefix();
        let entry = baselines_key(prefix, agent, environment);
        self.fill(baselines_generation(prefix), entry, stamp, json)
            .await;
    }

    /// The cached active config of `agent`.
    pub async fn cached_config(&self, agent: &str) -> Option<Lookup<ConfigRow>> {
        let prefix = self.prefix();
        let found = self
            .lookup(
                "cache_get",
                configs_generation(prefix),
                config_key(prefix, agent),
            )
            .await?;
        Some(match found {
            Lookup::Miss(stamp) => Lookup::Miss(stamp),
            Lookup::Hit((stamp, json)) => match serde_json::from_str::<Config>(&json)
                .ok()
                .and_then(|config| ConfigRow::try_from(config).ok())
            {
                Some(row) => Lookup::Hit(row),
                None => {
                    self.count_error("cache_decode");
                    Lookup::Miss(stamp)
                }
            },
        })
    }

    /// Caches `row`, read from the database after `stamp`'s miss, unless a write came since.
    pub async fn fill_config(&self, agent: &str, stamp: Stamp, row: &ConfigRow) {
        let json = serde_json::to_string(&Config::from(row)).expect("configs serialize");
        let prefix = self.prefix();
        self.fill(
            configs_generation(prefix),
            config_key(prefix, agent),
            stamp,
            json,
        )
        .await;
    }

    /// Makes every replica's cached copies of what `notice` names stale, and announces it on
    /// the invalidation channel. Called after the write, before the writer answers.
    pub async fn invalidate(&self, notice: Notice) {
        let prefix = self.prefix();
        let (generation, entry) = match &notice {
            Notice::Baselines => (baselines_generation(prefix), None),
            Notice::Config(agent) => (configs_generation(prefix), Some(config_key(prefix, agent))),
        };
        let channel = self.channel();
        let payload = notice_payload(self.origin(), &notice);
        self.call("invalidate", |mut connection| async move {
            let mut invocation = INVALIDATE.prepare_invoke();
            invocation.key(generation);
            if let Some(entry) = entry {
                invocation.key(entry);
            }
            invocation
                .arg(channel)
                .arg(payload)
                .invoke_async::<i64>(&mut connection)
                .await
        })
        .await;
    }

    async fn lookup(
        &self,
        op: &'static str,
        generation: String,
        entry: String,
    ) -> Option<Lookup<(Stamp, String)>> {
        let mut answer: Vec<String> = self
            .call(op, |mut connection| async move {
                GET.key(generation)
                    .key(entry)
                    .invoke_async(&mut connection)
                    .await
            })
            .await?;
        let value = (answer.len() == 2).then(|| answer.pop().expect("two items"));
        let stamp = Stamp(answer.pop()?);
        Some(match value {
            Some(json) => Lookup::Hit((stamp, json)),
            None => Lookup::Miss(stamp),
        })
    }

    async fn fill(&self, generation: String, entry: String, stamp: Stamp, json: String) {
        let ttl_ms = self.settings().cache_ttl.as_millis() as u64;
        self.call("cache_fill", |mut connection| async move {
            FILL.key(generation)
                .key(entry)
                .arg(stamp.0)
                .arg(json)
                .arg(ttl_ms)
                .invoke_async::<i64>(&mut connection)
                .await
        })
        .await;
    }
}

/// Bumps every generation: nothing cached before this moment is served again.
pub(super) async fn forget_everything(
    redis: &Redis,
    connection: &mut ::redis::aio::ConnectionManager,
) -> ::redis::RedisResult<()> {
    let prefix = redis.prefix();
    ::redis::pipe()
        .cmd("INCR")
        .arg(baselines_generation(prefix))
        .ignore()
        .cmd("INCR")
        .arg(configs_generation(prefix))
        .ignore()
        .query_async::<()>(connection)
        .await
}

/// `{"v": 1, "origin", "kind": "baselines"}` or `{"v": 1, "origin", "kind": "config",
/// "agent_type"}`.
pub fn notice_payload(origin: &str, notice: &Notice) -> String {
    match notice {
        Notice::Baselines => serde_json::json!({"v": 1, "origin": origin, "kind": "baselines"}),
        Notice::Config(agent) => {
            serde_json::json!({"v": 1, "origin": origin, "kind": "config", "agent_type": agent})
        }
    }
    .to_string()
}

/// The origin and notice of a payload of [`notice_payload`]'s shape (version 1).
pub fn parse_notice(payload: &[u8]) -> Option<(String, Notice)> {
    let value: Value = serde_json::from_slice(payload).ok()?;
    if value["v"] != 1 {
        return None;
    }
    let origin = value["origin"].as_str()?.to_string();
    let notice = match value["kind"].as_str()? {
        "baselines" => Notice::Baselines,
        "config" => Notice::Config(value["agent_type"].as_str()?.to_string()),
        _ => return None,
    };
    Some((origin, notice))
}

/// A timestamp as whole seconds and nanoseconds: exact both ways.
type Instant = (i64, u32);

fn instant(at: &DateTime<Utc>) -> Instant {
    (at.timestamp(), at.timestamp_subsec_nanos())
}

fn datetime((secs, nanos): Instant) -> DateTime<Utc> {
    DateTime::from_timestamp(secs, nanos).unwrap_or_default()
}

/// A cached baseline row (the store's rows are not a serialized format; this is ours).
#[derive(Serialize, Deserialize)]
struct Baseline {
    id: Uuid,
    agent_type: String,
    environment: String,
    mean_reward: f64,
    std_reward: f64,
    success_rate: f64,
    hyperparameters: Value,
    version: i32,
    rank: i32,
    created_at: Instant,
    updated_at: Instant,
}

impl From<&BaselineRow> for Baseline {
    fn from(row: &BaselineRow) -> Baseline {
        Baseline {
            id: row.id,
            agent_type: row.agent_type.clone(),
            environment: row.environment.clone(),
            mean_reward: row.mean_reward,
            std_reward: row.std_reward,
            success_rate: row.success_rate,
            hyperparameters: row.hyperparameters.clone(),
            version: row.version,
            rank: row.rank,
            created_at: instant(&row.created_at),
            updated_at: instant(&row.updated_at),
        }
    }
}

impl From<Baseline> for BaselineRow {
    fn from(row: Baseline) -> BaselineRow {
        BaselineRow {
            id: row.id,
            agent_type: row.agent_type,
            environment: row.environment,
            mean_reward: row.mean_reward,
            std_reward: row.std_reward,
            success_rate: row.success_rate,
            hyperparameters: row.hyperparameters,
            version: row.version,
            rank: row.rank,
            created_at: datetime(row.created_at),
            updated_at: datetime(row.updated_at),
        }
    }
}

/// A cached config row.
#[derive(Serialize, Deserialize)]
struct Config {
    agent_type: String,
    version: i32,
    hyperparameters: Value,
    checkpoint_id: Option<String>,
    environment: Option<String>,
    action: String,
    proposal_id: Option<Uuid>,
    restored_version: Option<i32>,
    actor: String,
    reason: Option<String>,
    created_at: Instant,
}

impl From<&ConfigRow> for Config {
    fn from(row: &ConfigRow) -> Config {
        Config {
            agent_type: row.agent_type.clone(),
            version: row.version,
            hyperparameters: row.hyperparameters.clone(),
            checkpoint_id: row.checkpoint_id.clone(),
            environment: row.environment.clone(),
            action: row.action.as_str().to_string(),
            proposal_id: row.proposal_id,
            restored_version: row.restored_version,
            actor: row.actor.clone(),
            reason: row.reason.clone(),
            created_at: instant(&row.created_at),
        }
    }
}

impl TryFrom<Config> for ConfigRow {
    type Error = ();

    fn try_from(row: Config) -> Result<ConfigRow, ()> {
        let action = [
            ConfigAction::Set,
            ConfigAction::Apply,
            ConfigAction::Rollback,
        ]
        .into_iter()
        .find(|action| action.as_str() == row.action)
        .ok_or(())?;
        Ok(ConfigRow {
            agent_type: row.agent_type,
            version: row.version,
            hyperparameters: row.hyperparameters,
            checkpoint_id: row.checkpoint_id,
            environment: row.environment,
            action,
            proposal_id: row.proposal_id,
            restored_version: row.restored_version,
            actor: row.actor,
            reason: row.reason,
            created_at: datetime(row.created_at),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_survive_the_cache_format_exactly() {
        let now = Utc::now();
        let baseline = BaselineRow {
            id: Uuid::new_v4(),
            agent_type: "PPO".into(),
            environment: "CartPole-v1".into(),
            mean_reward: 0.1 + 0.2,
            std_reward: 1e-300,
            success_rate: 1.0 / 3.0,
            hyperparameters: serde_json::json!({"learning_rate": 3e-4}),
            version: 7,
            rank: 2,
            created_at: now,
            updated_at: now,
        };
        let json = serde_json::to_string(&Baseline::from(&baseline)).unwrap();
        let back = BaselineRow::from(serde_json::from_str::<Baseline>(&json).unwrap());
        assert_eq!(back, baseline);

        let config = ConfigRow {
            agent_type: "DQN".into(),
            version: 3,
            hyperparameters: serde_json::json!({"batch_size": 64}),
            checkpoint_id: None,
            environment: Some("CartPole-v1".into()),
            action: ConfigAction::Rollback,
            proposal_id: Some(Uuid::new_v4()),
            restored_version: Some(1),
            actor: "admin".into(),
            reason: Some("bad".into()),
            created_at: now,
        };
        let json = serde_json::to_string(&Config::from(&config)).unwrap();
        let back = ConfigRow::try_from(serde_json::from_str::<Config>(&json).unwrap()).unwrap();
        assert_eq!(back, config);
    }

    #[test]
    fn notices_round_trip_and_malformed_ones_are_refused() {
        for notice in [Notice::Baselines, Notice::Config("PPO".into())] {
            let payload = notice_payload("abc", &notice);
            assert_eq!(
                parse_notice(payload.as_bytes()),
                Some(("abc".into(), notice))
            );
        }
        for bad in [
            "",
            "{}",
            r#"{"v": 2, "origin": "a", "kind": "baselines"}"#,
            r#"{"v": 1, "origin": "a", "kind": "config"}"#,
            r#"{"v": 1, "origin": "a", "kind": "studies"}"#,
        ] {
            assert_eq!(parse_notice(bad.as_bytes()), None, "{bad}");
        }
    }
}
