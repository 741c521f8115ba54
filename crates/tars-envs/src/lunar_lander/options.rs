//! gymnasium's `LunarLander(...)` options with their validation, and the random draws of one
//! episode in the order gymnasium 1.x `gymnasium/envs/box2d/lunar_lander.py` (`reset`, `step`)
//! makes them.

use super::INITIAL_RANDOM;
use super::physics::{CHUNKS, SCALE, VIEWPORT_H};
use crate::{Error, Rng};

/// gymnasium's keyword arguments of `LunarLander(...)` besides `continuous`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LunarLanderOptions {
    /// Gravity in m/s², in the open interval (-12, 0).
    pub gravity: f64,
    /// Whether a non-periodic wind and turbulence push the lander while it is airborne.
    pub enable_wind: bool,
    /// Peak wind force, in [0, 20].
    pub wind_power: f64,
    /// Peak turbulence torque, in [0, 2].
    pub turbulence_power: f64,
}

impl Default for LunarLanderOptions {
    /// gymnasium's defaults.
    fn default() -> LunarLanderOptions {
        LunarLanderOptions {
            gravity: -10.0,
            enable_wind: false,
            wind_power: 15.0,
            turbulence_power: 1.5,
        }
    }
}

impl LunarLanderOptions {
    /// Checks every option against gymnasium's range. gymnasium asserts on `gravity` and only
    /// warns for `wind_power` and `turbulence_power`; here all three are errors, since a value
    /// outside the recommended range is almost always a typo.
    pub fn validate(&self, env: &'static str) -> Result<(), Error> {
        let out_of_range = |name, value, expected| Error::OptionOutOfRange {
            env,
            name,
            value,
            expected,
        };
        if !(-12.0 < self.gravity && self.gravity < 0.0) {
            return Err(out_of_range(
                "gravity",
                self.gravity,
                "between -12 and 0, exclusive",
            ));
        }
        if !(0.0..=20.0).contains(&self.wind_power) {
            return Err(out_of_range(
                "wind_power",
                self.wind_power,
                "between 0 and 20, inclusive",
            ));
        }
        if !(0.0..=2.0).contains(&self.turbulence_power) {
            return Err(out_of_range(
                "turbulence_power",
                self.turbulence_power,
                "between 0 and 2, inclusive",
            ));
        }
        Ok(())
    }
}

/// The random draws of one episode, in the order gymnasium's `reset` and `step` make them.
///
/// [`LunarLander::reset_with`](crate::LunarLander::reset_with) replays them instead of drawing, so a test can start T.A.R.S.
/// and gymnasium from the same terrain and push (for example flat terrain and no push).
#[derive(Debug, Clone, PartialEq)]
pub struct EpisodeDraws {
    /// The 12 raw terrain heights, `uniform(0, H / 2)`, before the helipad and smoothing.
    pub terrain_heights: [f64; CHUNKS + 1],
    /// The initial force on the hull, `uniform(-1000, 1000)` twice.
    pub initial_force: [f64; 2],
    /// `(wind_idx, torque_idx)`, `integers(-9999, 9999)` twice; used only with wind enabled.
    pub wind_indices: [i64; 2],
    /// Raw engine dispersions, `uniform(-1, 1)` twice per step (reset's own step first);
    /// steps past the end of this list draw from the generator again.
    pub dispersions: Vec<[f64; 2]>,
}

impl EpisodeDraws {
    /// Draws a fresh episode from `rng` as gymnasium's `reset` does (dispersions are drawn
    /// later, step by step).
    pub(super) fn sample(rng: &mut Rng, enable_wind: bool) -> EpisodeDraws {
        let terrain_heights = std::array::from_fn(|_| rng.uniform(0.0, VIEWPORT_H / SCALE / 2.0));
        let initial_force = [
            rng.uniform(-INITIAL_RANDOM, INITIAL_RANDOM),
            rng.uniform(-INITIAL_RANDOM, INITIAL_RANDOM),
        ];
        let mut wind_indices = [0; 2];
        if enable_wind {
            wind_indices = [0; 2].map(|_| rng.below(2 * 9999) as i64 - 9999);
        }
        EpisodeDraws {
            terrain_heights,
            initial_force,
            wind_indices,
            dispersions: Vec::new(),
        }
    }
}
