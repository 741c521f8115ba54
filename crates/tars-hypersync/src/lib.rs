//! HyperSync: how a hyperparameter change reaches the live agents of T.A.R.S.
//!
//! - [`status`]: the proposal state machine (pending → evaluating → rejected |
//!   awaiting_approval → approved → applied → rolled_back) and the verdict an evaluation gives.
//! - [`live`]: the live agents, one immutable snapshot (config + policy) per agent type behind
//!   an atomic pointer, swapped whole on reload; requests keep the snapshot they started with.
//!
//! Storage, evaluation and the HTTP surface live in `tars-store`, `tars-eval` and
//! `tars-server`; this crate holds the rules they share and does no I/O.

pub mod live;
pub mod status;

pub use live::{ActError, Acted, ActionBatch, ActiveConfig, LiveAgents, Snapshot, SnapshotError};
pub use status::{Action, InvalidTransition, ProposalStatus, Verdict, verdict};
