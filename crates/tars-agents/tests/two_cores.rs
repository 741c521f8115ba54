//! Training on two cores (`nn::pair`: DQN's and DDPG's gradient steps) gives the same
//! weights as on one, and happens only in processes that enable it. The only test in its
//! binary, so no other test holds the pair.

use serde_json::json;
use tars_agents::nn::pair::{self, phases_on_two_cores};
use tars_agents::{Algo, Silent};

#[test]
fn training_uses_two_cores_only_when_enabled_and_gives_the_same_weights() {
    // The Zoo's CartPole settings (256-256, batch 64: products split in halves, Adam too),
    // with a budget of eight rollouts of 256 steps, each followed by a training phase.
    let config = json!({"learning_starts": 200}).as_object().unwrap().clone();
    let run = || {
        let output = tars_agents::train::train(
            Algo::Dqn,
            "CartPole-v1",
            &config,
            3,
            Some(2_000),
            &mut Silent,
        )
        .unwrap();
        output.policy.weights_hash()
    };
    let before = phases_on_two_cores();
    let not_enabled = run();
    assert_eq!(
        phases_on_two_cores(),
        before,
        "off until a process enables it"
    );

    pair::enable();
    let one_thread = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let one_core = one_thread.install(run);
    assert_eq!(
        phases_on_two_cores(),
        before,
        "a one-thread pool stays on one core"
    );
    let two_cores = run();
    if pair::available() {
        assert_eq!(
            phases_on_two_cores() - before,
            8,
            "every phase ran on the pair"
        );
    }
    assert_eq!(not_enabled, two_cores);
    assert_eq!(one_core, two_cores);

    // DDPG's Pendulum settings (400-300, batch 256): 50 phases of one gradient step.
    let config = json!({"learning_starts": 100}).as_object().unwrap().clone();
    let run = || {
        let train = tars_agents::train::train;
        let output = train(
            Algo::Ddpg,
            "Pendulum-v1",
            &config,
            5,
            Some(150),
            &mut Silent,
        );
        output.unwrap().policy.weights_hash()
    };
    let one_core = one_thread.install(run);
    let before = phases_on_two_cores();
    let two_cores = run();
    if pair::available() {
        assert_eq!(
            phases_on_two_cores() - before,
            50,
            "every phase ran on the pair"
        );
    }
    assert_eq!(one_core, two_cores);
}
