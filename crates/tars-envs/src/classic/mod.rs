//! Gymnasium's classic-control environments (`gymnasium/envs/classic_control/`), ported
//! expression by expression so that float64 physics and float32 observations match exactly.

mod acrobot;
mod cartpole;
mod mountain_car;
mod mountain_car_continuous;
mod pendulum;

pub use acrobot::{ACROBOT, Acrobot};
pub use cartpole::{CARTPOLE, CartPole};
pub use mountain_car::{MOUNTAIN_CAR, MountainCar};
pub use mountain_car_continuous::{MOUNTAIN_CAR_CONTINUOUS, MountainCarContinuous};
pub use pendulum::{PENDULUM, Pendulum};

/// The single float of a one-dimensional continuous action.
fn scalar_action(action: crate::Action<'_>) -> f32 {
    match action {
        crate::Action::Continuous(values) => values[0],
        crate::Action::Discrete(_) => unreachable!("checked against the action space"),
    }
}

/// The index of a discrete action.
fn discrete_action(action: crate::Action<'_>) -> usize {
    match action {
        crate::Action::Discrete(a) => a,
        crate::Action::Continuous(_) => unreachable!("checked against the action space"),
    }
}

/// numpy's `x**2` on a float64 scalar: glibc's `pow(x, 2.0)`, which is not always `x * x`
/// (they differ by half an ulp for ~0.1% of inputs). `black_box` keeps LLVM from folding the
/// call into a multiplication.
fn square(x: f64) -> f64 {
    x.powf(std::hint::black_box(2.0))
}

/// numpy's `u**2` on a float32 scalar: `powf(u, 2.0)`.
fn square_f32(x: f32) -> f32 {
    x.powf(std::hint::black_box(2.0))
}
