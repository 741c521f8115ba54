//! Observation and action spaces, with gymnasium's float32 bounds.

use crate::{Action, Error};

/// A gymnasium space: `Discrete(n)` or a float32 `Box` with per-dimension bounds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Space {
    Discrete {
        n: usize,
    },
    Box {
        low: &'static [f32],
        high: &'static [f32],
    },
}

impl Space {
    /// Number of floats in one element (1 for `Discrete`, as an index).
    pub fn dim(&self) -> usize {
        match self {
            Space::Discrete { .. } => 1,
            Space::Box { low, .. } => low.len(),
        }
    }

    pub fn is_discrete(&self) -> bool {
        matches!(self, Space::Discrete { .. })
    }

    /// Checks that an action belongs to this space's kind and shape. Continuous actions
    /// outside the bounds are accepted (every gymnasium env clips them itself), but they must
    /// be finite.
    pub fn check_action(&self, action: Action<'_>) -> Result<(), Error> {
        match (self, action) {
            (Space::Discrete { n }, Action::Discrete(a)) if a < *n => Ok(()),
            (Space::Discrete { n }, Action::Discrete(a)) => Err(Error::ActionOutOfRange {
                action: a as i64,
                n: *n,
            }),
            (Space::Box { low, .. }, Action::Continuous(values)) if values.len() == low.len() => {
                match values.iter().position(|v| !v.is_finite()) {
                    Some(index) => Err(Error::NonFiniteAction {
                        index,
                        value: values[index],
                    }),
                    None => Ok(()),
                }
            }
            (expected, found) => Err(Error::ActionShape {
                expected: expected.describe(),
                found: match found {
                    Action::Discrete(a) => format!("integer {a}"),
                    Action::Continuous(v) => format!("array of {} floats", v.len()),
                },
            }),
        }
    }

    /// A short description such as `Discrete(2)` or `Box(-2.0, 2.0, (1,))`.
    pub fn describe(&self) -> String {
        match self {
            Space::Discrete { n } => format!("Discrete({n})"),
            Space::Box { low, high } => {
                let same = |v: &[f32]| v.iter().all(|x| *x == v[0]);
                if same(low) && same(high) {
                    format!("Box({:?}, {:?}, ({},))", low[0], high[0], low.len())
                } else {
                    format!("Box({low:?}, {high:?})")
                }
            }
        }
    }
}
