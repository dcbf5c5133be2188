//! Atomic steps and the plan of a job: its forward steps, what undoes each, and where rolling
//! back stops being possible. A job type builds its plan once, at submission; the plan is
//! persisted with the job, so an upgrade never changes a running job's steps.

use proto::v1::{StepKind, StepOutcome, step_outcome};
use serde::{Deserialize, Serialize};

use crate::ids::{ObjectId, RegionId, RgId, StoreId};

/// Where a step is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// The store holding the replica the step is about.
    Store(StoreId),
    /// Whichever store leads the RG when the step is sent (re-resolved on NotLeader).
    Leader(RgId),
    /// Nothing is sent: the engine waits for the job's children.
    Children,
}

/// One instruction to one store. Persisted: variants are appended, never renamed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum AtomicStep {
    /// `members` set: bootstrap a new RG on `store` with these members and regions.
    Create {
        rg: RgId,
        store: StoreId,
        members: Vec<StoreId>,
        regions: Vec<NewRegion>,
        /// Bootstrap on the designated leader, sent after the other members' Creates: it
        /// takes leadership at once instead of waiting out an election timeout.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        campaign: bool,
    },
    AddLearner {
        rg: RgId,
        store: StoreId,
    },
    Promote {
        rg: RgId,
        store: StoreId,
    },
    Demote {
        rg: RgId,
        store: StoreId,
    },
    Offline {
        rg: RgId,
        store: StoreId,
        whole_rg: bool,
    },
    Online {
        rg: RgId,
        store: StoreId,
    },
    Remove {
        rg: RgId,
        store: StoreId,
    },
    Destroy {
        rg: RgId,
        store: StoreId,
        /// The RG this one was merged into: the store waits until its replica of that RG
        /// holds the merged regions before it destroys this one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        merged_into: Option<RgId>,
        /// The whole RG is deleted: the store refuses while its replica holds a region.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        only_if_empty: bool,
    },
    TransferLeader {
        rg: RgId,
        to: StoreId,
    },
    CreateRegion {
        rg: RgId,
        region: NewRegion,
    },
    SplitRegion {
        rg: RgId,
        region: RegionId,
        at: Vec<u8>,
        new_region: RegionId,
        version: u64,
    },
    MergeRegion {
        rg: RgId,
        left: RegionId,
        right: RegionId,
        left_version: u64,
        right_version: u64,
    },
    DeleteRegion {
        rg: RgId,
        region: RegionId,
        version: u64,
    },
    SplitRg {
        rg: RgId,
        new_rg: RgId,
        regions: Vec<RegionId>,
    },
    MergeRg {
        source: RgId,
        target: RgId,
    },
    WaitChildren,
    /// Several regions in one Raft command, all or none.
    CreateRegions {
        rg: RgId,
        regions: Vec<NewRegion>,
    },
}

/// A region to create, with its id already allocated.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewRegion {
    pub id: RegionId,
    pub object: ObjectId,
    pub start: Vec<u8>,
    pub end: Vec<u8>,
}

impl AtomicStep {
    /// Destroy the replica of `rg` on `store`.
    pub fn destroy(rg: RgId, store: StoreId) -> Self {
        AtomicStep::Destroy {
            rg,
            store,
            merged_into: None,
            only_if_empty: false,
        }
    }

    /// Destroy the replica of `rg` on `store` only if it holds no region (DeleteRg).
    pub fn destroy_empty(rg: RgId, store: StoreId) -> Self {
        AtomicStep::Destroy {
            rg,
            store,
            merged_into: None,
            only_if_empty: true,
        }
    }

    pub fn kind(&self) -> StepKind {
        match self {
            AtomicStep::Create { .. } => StepKind::Create,
            AtomicStep::AddLearner { .. } => StepKind::AddLearner,
            AtomicStep::Promote { .. } => StepKind::Promote,
            AtomicStep::Demote { .. } => StepKind::Demote,
            AtomicStep::Offline { .. } => StepKind::Offline,
            AtomicStep::Online { .. } => StepKind::Online,
            AtomicStep::Remove { .. } => StepKind::Remove,
            AtomicStep::Destroy { .. } => StepKind::Destroy,
            AtomicStep::TransferLeader { .. } => StepKind::TransferLeader,
            AtomicStep::CreateRegion { .. } | AtomicStep::CreateRegions { .. } => {
                StepKind::CreateRegion
            }
            AtomicStep::SplitRegion { .. } => StepKind::SplitRegion,
            AtomicStep::MergeRegion { .. } => StepKind::MergeRegion,
            AtomicStep::DeleteRegion { .. } => StepKind::DeleteRegion,
            AtomicStep::SplitRg { .. } => StepKind::SplitRg,
            AtomicStep::MergeRg { .. } => StepKind::MergeRg,
            AtomicStep::WaitChildren => StepKind::WaitChildren,
        }
    }

    pub fn target(&self) -> Target {
        match self {
            AtomicStep::Create { store, .. }
            | AtomicStep::Offline { store, .. }
            | AtomicStep::Online { store, .. }
            | AtomicStep::Destroy { store, .. } => Target::Store(*store),
            AtomicStep::AddLearner { rg, .. }
            | AtomicStep::Promote { rg, .. }
            | AtomicStep::Demote { rg, .. }
            | AtomicStep::Remove { rg, .. }
            | AtomicStep::TransferLeader { rg, .. }
            | AtomicStep::CreateRegion { rg, .. }
            | AtomicStep::CreateRegions { rg, .. }
            | AtomicStep::SplitRegion { rg, .. }
            | AtomicStep::MergeRegion { rg, .. }
            | AtomicStep::DeleteRegion { rg, .. }
            | AtomicStep::SplitRg { rg, .. } => Target::Leader(*rg),
            AtomicStep::MergeRg { target, .. } => Target::Leader(*target),
            AtomicStep::WaitChildren => Target::Children,
        }
    }

    /// The RG named in the step's envelope.
    pub fn rg(&self) -> Option<RgId> {
        match self {
            AtomicStep::Create { rg, .. }
            | AtomicStep::AddLearner { rg, .. }
            | AtomicStep::Promote { rg, .. }
            | AtomicStep::Demote { rg, .. }
            | AtomicStep::Offline { rg, .. }
            | AtomicStep::Online { rg, .. }
            | AtomicStep::Remove { rg, .. }
            | AtomicStep::Destroy { rg, .. }
            | AtomicStep::TransferLeader { rg, .. }
            | AtomicStep::CreateRegion { rg, .. }
            | AtomicStep::CreateRegions { rg, .. }
            | AtomicStep::SplitRegion { rg, .. }
            | AtomicStep::MergeRegion { rg, .. }
            | AtomicStep::DeleteRegion { rg, .. }
            | AtomicStep::SplitRg { rg, .. } => Some(*rg),
            AtomicStep::MergeRg { target, .. } => Some(*target),
            AtomicStep::WaitChildren => None,
        }
    }
}

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
            (
                AtomicStep::Destroy { .. } | AtomicStep::Online { .. } | AtomicStep::Offline { .. },
                "rg",
            ) => Verdict::Done,
            // A leader step reached a store that no longer hosts the RG: find the leader again.
            (_, "rg") if matches!(step.target(), Target::Leader(_)) => Verdict::Retry,
            _ => Verdict::Abort,
        },
        Some(R::EpochMismatch(_)) | Some(R::Failed(_)) | Some(R::InvalidArgument(_)) => {
            Verdict::Abort
        }
    }
}

/// An undo step's verdict: as [`classify`], except that the undo of a region's creation that
/// finds no such region has reached its goal (the creation never landed). Only for undo steps:
/// the job still holds the region and shares its RG, so no merge can have moved the region
/// away, which a forward DeleteRegion answered NotFound cannot assume.
pub fn classify_undo(step: &AtomicStep, outcome: &StepOutcome) -> Verdict {
    use step_outcome::Result as R;
    match (step, outcome.result.as_ref()) {
        (AtomicStep::DeleteRegion { .. }, Some(R::NotFound(n))) if n.kind == "region" => {
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
    use proto::v1::*;

    fn outcome(result: step_outcome::Result) -> StepOutcome {
        StepOutcome {
            result: Some(result),
        }
    }

    #[test]
    fn the_shared_contract() {
        let destroy = AtomicStep::destroy(1, 2);
        let promote = AtomicStep::Promote { rg: 1, store: 2 };
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
        let s = |store| AtomicStep::Online { rg: 1, store };
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
