//! "Ask the store": whether a step's effect is in place, from the stores' own status. The
//! engine asks before it rolls back a point-of-no-return step whose attempts ended without a
//! definite outcome (a missed deadline, a lost reply). A membership counts only once it is
//! applied on the leader, and any step still running on the RG makes the answer Unknown: the
//! effect may be on its way.

use proto::v1 as pb;

use crate::ids::{RgId, StoreId};
use crate::jobs::executor::Probe;
use crate::jobs::grpc_executor::GrpcExecutor;
use crate::jobs::plan::{AtomicStep, Target};

pub(crate) async fn probe(executor: &GrpcExecutor, step: &AtomicStep) -> Probe {
    match step.target() {
        Target::Store(store) => on_store(executor, store, step).await,
        Target::Leader(rg) => match leader_status(executor, rg).await {
            Ok(status) => at_leader(executor, &status, step).await,
            Err(why) => Probe::Unknown(why),
        },
        Target::Children => Probe::Unknown("a parent's step is not on a store".into()),
    }
}

async fn on_store(executor: &GrpcExecutor, store: StoreId, step: &AtomicStep) -> Probe {
    let Some(rg) = step.rg() else {
        return Probe::Unknown("step names no RG".into());
    };
    let Some(status) = executor.status(store, &[rg]).await else {
        return Probe::Unknown(format!("store {store} did not answer"));
    };
    let replica = status.replicas.iter().find(|r| r.rg_id == rg);
    if replica.is_some_and(|r| r.running_job_id != 0) {
        return Probe::Unknown(format!(
            "a step is still running on RG {rg} at store {store}"
        ));
    }
    let landed = match step {
        AtomicStep::Create { .. } => replica.is_some(),
        AtomicStep::Destroy { .. } => replica.is_none(),
        // Alone it also hands leadership away; with the whole RG the leader stays, offline.
        AtomicStep::Offline { whole_rg, .. } => {
            replica.is_some_and(|r| r.offline && (*whole_rg || !r.is_leader))
        }
        AtomicStep::Online { .. } => replica.is_some_and(|r| !r.offline),
        other => return Probe::Unknown(format!("{:?} is not a store step", other.kind())),
    };
    verdict(landed)
}

/// The status of the RG's replica that leads it, asked of its members (the view's, and the
/// store the executor last found leading).
async fn leader_status(executor: &GrpcExecutor, rg: RgId) -> Result<pb::ReplicaStatus, String> {
    let members: Vec<StoreId> = executor
        .view()
        .snapshot()
        .rg(rg)
        .map(|r| r.members.keys().copied().collect())
        .unwrap_or_default();
    if members.is_empty() {
        return Err(format!("RG {rg}'s members are not known"));
    }
    let mut best: Option<pb::ReplicaStatus> = None;
    for store in members {
        if let Some(status) = executor.status(store, &[rg]).await
            && let Some(r) = status.replicas.into_iter().find(|r| r.rg_id == rg)
            && r.is_leader
            && best.as_ref().is_none_or(|b| r.term > b.term)
        {
            best = Some(r);
        }
    }
    best.ok_or_else(|| format!("no member of RG {rg} answered as its leader"))
}

async fn at_leader(
    executor: &GrpcExecutor,
    leader: &pb::ReplicaStatus,
    step: &AtomicStep,
) -> Probe {
    if leader.running_job_id != 0 {
        return Probe::Unknown(format!(
            "step {} of job {} is still running on RG {}",
            leader.running_step_seq, leader.running_job_id, leader.rg_id
        ));
    }
    let member = |s: StoreId| leader.members.iter().find(|m| m.store_id == s);
    let role = |s: StoreId| member(s).map(|m| m.role());
    let region = |id: u64| leader.regions.iter().any(|r| r.id == id);
    let membership = |landed: bool| {
        if leader.members_applied {
            verdict(landed)
        } else {
            Probe::Unknown(format!(
                "RG {}'s membership change is not applied yet",
                leader.rg_id
            ))
        }
    };
    match step {
        AtomicStep::AddLearner { store, .. } => membership(member(*store).is_some()),
        AtomicStep::Promote { store, .. } => {
            membership(role(*store) == Some(pb::ReplicaRole::Voter))
        }
        AtomicStep::Demote { store, .. } => {
            membership(role(*store) == Some(pb::ReplicaRole::Learner))
        }
        AtomicStep::Remove { store, .. } => membership(member(*store).is_none()),
        AtomicStep::TransferLeader { to, .. } => verdict(leader.leader_store_id == *to),
        AtomicStep::CreateRegion { region: r, .. } => verdict(region(r.id)),
        AtomicStep::SplitRegion { new_region, .. } => verdict(region(*new_region)),
        AtomicStep::MergeRegion { left, right, .. } => verdict(region(*left) && !region(*right)),
        AtomicStep::DeleteRegion { region: r, .. } => verdict(!region(*r)),
        AtomicStep::SplitRg { regions, .. } => verdict(regions.iter().all(|r| !region(*r))),
        AtomicStep::MergeRg { source, .. } => {
            let moved: Vec<u64> = executor
                .view()
                .snapshot()
                .rg(*source)
                .map(|r| r.regions.iter().copied().collect())
                .unwrap_or_default();
            if moved.is_empty() {
                return Probe::Unknown(format!("RG {source}'s regions are not known"));
            }
            verdict(moved.iter().all(|r| region(*r)))
        }
        other => Probe::Unknown(format!("{:?} is not a leader step", other.kind())),
    }
}

fn verdict(landed: bool) -> Probe {
    if landed {
        Probe::Landed
    } else {
        Probe::NotLanded
    }
}
