//! Integration tests of `tars-store`: one behavioural suite, run against SQLite (a temporary
//! file) and PostgreSQL (`TARS_TEST_DATABASE_URL`, one fresh schema per test).

#[macro_use]
mod support;

mod baselines;
mod concurrency;
mod connect;
mod engines;
mod hypersync;
mod jobs;
mod leader;
mod listing;
mod migrations;
mod promotion;
mod runs;
mod studies;
mod users;
