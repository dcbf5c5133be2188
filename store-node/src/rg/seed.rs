//! Creating an RG on its member stores without running an election first: every member
//! writes the same initial state — membership and regions applied at log id (term 0, index 1),
//! and the log purged up to there — so every member agrees, and the first elected leader
//! carries on from index 2. Used by Create(bootstrap) and by SplitRg, whose members all derive
//! the seed from the same applied parent entry (each keeps its own copy of the split regions'
//! data, which the shared data column family already holds).
//!
//! The state is not written as log entries: a replica added later (a learner, a member that
//! missed the split) must then get a snapshot, which carries the data, instead of replaying a
//! log whose first entries would create the regions empty (a learner of a split RG once
//! received its regions without the keys written before the split).

use std::collections::{BTreeMap, BTreeSet};

use openraft::alias::CommittedLeaderIdOf;
use openraft::{BasicNode, Membership};
use rocksdb::WriteBatch;

use crate::engine::{Engine, keys};
use crate::error::{Result, StoreError};
use crate::rg::types::{LogId, RegionMeta, ReplicaMeta, StoredMembership, TypeConfig};

/// The log id a seeded RG's state is applied at.
pub fn seed_log_id() -> LogId {
    LogId::new(CommittedLeaderIdOf::<TypeConfig>::new(0), 1)
}

/// Adds to `batch` everything that makes `rg` exist on this store, seeded.
pub fn seed_rg(
    engine: &Engine,
    batch: &mut WriteBatch,
    rg: u64,
    members: &[(u64, String)],
    regions: &[RegionMeta],
) -> Result<()> {
    if members.is_empty() {
        return Err(StoreError::InvalidArgument {
            field: "members",
            reason: "an RG needs at least one member".into(),
        });
    }
    let voters: BTreeSet<u64> = members.iter().map(|(id, _)| *id).collect();
    let nodes: BTreeMap<u64, BasicNode> = members
        .iter()
        .map(|(id, addr)| (*id, BasicNode::new(addr)))
        .collect();
    let membership =
        Membership::new(vec![voters], nodes).map_err(|e| StoreError::InvalidArgument {
            field: "members",
            reason: e.to_string(),
        })?;
    let term0 = CommittedLeaderIdOf::<TypeConfig>::new(0);
    let applied = seed_log_id();
    let stored = StoredMembership::new(Some(LogId::new(term0, 0)), membership);
    engine.put_meta(batch, &keys::rg_record(rg, "purged"), &applied)?;
    engine.put_meta(batch, &keys::rg_record(rg, "applied"), &Some(applied))?;
    engine.put_meta(batch, &keys::rg_record(rg, "membership"), &stored)?;
    engine.put_meta(batch, &keys::rg_record(rg, "conf_ver"), &1u64)?;
    for region in regions {
        engine.put_meta(batch, &keys::region_key(rg, region.id), region)?;
    }
    engine.put_meta(
        batch,
        &keys::hosted_key(rg),
        &ReplicaMeta {
            rg_id: rg,
            offline: false,
        },
    )
}
