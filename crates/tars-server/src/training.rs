//! Training jobs (`POST /v1/train`): one configuration trained by whichever worker takes the
//! job (in fleet mode, a `tars worker`, not the API replica), evaluated with SB3's
//! `evaluate_policy` semantics and kept as checkpoint `train-<job id>` under
//! `<data_dir>/checkpoints/`, ready for `checkpoint_id` in a proposal or `tars evaluate`.
//!
//! Training is deterministic, so a redelivered job trains the same weights again and rewrites
//! the same checkpoint; a checkpoint directory appears whole or not at all
//! ([`write_checkpoint`] renames a finished temporary directory into place).

use crate::app::AppState;
use crate::auth::{Principal, Role};
use crate::error::ApiError;
use crate::jobs::{Ending, Live, Submitted};
use crate::middleware::ApiJson;
use crate::routes::{self, JobView};
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;
use tars_agents::checkpoint::{self, METADATA_FILE, WEIGHTS_FILE};
use tars_agents::train::EvaluatedRun;
use tars_agents::{
    Algo, Budget, Control, Cost, CurvePoint, EvalConfig, Evaluation, Observer, Progress,
};
use tars_store::{JobKind, JobRow, JobStatus};
use utoipa::ToSchema;

/// Most evaluation episodes after a training (as an evaluation's `num_episodes`).
pub const MAX_EVAL_EPISODES: usize = 10_000;

/// The body of `POST /v1/train`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TrainRequest {
    /// `DQN`, `A2C`, `PPO`, `DDPG` or `TD3`, any case.
    pub agent_type: String,
    /// A registered environment, e.g. `CartPole-v1`.
    pub environment: String,
    /// SB3 names (or the seeds' aliases) over the RL Zoo's tuned defaults.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub hyperparameters: Map<String, Value>,
    #[serde(default)]
    pub seed: u64,
    /// Environment steps; default: the RL Zoo's budget for this algorithm and environment.
    #[serde(default)]
    pub total_timesteps: Option<u64>,
    /// Deterministic evaluation episodes after training: 1 to 10,000.
    #[serde(default = "default_eval_episodes")]
    pub eval_episodes: usize,
    /// Also evaluate every `eval_freq` steps during training (SB3's `EvalCallback`) and keep
    /// the best policy as checkpoint `train-<job id>/best`, as RL Zoo keeps `best_model.zip`.
    #[serde(default)]
    pub eval_freq: Option<u64>,
    /// Episodes per evaluation during training (with `eval_freq`): 1 to 10,000.
    #[serde(default = "default_eval_freq_episodes")]
    pub eval_freq_episodes: usize,
}

fn default_eval_episodes() -> usize {
    10
}

fn default_eval_freq_episodes() -> usize {
    5
}

impl TrainRequest {
    /// Checks everything the training would check, without training: the algorithm, the
    /// environment, every hyperparameter, the step budget, and that its estimated memory and
    /// environment steps (training, evaluations during it and after it) fit `budget`.
    pub fn validate(&self, budget: Budget) -> Result<(Algo, tars_agents::train::Plan), ApiError> {
        let algo: Algo = self
            .agent_type
            .parse()
            .map_err(|e: tars_agents::Error| ApiError::unprocessable(e.to_string()))?;
        if !(1..=MAX_EVAL_EPISODES).contains(&self.eval_episodes) {
            return Err(ApiError::unprocessable(format!(
                "eval_episodes must be between 1 and {MAX_EVAL_EPISODES}, got {}",
                self.eval_episodes
            )));
        }
        if self.eval_freq == Some(0) {
            return Err(ApiError::unprocessable(
                "eval_freq must be at least 1 step (omit it to skip evaluations during training)",
            ));
        }
        if !(1..=MAX_EVAL_EPISODES).contains(&self.eval_freq_episodes) {
            return Err(ApiError::unprocessable(format!(
                "eval_freq_episodes must be between 1 and {MAX_EVAL_EPISODES}, got {}",
                self.eval_freq_episodes
            )));
        }
        if self.total_timesteps == Some(0) {
            return Err(ApiError::unprocessable(
                "total_timesteps must be at least 1 (omit it for the RL Zoo's budget)",
            ));
        }
        let plan = tars_agents::train::plan(
            algo,
            &self.environment,
            &self.hyperparameters,
            self.total_timesteps,
        )
        .map_err(|e| ApiError::unprocessable(e.to_string()))?;
        let max_steps =
            u64::from(tars_envs::spec(&self.environment).map_or(0, |s| s.max_episode_steps));
        let episodes = |n: usize| (n as u64).saturating_mul(max_steps);
        let during = self.eval_freq.map_or(0, |freq| {
            (plan.total_timesteps / freq).saturating_mul(episodes(self.eval_freq_episodes))
        });
        let evaluations = Cost {
            memory_bytes: 0,
            env_steps: episodes(self.eval_episodes).saturating_add(during),
        };
        let what = format!("training {} on {}", algo.name(), self.environment);
        budget.check(&what, plan.cost.then(evaluations))?;
        Ok((algo, plan))
    }
}

/// Train an agent configuration (operator): a job any worker runs; its result names the
/// checkpoint (`train-<job id>`) and its evaluation. 200 with the job when it ends within the
/// wait limit, else 202; `Prefer: respond-async` gives 202 at once.
#[utoipa::path(post, path = "/v1/train",
    request_body(content = TrainRequest, example = json!({
        "agent_type": "PPO", "environment": "CartPole-v1", "seed": 1,
        "total_timesteps": 30000, "eval_episodes": 20})),
    params(("Idempotency-Key" = Option<String>, Header, description = "de-duplicates submissions"),
           ("Prefer" = Option<String>, Header, description = "respond-async: 202 at once")),
    responses((status = 200, body = JobView), (status = 202, body = JobView), (status = 401),
              (status = 403), (status = 422), (status = 503)),
    security(("bearer" = [])))]
pub async fn train(
    State(state): State<AppState>,
    principal: Principal,
    headers: HeaderMap,
    ApiJson(request): ApiJson<TrainRequest>,
) -> Result<Response, ApiError> {
    principal.require(Role::Operator)?;
    let key = routes::idempotency_key(&headers)?;
    request.validate(state.service.config.job_budget())?;
    let body = serde_json::to_value(&request).expect("requests serialize");
    let row = match state
        .jobs
        .submit_kind(JobKind::Training, body, &principal.subject, key)
        .await
    {
        Ok(Submitted::New(row) | Submitted::Existing(row)) => row,
        Err(err) => return Err(routes::submit_error(err)),
    };
    let row = if routes::respond_async(&headers) {
        // The row the submit stored or found: no second read.
        Some(row)
    } else {
        state.jobs.wait(row.id, state.sync_wait).await?
    }
    .ok_or_else(|| ApiError::not_found("job vanished"))?;
    let done = row.status.is_final();
    let view = routes::job_view(&state, row).await?;
    Ok(if done {
        (StatusCode::OK, Json(view)).into_response()
    } else {
        routes::accepted(view)
    })
}

/// The checkpoint name a training job writes.
pub fn checkpoint_name(job: uuid::Uuid) -> String {
    format!("train-{job}")
}

/// Runs a training job: trains, evaluates, writes the checkpoint; the job's result names it.
pub async fn run(data_dir: PathBuf, budget: Budget, row: &JobRow, live: Arc<Live>) -> Ending {
    let request: TrainRequest = match serde_json::from_value(row.request.clone()) {
        Ok(request) => request,
        Err(err) => return Ending::failed(format!("stored request is invalid: {err}")),
    };
    let dir = data_dir.join("checkpoints").join(checkpoint_name(row.id));
    let stopper = live.clone();
    let trained =
        tokio::task::spawn_blocking(move || train_and_save(&request, budget, &dir, &stopper)).await;
    match trained {
        Ok(Ok(Some(result))) => Ending::Done {
            status: JobStatus::Succeeded,
            run_id: None,
            result: Some(result),
            error: None,
        },
        Ok(Ok(None)) => live.stopped(),
        Ok(Err(err)) => Ending::failed(format!("{err:#}")),
        Err(err) => Ending::failed(format!("the training thread failed: {err}")),
    }
}

/// Trains and writes the checkpoint; `None` when the job was asked to stop first.
fn train_and_save(
    request: &TrainRequest,
    budget: Budget,
    dir: &Path,
    live: &Live,
) -> anyhow::Result<Option<Value>> {
    // Checked again: a job queued before the budget was lowered does not run over it.
    let (algo, _) = request
        .validate(budget)
        .map_err(|e| anyhow::anyhow!(e.message))?;
    let env_id = tars_envs::spec(&request.environment)?.id;
    let run = TrainRun {
        algo,
        env_id,
        overrides: &request.hyperparameters,
        seed: request.seed,
        total_timesteps: request.total_timesteps,
        eval_episodes: request.eval_episodes,
        eval_freq: request
            .eval_freq
            .map(|freq| (freq, request.eval_freq_episodes)),
    };
    let mut observer = JobObserver { live, env_id };
    let stopped = || live.stop_requested();
    let before_evaluation = || live.set_phase(env_id, "evaluating");
    let checkpoint_id = dir
        .file_name()
        .map(|name| name.to_string_lossy().into_owned());
    let checkpoint_id = checkpoint_id
        .ok_or_else(|| anyhow::anyhow!("the checkpoint path {} has no name", dir.display()))?;
    run.run(
        dir,
        &checkpoint_id,
        &mut observer,
        &stopped,
        &before_evaluation,
    )
}

/// One training run as `tars train` and `POST /v1/train` do it: train, evaluate the final
/// policy (and, with `eval_freq`, the best one of the evaluations during training), write
/// the checkpoint(s), describe the result as JSON.
pub struct TrainRun<'a> {
    pub algo: Algo,
    pub env_id: &'static str,
    pub overrides: &'a Map<String, Value>,
    pub seed: u64,
    pub total_timesteps: Option<u64>,
    /// Deterministic episodes of the final evaluation(s), seeded from `seed + 1,000,000`.
    pub eval_episodes: usize,
    /// Steps between evaluations during training, and their episodes (seeded from
    /// `seed + 2,000,000`, apart from training's and the final evaluation's).
    pub eval_freq: Option<(u64, usize)>,
}

impl TrainRun<'_> {
    /// Trains with `observer`; `None`, with nothing written, when `stopped()` says the run was
    /// asked to stop. Writes the checkpoint `dir`, known to proposals as `checkpoint_id` (its
    /// name under `<data_dir>/checkpoints`, or its path); the best policy, if any, is
    /// `<dir>/best`, `<checkpoint_id>/best`.
    pub fn run(
        &self,
        dir: &Path,
        checkpoint_id: &str,
        observer: &mut dyn Observer,
        stopped: &dyn Fn() -> bool,
        before_evaluation: &dyn Fn(),
    ) -> anyhow::Result<Option<Value>> {
        let start = Instant::now();
        // Periodic evaluations play their own episodes, apart from the final evaluation's.
        let eval = self
            .eval_freq
            .map(|(eval_freq, n_eval_episodes)| EvalConfig {
                eval_freq,
                n_eval_episodes,
                seed: self.seed.wrapping_add(2_000_000),
            });
        let EvaluatedRun {
            mut output,
            evaluations,
            best,
        } = tars_agents::train::train_with_evaluations(
            self.algo,
            self.env_id,
            self.overrides,
            self.seed,
            self.total_timesteps,
            observer,
            eval,
        )?;
        if stopped() {
            return Ok(None);
        }
        let train_seconds = start.elapsed().as_secs_f64();
        before_evaluation();
        output.curve.extend(evaluations.iter().map(|e| CurvePoint {
            timestep: e.timestep,
            key: "eval/mean_reward".into(),
            value: e.mean_reward,
        }));
        output.curve.sort_by_key(|point| point.timestep);
        let (hyperparams, curve) = (&output.hyperparams, &output.curve);
        let evaluation = self.save_scored(
            dir,
            &mut output.policy,
            hyperparams,
            curve,
            output.timesteps,
        )?;
        // The best policy: its own checkpoint, scored on the same episodes.
        let best = match best {
            Some(mut best) => {
                let best_dir = dir.join("best");
                let evaluation = self.save_scored(
                    &best_dir,
                    &mut best.policy,
                    hyperparams,
                    curve,
                    best.timestep,
                )?;
                json!({
                    "timestep": best.timestep, "selection_mean_reward": best.mean_reward,
                    "eval_mean_reward": evaluation.mean_reward(),
                    "eval_std_reward": evaluation.std_reward(),
                    "checkpoint_id": format!("{checkpoint_id}/best"),
                    "checkpoint": best_dir.display().to_string(),
                })
            }
            None => Value::Null,
        };
        Ok(Some(json!({
            "algo": self.algo.name(), "env": self.env_id, "seed": self.seed,
            "timesteps": output.timesteps, "train_seconds": train_seconds,
            "eval_mean_reward": evaluation.mean_reward(), "eval_std_reward": evaluation.std_reward(),
            "eval_episodes": self.eval_episodes, "checkpoint_id": checkpoint_id,
            "checkpoint": dir.display().to_string(), "hyperparams": output.hyperparams,
            "evaluations_during_training": evaluations.len(), "best": best,
        })))
    }

    /// Scores `policy` on the final evaluation's episodes (seeds from `seed + 1,000,000`) and
    /// writes it as checkpoint `dir`, its metadata's curve cut at its step `timesteps`.
    fn save_scored(
        &self,
        dir: &Path,
        policy: &mut tars_agents::Policy,
        hyperparams: &Value,
        curve: &[CurvePoint],
        timesteps: u64,
    ) -> anyhow::Result<Evaluation> {
        let seed = self.seed.wrapping_add(1_000_000);
        let evaluation = tars_agents::evaluate(policy, self.eval_episodes, seed, true)?;
        let curve: Vec<CurvePoint> = (curve.iter())
            .filter(|point| point.timestep <= timesteps)
            .cloned()
            .collect();
        let (weights, metadata) =
            checkpoint::encode(policy, hyperparams, self.seed, timesteps, &curve);
        write_checkpoint(dir, &weights, &metadata)?;
        Ok(evaluation)
    }
}

/// Reports a training's progress to its job and stops it when the job is cancelled or the
/// process is shutting down.
struct JobObserver<'a> {
    live: &'a Live,
    env_id: &'a str,
}

impl Observer for JobObserver<'_> {
    fn on_progress(&mut self, progress: &Progress) -> Control {
        tars_eval::Reporter::training(self.live, self.env_id, progress)
    }
}

impl Live {
    /// Whether a cancel or a shutdown asked the job to stop.
    pub(crate) fn stop_requested(&self) -> bool {
        self.cancel.load(Ordering::Relaxed) || self.interrupt.load(Ordering::Relaxed)
    }
}

/// Writes a checkpoint directory (safetensors weights + JSON metadata) whole: into a temporary
/// sibling first, then renamed into place, replacing an earlier one of the same name.
pub fn write_checkpoint(dir: &Path, weights: &[u8], metadata: &str) -> anyhow::Result<()> {
    use anyhow::Context;
    let parent = dir.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent)
        .with_context(|| format!("creating checkpoint directory {}", parent.display()))?;
    let name = dir
        .file_name()
        .with_context(|| format!("checkpoint path {} has no name", dir.display()))?;
    let tmp = parent.join(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        uuid::Uuid::new_v4()
    ));
    std::fs::create_dir(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let written = std::fs::write(tmp.join(WEIGHTS_FILE), weights)
        .and_then(|()| std::fs::write(tmp.join(METADATA_FILE), metadata));
    if let Err(err) = written {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(err).with_context(|| format!("writing the checkpoint in {}", tmp.display()));
    }
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("replacing {}", dir.display()))?;
    }
    std::fs::rename(&tmp, dir)
        .with_context(|| format!("moving the checkpoint into {}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(body: Value) -> TrainRequest {
        serde_json::from_value(body).unwrap()
    }

    #[test]
    fn bad_requests_name_what_is_valid() {
        let cases = [
            (
                json!({"agent_type": "SAC", "environment": "CartPole-v1"}),
                "SAC",
            ),
            (
                json!({"agent_type": "PPO", "environment": "Pong-v5"}),
                "Pong-v5",
            ),
            (
                json!({"agent_type": "DDPG", "environment": "CartPole-v1"}),
                "DDPG cannot train on CartPole-v1",
            ),
            (
                json!({"agent_type": "PPO", "environment": "CartPole-v1",
                       "hyperparameters": {"gamma": 2.0}}),
                "gamma",
            ),
            (
                json!({"agent_type": "PPO", "environment": "CartPole-v1", "eval_episodes": 0}),
                "eval_episodes must be between 1 and 10000",
            ),
            (
                json!({"agent_type": "PPO", "environment": "CartPole-v1", "total_timesteps": 0}),
                "total_timesteps must be at least 1",
            ),
        ];
        for (body, expected) in cases {
            let err = request(body.clone()).validate(Budget::DEFAULT).unwrap_err();
            assert!(err.message.contains(expected), "{body}: {}", err.message);
        }
        // The findings: each would hold a worker for days.
        let over = [
            json!({"agent_type": "PPO", "environment": "CartPole-v1", "total_timesteps": 1_000_000_000_000u64}),
            json!({"agent_type": "PPO", "environment": "CartPole-v1", "eval_freq": 1,
                   "eval_freq_episodes": 10_000, "eval_episodes": 10_000}),
            json!({"agent_type": "PPO", "environment": "CartPole-v1",
                   "hyperparameters": {"net_arch": vec![4096; 64]}}),
        ];
        for body in over {
            let err = request(body.clone()).validate(Budget::DEFAULT).unwrap_err();
            assert_eq!(
                (err.status.as_u16(), err.code),
                (422, "over_budget"),
                "{body}"
            );
            assert!(
                err.message
                    .contains("training PPO on CartPole-v1 needs an estimated"),
                "{}",
                err.message
            );
            assert!(err.details["budget"].as_u64().is_some(), "{}", err.details);
        }
        let unknown = serde_json::from_value::<TrainRequest>(
            json!({"agent_type": "PPO", "environment": "CartPole-v1", "steps": 5}),
        )
        .unwrap_err();
        assert!(
            unknown.to_string().contains("unknown field `steps`"),
            "{unknown}"
        );
        let (algo, plan) = request(json!({"agent_type": "ppo", "environment": "CartPole-v1"}))
            .validate(Budget::DEFAULT)
            .unwrap();
        assert_eq!((algo, plan.total_timesteps), (Algo::Ppo, 100_000));
    }

    #[test]
    fn a_checkpoint_is_replaced_whole() {
        let root = std::env::temp_dir().join(format!("tars-ckpt-{}", uuid::Uuid::new_v4()));
        let dir = root.join("checkpoints").join("train-x");
        write_checkpoint(&dir, b"first", "{}").unwrap();
        write_checkpoint(&dir, b"second", "{\"v\":2}").unwrap();
        assert_eq!(std::fs::read(dir.join(WEIGHTS_FILE)).unwrap(), b"second");
        assert_eq!(
            std::fs::read_to_string(dir.join(METADATA_FILE)).unwrap(),
            "{\"v\":2}"
        );
        let names: Vec<_> = std::fs::read_dir(root.join("checkpoints"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec!["train-x".to_string()], "no temporary left");
        std::fs::remove_dir_all(&root).unwrap();
    }
}
