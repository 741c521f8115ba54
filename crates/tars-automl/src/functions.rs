//! Standard test functions for black-box optimisers (minimise), with their domains and
//! optima: Branin 2-D, Hartmann 6-D and Rosenbrock 10-D on [−5, 10]^10, as in the
//! Optuna benchmark of ../shared/PEERS.md. Definitions from Surjanovic & Bingham's Virtual
//! Library of Simulation Experiments (sfu.ca/~ssurjano).

use crate::{Distribution, SearchSpace};

/// A test function with its box domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestFunction {
    Branin,
    Hartmann6,
    Rosenbrock10,
}

impl TestFunction {
    pub const ALL: [TestFunction; 3] = [
        TestFunction::Branin,
        TestFunction::Hartmann6,
        TestFunction::Rosenbrock10,
    ];

    pub fn name(self) -> &'static str {
        match self {
            TestFunction::Branin => "branin-2d",
            TestFunction::Hartmann6 => "hartmann-6d",
            TestFunction::Rosenbrock10 => "rosenbrock-10d",
        }
    }

    /// The global minimum.
    pub fn minimum(self) -> f64 {
        match self {
            TestFunction::Branin => 0.397_887_357_729_738,
            TestFunction::Hartmann6 => -3.322_368_011_415_51,
            TestFunction::Rosenbrock10 => 0.0,
        }
    }

    /// Bounds per coordinate.
    pub fn bounds(self) -> Vec<(f64, f64)> {
        match self {
            TestFunction::Branin => vec![(-5.0, 10.0), (0.0, 15.0)],
            TestFunction::Hartmann6 => vec![(0.0, 1.0); 6],
            TestFunction::Rosenbrock10 => vec![(-5.0, 10.0); 10],
        }
    }

    /// Parameters `x0`, `x1`, … as uniform floats over the bounds.
    pub fn search_space(self) -> SearchSpace {
        SearchSpace::new(
            self.bounds()
                .into_iter()
                .enumerate()
                .map(|(i, (low, high))| (format!("x{i}"), Distribution::float(low, high))),
        )
        .expect("test-function domains are valid")
    }

    /// The value at `x` (one coordinate per bound).
    pub fn eval(self, x: &[f64]) -> f64 {
        debug_assert_eq!(x.len(), self.bounds().len());
        match self {
            TestFunction::Branin => branin(x[0], x[1]),
            TestFunction::Hartmann6 => hartmann6(x),
            TestFunction::Rosenbrock10 => rosenbrock(x),
        }
    }
}

fn branin(x1: f64, x2: f64) -> f64 {
    use std::f64::consts::PI;
    let b = 5.1 / (4.0 * PI * PI);
    let c = 5.0 / PI;
    let t = 1.0 / (8.0 * PI);
    (x2 - b * x1 * x1 + c * x1 - 6.0).powi(2) + 10.0 * (1.0 - t) * x1.cos() + 10.0
}

const HARTMANN_ALPHA: [f64; 4] = [1.0, 1.2, 3.0, 3.2];
const HARTMANN_A: [[f64; 6]; 4] = [
    [10.0, 3.0, 17.0, 3.5, 1.7, 8.0],
    [0.05, 10.0, 17.0, 0.1, 8.0, 14.0],
    [3.0, 3.5, 1.7, 10.0, 17.0, 8.0],
    [17.0, 8.0, 0.05, 10.0, 0.1, 14.0],
];
const HARTMANN_P: [[f64; 6]; 4] = [
    [0.1312, 0.1696, 0.5569, 0.0124, 0.8283, 0.5886],
    [0.2329, 0.4135, 0.8307, 0.3736, 0.1004, 0.9991],
    [0.2348, 0.1451, 0.3522, 0.2883, 0.3047, 0.6650],
    [0.4047, 0.8828, 0.8732, 0.5743, 0.1091, 0.0381],
];

fn hartmann6(x: &[f64]) -> f64 {
    -(0..4)
        .map(|i| {
            let inner: f64 = (0..6)
                .map(|j| HARTMANN_A[i][j] * (x[j] - HARTMANN_P[i][j]).powi(2))
                .sum();
            HARTMANN_ALPHA[i] * (-inner).exp()
        })
        .sum::<f64>()
}

fn rosenbrock(x: &[f64]) -> f64 {
    x.windows(2)
        .map(|w| 100.0 * (w[1] - w[0] * w[0]).powi(2) + (1.0 - w[0]).powi(2))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_known_minimisers_give_the_known_minima() {
        use std::f64::consts::PI;
        for (x1, x2) in [(-PI, 12.275), (PI, 2.275), (9.42478, 2.475)] {
            assert!((TestFunction::Branin.eval(&[x1, x2]) - 0.397887).abs() < 1e-5);
        }
        let hartmann = [0.20169, 0.150011, 0.476874, 0.275332, 0.311652, 0.6573];
        assert!((TestFunction::Hartmann6.eval(&hartmann) - -3.32237).abs() < 1e-5);
        assert_eq!(TestFunction::Rosenbrock10.eval(&[1.0; 10]), 0.0);
        assert_eq!(TestFunction::Rosenbrock10.eval(&[0.0; 10]), 9.0);
        assert_eq!(TestFunction::Hartmann6.search_space().len(), 6);
    }
}
