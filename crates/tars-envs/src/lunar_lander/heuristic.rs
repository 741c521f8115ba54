//! gymnasium's hand-written LunarLander controller, `heuristic(env, s)` in gymnasium 1.x
//! `gymnasium/envs/box2d/lunar_lander.py`, for both action spaces.
//!
//! gymnasium evaluates it on the float32 observation with NumPy 2 promotion rules, where a
//! Python float meeting a `np.float32` stays float32; so this port computes in `f32` with
//! `f32` constants, which makes its choices identical to gymnasium's for the same observation.

use crate::{Action, EnvSpec};

/// An action chosen by [`heuristic`], owning its values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum HeuristicAction {
    Discrete(usize),
    Continuous([f32; 2]),
}

impl HeuristicAction {
    /// The action in the form [`crate::Env::step`] takes.
    pub fn as_action(&self) -> Action<'_> {
        match self {
            HeuristicAction::Discrete(action) => Action::Discrete(*action),
            HeuristicAction::Continuous(values) => Action::Continuous(values),
        }
    }
}

/// gymnasium's `heuristic(env, s)`: the action for observation `obs` (8 floats), discrete or
/// continuous as `spec`'s action space is.
pub fn heuristic(spec: &EnvSpec, obs: &[f32]) -> HeuristicAction {
    if spec.action_space.is_discrete() {
        HeuristicAction::Discrete(heuristic_discrete(obs))
    } else {
        HeuristicAction::Continuous(heuristic_continuous(obs))
    }
}

/// The heuristic for `LunarLander-v3`: 0 no-op, 1 left engine, 2 main engine, 3 right engine.
pub fn heuristic_discrete(obs: &[f32]) -> usize {
    let (angle_todo, hover_todo) = todo(obs);
    if hover_todo > angle_todo.abs() && hover_todo > 0.05 {
        2
    } else if angle_todo < -0.05 {
        3
    } else if angle_todo > 0.05 {
        1
    } else {
        0
    }
}

/// The heuristic for `LunarLanderContinuous-v3`: `[main throttle, lateral]`, each in [-1, 1].
pub fn heuristic_continuous(obs: &[f32]) -> [f32; 2] {
    let (angle_todo, hover_todo) = todo(obs);
    [
        (hover_todo * 20.0 - 1.0).clamp(-1.0, 1.0),
        (-angle_todo * 20.0).clamp(-1.0, 1.0),
    ]
}

/// How much to turn and how much to climb: `(angle_todo, hover_todo)`.
fn todo(s: &[f32]) -> (f32, f32) {
    debug_assert_eq!(s.len(), 8, "LunarLander observations have 8 values");
    // Point towards the centre, but never more than 0.4 rad (22 degrees).
    let angle_targ = (s[0] * 0.5 + s[2] * 1.0).clamp(-0.4, 0.4);
    // The target height is proportional to the horizontal offset.
    let hover_targ = 0.55 * s[0].abs();
    let mut angle_todo = (angle_targ - s[4]) * 0.5 - s[5] * 1.0;
    let mut hover_todo = (hover_targ - s[1]) * 0.5 - s[3] * 0.5;
    if s[6] != 0.0 || s[7] != 0.0 {
        // After touchdown only slow the fall.
        angle_todo = 0.0;
        hover_todo = -s[3] * 0.5;
    }
    (angle_todo, hover_todo)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_falling_lander_fires_its_main_engine() {
        let falling = [0.0, 0.5, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0];
        assert_eq!(heuristic_discrete(&falling), 2);
        assert_eq!(heuristic_continuous(&falling), [1.0, 0.0]);
    }

    #[test]
    fn a_tilted_lander_turns_back_and_a_landed_one_rests() {
        // Tilted left (positive angle) and rotating further: fire the right engine (3).
        let tilted = [0.0, -0.2, 0.0, 0.0, 0.3, 0.1, 0.0, 0.0];
        assert_eq!(heuristic_discrete(&tilted), 3);
        assert!(heuristic_continuous(&tilted)[1] > 0.5);
        let landed = [0.0, 0.0, 0.0, 0.0, 0.3, 0.1, 1.0, 1.0];
        assert_eq!(heuristic_discrete(&landed), 0);
    }
}
