//! The live agents: per agent type, an immutable [`Snapshot`] (config + trained policy) behind
//! one atomic pointer. A reload builds the new snapshot off the request path and swaps it in
//! with one pointer store ([`LiveAgents::install`]); a request holds the `Arc<Snapshot>` it
//! started with, so it finishes on that version even when a swap happens meanwhile, and never
//! sees half a config. Versions only move forward: an older snapshot never replaces a newer one.

use arc_swap::ArcSwap;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tars_agents::Policy;
use tars_envs::{Actions, Rng};

/// The configuration a snapshot serves.
#[derive(Debug, Clone, PartialEq)]
pub struct ActiveConfig {
    /// Upper-case ("DQN").
    pub agent_type: String,
    pub version: i32,
    pub hyperparameters: Value,
    pub checkpoint_id: Option<String>,
    /// The environment the checkpoint was trained on.
    pub environment: Option<String>,
}

/// Actions for a batch of observations.
#[derive(Debug, Clone, PartialEq)]
pub enum ActionBatch {
    /// One action index per observation.
    Discrete(Vec<usize>),
    /// `dim` floats per observation, row-major.
    Continuous { dim: usize, values: Vec<f32> },
}

/// One `act` call's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Acted {
    pub actions: ActionBatch,
    /// The config version that produced them.
    pub version: i32,
    /// Set on the first request a new snapshot serves: swap requested → served.
    pub reload_latency: Option<Duration>,
}

/// Why `act` refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ActError {
    #[error(
        "config v{version} of {agent_type} has no trained policy (no checkpoint_id); act needs \
         one: apply a proposal with evaluate_before_apply, or PUT a config with a checkpoint_id"
    )]
    NoPolicy { agent_type: String, version: i32 },
    #[error(
        "observations must be a non-empty batch of {dim} numbers each (the {env} observation); \
         got {got} numbers"
    )]
    Shape { env: String, dim: usize, got: usize },
    #[error("observations must be finite numbers; found {value} at index {index}")]
    NonFinite { index: usize, value: f32 },
}

/// Why a snapshot cannot be built.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SnapshotError {
    #[error(
        "checkpoint {checkpoint} holds a {found} policy; the config of {agent_type} needs a \
         {agent_type} checkpoint"
    )]
    WrongAlgorithm {
        checkpoint: String,
        agent_type: String,
        found: String,
    },
    #[error(
        "checkpoint {checkpoint} was trained on {found}, but the config names environment {expected}"
    )]
    WrongEnvironment {
        checkpoint: String,
        expected: String,
        found: String,
    },
}

/// An immutable config with its policy, as served from the moment it is installed.
#[derive(Debug)]
pub struct Snapshot {
    pub config: ActiveConfig,
    policy: Option<PolicyPool>,
    requested_at: Instant,
    served: AtomicBool,
}

/// Copies of one policy, so concurrent requests each act with their own scratch buffers.
#[derive(Debug)]
struct PolicyPool {
    template: Policy,
    obs_dim: usize,
    idle: Mutex<Vec<Policy>>,
}

impl Snapshot {
    /// A snapshot of `config` acting with `policy` (its checkpoint's). `requested_at` is when
    /// the change was asked for: the reload latency runs from there to the first request served.
    pub fn new(
        config: ActiveConfig,
        policy: Option<Policy>,
        requested_at: Instant,
    ) -> Result<Snapshot, SnapshotError> {
        if let Some(policy) = &policy {
            let checkpoint = config.checkpoint_id.clone().unwrap_or_default();
            if !policy.algo.name().eq_ignore_ascii_case(&config.agent_type) {
                return Err(SnapshotError::WrongAlgorithm {
                    checkpoint,
                    agent_type: config.agent_type.clone(),
                    found: policy.algo.name().to_string(),
                });
            }
            if let Some(env) = &config.environment
                && env != &policy.env_id
            {
                return Err(SnapshotError::WrongEnvironment {
                    checkpoint,
                    expected: env.clone(),
                    found: policy.env_id.clone(),
                });
            }
        }
        let policy = policy.map(|template| PolicyPool {
            obs_dim: template.networks()[0].1.in_dim(),
            template,
            idle: Mutex::new(Vec::new()),
        });
        Ok(Snapshot {
            config,
            policy,
            requested_at,
            served: AtomicBool::new(false),
        })
    }

    /// The environment whose observations the policy takes.
    pub fn environment(&self) -> Option<&str> {
        self.policy.as_ref().map(|p| p.template.env_id.as_str())
    }

    /// Actions for `observations` (`n × obs_dim`, row-major): the mode of the policy when
    /// `deterministic`, else sampled with `seed`.
    pub fn act(
        &self,
        observations: &[f32],
        deterministic: bool,
        seed: u64,
    ) -> Result<Acted, ActError> {
        let pool = self.policy.as_ref().ok_or_else(|| ActError::NoPolicy {
            agent_type: self.config.agent_type.clone(),
            version: self.config.version,
        })?;
        if observations.is_empty() || !observations.len().is_multiple_of(pool.obs_dim) {
            return Err(ActError::Shape {
                env: pool.template.env_id.clone(),
                dim: pool.obs_dim,
                got: observations.len(),
            });
        }
        if let Some((index, &value)) = observations
            .iter()
            .enumerate()
            .find(|(_, v)| !v.is_finite())
        {
            return Err(ActError::NonFinite { index, value });
        }
        let mut policy = pool
            .idle
            .lock()
            .expect("policy pool lock")
            .pop()
            .unwrap_or_else(|| pool.template.clone());
        let mut rng = Rng::new(seed);
        let actions = match policy.act(observations, deterministic, &mut rng) {
            Actions::Discrete(actions) => ActionBatch::Discrete(actions.to_vec()),
            Actions::Continuous(values) => ActionBatch::Continuous {
                dim: values.len() / (observations.len() / pool.obs_dim),
                values: values.to_vec(),
            },
        };
        pool.idle.lock().expect("policy pool lock").push(policy);
        let first =
            !self.served.load(Ordering::Relaxed) && !self.served.swap(true, Ordering::AcqRel);
        Ok(Acted {
            actions,
            version: self.config.version,
            reload_latency: first.then(|| self.requested_at.elapsed()),
        })
    }
}

/// Every live agent type's current snapshot.
#[derive(Debug, Default)]
pub struct LiveAgents {
    agents: ArcSwap<HashMap<String, Arc<Snapshot>>>,
}

impl LiveAgents {
    pub fn new() -> LiveAgents {
        LiveAgents::default()
    }

    /// The snapshot now serving `agent_type` (any case).
    pub fn snapshot(&self, agent_type: &str) -> Option<Arc<Snapshot>> {
        self.agents
            .load()
            .get(&agent_type.to_ascii_uppercase())
            .cloned()
    }

    /// Swaps `snapshot` in unless a newer (or the same) version is already live; returns
    /// whether it was installed.
    pub fn install(&self, snapshot: Snapshot) -> bool {
        let key = snapshot.config.agent_type.to_ascii_uppercase();
        let version = snapshot.config.version;
        let snapshot = Arc::new(snapshot);
        let mut installed = false;
        self.agents.rcu(|current| {
            installed = current
                .get(&key)
                .is_none_or(|live| live.config.version < version);
            let mut next = HashMap::clone(current);
            if installed {
                next.insert(key.clone(), snapshot.clone());
            }
            next
        });
        installed
    }

    /// `(agent type, version)` of every live agent, sorted.
    pub fn versions(&self) -> Vec<(String, i32)> {
        let mut out: Vec<_> = self
            .agents
            .load()
            .iter()
            .map(|(agent, s)| (agent.clone(), s.config.version))
            .collect();
        out.sort();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::sync::OnceLock;
    use tars_agents::{Algo, Silent};

    /// A small PPO CartPole policy, trained once for all tests.
    fn policy() -> Policy {
        static POLICY: OnceLock<Policy> = OnceLock::new();
        POLICY
            .get_or_init(|| {
                let overrides = json!({"n_steps": 64, "n_envs": 2, "batch_size": 64});
                tars_agents::train::train(
                    Algo::Ppo,
                    "CartPole-v1",
                    overrides.as_object().unwrap(),
                    7,
                    Some(256),
                    &mut Silent,
                )
                .unwrap()
                .policy
            })
            .clone()
    }

    fn config(version: i32) -> ActiveConfig {
        ActiveConfig {
            agent_type: "PPO".into(),
            version,
            hyperparameters: json!({"learning_rate": 0.001}),
            checkpoint_id: Some(format!("ckpt-{version}")),
            environment: Some("CartPole-v1".into()),
        }
    }

    fn snapshot(version: i32) -> Snapshot {
        Snapshot::new(config(version), Some(policy()), Instant::now()).unwrap()
    }

    #[test]
    fn a_request_keeps_the_snapshot_it_started_with() {
        let live = LiveAgents::new();
        assert!(live.install(snapshot(1)));
        let in_flight = live.snapshot("ppo").unwrap();
        assert!(live.install(snapshot(2)));
        let obs = [0.01, -0.02, 0.03, 0.04];
        assert_eq!(in_flight.act(&obs, true, 0).unwrap().version, 1);
        assert_eq!(
            live.snapshot("PPO")
                .unwrap()
                .act(&obs, true, 0)
                .unwrap()
                .version,
            2
        );
        assert_eq!(live.versions(), vec![("PPO".to_string(), 2)]);
    }

    #[test]
    fn an_older_version_never_replaces_a_newer_one() {
        let live = LiveAgents::new();
        assert!(live.install(snapshot(3)));
        assert!(!live.install(snapshot(2)));
        assert!(!live.install(snapshot(3)));
        assert_eq!(live.snapshot("PPO").unwrap().config.version, 3);
    }

    #[test]
    fn only_the_first_request_of_a_snapshot_reports_the_reload_latency() {
        let s = snapshot(1);
        let obs = [0.0; 8];
        let first = s.act(&obs, true, 0).unwrap();
        assert!(first.reload_latency.is_some());
        assert_eq!(first.actions, s.act(&obs, true, 0).unwrap().actions);
        assert!(s.act(&obs, true, 0).unwrap().reload_latency.is_none());
        match first.actions {
            ActionBatch::Discrete(actions) => {
                assert_eq!(actions.len(), 2);
                assert!(actions.iter().all(|&a| a < 2));
            }
            other => panic!("CartPole is discrete: {other:?}"),
        }
    }

    #[test]
    fn actions_are_the_policys_own() {
        let s = snapshot(1);
        let obs = [0.05, 0.5, -0.1, -0.9, -0.05, -0.5, 0.1, 0.9];
        let mut direct = policy();
        let expected = match direct.act(&obs, true, &mut Rng::new(0)) {
            Actions::Discrete(a) => a.to_vec(),
            Actions::Continuous(_) => unreachable!(),
        };
        assert_eq!(
            s.act(&obs, true, 0).unwrap().actions,
            ActionBatch::Discrete(expected)
        );
    }

    #[test]
    fn bad_observations_and_configs_are_refused_with_what_is_valid() {
        let s = snapshot(1);
        let err = s.act(&[0.0; 3], true, 0).unwrap_err();
        assert_eq!(
            err.to_string(),
            "observations must be a non-empty batch of 4 numbers each (the CartPole-v1 \
             observation); got 3 numbers"
        );
        assert!(s.act(&[], true, 0).is_err());
        assert!(matches!(
            s.act(&[0.0, f32::NAN, 0.0, 0.0], true, 0),
            Err(ActError::NonFinite { index: 1, .. })
        ));
        let no_policy = Snapshot::new(config(4), None, Instant::now()).unwrap();
        assert!(matches!(
            no_policy.act(&[0.0; 4], true, 0),
            Err(ActError::NoPolicy { version: 4, .. })
        ));
        let dqn = ActiveConfig {
            agent_type: "DQN".into(),
            ..config(1)
        };
        let err = Snapshot::new(dqn, Some(policy()), Instant::now()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "checkpoint ckpt-1 holds a PPO policy; the config of DQN needs a DQN checkpoint"
        );
        let acrobot = ActiveConfig {
            environment: Some("Acrobot-v1".into()),
            ..config(1)
        };
        assert!(matches!(
            Snapshot::new(acrobot, Some(policy()), Instant::now()),
            Err(SnapshotError::WrongEnvironment { .. })
        ));
    }

    /// Swaps under load: every answer names the version of the snapshot its request loaded,
    /// and versions seen by one thread never go backwards.
    #[test]
    fn concurrent_requests_see_whole_snapshots_in_order() {
        let live = Arc::new(LiveAgents::new());
        live.install(snapshot(1));
        let threads: Vec<_> = (0..3)
            .map(|_| {
                let live = live.clone();
                std::thread::spawn(move || {
                    let mut last = 0;
                    for _ in 0..2_000 {
                        let s = live.snapshot("PPO").unwrap();
                        let acted = s.act(&[0.0; 4], true, 0).unwrap();
                        assert_eq!(acted.version, s.config.version);
                        assert_eq!(
                            s.config.checkpoint_id,
                            Some(format!("ckpt-{}", acted.version))
                        );
                        assert!(acted.version >= last);
                        last = acted.version;
                    }
                })
            })
            .collect();
        for version in 2..=50 {
            live.install(snapshot(version));
        }
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(live.snapshot("PPO").unwrap().config.version, 50);
    }
}
