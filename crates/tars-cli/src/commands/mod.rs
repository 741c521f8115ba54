//! One module per top-level `tars` command; each exposes clap `Args` and a `run` function.

pub mod baseline;
pub mod bench;
pub mod bench_eval;
pub mod bench_fleet;
pub mod bench_hypersync;
pub mod bench_train;
pub mod bench_tune;
pub mod config;
pub mod dev;
pub mod env;
pub mod eval;
pub mod history;
pub mod hypersync;
pub mod nash;
pub mod serve;
pub mod train;
pub mod tune;
pub mod user;
pub mod worker;
