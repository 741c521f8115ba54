//! A search space: named distributions, in a fixed (sorted) order so that sampling and
//! serialisation are deterministic. Parsed from the JSON users write,
//! `{"learning_rate": {"type": "float", "low": 1e-5, "high": 1e-2, "log": true}, ...}`.

use crate::{Distribution, Error};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// Named parameter distributions.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SearchSpace {
    params: BTreeMap<String, Distribution>,
}

impl SearchSpace {
    /// A validated space from `(name, distribution)` pairs.
    pub fn new(
        params: impl IntoIterator<Item = (String, Distribution)>,
    ) -> Result<SearchSpace, Error> {
        let space = SearchSpace {
            params: params.into_iter().collect(),
        };
        space.validate()?;
        Ok(space)
    }

    /// Parses and validates the JSON form (an object of distributions).
    pub fn from_json(value: &Value) -> Result<SearchSpace, Error> {
        let Value::Object(map) = value else {
            return Err(Error::BadSearchSpace {
                what: format!(
                    "expected an object of {{\"name\": {{\"type\": \"float\"|\"int\"|\"categorical\", ...}}}}, got {value}"
                ),
            });
        };
        let mut params = BTreeMap::new();
        for (name, spec) in map {
            let distribution: Distribution =
                serde_json::from_value(spec.clone()).map_err(|err| Error::BadSearchSpace {
                    what: format!(
                        "{name}: {err} (expected {{\"type\": \"float\", \"low\": .., \"high\": .., \"log\"?: bool, \"step\"?: ..}}, \
                         the same with \"int\", or {{\"type\": \"categorical\", \"choices\": [..]}})"
                    ),
                })?;
            params.insert(name.clone(), distribution);
        }
        SearchSpace::new(params)
    }

    /// Checks every distribution and that there is at least one.
    pub fn validate(&self) -> Result<(), Error> {
        if self.params.is_empty() {
            return Err(Error::EmptySearchSpace);
        }
        for (name, distribution) in &self.params {
            distribution.validate(name)?;
        }
        Ok(())
    }

    /// Adds or replaces parameters (an override of a default space).
    pub fn extend(&mut self, other: SearchSpace) {
        self.params.extend(other.params);
    }

    /// Removes a parameter; returns whether it was there.
    pub fn remove(&mut self, name: &str) -> bool {
        self.params.remove(name).is_some()
    }

    pub fn get(&self, name: &str) -> Option<&Distribution> {
        self.params.get(name)
    }

    /// Parameters in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Distribution)> {
        self.params.iter().map(|(name, d)| (name.as_str(), d))
    }

    pub fn len(&self) -> usize {
        self.params.len()
    }

    pub fn is_empty(&self) -> bool {
        self.params.is_empty()
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.params.keys().map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_spaces_parse_validate_and_round_trip() {
        let value = json!({
            "learning_rate": {"type": "float", "low": 1e-5, "high": 1e-2, "log": true},
            "n_epochs": {"type": "int", "low": 1, "high": 20},
            "net_arch": {"type": "categorical", "choices": [[64], [64, 64]]},
        });
        let space = SearchSpace::from_json(&value).unwrap();
        assert_eq!(
            space.names().collect::<Vec<_>>(),
            ["learning_rate", "n_epochs", "net_arch"]
        );
        assert_eq!(serde_json::to_value(&space).unwrap(), value);

        let err = SearchSpace::from_json(&json!({"x": {"type": "uniform"}})).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("search space: x: unknown variant `uniform`"),
            "{err}"
        );
        let err = SearchSpace::from_json(&json!({"x": {"type": "float", "low": 1}})).unwrap_err();
        assert!(err.to_string().contains("missing field `high`"), "{err}");
        assert_eq!(
            SearchSpace::from_json(&json!({})).unwrap_err(),
            Error::EmptySearchSpace
        );
        assert!(SearchSpace::from_json(&json!([1])).is_err());
    }
}
