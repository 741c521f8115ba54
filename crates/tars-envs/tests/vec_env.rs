//! Behaviour of `VecEnv`: same-step autoreset, time limits, determinism, parallel = serial.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tars_envs::{
    Action, Actions, Env, EnvSpec, Error, LUNAR_LANDER_SPEC, LunarLander, LunarLanderOptions,
    PARALLEL_MIN_ENVS, RandomActions, Rng, Space, Transition, VecEnv, make, spec,
};

#[test]
fn autoreset_is_same_step_and_keeps_the_final_observation() {
    // Always pushing left topples CartPole in a few dozen steps.
    let mut vec_env = VecEnv::make("CartPole-v1", 1, 3).unwrap();
    let mut steps = 0;
    loop {
        let before = vec_env.obs.clone();
        vec_env.step(Actions::Discrete(&[0]));
        steps += 1;
        if vec_env.done(0) {
            assert!(vec_env.terminated[0] && !vec_env.truncated[0]);
            // The final observation is out of bounds; the current one is a fresh reset state.
            let final_theta = vec_env.final_obs[2].abs();
            assert!(
                final_theta > 0.2094 || vec_env.final_obs[0].abs() > 2.4,
                "{:?}",
                vec_env.final_obs
            );
            assert!(
                vec_env.obs.iter().all(|v| v.abs() <= 0.05),
                "{:?}",
                vec_env.obs
            );
            assert_ne!(before, vec_env.obs);
            assert_eq!(vec_env.episode_lengths[0], steps);
            assert_eq!(vec_env.episode_returns[0], f64::from(steps));
            break;
        }
        assert!(steps < 500);
    }
}

#[test]
fn pendulum_is_truncated_at_200_steps() {
    let mut vec_env = VecEnv::make("Pendulum-v1", 2, 0).unwrap();
    for step_idx in 1..=200 {
        vec_env.step(Actions::Continuous(&[0.5, -0.5]));
        assert_eq!(vec_env.truncated[0], step_idx == 200);
        assert!(!vec_env.terminated[0]);
    }
    assert_eq!(vec_env.episode_lengths, [200, 200]);
}

fn run(n_envs: usize, seed: u64, steps: usize) -> (Vec<f32>, Vec<f64>) {
    let mut vec_env = VecEnv::make("Acrobot-v1", n_envs, seed).unwrap();
    let mut actions = RandomActions::new(vec_env.spec().action_space, n_envs, seed);
    let mut total = vec![0.0; n_envs];
    for _ in 0..steps {
        vec_env.step(actions.sample());
        for (t, r) in total.iter_mut().zip(&vec_env.rewards) {
            *t += r;
        }
    }
    (vec_env.obs.clone(), total)
}

#[test]
fn same_seed_same_trajectory_and_parallel_equals_serial() {
    assert_eq!(run(4, 11, 700), run(4, 11, 700));
    assert_ne!(run(4, 11, 50).0, run(4, 12, 50).0);
    // A batch large enough to be split across threads gives, env by env, what small ones give.
    let n = PARALLEL_MIN_ENVS * 2;
    let (big_obs, _) = run(n, 5, 30);
    let mut serial = VecEnv::make("Acrobot-v1", 1, 5).unwrap();
    let mut actions = RandomActions::new(serial.spec().action_space, n, 5);
    let mut first_env_actions = Vec::new();
    for _ in 0..30 {
        match actions.sample() {
            Actions::Discrete(a) => first_env_actions.push(a[0]),
            Actions::Continuous(_) => unreachable!(),
        }
    }
    for a in first_env_actions {
        serial.step(Actions::Discrete(&[a]));
    }
    assert_eq!(&big_obs[..6], &serial.obs[..]);
}

#[test]
fn same_seed_reset_sequences_repeat() {
    let draw = |seed| {
        let mut env = make("MountainCar-v0").unwrap();
        env.reset(Some(seed));
        let mut states = vec![env.state()];
        for _ in 0..3 {
            env.reset(None);
            states.push(env.state());
        }
        states
    };
    assert_eq!(draw(9), draw(9));
    assert_ne!(draw(9), draw(10));
}

#[test]
fn bad_state_and_action_give_clear_errors() {
    let mut env = make("CartPole-v1").unwrap();
    assert_eq!(
        env.set_state(&[0.0, 0.0]).unwrap_err().to_string(),
        "CartPole-v1 state must have 4 values (x, x_dot, theta, theta_dot), got 2"
    );
    assert_eq!(
        env.set_state(&[0.0, f64::NAN, 0.0, 0.0])
            .unwrap_err()
            .to_string(),
        "CartPole-v1 state[1] is NaN; every state value must be finite"
    );
    let space = spec("CartPole-v1").unwrap().action_space;
    assert_eq!(
        space
            .check_action(Action::Discrete(2))
            .unwrap_err()
            .to_string(),
        "action 2 is out of range; valid actions are 0..2 (0 to 1)"
    );
    assert_eq!(
        space
            .check_action(Action::Continuous(&[0.5]))
            .unwrap_err()
            .to_string(),
        "wrong action shape: expected Discrete(2), got array of 1 floats"
    );
    let pendulum = spec("Pendulum-v1").unwrap().action_space;
    assert_eq!(
        pendulum
            .check_action(Action::Continuous(&[0.5, 1.0]))
            .unwrap_err()
            .to_string(),
        "wrong action shape: expected Box(-2.0, 2.0, (1,)), got array of 2 floats"
    );
    assert_eq!(
        pendulum
            .check_action(Action::Discrete(1))
            .unwrap_err()
            .to_string(),
        "wrong action shape: expected Box(-2.0, 2.0, (1,)), got integer 1"
    );
    assert!(matches!(
        pendulum.check_action(Action::Continuous(&[f32::INFINITY])),
        Err(Error::NonFiniteAction { index: 0, .. })
    ));
    assert!(matches!(
        VecEnv::<Box<dyn Env>>::new(Vec::new(), 0),
        Err(Error::NoEnvs(0))
    ));
    assert!(matches!(
        Space::Discrete { n: 3 }.check_action(Action::Discrete(2)),
        Ok(())
    ));
}

/// A LunarLander that records whether each step ran on a rayon pool thread.
struct Recording {
    env: LunarLander,
    on_pool: Arc<AtomicUsize>,
}

impl Env for Recording {
    fn spec(&self) -> &'static EnvSpec {
        self.env.spec()
    }
    fn reset(&mut self, seed: Option<u64>) {
        self.env.reset(seed)
    }
    fn step(&mut self, action: Action<'_>) -> Transition {
        if rayon::current_thread_index().is_some() {
            self.on_pool.fetch_add(1, Ordering::Relaxed);
        }
        self.env.step(action)
    }
    fn observe(&self, obs: &mut [f32]) {
        self.env.observe(obs)
    }
    fn state(&self) -> Vec<f64> {
        self.env.state()
    }
    fn set_state(&mut self, state: &[f64]) -> Result<(), Error> {
        self.env.set_state(state)
    }
}

#[test]
fn lunar_lander_batches_step_on_the_pool_from_four_envs_and_match_single_envs() {
    let batch = |n: usize, seed: u64, actions: &[Vec<usize>]| {
        let on_pool = Arc::new(AtomicUsize::new(0));
        let envs = (0..n)
            .map(|_| Recording {
                env: LunarLander::discrete(LunarLanderOptions::default()).unwrap(),
                on_pool: on_pool.clone(),
            })
            .collect();
        let mut vec_env = VecEnv::new(envs, seed).unwrap();
        let mut trace = Vec::new();
        for step_actions in actions {
            vec_env.step(Actions::Discrete(&step_actions[..n]));
            trace.push((
                vec_env.obs.clone(),
                vec_env.rewards.clone(),
                vec_env.terminated.clone(),
            ));
        }
        (trace, on_pool.load(Ordering::Relaxed))
    };
    let n = 8;
    let mut rng = Rng::new(9);
    // Long enough for crashes and same-step autoresets.
    let actions: Vec<Vec<usize>> = (0..400)
        .map(|_| (0..n).map(|_| rng.below(4) as usize).collect())
        .collect();
    assert_eq!(LUNAR_LANDER_SPEC.parallel_min_envs, 4);

    let (split, split_on_pool) = batch(n, 21, &actions);
    assert_eq!(
        split_on_pool,
        n * actions.len(),
        "every step of 8 envs runs on the pool"
    );
    assert!(
        split
            .iter()
            .any(|(_, _, terminated)| terminated.contains(&true))
    );
    // Below the threshold the batch stays on the calling thread.
    let (_, small_on_pool) = batch(3, 21, &actions);
    assert_eq!(small_on_pool, 0);

    // Environment i of the split batch is environment 0 of a batch of one seeded 21 + i.
    for env_idx in 0..n {
        let own: Vec<Vec<usize>> = actions.iter().map(|a| vec![a[env_idx]]).collect();
        let (single, _) = batch(1, 21 + env_idx as u64, &own);
        for ((obs, rewards, terminated), (single_obs, single_rewards, single_terminated)) in
            split.iter().zip(&single)
        {
            assert_eq!(&obs[env_idx * 8..(env_idx + 1) * 8], &single_obs[..]);
            assert_eq!(rewards[env_idx].to_bits(), single_rewards[0].to_bits());
            assert_eq!(terminated[env_idx], single_terminated[0]);
        }
    }
}
