//! Atomic steps and the plan of a job: its forward steps, what undoes each, and where rolling
//! back stops being possible. A job type builds its plan once, at submission; the plan is
//! persisted with the job, so an upgrade never changes a running job's steps.

use proto::v1::{StepOutcome, step_outcome};
use serde::{Deserialize, Serialize};

pub use crate::step::{AtomicStep, NewRegion, Target};

/// A forward step and what undoes it. `undo` also runs when the step itself failed, since a
/// failed step may have half-happened; every undo step is idempotent on the store.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedStep {
    pub step: AtomicStep,
    pub undo: Vec<AtomicStep>,
    /// Once this step has succeeded the job only rolls forward.
    pub point_of_no_return: bool,
}

impl PlannedStep {
    pub fn new(step: AtomicStep) -> Self {
        Self {
            step,
            undo: vec![],
            point_of_no_return: false,
        }
    }

    pub fn undo(mut self, undo: impl IntoIterator<Item = AtomicStep>) -> Self {
        self.undo = undo.into_iter().collect();
        self
    }

    pub fn no_return(mut self) -> Self {
        self.point_of_no_return = true;
        self
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub steps: Vec<PlannedStep>,
}

/// Rolling back is no longer possible: a step at or after the point of no return failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RollForwardOnly {
    pub since_step: usize,
}

impl Plan {
    pub fn new(steps: Vec<PlannedStep>) -> Self {
        Self { steps }
    }

    /// The undo steps to run when forward step `failed` (0-based) aborts: its own undo, then
    /// the undo of every earlier step, latest first.
    pub fn rollback_from(&self, failed: usize) -> Result<Vec<AtomicStep>, RollForwardOnly> {
        self.rollback(failed, true)
    }

    /// As `rollback_from`, with (`own`) or without the failed step's own undo: a step the
    /// store refused before it changed anything is not undone (undoing a refused Create would
    /// destroy a replica another job made).
    pub fn rollback(&self, failed: usize, own: bool) -> Result<Vec<AtomicStep>, RollForwardOnly> {
        if let Some(since_step) = self.steps[..failed]
            .iter()
            .position(|s| s.point_of_no_return)
        {
            return Err(RollForwardOnly { since_step });
        }
        let upto = if own { failed + 1 } else { failed };
        Ok(self.steps[..upto]
            .iter()
            .rev()
            .flat_map(|s| s.undo.iter().cloned())
            .collect())
    }
}

/// What the engine does with a step's outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Done,
    /// Try again after backoff (the leader is re-resolved first).
    Retry,
    /// Roll back (or, past the point of no return, fail).
    Abort,
    /// This MC was deposed: stop driving the job; the new leader resumes it.
    Deposed,
}

/// The error contract every step shares: Busy, NotLeader and Unavailable pass by themselves;
/// EpochMismatch, Failed, NotFound and InvalidArgument do not. Step kinds refine it: a
/// Destroy or Remove of something already gone has reached its goal.
pub fn classify(step: &AtomicStep, outcome: &StepOutcome) -> Verdict {
    use step_outcome::Result as R;
    match outcome.result.as_ref() {
        Some(R::Ok(_)) => Verdict::Done,
        Some(R::Busy(_)) | Some(R::NotLeader(_)) | Some(R::Unavailable(_)) | None => Verdict::Retry,
        Some(R::StaleTerm(_)) => Verdict::Deposed,
        Some(R::NotFound(n)) => match (step, n.kind.as_str()) {
            // The replica is already gone from that store: the goal is reached (a replica
            // that is not there does not serve either).
            (_, "rg") if step.spec().is_some_and(|s| s.done_if_replica_gone()) => Verdict::Done,
            // A leader step reached a store that no longer hosts the RG: find the leader again.
            (_, "rg") if matches!(step.target(), Target::Leader(_)) => Verdict::Retry,
            _ => Verdict::Abort,
        },
        Some(R::EpochMismatch(_)) | Some(R::Failed(_)) | Some(R::InvalidArgument(_)) => {
            Verdict::Abort
        }
    }
}

/// An undo step's verdict: as [`classify`], except where the step says an undo that finds no
/// such region has reached its goal (see `StepSpec::undo_done_if_region_gone`).
pub fn classify_undo(step: &AtomicStep, outcome: &StepOutcome) -> Verdict {
    use step_outcome::Result as R;
    match outcome.result.as_ref() {
        Some(R::NotFound(n))
            if n.kind == "region" && step.spec().is_some_and(|s| s.undo_done_if_region_gone()) =>
        {
            Verdict::Done
        }
        _ => classify(step, outcome),
    }
}

/// Whether the store refused the step before it changed anything: a typed refusal of its
/// input or of the RG's state as the store checked it first (InvalidArgument, EpochMismatch,
/// NotFound, a Failed the store marks refused).
pub fn refused(outcome: &StepOutcome) -> bool {
    use step_outcome::Result as R;
    match outcome.result.as_ref() {
        Some(R::InvalidArgument(_)) | Some(R::EpochMismatch(_)) | Some(R::NotFound(_)) => true,
        Some(R::Failed(f)) => f.refused,
        _ => false,
    }
}

/// Whether an attempt that ended with `outcome` may have taken effect on the store: no reply
/// or a missed deadline (the store may still apply it), a NotLeader, or Busy with this very
/// step (an earlier attempt is still running there). Busy with another step and the definite
/// outcomes say this attempt did not run, or how it ended.
pub fn possibly_done(outcome: &StepOutcome, job_id: u64, step_seq: u32) -> bool {
    use step_outcome::Result as R;
    match outcome.result.as_ref() {
        // NotLeader too: a leader deposed after proposing the step's entry answers NotLeader,
        // and a new leader may still commit it.
        None | Some(R::Unavailable(_)) | Some(R::NotLeader(_)) => true,
        Some(R::Busy(b)) => b.running_job_id == job_id && b.running_step_seq == step_seq,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::step;
    use proto::v1::*;

    fn outcome(result: step_outcome::Result) -> StepOutcome {
        StepOutcome {
            result: Some(result),
        }
    }

    #[test]
    fn the_shared_contract() {
        let destroy = AtomicStep::destroy(1, 2);
        let promote = AtomicStep::Promote(step::Promote { rg: 1, store: 2 });
        let rg_gone = step_outcome::Result::NotFound(NotFound {
            kind: "rg".into(),
            id: "1".into(),
        });
        let region_gone = step_outcome::Result::NotFound(NotFound {
            kind: "region".into(),
            id: "3".into(),
        });
        let cases = [
            (
                &promote,
                step_outcome::Result::Ok(StepOk::default()),
                Verdict::Done,
            ),
            (
                &promote,
                step_outcome::Result::Busy(Busy::default()),
                Verdict::Retry,
            ),
            (
                &promote,
                step_outcome::Result::NotLeader(NotLeader::default()),
                Verdict::Retry,
            ),
            (
                &promote,
                step_outcome::Result::Unavailable(Unavailable::default()),
                Verdict::Retry,
            ),
            (
                &promote,
                step_outcome::Result::StaleTerm(StaleTerm::default()),
                Verdict::Deposed,
            ),
            (
                &promote,
                step_outcome::Result::Failed(StepFailed::default()),
                Verdict::Abort,
            ),
            (
                &promote,
                step_outcome::Result::EpochMismatch(EpochMismatch::default()),
                Verdict::Abort,
            ),
            (&promote, rg_gone.clone(), Verdict::Retry),
            (&promote, region_gone, Verdict::Abort),
            (&destroy, rg_gone, Verdict::Done),
        ];
        for (step, result, verdict) in cases {
            assert_eq!(
                classify(step, &outcome(result.clone())),
                verdict,
                "{step:?} {result:?}"
            );
        }
    }

    #[test]
    fn rollback_undoes_the_failed_step_and_earlier_ones_latest_first() {
        let s = |store| AtomicStep::Online(step::Online { rg: 1, store });
        let plan = Plan::new(vec![
            PlannedStep::new(s(1)).undo([s(11)]),
            PlannedStep::new(s(2)).undo([s(21), s(22)]),
            PlannedStep::new(s(3)).no_return(),
            PlannedStep::new(s(4)).undo([s(41)]),
        ]);
        assert_eq!(plan.rollback_from(0).unwrap(), vec![s(11)]);
        assert_eq!(plan.rollback_from(1).unwrap(), vec![s(21), s(22), s(11)]);
        assert_eq!(plan.rollback_from(2).unwrap(), vec![s(21), s(22), s(11)]);
        assert_eq!(
            plan.rollback_from(3),
            Err(RollForwardOnly { since_step: 2 })
        );
    }
}
