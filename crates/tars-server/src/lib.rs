//! The T.A.R.S. service layer: the effective configuration ([`config`]), the evaluation
//! service that joins the engine with storage ([`service`]), and the HTTP API on top of them.
//!
//! Everything here may touch sockets, files and clocks; the domain crates below do not.

pub mod agents;
pub mod api_doc;
pub mod app;
pub mod auth;
pub mod baseline_cache;
pub mod config;
pub mod connections;
pub mod engines;
pub mod error;
pub mod events;
pub mod events_nats;
pub mod history;
pub mod hypersync;
pub mod jobs;
pub mod leader;
pub mod metrics_catalog;
pub mod middleware;
pub mod nash;
pub mod proposals;
pub mod queue_nats;
pub mod redis;
pub mod resilience;
pub mod routes;
pub mod service;
pub mod studies;
pub mod telemetry;
pub mod training;

pub use config::{Config, ConfigArgs};
pub use error::ApiError;
pub use service::Service;
