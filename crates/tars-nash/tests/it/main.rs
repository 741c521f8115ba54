//! Integration tests of `tars-nash`, one binary with a module per topic: agreement with nashpy
//! fixtures, properties of random games, the solvers together, and conflict resolution.

mod conflict;
mod fixtures;
mod properties;
mod solvers;
mod util;
