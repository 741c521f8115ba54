//! The registry of environments by gymnasium id (and accepted aliases).

use crate::classic::{ACROBOT, CARTPOLE, MOUNTAIN_CAR, MOUNTAIN_CAR_CONTINUOUS, PENDULUM};
use crate::{
    Acrobot, CartPole, Env, EnvSpec, Error, LUNAR_LANDER_CONTINUOUS_SPEC, LUNAR_LANDER_SPEC,
    LunarLander, LunarLanderOptions, MountainCar, MountainCarContinuous, Pendulum,
};

struct Entry {
    spec: &'static EnvSpec,
    build: fn() -> Box<dyn Env>,
}

fn boxed<E: Env + Default + 'static>() -> Box<dyn Env> {
    Box::new(E::default())
}

static REGISTRY: &[Entry] = &[
    Entry {
        spec: &CARTPOLE,
        build: boxed::<CartPole>,
    },
    Entry {
        spec: &ACROBOT,
        build: boxed::<Acrobot>,
    },
    Entry {
        spec: &MOUNTAIN_CAR,
        build: boxed::<MountainCar>,
    },
    Entry {
        spec: &PENDULUM,
        build: boxed::<Pendulum>,
    },
    Entry {
        spec: &MOUNTAIN_CAR_CONTINUOUS,
        build: boxed::<MountainCarContinuous>,
    },
    Entry {
        spec: &LUNAR_LANDER_SPEC,
        build: boxed::<LunarLander>,
    },
    Entry {
        spec: &LUNAR_LANDER_CONTINUOUS_SPEC,
        build: lunar_lander_continuous,
    },
];

fn lunar_lander_continuous() -> Box<dyn Env> {
    Box::new(
        LunarLander::continuous(LunarLanderOptions::default())
            .expect("gymnasium's default options are valid"),
    )
}

fn entry(id: &str) -> Result<&'static Entry, Error> {
    REGISTRY
        .iter()
        .find(|e| e.spec.id == id || e.spec.aliases.contains(&id))
        .ok_or_else(|| Error::UnknownEnv {
            id: id.to_string(),
            hint: crate::did_you_mean(id, REGISTRY.iter().map(|e| e.spec.id)),
            valid: REGISTRY
                .iter()
                .map(|e| e.spec.id)
                .collect::<Vec<_>>()
                .join(", "),
        })
}

/// Builds an environment by gymnasium id, reset with seed 0.
pub fn make(id: &str) -> Result<Box<dyn Env>, Error> {
    entry(id).map(|e| (e.build)())
}

/// The spec of an environment by id or alias.
pub fn spec(id: &str) -> Result<&'static EnvSpec, Error> {
    entry(id).map(|e| e.spec)
}

/// Every registered environment, in a stable order.
pub fn specs() -> impl Iterator<Item = &'static EnvSpec> {
    REGISTRY.iter().map(|e| e.spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_id_lists_the_valid_ones() {
        let err = make("CartPole-v0").err().unwrap();
        assert_eq!(
            err.to_string(),
            "unknown environment 'CartPole-v0' (did you mean 'CartPole-v1'?); valid ids: CartPole-v1, Acrobot-v1, \
             MountainCar-v0, Pendulum-v1, MountainCarContinuous-v0, LunarLander-v3, LunarLanderContinuous-v3"
        );
    }

    #[test]
    fn every_spec_builds_its_own_env() {
        for spec in specs() {
            assert_eq!(make(spec.id).unwrap().spec().id, spec.id);
            for alias in spec.aliases {
                assert_eq!(make(alias).unwrap().spec().id, spec.id);
            }
        }
    }
}
