//! Parameter distributions with Optuna's semantics: `float` (low, high, log, step), `int`
//! (low, high, log, step) and `categorical` (JSON values). Each has an *internal* numeric
//! representation the samplers work on (the value itself for numbers, the choice index for
//! categoricals) and an *external* JSON value that goes into the trial and the agent's
//! hyperparameters (Optuna's `to_internal_repr` / `to_external_repr`).

use crate::Error;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::fmt;

/// One parameter's domain. JSON: `{"type": "float", "low": 1e-5, "high": 1e-2, "log": true}`,
/// `{"type": "int", "low": 1, "high": 8, "step": 1}`, `{"type": "categorical", "choices": [..]}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum Distribution {
    Float {
        low: f64,
        high: f64,
        #[serde(default, skip_serializing_if = "is_false")]
        log: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        step: Option<f64>,
    },
    Int {
        low: i64,
        high: i64,
        #[serde(default, skip_serializing_if = "is_false")]
        log: bool,
        #[serde(default = "one", skip_serializing_if = "is_one")]
        step: i64,
    },
    Categorical {
        choices: Vec<Value>,
    },
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn one() -> i64 {
    1
}

fn is_one(step: &i64) -> bool {
    *step == 1
}

/// Relative tolerance for "step divides the range" and lattice checks on floats.
const LATTICE_TOLERANCE: f64 = 1e-9;

impl Distribution {
    /// A uniform float on `[low, high]`.
    pub fn float(low: f64, high: f64) -> Distribution {
        Distribution::Float {
            low,
            high,
            log: false,
            step: None,
        }
    }

    /// A log-uniform float on `[low, high]`.
    pub fn log_float(low: f64, high: f64) -> Distribution {
        Distribution::Float {
            low,
            high,
            log: true,
            step: None,
        }
    }

    /// An integer on `[low, high]` with step 1.
    pub fn int(low: i64, high: i64) -> Distribution {
        Distribution::Int {
            low,
            high,
            log: false,
            step: 1,
        }
    }

    /// A choice among JSON values.
    pub fn categorical(choices: impl IntoIterator<Item = Value>) -> Distribution {
        Distribution::Categorical {
            choices: choices.into_iter().collect(),
        }
    }

    /// Checks the distribution of parameter `name`: ranges non-empty and ordered, log ranges
    /// positive, steps positive and dividing the range, choices present and distinct.
    pub fn validate(&self, name: &str) -> Result<(), Error> {
        let name_owned = || name.to_string();
        match *self {
            Distribution::Float {
                low,
                high,
                log,
                step,
            } => {
                if !low.is_finite() || !high.is_finite() || step.is_some_and(|s| !s.is_finite()) {
                    return Err(Error::NotFinite { name: name_owned() });
                }
                check_range(name, low, high, &low.to_string(), &high.to_string())?;
                if log && step.is_some() {
                    return Err(Error::LogWithStep { name: name_owned() });
                }
                if log && low <= 0.0 {
                    return Err(Error::LogNonPositive {
                        name: name_owned(),
                        low: low.to_string(),
                    });
                }
                if let Some(step) = step {
                    if step <= 0.0 {
                        return Err(Error::StepNotPositive {
                            name: name_owned(),
                            step: step.to_string(),
                        });
                    }
                    let n_steps = (high - low) / step;
                    if (n_steps - n_steps.round()).abs() > LATTICE_TOLERANCE * n_steps.max(1.0) {
                        return Err(Error::StepNotDividing {
                            name: name_owned(),
                            low: low.to_string(),
                            high: high.to_string(),
                            step: step.to_string(),
                        });
                    }
                }
                Ok(())
            }
            Distribution::Int {
                low,
                high,
                log,
                step,
            } => {
                check_range(
                    name,
                    low as f64,
                    high as f64,
                    &low.to_string(),
                    &high.to_string(),
                )?;
                if step <= 0 {
                    return Err(Error::StepNotPositive {
                        name: name_owned(),
                        step: step.to_string(),
                    });
                }
                if log && low <= 0 {
                    return Err(Error::LogNonPositive {
                        name: name_owned(),
                        low: low.to_string(),
                    });
                }
                if log && step != 1 {
                    return Err(Error::InvalidSetting {
                        name: "step",
                        value: step.to_string(),
                        expected: format!("1 for the log-scale int parameter {name} (as Optuna)"),
                    });
                }
                if (high - low) % step != 0 {
                    return Err(Error::StepNotDividing {
                        name: name_owned(),
                        low: low.to_string(),
                        high: high.to_string(),
                        step: step.to_string(),
                    });
                }
                Ok(())
            }
            Distribution::Categorical { ref choices } => {
                if choices.is_empty() {
                    return Err(Error::BadChoices {
                        name: name_owned(),
                        what: "are empty; list at least one value".to_string(),
                    });
                }
                for (idx, choice) in choices.iter().enumerate() {
                    if choices[..idx].contains(choice) {
                        return Err(Error::BadChoices {
                            name: name_owned(),
                            what: format!("list {choice} twice; list each value once"),
                        });
                    }
                }
                Ok(())
            }
        }
    }

    /// Whether only one value is possible (Optuna's `single()`).
    pub fn single(&self) -> bool {
        match self {
            Distribution::Categorical { choices } => choices.len() == 1,
            Distribution::Float { low, high, .. } => low == high,
            Distribution::Int { low, high, .. } => low == high,
        }
    }

    /// The internal representation of an external value, or `None` when it is not in the
    /// distribution.
    pub fn to_internal(&self, value: &Value) -> Option<f64> {
        match self {
            Distribution::Categorical { choices } => {
                choices.iter().position(|c| c == value).map(|i| i as f64)
            }
            Distribution::Float { low, high, .. } => {
                let v = value.as_f64()?;
                (v >= *low && v <= *high).then_some(v)
            }
            Distribution::Int {
                low, high, step, ..
            } => {
                let v = value.as_i64()?;
                (v >= *low && v <= *high && (v - low) % step == 0).then_some(v as f64)
            }
        }
    }

    /// The external value of an internal representation, snapped to the lattice and clipped
    /// to the range (categorical indices are clamped to the choices).
    pub fn to_external(&self, internal: f64) -> Value {
        match self {
            Distribution::Categorical { choices } => {
                let idx = (internal.round().max(0.0) as usize).min(choices.len() - 1);
                choices[idx].clone()
            }
            Distribution::Float {
                low, high, step, ..
            } => {
                let v = match step {
                    Some(step) => low + ((internal - low) / step).round() * step,
                    None => internal,
                };
                Value::from(v.clamp(*low, *high))
            }
            Distribution::Int {
                low, high, step, ..
            } => {
                let k = ((internal - *low as f64) / *step as f64).round() as i64;
                Value::from((low + k * step).clamp(*low, *high))
            }
        }
    }

    /// Number of distinct values, when finite (categorical, int, float with a step).
    pub fn n_points(&self) -> Option<u64> {
        match *self {
            Distribution::Categorical { ref choices } => Some(choices.len() as u64),
            Distribution::Int {
                low, high, step, ..
            } => Some(((high - low) / step) as u64 + 1),
            Distribution::Float {
                low,
                high,
                step: Some(step),
                ..
            } => Some(((high - low) / step).round() as u64 + 1),
            Distribution::Float { step: None, .. } => None,
        }
    }

    /// The `idx`-th value of a finite distribution, in increasing order (choices in their
    /// order).
    pub fn point(&self, idx: u64) -> Value {
        match *self {
            Distribution::Categorical { ref choices } => choices[idx as usize].clone(),
            Distribution::Int { low, step, .. } => Value::from(low + idx as i64 * step),
            Distribution::Float {
                low,
                high,
                step: Some(step),
                ..
            } => Value::from((low + idx as f64 * step).min(high)),
            Distribution::Float { .. } => unreachable!("continuous floats have no points"),
        }
    }
}

fn check_range(
    name: &str,
    low: f64,
    high: f64,
    low_text: &str,
    high_text: &str,
) -> Result<(), Error> {
    let what = if low > high {
        "inverted (low > high)"
    } else if low == high {
        "empty (low == high)"
    } else {
        return Ok(());
    };
    Err(Error::EmptyRange {
        name: name.to_string(),
        low: low_text.to_string(),
        high: high_text.to_string(),
        what,
    })
}

impl fmt::Display for Distribution {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let json = serde_json::to_string(self).map_err(|_| fmt::Error)?;
        f.write_str(&json)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(value: Value) -> Distribution {
        serde_json::from_value(value).unwrap()
    }

    fn error(value: Value) -> String {
        parse(value).validate("x").unwrap_err().to_string()
    }

    #[test]
    fn bad_distributions_say_what_is_wrong_and_what_is_valid() {
        let cases = [
            (
                json!({"type": "float", "low": 1.0, "high": 0.5}),
                "x: range [1, 0.5] is inverted (low > high); give low < high (fix a value with a one-choice categorical)",
            ),
            (
                json!({"type": "int", "low": 3, "high": 3}),
                "x: range [3, 3] is empty (low == high); give low < high (fix a value with a one-choice categorical)",
            ),
            (
                json!({"type": "float", "low": 0.0, "high": 1.0, "log": true}),
                "x: log scale needs low > 0, got low = 0",
            ),
            (
                json!({"type": "int", "low": -2, "high": 8, "log": true}),
                "x: log scale needs low > 0, got low = -2",
            ),
            (
                json!({"type": "float", "low": 0.0, "high": 1.0, "step": 0.3}),
                "x: step 0.3 does not divide the range [0, 1]; use a high of the form low + k * step",
            ),
            (
                json!({"type": "int", "low": 0, "high": 10, "step": 3}),
                "x: step 3 does not divide the range [0, 10]; use a high of the form low + k * step",
            ),
            (
                json!({"type": "int", "low": 0, "high": 10, "step": 0}),
                "x: step must be > 0, got 0",
            ),
            (
                json!({"type": "categorical", "choices": []}),
                "x: categorical choices are empty; list at least one value",
            ),
            (
                json!({"type": "categorical", "choices": [1, 2, 1]}),
                "x: categorical choices list 1 twice; list each value once",
            ),
            (
                json!({"type": "float", "low": 1e-3, "high": 1.0, "log": true, "step": 0.1}),
                "x: a float cannot have both log = true and a step; drop one",
            ),
        ];
        for (value, expected) in cases {
            assert_eq!(error(value.clone()), expected, "{value}");
        }
        parse(json!({"type": "float", "low": 0.0, "high": 1.0, "step": 0.1}))
            .validate("x")
            .unwrap();
    }

    #[test]
    fn internal_and_external_representations_round_trip() {
        let cat = Distribution::categorical([json!([64]), json!([64, 64])]);
        assert_eq!(cat.to_internal(&json!([64, 64])), Some(1.0));
        assert_eq!(cat.to_external(1.0), json!([64, 64]));
        assert_eq!(cat.to_internal(&json!([32])), None);
        let int = parse(json!({"type": "int", "low": 8, "high": 64, "step": 8}));
        assert_eq!(int.to_external(21.0), json!(24));
        assert_eq!(int.to_internal(&json!(20)), None);
        assert_eq!(int.n_points(), Some(8));
        let float = parse(json!({"type": "float", "low": 0.0, "high": 1.0, "step": 0.25}));
        assert_eq!(float.to_external(0.3), json!(0.25));
        assert_eq!(float.to_external(7.0), json!(1.0));
        assert_eq!(float.point(3), json!(0.75));
        assert_eq!(
            serde_json::to_value(Distribution::log_float(1e-5, 1e-2)).unwrap(),
            json!({"type": "float", "low": 1e-5, "high": 1e-2, "log": true})
        );
    }
}
