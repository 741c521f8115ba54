//! What a run costs, estimated from its configuration before anything is allocated, and the
//! budget it must fit in.
//!
//! [`crate::train::plan`] states a run's [`Cost`]: the bytes of its largest allocations
//! (networks with their gradients, optimiser moments and target copies; the replay buffer or
//! the rollout; one minibatch's activations) and its environment steps. A caller compares it
//! with a [`Budget`] and refuses what does not fit before queueing it; the big buffers are then
//! reserved fallibly ([`try_vec`]), so even a budget set too high ends a run with an error
//! instead of aborting the process.

use crate::Error;

/// A run's estimated cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Cost {
    /// Bytes of the run's networks, optimiser state, replay/rollout storage and activations.
    pub memory_bytes: u64,
    /// Environment steps: training steps plus evaluation episodes × their step limit.
    pub env_steps: u64,
}

impl Cost {
    /// Two parts run one after the other: memory is the larger, steps add up.
    pub fn then(self, other: Cost) -> Cost {
        Cost {
            memory_bytes: self.memory_bytes.max(other.memory_bytes),
            env_steps: self.env_steps.saturating_add(other.env_steps),
        }
    }
}

/// The most one job may use. The names of the configuration keys that raise each limit are
/// part of the refusal, so a caller knows what to change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    pub memory_bytes: u64,
    pub env_steps: u64,
}

impl Budget {
    /// The server's defaults: 4 GiB keeps four concurrent jobs of an embedded server within a
    /// 24 GB machine with room for the rest; 20 million steps is twenty times the largest RL Zoo
    /// budget here (1M) and about half an hour of the slowest algorithm on two cores.
    pub const DEFAULT: Budget = Budget {
        memory_bytes: 4 << 30,
        env_steps: 20_000_000,
    };

    /// The first limit `cost` exceeds, if any; `what` names the work ("DQN on CartPole-v1").
    pub fn check(&self, what: &str, cost: Cost) -> Result<(), OverBudget> {
        let over = |resource, estimate, budget| OverBudget {
            what: what.to_string(),
            resource,
            estimate,
            budget,
        };
        if cost.memory_bytes > self.memory_bytes {
            return Err(over(Resource::Memory, cost.memory_bytes, self.memory_bytes));
        }
        if cost.env_steps > self.env_steps {
            return Err(over(Resource::EnvSteps, cost.env_steps, self.env_steps));
        }
        Ok(())
    }

    /// Checks a study of `trials` trials, each costing at most `trial`: one trial against this
    /// job budget, all of them against `study_env_steps`.
    pub fn check_study(
        &self,
        trial: Cost,
        trials: u64,
        study_env_steps: u64,
    ) -> Result<(), OverBudget> {
        self.check("one trial of this study", trial)?;
        let total = trial.env_steps.saturating_mul(trials);
        if total > study_env_steps {
            return Err(OverBudget {
                what: format!("a study of {trials} trials"),
                resource: Resource::StudyEnvSteps,
                estimate: total,
                budget: study_env_steps,
            });
        }
        Ok(())
    }
}

/// A budgeted resource, with the configuration key that sets its limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    Memory,
    EnvSteps,
    /// Environment steps of a whole AutoML study (its trials together).
    StudyEnvSteps,
}

impl Resource {
    /// The configuration key of the limit.
    pub fn key(self) -> &'static str {
        match self {
            Resource::Memory => "max_job_memory_bytes",
            Resource::EnvSteps => "max_job_env_steps",
            Resource::StudyEnvSteps => "max_study_env_steps",
        }
    }

    fn describe(self, n: u64) -> String {
        match self {
            Resource::Memory => format!("{} of memory", human_bytes(n)),
            Resource::EnvSteps | Resource::StudyEnvSteps => {
                format!("{} environment steps", thousands(n))
            }
        }
    }
}

/// A run refused because its estimate exceeds the budget.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{what} needs an estimated {}, over the budget of {}; lower its size or raise {}",
    resource.describe(*estimate), resource.describe(*budget), resource.key()
)]
pub struct OverBudget {
    pub what: String,
    pub resource: Resource,
    pub estimate: u64,
    pub budget: u64,
}

/// `1.5 GiB (1610612736 bytes)`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["bytes", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} bytes")
    } else {
        format!("{value:.1} {} ({n} bytes)", UNITS[unit])
    }
}

fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Parameters of an MLP `input → hidden… → output` (weights and biases).
pub(crate) fn mlp_params(input: usize, hidden: &[usize], output: usize) -> u128 {
    let mut params = 0u128;
    let mut from = input as u128;
    for &to in hidden.iter().chain(std::iter::once(&output)) {
        params += from * to as u128 + to as u128;
        from = to as u128;
    }
    params
}

/// Bytes a network set needs: `params` f32 values in `copies` copies (weights, gradients,
/// optimiser moments, targets) plus a minibatch of `batch` rows through layers of `widths`
/// (forward outputs and their gradients).
pub(crate) fn network_bytes(params: u128, copies: u128, batch: usize, widths: u128) -> u128 {
    4 * (params * copies + 2 * batch as u128 * widths)
}

/// Bytes of a replay buffer that will hold `transitions` of `obs_dim` and `action_dim` floats
/// (observation, next observation, action, reward, done).
pub(crate) fn replay_bytes(transitions: u128, obs_dim: usize, action_dim: usize) -> u128 {
    4 * transitions * (2 * obs_dim as u128 + action_dim as u128 + 2)
}

/// Bytes of an on-policy rollout of `rows` steps (observations, actions and the six per-step
/// floats: reward, start flag, value, log-probability, advantage, return; plus the shuffle).
pub(crate) fn rollout_bytes(rows: u128, obs_dim: usize, action_width: usize) -> u128 {
    4 * rows * (obs_dim as u128 + action_width as u128 + 6) + 8 * rows
}

/// Saturates an estimate to `u64`.
pub(crate) fn clamp(bytes: u128) -> u64 {
    u64::try_from(bytes).unwrap_or(u64::MAX)
}

/// `vec![value; len]`, reserved fallibly: a length no allocator can satisfy is an error naming
/// `what`, never an abort of the process.
pub(crate) fn try_vec<T: Clone>(len: usize, value: T, what: &str) -> Result<Vec<T>, Error> {
    let mut vec = Vec::new();
    try_reserve(&mut vec, len, what)?;
    vec.resize(len, value);
    Ok(vec)
}

/// Reserves room for exactly `additional` more elements of `vec`, fallibly (see [`try_vec`]).
pub(crate) fn try_reserve<T>(vec: &mut Vec<T>, additional: usize, what: &str) -> Result<(), Error> {
    vec.try_reserve_exact(additional)
        .map_err(|_| Error::OutOfMemory {
            what: what.to_string(),
            bytes: clamp(additional as u128 * std::mem::size_of::<T>() as u128),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_states_the_estimate_the_budget_and_the_key() {
        let budget = Budget {
            memory_bytes: 1 << 30,
            env_steps: 1_000_000,
        };
        let cost = Cost {
            memory_bytes: 3 << 30,
            env_steps: 10,
        };
        let err = budget.check("DQN on CartPole-v1", cost).unwrap_err();
        assert_eq!(err.resource, Resource::Memory);
        assert_eq!(
            err.to_string(),
            "DQN on CartPole-v1 needs an estimated 3.0 GiB (3221225472 bytes) of memory, over the \
             budget of 1.0 GiB (1073741824 bytes) of memory; lower its size or raise \
             max_job_memory_bytes"
        );
        let steps = Cost {
            memory_bytes: 1,
            env_steps: 12_345_678,
        };
        let err = budget.check("PPO", steps).unwrap_err();
        assert!(
            err.to_string().contains("12,345,678 environment steps"),
            "{err}"
        );
        assert!(err.to_string().contains("max_job_env_steps"), "{err}");
        assert!(budget.check("PPO", Cost::default()).is_ok());
    }

    #[test]
    fn mlp_parameters_count_weights_and_biases() {
        // 4 → 64 → 64 → 2: (4·64 + 64) + (64·64 + 64) + (64·2 + 2) = 4610.
        assert_eq!(mlp_params(4, &[64, 64], 2), 4_610);
        assert_eq!(mlp_params(3, &[], 1), 4);
    }

    #[test]
    fn an_impossible_allocation_is_an_error_not_an_abort() {
        let err = try_vec(usize::MAX / 8, 0u64, "the replay buffer").unwrap_err();
        assert!(
            err.to_string().contains("could not allocate") && err.to_string().contains("replay"),
            "{err}"
        );
        assert_eq!(try_vec(3, 1u8, "x").unwrap(), vec![1, 1, 1]);
    }
}
