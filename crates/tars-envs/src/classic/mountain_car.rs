//! `MountainCar-v0`: gymnasium's `mountain_car.py` (Moore 1990), discrete push left/none/right.

use crate::{Action, Env, EnvSpec, Error, PARALLEL_MIN_ENVS, Rng, Space, Transition, check_state};

const MIN_POSITION: f64 = -1.2;
const MAX_POSITION: f64 = 0.6;
const MAX_SPEED: f64 = 0.07;
const GOAL_POSITION: f64 = 0.5;
const GOAL_VELOCITY: f64 = 0.0;
const FORCE: f64 = 0.001;
const GRAVITY: f64 = 0.0025;

const OBS_LOW: [f32; 2] = [MIN_POSITION as f32, -MAX_SPEED as f32];
const OBS_HIGH: [f32; 2] = [MAX_POSITION as f32, MAX_SPEED as f32];

pub static MOUNTAIN_CAR: EnvSpec = EnvSpec {
    id: "MountainCar-v0",
    aliases: &[],
    observation_space: Space::Box {
        low: &OBS_LOW,
        high: &OBS_HIGH,
    },
    action_space: Space::Discrete { n: 3 },
    max_episode_steps: 200,
    reward_threshold: Some(-110.0),
    state_layout: &["position", "velocity"],
    parallel_min_envs: PARALLEL_MIN_ENVS,
};

/// An under-powered car in a valley; −1 per step until it reaches the flag at 0.5.
#[derive(Debug, Clone)]
pub struct MountainCar {
    state: [f64; 2],
    rng: Rng,
}

impl Default for MountainCar {
    fn default() -> Self {
        let mut env = MountainCar {
            state: [0.0; 2],
            rng: Rng::new(0),
        };
        env.reset(Some(0));
        env
    }
}

impl Env for MountainCar {
    fn spec(&self) -> &'static EnvSpec {
        &MOUNTAIN_CAR
    }

    fn reset(&mut self, seed: Option<u64>) {
        if let Some(seed) = seed {
            self.rng = Rng::new(seed);
        }
        self.state = [self.rng.uniform(-0.6, -0.4), 0.0];
    }

    fn step(&mut self, action: Action<'_>) -> Transition {
        let [mut position, mut velocity] = self.state;
        let push = super::discrete_action(action) as f64 - 1.0;
        velocity += push * FORCE + (3.0 * position).cos() * -GRAVITY;
        velocity = velocity.clamp(-MAX_SPEED, MAX_SPEED);
        position += velocity;
        position = position.clamp(MIN_POSITION, MAX_POSITION);
        if position == MIN_POSITION && velocity < 0.0 {
            velocity = 0.0;
        }
        self.state = [position, velocity];
        let terminated = position >= GOAL_POSITION && velocity >= GOAL_VELOCITY;
        Transition {
            reward: -1.0,
            terminated,
        }
    }

    fn observe(&self, obs: &mut [f32]) {
        obs[0] = self.state[0] as f32;
        obs[1] = self.state[1] as f32;
    }

    fn state(&self) -> Vec<f64> {
        self.state.to_vec()
    }

    fn set_state(&mut self, state: &[f64]) -> Result<(), Error> {
        check_state(&MOUNTAIN_CAR, state)?;
        self.state.copy_from_slice(state);
        Ok(())
    }
}
