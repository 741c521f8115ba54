//! Hyperparameters shared by every algorithm: algorithm ids, SB3 names and the seeds' aliases,
//! linear schedules (`lin_<x>`), `net_arch`, `activation_fn`, the RL Zoo tuned defaults in `zoo/*.toml`, and
//! the parsing that turns a user's `{name: value}` map into an algorithm's typed struct.

use crate::Error;
use crate::nn::Activation;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};
use std::fmt;
use std::str::FromStr;

/// The algorithms T.A.R.S. trains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algo {
    Dqn,
    A2c,
    Ppo,
    Ddpg,
    Td3,
}

impl Algo {
    pub const ALL: [Algo; 5] = [Algo::Dqn, Algo::A2c, Algo::Ppo, Algo::Ddpg, Algo::Td3];

    /// The upper-case name used in the seeds' API (`"DQN"`).
    pub fn name(self) -> &'static str {
        match self {
            Algo::Dqn => "DQN",
            Algo::A2c => "A2C",
            Algo::Ppo => "PPO",
            Algo::Ddpg => "DDPG",
            Algo::Td3 => "TD3",
        }
    }

    fn zoo_table(self) -> &'static str {
        match self {
            Algo::Dqn => include_str!("../zoo/dqn.toml"),
            Algo::A2c => include_str!("../zoo/a2c.toml"),
            Algo::Ppo => include_str!("../zoo/ppo.toml"),
            Algo::Ddpg => include_str!("../zoo/ddpg.toml"),
            Algo::Td3 => include_str!("../zoo/td3.toml"),
        }
    }
}

impl fmt::Display for Algo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Algo {
    type Err = Error;

    /// Case-insensitive: `dqn`, `DQN` and `Dqn` are the same algorithm.
    fn from_str(name: &str) -> Result<Algo, Error> {
        Algo::ALL
            .into_iter()
            .find(|algo| algo.name().eq_ignore_ascii_case(name))
            .ok_or_else(|| Error::UnknownAlgo {
                name: name.to_string(),
                hint: tars_envs::did_you_mean(name, ["dqn", "a2c", "ppo", "ddpg", "td3"]),
            })
    }
}

/// The seeds' legacy names and the SB3 names they stand for.
const ALIASES: [(&str, &str); 3] = [
    ("epsilon", "exploration_final_eps"),
    ("entropy_coef", "ent_coef"),
    ("lr", "learning_rate"),
];

/// CleanRL names people type by habit, and the SB3 name to suggest.
const CLEANRL_NAMES: [(&str, &str); 8] = [
    ("clip_coef", "clip_range"),
    ("update_epochs", "n_epochs"),
    ("num_steps", "n_steps"),
    ("num_envs", "n_envs"),
    ("norm_adv", "normalize_advantage"),
    ("target_network_frequency", "target_update_interval"),
    ("train_frequency", "train_freq"),
    ("total_timesteps", "n_timesteps"),
];

/// The RL Zoo's tuned hyperparameters for `algo` on `env_id` (empty when the Zoo has none,
/// in which case SB3's defaults apply).
pub fn tuned(algo: Algo, env_id: &str) -> Map<String, Value> {
    let env_id = tars_envs::spec(env_id).map_or(env_id, |spec| spec.id);
    let table: toml::Table = algo.zoo_table().parse().expect("zoo tables are valid TOML");
    match table
        .get(env_id)
        .map(|entry| serde_json::to_value(entry).expect("TOML converts to JSON"))
    {
        Some(Value::Object(map)) => map,
        _ => Map::new(),
    }
}

/// [`resolve`], then `n_timesteps` (when given) replaces the training budget, as every
/// algorithm's `train` takes it.
pub fn resolve_with_budget<T>(
    algo: Algo,
    env_id: &str,
    overrides: &Map<String, Value>,
    n_timesteps: Option<u64>,
) -> Result<T, Error>
where
    T: DeserializeOwned + Serialize + Default,
{
    match n_timesteps {
        None => resolve(algo, env_id, overrides),
        Some(n_timesteps) => {
            let mut with_budget = overrides.clone();
            with_budget.insert("n_timesteps".to_string(), Value::from(n_timesteps as f64));
            resolve(algo, env_id, &with_budget)
        }
    }
}

/// Merges the tuned defaults with the user's overrides (aliases resolved) and parses them into
/// the algorithm's struct `T`, whose `Default` is SB3's defaults. Unknown names are errors
/// listing the valid ones.
pub fn resolve<T>(algo: Algo, env_id: &str, overrides: &Map<String, Value>) -> Result<T, Error>
where
    T: DeserializeOwned + Serialize + Default,
{
    let valid: Vec<String> = match serde_json::to_value(T::default()) {
        Ok(Value::Object(defaults)) => defaults.keys().cloned().collect(),
        _ => unreachable!("hyperparameter structs serialise to objects"),
    };
    // Tuned entries the struct does not know (Zoo options we do not implement) are skipped.
    let mut merged: Map<String, Value> = tuned(algo, env_id)
        .into_iter()
        .filter(|(name, _)| valid.contains(name))
        .collect();
    for (name, value) in overrides {
        let canonical = ALIASES
            .iter()
            .find(|(alias, _)| alias == name)
            .map_or(name.as_str(), |(_, sb3)| sb3);
        if !valid.iter().any(|v| v == canonical) {
            let hint = CLEANRL_NAMES
                .iter()
                .chain(ALIASES.iter())
                .find(|(other, _)| other == name)
                .filter(|(_, sb3)| valid.iter().any(|v| v == sb3))
                .map_or_else(
                    || tars_envs::did_you_mean(name, valid.iter().map(String::as_str)),
                    |(_, sb3)| format!(" (did you mean '{sb3}'?)"),
                );
            return Err(Error::UnknownHyperparameter {
                algo: algo.name(),
                name: name.clone(),
                hint,
                valid: valid.join(", "),
            });
        }
        merged.insert(canonical.to_string(), value.clone());
    }
    // Parse field by field so an error names the hyperparameter and its value.
    let mut with_defaults = match serde_json::to_value(T::default()) {
        Ok(Value::Object(defaults)) => defaults,
        _ => unreachable!("hyperparameter structs serialise to objects"),
    };
    for (name, value) in &merged {
        let mut probe = with_defaults.clone();
        probe.insert(name.clone(), value.clone());
        if let Err(err) = serde_json::from_value::<T>(Value::Object(probe)) {
            return Err(invalid(
                algo,
                name,
                value,
                &expected_from_serde(&err.to_string()),
            ));
        }
        with_defaults.insert(name.clone(), value.clone());
    }
    Ok(serde_json::from_value(Value::Object(with_defaults)).expect("every field parsed above"))
}

/// An `InvalidHyperparameter` error for `name = value`.
pub fn invalid(algo: Algo, name: &str, value: &Value, expected: &str) -> Error {
    Error::InvalidHyperparameter {
        algo: algo.name(),
        name: name.to_string(),
        value: value.to_string(),
        expected: expected.to_string(),
    }
}

fn expected_from_serde(message: &str) -> String {
    // serde says e.g. "invalid type: string \"x\", expected f64"; keep the part after "expected".
    match message.split_once("expected ") {
        Some((_, expected)) => expected.to_string(),
        None => message.to_string(),
    }
}

/// Checks `low < value <= high`-style domains; `what` describes the valid range.
pub fn check(algo: Algo, name: &str, value: f64, ok: bool, what: &str) -> Result<(), Error> {
    if ok && value.is_finite() {
        Ok(())
    } else {
        Err(invalid(algo, name, &Value::from(value), what))
    }
}

/// A constant or SB3's linear schedule `lin_<x>`, which decays from `x` to 0 over training.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Schedule {
    Constant(f64),
    Linear(f64),
}

impl Schedule {
    /// The value at `progress_remaining` (1 at the start of training, 0 at the end), as SB3.
    pub fn value(self, progress_remaining: f64) -> f64 {
        match self {
            Schedule::Constant(v) => v,
            Schedule::Linear(start) => start * progress_remaining,
        }
    }

    /// The value at the start of training.
    pub fn initial(self) -> f64 {
        self.value(1.0)
    }
}

impl Serialize for Schedule {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Schedule::Constant(v) => serializer.serialize_f64(*v),
            Schedule::Linear(v) => serializer.serialize_str(&format!("lin_{v}")),
        }
    }
}

impl<'de> Deserialize<'de> for Schedule {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(f64),
            Text(String),
        }
        match Raw::deserialize(deserializer)? {
            Raw::Number(v) => Ok(Schedule::Constant(v)),
            Raw::Text(text) => text
                .strip_prefix("lin_")
                .and_then(|x| x.parse::<f64>().ok())
                .map(Schedule::Linear)
                .ok_or_else(|| {
                    serde::de::Error::custom("a number or a linear schedule like \"lin_0.001\"")
                }),
        }
    }
}

/// SB3's `activation_fn` policy kwarg for PPO and A2C: `"tanh"` (SB3's default) or `"relu"`;
/// the Zoo's spellings `nn.Tanh` and `nn.ReLU` are accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ActivationFn {
    #[serde(rename = "tanh", alias = "nn.Tanh")]
    Tanh,
    #[serde(rename = "relu", alias = "nn.ReLU")]
    Relu,
}

impl ActivationFn {
    pub fn activation(self) -> Activation {
        match self {
            ActivationFn::Tanh => Activation::Tanh,
            ActivationFn::Relu => Activation::Relu,
        }
    }
}

/// Hidden layer sizes of the policy (`pi`) and value/Q (`vf`) networks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetArch {
    pub pi: Vec<usize>,
    pub vf: Vec<usize>,
}

impl NetArch {
    /// The same hidden sizes for both networks.
    pub fn shared(hidden: &[usize]) -> NetArch {
        NetArch {
            pi: hidden.to_vec(),
            vf: hidden.to_vec(),
        }
    }
}

/// Accepts `[64, 64]` (both networks) or `{"pi": [...], "vf": [...]}` (`"qf"` is accepted for
/// `"vf"`, as SB3's off-policy algorithms name it), also wrapped in a one-element list as the
/// Zoo writes it for older SB3 (`[{"pi": [...], "vf": [...]}]`).
pub fn deserialize_net_arch<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<NetArch, D::Error> {
    #[derive(Deserialize)]
    struct Split {
        pi: Vec<usize>,
        #[serde(alias = "qf")]
        vf: Vec<usize>,
    }
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        List(Vec<usize>),
        Split(Split),
        Wrapped([Split; 1]),
    }
    let arch = match Raw::deserialize(deserializer).map_err(|_| {
        serde::de::Error::custom(
            "a list of layer sizes like [64, 64] or {\"pi\": [...], \"vf\": [...]}",
        )
    })? {
        Raw::List(hidden) => NetArch::shared(&hidden),
        Raw::Split(Split { pi, vf }) | Raw::Wrapped([Split { pi, vf }]) => NetArch { pi, vf },
    };
    if arch
        .pi
        .iter()
        .chain(&arch.vf)
        .any(|&units| units == 0 || units > 4096)
    {
        return Err(serde::de::Error::custom("layer sizes between 1 and 4096"));
    }
    Ok(arch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields, default)]
    struct Toy {
        learning_rate: Schedule,
        exploration_final_eps: f64,
        ent_coef: f64,
        n_timesteps: f64,
        #[serde(deserialize_with = "deserialize_net_arch")]
        net_arch: NetArch,
    }

    impl Default for Toy {
        fn default() -> Self {
            Toy {
                learning_rate: Schedule::Constant(3e-4),
                exploration_final_eps: 0.05,
                ent_coef: 0.0,
                n_timesteps: 1e4,
                net_arch: NetArch::shared(&[64, 64]),
            }
        }
    }

    fn map(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn zoo_defaults_then_overrides_with_aliases() {
        let toy: Toy = resolve(
            Algo::Dqn,
            "CartPole-v1",
            &map(json!({"epsilon": 0.9, "lr": 0.5})),
        )
        .unwrap();
        assert_eq!(toy.exploration_final_eps, 0.9);
        assert_eq!(toy.learning_rate, Schedule::Constant(0.5));
        assert_eq!(toy.n_timesteps, 5e4, "the Zoo's budget for DQN CartPole");
        assert_eq!(toy.net_arch, NetArch::shared(&[256, 256]));
        assert!(tuned(Algo::Ppo, "CartPole-v1").contains_key("clip_range"));
        assert!(tuned(Algo::Ddpg, "CartPole-v1").is_empty());
    }

    #[test]
    fn unknown_names_list_the_valid_ones_and_suggest_sb3_names() {
        let err =
            resolve::<Toy>(Algo::Ppo, "Pendulum-v1", &map(json!({"num_envs": 4}))).unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown PPO hyperparameter 'num_envs'; valid names: ent_coef, exploration_final_eps, \
             learning_rate, n_timesteps, net_arch"
        );
        let err =
            resolve::<Toy>(Algo::Ppo, "Pendulum-v1", &map(json!({"entropy": 4}))).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("unknown PPO hyperparameter 'entropy'; valid names"),
            "{err}"
        );
        // A typo gets the closest valid name.
        let err = resolve::<Toy>(
            Algo::Ppo,
            "Pendulum-v1",
            &map(json!({"lerning_rate": 1e-3})),
        )
        .unwrap_err();
        assert!(
            err.to_string().starts_with(
                "unknown PPO hyperparameter 'lerning_rate' (did you mean 'learning_rate'?); valid names"
            ),
            "{err}"
        );
        assert_eq!(
            "ppp".parse::<Algo>().unwrap_err().to_string(),
            "unknown algorithm 'ppp' (did you mean 'ppo'?); valid algorithms: dqn, a2c, ppo, ddpg, td3"
        );
    }

    #[test]
    fn wrong_types_name_the_hyperparameter() {
        let err = resolve::<Toy>(
            Algo::Ppo,
            "Pendulum-v1",
            &map(json!({"learning_rate": "fast"})),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid PPO hyperparameter learning_rate = \"fast\": expected a number or a linear schedule like \"lin_0.001\""
        );
        let err =
            resolve::<Toy>(Algo::Ppo, "Pendulum-v1", &map(json!({"net_arch": [0]}))).unwrap_err();
        assert!(
            err.to_string().contains("layer sizes between 1 and 4096"),
            "{err}"
        );
        let wrapped = json!({"net_arch": [{"pi": [256, 256], "vf": [32]}]});
        let toy: Toy = resolve(Algo::Ppo, "Pendulum-v1", &map(wrapped)).unwrap();
        assert_eq!(
            toy.net_arch,
            NetArch {
                pi: vec![256, 256],
                vf: vec![32]
            }
        );
    }

    #[test]
    fn activation_fn_takes_sb3_and_zoo_spellings_and_lists_the_valid_ones() {
        let parse = |value: Value| serde_json::from_value::<ActivationFn>(value);
        assert_eq!(parse(json!("relu")).unwrap(), ActivationFn::Relu);
        assert_eq!(parse(json!("nn.ReLU")).unwrap(), ActivationFn::Relu);
        assert_eq!(parse(json!("nn.Tanh")).unwrap(), ActivationFn::Tanh);
        let err = parse(json!("gelu")).unwrap_err().to_string();
        assert!(
            err.ends_with("expected one of `nn.Tanh`, `tanh`, `nn.ReLU`, `relu`"),
            "{err}"
        );
    }

    #[test]
    fn schedules_round_trip_and_decay_linearly() {
        let lin: Schedule = serde_json::from_value(json!("lin_0.001")).unwrap();
        assert_eq!(lin, Schedule::Linear(0.001));
        assert_eq!(lin.value(0.5), 0.0005);
        assert_eq!(serde_json::to_value(lin).unwrap(), json!("lin_0.001"));
        assert_eq!(Schedule::Constant(0.2).value(0.1), 0.2);
    }

    #[test]
    fn algo_names_are_case_insensitive() {
        assert_eq!("dqn".parse::<Algo>().unwrap(), Algo::Dqn);
        assert_eq!("PPO".parse::<Algo>().unwrap(), Algo::Ppo);
        assert_eq!(
            "sac".parse::<Algo>().unwrap_err().to_string(),
            "unknown algorithm 'sac'; valid algorithms: dqn, a2c, ppo, ddpg, td3"
        );
    }
}
