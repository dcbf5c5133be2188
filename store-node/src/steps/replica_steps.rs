//! Membership and life-cycle steps of one replica: Create, AddLearner, Promote, Demote,
//! Offline, Online, Remove, Destroy, TransferLeader. Each is safe to run again after a crash
//! or a lost reply: it checks whether its effect is already there before acting.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use openraft::async_runtime::WatchReceiver;
use openraft::{BasicNode, ChangeMembers};
use proto::v1::CreateStep;

use super::Done;
use crate::error::{Result, StoreError};
use crate::rg::types::{Raft, RegionMeta};
use crate::store::{Replica, Store};

pub(crate) fn hosted(store: &Store, rg: u64) -> Result<Arc<Replica>> {
    store.replica(rg).ok_or(StoreError::RgNotFound(rg))
}

/// The replica of `rg` on this store, which must be the RG's leader.
pub(crate) fn leader(store: &Store, rg: u64) -> Result<Arc<Replica>> {
    let replica = hosted(store, rg)?;
    if let Err(forward) = replica.raft.as_leader() {
        return Err(StoreError::NotLeader {
            rg_id: rg,
            leader_id: forward.leader_id,
            leader_address: forward.leader_node.map(|n| n.addr),
            term: replica.raft.metrics().borrow_watched().current_term,
        });
    }
    Ok(replica)
}

pub(crate) fn raft_error<
    E: std::fmt::Display
        + std::fmt::Debug
        + openraft::TryAsRef<openraft::error::ForwardToLeader<crate::rg::types::TypeConfig>>,
>(
    rg: u64,
    raft: &Raft,
    e: openraft::error::RaftError<crate::rg::types::TypeConfig, E>,
) -> StoreError {
    if let Some(f) = e.forward_to_leader() {
        return StoreError::NotLeader {
            rg_id: rg,
            leader_id: f.leader_id,
            leader_address: f.leader_node.as_ref().map(|n| n.addr.clone()),
            term: raft.metrics().borrow_watched().current_term,
        };
    }
    StoreError::Unavailable(e.to_string())
}

fn voters(raft: &Raft) -> BTreeSet<u64> {
    raft.metrics()
        .borrow_watched()
        .membership_config
        .membership()
        .voter_ids()
        .collect()
}

fn members(raft: &Raft) -> BTreeSet<u64> {
    raft.metrics()
        .borrow_watched()
        .membership_config
        .membership()
        .nodes()
        .map(|(id, _)| *id)
        .collect()
}

pub async fn create(store: &Arc<Store>, rg: u64, step: CreateStep, job: u64) -> Result<Done> {
    if !step.bootstrap {
        if !step.regions.is_empty() {
            return Err(StoreError::InvalidArgument {
                field: "create.regions",
                reason: "only a bootstrap creates regions".into(),
            });
        }
        if step.members.len() > 64 {
            return Err(StoreError::InvalidArgument {
                field: "create.members",
                reason: format!("{} members; an RG has at most 64", step.members.len()),
            });
        }
        store.name_peers(rg, step.members.iter().map(|m| m.store_id).collect())?;
        store.create_replica(rg, None, job).await?;
        return Ok(Done { regions: vec![] });
    }
    if step.members.is_empty() {
        return Err(StoreError::InvalidArgument {
            field: "create.members",
            reason: "a new RG needs its members".into(),
        });
    }
    let mut members = Vec::new();
    for m in &step.members {
        if m.store_id == 0 || m.address.is_empty() {
            return Err(StoreError::InvalidArgument {
                field: "create.members",
                reason: "every member needs a store id and an address".into(),
            });
        }
        members.push((m.store_id, m.address.clone()));
    }
    if step.regions.len() > super::region_steps::MAX_REGIONS_PER_STEP {
        return Err(StoreError::InvalidArgument {
            field: "create.regions",
            reason: format!(
                "{} regions; at most {} per step",
                step.regions.len(),
                super::region_steps::MAX_REGIONS_PER_STEP
            ),
        });
    }
    let mut regions = Vec::new();
    for r in &step.regions {
        let range = r.range.clone().unwrap_or_default();
        if r.region_id == 0 || (!range.end.is_empty() && range.end <= range.start) {
            return Err(StoreError::InvalidArgument {
                field: "create.regions",
                reason: format!("region {} has no id or an empty range", r.region_id),
            });
        }
        regions.push(RegionMeta {
            id: r.region_id,
            object_id: r.object_id,
            start: range.start,
            end: range.end,
            version: r.epoch.as_ref().map(|e| e.version).unwrap_or(1).max(1),
        });
    }
    let replica = store
        .create_replica(rg, Some((members, regions)), job)
        .await?;
    if step.campaign {
        campaign(&replica, store.id(), CAMPAIGN_LIMIT).await;
    }
    Ok(Done { regions: vec![] })
}

/// How long a designated leader campaigns before the step ends without it (the RG then elects
/// a leader on its own timeouts, and the MC hears of it from the next heartbeat). Well inside
/// the step's deadline (its 5 s floor), so a campaign that cannot win ends the step Ok — the RG
/// exists on every member — instead of failing it into a rollback of a healthy RG.
pub(crate) const CAMPAIGN_LIMIT: Duration = Duration::from_secs(2);

/// Starts an election at once instead of after an election timeout (seconds at the default
/// settings), and returns once this replica leads and has committed its first entry — it then
/// serves at once — or another member leads, or `limit` passed. Every member already holds the
/// seeded state (the MC sends this Create last), so the first election wins unless a member is
/// unreachable; it is repeated a few times for one that lost a message.
pub(crate) async fn campaign(replica: &Replica, me: u64, limit: Duration) {
    let raft = &replica.raft;
    let until = tokio::time::Instant::now() + limit;
    let settled = |m: &openraft::RaftMetrics<crate::rg::types::TypeConfig>| match m.current_leader {
        Some(l) if l != me => true,
        Some(_) => {
            m.state.is_leader() && m.last_applied.as_ref().map(|l| l.index()) == m.last_log_index
        }
        None => false,
    };
    // Only a replica still at its seed (term 0) campaigns: a Create sent again (a retry, a new
    // MC leader) to a replica of an RG that has elected must not start another election.
    if raft.metrics().borrow_watched().current_term > 0 {
        return;
    }
    for round in 0.. {
        if settled(&raft.metrics().borrow_watched()) {
            return;
        }
        // The first round votes at once; later ones pre-vote first, so a member that cannot
        // win (a partition) does not drive the term up while it tries.
        if let Err(e) = raft.trigger().elect(round > 0).await {
            tracing::warn!(rg = replica.rg, error = %e, "campaign not started");
            return;
        }
        let left = until.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            tracing::info!(
                rg = replica.rg,
                "campaign ended without a leader; the RG elects one on its own"
            );
            return;
        }
        let round = left.min(Duration::from_millis(500));
        if raft.wait(Some(round)).metrics(settled, "led").await.is_ok() {
            return;
        }
    }
}

pub async fn add_learner(
    store: &Arc<Store>,
    rg: u64,
    step: proto::v1::AddLearnerStep,
    deadline: Duration,
) -> Result<Done> {
    let learner = step.learner.ok_or(StoreError::InvalidArgument {
        field: "add_learner.learner",
        reason: "missing".into(),
    })?;
    if learner.store_id == 0 || learner.address.is_empty() {
        return Err(StoreError::InvalidArgument {
            field: "add_learner.learner",
            reason: "needs a store id and an address".into(),
        });
    }
    let replica = leader(store, rg)?;
    let raft = &replica.raft;
    if !members(raft).contains(&learner.store_id) {
        // Blocking: returns once the learner has replicated up to the membership entry.
        tokio::time::timeout(
            deadline,
            raft.add_learner(learner.store_id, BasicNode::new(&learner.address), true),
        )
        .await
        .map_err(|_| {
            StoreError::DeadlineExceeded(format!("learner {} did not catch up", learner.store_id))
        })?
        .map_err(|e| raft_error(rg, raft, e))?;
    }
    wait_caught_up(raft, learner.store_id, deadline).await?;
    Ok(Done { regions: vec![] })
}

/// Waits until `target` has replicated everything the leader had when the wait began.
async fn wait_caught_up(raft: &Raft, target: u64, deadline: Duration) -> Result<()> {
    let goal = raft.metrics().borrow_watched().last_log_index.unwrap_or(0);
    let waiter = raft.wait(Some(deadline));
    let wait = waiter.metrics(
        |m| {
            m.replication
                .as_ref()
                .and_then(|r| r.get(&target))
                .and_then(|matched| matched.as_ref().map(|l| l.index))
                .is_some_and(|index| index >= goal)
        },
        "learner caught up",
    );
    wait.await
        .map(|_| ())
        .map_err(|e| StoreError::DeadlineExceeded(format!("store {target} did not catch up: {e}")))
}

pub async fn promote(store: &Arc<Store>, rg: u64, target: u64) -> Result<Done> {
    let replica = leader(store, rg)?;
    let raft = &replica.raft;
    if voters(raft).contains(&target) {
        return Ok(Done { regions: vec![] });
    }
    if !members(raft).contains(&target) {
        return Err(StoreError::Failed(format!(
            "store {target} is not a learner of RG {rg}"
        )));
    }
    raft.change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([target])), false)
        .await
        .map_err(|e| raft_error(rg, raft, e))?;
    Ok(Done { regions: vec![] })
}

pub async fn demote(store: &Arc<Store>, rg: u64, target: u64) -> Result<Done> {
    let replica = leader(store, rg)?;
    let raft = &replica.raft;
    if !voters(raft).contains(&target) {
        return if members(raft).contains(&target) {
            Ok(Done { regions: vec![] })
        } else {
            Err(StoreError::Failed(format!(
                "store {target} is not a member of RG {rg}"
            )))
        };
    }
    if target == store.id() {
        return Err(StoreError::Failed(
            "the leader cannot demote itself; transfer leadership first".into(),
        ));
    }
    check_quorum_after_removal(raft, target)?;
    raft.change_membership(ChangeMembers::RemoveVoters(BTreeSet::from([target])), true)
        .await
        .map_err(|e| raft_error(rg, raft, e))?;
    Ok(Done { regions: vec![] })
}

/// Refuses to drop the last voter.
fn check_quorum_after_removal(raft: &Raft, target: u64) -> Result<()> {
    let voters = voters(raft);
    if voters.len() <= 1 && voters.contains(&target) {
        return Err(StoreError::Failed(format!(
            "removing store {target} would leave RG without voters"
        )));
    }
    Ok(())
}

/// Takes a replica offline: it stops serving and campaigning. Alone, it first hands its
/// leadership to another voter; with `whole_rg` (every replica of the RG is going offline:
/// OfflineRg, MergeRg, DeleteRg, a CreateRg undone) there may be no other voter left to take
/// it, so a leader just stops serving.
pub async fn offline(
    store: &Arc<Store>,
    rg: u64,
    transfer_to: u64,
    whole_rg: bool,
    deadline: Duration,
) -> Result<Done> {
    let replica = hosted(store, rg)?;
    let raft = &replica.raft;
    if whole_rg {
        store.set_offline(&replica, true)?;
        return Ok(Done { regions: vec![] });
    }
    // Stop campaigning first, so the leadership that moves away does not come back.
    raft.runtime_config().elect(false);
    if raft.as_leader().is_ok() {
        let others: Vec<u64> = voters(raft)
            .into_iter()
            .filter(|id| *id != store.id())
            .collect();
        let target = if transfer_to != 0 {
            transfer_to
        } else {
            others.first().copied().unwrap_or(0)
        };
        if target == 0 || !others.contains(&target) {
            raft.runtime_config().elect(!replica.is_offline());
            return Err(StoreError::Failed(format!(
                "no other voter of RG {rg} to take leadership"
            )));
        }
        if let Err(e) = move_leadership(raft, store.id(), target, deadline).await {
            raft.runtime_config().elect(!replica.is_offline());
            return Err(e);
        }
    }
    store.set_offline(&replica, true)?;
    Ok(Done { regions: vec![] })
}

pub async fn online(store: &Arc<Store>, rg: u64) -> Result<Done> {
    let replica = hosted(store, rg)?;
    store.set_offline(&replica, false)?;
    Ok(Done { regions: vec![] })
}

pub async fn remove(store: &Arc<Store>, rg: u64, target: u64) -> Result<Done> {
    let replica = leader(store, rg)?;
    let raft = &replica.raft;
    if !members(raft).contains(&target) {
        return Ok(Done { regions: vec![] });
    }
    if target == store.id() {
        return Err(StoreError::Failed(
            "the leader cannot remove itself; offline it first".into(),
        ));
    }
    let change = if voters(raft).contains(&target) {
        check_quorum_after_removal(raft, target)?;
        ChangeMembers::RemoveVoters(BTreeSet::from([target]))
    } else {
        ChangeMembers::RemoveNodes(BTreeSet::from([target]))
    };
    raft.change_membership(change, false)
        .await
        .map_err(|e| raft_error(rg, raft, e))?;
    Ok(Done { regions: vec![] })
}

/// Destroys the replica. After a merge (`merged_into` set), only once this store's replica of
/// the target holds every region the source held here: until then the source's records still
/// list them, and the merged data would go with it.
pub async fn destroy(
    store: &Arc<Store>,
    rg: u64,
    merged_into: u64,
    only_if_empty: bool,
    deadline: Duration,
) -> Result<Done> {
    if only_if_empty && store.replica(rg).is_some() {
        let held = store
            .engine
            .scan_meta::<RegionMeta>(&crate::engine::keys::region_prefix(rg))?;
        if !held.is_empty() {
            let ids: Vec<u64> = held.iter().take(8).map(|(_, r)| r.id).collect();
            return Err(StoreError::Failed(format!(
                "RG {rg} still holds {} regions here ({ids:?}…): a deleted RG must be empty",
                held.len()
            )));
        }
    }
    if merged_into != 0 && store.replica(rg).is_some() {
        let until = tokio::time::Instant::now() + deadline;
        loop {
            let left = store
                .engine
                .scan_meta::<RegionMeta>(&crate::engine::keys::region_prefix(rg))?;
            if left.is_empty() {
                break;
            }
            if tokio::time::Instant::now() >= until {
                return Err(StoreError::Unavailable(format!(
                    "RG {rg} still holds {} regions here: the merge into RG {merged_into} has \
                     not reached this store's replica yet",
                    left.len()
                )));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    if let Some(replica) = store.replica(rg) {
        let membership: BTreeMap<u64, BasicNode> = replica
            .raft
            .metrics()
            .borrow_watched()
            .membership_config
            .membership()
            .nodes()
            .map(|(k, v)| (*k, v.clone()))
            .collect();
        if membership.contains_key(&store.id()) && membership.len() > 1 && !replica.is_offline() {
            return Err(StoreError::Failed(format!(
                "replica of RG {rg} on store {} is still a member and online; offline and remove it first",
                store.id()
            )));
        }
    }
    store.destroy_replica(rg, merged_into).await?;
    Ok(Done { regions: vec![] })
}

pub async fn transfer_leader(
    store: &Arc<Store>,
    rg: u64,
    to: u64,
    deadline: Duration,
) -> Result<Done> {
    let replica = leader(store, rg)?;
    let raft = &replica.raft;
    if to == store.id() {
        return Ok(Done { regions: vec![] });
    }
    if !voters(raft).contains(&to) {
        return Err(StoreError::Failed(format!(
            "store {to} is not a voter of RG {rg}"
        )));
    }
    move_leadership(raft, store.id(), to, deadline).await?;
    Ok(Done { regions: vec![] })
}

/// Asks `to` to take over and waits until this replica no longer leads.
async fn move_leadership(raft: &Raft, me: u64, to: u64, deadline: Duration) -> Result<()> {
    raft.trigger()
        .transfer_leader(to)
        .await
        .map_err(|e| StoreError::Unavailable(e.to_string()))?;
    raft.wait(Some(deadline))
        .metrics(
            |m| m.current_leader.is_some() && m.current_leader != Some(me),
            "leadership moved",
        )
        .await
        .map(|_| ())
        .map_err(|e| {
            StoreError::DeadlineExceeded(format!("leadership did not move to store {to}: {e}"))
        })
}
