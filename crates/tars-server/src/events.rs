//! Fleet events: what one process tells the others of the fleet after it changed the store —
//! a config version, a baseline promotion, a proposal's move — or asks of them (stop a job that
//! runs in another worker). Transport-free: [`Service::publish`](crate::Service::publish)
//! hands an [`Event`] to the process's [`Publisher`] (fleet mode: `events_nats`, none in
//! embedded mode, where one process is the whole fleet).
//!
//! An event is a notice, never the truth: the store is. Every event carries what a receiver
//! needs to apply it idempotently (a version, a status), so a replay or a duplicate is harmless,
//! and to tell an old one from a new one: a proposal event names the config version it refers
//! to and the proposal's status, so a move that arrives after a later one of the same proposal
//! (published by another replica, or replayed) is ignored ([`ProposalMoves`], counted as
//! `tars_events_ignored_total{kind}`).

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Mutex;
use tars_hypersync::ProposalStatus;
use uuid::Uuid;

/// The envelope's schema version this build writes and reads.
pub const EVENT_VERSION: u64 = 1;

/// One change (or request) of the fleet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    /// `agent_type`'s active config is now `version` (set, apply or rollback).
    Config { agent_type: String, version: i32 },
    /// The baselines of (`agent_type`, `environment`) changed; the pair is at `version`.
    Baseline {
        agent_type: String,
        environment: String,
        version: i32,
    },
    /// Proposal `id` moved to `status`, about config version `config_version` of its agent:
    /// the version an apply (or rollback) wrote, else the version active when it moved (0 from
    /// builds before this field).
    Proposal {
        id: Uuid,
        agent_type: String,
        status: String,
        #[serde(default)]
        config_version: i32,
    },
    /// Stop job `job_id` at its next training step, wherever it runs.
    Cancel { job_id: Uuid },
}

impl Event {
    /// The metric label and subject token of the event's kind.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::Config { .. } => "config",
            Event::Baseline { .. } => "baseline",
            Event::Proposal { .. } => "proposal",
            Event::Cancel { .. } => "job",
        }
    }

    /// The subject under `<prefix>.events.`: one per thing, so a stream keeping the last
    /// message per subject keeps the fleet's last word on each.
    pub fn subject(&self, prefix: &str) -> String {
        let kind = self.kind();
        match self {
            Event::Config { agent_type, .. } => format!("{prefix}.events.{kind}.{agent_type}"),
            Event::Baseline {
                agent_type,
                environment,
                ..
            } => {
                // Subject tokens may not hold '.'; environment ids ("CartPole-v1") do not, but
                // stay safe for any.
                let env = environment.replace(['.', '*', '>', ' '], "_");
                format!("{prefix}.events.{kind}.{agent_type}.{env}")
            }
            Event::Proposal { id, .. } => format!("{prefix}.events.{kind}.{id}"),
            Event::Cancel { job_id } => format!("{prefix}.events.{kind}.{job_id}.cancel"),
        }
    }

    /// The wire form: `{"v": 1, "kind": …, …fields}`.
    pub fn to_json(&self) -> Vec<u8> {
        let mut value = serde_json::to_value(self).expect("events serialize");
        value["v"] = serde_json::Value::from(EVENT_VERSION);
        value.to_string().into_bytes()
    }

    /// Reads the wire form, or says why it cannot be applied.
    pub fn from_json(payload: &[u8]) -> Result<Event, Refusal> {
        let value: serde_json::Value =
            serde_json::from_slice(payload).map_err(|e| Refusal::Malformed(e.to_string()))?;
        let version = value
            .get("v")
            .and_then(serde_json::Value::as_u64)
            .ok_or_else(|| Refusal::Malformed("no schema version \"v\"".into()))?;
        if version > EVENT_VERSION {
            return Err(Refusal::NewerVersion { found: version });
        }
        serde_json::from_value(value).map_err(|e| Refusal::Malformed(e.to_string()))
    }
}

/// Why an event was not applied.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("malformed event: {0}")]
    Malformed(String),
    #[error(
        "event schema version {found} is newer than this process's ({EVENT_VERSION}); upgrade it"
    )]
    NewerVersion { found: u64 },
}

impl Refusal {
    /// The metric label.
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::Malformed(_) => "malformed",
            Refusal::NewerVersion { .. } => "newer_version",
        }
    }
}

/// The latest move of each proposal a process has applied from events: a move older than it
/// (an earlier status, or the same status about an older config version) is stale. One small
/// entry per proposal seen, kept for the process's life (proposals are few: people write them).
#[derive(Debug, Default)]
pub struct ProposalMoves {
    latest: Mutex<HashMap<Uuid, (u8, i32)>>,
}

impl ProposalMoves {
    /// Whether a move of proposal `id` to `status` about `config_version` is to be applied
    /// (new, or a duplicate of the latest); `false` when a later move was applied already.
    /// An unknown status (a newer build's) is applied and remembered as nothing.
    pub fn admit(&self, id: Uuid, status: &str, config_version: i32) -> bool {
        let Ok(status) = ProposalStatus::parse(status) else {
            return true;
        };
        let key = (status.order(), config_version);
        let mut latest = self.latest.lock().expect("proposal moves lock");
        match latest.get(&id) {
            Some(seen) if key < *seen => false,
            _ => {
                latest.insert(id, key);
                true
            }
        }
    }
}

/// Sends this process's events to the fleet. `publish` must not block: it queues.
pub trait Publisher: Send + Sync {
    fn publish(&self, event: Event);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip_and_name_one_subject_per_thing() {
        let job = Uuid::nil();
        let cases = [
            (
                Event::Config {
                    agent_type: "PPO".into(),
                    version: 3,
                },
                "t.events.config.PPO",
            ),
            (
                Event::Baseline {
                    agent_type: "DQN".into(),
                    environment: "CartPole-v1".into(),
                    version: 2,
                },
                "t.events.baseline.DQN.CartPole-v1",
            ),
            (
                Event::Proposal {
                    id: job,
                    agent_type: "A2C".into(),
                    status: "applied".into(),
                    config_version: 4,
                },
                "t.events.proposal.00000000-0000-0000-0000-000000000000",
            ),
            (
                Event::Cancel { job_id: job },
                "t.events.job.00000000-0000-0000-0000-000000000000.cancel",
            ),
        ];
        for (event, subject) in cases {
            assert_eq!(event.subject("t"), subject);
            assert_eq!(Event::from_json(&event.to_json()), Ok(event));
        }
    }

    #[test]
    fn an_older_move_of_a_proposal_is_stale_and_a_duplicate_is_not() {
        let (one, two) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let moves = ProposalMoves::default();
        assert!(moves.admit(one, "evaluating", 3));
        assert!(moves.admit(one, "awaiting_approval", 3));
        assert!(moves.admit(one, "awaiting_approval", 3), "a duplicate");
        assert!(!moves.admit(one, "evaluating", 3), "an earlier status");
        assert!(moves.admit(one, "applied", 5));
        assert!(
            !moves.admit(one, "applied", 4),
            "the same status, an older config"
        );
        assert!(
            !moves.admit(one, "approved", 9),
            "an earlier status, whatever the config"
        );
        assert!(moves.admit(one, "rolled_back", 6));
        // Other proposals are on their own; unknown statuses are a newer build's.
        assert!(moves.admit(two, "pending", 0));
        assert!(moves.admit(one, "archived", 0));
        // An event of an older build (no config_version) reads as version 0.
        let old = br#"{"v": 1, "kind": "proposal", "id": "00000000-0000-0000-0000-000000000002",
                       "agent_type": "PPO", "status": "pending"}"#;
        let Ok(Event::Proposal { config_version, .. }) = Event::from_json(old) else {
            panic!("an old proposal event reads");
        };
        assert_eq!(config_version, 0);
    }

    #[test]
    fn bad_events_are_refused_with_a_reason() {
        let cases: [(&[u8], &str); 4] = [
            (b"nope", "malformed"),
            (br#"{"kind": "config"}"#, "malformed"),
            (
                br#"{"v": 1, "kind": "config", "agent_type": "PPO"}"#,
                "malformed",
            ),
            (br#"{"v": 2, "kind": "teleport"}"#, "newer_version"),
        ];
        for (payload, reason) in cases {
            assert_eq!(Event::from_json(payload).unwrap_err().reason(), reason);
        }
        assert_eq!(
            Event::from_json(br#"{"v": 2, "kind": "x"}"#)
                .unwrap_err()
                .to_string(),
            "event schema version 2 is newer than this process's (1); upgrade it"
        );
    }
}
