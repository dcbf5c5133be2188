//! "Ask the store": whether a step's effect is in place, from the stores' own status. The
//! engine asks before it rolls back a point-of-no-return step whose attempts ended without a
//! definite outcome (a missed deadline, a lost reply), and acts on the answer, so the answer
//! must hold afterwards:
//!
//! - The step is fenced first on every store it may have been sent to (its own store, or every
//!   member of its RG): an attempt still on its way is answered "fenced" instead of running
//!   after the MC moved on. A store that cannot be fenced, or where the step runs now, makes
//!   the answer Unknown; one that recorded the step's outcome answers from it.
//! - On the RG's side, the leader is the replica claiming leadership in the highest term, and a
//!   majority of members must answer with no higher term than its own; a membership counts once
//!   applied and not joint; and "not landed" needs the leader's log fully applied (an entry
//!   still in its log may yet commit).

use proto::v1 as pb;
use proto::v1::fence_result::State;

use super::GrpcExecutor;
use crate::ids::{RgId, StoreId};
use crate::jobs::executor::{Envelope, Probe};
use crate::jobs::plan::{AtomicStep, Target};
use crate::step::{Check, Seen};

pub(crate) async fn probe(executor: &GrpcExecutor, env: Envelope, step: &AtomicStep) -> Probe {
    let Some(rg) = step.rg() else {
        return Probe::Unknown("step names no RG".into());
    };
    let fence = pb::StepFence {
        rg_id: rg,
        job_id: env.job_id,
        step_seq: env.step_seq,
    };
    match step.target() {
        Target::Store(store) => on_store(executor, store, rg, fence, step).await,
        Target::Leader(_) => match leader_status(executor, rg, fence).await {
            Ok(Fenced::Recorded(ok)) => verdict(ok),
            Ok(Fenced::Status(status)) => at_leader(executor, &status, step),
            Err(why) => Probe::Unknown(why),
        },
        Target::Children => Probe::Unknown("a parent's step is not on a store".into()),
    }
}

enum Fenced {
    /// A store recorded the step's outcome: whether it was Ok.
    Recorded(bool),
    /// Fenced everywhere; the leader's status.
    Status(pb::ReplicaStatus),
}

/// What a fence on one store says, if it settles the question.
fn fence_answer(
    store: StoreId,
    status: &pb::GetStoreStatusResponse,
) -> Result<Option<bool>, String> {
    let Some(f) = status.fences.first() else {
        return Err(format!("store {store} did not fence the step"));
    };
    match f.state() {
        State::Fenced => Ok(None),
        State::Recorded => Ok(Some(matches!(
            f.outcome.as_ref().and_then(|o| o.result.as_ref()),
            Some(pb::step_outcome::Result::Ok(_))
        ))),
        State::Running | State::Unspecified => {
            Err(format!("the step is still running on store {store}"))
        }
    }
}

async fn on_store(
    executor: &GrpcExecutor,
    store: StoreId,
    rg: RgId,
    fence: pb::StepFence,
    step: &AtomicStep,
) -> Probe {
    let Some(status) = executor.status_fencing(store, &[rg], vec![fence]).await else {
        return Probe::Unknown(format!("store {store} did not answer"));
    };
    match fence_answer(store, &status) {
        Err(why) => return Probe::Unknown(why),
        Ok(Some(ok)) => return verdict(ok),
        Ok(None) => {}
    }
    let replica = status.replicas.iter().find(|r| r.rg_id == rg);
    match check(executor, step, Seen::Store(replica)) {
        Check::Now(landed) => verdict(landed),
        Check::Unknown(why) => Probe::Unknown(why),
        other => Probe::Unknown(format!("{other:?} from a store step")),
    }
}

/// The step's own check (see the step table), on what was seen.
fn check(executor: &GrpcExecutor, step: &AtomicStep, seen: Seen<'_>) -> Check {
    match step.spec() {
        Some(spec) => spec.check(seen, &|rg| executor.view().rg_regions(rg)),
        None => Check::Unknown("a parent's step is not on a store".into()),
    }
}

/// Fences the step on every member of the RG and finds its leader.
async fn leader_status(
    executor: &GrpcExecutor,
    rg: RgId,
    fence: pb::StepFence,
) -> Result<Fenced, String> {
    let members: Vec<StoreId> = executor.view().rg_members(rg);
    if members.is_empty() {
        return Err(format!("RG {rg}'s members are not known"));
    }
    let mut answered = 0;
    let mut highest_term = 0;
    let mut best: Option<pb::ReplicaStatus> = None;
    for store in &members {
        let Some(status) = executor.status_fencing(*store, &[rg], vec![fence]).await else {
            // An attempt may wait on that store: it cannot be fenced, so nothing is certain.
            return Err(format!(
                "store {store} did not answer (the step cannot be fenced there)"
            ));
        };
        if let Some(ok) = fence_answer(*store, &status)? {
            return Ok(Fenced::Recorded(ok));
        }
        let Some(r) = status.replicas.into_iter().find(|r| r.rg_id == rg) else {
            continue;
        };
        answered += 1;
        highest_term = highest_term.max(r.term);
        if r.is_leader && best.as_ref().is_none_or(|b| r.term > b.term) {
            best = Some(r);
        }
    }
    let leader = best.ok_or_else(|| format!("no member of RG {rg} answered as its leader"))?;
    if answered < members.len() / 2 + 1 {
        return Err(format!(
            "only {answered} of RG {rg}'s {} members answered",
            members.len()
        ));
    }
    if leader.term < highest_term {
        return Err(format!(
            "store {} leads RG {rg} in term {}, but a member is in term {highest_term}",
            leader.leader_store_id, leader.term
        ));
    }
    Ok(Fenced::Status(leader))
}

fn at_leader(executor: &GrpcExecutor, leader: &pb::ReplicaStatus, step: &AtomicStep) -> Probe {
    if leader.running_job_id != 0 {
        return Probe::Unknown(format!(
            "step {} of job {} is still running on RG {}",
            leader.running_step_seq, leader.running_job_id, leader.rg_id
        ));
    }
    // An entry in the leader's log but not applied may still commit: only a fully applied log
    // says "not landed" for good.
    let settled = leader.last_log_index <= leader.applied_index;
    match check(executor, step, Seen::Leader(leader)) {
        Check::Now(landed) => verdict(landed),
        Check::Regions(landed) if landed || settled => verdict(landed),
        Check::Regions(_) => Probe::Unknown(format!(
            "RG {}'s leader has entries not applied yet",
            leader.rg_id
        )),
        Check::Membership(_) if !leader.members_applied || leader.members_joint => Probe::Unknown(
            format!("RG {}'s membership change is half done", leader.rg_id),
        ),
        Check::Membership(landed) if landed || settled => verdict(landed),
        Check::Membership(_) => Probe::Unknown(format!(
            "RG {}'s leader has entries not applied yet",
            leader.rg_id
        )),
        Check::Unknown(why) => Probe::Unknown(why),
    }
}

fn verdict(landed: bool) -> Probe {
    if landed {
        Probe::Landed
    } else {
        Probe::NotLanded
    }
}
