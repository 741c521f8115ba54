//! `CartPole-v1`: gymnasium's `cartpole.py` (Barto, Sutton & Anderson 1983), Euler integrator.

use crate::{Action, Env, EnvSpec, Error, PARALLEL_MIN_ENVS, Rng, Space, Transition, check_state};

const GRAVITY: f64 = 9.8;
const MASS_CART: f64 = 1.0;
const MASS_POLE: f64 = 0.1;
const TOTAL_MASS: f64 = MASS_POLE + MASS_CART;
const LENGTH: f64 = 0.5;
const POLE_MASS_LENGTH: f64 = MASS_POLE * LENGTH;
const FORCE_MAG: f64 = 10.0;
const TAU: f64 = 0.02;
const THETA_THRESHOLD: f64 = 12.0 * 2.0 * std::f64::consts::PI / 360.0;
const X_THRESHOLD: f64 = 2.4;

const OBS_HIGH: [f32; 4] = [
    (X_THRESHOLD * 2.0) as f32,
    f32::INFINITY,
    (THETA_THRESHOLD * 2.0) as f32,
    f32::INFINITY,
];
const OBS_LOW: [f32; 4] = [-OBS_HIGH[0], -OBS_HIGH[1], -OBS_HIGH[2], -OBS_HIGH[3]];

pub static CARTPOLE: EnvSpec = EnvSpec {
    id: "CartPole-v1",
    aliases: &[],
    observation_space: Space::Box {
        low: &OBS_LOW,
        high: &OBS_HIGH,
    },
    action_space: Space::Discrete { n: 2 },
    max_episode_steps: 500,
    reward_threshold: Some(475.0),
    state_layout: &["x", "x_dot", "theta", "theta_dot"],
    parallel_min_envs: PARALLEL_MIN_ENVS,
};

/// A pole on a cart; push left (0) or right (1); +1 per step until it falls or leaves the track.
#[derive(Debug, Clone)]
pub struct CartPole {
    state: [f64; 4],
    rng: Rng,
}

impl Default for CartPole {
    fn default() -> Self {
        let mut env = CartPole {
            state: [0.0; 4],
            rng: Rng::new(0),
        };
        env.reset(Some(0));
        env
    }
}

impl Env for CartPole {
    fn spec(&self) -> &'static EnvSpec {
        &CARTPOLE
    }

    fn reset(&mut self, seed: Option<u64>) {
        if let Some(seed) = seed {
            self.rng = Rng::new(seed);
        }
        for value in &mut self.state {
            *value = self.rng.uniform(-0.05, 0.05);
        }
    }

    fn step(&mut self, action: Action<'_>) -> Transition {
        let [mut x, mut x_dot, mut theta, mut theta_dot] = self.state;
        let force = if super::discrete_action(action) == 1 {
            FORCE_MAG
        } else {
            -FORCE_MAG
        };
        let (sintheta, costheta) = theta.sin_cos();
        let temp = (force + POLE_MASS_LENGTH * (theta_dot * theta_dot) * sintheta) / TOTAL_MASS;
        let thetaacc = (GRAVITY * sintheta - costheta * temp)
            / (LENGTH * (4.0 / 3.0 - MASS_POLE * (costheta * costheta) / TOTAL_MASS));
        let xacc = temp - POLE_MASS_LENGTH * thetaacc * costheta / TOTAL_MASS;
        x += TAU * x_dot;
        x_dot += TAU * xacc;
        theta += TAU * theta_dot;
        theta_dot += TAU * thetaacc;
        self.state = [x, x_dot, theta, theta_dot];
        let terminated = !(-X_THRESHOLD..=X_THRESHOLD).contains(&x)
            || !(-THETA_THRESHOLD..=THETA_THRESHOLD).contains(&theta);
        // gymnasium pays 1.0 on every step including the terminating one; steps after
        // termination (which a time-limited runner never takes) would pay 0.
        Transition {
            reward: 1.0,
            terminated,
        }
    }

    fn observe(&self, obs: &mut [f32]) {
        for (o, s) in obs.iter_mut().zip(self.state) {
            *o = s as f32;
        }
    }

    fn state(&self) -> Vec<f64> {
        self.state.to_vec()
    }

    fn set_state(&mut self, state: &[f64]) -> Result<(), Error> {
        check_state(&CARTPOLE, state)?;
        self.state.copy_from_slice(state);
        Ok(())
    }
}
