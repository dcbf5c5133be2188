//! The job life cycle: one transition table, checked on every change. An illegal transition is
//! a typed error, never a silent no-op.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{McError, Result};
use crate::ids::JobId;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Pending,
    Running,
    Paused,
    Retrying,
    RollingBack,
    Succeeded,
    Failed,
    Cancelled,
}

impl JobState {
    pub const ALL: [JobState; 8] = [
        JobState::Pending,
        JobState::Running,
        JobState::Paused,
        JobState::Retrying,
        JobState::RollingBack,
        JobState::Succeeded,
        JobState::Failed,
        JobState::Cancelled,
    ];

    pub fn is_final(self) -> bool {
        matches!(
            self,
            JobState::Succeeded | JobState::Failed | JobState::Cancelled
        )
    }

    /// Jobs in these states hold their locks.
    pub fn holds_locks(self) -> bool {
        !self.is_final() && self != JobState::Pending
    }

    pub fn name(self) -> &'static str {
        match self {
            JobState::Pending => "pending",
            JobState::Running => "running",
            JobState::Paused => "paused",
            JobState::Retrying => "retrying",
            JobState::RollingBack => "rolling_back",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }

    pub fn to_proto(self) -> proto::v1::JobState {
        use proto::v1::JobState as P;
        match self {
            JobState::Pending => P::Pending,
            JobState::Running => P::Running,
            JobState::Paused => P::Paused,
            JobState::Retrying => P::Retrying,
            JobState::RollingBack => P::RollingBack,
            JobState::Succeeded => P::Succeeded,
            JobState::Failed => P::Failed,
            JobState::Cancelled => P::Cancelled,
        }
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

use JobState::*;

/// Every allowed transition, and why it exists.
pub const TRANSITIONS: &[(JobState, JobState, &str)] = &[
    (Pending, Running, "locks taken, first step starts"),
    (
        Pending,
        Cancelled,
        "cancelled before it started: nothing to undo",
    ),
    (Running, Succeeded, "last step succeeded"),
    (Running, Paused, "an operator paused it between steps"),
    (Running, Retrying, "a step failed with a retryable outcome"),
    (
        Running,
        RollingBack,
        "a step failed with an abort outcome, or the job was cancelled",
    ),
    (
        Running,
        Failed,
        "a step failed after the point of no return and could not be rolled forward",
    ),
    (Paused, Running, "resumed"),
    (
        Paused,
        Failed,
        "a step in flight when it was paused may have run past the point of no return",
    ),
    (Paused, RollingBack, "cancelled while paused"),
    (Retrying, Running, "backoff elapsed; the step is sent again"),
    (Retrying, Paused, "paused while waiting to retry"),
    (
        Retrying,
        RollingBack,
        "attempts exhausted, or cancelled while waiting",
    ),
    (
        Retrying,
        Failed,
        "attempts exhausted after the point of no return",
    ),
    (RollingBack, Failed, "rollback finished after an abort"),
    (RollingBack, Cancelled, "rollback finished after a cancel"),
    (
        Failed,
        Pending,
        "an operator retries a failed job from where it stopped",
    ),
    (
        Pending,
        RollingBack,
        "a retried job resumes the rollback that had failed",
    ),
];

pub fn allowed(from: JobState, to: JobState) -> bool {
    TRANSITIONS.iter().any(|(f, t, _)| *f == from && *t == to)
}

pub fn check(job: JobId, from: JobState, to: JobState) -> Result<()> {
    if allowed(from, to) {
        Ok(())
    } else {
        Err(McError::IllegalTransition {
            job,
            from: from.name(),
            to: to.name(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn final_states_have_no_way_out_but_retry_of_failed() {
        for from in JobState::ALL.into_iter().filter(|s| s.is_final()) {
            for to in JobState::ALL {
                let expected = from == Failed && to == Pending;
                assert_eq!(allowed(from, to), expected, "{from} -> {to}");
            }
        }
    }

    #[test]
    fn the_table_has_no_duplicates_and_no_self_loops() {
        for (i, (f, t, _)) in TRANSITIONS.iter().enumerate() {
            assert_ne!(f, t);
            assert!(
                !TRANSITIONS[i + 1..]
                    .iter()
                    .any(|(f2, t2, _)| f2 == f && t2 == t),
                "{f} -> {t} twice"
            );
        }
    }

    #[test]
    fn every_state_is_reachable_from_pending() {
        let mut seen = vec![Pending];
        let mut frontier = vec![Pending];
        while let Some(s) = frontier.pop() {
            for (f, t, _) in TRANSITIONS {
                if *f == s && !seen.contains(t) {
                    seen.push(*t);
                    frontier.push(*t);
                }
            }
        }
        assert_eq!(seen.len(), JobState::ALL.len());
    }

    #[test]
    fn an_illegal_transition_names_the_job_and_both_states() {
        let err = check(88, Succeeded, Running).unwrap_err();
        assert_eq!(
            err.to_string(),
            "job 88: cannot go from succeeded to running"
        );
    }
}
