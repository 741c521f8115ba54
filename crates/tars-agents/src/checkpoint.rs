//! The checkpoint format: safetensors weights plus a JSON metadata document.
//!
//! A checkpoint is two files in a directory — `model.safetensors` (every network tensor as
//! float32, named like PyTorch's `state_dict`: `pi.0.weight`, `q_net.2.bias`, `log_std`, which
//! is `[action_dim]` for a Gaussian head and `[latent_dim, action_dim]` for gSDE) and
//! `metadata.json` ([`Metadata`]). Python's `safetensors` package reads the weights directly.
//! This module converts between a [`Policy`] and those bytes; reading and writing the files is
//! the caller's job (this crate does no I/O).
//!
//! **API boundary:** the format is versioned by [`FORMAT_VERSION`]; loading checks the
//! algorithm, environment, spaces and every tensor's shape before building a policy.

use crate::nn::{
    ActionBounds, Activation, Categorical, DeterministicActor, DiagGaussian, Init, Mlp,
    StateDependentNoise,
};
use crate::policy::{CurvePoint, ObsNormalizer, Policy, PolicyNet};
use crate::{Algo, Error};
use safetensors::{Dtype, SafeTensors, tensor::TensorView};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub const FORMAT: &str = "tars-checkpoint";
pub const FORMAT_VERSION: u32 = 1;
pub const WEIGHTS_FILE: &str = "model.safetensors";
pub const METADATA_FILE: &str = "metadata.json";

/// Everything about a checkpoint except its weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metadata {
    pub format: String,
    pub format_version: u32,
    pub tars_version: String,
    /// `"DQN"`, `"A2C"`, `"PPO"` or `"DDPG"`.
    pub algo: String,
    pub env_id: String,
    pub observation_dim: usize,
    /// `"discrete"` or `"continuous"`.
    pub action_kind: String,
    /// Number of discrete actions, or the continuous action dimension.
    pub action_dim: usize,
    /// Network kind (`categorical`, `gaussian`, `gsde`, `q_values`, `deterministic`), layer widths
    /// and activation: enough to rebuild the network before loading the tensors.
    pub network: NetworkMeta,
    pub hyperparams: serde_json::Value,
    pub obs_normalization: Option<ObsNormalizer>,
    pub seed: u64,
    pub timesteps: u64,
    pub training_curve: Vec<CurvePoint>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetworkMeta {
    pub kind: String,
    /// `[in_dim, hidden…, out_dim]`.
    pub dims: Vec<usize>,
    pub activation: String,
}

fn activation_name(activation: Activation) -> &'static str {
    match activation {
        Activation::Tanh => "tanh",
        Activation::Relu => "relu",
    }
}

fn bad(what: impl Into<String>) -> Error {
    Error::Checkpoint { what: what.into() }
}

/// Serialises a policy: returns the safetensors bytes and the metadata JSON.
pub fn encode(
    policy: &Policy,
    hyperparams: &serde_json::Value,
    seed: u64,
    timesteps: u64,
    training_curve: &[CurvePoint],
) -> (Vec<u8>, String) {
    let mut tensors: BTreeMap<String, (Vec<usize>, Vec<u8>)> = BTreeMap::new();
    let as_bytes = |values: &[f32]| {
        values
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect::<Vec<u8>>()
    };
    for (prefix, net) in policy.networks() {
        for tensor in net.named_tensors(prefix) {
            tensors.insert(
                tensor.name,
                (tensor.shape, as_bytes(&net.params.value[tensor.range])),
            );
        }
    }
    let (kind, net, action_kind, action_dim) = match &policy.net {
        PolicyNet::Categorical { net, .. } => ("categorical", net, "discrete", net.out_dim()),
        PolicyNet::QValues { net } => ("q_values", net, "discrete", net.out_dim()),
        PolicyNet::Gaussian { net, head, .. } => {
            tensors.insert(
                "log_std".into(),
                (vec![head.action_dim()], as_bytes(&head.log_std.value)),
            );
            ("gaussian", net, "continuous", net.out_dim())
        }
        PolicyNet::Gsde { net, head, .. } => {
            tensors.insert(
                "log_std".into(),
                (
                    vec![head.latent_dim(), head.action_dim()],
                    as_bytes(&head.log_std.value),
                ),
            );
            ("gsde", net, "continuous", net.out_dim())
        }
        PolicyNet::Deterministic { actor, .. } => (
            "deterministic",
            &actor.net,
            "continuous",
            actor.action_dim(),
        ),
    };
    let views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .map(|(name, (shape, data))| {
            (
                name.clone(),
                TensorView::new(Dtype::F32, shape.clone(), data).expect("shape matches data"),
            )
        })
        .collect();
    let weights = safetensors::serialize(views, None).expect("in-memory serialisation cannot fail");
    let metadata = Metadata {
        format: FORMAT.into(),
        format_version: FORMAT_VERSION,
        tars_version: env!("CARGO_PKG_VERSION").into(),
        algo: policy.algo.name().into(),
        env_id: policy.env_id.clone(),
        observation_dim: net.in_dim(),
        action_kind: action_kind.into(),
        action_dim,
        network: NetworkMeta {
            kind: kind.into(),
            dims: net.dims().to_vec(),
            activation: activation_name(net.activation()).into(),
        },
        hyperparams: hyperparams.clone(),
        obs_normalization: policy.obs_norm.clone(),
        seed,
        timesteps,
        training_curve: training_curve.to_vec(),
    };
    (
        weights,
        serde_json::to_string_pretty(&metadata).expect("metadata serialises"),
    )
}

/// Parses and checks the metadata document.
pub fn parse_metadata(metadata_json: &str) -> Result<Metadata, Error> {
    let metadata: Metadata = serde_json::from_str(metadata_json)
        .map_err(|e| bad(format!("metadata.json is invalid: {e}")))?;
    if metadata.format != FORMAT || metadata.format_version != FORMAT_VERSION {
        return Err(bad(format!(
            "metadata.json has format {} v{}; this T.A.R.S. reads {FORMAT} v{FORMAT_VERSION}",
            metadata.format, metadata.format_version
        )));
    }
    Ok(metadata)
}

/// Rebuilds the policy from checkpoint bytes, checking it against the environment's spaces.
pub fn decode(weights: &[u8], metadata_json: &str) -> Result<(Policy, Metadata), Error> {
    let metadata = parse_metadata(metadata_json)?;
    let algo: Algo = metadata.algo.parse()?;
    let spec = tars_envs::spec(&metadata.env_id)?;
    let tensors = SafeTensors::deserialize(weights)
        .map_err(|e| bad(format!("model.safetensors is corrupted: {e}")))?;
    let dims = &metadata.network.dims;
    if dims.len() < 2 || dims[0] != spec.observation_space.dim() {
        return Err(bad(format!(
            "network input {:?} does not fit {}'s {}-dimensional observations",
            dims.first(),
            spec.id,
            spec.observation_space.dim()
        )));
    }
    let activation = match metadata.network.activation.as_str() {
        "tanh" => Activation::Tanh,
        "relu" => Activation::Relu,
        other => {
            return Err(bad(format!(
                "unknown activation '{other}'; valid: tanh, relu"
            )));
        }
    };
    let load = |prefix: &str| -> Result<Mlp, Error> {
        let (in_dim, out_dim) = (dims[0], dims[dims.len() - 1]);
        let mut net = Mlp::new(
            in_dim,
            &dims[1..dims.len() - 1],
            out_dim,
            activation,
            Init::TorchDefault,
            &mut tars_envs::Rng::new(0),
        );
        for tensor in net.named_tensors(prefix) {
            let view = tensors
                .tensor(&tensor.name)
                .map_err(|_| bad(format!("is missing tensor '{}'", tensor.name)))?;
            if view.dtype() != Dtype::F32 || view.shape() != tensor.shape.as_slice() {
                return Err(bad(format!(
                    "tensor '{}' is {:?} {:?}; expected F32 {:?}",
                    tensor.name,
                    view.dtype(),
                    view.shape(),
                    tensor.shape
                )));
            }
            for (value, bytes) in net.params.value[tensor.range]
                .iter_mut()
                .zip(view.data().chunks_exact(4))
            {
                *value = f32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
            }
        }
        Ok(net)
    };
    let load_log_std = |shape: &[usize]| -> Result<Vec<f32>, Error> {
        let log_std = tensors
            .tensor("log_std")
            .map_err(|_| bad("is missing tensor 'log_std'"))?;
        if log_std.dtype() != Dtype::F32 || log_std.shape() != shape {
            return Err(bad(format!(
                "tensor 'log_std' is {:?} {:?}; expected F32 {shape:?}",
                log_std.dtype(),
                log_std.shape()
            )));
        }
        Ok(log_std
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect())
    };
    let bounds = || match spec.action_space {
        tars_envs::Space::Box { low, high } => Ok(ActionBounds::new(low.to_vec(), high.to_vec())),
        tars_envs::Space::Discrete { .. } => {
            Err(bad(format!("is continuous but {} is discrete", spec.id)))
        }
    };
    let net = match metadata.network.kind.as_str() {
        "categorical" => {
            let net = load("pi")?;
            PolicyNet::Categorical {
                head: Categorical::new(net.out_dim()),
                net,
            }
        }
        "q_values" => PolicyNet::QValues {
            net: load("q_net")?,
        },
        "gaussian" => {
            let net = load("pi")?;
            let mut head = DiagGaussian::new(net.out_dim(), 0.0);
            head.log_std.value = load_log_std(&[net.out_dim()])?;
            PolicyNet::Gaussian {
                net,
                head,
                bounds: bounds()?,
            }
        }
        "gsde" => {
            let net = load("pi")?;
            let (latent_dim, action_dim) = (dims[dims.len() - 2], net.out_dim());
            let mut head = StateDependentNoise::new(latent_dim, action_dim, 0.0);
            head.log_std.value = load_log_std(&[latent_dim, action_dim])?;
            PolicyNet::Gsde {
                net,
                head,
                bounds: bounds()?,
            }
        }
        "deterministic" => PolicyNet::Deterministic {
            actor: DeterministicActor::new(load("actor")?),
            bounds: bounds()?,
        },
        other => return Err(bad(format!("has unknown network kind '{other}'"))),
    };
    let policy = Policy::new(algo, spec.id, net, metadata.obs_normalization.clone());
    if !policy.fits(&spec.action_space) {
        return Err(bad(format!(
            "was trained for a different action space than {}'s {}",
            spec.id,
            spec.action_space.describe()
        )));
    }
    Ok((policy, metadata))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tars_envs::Rng;

    fn q_policy(env_id: &str, n_actions: usize, obs_dim: usize) -> Policy {
        let net = Mlp::new(
            obs_dim,
            &[16, 16],
            n_actions,
            Activation::Relu,
            Init::TorchDefault,
            &mut Rng::new(1),
        );
        Policy::new(Algo::Dqn, env_id, PolicyNet::QValues { net }, None)
    }

    fn gaussian_policy() -> Policy {
        let net = Mlp::new(
            3,
            &[8],
            1,
            Activation::Tanh,
            Init::TorchDefault,
            &mut Rng::new(2),
        );
        let mut head = DiagGaussian::new(1, -0.5);
        head.log_std.value[0] = -0.25;
        let bounds = ActionBounds::new(vec![-2.0], vec![2.0]);
        let norm = ObsNormalizer {
            mean: vec![0.1, 0.2, 0.3],
            var: vec![1.5, 2.5, 3.5],
            count: 10.0,
            clip_obs: 10.0,
            epsilon: 1e-8,
        };
        Policy::new(
            Algo::Ppo,
            "Pendulum-v1",
            PolicyNet::Gaussian { net, head, bounds },
            Some(norm),
        )
    }

    fn gsde_policy() -> Policy {
        let net = Mlp::new(
            3,
            &[8, 5],
            1,
            Activation::Relu,
            Init::TorchDefault,
            &mut Rng::new(3),
        );
        let mut head = StateDependentNoise::new(5, 1, -2.0);
        head.log_std.value[3] = -1.5;
        let bounds = ActionBounds::new(vec![-2.0], vec![2.0]);
        Policy::new(
            Algo::A2c,
            "Pendulum-v1",
            PolicyNet::Gsde { net, head, bounds },
            None,
        )
    }

    fn actions(policy: &mut Policy, obs: &[f32]) -> Vec<f32> {
        match policy.act(obs, true, &mut Rng::new(0)) {
            tars_envs::Actions::Discrete(a) => a.iter().map(|&x| x as f32).collect(),
            tars_envs::Actions::Continuous(a) => a.to_vec(),
        }
    }

    #[test]
    fn round_trip_keeps_weights_normalisation_and_actions() {
        for mut policy in [
            q_policy("CartPole-v1", 2, 4),
            gaussian_policy(),
            gsde_policy(),
        ] {
            let curve = vec![CurvePoint {
                timestep: 10,
                key: "charts/episodic_return".into(),
                value: 12.5,
            }];
            let (weights, metadata) = encode(
                &policy,
                &serde_json::json!({"gamma": 0.99}),
                7,
                1000,
                &curve,
            );
            let (mut loaded, meta) = decode(&weights, &metadata).unwrap();
            assert_eq!(meta.seed, 7);
            assert_eq!(meta.training_curve, curve);
            assert_eq!(loaded.obs_norm, policy.obs_norm);
            let obs_dim = meta.observation_dim;
            let obs: Vec<f32> = (0..obs_dim * 5).map(|i| (i as f32 * 0.37).sin()).collect();
            assert_eq!(actions(&mut loaded, &obs), actions(&mut policy, &obs));
            for ((_, a), (_, b)) in loaded.networks().iter().zip(policy.networks().iter()) {
                assert_eq!(a.params.value, b.params.value);
            }
            assert_eq!(loaded.weights_hash(), policy.weights_hash(), "log_std too");
        }
    }

    #[test]
    fn tensor_names_follow_pytorch_state_dict() {
        let (weights, _) = encode(&gaussian_policy(), &serde_json::Value::Null, 0, 0, &[]);
        let tensors = SafeTensors::deserialize(&weights).unwrap();
        let mut names: Vec<String> = tensors.names().into_iter().map(String::from).collect();
        names.sort();
        assert_eq!(
            names,
            [
                "log_std",
                "pi.0.bias",
                "pi.0.weight",
                "pi.2.bias",
                "pi.2.weight"
            ]
        );
        assert_eq!(tensors.tensor("pi.0.weight").unwrap().shape(), [8, 3]);

        let (weights, metadata) = encode(&gsde_policy(), &serde_json::Value::Null, 0, 0, &[]);
        let tensors = SafeTensors::deserialize(&weights).unwrap();
        assert_eq!(tensors.tensor("log_std").unwrap().shape(), [5, 1]);
        let meta = parse_metadata(&metadata).unwrap();
        assert_eq!(
            (meta.network.kind.as_str(), meta.network.activation.as_str()),
            ("gsde", "relu")
        );
        // A gSDE log_std relabelled as a Gaussian head is rejected by shape.
        assert_eq!(
            decode(&weights, &metadata.replace("\"gsde\"", "\"gaussian\""))
                .unwrap_err()
                .to_string(),
            "checkpoint tensor 'log_std' is F32 [5, 1]; expected F32 [1]"
        );
    }

    #[test]
    fn bad_checkpoints_are_clear_errors() {
        let policy = q_policy("CartPole-v1", 2, 4);
        let (weights, metadata) = encode(&policy, &serde_json::Value::Null, 0, 0, &[]);
        let err = |w: &[u8], m: &str| decode(w, m).unwrap_err().to_string();
        assert!(
            err(&weights[..weights.len() / 2], &metadata)
                .starts_with("checkpoint model.safetensors is corrupted")
        );
        assert!(
            err(&weights, "{}").starts_with("checkpoint metadata.json is invalid: missing field")
        );
        let other_env = metadata.replace("\"CartPole-v1\"", "\"Acrobot-v1\"");
        assert_eq!(
            err(&weights, &other_env),
            "checkpoint network input Some(4) does not fit Acrobot-v1's 6-dimensional observations"
        );
        let other_format = metadata.replace("\"format_version\": 1", "\"format_version\": 9");
        assert_eq!(
            err(&weights, &other_format),
            "checkpoint metadata.json has format tars-checkpoint v9; this T.A.R.S. reads tars-checkpoint v1"
        );
        let other_algo = metadata.replace("\"DQN\"", "\"SAC\"");
        assert_eq!(
            err(&weights, &other_algo),
            "unknown algorithm 'SAC'; valid algorithms: dqn, a2c, ppo, ddpg, td3"
        );
        let renamed = metadata.replace("\"q_values\"", "\"categorical\"");
        assert_eq!(
            err(&weights, &renamed),
            "checkpoint is missing tensor 'pi.0.weight'"
        );
        // A MountainCar (3 actions, 2 obs) network relabelled as CartPole: input does not fit.
        let (mc_weights, mc_meta) = encode(
            &q_policy("MountainCar-v0", 3, 2),
            &serde_json::Value::Null,
            0,
            0,
            &[],
        );
        assert!(
            err(
                &mc_weights,
                &mc_meta.replace("MountainCar-v0", "CartPole-v1")
            )
            .contains("does not fit CartPole-v1")
        );
        // Right input size but the wrong number of actions.
        let (p_weights, p_meta) = encode(
            &q_policy("CartPole-v1", 3, 4),
            &serde_json::Value::Null,
            0,
            0,
            &[],
        );
        assert_eq!(
            err(&p_weights, &p_meta),
            "checkpoint was trained for a different action space than CartPole-v1's Discrete(2)"
        );
    }
}
