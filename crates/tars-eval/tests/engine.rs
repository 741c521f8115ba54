//! The engine end to end: real training, real episodes, real verdicts.

use serde_json::{Value, json};
use std::collections::HashMap;
use tars_agents::{Control, Progress};
use tars_eval::engine::{Event, Quiet};
use tars_eval::{
    Baseline, Engine, EngineConfig, EvalError, EvalRequest, EvalResponse, Inputs, LoadedCheckpoint,
    Reporter, Severity,
};

fn plan(body: Value) -> tars_eval::Plan {
    let request: EvalRequest = serde_json::from_value(body).unwrap();
    request.validate(&EngineConfig::default(), 0).unwrap()
}

/// The response without its wall-clock fields, for bit-identity comparisons.
fn without_times(response: &EvalResponse) -> Value {
    let mut value = serde_json::to_value(response).unwrap();
    value["duration_seconds"] = Value::Null;
    for result in value["results"].as_array_mut().unwrap() {
        result["duration_seconds"] = Value::Null;
        result["training"]["train_seconds"] = Value::Null;
        result["training"]["source"] = Value::Null;
    }
    value
}

fn seed_baseline() -> Baseline {
    // The seed's §3.2 row: DQN CartPole-v1 450.0 ± 25.0, success 0.95, version 12, rank 1.
    Baseline {
        mean_reward: 450.0,
        std_reward: 25.0,
        success_rate: 0.95,
        returns: None,
        rank: 1,
        version: 12,
    }
}

#[test]
fn metrics_are_bit_identical_whatever_the_concurrency_and_the_cache() {
    let plan = plan(json!({
        "agent_type": "PPO", "environments": ["CartPole-v1", "Acrobot-v1", "Pendulum-v1"],
        "hyperparameters": {"n_timesteps": 4096}, "num_episodes": 20, "seed": 5,
    }));
    let run = |max_concurrent| {
        let engine = Engine::new(EngineConfig {
            max_concurrent,
            ..EngineConfig::default()
        });
        let response = engine.evaluate(&plan, &Inputs::default(), &Quiet).unwrap();
        (engine, response)
    };
    let (serial_engine, serial) = run(1);
    let (_, parallel) = run(4);
    assert_eq!(without_times(&serial), without_times(&parallel));
    assert_eq!(serial.results.len(), 3);
    assert_eq!(serial.results[1].environment, "Acrobot-v1");
    assert_eq!(serial.results[0].training.timesteps, 4096);
    assert_eq!(serial.results[0].metrics.metrics.n_episodes, 20);
    assert_eq!(serial.results[0].episode_returns.len(), 20);

    // The same plan again: every policy comes from the cache, the metrics do not move.
    assert_eq!(serial_engine.trainings(), 3);
    let again = serial_engine
        .evaluate(&plan, &Inputs::default(), &Quiet)
        .unwrap();
    assert_eq!(serial_engine.trainings(), 3, "no new training");
    assert!(again.results.iter().all(|r| r.training.source == "cache"));
    assert_eq!(without_times(&again), without_times(&serial));

    // Other hyperparameters never share an entry.
    let mut other = plan.clone();
    other
        .hyperparameters
        .insert("learning_rate".into(), json!(1e-4));
    serial_engine
        .evaluate(&other, &Inputs::default(), &Quiet)
        .unwrap();
    assert_eq!(serial_engine.trainings(), 6);
    assert_eq!(serial_engine.cached(), 6);
}

#[test]
fn the_seeds_bad_dqn_config_is_a_regression_to_roll_back() {
    // Seeds' test 4: learning_rate 0.5, gamma 0.5, epsilon 0.9 against a good DQN baseline.
    // (A shorter budget than the Zoo's keeps the test fast; the config fails at any budget.)
    let plan = plan(json!({
        "agent_type": "DQN", "agent_state": {}, "environments": ["CartPole-v1"],
        "hyperparameters": {"learning_rate": 0.5, "gamma": 0.5, "epsilon": 0.9,
                            "n_timesteps": 10000},
        "num_episodes": 50, "compare_to_baseline": true, "seed": 1,
    }));
    let inputs = Inputs {
        baselines: HashMap::from([("CartPole-v1".to_string(), seed_baseline())]),
        checkpoint: None,
    };
    let response = Engine::new(EngineConfig::default())
        .evaluate(&plan, &inputs, &Quiet)
        .unwrap();
    let regression = response.regression.as_ref().expect("compared");
    assert!(
        regression.detected && regression.should_rollback,
        "{regression:?}"
    );
    assert!(regression.severity >= Severity::High);
    assert!(
        regression
            .reason
            .contains("below baseline 450.0 (rank 1, v12) on CartPole-v1"),
        "{}",
        regression.reason
    );
    let json = serde_json::to_value(&response).unwrap();
    assert_eq!(json["regression"]["detected"], json!(true));
    assert_eq!(json["results"][0]["baseline"]["version"], json!(12));
    let mean = json["results"][0]["metrics"]["mean_reward"]
        .as_f64()
        .unwrap();
    assert!(mean < 100.0, "the bad config does not balance: {mean}");
    for key in [
        "iqm",
        "mean_ci95",
        "iqm_ci95",
        "success_rate",
        "cv",
        "loss_trend",
    ] {
        assert!(json["results"][0]["metrics"].get(key).is_some(), "{key}");
    }
    assert_eq!(
        json["results"][0]["metrics"]["episode_returns"]
            .as_array()
            .unwrap()
            .len(),
        50
    );
}

#[test]
fn a_good_config_is_not_a_regression_and_a_missing_baseline_is_said() {
    let plan = plan(json!({
        "agent_type": "PPO", "environments": ["CartPole-v1", "Acrobot-v1"],
        "num_episodes": 50, "compare_to_baseline": true, "seed": 0,
        "hyperparameters": {"n_timesteps": 60000}, "include_episodes": false,
    }));
    let inputs = Inputs {
        baselines: HashMap::from([("CartPole-v1".to_string(), seed_baseline())]),
        checkpoint: None,
    };
    let response = Engine::new(EngineConfig::default())
        .evaluate(&plan, &inputs, &Quiet)
        .unwrap();
    let cartpole = &response.results[0];
    let regression = cartpole.regression.as_ref().unwrap();
    assert!(
        !regression.should_rollback && cartpole.metrics.metrics.mean_reward > 450.0,
        "{regression:?}"
    );
    assert!(cartpole.metrics.episode_returns.is_none(), "not asked for");
    assert_eq!(cartpole.episode_returns.len(), 50, "but always kept");
    let acrobot = &response.results[1];
    assert!(acrobot.regression.is_none());
    assert!(
        acrobot
            .note
            .as_deref()
            .unwrap()
            .starts_with("no rank-1 baseline for PPO on Acrobot-v1")
    );
}

#[test]
fn checkpoints_must_fit_the_request() {
    let trained = tars_agents::train::train(
        tars_agents::Algo::Ppo,
        "CartPole-v1",
        &serde_json::Map::new(),
        0,
        Some(512),
        &mut tars_agents::Silent,
    )
    .unwrap();
    let (weights, metadata) =
        tars_agents::checkpoint::encode(&trained.policy, &trained.hyperparams, 0, 512, &[]);
    let (policy, metadata) = tars_agents::checkpoint::decode(&weights, &metadata).unwrap();
    let checkpoint = LoadedCheckpoint {
        id: "ppo-cartpole".into(),
        policy,
        metadata,
    };
    let inputs = Inputs {
        baselines: HashMap::new(),
        checkpoint: Some(checkpoint),
    };
    let engine = Engine::new(EngineConfig::default());
    let ok = plan(json!({"agent_type": "ppo", "agent_state": "ppo-cartpole",
                         "environments": ["CartPole-v1"], "num_episodes": 5}));
    assert_eq!(ok.budgets, vec![None]);
    let response = engine.evaluate(&ok, &inputs, &Quiet).unwrap();
    assert_eq!(response.results[0].training.source, "checkpoint");
    assert_eq!(engine.trainings(), 0);

    for (body, message) in [
        (
            json!({"agent_type": "dqn", "agent_state": "ppo-cartpole", "environments": ["CartPole-v1"]}),
            "checkpoint 'ppo-cartpole' holds a PPO policy, but agent_type is DQN",
        ),
        (
            json!({"agent_type": "ppo", "agent_state": {"checkpoint_id": "ppo-cartpole"},
                   "environments": ["CartPole-v1", "Acrobot-v1"]}),
            "was trained on CartPole-v1; it cannot be evaluated on Acrobot-v1",
        ),
    ] {
        let err = engine.evaluate(&plan(body), &inputs, &Quiet).unwrap_err();
        assert!(err.to_string().contains(message), "{err}");
    }
}

struct StopAfterFirstReport;

impl Reporter for StopAfterFirstReport {
    fn training(&self, _env: &str, _progress: &Progress) -> Control {
        Control::Stop
    }
    fn event(&self, _env: &str, event: Event) {
        assert!(
            !matches!(event, Event::Done { .. }),
            "a cancelled run never finishes"
        );
    }
}

#[test]
fn a_reporter_can_cancel_and_the_partial_policy_is_not_cached() {
    let plan = plan(json!({"agent_type": "A2C", "environments": ["CartPole-v1"],
                           "hyperparameters": {"n_timesteps": 20000}, "num_episodes": 5}));
    let engine = Engine::new(EngineConfig::default());
    let err = engine
        .evaluate(&plan, &Inputs::default(), &StopAfterFirstReport)
        .unwrap_err();
    assert!(matches!(err, EvalError::Cancelled), "{err}");
    assert_eq!(engine.cached(), 0);
}
