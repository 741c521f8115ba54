//! What `tars eval`, `tars baseline` (and later the HTTP service) do around the engine:
//! read baselines and checkpoints from storage, run the engine off the async runtime, store
//! every run, and turn results into baselines.
//!
//! A completed evaluation is never lost: when the store cannot save it, the response is
//! written to `<data_dir>/unsaved/<evaluation_id>.json` and the caller is told where.
//!
//! Every store call of the request paths goes through the process's one `postgres` guard
//! ([`Service::postgres`]: circuit breaker, retry with backoff and jitter), which the job path
//! shares: an unreachable database opens it, and requests then fail fast with 503.
//!
//! Baseline listings and active configs are read through caches: fleet mode's Redis
//! (`redis_url`, shared by the replicas) while it answers, else the in-memory listing cache.

use crate::baseline_cache::{BaselineCache, Key};
use crate::config::Config;
use crate::events::{Event, Publisher};
use crate::redis::cache::Lookup;
use crate::redis::{Notice, Redis, RedisSettings};
use crate::resilience::{Guard, StoreCallError};
use anyhow::Context;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tars_agents::checkpoint::{self, METADATA_FILE, WEIGHTS_FILE};
use tars_eval::{Baseline, Engine, EvalRequest, EvalResponse, Inputs, LoadedCheckpoint, Reporter};
use tars_store::{BaselineRow, ConfigRow, NewBaseline, NewResult, NewRun, Promotion, Store};
use uuid::Uuid;

/// The engine, the store and the configuration of one process.
pub struct Service {
    pub config: Config,
    pub store: Store,
    pub engine: Arc<Engine>,
    /// The database's breaker and retry policy, shared by every store call of the process
    /// (labelled by backend: `postgres` in fleet mode).
    postgres: Guard,
    /// Baseline listings of [`Service::baselines`]; every baseline write here clears it, and
    /// so do other replicas' notices (Redis, NATS events).
    baseline_cache: Arc<BaselineCache>,
    /// Fleet mode's shared cache, rate limits and idempotency records (`redis_url`).
    pub redis: Option<Arc<Redis>>,
    /// Where this process's fleet events go (fleet mode); unset: nobody else to tell.
    publisher: std::sync::OnceLock<Arc<dyn Publisher>>,
}

/// An evaluation's response and where it was kept.
pub struct Outcome {
    pub response: EvalResponse,
    /// `None` when stored; else the file the response was saved to, and the store's error.
    pub unsaved: Option<(PathBuf, String)>,
}

impl Service {
    /// Connects to the configured database (applying migrations) and builds the engine.
    pub async fn open(config: Config) -> anyhow::Result<Service> {
        let store = Store::connect(config.database_url())
            .await
            .with_context(|| {
                format!(
                    "opening the database {}",
                    crate::config::mask_url(config.database_url())
                )
            })?;
        let engine = Arc::new(Engine::new(config.engine()));
        let postgres = Guard::new(store.backend());
        let cache_ttl = Duration::from_millis(config.get_int("baseline_cache_ms") as u64);
        let baseline_cache = Arc::new(BaselineCache::new(cache_ttl));
        let redis = match RedisSettings::from_config(&config) {
            Some(settings) => Some(Redis::connect(settings, baseline_cache.clone()).await?),
            None => None,
        };
        Ok(Service {
            config,
            store,
            engine,
            postgres,
            baseline_cache,
            redis,
            publisher: std::sync::OnceLock::new(),
        })
    }

    /// The database's guard: store calls go through it (`postgres().store(|| ...)` for reads
    /// and idempotent writes, `store_once` for compare-and-set writes).
    pub fn postgres(&self) -> &Guard {
        &self.postgres
    }

    /// Writes the policy `request` trained on its first environment (from the engine's cache:
    /// the one just evaluated) to `<data_dir>/checkpoints/<name>`, whole.
    pub async fn save_trained_checkpoint(
        &self,
        request: &EvalRequest,
        name: &str,
    ) -> anyhow::Result<()> {
        let plan = request.validate(self.engine.config(), 0)?;
        let engine = self.engine.clone();
        let dir = self.config.data_dir().join("checkpoints").join(name);
        tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
            let (weights, metadata) = engine
                .checkpoint(&plan, 0, &tars_eval::engine::Quiet)?
                .ok_or_else(|| {
                    anyhow::anyhow!("an evaluation of a stored checkpoint trains none")
                })?;
            crate::training::write_checkpoint(&dir, &weights, &metadata)
        })
        .await?
    }

    /// Validates, evaluates and stores one request.
    pub async fn evaluate(
        &self,
        request: &EvalRequest,
        reporter: Arc<dyn Reporter + Send + Sync>,
    ) -> anyhow::Result<Outcome> {
        self.evaluate_job(request, reporter, None).await
    }

    /// [`Service::evaluate`] for job `job_id`: a job stores one run, however often it runs
    /// (a redelivered job gets the run an earlier delivery stored, its id in the response).
    pub async fn evaluate_job(
        &self,
        request: &EvalRequest,
        reporter: Arc<dyn Reporter + Send + Sync>,
        job_id: Option<Uuid>,
    ) -> anyhow::Result<Outcome> {
        let plan = request.validate(self.engine.config(), 0)?;
        let mut inputs = Inputs::default();
        if plan.compare_to_baseline {
            for env in &plan.environments {
                if let Some(baseline) = self.rank1(plan.algo.name(), env).await? {
                    inputs.baselines.insert(env.clone(), baseline);
                }
            }
        }
        let engine = self.engine.clone();
        let run_plan = plan.clone();
        let data_dir = self.config.data_dir();
        // The engine's spans (evaluate_agent_in_env, …) are children of the caller's.
        let span = tracing::Span::current();
        // Reading the checkpoint is file I/O and decoding: off the async threads too.
        let mut response = tokio::task::spawn_blocking(move || -> anyhow::Result<EvalResponse> {
            if let Some(id) = &run_plan.checkpoint_id {
                inputs.checkpoint = Some(load_checkpoint(&data_dir, id)?);
            }
            let response =
                span.in_scope(|| engine.evaluate(&run_plan, &inputs, reporter.as_ref()))?;
            Ok(response)
        })
        .await
        .context("the evaluation thread panicked")??;

        response.evaluation_id = Uuid::new_v4().to_string();
        for result in &mut response.results {
            result.result_id = Uuid::new_v4().to_string();
        }
        let run = new_run(request, &response, job_id)?;
        // A retried save whose first attempt landed finds its run by id (job runs) or fails
        // with `IdTaken`; either way the response is kept, in the store or in the file.
        let saved = self.postgres.store(|| self.store.save_run(&run)).await;
        let unsaved = match saved {
            Ok(run_id) => {
                response.evaluation_id = run_id.to_string();
                None
            }
            Err(err) => {
                let path = self.save_unsaved(&response)?;
                Some((path, err.to_string()))
            }
        };
        Ok(Outcome { response, unsaved })
    }

    fn save_unsaved(&self, response: &EvalResponse) -> anyhow::Result<PathBuf> {
        let dir = self.config.data_dir().join("unsaved");
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join(format!("{}.json", response.evaluation_id));
        let full = json!({"response": response, "episodes": episodes(response)});
        std::fs::write(&path, serde_json::to_vec_pretty(&full)?)
            .with_context(|| format!("writing {}", path.display()))?;
        Ok(path)
    }

    /// The rank-1 baseline of (agent, env) as the detector sees it, with its episode returns
    /// when it was promoted from a stored evaluation.
    pub async fn rank1(&self, agent: &str, env: &str) -> anyhow::Result<Option<Baseline>> {
        let store = &self.store;
        let Some(row) = self
            .postgres
            .store(|| store.baseline(agent, env, 1))
            .await?
        else {
            return Ok(None);
        };
        let returns = self
            .postgres
            .store(|| store.baseline_returns(row.id))
            .await?;
        Ok(Some(detector_baseline(&row, returns)))
    }

    /// The baselines of `agent` (an `Algo::name`), on `environment` (an `EnvSpec::id`) or all,
    /// best rank first: from Redis while it answers (every replica's writes invalidate it
    /// before they answer), else from memory when read less than `baseline_cache_ms` ago and
    /// not written since by this process (nor, as far as Redis could tell it, by another).
    pub async fn baselines(
        &self,
        agent: &'static str,
        environment: Option<&'static str>,
    ) -> Result<Arc<[BaselineRow]>, StoreCallError> {
        let read = || async {
            let rows = self
                .postgres
                .store(|| self.store.baselines(Some(agent), environment))
                .await?;
            Ok::<Arc<[BaselineRow]>, StoreCallError>(rows.into())
        };
        if let Some(redis) = &self.redis {
            match redis.cached_baselines(agent, environment).await {
                Some(Lookup::Hit(rows)) => return Ok(rows),
                Some(Lookup::Miss(stamp)) => {
                    let rows = read().await?;
                    redis.fill_baselines(agent, environment, stamp, &rows).await;
                    return Ok(rows);
                }
                None => {}
            }
        }
        let key: Key = (agent, environment);
        let miss = match self.baseline_cache.get(key) {
            Ok(rows) => return Ok(rows),
            Err(miss) => miss,
        };
        let rows = read().await?;
        self.baseline_cache.fill(key, miss, rows.clone());
        Ok(rows)
    }

    /// Forgets this process's cached baseline listings only: what a replica does on another
    /// one's baseline event (the writer already told Redis).
    pub fn forget_cached_baselines(&self) {
        self.baseline_cache.invalidate();
    }

    /// Forgets the cached baseline listings, here and (through Redis) on every replica.
    /// Every baseline write of this process calls it when the write is done.
    pub async fn invalidate_baselines(&self) {
        self.baseline_cache.invalidate();
        if let Some(redis) = &self.redis {
            redis.invalidate(Notice::Baselines).await;
        }
    }

    /// Sets where this process's fleet events go (once; later calls are ignored).
    pub fn set_publisher(&self, publisher: Arc<dyn Publisher>) {
        let _ = self.publisher.set(publisher);
    }

    /// Tells the fleet (fleet mode; nothing in embedded mode).
    pub fn publish(&self, event: Event) {
        if let Some(publisher) = self.publisher.get() {
            publisher.publish(event);
        }
    }

    /// Stores a baseline as given (409-style error when its rank is taken).
    pub async fn insert_baseline(
        &self,
        baseline: &NewBaseline,
    ) -> Result<BaselineRow, StoreCallError> {
        let inserted = self
            .postgres
            .store_once(|| self.store.insert_baseline(baseline))
            .await;
        self.invalidate_baselines().await;
        self.baseline_written(&inserted);
        inserted
    }

    /// Promotes a baseline with a compare-and-set on the pair's version.
    pub async fn promote_baseline(
        &self,
        promotion: &Promotion,
    ) -> Result<BaselineRow, StoreCallError> {
        let promoted = self
            .postgres
            .store_once(|| self.store.promote(promotion))
            .await;
        self.invalidate_baselines().await;
        self.baseline_written(&promoted);
        promoted
    }

    /// The other replicas drop their cached listings of the pair ([`Event::Baseline`]).
    fn baseline_written(&self, written: &Result<BaselineRow, StoreCallError>) {
        if let Ok(row) = written {
            crate::metrics_catalog::zero_pair(&row.agent_type, &row.environment);
            self.publish(Event::Baseline {
                agent_type: row.agent_type.clone(),
                environment: row.environment.clone(),
                version: row.version,
            });
        }
    }

    /// The active (highest) config version of `agent` (an `Algo::name`): from Redis while it
    /// answers, else from the database.
    pub async fn active_config(
        &self,
        agent: &'static str,
    ) -> Result<Option<ConfigRow>, StoreCallError> {
        let read = || self.postgres.store(|| self.store.config(agent, None));
        let Some(redis) = &self.redis else {
            return read().await;
        };
        match redis.cached_config(agent).await {
            Some(Lookup::Hit(row)) => Ok(Some(row)),
            Some(Lookup::Miss(stamp)) => {
                let row = read().await?;
                if let Some(row) = &row {
                    redis.fill_config(agent, stamp, row).await;
                }
                Ok(row)
            }
            None => read().await,
        }
    }

    /// Tells every replica's caches that `agent`'s active config changed (after the write).
    pub async fn config_written(&self, agent: &str) {
        if let Some(redis) = &self.redis {
            redis.invalidate(Notice::Config(agent.to_string())).await;
        }
    }

    /// Promotes a stored evaluation result of `result_id` to `rank` (default: the rank its mean
    /// reward earns among the current baselines), expecting the pair at `expected_version`
    /// (default: the version read now).
    pub async fn promote(
        &self,
        result_id: Uuid,
        rank: Option<i32>,
        expected_version: Option<Option<i32>>,
        actor: Option<String>,
    ) -> anyhow::Result<BaselineRow> {
        let store = &self.store;
        let result = self
            .postgres
            .store(|| store.result(result_id))
            .await?
            .with_context(|| {
                format!("evaluation result {result_id} not found; `tars eval` prints result ids")
            })?;
        let run = self
            .postgres
            .store(|| store.run(result.run_id))
            .await?
            .with_context(|| format!("evaluation run {} not found", result.run_id))?;
        let number = |key: &str| {
            result.metrics[key]
                .as_f64()
                .with_context(|| format!("stored metrics of {result_id} lack {key}"))
        };
        let mean_reward = number("mean_reward")?;
        let rows = self
            .postgres
            .store(|| store.baselines(Some(&run.agent_type), Some(&result.environment)))
            .await?;
        let earned = 1 + rows.iter().filter(|r| r.mean_reward >= mean_reward).count() as i32;
        let expected_version = match expected_version {
            Some(version) => version,
            None => {
                self.postgres
                    .store(|| store.current_version(&run.agent_type, &result.environment))
                    .await?
            }
        };
        let promotion = Promotion {
            agent_type: run.agent_type.clone(),
            environment: result.environment.clone(),
            mean_reward,
            std_reward: number("std_reward")?,
            success_rate: number("success_rate")?,
            hyperparameters: result.hyperparameters.clone(),
            rank: rank.unwrap_or(earned),
            expected_version,
            eval_result_id: Some(result_id),
            actor,
        };
        Ok(self.promote_baseline(&promotion).await?)
    }
}

/// The detector's view of a stored baseline row.
pub fn detector_baseline(row: &BaselineRow, returns: Option<Vec<f64>>) -> Baseline {
    Baseline {
        mean_reward: row.mean_reward,
        std_reward: row.std_reward,
        success_rate: row.success_rate,
        returns,
        rank: row.rank,
        version: i64::from(row.version),
    }
}

/// Returns and lengths per environment, which the response may omit but storage keeps.
fn episodes(response: &EvalResponse) -> Value {
    response
        .results
        .iter()
        .map(|r| {
            (
                r.environment.clone(),
                json!({"returns": r.episode_returns, "lengths": r.episode_lengths}),
            )
        })
        .collect::<serde_json::Map<_, _>>()
        .into()
}

fn new_run(
    request: &EvalRequest,
    response: &EvalResponse,
    job_id: Option<Uuid>,
) -> anyhow::Result<NewRun> {
    let results = response
        .results
        .iter()
        .map(|r| {
            Ok(NewResult {
                id: Some(r.result_id.parse()?),
                environment: r.environment.clone(),
                metrics: serde_json::to_value(&r.metrics.metrics)?,
                episode_returns: r.episode_returns.clone(),
                episode_lengths: r.episode_lengths.iter().map(|&l| u64::from(l)).collect(),
                hyperparameters: r.training.hyperparameters.clone(),
                regression: r
                    .regression
                    .as_ref()
                    .map(serde_json::to_value)
                    .transpose()?,
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(NewRun {
        job_id,
        id: Some(response.evaluation_id.parse()?),
        agent_type: response.agent_type.clone(),
        request: serde_json::to_value(request)?,
        response: serde_json::to_value(response)?,
        seed: response.seed,
        duration_seconds: response.duration_seconds,
        results,
    })
}

/// Loads checkpoint `id`, a name in the checkpoint store `<data_dir>/checkpoints/`
/// ([`tars_eval::request::check_checkpoint_id`]); errors never show the directory.
pub fn load_checkpoint(data_dir: &Path, id: &str) -> anyhow::Result<LoadedCheckpoint> {
    tars_eval::request::check_checkpoint_id(id)?;
    let dir = data_dir.join("checkpoints").join(id);
    if !dir.join(METADATA_FILE).exists() {
        anyhow::bail!(
            "checkpoint '{id}' not found in the checkpoint store (POST /v1/train writes \
             train-<job id>, `tars train` writes <algo>-<env>-seed<seed>)"
        );
    }
    let (policy, metadata) = read_checkpoint(&dir)?;
    Ok(LoadedCheckpoint {
        id: id.to_string(),
        policy,
        metadata,
    })
}

/// Reads a checkpoint directory (`model.safetensors` + `metadata.json`) into a policy.
pub fn read_checkpoint(dir: &Path) -> anyhow::Result<(tars_agents::Policy, checkpoint::Metadata)> {
    let context = || format!("loading checkpoint {}", dir.display());
    let weights = std::fs::read(dir.join(WEIGHTS_FILE))
        .with_context(|| format!("reading {}", dir.join(WEIGHTS_FILE).display()))
        .with_context(context)?;
    let metadata = std::fs::read_to_string(dir.join(METADATA_FILE))
        .with_context(|| format!("reading {}", dir.join(METADATA_FILE).display()))
        .with_context(context)?;
    checkpoint::decode(&weights, &metadata).with_context(context)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ConfigArgs;
    use tars_eval::engine::Quiet;

    /// A store that fails after the evaluation ran must not cost the result.
    #[test]
    fn a_result_the_store_cannot_save_is_written_to_a_file() {
        let dir = std::env::temp_dir().join(format!("tars-unsaved-{}", std::process::id()));
        let args = ConfigArgs::with(&[("data_dir", &dir.display().to_string())]);
        let config = Config::load(&args).unwrap();
        let request: EvalRequest = serde_json::from_value(json!({
            "agent_type": "PPO", "environments": ["CartPole-v1"], "num_episodes": 3,
            "hyperparameters": {"n_timesteps": 512},
        }))
        .unwrap();
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let outcome = runtime.block_on(async {
            let service = Service::open(config).await.unwrap();
            service.store.close().await;
            service.evaluate(&request, Arc::new(Quiet)).await.unwrap()
        });
        let (path, err) = outcome.unsaved.expect("the closed store refused the run");
        assert!(!err.is_empty());
        let saved: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(
            saved["response"]["evaluation_id"],
            json!(outcome.response.evaluation_id)
        );
        assert_eq!(
            saved["episodes"]["CartPole-v1"]["returns"],
            json!(outcome.response.results[0].episode_returns)
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
