//! The evaluation request (the seeds' `/v1/evaluate` body) and its validation into a [`Plan`]:
//! every error a caller can make is found here, before any training starts.

use crate::engine::EngineConfig;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tars_agents::{Algo, Cost};

/// Most episodes one request may ask for per environment.
pub const MAX_EPISODES: u32 = 10_000;

/// What a client asks for. Field names are the seeds'.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalRequest {
    /// `DQN`, `A2C`, `PPO`, `DDPG` or `TD3`, any case.
    pub agent_type: String,
    /// Empty (`{}`, `""`, `null` or absent): train from `hyperparameters` on the default
    /// budget. A string or `{"checkpoint_id": "…"}`: evaluate that stored checkpoint.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub agent_state: Value,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub hyperparameters: Map<String, Value>,
    pub environments: Vec<String>,
    /// Episodes per environment (default `default_episodes`, 100; 1..=10,000).
    #[serde(default)]
    pub num_episodes: Option<i64>,
    /// 50 episodes (unless `num_episodes` says otherwise) and the quick training budget.
    #[serde(default)]
    pub quick_mode: bool,
    #[serde(default)]
    pub compare_to_baseline: bool,
    /// Seed of training, episodes and bootstrap; absent = the caller picks one and reports it.
    #[serde(default)]
    pub seed: Option<u64>,
    /// Put per-episode returns and lengths in the response (they are always stored).
    #[serde(default = "yes")]
    pub include_episodes: bool,
}

fn yes() -> bool {
    true
}

/// Errors in a request: each says what was wrong and what is valid.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RequestError {
    #[error("unknown agent_type '{0}'; valid: DQN, A2C, PPO, DDPG, TD3")]
    UnknownAgent(String),
    #[error("environments is empty; name at least one, e.g. [\"CartPole-v1\"]")]
    NoEnvironments,
    #[error("environment '{env}' is listed twice; list each environment once")]
    DuplicateEnvironment { env: String },
    #[error("num_episodes must be between 1 and {MAX_EPISODES}, got {0}")]
    Episodes(i64),
    #[error(
        "agent_state must be empty ({{}}), a checkpoint id string or {{\"checkpoint_id\": \"…\"}}; got {0}"
    )]
    AgentState(String),
    #[error(
        "checkpoint id '{0}' is not a checkpoint name: use 1 to 200 letters, digits, '-', '_' and '.' (not starting with '.'), with at most one '/' as in train-<job id>/best"
    )]
    CheckpointId(String),
    #[error("{0}")]
    Config(String),
    /// The request's estimated memory or environment steps exceed the job budget.
    #[error(transparent)]
    OverBudget(#[from] tars_agents::OverBudget),
}

/// A validated request: everything the engine needs, nothing left to check.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub algo: Algo,
    /// Canonical gymnasium ids, in request order.
    pub environments: Vec<String>,
    pub hyperparameters: Map<String, Value>,
    pub checkpoint_id: Option<String>,
    pub num_episodes: u32,
    pub quick_mode: bool,
    pub compare_to_baseline: bool,
    pub seed: u64,
    pub include_episodes: bool,
    /// Training budget per environment (absent when a checkpoint is evaluated).
    pub budgets: Vec<Option<u64>>,
    /// Estimated memory (the largest environment's training) and environment steps (every
    /// environment's training and evaluation episodes at their step limit).
    pub cost: Cost,
}

/// The quick training budget: a fifth of the default (RL Zoo) budget, at least 1,000 steps.
pub fn quick_budget(default_budget: u64) -> u64 {
    (default_budget / 5).max(1_000).min(default_budget)
}

impl EvalRequest {
    /// Checks everything: agent, environments, episodes, agent state, and that the agent can
    /// train with these hyperparameters on every environment. `default_seed` is used when the
    /// request has none.
    pub fn validate(&self, config: &EngineConfig, default_seed: u64) -> Result<Plan, EvalError> {
        let algo: Algo = self
            .agent_type
            .parse()
            .map_err(|_| RequestError::UnknownAgent(self.agent_type.clone()))?;
        if self.environments.is_empty() {
            return Err(RequestError::NoEnvironments.into());
        }
        let mut environments: Vec<String> = Vec::new();
        for env in &self.environments {
            let id = tars_envs::spec(env)?.id.to_string();
            if environments.contains(&id) {
                return Err(RequestError::DuplicateEnvironment { env: id }.into());
            }
            environments.push(id);
        }
        let num_episodes = match self.num_episodes {
            Some(n) if (1..=i64::from(MAX_EPISODES)).contains(&n) => n as u32,
            Some(n) => return Err(RequestError::Episodes(n).into()),
            None if self.quick_mode => config.quick_mode_episodes,
            None => config.default_episodes,
        };
        let checkpoint_id = checkpoint_id(&self.agent_state)?;
        let mut budgets = Vec::new();
        let mut cost = Cost::default();
        for env in &environments {
            let episodes = Cost {
                memory_bytes: 0,
                env_steps: u64::from(num_episodes)
                    * u64::from(tars_envs::spec(env)?.max_episode_steps),
            };
            let training = match checkpoint_id {
                Some(_) => None,
                None => Some(self.budget(algo, env)?),
            };
            let trained = training.as_ref().map_or(Cost::default(), |plan| plan.cost);
            cost = cost.then(trained.then(episodes));
            budgets.push(training.map(|plan| plan.total_timesteps));
        }
        let what = format!("evaluating {} on {}", algo.name(), environments.join(", "));
        config
            .budget
            .check(&what, cost)
            .map_err(RequestError::from)?;
        Ok(Plan {
            algo,
            environments,
            hyperparameters: self.hyperparameters.clone(),
            checkpoint_id,
            num_episodes,
            quick_mode: self.quick_mode,
            compare_to_baseline: self.compare_to_baseline,
            seed: self.seed.unwrap_or(default_seed),
            include_episodes: self.include_episodes,
            budgets,
            cost,
        })
    }

    /// The training plan on `env` (its budget and cost), validating the hyperparameters.
    fn budget(&self, algo: Algo, env: &str) -> Result<tars_agents::train::Plan, EvalError> {
        let full = tars_agents::train::plan(algo, env, &self.hyperparameters, None)?;
        if !self.quick_mode || self.hyperparameters.contains_key("n_timesteps") {
            return Ok(full);
        }
        let quick = quick_budget(full.total_timesteps);
        Ok(tars_agents::train::plan(
            algo,
            env,
            &self.hyperparameters,
            Some(quick),
        )?)
    }
}

fn checkpoint_id(state: &Value) -> Result<Option<String>, RequestError> {
    let bad = || RequestError::AgentState(state.to_string());
    let id = match state {
        Value::Null => None,
        Value::String(id) if id.trim().is_empty() => None,
        Value::String(id) => Some(id.trim().to_string()),
        Value::Object(map) if map.is_empty() => None,
        Value::Object(map) if map.len() == 1 => match map.get("checkpoint_id") {
            Some(Value::String(id)) if !id.trim().is_empty() => Some(id.trim().to_string()),
            _ => return Err(bad()),
        },
        _ => return Err(bad()),
    };
    if let Some(id) = &id {
        check_checkpoint_id(id)?;
    }
    Ok(id)
}

/// Most characters of a checkpoint id.
pub const MAX_CHECKPOINT_ID: usize = 200;

/// A checkpoint id names a checkpoint in the data directory's checkpoint store, never a path:
/// one or two `/`-separated names of letters, digits, `-`, `_` and `.`, none starting with a
/// dot (`ppo-CartPole-v1-seed1`, `train-<job id>`, `train-<job id>/best`).
pub fn check_checkpoint_id(id: &str) -> Result<(), RequestError> {
    let name_ok = |name: &str| {
        !name.is_empty()
            && !name.starts_with('.')
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    };
    let parts: Vec<&str> = id.split('/').collect();
    if id.chars().count() <= MAX_CHECKPOINT_ID
        && parts.len() <= 2
        && parts.iter().all(|p| name_ok(p))
    {
        Ok(())
    } else {
        Err(RequestError::CheckpointId(id.chars().take(60).collect()))
    }
}

/// Everything that can stop an evaluation.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error(transparent)]
    Request(#[from] RequestError),
    #[error(transparent)]
    Agent(#[from] tars_agents::Error),
    #[error(transparent)]
    Env(#[from] tars_envs::Error),
    /// A checkpoint that does not fit the request.
    #[error("{0}")]
    Checkpoint(String),
    /// Training failed after validation passed (not expected; reported, never hidden).
    #[error("training failed: {0}")]
    Training(String),
    #[error("evaluation cancelled")]
    Cancelled,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(body: Value) -> Result<Plan, EvalError> {
        let request: EvalRequest = serde_json::from_value(body).unwrap();
        request.validate(&EngineConfig::default(), 7)
    }

    #[test]
    fn the_seeds_body_parses_with_defaults() {
        let plan = request(json!({
            "agent_type": "dqn", "agent_state": {}, "environments": ["CartPole-v1"],
            "hyperparameters": {"learning_rate": 0.001, "gamma": 0.99, "epsilon": 0.1},
        }))
        .unwrap();
        assert_eq!(plan.algo, Algo::Dqn);
        assert_eq!(plan.num_episodes, 100);
        assert_eq!(plan.seed, 7);
        assert_eq!(plan.budgets, vec![Some(50_000)]);
        assert!(plan.include_episodes);

        let quick = request(json!({
            "agent_type": "PPO", "environments": ["CartPole-v1", "LunarLander-v2"],
            "quick_mode": true, "seed": 3,
        }))
        .unwrap();
        assert_eq!(quick.num_episodes, 50);
        assert_eq!(quick.environments, ["CartPole-v1", "LunarLander-v3"]);
        assert_eq!(quick.budgets, vec![Some(20_000), Some(200_000)]);
        assert_eq!(quick.seed, 3);
    }

    #[test]
    fn a_request_over_the_job_budget_is_refused_before_it_runs() {
        // The finding: a 10¹²-transition replay buffer would abort the process.
        let err = request(json!({
            "agent_type": "DQN", "environments": ["CartPole-v1"],
            "hyperparameters": {"buffer_size": 1_000_000_000_000u64},
        }))
        .unwrap_err();
        let EvalError::Request(RequestError::OverBudget(over)) = &err else {
            panic!("{err}");
        };
        assert_eq!(over.resource.key(), "max_job_memory_bytes");
        assert!(over.estimate > 4_000_000_000_000, "{over:?}");
        assert!(
            err.to_string()
                .contains("evaluating DQN on CartPole-v1 needs"),
            "{err}"
        );
        // Steps: training plus every evaluation episode at its step limit.
        let err = request(json!({
            "agent_type": "PPO", "environments": ["CartPole-v1"],
            "hyperparameters": {"n_timesteps": 1e12},
        }))
        .unwrap_err();
        assert!(err.to_string().contains("max_job_env_steps"), "{err}");
        let ok =
            request(json!({"agent_type": "PPO", "environments": ["CartPole-v1", "Acrobot-v1"]}))
                .unwrap();
        assert_eq!(
            ok.cost.env_steps,
            100_000 + 1_000_000 + 100 * 500 + 100 * 500
        );
    }

    #[test]
    fn checkpoint_ids_are_names_in_the_store_never_paths() {
        for id in ["ppo-CartPole-v1-seed1", "train-0b5e/best", "a.b_c-1"] {
            check_checkpoint_id(id).unwrap();
        }
        for id in [
            "/etc",
            "../x",
            "a/../../b",
            "a/b/c",
            ".hidden",
            "a//b",
            "a b",
            "c:\\x",
        ] {
            let err = check_checkpoint_id(id).unwrap_err();
            assert!(
                err.to_string().contains("is not a checkpoint name"),
                "{id}: {err}"
            );
        }
        let err = request(json!({"agent_type": "PPO", "environments": ["CartPole-v1"],
                                  "agent_state": "../../etc"}))
        .unwrap_err();
        assert!(err.to_string().contains("not a checkpoint name"), "{err}");
    }

    #[test]
    fn agent_state_names_a_checkpoint_or_nothing() {
        for (state, expected) in [
            (json!({}), None),
            (json!(""), None),
            (json!(null), None),
            (
                json!("ppo-CartPole-v1-seed0"),
                Some("ppo-CartPole-v1-seed0"),
            ),
            (json!({"checkpoint_id": "abc"}), Some("abc")),
        ] {
            assert_eq!(checkpoint_id(&state).unwrap().as_deref(), expected);
        }
        let err = checkpoint_id(&json!({"weights": [1, 2]})).unwrap_err();
        assert!(err.to_string().contains("checkpoint_id"), "{err}");
    }

    #[test]
    fn bad_requests_say_what_is_valid() {
        let cases = [
            (
                json!({"agent_type": "SAC", "environments": ["CartPole-v1"]}),
                "unknown agent_type 'SAC'; valid: DQN, A2C, PPO, DDPG, TD3",
            ),
            (
                json!({"agent_type": "DQN", "environments": []}),
                "environments is empty",
            ),
            (
                json!({"agent_type": "DQN", "environments": ["CartPole-v9"]}),
                "CartPole-v9",
            ),
            (
                json!({"agent_type": "DQN", "environments": ["CartPole-v1", "CartPole-v1"]}),
                "listed twice",
            ),
            (
                json!({"agent_type": "DQN", "environments": ["CartPole-v1"], "num_episodes": 0}),
                "num_episodes must be between 1 and 10000, got 0",
            ),
            (
                json!({"agent_type": "DQN", "environments": ["CartPole-v1"], "num_episodes": 10001}),
                "got 10001",
            ),
            (
                json!({"agent_type": "DDPG", "environments": ["CartPole-v1"]}),
                "DDPG cannot train on CartPole-v1",
            ),
            (
                json!({"agent_type": "DQN", "environments": ["CartPole-v1"],
                       "hyperparameters": {"learning_rat": 0.1}}),
                "unknown DQN hyperparameter 'learning_rat'",
            ),
        ];
        for (body, message) in cases {
            let err = request(body.clone()).unwrap_err().to_string();
            assert!(err.contains(message), "{body}: {err}");
        }
        let err = serde_json::from_value::<EvalRequest>(json!({
            "agent_type": "DQN", "environments": ["CartPole-v1"], "episodes": 5
        }))
        .unwrap_err();
        assert!(
            err.to_string().contains("unknown field `episodes`"),
            "{err}"
        );
    }
}
