//! The evaluation engine: for each environment of a [`Plan`], in parallel up to
//! `max_concurrent`, obtain the policy (trained from the hyperparameters, through an LRU cache,
//! or the caller's checkpoint), run the episodes, compute the metrics and compare them with the
//! baseline.
//!
//! Determinism: every random stream is derived from the request's seed and nothing else —
//! training uses `seed` (as `tars train --seed`), the episodes `seed + 1_000_000` (as
//! `tars train`'s evaluation), the bootstrap `seed` — so the same plan gives bit-identical
//! metrics whatever `max_concurrent` is and whether the policy came from the cache.
//! The engine reads the monotonic clock only to report wall time; no result depends on it.
//!
//! The cache holds trained policies keyed by (algorithm, environment, hyperparameter overrides,
//! seed, budget), so different hyperparameters never share an entry; two requests that need
//! the same policy at the same time train it once. Environments are not cached: making one
//! costs microseconds. Checkpoints are loaded by the caller (they are I/O).

use crate::metrics::{BootstrapConfig, Metrics, compute_metrics};
use crate::normalize::normalization;
use crate::regression::{Baseline, Regression, Thresholds, detect};
use crate::request::{EvalError, Plan};
use lru::LruCache;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;
use tars_agents::Budget;
use tars_agents::checkpoint::Metadata;
use tars_agents::{Algo, Control, CurvePoint, Observer, Policy, Progress};

/// Engine settings (`tars.toml`; defaults are the seeds').
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EngineConfig {
    pub default_episodes: u32,
    pub quick_mode_episodes: u32,
    pub max_concurrent: usize,
    pub env_cache_size: usize,
    pub thresholds: Thresholds,
    /// Bootstrap resamples for the confidence intervals.
    pub bootstrap_reps: usize,
    /// The most one evaluation may use; a request over it is refused before it runs.
    pub budget: Budget,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            default_episodes: 100,
            quick_mode_episodes: 50,
            max_concurrent: 4,
            env_cache_size: 50,
            thresholds: Thresholds::default(),
            bootstrap_reps: 10_000,
            budget: Budget::DEFAULT,
        }
    }
}

/// A checkpoint the caller loaded for `agent_state`.
#[derive(Debug, Clone)]
pub struct LoadedCheckpoint {
    pub id: String,
    pub policy: Policy,
    pub metadata: Metadata,
}

/// What the caller knows from storage: the rank-1 baseline per environment id, and the
/// checkpoint when the plan names one.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    pub baselines: HashMap<String, Baseline>,
    pub checkpoint: Option<LoadedCheckpoint>,
}

/// Watches an evaluation. Called from worker threads.
pub trait Reporter: Sync {
    /// Training progress on `env`; `Control::Stop` cancels the evaluation.
    fn training(&self, _env: &str, _progress: &Progress) -> Control {
        Control::Continue
    }
    /// A phase of `env` started or ended.
    fn event(&self, _env: &str, _event: Event) {}
}

/// Phases of one environment's evaluation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Event {
    Training { total_timesteps: u64 },
    CacheHit,
    Evaluating { episodes: u32 },
    Done { mean_reward: f64 },
}

/// A reporter that ignores everything.
pub struct Quiet;
impl Reporter for Quiet {}

/// How the policy of one environment was obtained.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Training {
    /// `"trained"`, `"cache"` or `"checkpoint"`.
    pub source: String,
    pub timesteps: u64,
    /// Seconds the training took when it ran (also for a cache hit: the original run's).
    pub train_seconds: f64,
    /// The resolved hyperparameters (SB3 names) the policy was trained with.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub hyperparameters: Value,
    pub checkpoint_id: Option<String>,
}

/// One environment's result; field names are the API's.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnvResult {
    /// Set by whoever stores the result (`tars baseline promote` takes it).
    #[serde(default)]
    pub result_id: String,
    pub environment: String,
    pub metrics: MetricsOut,
    pub baseline: Option<BaselineOut>,
    pub regression: Option<Regression>,
    pub training: Training,
    /// Why there is no comparison, when one was asked for.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub note: Option<String>,
    pub duration_seconds: f64,
    /// Always kept (and stored), whatever `include_episodes` says.
    #[serde(skip)]
    pub episode_returns: Vec<f64>,
    #[serde(skip)]
    pub episode_lengths: Vec<u32>,
}

/// The metrics object: [`Metrics`] plus the raw episodes when asked for.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricsOut {
    #[serde(flatten)]
    pub metrics: Metrics,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub episode_returns: Option<Vec<f64>>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub episode_lengths: Option<Vec<u32>>,
}

/// The baseline a result was compared with.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BaselineOut {
    #[serde(flatten)]
    pub baseline: Baseline,
    /// Per-episode returns behind the baseline (0: summary statistics only).
    pub n_returns: usize,
}

/// The response of an evaluation; `evaluation_id` is set by whoever stores it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalResponse {
    pub evaluation_id: String,
    pub agent_type: String,
    pub seed: u64,
    pub num_episodes: u32,
    pub quick_mode: bool,
    pub results: Vec<EnvResult>,
    /// The worst regression over the environments (`null` when nothing was compared).
    pub regression: Option<Regression>,
    pub duration_seconds: f64,
}

type TrainKey = (Algo, String, String, u64, u64);

/// A policy trained for some key, shared by the cache.
struct Trained {
    policy: Policy,
    hyperparameters: Value,
    timesteps: u64,
    train_seconds: f64,
    curve: Vec<CurvePoint>,
}

const CANCELLED: &str = "cancelled";

type Slot = Arc<OnceLock<Result<Arc<Trained>, String>>>;

/// Runs evaluations; one engine serves many requests (it is `Sync`).
pub struct Engine {
    config: EngineConfig,
    cache: Mutex<LruCache<TrainKey, Slot>>,
    trainings: AtomicUsize,
}

impl Engine {
    pub fn new(config: EngineConfig) -> Engine {
        let size = NonZeroUsize::new(config.env_cache_size).unwrap_or(NonZeroUsize::MIN);
        Engine {
            config,
            cache: Mutex::new(LruCache::new(size)),
            trainings: AtomicUsize::new(0),
        }
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// Policies the cache holds now.
    pub fn cached_policies(&self) -> usize {
        self.cache.lock().expect("cache lock").len()
    }

    /// Training runs started so far (cache misses).
    pub fn trainings(&self) -> usize {
        self.trainings.load(Ordering::Relaxed)
    }

    /// Policies in the cache.
    pub fn cached(&self) -> usize {
        self.cache.lock().expect("cache lock").len()
    }

    /// Evaluates every environment of `plan`.
    pub fn evaluate(
        &self,
        plan: &Plan,
        inputs: &Inputs,
        reporter: &dyn Reporter,
    ) -> Result<EvalResponse, EvalError> {
        let start = Instant::now();
        if let Some(id) = &plan.checkpoint_id {
            check_checkpoint(plan, id, inputs.checkpoint.as_ref())?;
        }
        let n = plan.environments.len();
        let next = AtomicUsize::new(0);
        let slots: Vec<Mutex<Option<Result<EnvResult, EvalError>>>> =
            (0..n).map(|_| Mutex::new(None)).collect();
        let workers = self.config.max_concurrent.clamp(1, n);
        let parent = tracing::Span::current();
        std::thread::scope(|scope| {
            for _ in 0..workers {
                scope.spawn(|| {
                    let _parent = parent.enter();
                    loop {
                        let idx = next.fetch_add(1, Ordering::Relaxed);
                        if idx >= n {
                            break;
                        }
                        let result = self.evaluate_env(plan, idx, inputs, reporter);
                        *slots[idx].lock().expect("slot lock") = Some(result);
                    }
                });
            }
        });
        let results = slots
            .into_iter()
            .map(|slot| {
                slot.into_inner()
                    .expect("slot lock")
                    .expect("every slot ran")
            })
            .collect::<Result<Vec<_>, _>>()?;
        let regression = results
            .iter()
            .filter_map(|r| r.regression.as_ref())
            .max_by(|a, b| {
                (a.detected, a.severity)
                    .cmp(&(b.detected, b.severity))
                    .then(a.confidence.total_cmp(&b.confidence))
            })
            .cloned();
        Ok(EvalResponse {
            evaluation_id: String::new(),
            agent_type: plan.algo.name().to_string(),
            seed: plan.seed,
            num_episodes: plan.num_episodes,
            quick_mode: plan.quick_mode,
            results,
            regression,
            duration_seconds: start.elapsed().as_secs_f64(),
        })
    }

    fn evaluate_env(
        &self,
        plan: &Plan,
        idx: usize,
        inputs: &Inputs,
        reporter: &dyn Reporter,
    ) -> Result<EnvResult, EvalError> {
        let start = Instant::now();
        let env = plan.environments[idx].as_str();
        let _env_span = tracing::info_span!(
            "evaluate_agent_in_env",
            agent_type = plan.algo.name(),
            environment = env,
            episodes = plan.num_episodes
        )
        .entered();
        let load_span = tracing::info_span!("load_agent").entered();
        let (mut policy, curve, training) = match (&inputs.checkpoint, plan.budgets[idx]) {
            (Some(checkpoint), _) => (
                checkpoint.policy.clone(),
                checkpoint.metadata.training_curve.clone(),
                Training {
                    source: "checkpoint".to_string(),
                    timesteps: checkpoint.metadata.timesteps,
                    train_seconds: 0.0,
                    hyperparameters: checkpoint.metadata.hyperparams.clone(),
                    checkpoint_id: Some(checkpoint.id.clone()),
                },
            ),
            (None, budget) => {
                let budget = budget.expect("a plan without a checkpoint has budgets");
                let (trained, source) = self.trained(plan, env, budget, reporter)?;
                let training = Training {
                    source: source.to_string(),
                    timesteps: trained.timesteps,
                    train_seconds: trained.train_seconds,
                    hyperparameters: trained.hyperparameters.clone(),
                    checkpoint_id: None,
                };
                (trained.policy.clone(), trained.curve.clone(), training)
            }
        };

        drop(load_span);
        reporter.event(
            env,
            Event::Evaluating {
                episodes: plan.num_episodes,
            },
        );
        let episodes = tracing::info_span!("run_episodes").in_scope(|| {
            tars_agents::evaluate(
                &mut policy,
                plan.num_episodes as usize,
                plan.seed.wrapping_add(1_000_000),
                true,
            )
        })?;
        let scale = normalization(env).expect("validated environments have a scale");
        let losses = training_losses(plan.algo, &curve);
        let metrics_span = tracing::info_span!("compute_metrics").entered();
        let metrics = compute_metrics(
            &episodes.episode_returns,
            &episodes.episode_lengths,
            scale.success_threshold,
            &losses,
            self.config.thresholds.loss_trend_window,
            BootstrapConfig {
                reps: self.config.bootstrap_reps,
                seed: plan.seed,
            },
        );
        drop(metrics_span);
        let baseline = plan
            .compare_to_baseline
            .then(|| inputs.baselines.get(env))
            .flatten();
        let regression = baseline.map(|baseline| {
            let _span = tracing::info_span!("detect_regression").entered();
            detect(
                env,
                scale,
                &metrics,
                &episodes.episode_returns,
                baseline,
                &self.config.thresholds,
            )
        });
        let note = (plan.compare_to_baseline && baseline.is_none()).then(|| {
            format!(
                "no rank-1 baseline for {} on {env}: nothing to compare with \
                 (create one with `tars baseline bootstrap --agent {} --env {env}`)",
                plan.algo,
                plan.algo.name().to_lowercase()
            )
        });
        reporter.event(
            env,
            Event::Done {
                mean_reward: metrics.mean_reward,
            },
        );
        let include = plan.include_episodes;
        Ok(EnvResult {
            result_id: String::new(),
            environment: env.to_string(),
            metrics: MetricsOut {
                metrics,
                episode_returns: include.then(|| episodes.episode_returns.clone()),
                episode_lengths: include.then(|| episodes.episode_lengths.clone()),
            },
            baseline: baseline.map(|b| BaselineOut {
                baseline: b.clone(),
                n_returns: b.returns.as_ref().map_or(0, Vec::len),
            }),
            regression,
            training,
            note,
            duration_seconds: start.elapsed().as_secs_f64(),
            episode_returns: episodes.episode_returns,
            episode_lengths: episodes.episode_lengths,
        })
    }

    /// The checkpoint (safetensors weights, metadata JSON) of the policy `plan` trains on
    /// environment `idx`: the one its evaluation used, from the cache, or trained again when it
    /// was evicted (same seed and budget: the same weights). `None` when the plan evaluates a
    /// stored checkpoint instead of training.
    pub fn checkpoint(
        &self,
        plan: &Plan,
        idx: usize,
        reporter: &dyn Reporter,
    ) -> Result<Option<(Vec<u8>, String)>, EvalError> {
        let Some(budget) = plan.budgets[idx] else {
            return Ok(None);
        };
        let (trained, _) = self.trained(plan, &plan.environments[idx], budget, reporter)?;
        Ok(Some(tars_agents::checkpoint::encode(
            &trained.policy,
            &trained.hyperparameters,
            plan.seed,
            trained.timesteps,
            &trained.curve,
        )))
    }

    /// The trained policy for (plan, env, budget): from the cache, or trained now (once, even
    /// when several threads ask at the same time).
    fn trained(
        &self,
        plan: &Plan,
        env: &str,
        budget: u64,
        reporter: &dyn Reporter,
    ) -> Result<(Arc<Trained>, &'static str), EvalError> {
        let overrides = Value::Object(plan.hyperparameters.clone()).to_string();
        let key = (plan.algo, env.to_string(), overrides, plan.seed, budget);
        let slot: Slot = self
            .cache
            .lock()
            .expect("cache lock")
            .get_or_insert(key.clone(), Slot::default)
            .clone();
        let mut source = "cache";
        let outcome = slot.get_or_init(|| {
            source = "trained";
            self.trainings.fetch_add(1, Ordering::Relaxed);
            reporter.event(
                env,
                Event::Training {
                    total_timesteps: budget,
                },
            );
            let mut observer = Forward {
                env,
                reporter,
                stopped: false,
            };
            let start = Instant::now();
            let output = tars_agents::train::train(
                plan.algo,
                env,
                &plan.hyperparameters,
                plan.seed,
                Some(budget),
                &mut observer,
            );
            if observer.stopped {
                return Err(CANCELLED.to_string());
            }
            output
                .map(|output| {
                    Arc::new(Trained {
                        policy: output.policy,
                        hyperparameters: output.hyperparams,
                        timesteps: output.timesteps,
                        train_seconds: start.elapsed().as_secs_f64(),
                        curve: output.curve,
                    })
                })
                .map_err(|err| err.to_string())
        });
        match outcome {
            Ok(trained) => {
                if source == "cache" {
                    reporter.event(env, Event::CacheHit);
                }
                Ok((trained.clone(), source))
            }
            Err(message) => {
                // Neither a stopped run nor a failure is the policy this key stands for.
                self.cache.lock().expect("cache lock").pop(&key);
                if message == CANCELLED {
                    Err(EvalError::Cancelled)
                } else {
                    Err(EvalError::Training(message.clone()))
                }
            }
        }
    }
}

/// Forwards training progress to the reporter and remembers a stop.
struct Forward<'a> {
    env: &'a str,
    reporter: &'a dyn Reporter,
    stopped: bool,
}

impl Observer for Forward<'_> {
    fn on_progress(&mut self, progress: &Progress) -> Control {
        let control = self.reporter.training(self.env, progress);
        self.stopped |= control == Control::Stop;
        control
    }
}

/// The loss whose trend the detector watches: DQN's TD loss, the critic loss of A2C/PPO
/// (value loss) and DDPG/TD3 (Q loss).
pub fn training_losses(algo: Algo, curve: &[CurvePoint]) -> Vec<f64> {
    let key = match algo {
        Algo::Dqn => "losses/td_loss",
        Algo::A2c | Algo::Ppo => "losses/value_loss",
        Algo::Ddpg | Algo::Td3 => "losses/qf_loss",
    };
    curve
        .iter()
        .filter(|point| point.key == key)
        .map(|point| point.value)
        .collect()
}

fn check_checkpoint(
    plan: &Plan,
    id: &str,
    checkpoint: Option<&LoadedCheckpoint>,
) -> Result<(), EvalError> {
    let checkpoint = checkpoint.ok_or_else(|| {
        EvalError::Checkpoint(format!("checkpoint '{id}' was not loaded by the caller"))
    })?;
    if !checkpoint
        .metadata
        .algo
        .eq_ignore_ascii_case(plan.algo.name())
    {
        return Err(EvalError::Checkpoint(format!(
            "checkpoint '{id}' holds a {} policy, but agent_type is {}",
            checkpoint.metadata.algo, plan.algo
        )));
    }
    if let Some(other) = plan
        .environments
        .iter()
        .find(|env| **env != checkpoint.metadata.env_id)
    {
        return Err(EvalError::Checkpoint(format!(
            "checkpoint '{id}' was trained on {}; it cannot be evaluated on {other} \
             (list only {} with a checkpoint)",
            checkpoint.metadata.env_id, checkpoint.metadata.env_id
        )));
    }
    Ok(())
}
