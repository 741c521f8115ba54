//! `MountainCarContinuous-v0`: gymnasium's `continuous_mountain_car.py`.
//!
//! numpy-2 rules reproduced here: after the first step gymnasium stores the state as float32,
//! and from then on every update, clip and comparison runs in float32 (so a position of
//! `float32(0.45)` reaches the 0.45 goal). The state drawn at reset is float64, so the first
//! step after a reset runs in float64 (with the float32 action term) and then rounds.
//! A clipped action becomes a Python float, which changes the precision of `force * power`.

use crate::{Action, Env, EnvSpec, Error, PARALLEL_MIN_ENVS, Rng, Space, Transition, check_state};

const MIN_ACTION: f32 = -1.0;
const MAX_ACTION: f32 = 1.0;
const MIN_POSITION: f64 = -1.2;
const MAX_POSITION: f64 = 0.6;
const MAX_SPEED: f64 = 0.07;
const GOAL_POSITION: f64 = 0.45;
const POWER: f64 = 0.0015;

const OBS_LOW: [f32; 2] = [MIN_POSITION as f32, -MAX_SPEED as f32];
const OBS_HIGH: [f32; 2] = [MAX_POSITION as f32, MAX_SPEED as f32];
const ACT_LOW: [f32; 1] = [MIN_ACTION];
const ACT_HIGH: [f32; 1] = [MAX_ACTION];

pub static MOUNTAIN_CAR_CONTINUOUS: EnvSpec = EnvSpec {
    id: "MountainCarContinuous-v0",
    aliases: &[],
    observation_space: Space::Box {
        low: &OBS_LOW,
        high: &OBS_HIGH,
    },
    action_space: Space::Box {
        low: &ACT_LOW,
        high: &ACT_HIGH,
    },
    max_episode_steps: 999,
    reward_threshold: Some(90.0),
    state_layout: &["position", "velocity"],
    parallel_min_envs: PARALLEL_MIN_ENVS,
};

/// The mountain car with a continuous force; +100 at the goal minus 0.1·action² per step.
#[derive(Debug, Clone)]
pub struct MountainCarContinuous {
    position: f64,
    velocity: f64,
    /// Whether gymnasium would hold the state as float32 (true after any step).
    state_is_f32: bool,
    rng: Rng,
}

impl Default for MountainCarContinuous {
    fn default() -> Self {
        let mut env = MountainCarContinuous {
            position: 0.0,
            velocity: 0.0,
            state_is_f32: false,
            rng: Rng::new(0),
        };
        env.reset(Some(0));
        env
    }
}

/// `force * power - 0.0025 * cos(3 * position)` as numpy evaluates it: in float32 when the
/// force is the float32 action, in float64 when clipping turned it into a Python float.
fn acceleration(action: f32, cos_term: f64) -> Acceleration {
    if !(MIN_ACTION..=MAX_ACTION).contains(&action) {
        let force = if action > MAX_ACTION {
            MAX_ACTION
        } else {
            MIN_ACTION
        };
        Acceleration::F64(f64::from(force) * POWER - cos_term)
    } else {
        Acceleration::F32(action * POWER as f32 - cos_term as f32)
    }
}

enum Acceleration {
    F32(f32),
    F64(f64),
}

impl MountainCarContinuous {
    fn step_f32(&mut self, action: f32) -> bool {
        let (mut position, mut velocity) = (self.position as f32, self.velocity as f32);
        let cos_term = 0.0025 * f64::from(3.0 * position).cos();
        velocity += match acceleration(action, cos_term) {
            Acceleration::F32(a) => a,
            Acceleration::F64(a) => a as f32,
        };
        let (max_speed, min_position, max_position) =
            (MAX_SPEED as f32, MIN_POSITION as f32, MAX_POSITION as f32);
        velocity = velocity.clamp(-max_speed, max_speed);
        position += velocity;
        position = position.clamp(min_position, max_position);
        if position == min_position && velocity < 0.0 {
            velocity = 0.0;
        }
        (self.position, self.velocity) = (position.into(), velocity.into());
        position >= GOAL_POSITION as f32 && velocity >= 0.0
    }

    fn step_f64(&mut self, action: f32) -> bool {
        let (mut position, mut velocity) = (self.position, self.velocity);
        let cos_term = 0.0025 * (3.0 * position).cos();
        velocity += match acceleration(action, cos_term) {
            Acceleration::F32(a) => f64::from(a),
            Acceleration::F64(a) => a,
        };
        velocity = velocity.clamp(-MAX_SPEED, MAX_SPEED);
        position += velocity;
        position = position.clamp(MIN_POSITION, MAX_POSITION);
        if position == MIN_POSITION && velocity < 0.0 {
            velocity = 0.0;
        }
        let terminated = position >= GOAL_POSITION && velocity >= 0.0;
        self.position = f64::from(position as f32);
        self.velocity = f64::from(velocity as f32);
        terminated
    }
}

impl Env for MountainCarContinuous {
    fn spec(&self) -> &'static EnvSpec {
        &MOUNTAIN_CAR_CONTINUOUS
    }

    fn reset(&mut self, seed: Option<u64>) {
        if let Some(seed) = seed {
            self.rng = Rng::new(seed);
        }
        self.position = self.rng.uniform(-0.6, -0.4);
        self.velocity = 0.0;
        self.state_is_f32 = false;
    }

    fn step(&mut self, action: Action<'_>) -> Transition {
        let action = super::scalar_action(action);
        let terminated = if self.state_is_f32 {
            self.step_f32(action)
        } else {
            self.step_f64(action)
        };
        self.state_is_f32 = true;
        let bonus = if terminated { 100.0 } else { 0.0 };
        let a = f64::from(action);
        Transition {
            reward: bonus - a * a * 0.1,
            terminated,
        }
    }

    fn observe(&self, obs: &mut [f32]) {
        obs[0] = self.position as f32;
        obs[1] = self.velocity as f32;
    }

    fn state(&self) -> Vec<f64> {
        vec![self.position, self.velocity]
    }

    /// Sets the state as gymnasium's float32 state array (values are rounded to float32).
    fn set_state(&mut self, state: &[f64]) -> Result<(), Error> {
        check_state(&MOUNTAIN_CAR_CONTINUOUS, state)?;
        self.position = f64::from(state[0] as f32);
        self.velocity = f64::from(state[1] as f32);
        self.state_is_f32 = true;
        Ok(())
    }
}
