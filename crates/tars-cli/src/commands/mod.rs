//! One module per top-level `tars` command; each exposes clap `Args` and a `run` function.

pub mod bench;
pub mod bench_train;
pub mod env;
pub mod nash;
pub mod train;
