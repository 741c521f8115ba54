//! `Acrobot-v1`: gymnasium's `acrobot.py` (Sutton & Barto's book dynamics), RK4 over 0.2 s.

use crate::{Action, Env, EnvSpec, Error, PARALLEL_MIN_ENVS, Rng, Space, Transition, check_state};
use std::f64::consts::PI;

const DT: f64 = 0.2;
const LINK_LENGTH_1: f64 = 1.0;
const LINK_MASS_1: f64 = 1.0;
const LINK_MASS_2: f64 = 1.0;
const LINK_COM_POS_1: f64 = 0.5;
const LINK_COM_POS_2: f64 = 0.5;
const LINK_MOI: f64 = 1.0;
const MAX_VEL_1: f64 = 4.0 * PI;
const MAX_VEL_2: f64 = 9.0 * PI;
const AVAIL_TORQUE: [f64; 3] = [-1.0, 0.0, 1.0];

const OBS_HIGH: [f32; 6] = [1.0, 1.0, 1.0, 1.0, MAX_VEL_1 as f32, MAX_VEL_2 as f32];
const OBS_LOW: [f32; 6] = [
    -1.0,
    -1.0,
    -1.0,
    -1.0,
    -(MAX_VEL_1 as f32),
    -(MAX_VEL_2 as f32),
];

pub static ACROBOT: EnvSpec = EnvSpec {
    id: "Acrobot-v1",
    aliases: &[],
    observation_space: Space::Box {
        low: &OBS_LOW,
        high: &OBS_HIGH,
    },
    action_space: Space::Discrete { n: 3 },
    max_episode_steps: 500,
    reward_threshold: Some(-100.0),
    state_layout: &["theta1", "theta2", "dtheta1", "dtheta2"],
    parallel_min_envs: PARALLEL_MIN_ENVS,
};

/// A two-link pendulum actuated at the elbow; −1 per step until the tip swings above the bar.
#[derive(Debug, Clone)]
pub struct Acrobot {
    state: [f64; 4],
    rng: Rng,
}

impl Default for Acrobot {
    fn default() -> Self {
        let mut env = Acrobot {
            state: [0.0; 4],
            rng: Rng::new(0),
        };
        env.reset(Some(0));
        env
    }
}

/// Time derivative of `[theta1, theta2, dtheta1, dtheta2]` under torque `a` (`_dsdt`, "book").
fn dsdt(s: [f64; 4], a: f64) -> [f64; 4] {
    let (m1, m2, l1, lc1, lc2) = (
        LINK_MASS_1,
        LINK_MASS_2,
        LINK_LENGTH_1,
        LINK_COM_POS_1,
        LINK_COM_POS_2,
    );
    let (i1, i2, g) = (LINK_MOI, LINK_MOI, 9.8);
    let [theta1, theta2, dtheta1, dtheta2] = s;
    let d1 = m1 * lc1.powi(2)
        + m2 * (l1.powi(2) + lc2.powi(2) + 2.0 * l1 * lc2 * theta2.cos())
        + i1
        + i2;
    let d2 = m2 * (lc2.powi(2) + l1 * lc2 * theta2.cos()) + i2;
    let phi2 = m2 * lc2 * g * (theta1 + theta2 - PI / 2.0).cos();
    let phi1 = -m2 * l1 * lc2 * super::square(dtheta2) * theta2.sin()
        - 2.0 * m2 * l1 * lc2 * dtheta2 * dtheta1 * theta2.sin()
        + (m1 * lc1 + m2 * l1) * g * (theta1 - PI / 2.0).cos()
        + phi2;
    let ddtheta2 =
        (a + d2 / d1 * phi1 - m2 * l1 * lc2 * super::square(dtheta1) * theta2.sin() - phi2)
            / (m2 * lc2.powi(2) + i2 - super::square(d2) / d1);
    let ddtheta1 = -(d2 * ddtheta2 + phi1) / d1;
    [dtheta1, dtheta2, ddtheta1, ddtheta2]
}

/// `wrap(x, -pi, pi)` from acrobot.py: shift by whole turns into `[-pi, pi]`.
fn wrap(mut x: f64) -> f64 {
    let diff = PI - -PI;
    while x > PI {
        x -= diff;
    }
    while x < -PI {
        x += diff;
    }
    x
}

impl Env for Acrobot {
    fn spec(&self) -> &'static EnvSpec {
        &ACROBOT
    }

    fn reset(&mut self, seed: Option<u64>) {
        if let Some(seed) = seed {
            self.rng = Rng::new(seed);
        }
        // gymnasium draws the reset state as float32.
        for value in &mut self.state {
            *value = self.rng.uniform(-0.1, 0.1) as f32 as f64;
        }
    }

    fn step(&mut self, action: Action<'_>) -> Transition {
        let torque = AVAIL_TORQUE[super::discrete_action(action)];
        // rk4(_dsdt, s_augmented, [0, dt]): one classic Runge-Kutta step, elementwise as numpy.
        let y0 = self.state;
        let (dt, dt2) = (DT - 0.0, (DT - 0.0) / 2.0);
        let add = |y: [f64; 4], h: f64, k: [f64; 4]| std::array::from_fn(|i| y[i] + h * k[i]);
        let k1 = dsdt(y0, torque);
        let k2 = dsdt(add(y0, dt2, k1), torque);
        let k3 = dsdt(add(y0, dt2, k2), torque);
        let k4 = dsdt(add(y0, dt, k3), torque);
        let ns: [f64; 4] =
            std::array::from_fn(|i| y0[i] + dt / 6.0 * (k1[i] + 2.0 * k2[i] + 2.0 * k3[i] + k4[i]));
        self.state = [
            wrap(ns[0]),
            wrap(ns[1]),
            ns[2].clamp(-MAX_VEL_1, MAX_VEL_1),
            ns[3].clamp(-MAX_VEL_2, MAX_VEL_2),
        ];
        let [s0, s1, ..] = self.state;
        let terminated = -s0.cos() - (s1 + s0).cos() > 1.0;
        Transition {
            reward: if terminated { 0.0 } else { -1.0 },
            terminated,
        }
    }

    fn observe(&self, obs: &mut [f32]) {
        let [t1, t2, d1, d2] = self.state;
        let values = [t1.cos(), t1.sin(), t2.cos(), t2.sin(), d1, d2];
        for (o, v) in obs.iter_mut().zip(values) {
            *o = v as f32;
        }
    }

    fn state(&self) -> Vec<f64> {
        self.state.to_vec()
    }

    fn set_state(&mut self, state: &[f64]) -> Result<(), Error> {
        check_state(&ACROBOT, state)?;
        self.state.copy_from_slice(state);
        Ok(())
    }
}
