//! The singleton duties of a T.A.R.S. process and their elections (`tars_runtime::leader`
//! over `tars_store::LeaderSession`): in fleet mode one process of the fleet leads each duty
//! (PostgreSQL advisory lock + fencing epoch); in embedded mode the single process leads them
//! all.
//!
//! Duties: [`JOB_REAPER`] (fleet job queue: publishes queued jobs whose message is missing and
//! re-queues running jobs whose message is gone, `queue_nats::NatsQueue::spawn_reaper`) and
//! [`ENGINES`] (the engines' schedulers and baseline-staleness checks take its
//! `Leadership::subscribe()` receiver).

use tars_runtime::leader::{Campaign, ElectionConfig};
use tars_store::{Store, StoreError};

/// The fleet job queue's reaper.
pub const JOB_REAPER: &str = "job-reaper";
/// The engines' schedulers (and the checks they run).
pub const ENGINES: &str = "engines";

/// This process's name in `leader_epochs.holder`: host, process id and a random suffix (two
/// campaigns of one process for one duty are two candidates).
pub fn holder() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|host| host.trim().to_string())
        .filter(|host| !host.is_empty())
        .unwrap_or_else(|| "localhost".to_string());
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let holder = format!("{host}:{}:{}", std::process::id(), &suffix[..8]);
    holder
        .chars()
        .rev()
        .take(200)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect()
}

/// Starts campaigning for `duty` on `store`: elected within about a second when no other
/// process leads it. Keep the [`Campaign`] for as long as the process may lead the duty;
/// dropping it gives the duty up.
pub fn campaign(store: &Store, duty: &str) -> Result<Campaign, StoreError> {
    let session = store.leader_session(duty, &holder())?;
    Ok(Campaign::start(session, ElectionConfig::default()))
}
