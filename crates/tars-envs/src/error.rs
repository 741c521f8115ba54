//! The one error type of `tars-envs`: everything a caller can get wrong, with what is valid.

/// Errors a caller of this crate can cause.
#[derive(Debug, thiserror::Error, PartialEq)]
#[non_exhaustive]
pub enum Error {
    /// The id names no environment.
    #[error("unknown environment '{id}'{hint}; valid ids: {valid}")]
    UnknownEnv {
        id: String,
        /// ` (did you mean 'CartPole-v1'?)` for a near miss, else empty.
        hint: String,
        valid: String,
    },
    /// A state vector of the wrong length.
    #[error("{env} state must have {expected} values ({layout}), got {found}")]
    StateLength {
        env: &'static str,
        expected: usize,
        found: usize,
        layout: String,
    },
    /// A state vector containing NaN or infinity.
    #[error("{env} state[{index}] is {value}; every state value must be finite")]
    NonFiniteState {
        env: &'static str,
        index: usize,
        value: f64,
    },
    /// A discrete action outside `0..n`.
    #[error("action {action} is out of range; valid actions are 0..{n} (0 to {max})", max = n - 1)]
    ActionOutOfRange { action: i64, n: usize },
    /// An action of the wrong kind or length for the action space.
    #[error("wrong action shape: expected {expected}, got {found}")]
    ActionShape { expected: String, found: String },
    /// A continuous action containing NaN or infinity.
    #[error("action[{index}] is {value}; every action value must be finite")]
    NonFiniteAction { index: usize, value: f32 },
    /// The environment cannot have its state set from outside.
    #[error("{env} does not support setting its state: {why}")]
    StateNotSettable {
        env: &'static str,
        why: &'static str,
    },
    /// A `VecEnv` needs at least one environment.
    #[error("num_envs must be at least 1, got {0}")]
    NoEnvs(usize),
    /// An environment option outside the range the environment accepts.
    #[error("{env} option {name} is {value}; it must be {expected}")]
    OptionOutOfRange {
        env: &'static str,
        name: &'static str,
        value: f64,
        expected: &'static str,
    },
}

/// ` (did you mean 'X'?)` when one of `candidates` is a near miss of `name` (a typo: at most
/// one edit per three characters, case aside), else an empty string.
pub fn did_you_mean<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> String {
    let name = name.to_lowercase();
    let allowed = (name.chars().count() / 3).clamp(1, 3);
    candidates
        .into_iter()
        .map(|candidate| {
            (
                strsim::damerau_levenshtein(&name, &candidate.to_lowercase()),
                candidate,
            )
        })
        .filter(|(distance, _)| *distance <= allowed)
        .min_by_key(|(distance, _)| *distance)
        .map_or(String::new(), |(_, candidate)| {
            format!(" (did you mean '{candidate}'?)")
        })
}

#[cfg(test)]
mod tests {
    use super::did_you_mean;

    #[test]
    fn near_misses_are_suggested_and_others_are_not() {
        let envs = ["CartPole-v1", "Acrobot-v1", "Pendulum-v1"];
        assert_eq!(
            did_you_mean("cartpole-v2", envs),
            " (did you mean 'CartPole-v1'?)"
        );
        assert_eq!(
            did_you_mean("Acrobt-v1", envs),
            " (did you mean 'Acrobot-v1'?)"
        );
        assert_eq!(did_you_mean("Humanoid-v4", envs), "");
        assert_eq!(
            did_you_mean("lerning_rate", ["learning_rate", "gamma"]),
            " (did you mean 'learning_rate'?)"
        );
        assert_eq!(did_you_mean("sac", ["dqn", "ppo", "td3"]), "");
    }
}
