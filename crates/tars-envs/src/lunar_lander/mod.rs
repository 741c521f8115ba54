//! `LunarLander-v3` and `LunarLanderContinuous-v3` on real Box2D 2.3 physics, ported from
//! gymnasium 1.x `gymnasium/envs/box2d/lunar_lander.py` (`LunarLander.reset`, `.step`).
//!
//! The world itself (terrain, hull, legs, joints, contacts) lives in `physics.rs`; this file
//! holds the spaces, the options, the random draws and the engine, reward and termination
//! logic, with gymnasium's double-precision arithmetic in gymnasium's order. Random draws
//! (terrain, initial push, wind phase, engine dispersion) come from the environment's own
//! [`Rng`] in gymnasium's order, so a seed is reproducible here but is not numpy's stream.

mod heuristic;
mod options;
mod physics;

pub use heuristic::{HeuristicAction, heuristic, heuristic_continuous, heuristic_discrete};
pub use options::{EpisodeDraws, LunarLanderOptions};

use crate::{Action, Env, EnvSpec, Error, Rng, Space, Transition};
use physics::{CHUNKS, FPS, HELIPAD_Y, LEG_DOWN, LanderWorld, SCALE, VIEWPORT_H, VIEWPORT_W};

/// `LunarLander-v3`: 4 discrete actions (no-op, left engine, main engine, right engine).
pub static LUNAR_LANDER_SPEC: EnvSpec = EnvSpec {
    id: "LunarLander-v3",
    aliases: &["LunarLander-v2"],
    observation_space: OBSERVATION_SPACE,
    action_space: Space::Discrete { n: 4 },
    max_episode_steps: 1000,
    reward_threshold: Some(200.0),
    state_layout: STATE_LAYOUT,
    parallel_min_envs: BOX2D_PARALLEL_MIN_ENVS,
};

/// `LunarLanderContinuous-v3`: `[main throttle, lateral]`, each in [-1, 1].
pub static LUNAR_LANDER_CONTINUOUS_SPEC: EnvSpec = EnvSpec {
    id: "LunarLanderContinuous-v3",
    aliases: &["LunarLanderContinuous-v2"],
    observation_space: OBSERVATION_SPACE,
    action_space: Space::Box {
        low: &[-1.0, -1.0],
        high: &[1.0, 1.0],
    },
    max_episode_steps: 1000,
    reward_threshold: Some(200.0),
    state_layout: STATE_LAYOUT,
    parallel_min_envs: BOX2D_PARALLEL_MIN_ENVS,
};

/// The lunar lander: one struct for both action spaces, like gymnasium's `continuous` flag.
pub struct LunarLander {
    spec: &'static EnvSpec,
    options: LunarLanderOptions,
    rng: Rng,
    world: LanderWorld,
    wind_idx: i64,
    torque_idx: i64,
    prev_shaping: Option<f64>,
    obs: [f32; 8],
    /// Scripted dispersions still to replay, last one first.
    scripted_dispersions: Vec<[f64; 2]>,
}

const MAIN_ENGINE_POWER: f64 = 13.0;
const SIDE_ENGINE_POWER: f64 = 0.6;
/// Bound of each component of the initial force on the hull.
const INITIAL_RANDOM: f64 = 1000.0;
const SIDE_ENGINE_HEIGHT: f64 = 14.0;
const SIDE_ENGINE_AWAY: f64 = 12.0;
const MAIN_ENGINE_Y_LOCATION: f64 = 4.0;

const OBSERVATION_SPACE: Space = Space::Box {
    // gymnasium's bounds cast to float32; 6.2831855 is `np.float32(2 * math.pi)`.
    low: &[-2.5, -2.5, -10.0, -10.0, -6.283_185_5, -10.0, -0.0, -0.0],
    high: &[2.5, 2.5, 10.0, 10.0, 6.283_185_5, 10.0, 1.0, 1.0],
};

/// A step costs ~11 µs (Box2D), so a batch repays a split across rayon's pool from 4
/// environments on: 1.2× with 4, 1.6× with 16, 1.8× with 64 on 2 cores (`VecEnv`). With 2, the
/// hand-over to the pool cost more than it gained (0.87×).
const BOX2D_PARALLEL_MIN_ENVS: usize = 4;

const STATE_LAYOUT: &[&str] = &[
    "lander_x",
    "lander_y",
    "lander_vx",
    "lander_vy",
    "lander_angle",
    "lander_angular_velocity",
    "leg0_contact",
    "leg1_contact",
];

impl LunarLander {
    /// `LunarLander-v3` with `options`, reset with seed 0.
    pub fn discrete(options: LunarLanderOptions) -> Result<LunarLander, Error> {
        LunarLander::with_spec(&LUNAR_LANDER_SPEC, options)
    }

    /// `LunarLanderContinuous-v3` with `options`, reset with seed 0.
    pub fn continuous(options: LunarLanderOptions) -> Result<LunarLander, Error> {
        LunarLander::with_spec(&LUNAR_LANDER_CONTINUOUS_SPEC, options)
    }

    pub fn options(&self) -> &LunarLanderOptions {
        &self.options
    }

    /// Starts an episode from given draws instead of the generator's (see [`EpisodeDraws`]).
    pub fn reset_with(&mut self, draws: &EpisodeDraws) {
        self.start(draws.clone());
    }

    fn with_spec(
        spec: &'static EnvSpec,
        options: LunarLanderOptions,
    ) -> Result<LunarLander, Error> {
        options.validate(spec.id)?;
        let mut env = LunarLander {
            spec,
            options,
            rng: Rng::new(0),
            world: LanderWorld::new(options.gravity, &[HELIPAD_Y; CHUNKS + 1]),
            wind_idx: 0,
            torque_idx: 0,
            prev_shaping: None,
            obs: [0.0; 8],
            scripted_dispersions: Vec::new(),
        };
        env.reset(Some(0));
        Ok(env)
    }

    /// gymnasium's `reset` after seeding: a new world, the initial push, the wind phase, and
    /// one no-op step that sets the first observation and the shaping baseline.
    fn start(&mut self, draws: EpisodeDraws) {
        self.world = LanderWorld::new(self.options.gravity, &draws.terrain_heights);
        self.world
            .apply_force_to_center(draws.initial_force[0], draws.initial_force[1]);
        [self.wind_idx, self.torque_idx] = draws.wind_indices;
        self.scripted_dispersions = draws.dispersions;
        self.scripted_dispersions.reverse();
        self.prev_shaping = None;
        self.advance(Engines::default());
    }

    /// gymnasium's `step` after action decoding: wind, engines, physics, observation, reward.
    fn advance(&mut self, engines: Engines) -> Transition {
        let legs_touch = self.world.leg_contacts();
        if self.options.enable_wind && !(legs_touch[0] || legs_touch[1]) {
            // tanh(sin(2 k x) + sin(pi k x)) with k = 0.01 never repeats.
            let wave = |idx: i64| {
                let x = idx as f64;
                ((0.02 * x).sin() + (std::f64::consts::PI * 0.01 * x).sin()).tanh()
            };
            let wind_mag = wave(self.wind_idx) * self.options.wind_power;
            self.wind_idx += 1;
            self.world.apply_force_to_center(wind_mag, 0.0);
            let torque_mag = wave(self.torque_idx) * self.options.turbulence_power;
            self.torque_idx += 1;
            self.world.apply_torque(torque_mag);
        }

        let lander = self.world.lander();
        let angle = lander.angle as f64;
        let tip = (angle.sin(), angle.cos());
        let side = (-tip.1, tip.0);
        let dispersion = self.next_dispersion();
        let (x, y) = (lander.x as f64, lander.y as f64);

        if engines.main > 0.0 {
            // The main engine sits 4 px below the centre, dispersed by up to ±2 px.
            let ox = tip.0 * (MAIN_ENGINE_Y_LOCATION / SCALE + 2.0 * dispersion[0])
                + side.0 * dispersion[1];
            let oy = -tip.1 * (MAIN_ENGINE_Y_LOCATION / SCALE + 2.0 * dispersion[0])
                - side.1 * dispersion[1];
            let impulse = (
                -ox * MAIN_ENGINE_POWER * engines.main,
                -oy * MAIN_ENGINE_POWER * engines.main,
            );
            self.world.apply_linear_impulse(impulse, (x + ox, y + oy));
        }
        if engines.side > 0.0 {
            let lever = 3.0 * dispersion[1] + engines.direction * SIDE_ENGINE_AWAY / SCALE;
            let ox = tip.0 * dispersion[0] + side.0 * lever;
            let oy = -tip.1 * dispersion[0] - side.1 * lever;
            // gymnasium uses 17 here, not SIDE_ENGINE_HEIGHT (14), for the horizontal offset;
            // the resulting orientation-dependent torque is part of the task.
            let point = (
                x + ox - tip.0 * 17.0 / SCALE,
                y + oy + tip.1 * SIDE_ENGINE_HEIGHT / SCALE,
            );
            let impulse = (
                -ox * SIDE_ENGINE_POWER * engines.side,
                -oy * SIDE_ENGINE_POWER * engines.side,
            );
            self.world.apply_linear_impulse(impulse, point);
        }

        self.world.step();

        let lander = self.world.lander();
        let legs_touch = self.world.leg_contacts();
        let state = [
            (lander.x as f64 - VIEWPORT_W / SCALE / 2.0) / (VIEWPORT_W / SCALE / 2.0),
            (lander.y as f64 - (HELIPAD_Y + LEG_DOWN / SCALE)) / (VIEWPORT_H / SCALE / 2.0),
            lander.vx as f64 * (VIEWPORT_W / SCALE / 2.0) / FPS,
            lander.vy as f64 * (VIEWPORT_H / SCALE / 2.0) / FPS,
            lander.angle as f64,
            20.0 * lander.angular_velocity as f64 / FPS,
            if legs_touch[0] { 1.0 } else { 0.0 },
            if legs_touch[1] { 1.0 } else { 0.0 },
        ];
        self.obs = state.map(|v| v as f32);

        // Ten points per leg on the ground: losing contact again after landing costs them.
        let shaping = -100.0 * (state[0] * state[0] + state[1] * state[1]).sqrt()
            - 100.0 * (state[2] * state[2] + state[3] * state[3]).sqrt()
            - 100.0 * state[4].abs()
            + 10.0 * state[6]
            + 10.0 * state[7];
        let mut reward = match self.prev_shaping {
            Some(prev_shaping) => shaping - prev_shaping,
            None => 0.0,
        };
        self.prev_shaping = Some(shaping);
        // Fuel: about -30 for a heuristic landing.
        reward -= engines.main * 0.30;
        reward -= engines.side * 0.03;

        let mut terminated = false;
        if self.world.hull_touched_ground() || state[0].abs() >= 1.0 {
            terminated = true;
            reward = -100.0;
        }
        if !lander.awake {
            terminated = true;
            reward = 100.0;
        }
        Transition { reward, terminated }
    }

    /// The two raw dispersions of gymnasium's `np_random.uniform(-1, 1) / SCALE`.
    fn next_dispersion(&mut self) -> [f64; 2] {
        let raw = match self.scripted_dispersions.pop() {
            Some(raw) => raw,
            None => [self.rng.uniform(-1.0, 1.0), self.rng.uniform(-1.0, 1.0)],
        };
        raw.map(|u| u / SCALE)
    }
}

/// Engine powers decoded from an action: 0 means off.
#[derive(Debug, Default, Clone, Copy)]
struct Engines {
    /// 1.0 discrete, 0.5..=1.0 continuous.
    main: f64,
    /// 1.0 discrete, 0.5..=1.0 continuous.
    side: f64,
    /// -1 fires the left engine (pushing right), +1 the right one.
    direction: f64,
}

impl Engines {
    fn decode(action: Action<'_>) -> Engines {
        match action {
            Action::Discrete(2) => Engines {
                main: 1.0,
                ..Engines::default()
            },
            Action::Discrete(a @ (1 | 3)) => Engines {
                side: 1.0,
                direction: a as f64 - 2.0,
                main: 0.0,
            },
            Action::Discrete(_) => Engines::default(),
            Action::Continuous(values) => {
                // `np.clip(action, -1, +1).astype(np.float64)`: clipped in float32 first.
                let [throttle, lateral] = [values[0], values[1]].map(|v| v.clamp(-1.0, 1.0) as f64);
                let mut engines = Engines::default();
                if throttle > 0.0 {
                    engines.main = (throttle.clamp(0.0, 1.0) + 1.0) * 0.5;
                }
                if lateral.abs() > 0.5 {
                    engines.direction = lateral.signum();
                    engines.side = lateral.abs().clamp(0.5, 1.0);
                }
                engines
            }
        }
    }
}

impl Default for LunarLander {
    /// `LunarLander-v3` with gymnasium's default options, reset with seed 0.
    fn default() -> LunarLander {
        LunarLander::discrete(LunarLanderOptions::default())
            .expect("gymnasium's defaults are valid")
    }
}

impl std::fmt::Debug for LunarLander {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LunarLander")
            .field("id", &self.spec.id)
            .field("options", &self.options)
            .field("obs", &self.obs)
            .finish_non_exhaustive()
    }
}

impl Env for LunarLander {
    fn spec(&self) -> &'static EnvSpec {
        self.spec
    }

    fn reset(&mut self, seed: Option<u64>) {
        if let Some(seed) = seed {
            self.rng = Rng::new(seed);
        }
        let draws = EpisodeDraws::sample(&mut self.rng, self.options.enable_wind);
        self.start(draws);
    }

    fn step(&mut self, action: Action<'_>) -> Transition {
        debug_assert!(self.spec.action_space.check_action(action).is_ok());
        self.advance(Engines::decode(action))
    }

    fn observe(&self, obs: &mut [f32]) {
        obs.copy_from_slice(&self.obs);
    }

    fn state(&self) -> Vec<f64> {
        let lander = self.world.lander();
        let legs_touch = self.world.leg_contacts();
        let state = [
            lander.x,
            lander.y,
            lander.vx,
            lander.vy,
            lander.angle,
            lander.angular_velocity,
        ];
        let contacts = legs_touch.map(|touch| if touch { 1.0 } else { 0.0 });
        state.iter().map(|&v| v as f64).chain(contacts).collect()
    }

    fn set_state(&mut self, _state: &[f64]) -> Result<(), Error> {
        Err(Error::StateNotSettable {
            env: self.spec.id,
            why: "its Box2D world (terrain, hull, both legs, joints and contact caches) is far \
                  more than the observation; start episodes with reset(seed) instead",
        })
    }
}
