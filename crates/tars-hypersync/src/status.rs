//! The proposal state machine:
//!
//! ```text
//! pending ─► evaluating ─► rejected
//!    │            └──────► awaiting_approval ─► approved ─► applied ─► rolled_back
//!    ├─► awaiting_approval          └─► rejected
//!    ├─► approved (auto-apply without evaluation)
//!    └─► rejected
//! ```
//!
//! [`ProposalStatus::check`] says whether a move is legal, and why not in words a user can act
//! on; [`verdict`] turns an evaluation's regression report into the next status.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Where a proposal is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProposalStatus {
    Pending,
    Evaluating,
    Rejected,
    AwaitingApproval,
    Approved,
    Applied,
    RolledBack,
}

/// A move someone (or the evaluation) asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Evaluate,
    AwaitApproval,
    Approve,
    Reject,
    Apply,
    RollBack,
}

impl Action {
    fn verb(self) -> &'static str {
        match self {
            Action::Evaluate => "evaluate",
            Action::AwaitApproval => "send for approval",
            Action::Approve => "approve",
            Action::Reject => "reject",
            Action::Apply => "apply",
            Action::RollBack => "roll back",
        }
    }

    /// The statuses the move starts from, and where it leads.
    fn edges(self) -> (&'static [ProposalStatus], ProposalStatus) {
        use ProposalStatus::*;
        match self {
            Action::Evaluate => (&[Pending], Evaluating),
            Action::AwaitApproval => (&[Pending, Evaluating], AwaitingApproval),
            Action::Approve => (&[AwaitingApproval, Pending, Evaluating], Approved),
            Action::Reject => (&[Pending, Evaluating, AwaitingApproval], Rejected),
            Action::Apply => (&[Approved], Applied),
            Action::RollBack => (&[Applied], RolledBack),
        }
    }
}

/// A move that is not legal from the proposal's status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot {} a proposal that is {status}; only a proposal that is {} can be", action.verb(), allowed(*action))]
pub struct InvalidTransition {
    pub status: ProposalStatus,
    pub action: Action,
}

fn allowed(action: Action) -> String {
    let (from, _) = action.edges();
    // Users approve what awaits approval; the other starts are the service's own moves.
    let from = if action == Action::Approve {
        &from[..1]
    } else {
        from
    };
    from.iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(" or ")
}

impl ProposalStatus {
    pub const ALL: [ProposalStatus; 7] = [
        ProposalStatus::Pending,
        ProposalStatus::Evaluating,
        ProposalStatus::Rejected,
        ProposalStatus::AwaitingApproval,
        ProposalStatus::Approved,
        ProposalStatus::Applied,
        ProposalStatus::RolledBack,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ProposalStatus::Pending => "pending",
            ProposalStatus::Evaluating => "evaluating",
            ProposalStatus::Rejected => "rejected",
            ProposalStatus::AwaitingApproval => "awaiting_approval",
            ProposalStatus::Approved => "approved",
            ProposalStatus::Applied => "applied",
            ProposalStatus::RolledBack => "rolled_back",
        }
    }

    /// The status's place in a proposal's life: every legal move leads to a higher one, so of
    /// two reports on one proposal the one with the lower place is the older (fleet events
    /// that arrive out of order are told apart by it).
    pub fn order(self) -> u8 {
        match self {
            ProposalStatus::Pending => 0,
            ProposalStatus::Evaluating => 1,
            ProposalStatus::AwaitingApproval => 2,
            ProposalStatus::Approved => 3,
            ProposalStatus::Rejected | ProposalStatus::Applied => 4,
            ProposalStatus::RolledBack => 5,
        }
    }

    /// Parses a status name; the error lists the valid ones.
    pub fn parse(text: &str) -> Result<ProposalStatus, String> {
        ProposalStatus::ALL
            .into_iter()
            .find(|s| s.as_str() == text)
            .ok_or_else(|| {
                let names: Vec<_> = ProposalStatus::ALL.iter().map(|s| s.as_str()).collect();
                format!(
                    "unknown proposal status '{text}'; valid: {}",
                    names.join(", ")
                )
            })
    }

    /// The status `action` leads to from here, or why it cannot.
    pub fn check(self, action: Action) -> Result<ProposalStatus, InvalidTransition> {
        let (from, to) = action.edges();
        if from.contains(&self) {
            Ok(to)
        } else {
            Err(InvalidTransition {
                status: self,
                action,
            })
        }
    }

    /// No move leads anywhere from here except a rollback of an applied proposal.
    pub fn is_final(self) -> bool {
        matches!(self, ProposalStatus::Rejected | ProposalStatus::RolledBack)
    }
}

impl fmt::Display for ProposalStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an evaluation decides for a proposal.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// The detector asked for a rollback: reject, with its reason.
    Reject(String),
    /// Apply at once (auto-apply, and the proposer may apply).
    Apply,
    /// Wait for an admin.
    AwaitApproval,
}

/// The next step after an evaluation (or none): `should_rollback` and its `reason` come from
/// the regression report; `None` when there was no evaluation or no baseline to compare with.
pub fn verdict(regression: Option<(bool, &str)>, auto_apply: bool, may_apply: bool) -> Verdict {
    match regression {
        Some((true, reason)) => Verdict::Reject(reason.to_string()),
        _ if auto_apply && may_apply => Verdict::Apply,
        _ => Verdict::AwaitApproval,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ProposalStatus::*;

    #[test]
    fn the_happy_path_is_legal_step_by_step() {
        let mut status = Pending;
        for action in [
            Action::Evaluate,
            Action::AwaitApproval,
            Action::Approve,
            Action::Apply,
            Action::RollBack,
        ] {
            status = status.check(action).unwrap();
        }
        assert_eq!(status, RolledBack);
        assert!(status.is_final());
    }

    #[test]
    fn every_legal_move_leads_to_a_later_order() {
        let actions = [
            Action::Evaluate,
            Action::AwaitApproval,
            Action::Approve,
            Action::Reject,
            Action::Apply,
            Action::RollBack,
        ];
        let mut n_moves = 0;
        for status in ProposalStatus::ALL {
            for action in actions {
                if let Ok(to) = status.check(action) {
                    assert!(to.order() > status.order(), "{status:?} -> {to:?}");
                    n_moves += 1;
                }
            }
        }
        assert_eq!(n_moves, 11);
    }

    #[test]
    fn approving_a_rejected_proposal_says_what_is_valid() {
        let err = Rejected.check(Action::Approve).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot approve a proposal that is rejected; only a proposal that is awaiting_approval can be"
        );
        assert_eq!(
            Applied.check(Action::Reject).unwrap_err().to_string(),
            "cannot reject a proposal that is applied; only a proposal that is pending or \
             evaluating or awaiting_approval can be"
        );
        assert!(Pending.check(Action::RollBack).is_err());
        assert!(RolledBack.check(Action::Apply).is_err());
    }

    #[test]
    fn every_status_name_round_trips_and_unknown_ones_list_the_valid() {
        for status in ProposalStatus::ALL {
            assert_eq!(ProposalStatus::parse(status.as_str()), Ok(status));
            let json = serde_json::to_value(status).unwrap();
            assert_eq!(json, serde_json::json!(status.as_str()));
        }
        let err = ProposalStatus::parse("done").unwrap_err();
        assert!(err.contains("awaiting_approval"), "{err}");
    }

    #[test]
    fn a_regression_rejects_whatever_the_caller_may_do() {
        assert_eq!(
            verdict(Some((true, "mean reward 9 is 98% below")), true, true),
            Verdict::Reject("mean reward 9 is 98% below".into())
        );
        assert_eq!(verdict(Some((false, "")), true, true), Verdict::Apply);
        assert_eq!(verdict(None, true, false), Verdict::AwaitApproval);
        assert_eq!(verdict(None, false, true), Verdict::AwaitApproval);
    }
}
