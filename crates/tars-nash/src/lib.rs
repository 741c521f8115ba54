//! Nash equilibria of normal-form games, and equilibrium-based resolution of conflicting
//! proposals. Pure math: no I/O, no clock, no global state, and nothing about agents.
//!
//! Entry points:
//! - [`all_equilibria`]: every (extreme) equilibrium of a two-player game by vertex enumeration,
//!   with a degeneracy report ([`AllEquilibria`]).
//! - [`lemke_howson`]: one equilibrium of a game of any size.
//! - [`solve_zero_sum`] / [`solve_matrix_game`]: value and optimal strategies by LP.
//! - [`replicator_dynamics`] and [`fictitious_play`]: approximations for N-player or large
//!   games, with their NashConv.
//! - [`nash_conv`]: how far any profile is from equilibrium.
//! - [`resolve_conflict`]: weights, stability and conflict of proposals scored on environments.
//!
//! Every game type validates its payoffs when built, so solvers never see bad shapes, and
//! every exact solver verifies each equilibrium (NashConv within [`VERIFY_TOL`] of zero,
//! relative to the payoff scale) before returning it.

mod conflict;
mod dynamics;
mod enumeration;
mod equilibrium;
mod error;
mod game;
mod lemke_howson;
mod linalg;
mod maxent;
mod nashconv;
mod normal_form;
mod polytope;
mod zero_sum;

pub use conflict::{ConflictReport, resolve_conflict};
pub use dynamics::{
    Approximation, FictitiousPlayConfig, ReplicatorConfig, fictitious_play, replicator_dynamics,
};
pub use enumeration::{AllEquilibria, ENUMERATION_LIMIT, all_equilibria, enumeration_cost};
pub use equilibrium::{Equilibrium, VERIFY_TOL};
pub use error::Error;
pub use game::{Bimatrix, MAX_PAYOFF, Matrix};
pub use lemke_howson::{LemkeHowsonConfig, lemke_howson, lemke_howson_with};
pub use nashconv::{best_response_gains, nash_conv};
pub use normal_form::NormalFormGame;
pub use zero_sum::{ZeroSumSolution, solve_matrix_game, solve_zero_sum};
