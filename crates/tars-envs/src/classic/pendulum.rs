//! `Pendulum-v1`: gymnasium's `pendulum.py`, swing-up with torque in [−2, 2].
//!
//! numpy-2 rule reproduced here: the action `u` is float32, so `3.0 * u` and `0.001 * u**2`
//! are computed in float32 before joining the float64 state arithmetic.

use crate::{Action, Env, EnvSpec, Error, PARALLEL_MIN_ENVS, Rng, Space, Transition, check_state};
use std::f64::consts::PI;

const MAX_SPEED: f64 = 8.0;
const MAX_TORQUE: f32 = 2.0;
const DT: f64 = 0.05;
const G: f64 = 10.0;
const M: f64 = 1.0;
const L: f64 = 1.0;

const OBS_HIGH: [f32; 3] = [1.0, 1.0, MAX_SPEED as f32];
const OBS_LOW: [f32; 3] = [-1.0, -1.0, -(MAX_SPEED as f32)];
const ACT_HIGH: [f32; 1] = [MAX_TORQUE];
const ACT_LOW: [f32; 1] = [-MAX_TORQUE];

pub static PENDULUM: EnvSpec = EnvSpec {
    id: "Pendulum-v1",
    aliases: &[],
    observation_space: Space::Box {
        low: &OBS_LOW,
        high: &OBS_HIGH,
    },
    action_space: Space::Box {
        low: &ACT_LOW,
        high: &ACT_HIGH,
    },
    max_episode_steps: 200,
    reward_threshold: None,
    state_layout: &["theta", "theta_dot"],
    parallel_min_envs: PARALLEL_MIN_ENVS,
};

/// An inverted pendulum to swing up and balance; reward is minus a quadratic cost, never ends.
#[derive(Debug, Clone)]
pub struct Pendulum {
    state: [f64; 2],
    rng: Rng,
}

impl Default for Pendulum {
    fn default() -> Self {
        let mut env = Pendulum {
            state: [0.0; 2],
            rng: Rng::new(0),
        };
        env.reset(Some(0));
        env
    }
}

/// `((x + pi) % (2 pi)) - pi` with numpy's floor-modulo.
fn angle_normalize(x: f64) -> f64 {
    (x + PI).rem_euclid(2.0 * PI) - PI
}

impl Env for Pendulum {
    fn spec(&self) -> &'static EnvSpec {
        &PENDULUM
    }

    fn reset(&mut self, seed: Option<u64>) {
        if let Some(seed) = seed {
            self.rng = Rng::new(seed);
        }
        self.state = [self.rng.uniform(-PI, PI), self.rng.uniform(-1.0, 1.0)];
    }

    fn step(&mut self, action: Action<'_>) -> Transition {
        let [th, thdot] = self.state;
        let u = super::scalar_action(action).clamp(-MAX_TORQUE, MAX_TORQUE);
        let normalized = angle_normalize(th);
        let costs = super::square(normalized)
            + 0.1 * super::square(thdot)
            + f64::from(0.001_f32 * super::square_f32(u));
        let newthdot = thdot
            + (3.0 * G / (2.0 * L) * th.sin() + f64::from((3.0 / (M * L * L)) as f32 * u)) * DT;
        let newthdot = newthdot.clamp(-MAX_SPEED, MAX_SPEED);
        let newth = th + newthdot * DT;
        self.state = [newth, newthdot];
        Transition {
            reward: -costs,
            terminated: false,
        }
    }

    fn observe(&self, obs: &mut [f32]) {
        let [theta, theta_dot] = self.state;
        obs[0] = theta.cos() as f32;
        obs[1] = theta.sin() as f32;
        obs[2] = theta_dot as f32;
    }

    fn state(&self) -> Vec<f64> {
        self.state.to_vec()
    }

    fn set_state(&mut self, state: &[f64]) -> Result<(), Error> {
        check_state(&PENDULUM, state)?;
        self.state.copy_from_slice(state);
        Ok(())
    }
}
